"""The run lock (lab/run_lock.py): a second writer of a run is refused in one line naming the holder, a lock
whose holder was SIGKILLed is taken over, a file that is not the lab's lock is left alone, and a process may
nest its own holds."""

import json
import signal
import subprocess
import sys
import time

import pytest

from lab.errors import LabError
from lab.run_lock import LOCK_NAME, run_lock
from lab.stage_files import run_root_of

HOLD = """
import sys, time
from pathlib import Path
from lab.run_lock import run_lock
with run_lock(Path(sys.argv[1]), "lab pipeline --name conc"):
    print("held", flush=True)
    time.sleep(120)
"""


def lab(*args):
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def run_dir(tmp_path):
    """A run directory with one complete stage, enough for `lab report` to want to write into it."""
    root = tmp_path / "conc"
    (root / "data").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"run_format_version": 1, "settings": {}}))
    (root / "data" / "COMPLETE").write_text("{}")
    return root


@pytest.fixture
def holder(run_dir):
    """Another process holding the run's lock until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_naming_the_holder(run_dir, holder):
    with pytest.raises(LabError, match=f"run .*conc is in use by pid {holder.pid} on .* \\(`lab pipeline --name conc`, "
                                       "started 20"):
        with run_lock(run_dir):
            pass
    for args in (("pipeline", "--preset", "tiny", "--name", "conc", "--runs-dir", str(run_dir.parent)),
                 ("report", str(run_dir)), ("experiment", "scaling", str(run_dir))):
        done = lab(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("error: run ") and f"pid {holder.pid}" in done.stderr
    assert not (run_dir / "report").exists() and sorted(p.name for p in run_dir.iterdir()) == \
        ["config.json", "data", LOCK_NAME]


def test_a_killed_holders_lock_is_taken_over(run_dir, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    start = time.monotonic()
    with run_lock(run_dir, "lab pretrain"):
        info = json.loads((run_dir / LOCK_NAME).read_text())
        assert info["command"] == "lab pretrain" and info["pid"] != holder.pid
    assert time.monotonic() - start < 1.0  # taken over at once, not after a timeout


def test_a_file_that_is_not_the_labs_lock_is_left_alone(run_dir):
    (run_dir / LOCK_NAME).write_text("owned by rsync\n")
    with pytest.raises(LabError, match="is not the lab's run lock \\(it holds 'owned by rsync'\\); it was left as it is"):
        with run_lock(run_dir):
            pass
    assert (run_dir / LOCK_NAME).read_text() == "owned by rsync\n"


def test_a_process_nests_its_own_holds_and_releases_at_the_end(run_dir):
    with run_lock(run_dir):
        with run_lock(run_dir):  # `lab pretrain` calls the pipeline, which locks the same run
            pass
        check = subprocess.run([sys.executable, "-c", HOLD, str(run_dir)], capture_output=True, text=True, timeout=60)
        assert check.returncode != 0 and "is in use by pid" in check.stderr  # still held after the inner block
    done = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert done.stdout.readline().strip() == "held"  # released: another process takes it
    finally:
        done.kill()
        done.wait()


def test_outputs_lock_the_run_they_lie_in(run_dir, tmp_path):
    (run_dir / "sft").mkdir()
    (run_dir / "sft" / "config.json").write_text('{"model_type": "labgpt"}')  # a model's config is no run's
    assert run_root_of(run_dir / "sft" / "evals") == run_dir.resolve()
    assert run_root_of(tmp_path / "elsewhere" / "evals") is None  # an eval with --out elsewhere locks only that
