#!/usr/bin/env bash
# One prepared GPU command (issue 19): on one H100/H200, in under 7 minutes wall, every stage of the gpu
# preset's pipeline (200 pretraining steps at the gpu shape, ~20 steps of each later stage,
# evals on 64 samples a suite), then `lab bench train`, `generate` and `verify`, into ONE JSON:
# $OUT/gpu_check.json (per-stage seconds and seconds per step, pretraining tokens/s and MFU, the bench ratios,
# versions, the GPU's name, and the whole pipeline's time extrapolated to the preset's full step counts).
# scripts/gpu_check.py does the work and says what is cut and how it extrapolates; this script gets it there.
# The 7 minutes are an estimate (no GPU was lent when this was written): the check stops starting stages once
# its time budget (390 s, less 150 s kept for the benches) is spent, and the JSON names what it skipped; it
# is rewritten after every stage, so a run killed at the tool's timeout still brings back what it measured.
#
# Usage, from the repository root:
#   scripts/gpu_check.sh --fetch-wheels   # here, once (network): the wheels the GPU machine lacks, into .gpu-wheels/
#   nice -n 19 scripts/gpu_check.sh --dry-run   # here, CPU: the same sequence at a tiny shape (~1-2 min);
#                                         # JSON to $OUT, or to runs/gpu-check-out/ when OUT is unset
#   scripts/gpu_check.sh                  # on the GPU machine: install the wheels, run, JSON (+ log) to $OUT
#   scripts/gpu_check.py --table $OUT/gpu_check.json   # Markdown rows for the README from the JSON
#   lab bench table $OUT/gpu_check.json [--readme README.md]   # the benches' rows alone, as for `lab bench all`
# With this workplace's device tool (it runs commands in the repo root; what lands in $OUT comes back):
#   run(command="scripts/gpu_check.sh", carry=[".gpu-wheels"], timeout_s=540)
#
# The GPU machine (torch 2.11, transformers 5.17, Python 3.12; no network) has no trl, datasets or wordfreq,
# and what is carried to it is capped at 64 MiB. So the check carries only the pure-Python wheels it lacks,
# pinned to constraints.txt, installed with `pip install --no-index --find-links .gpu-wheels --no-deps` into a
# folder of their own on PYTHONPATH (the machine's packages stay as they are). wordfreq (a ~54 MB wheel) is not
# carried: tasks/spelling.py reads the same word list from tasks/english_words.tsv when it is missing.
# The wheels (--fetch-wheels prints the sizes again):
#   trl-1.16.0-py3-none-any.whl               948,205 bytes
#   datasets-5.2.0-py3-none-any.whl           608,276 bytes
#   dill-0.4.1-py3-none-any.whl               120,019 bytes
#   multiprocess-0.70.19-py312-none-any.whl   150,281 bytes  (py311 build beside it: 144,457 bytes)
#   together about 1.9 MiB; the working tree that travels with them is about 6 MiB.
# Everything else the stages import is on that machine's image (accelerate 1.15, peft, pyarrow, pandas, xxhash,
# tokenizers, safetensors, sympy, matplotlib, rich, tensorboard); the preflight prints the versions that matter
# (datasets 5.2 asks for pyarrow >= 24 and fsspec <= 2026.9.0, which --no-deps does not check).
# TRL 1.16.0 with transformers 5.17.0 is the bottom of the tested range (lab/versions.py; `make test-lowest`);
# the dry run passes with both in .venv-lowest.
set -euo pipefail
cd "$(dirname "$0")/.."

USAGE="usage: scripts/gpu_check.sh [--dry-run | --fetch-wheels]"
WHEELS=(trl datasets dill multiprocess)  # what the GPU machine lacks, at constraints.txt's versions
WHEEL_DIR=.gpu-wheels
SITE=/tmp/gpu-check-site  # the carried packages, installed apart from the machine's own

die() { echo "error: $*" >&2; exit 2; }

pins() {  # name==version for each carried package, read from constraints.txt
  local name line
  for name in "${WHEELS[@]}"; do
    line=$(grep -i "^${name}==" constraints.txt) || die "constraints.txt pins no version of ${name}"
    echo "$line"
  done
}

fetch_wheels() {
  local python=python3 pins_text pins_list py
  [ -x .venv/bin/python ] && python=.venv/bin/python
  pins_text=$(pins)  # (apart from `local`, so a missing pin stops the script)
  mapfile -t pins_list <<< "$pins_text"
  rm -rf "$WHEEL_DIR" && mkdir -p "$WHEEL_DIR"
  for py in 3.12 3.11; do  # 3.12 is the GPU image's; multiprocess builds one wheel per Python
    "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$py" \
      --implementation cp -d "$WHEEL_DIR" "${pins_list[@]}" 2>&1 | grep -v "^WARNING: Location" || true
  done
  for pin in "${pins_list[@]}"; do  # every pin must have come down
    compgen -G "$WHEEL_DIR/${pin%%==*}-${pin##*==}-*.whl" > /dev/null || die "no wheel of $pin was downloaded"
  done
  local total=0 size wheel
  for wheel in "$WHEEL_DIR"/*.whl; do
    size=$(stat -c %s "$wheel")
    total=$((total + size))
    printf "  %-42s %12s bytes\n" "${wheel##*/}" "$size"
  done
  printf "  %-42s %12s bytes (%s KiB)\n" together "$total" "$((total / 1024))"
}

gpu_check() {
  local pins_text pins_list
  OUT=${OUT:-runs/gpu-check-out}
  mkdir -p "$OUT"
  [ -d "$WHEEL_DIR" ] || die "no $WHEEL_DIR/: run scripts/gpu_check.sh --fetch-wheels here first and carry it"
  python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || die "torch sees no CUDA GPU here; for the CPU check run scripts/gpu_check.sh --dry-run"
  pins_text=$(pins)
  mapfile -t pins_list <<< "$pins_text"
  python3 -m pip install -q --disable-pip-version-check --no-index --find-links "$WHEEL_DIR" --no-deps --no-compile \
    --no-cache-dir --upgrade --target "$SITE" "${pins_list[@]}"
  export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
  python3 - <<'EOF'
import importlib.metadata as m
import sys


def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return "missing"


names = ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "pyarrow", "fsspec", "huggingface_hub",
         "tokenizers")
print("preflight: " + ", ".join(f"{n} {version(n)}" for n in names))
try:  # a carried wheel that does not fit this machine's packages breaks here, in one line
    import datasets, torch, transformers, trl  # noqa: F401,E401
except Exception as e:
    sys.exit(f"error: the stages' packages do not import here: {type(e).__name__}: {e}")
print("preflight: GPU", torch.cuda.get_device_name(0))
EOF
  python3 scripts/gpu_check.py --out "$OUT" --runs-dir /tmp/gpu-check-runs 2>&1 | tee "$OUT/gpu_check.log"
}

dry_run() {  # PYTHON and RUNS_DIR (where the check's run goes, default runs/) may be set, as the test does
  local python=${PYTHON:-python3}
  [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && python=.venv/bin/python
  OUT=${OUT:-runs/gpu-check-out}
  mkdir -p "$OUT"
  PYTHONUNBUFFERED=1 "$python" scripts/gpu_check.py --dry-run --out "$OUT" --runs-dir "${RUNS_DIR:-runs}" 2>&1 \
    | tee "$OUT/gpu_check.log"
}

[ $# -le 1 ] || die "one option at most; $USAGE"
case "${1:-}" in
  "") gpu_check ;;
  --dry-run) dry_run ;;
  --fetch-wheels) fetch_wheels ;;
  -h|--help) echo "$USAGE"; sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown option '$1'; $USAGE" ;;
esac
