"""A run can pretrain on the user's own text instead of the world (e.g. the output of `lab data`)."""

import json

import pytest

from lab.errors import LabError
from lab.pipeline import run_pipeline
from lab.presets import get_preset


def test_files_source_builds_the_corpus_from_user_text(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"{i}.txt").write_text(f"Document {i} talks about rivers, bridges and the valley. " * 3)
    preset = get_preset("tiny", ["data.source=files", f"data.corpus_paths={docs}", "tokenizer.vocab_size=300"])
    run = run_pipeline(preset, tmp_path / "runs", "user", until="tokenizer")
    manifest = json.loads((run.stage_dir("data") / "manifest.json").read_text())
    assert manifest["source"] == "files" and manifest["documents"] == 60
    assert run.completion("data") == {**run.completion("data"), "train_docs": 59, "heldout_docs": 1}
    assert run.is_complete("tokenizer")


def test_files_source_without_paths_names_the_missing_setting(tmp_path):
    with pytest.raises(LabError, match="needs data.corpus_paths"):
        run_pipeline(get_preset("tiny", ["data.source=files"]), tmp_path, "x", until="data")


def test_a_user_corpus_gets_the_reading_probes_that_need_no_world_and_says_why_the_rest_are_skipped(tmp_path):
    from test_pretrain import SMALL

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"{i}.txt").write_text(f"Document {i} talks about rivers, bridges and the valley. " * 3)
    preset = get_preset("tiny", SMALL + ["data.source=files", f"data.corpus_paths={docs}"])
    run = run_pipeline(preset, tmp_path / "runs", "user", until="experiments/knowledge")
    reading = json.loads((run.stage_dir("experiments/knowledge") / "reading.json").read_text())
    assert {"induction", "induction_heads", "copy"} <= reading.keys() and "open_book" not in reading
    assert "skipped" in reading and "data.source=files" in reading["skipped"]
    log = [json.loads(line) for line in (run.stage_dir("base") / "logs" / "train.jsonl").read_text().splitlines()]
    evals = [r for r in log if "heldout_loss" in r]
    assert evals and all("induction_score" in r and "open_book_corpus" not in r for r in evals)
    assert not (run.stage_dir("experiments/knowledge") / "table.md").exists()
