"""Tools the model can call: a sandboxed Python runner, an exact calculator and an encyclopedia lookup.

Every tool takes one string argument (model output, so untrusted data) and returns a ToolResult; no tool
raises on bad input, because a malformed call is an ordinary event in a rollout, not a bug in the lab.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.tools.calculator import calculate
from lab.tools.lookup import lookup
from lab.tools.result import ToolResult
from lab.tools.sandbox import SandboxLimits, run_python, sandbox_status


@dataclass
class ToolContext:
    world: Any = None  # a tasks.world.World, for `lookup`
    limits: SandboxLimits = field(default_factory=SandboxLimits)


TOOLS: dict[str, Callable[[str, ToolContext], ToolResult]] = {
    "python": lambda argument, context: run_python(argument, context.limits),
    "calculator": lambda argument, context: calculate(argument),
    "lookup": lambda argument, context: lookup(argument, context.world),
}


def run_tool(name: str, argument: str, context: ToolContext | None = None) -> ToolResult:
    """Run the named tool on the model's argument; unknown tools and non-string arguments become tool errors."""
    tool = TOOLS.get(name) if isinstance(name, str) else None
    if tool is None:
        return ToolResult(False, f"error: unknown tool '{name}'; tools: {', '.join(TOOLS)}", "unknown_tool")
    if not isinstance(argument, str):
        return ToolResult(False, f"error: the {name} tool takes a string argument", "bad_arguments")
    return tool(argument, context or ToolContext())


__all__ = ["TOOLS", "SandboxLimits", "ToolContext", "ToolResult", "calculate", "lookup", "run_python", "run_tool",
           "sandbox_status"]
