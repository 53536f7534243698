"""The lab's structure holds: the settings and the CLI load without torch (start-up stays fast), and the
import layers hold (`make lint` runs import-linter's contract from pyproject.toml; this checks it too, so
a broken layer also fails a plain pytest run)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


def test_the_presets_and_lab_help_load_no_torch():
    assert "torch" not in loaded_after("import lab.presets; lab.presets.get_preset('gpu')")
    help_run = "sys.argv = ['lab', '--help']\nfrom lab.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass"
    loaded = loaded_after(help_run)
    assert "typer" in loaded and not {"torch", "transformers", "trl"} & loaded


def test_imports_go_one_way_layer_by_layer():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 kept, 0 broken" in proc.stdout
