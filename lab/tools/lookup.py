"""The `lookup` tool: the world's encyclopedia article about a person, or a clear miss.

The argument is model output: an empty name, several lines or a paragraph is answered with one short
`error: ...` line (a miss echoes the name, so an unchecked paragraph would come back as a paragraph).
"""

from __future__ import annotations

import time

from lab.tools.result import ToolResult

# Models often wrap the name in quotes or backticks; those are never part of a name.
_STRIP = " \t\r\n\"'`“”‘’"
# Far above any name of the world (first and last name), far below what would crowd a small context.
MAX_NAME_CHARS = 80


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
    if "\n" in name or "\r" in name:
        return result(False, "error: lookup takes one person's name on one line", "bad_arguments")
    if len(name) > MAX_NAME_CHARS:
        return result(False, f"error: a name is at most {MAX_NAME_CHARS} characters; lookup takes one person's name",
                      "bad_arguments")
    article = world.lookup(name)
    if article is None:
        return result(False, world.lookup_miss(name), "not_found")
    return result(True, article)
