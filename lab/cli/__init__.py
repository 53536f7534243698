"""The `lab` command line (typer + rich): `lab` runs `main`, and so does `python -m lab.cli`.

lab/cli/main.py holds the app and the run-level commands (pipeline, stages, eval, report, data, chat,
inspect); lab/cli/experiments.py `lab rl` and `lab experiment`; lab/cli/bench.py `lab bench`;
lab/cli/options.py the options they share. Commands import their stage or experiment inside the
command, so `lab --help` loads no torch."""

from lab.cli.main import main

__all__ = ["main"]
