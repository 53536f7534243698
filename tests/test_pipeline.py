"""The pipeline's stage graph: complete stages are skipped, summaries refresh when a parent is newer."""

import os
import time

import lab.pipeline as pipeline
from lab.pipeline import Stage, run_pipeline
from lab.presets import Preset


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
