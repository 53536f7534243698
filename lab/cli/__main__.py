"""`python -m lab.cli ...` is `lab ...` (torchrun launches the CLI this way)."""

from lab.cli.main import main

main()
