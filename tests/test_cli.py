"""The CLI: bad input is one `error:` line and exit status 2, never a traceback."""

import subprocess
import sys

import pytest


def lab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["pipeline", "--preset", "huge"], "unknown preset 'huge'"),
    (["pipeline", "--set", "pretrain.lrr=1"], "unknown setting 'pretrain.lrr'"),
    (["pipeline", "--set", "tokenizer.vocab_size=100", "--runs-dir", "{tmp}"], "smaller than the 7 special tokens"),
    (["sample", "{tmp}/nope"], "does not exist"),
    (["export", "{tmp}", "{tmp}/out"], "holds no model"),
    (["status", "{tmp}"], "not a run directory"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    proc = lab(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_presets_lists_every_setting():
    proc = lab("presets", "tiny")
    assert proc.returncode == 0 and "pretrain.lr = 0.003" in proc.stdout
