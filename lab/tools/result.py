"""What every tool returns: whether it worked, what the model sees, and why it failed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ToolResult:
    ok: bool
    output: str  # what the model sees: stdout, or a short "error: ..." line
    error_kind: str | None = None  # "timeout" (wall clock), "cpu_limit", "memory", "nonzero_exit", "syntax", "not_found", ...
    seconds: float = 0.0
