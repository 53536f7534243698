"""The `lookup` tool: the world's encyclopedia article about a person, or a clear miss."""

from __future__ import annotations

import time

from lab.tools.result import ToolResult

# Models often wrap the name in quotes or backticks; those are never part of a name.
_STRIP = " \t\r\n\"'`“”‘’"


def lookup(name: str, world) -> ToolResult:
    """`world` is a tasks.world.World (anything with `lookup(name) -> str | None`)."""
    start = time.monotonic()

    def result(ok: bool, output: str, kind: str | None = None) -> ToolResult:
        return ToolResult(ok, output, kind, time.monotonic() - start)

    if world is None:
        return result(False, "error: lookup is not available here (no world is loaded)", "unavailable")
    if not isinstance(name, str) or not name.strip(_STRIP):
        return result(False, "error: lookup needs a person's name, e.g. lookup(\"Mira Tolvane\")", "bad_arguments")
    name = name.strip(_STRIP)
    article = world.lookup(name)
    if article is None:
        return result(False, world.lookup_miss(name), "not_found")
    return result(True, article)
