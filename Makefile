# The README's two commands, `make run` and `make test`. Both create .venv, install torch==2.13.0 FIRST
# (the machine's local CPU wheel: an open torch requirement would pull a multi-GB CUDA build), then the
# lab with the exact versions of constraints.txt, so every machine runs what was tested.
PY := .venv/bin/python
PRESET ?= tiny
TORCH := torch==2.13.0
PIP := -m pip install -q --disable-pip-version-check
# The bottom of pyproject's transformers and TRL ranges (lab/versions.py's TESTED; tests/test_versions.py
# keeps the three in step).
LOWEST := transformers==5.17.0 trl==1.16.0
# Extra pins for `make lock`, e.g. PINS='transformers==5.23.0'
PINS ?=

.PHONY: run test setup browser lint lock test-latest test-lowest fresh-clone clean

.venv/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) $(PIP) $(TORCH)
	$(PY) $(PIP) -c constraints.txt -e '.[dev]'
	touch $@

setup: .venv/.installed

run: setup
	.venv/bin/lab pipeline --preset $(PRESET)

# The report test opens the HTML in headless Chromium (Debian's chromium + chromium-driver).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }; }

test: setup browser lint
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15

# The rules the code follows (ruff) and the one-way imports between its layers (import-linter); both
# configured in pyproject.toml, both part of make test and so of CI.
lint: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports --no-cache

# constraints.txt anew: what pip resolves today for pyproject's ranges (plus PINS) in a fresh venv beside
# the local torch, every package at one exact version; torch stays out (installed first, from the wheel).
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python $(PIP) $(TORCH)
	PIP_NO_CACHE_DIR=1 .venv-lock/bin/python $(PIP) -e '.[dev]' $(PINS)
	{ echo "# Exact versions for make run / make test (make lock PINS='$(PINS)' made it; torch==2.13.0 is installed first)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -viE '^(torch|pip|setuptools|wheel)=='; \
	} > constraints.txt
	rm -rf .venv-lock

# The whole suite on the newest releases pyproject allows, and on the lowest transformers and TRL it allows
# (the rest as pip resolves beside them: transformers 5.17 needs an older huggingface_hub than the lock's),
# each in a venv of its own; torch stays at the local 2.13.0.
test-latest: browser
	rm -rf .venv-latest && python3 -m venv .venv-latest
	.venv-latest/bin/python $(PIP) $(TORCH)
	.venv-latest/bin/python $(PIP) --upgrade -e '.[dev]'
	.venv-latest/bin/python -m pip list 2>/dev/null | grep -iE '^(transformers|trl|peft|accelerate|datasets) '
	.venv-latest/bin/python -m pytest -n 2 --dist loadgroup

test-lowest: browser
	rm -rf .venv-lowest && python3 -m venv .venv-lowest
	.venv-lowest/bin/python $(PIP) $(TORCH)
	.venv-lowest/bin/python $(PIP) -e '.[dev]' $(LOWEST)
	.venv-lowest/bin/python -m pip list 2>/dev/null | grep -iE '^(transformers|trl) '
	.venv-lowest/bin/python -m pytest -n 2 --dist loadgroup

# A new user's first hour: a fresh clone of the committed HEAD, a fresh venv, no pip cache; both README
# commands, timed. Nothing of this machine's .venv or pip cache can leak in.
fresh-clone:
	bash scripts/fresh_clone.sh

clean:
	rm -rf .venv .venv-latest .venv-lowest .venv-lock runs
