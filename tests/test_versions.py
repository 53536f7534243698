"""Reproducible installs: constraints.txt pins every dependency within pyproject's ranges, the tested
range of transformers/TRL (lab/versions.py) agrees with pyproject and the Makefile, and `lab` warns in
one line, without importing torch, when it finds versions outside that range."""

import re
import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from lab.versions import TESTED, untested_warning

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def test_every_dependency_is_pinned_inside_its_range_and_torch_is_left_to_the_local_wheel():
    pins = locked()
    assert "torch" not in pins  # installed first, from the machine's wheel; a pin here could pull CUDA
    for req in requirements():
        name = canonicalize_name(req.name)
        if name == "torch":
            assert req.specifier.contains("2.13.0")
            continue
        assert name in pins, f"{req.name} is not in constraints.txt (run make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} is outside {req}"


def test_the_tested_range_starts_at_pyprojects_lower_bounds_and_holds_the_locked_versions():
    lower = {}
    for req in requirements():
        for spec in req.specifier:
            if spec.operator == ">=":
                lower[canonicalize_name(req.name)] = Version(spec.version)
    makefile = (ROOT / "Makefile").read_text()
    lowest = dict(re.findall(r"(\w+)==([\d.]+)", re.search(r"^LOWEST := (.*)$", makefile, re.M).group(1)))
    pins = locked()
    for name, (low, high) in TESTED.items():
        assert Version(low) == lower[name], f"{name}: TESTED starts at {low}, pyproject at {lower[name]}"
        assert lowest[name] == low, f"{name}: the Makefile's LOWEST says {lowest[name]}, TESTED {low}"
        assert Version(low) <= Version(pins[name]) <= Version(high)


def test_versions_outside_the_tested_range_get_one_line_naming_them():
    assert untested_warning({"transformers": "5.25.0", "trl": "1.16.0"}) is None
    assert untested_warning({}) is None  # not installed: the import fails on its own, more clearly
    line = untested_warning({"transformers": "5.26.0.dev0", "trl": "1.16.0"})
    assert line.count("\n") == 0 and "transformers 5.26.0.dev0 (tested 5.17.0 to 5.25.0)" in line
    assert "trl" not in line.split(";")[0] and "constraints.txt" in line
    both = untested_warning({"transformers": "5.3.1", "trl": "2.0.0"})
    assert "transformers 5.3.1 (tested 5.17.0 to 5.25.0), trl 2.0.0 (tested 1.16.0 to 1.16.0)" in both


def test_lab_warns_once_at_start_up_and_help_loads_no_torch():
    script = (
        "import sys, importlib.metadata as m\n"
        "real = m.version\n"
        "m.version = lambda name: '9.0.0' if name == 'transformers' else real(name)\n"
        "sys.argv = ['lab', '--help']\n"
        "from lab.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    warnings = [line for line in proc.stderr.splitlines() if "untested versions" in line]
    assert len(warnings) == 1 and "transformers 9.0.0 (tested 5.17.0 to 5.25.0)" in warnings[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip().endswith("no torch") and "Usage" in proc.stdout
