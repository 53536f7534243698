# The README's two commands. Both create .venv and install torch==2.13.0 FIRST: it is the machine's
# local CPU wheel, and an open torch requirement would pull a multi-GB CUDA build.
PY := .venv/bin/python
PRESET ?= tiny

.PHONY: run test setup clean

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

setup: .venv/.installed

run: setup
	.venv/bin/lab pipeline --preset $(PRESET)

test: setup
	$(PY) -m pytest -n 2 --durations=15

clean:
	rm -rf .venv runs
