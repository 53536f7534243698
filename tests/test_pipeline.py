"""The pipeline's stage graph: complete stages are skipped, summaries refresh when a parent is newer."""

import os
import time

import pytest

from lab.errors import LabError
from lab.pipeline import provide, run_pipeline
from lab.presets import Preset, preset_type
from lab.runs import Run
from lab.stages import Stage

# The toy pipelines' stages: each calls the function the test put here for its name (a Stage names its function
# as "module:function"; this module is imported as __name__).
TOY: dict = {}


def toy_stage(settings, context):
    assert settings is None  # a toy stage declares no settings section
    TOY[context.stage](context.run)


def toy(name, parents=(), **kwargs):
    return Stage(name, parents, f"{__name__}:toy_stage", **kwargs)


def test_a_refresh_stage_reruns_only_when_a_parent_completed_after_it(tmp_path, monkeypatch):
    calls = []

    def make(name):
        def fn(run):
            calls.append(name)
            run.mark_complete(name)
        return fn

    stages = [toy("a"), toy("b"), toy("summary", ("a", "b"), refresh=True)]
    monkeypatch.setattr(f"{__name__}.TOY", {s.name: make(s.name) for s in stages})
    preset = preset_type(stages)()
    run = run_pipeline(preset, tmp_path, "r", stages=stages)
    assert calls == ["a", "b", "summary"]
    run_pipeline(preset, tmp_path, "r", stages=stages)
    assert calls == ["a", "b", "summary"]  # everything complete: nothing runs
    later = time.time() + 5
    os.utime(run.stage_dir("b") / "COMPLETE", (later, later))  # b finished again after the summary
    run_pipeline(preset, tmp_path, "r", stages=stages)
    assert calls == ["a", "b", "summary", "summary"]


def test_provide_trains_what_an_experiment_needs_and_the_missing_stages_under_it(tmp_path, monkeypatch):
    calls = []

    def make(name):
        def fn(run):
            assert all(run.is_complete(p) for p in parents[name]), f"{name} ran before its parents"
            calls.append(name)
            run.mark_complete(name)
        return fn

    parents = {"data": (), "base": ("data",), "sft": ("base",), "rm": ("sft",), "other": ("base",)}
    stages = [toy(n, p) for n, p in parents.items()]
    monkeypatch.setattr(f"{__name__}.TOY", {n: make(n) for n in parents})
    run = Run.create_or_open(tmp_path / "r", Preset())
    run.mark_complete("data")
    provide(run, Preset(), ("rm",), stages=stages)
    assert calls == ["base", "sft", "rm"]  # in pipeline order; data was complete, "other" is not needed
    provide(run, Preset(), ("rm", "sft"), stages=stages)
    assert calls == ["base", "sft", "rm"]  # all there: nothing trains
    with pytest.raises(LabError, match=r"unknown stage\(s\) \['nosuch'\]"):
        provide(run, Preset(), ("nosuch",), stages=stages)
