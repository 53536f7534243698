"""The pipeline's stage graph: complete stages are skipped, summaries refresh when a parent is newer."""

import os
import time

import pytest

import lab.pipeline as pipeline
from lab.errors import LabError
from lab.pipeline import Stage, provide, run_pipeline
from lab.presets import Preset
from lab.runs import Run


def test_a_refresh_stage_reruns_only_when_a_parent_completed_after_it(tmp_path, monkeypatch):
    calls = []

    def make(name):
        def fn(run, preset):
            calls.append(name)
            run.mark_complete(name)
        return fn

    monkeypatch.setattr(pipeline, "STAGES", [Stage("a", (), make("a")), Stage("b", (), make("b")),
                                             Stage("summary", ("a", "b"), make("summary"), refresh=True)])
    run = run_pipeline(Preset(), tmp_path, "r")
    assert calls == ["a", "b", "summary"]
    run_pipeline(Preset(), tmp_path, "r")
    assert calls == ["a", "b", "summary"]  # everything complete: nothing runs
    later = time.time() + 5
    os.utime(run.stage_dir("b") / "COMPLETE", (later, later))  # b finished again after the summary
    run_pipeline(Preset(), tmp_path, "r")
    assert calls == ["a", "b", "summary", "summary"]


def test_provide_trains_what_an_experiment_needs_and_the_missing_stages_under_it(tmp_path, monkeypatch):
    calls = []

    def make(name):
        def fn(run, preset):
            assert all(run.is_complete(p) for p in parents[name]), f"{name} ran before its parents"
            calls.append(name)
            run.mark_complete(name)
        return fn

    parents = {"data": (), "base": ("data",), "sft": ("base",), "rm": ("sft",), "other": ("base",)}
    monkeypatch.setattr(pipeline, "STAGES", [Stage(n, p, make(n)) for n, p in parents.items()])
    run = Run.create_or_open(tmp_path / "r", Preset())
    run.mark_complete("data")
    provide(run, Preset(), ("rm",))
    assert calls == ["base", "sft", "rm"]  # in pipeline order; data was complete, "other" is not needed
    provide(run, Preset(), ("rm", "sft"))
    assert calls == ["base", "sft", "rm"]  # all there: nothing trains
    with pytest.raises(LabError, match=r"unknown stage\(s\) \['nosuch'\]"):
        provide(run, Preset(), ("nosuch",))
