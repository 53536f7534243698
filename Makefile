# The README's two commands. Both create .venv and install torch==2.13.0 FIRST: it is the machine's
# local CPU wheel, and an open torch requirement would pull a multi-GB CUDA build.
PY := .venv/bin/python
PRESET ?= tiny

.PHONY: run test setup browser clean

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
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

test: setup browser
	$(PY) -m pytest -n 2 --durations=15

clean:
	rm -rf .venv runs
