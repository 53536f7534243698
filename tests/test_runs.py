"""Run directories: atomic checkpoints, recorded settings, refusal to mix configurations."""

import json

import pytest

from lab.errors import LabError
from lab.presets import get_preset
from lab.runs import (
    RUN_FORMAT_VERSION,
    Run,
    atomic_dir,
    resolve_stage,
    settle_dir,
    tidy_trainer_checkpoints,
    write_text_atomic,
)


def test_atomic_dir_replaces_the_old_folder_only_on_success(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("killed")
    assert (target / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folders left behind
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def dead_pid() -> int:
    """The pid of a process that has exited: what a killed writer's leftovers are named with."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def folder(path, text):
    path.mkdir()
    (path / "a").write_text(text)
    return path


@pytest.mark.parametrize("killed_at,expected", [
    ("writing", "old"),  # the new version half-written: the old one stays, the temporary goes
    ("after_ready", "new"),  # the new one complete, the old not yet moved aside
    ("between_renames", "new"),  # the old one moved aside, the complete new one not yet in place
    ("first_write_between_renames", "new"),  # no old version at all
])
def test_settle_dir_leaves_the_newest_complete_version_after_a_kill_anywhere(tmp_path, killed_at, expected):
    pid, final = dead_pid(), tmp_path / "checkpoint"
    if killed_at != "first_write_between_renames":
        folder(tmp_path / (f".checkpoint.old-{pid}" if killed_at == "between_renames" else "checkpoint"), "old")
    folder(tmp_path / f".checkpoint.{'tmp' if killed_at == 'writing' else 'ready'}-{pid}", "new")
    settle_dir(final)
    assert (final / "a").read_text() == expected and [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    settle_dir(final)  # idempotent
    assert (final / "a").read_text() == expected


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    import os

    folder(tmp_path / "checkpoint", "old")
    live = folder(tmp_path / f".checkpoint.tmp-{os.getppid()}", "half")  # our parent: alive, not us
    settle_dir(tmp_path / "checkpoint")
    assert live.exists()


def test_stale_temporaries_of_a_file_are_removed_on_the_next_write(tmp_path):
    stale = tmp_path / f".log.json.tmp-{dead_pid()}"
    stale.write_text("{half")
    write_text_atomic(tmp_path / "log.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["log.json"]


def test_trainer_checkpoints_without_a_whole_trainer_state_are_not_resumed_from_and_are_cleared(tmp_path):
    for step, state in ((2, "{}"), (4, "{}"), (6, '{"global_step": 6, "log_hi'), (8, None)):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_text("weights")
        if state is not None:
            (ckpt / "trainer_state.json").write_text(state)
    assert tidy_trainer_checkpoints(tmp_path) == str(tmp_path / "checkpoint-4")  # 6 torn, 8 never finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]


def test_config_records_version_commit_packages_and_settings(tmp_path):
    run = Run.create_or_open(tmp_path / "r", get_preset("tiny"))
    cfg = json.loads(run.config_path.read_text())
    assert cfg["run_format_version"] == RUN_FORMAT_VERSION
    assert {"git_commit", "packages", "seed", "settings"} <= cfg.keys()
    assert cfg["packages"]["torch"] and cfg["settings"]["pretrain"]["lr"] == get_preset("tiny").pretrain.lr


def test_reopening_with_other_settings_is_refused(tmp_path):
    Run.create_or_open(tmp_path / "r", get_preset("tiny"))
    Run.create_or_open(tmp_path / "r", get_preset("tiny"))  # same settings: fine
    with pytest.raises(LabError, match="pretrain.lr"):
        Run.create_or_open(tmp_path / "r", get_preset("tiny", ["pretrain.lr=0.1"]))


def test_a_run_from_another_format_version_is_refused(tmp_path):
    run = Run.create_or_open(tmp_path / "r", get_preset("tiny"))
    cfg = json.loads(run.config_path.read_text())
    cfg["run_format_version"] = 999
    run.config_path.write_text(json.dumps(cfg))
    with pytest.raises(LabError, match="run format 999"):
        Run.open_existing(tmp_path / "r")


def test_stage_paths_must_exist_and_be_complete(tmp_path):
    run = Run.create_or_open(tmp_path / "r", get_preset("tiny"))
    with pytest.raises(LabError, match="does not exist"):
        resolve_stage(tmp_path / "r" / "base")
    run.stage_dir("base").mkdir()
    with pytest.raises(LabError, match="not complete"):
        resolve_stage(tmp_path / "r" / "base")
    run.mark_complete("base")
    assert resolve_stage(tmp_path / "r" / "base")[1] == "base"


def test_a_runs_preset_is_rebuilt_from_its_config(tmp_path):
    from lab.presets import run_preset

    preset = get_preset("gpu", ["data.world.exposures=0,2", "sft.identity.name=Quill", "sample.prompts=a,b"])
    Run.create_or_open(tmp_path / "r", preset)
    assert run_preset(tmp_path / "r") == preset  # tuples, nested sections and dict settings come back exactly
    assert run_preset(tmp_path / "nothing") is None
