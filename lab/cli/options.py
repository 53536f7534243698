"""What every `lab` command module shares: the console, the common options, and preset loading."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()

PresetOpt = typer.Option("tiny", "--preset", "-p", help="tiny (2 CPU cores) or gpu (one H100-class GPU)")
NameOpt = typer.Option(None, "--name", help="run name (default: the preset's)")
SetOpt = typer.Option([], "--set", "-s", help="override a setting, e.g. --set pretrain.lr=1e-3 (repeatable)")
RunsOpt = typer.Option(Path("runs"), "--runs-dir", help="where run directories live")


def preset_named(name: str, overrides: list[str]):
    from lab.presets import get_preset

    return get_preset(name, overrides)
