"""The eval harness: runs on any HF causal LM, writes the documented files, compares paired samples."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from evals.harness import SUITES, EvalContext, compare, resolve_suites, run_suite
from evals.stats import paired_difference, wilson_interval
from lab.errors import LabError
from lab.tokenizer import train_tokenizer
from tasks.identity import Identity, system_message
from tasks.world import WorldConfig, build_world


def test_paired_difference_and_wilson_on_known_numbers():
    r = paired_difference([1, 1, 0, 0], [0, 1, 0, 0])
    assert r["difference"] == pytest.approx(-0.25) and r["n"] == 4
    assert r["stderr"] == pytest.approx((0.25 / 4) ** 0.5)  # sample variance of (-1, 0, 0, 0) is 0.25
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35


def test_unknown_suite_lists_the_valid_ones():
    with pytest.raises(LabError, match="suites: hallucination, identity"):
        resolve_suites("nosuch")
    assert [s.name for s in resolve_suites("all")] == list(SUITES)


@pytest.fixture(scope="module")
def outside_model(tmp_path_factory):
    """A random plain LlamaForCausalLM with a lab tokenizer, saved the way a user's model would be."""
    world = build_world(WorldConfig(people_per_exposure=4, exposures=(0, 4)))
    texts = [world.biography(p, 0) for p in world.people if p.k] + [q.text for p in world.people for q in world.questions(p)]
    tok = train_tokenizer(texts * 3, vocab_size=400)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                         pad_token_id=0, bos_token_id=1, eos_token_id=2))
    path = tmp_path_factory.mktemp("llama")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model.eval(), tok, EvalContext(world, Identity(), system_message(Identity()))


def test_harness_runs_on_a_plain_llama_and_writes_both_files(outside_model, tmp_path):
    model, tok, ctx = outside_model
    results = run_suite(model, tok, SUITES["hallucination"], ctx, tmp_path, limit=12, seed=3)
    assert results["n"] == 12 and results["suite_version"] == "1" and results["samples_per_s"] > 0
    for metric in ("correct", "incorrect", "not_attempted"):
        m = results["metrics"][metric]
        assert {"value", "stderr", "ci95", "n"} <= m.keys() and 0 <= m["value"] <= 1
    total = sum(results["metrics"][g]["value"] for g in ("correct", "incorrect", "not_attempted"))
    assert total == pytest.approx(1.0)
    rows = [json.loads(line) for line in (tmp_path / "hallucination" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {"id", "prompt", "response", "gold", "grade", "extras"} <= rows[0].keys()
    again = run_suite(model, tok, SUITES["hallucination"], ctx, tmp_path / "again", limit=12, seed=3)
    assert again["metrics"] == results["metrics"]  # same seed, same subset, greedy: same numbers


def write_samples(folder, values):
    (folder / "s").mkdir(parents=True)
    (folder / "s" / "samples.jsonl").write_text("".join(json.dumps({"id": str(i), "m": v}) + "\n"
                                                      for i, v in enumerate(values)))


def test_compare_pairs_samples_by_id_and_rejects_corrupt_files(tmp_path):
    write_samples(tmp_path / "a", [1, 1, 1, 0])
    write_samples(tmp_path / "b", [0, 1, 0, 0])
    r = compare(tmp_path / "a", tmp_path / "b", "s", "m")
    assert r["difference"] == pytest.approx(-0.5) and r["n"] == 4
    with open(tmp_path / "b" / "s" / "samples.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(LabError, match="not valid JSON"):
        compare(tmp_path / "a", tmp_path / "b", "s", "m")


def test_prompts_too_long_for_the_model_are_skipped_and_counted(outside_model, tmp_path):
    model, tok, ctx = outside_model
    model.config.max_position_embeddings = 40  # shorter than the system message + question + answer room
    try:
        results = run_suite(model, tok, SUITES["identity"], ctx, tmp_path)
    finally:
        model.config.max_position_embeddings = 512
    assert results["n"] == 0 and results["skipped_too_long"] == len(SUITES["identity"].samples(ctx))


def test_final_answer_reads_the_marked_answer():
    from evals.harness import final_answer

    assert final_answer("Letters: s(1) o(2)\nAnswer: so.") == "so"
    assert final_answer('  "Three" ') == "three"
    assert final_answer("Answer: 1\nAnswer: 2") == "2"


def test_spelling_suite_runs_three_conditions_through_the_tool_loop(outside_model, tmp_path):
    model, tok, ctx = outside_model
    results = run_suite(model, tok, SUITES["spelling"], ctx, tmp_path, limit=30, seed=1)
    assert results["n"] == 30
    assert set(results["by_group"]["condition"]) <= {"direct", "steps", "tool"}
    assert {"task", "band"} <= results["by_group"].keys()
    rows = [json.loads(line) for line in (tmp_path / "spelling" / "samples.jsonl").read_text().splitlines()]
    assert all("tool_calls" in r for r in rows)
