"""Run directories: atomic checkpoints, recorded settings, refusal to mix configurations."""

import json

import pytest

from lab.errors import LabError
from lab.presets import get_preset
from lab.runs import RUN_FORMAT_VERSION, Run, atomic_dir, resolve_stage


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
