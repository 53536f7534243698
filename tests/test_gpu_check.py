"""scripts/gpu_check.sh, the prepared GPU command: its CPU dry run (the same sequence at a tiny shape, without
wordfreq, as on the GPU machine) writes the one JSON, with every stage, the benches and the extrapolation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.presets import get_preset

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.xdist_group("gpu-preset")  # beside the gpu preset's test, on one worker


def test_the_dry_run_writes_the_json_with_every_stage_and_bench(tmp_path):
    from lab.pipeline import STAGE_NAMES

    env = {**os.environ, "OUT": str(tmp_path / "out"), "RUNS_DIR": str(tmp_path / "runs"), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}  # one core: pytest's other worker has the other
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["errors"] == {} and result["pipeline_complete"] and result["stages_missing"] == []
    assert list(result["stages"]) == STAGE_NAMES
    base = result["stages"]["base"]
    assert base["tokens_per_s"] > 0 and base["steps"] == 20 and base["full_steps"] == 1200
    for stage in ("sft", "sft-idk", "sft-math", "rl-math", "rlhf-grpo", "rlhf-ppo", "rlhf-rloo"):
        s = result["stages"][stage]
        assert s["steps"] == 2 and s["seconds_per_step"] > 0 and s["extrapolated_s"] > s["seconds"], stage
    assert result["stages"]["rl-math"]["parts"]["lab.train.rl_math.heldout_accuracy"]["seconds"] > 0
    assert set(result["generate"]) == {"1", "2"} and result["train"]["ratio"] > 0 and result["verify"]["checks"] == 50
    assert all(g["ratio"] > 0 for g in result["generate"].values())
    assert result["pipeline_extrapolated_s"] > sum(s["seconds"] for s in result["stages"].values())
    assert result["environment"]["torch"] and (tmp_path / "out" / "gpu_check.log").exists()
    json_file = str(tmp_path / "out" / "gpu_check.json")
    table = subprocess.run([sys.executable, "scripts/gpu_check.py", "--table", json_file], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    rl_steps = get_preset("gpu").rl.steps
    assert table.returncode == 0 and f"| rl-math: seconds per step (2 of {rl_steps} steps run) |" in table.stdout
    assert "| generation, batch 2," in table.stdout  # the bench rows, as `lab bench table` renders them
    bench_table = subprocess.run([sys.executable, "-m", "lab.cli", "bench", "table", json_file], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
    assert bench_table.returncode == 0 and "generation, batch 2" in bench_table.stdout


@pytest.mark.parametrize("args, message", [
    (["bash", str(SCRIPT), "--bogus"], "unknown option '--bogus'"),
    (["bash", str(SCRIPT), "--dry-run", "--fetch-wheels"], "one option at most"),
    ([sys.executable, "scripts/gpu_check.py", "--table", "nowhere.json"], "nowhere.json does not exist"),
    ([sys.executable, "scripts/gpu_check.py"], "--out DIR is required"),
])
def test_bad_input_is_one_clear_line(args, message):
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    assert proc.returncode == 2 and lines[-1].startswith("error:") and message in lines[-1], proc.stderr
