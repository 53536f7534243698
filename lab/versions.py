"""The versions of the fast-moving dependencies this lab was tested with, and a warning when others are found.

`make run` and `make test` install the exact versions in constraints.txt (regenerate it with
`make lock`); pyproject.toml keeps the honest ranges for installing the lab into an environment of
one's own. TESTED is, for each package whose minor releases have broken the lab before, the lowest
and the newest version the whole test suite passed on (`make test-lowest`, `make test-latest`). The
`lab` command warns in one line at start-up when an installed version lies outside it. Versions are
read with importlib.metadata, so the check imports no torch and `lab --help` stays fast.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from lab.runs import package_versions

TESTED: dict[str, tuple[str, str]] = {
    "transformers": ("5.17.0", "5.25.0"),
    "trl": ("1.16.0", "1.16.0"),
}


def _release(version: str) -> tuple[int, ...]:
    """(5, 24, 0) from '5.24.0', '5.24.0rc1' or '5.24.0+local': pre-releases count as their release."""
    try:
        return Version(version).release
    except InvalidVersion:
        return ()


def untested(installed: dict[str, str] | None = None) -> list[str]:
    """'transformers 5.26.0 (tested 5.17.0 to 5.25.0)' for each installed package outside its tested range."""
    found = installed if installed is not None else package_versions()
    out = []
    for name, (low, high) in TESTED.items():
        version = found.get(name, "not installed")
        if version != "not installed" and not _release(low) <= _release(version) <= _release(high):
            out.append(f"{name} {version} (tested {low} to {high})")
    return out


def untested_warning(installed: dict[str, str] | None = None) -> str | None:
    """The one start-up line, or None when every version found was tested."""
    outside = untested(installed)
    if not outside:
        return None
    return ("warning: untested versions installed: " + ", ".join(outside)
            + "; if a stage fails, install the tested ones: pip install -c constraints.txt -e .")
