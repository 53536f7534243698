"""The eval harness: runs on any HF causal LM, writes the documented files, compares paired samples."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from evals.harness import SUITES, EvalContext, compare, resolve_suites, run_suite
from evals.stats import paired_difference, wilson_interval
from lab.errors import LabError
from lab.model.tokenizer import train_tokenizer
from tasks.identity import Identity, system_message
from tasks.world import WorldConfig, build_world


def test_paired_difference_and_wilson_on_known_numbers():
    r = paired_difference([1, 1, 0, 0], [0, 1, 0, 0])
    assert r["difference"] == pytest.approx(-0.25) and r["n"] == 4
    assert r["stderr"] == pytest.approx((0.25 / 4) ** 0.5)  # sample variance of (-1, 0, 0, 0) is 0.25
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35


def test_unknown_suite_lists_the_valid_ones():
    with pytest.raises(LabError, match="suites: hallucination, spelling, tooluse, math, context, profile, identity, all"):
        resolve_suites("nosuch")
    assert [s.name for s in resolve_suites("all")] == list(SUITES)


def test_the_evals_stage_can_cut_every_suite_to_short_answers():
    from evals.eval_settings import EvalSettings
    from evals.harness import sized

    math = SUITES["math"]
    assert sized(math, EvalSettings()) is math  # 0 = each suite as it is
    assert sized(math, EvalSettings(max_new_tokens=8)).max_new_tokens == 8 and math.max_new_tokens == 192
    assert sized(SUITES["context"], EvalSettings(max_new_tokens=64)).max_new_tokens == 32  # a cap, never a raise
    with pytest.raises(LabError, match="evals.limit and evals.max_new_tokens must be >= 0"):
        sized(math, EvalSettings(limit=-1))


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
    assert results["n"] == 12 and results["suite_version"] == "5" and results["samples_per_s"] > 0
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


def test_a_killed_run_resumes_from_the_per_sample_cache(outside_model, tmp_path, monkeypatch, capsys):
    import evals.harness as harness

    model, tok, ctx = outside_model
    full = run_suite(model, tok, SUITES["hallucination"], ctx, tmp_path / "full", limit=12, seed=2)
    partial = tmp_path / "killed" / "hallucination"
    partial.mkdir(parents=True)
    lines = (tmp_path / "full" / "hallucination" / "samples.jsonl").read_text().splitlines()
    header = json.dumps({"cache_key": full["cache_key"]})
    # as if killed after five samples, in the middle of writing the sixth
    (partial / "samples.partial.jsonl").write_text("\n".join([header, *lines[:5], lines[5][:20]]) + "\n")
    seen = []
    real = harness._evaluate
    monkeypatch.setattr(harness, "_evaluate", lambda m, t, s, c, batch, *a: seen.extend(batch) or real(m, t, s, c, batch, *a))
    resumed = run_suite(model, tok, SUITES["hallucination"], ctx, tmp_path / "killed", limit=12, seed=2)
    assert len(seen) == 7 and resumed["computed"] == 7
    assert "dropped 1 corrupted line" in capsys.readouterr().err
    assert resumed["metrics"]["correct"] == full["metrics"]["correct"] and resumed["n"] == 12
    assert not (partial / "samples.partial.jsonl").exists()
    seen.clear()
    again = run_suite(model, tok, SUITES["hallucination"], ctx, tmp_path / "killed", limit=12, seed=2)
    assert seen == [] and again["n"] == 12  # finished: read back, nothing recomputed
    run_suite(model, tok, SUITES["hallucination"], ctx, tmp_path / "killed", limit=12, seed=3)
    assert len(seen) == 12  # another seed is another key: the old cache is not reused


def test_pass_at_k_and_confidence_are_reported(outside_model, tmp_path):
    model, tok, ctx = outside_model
    r = run_suite(model, tok, SUITES["hallucination"], ctx, tmp_path, limit=6, seed=0, samples_per_prompt=3)
    assert {"pass@1", "pass@2", "pass@3", "ece", "f_score"} <= r["metrics"].keys()
    assert r["metrics"]["pass@1"]["value"] <= r["metrics"]["pass@3"]["value"]
    rows = [json.loads(line) for line in (tmp_path / "hallucination" / "samples.jsonl").read_text().splitlines()]
    closed = [row for row in rows if row["extras"]["condition"] == "closed_book"]
    assert closed and all(0 < row["confidence"] <= 1 for row in closed)
    # pass@k is the canonical closed-book rows' (a held-out wording's grades have fields of their own)
    assert all(row["sampled_n"] == 3 for row in closed if row["extras"]["wording"] == "canonical")


def test_context_suite_changes_exactly_the_asked_attribute(outside_model):
    _, _, ctx = outside_model
    samples = SUITES["context"].samples(ctx)
    by_condition = {c: [s for s in samples if s["extras"]["condition"] == c] for c in ("none", "article", "counterfactual")}
    assert len({len(v) for v in by_condition.values()}) == 1
    for plain, changed in zip(by_condition["article"], by_condition["counterfactual"]):
        a, b = plain["messages"][0]["content"].splitlines(), changed["messages"][0]["content"].splitlines()
        differing = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(differing) == 1 and differing[0][1].endswith(changed["gold"])
        assert changed["gold"] != changed["extras"]["memory"] and plain["gold"] == changed["extras"]["memory"]


def test_tooluse_suite_pairs_each_item_with_and_without_tools(outside_model):
    from tasks.math import split_key, split_of

    _, _, ctx = outside_model
    samples = SUITES["tooluse"].samples(ctx)
    tools = {s["extras"]["item"] for s in samples if s["tools_on"]}
    assert tools == {s["extras"]["item"] for s in samples if not s["tools_on"]}
    for s in samples:
        if s["extras"]["kind"] == "big_arithmetic":
            a, b = s["extras"]["needles"]
            assert split_of(split_key("arithmetic", {"a": int(a), "b": int(b), "op": "*"})) == "heldout"
    grade = SUITES["tooluse"].grade
    sample = next(s for s in samples if s["extras"]["kind"] == "big_arithmetic")
    a, b = sample["extras"]["needles"]
    good = grade(sample, f"Answer: {sample['gold']}", [{"name": "calculator", "argument": f"{a} * {b}", "ok": True}])
    assert sample["extras"]["condition"] == "tools"
    assert good == {"grade": "correct", "correct": True, "called_tool": True, "well_formed": True, "right_tool": True,
                    "argument_faithful": True, "faithful_call": True}
    wrong = grade(sample, "Answer: 1", [{"name": "lookup", "argument": "Mira", "ok": False}])
    assert not wrong["correct"] and not wrong["right_tool"] and not wrong["argument_faithful"]
    assert not wrong["faithful_call"]
    assert grade(sample, "<|tool_call|>calculator\n12", [])["well_formed"] is False
    # every item that needs a tool counts: answering without a call is not a faithful call
    assert grade(sample, f"Answer: {sample['gold']}", [])["faithful_call"] is False
    offline = next(s for s in samples if s["extras"]["kind"] == "big_arithmetic" and not s["tools_on"])
    assert "faithful_call" not in grade(offline, "Answer: 1", [])
    famous = next(s for s in samples if s["extras"]["kind"] == "famous_person" and s["tools_on"])
    assert grade(famous, "x", [{"name": "lookup", "argument": "x", "ok": True}])["unnecessary_call"] is True
    assert grade(famous, "x", [])["unnecessary_call"] is False
    assert "unnecessary_call" not in grade(sample, "x", [])


def test_spelling_conditions_have_tools_only_when_they_say_so(outside_model):
    _, _, ctx = outside_model
    samples = SUITES["spelling"].samples(ctx)
    assert {s["extras"]["condition"] for s in samples if s["tools_on"]} == {"tool"}
    assert {s["extras"]["condition"] for s in samples if not s["tools_on"]} == {"direct", "steps"}


def test_context_asks_every_attribute_and_hallucination_has_a_tools_condition(outside_model):
    _, _, ctx = outside_model
    people = ctx.world.heldout_people()
    context = SUITES["context"].samples(ctx)
    # every question in each condition; one a person also in a held-out wording (tests/test_wording.py)
    assert len(context) == 3 * len(people) * (len(ctx.world.cfg.attributes) + 1)
    samples = SUITES["hallucination"].samples(ctx)
    closed = [s for s in samples if not s["tools_on"] and s["extras"]["wording"] == "canonical"]
    tools = [s for s in samples if s["tools_on"]]
    assert len(closed) == len(people) * len(ctx.world.cfg.attributes)
    assert {s["extras"]["k"] for s in tools} == {0, max(p.k for p in people)}
    assert all(s["extras"]["condition"] == "tools" and s["id"].endswith("|tools") for s in tools)
    unseen = next(s for s in tools if s["extras"]["k"] == 0)
    graded = SUITES["hallucination"].grade(unseen, "Lisbon" if unseen["gold"] != "Lisbon" else "Oslo",
                                           [{"name": "lookup", "argument": unseen["id"].split("|")[0], "ok": True}])
    assert graded["hallucinated_unseen_with_tools"] and graded["looked_up"] and "hallucinated_unseen" not in graded


def test_user_suite_files_jsonl_tsv_choice_and_perplexity(outside_model, tmp_path):
    model, tok, ctx = outside_model
    rows = [{"id": "a", "q": "Where was Mira born?", "city": "Oslo", "options": ["Oslo", "Lyon"]},
            {"id": "b", "q": "Where was Tam born?", "city": "Lyon", "options": ["Oslo", "Lyon"]}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "cities", "data": "data.jsonl", "prompt": "{q} Answer:", "gold": "city", "grader": "exact"}
    (tmp_path / "cities.json").write_text(json.dumps(spec))
    (tmp_path / "choice.json").write_text(json.dumps(spec | {"name": "choice", "grader": "choice", "choices": "options"}))
    (tmp_path / "text.tsv").write_text("id\ttext\n1\tMira was born in Oslo.\n")
    (tmp_path / "ppl.json").write_text(json.dumps({"name": "ppl", "data": "text.tsv", "grader": "perplexity"}))
    cities, choice, ppl = resolve_suites(",".join(str(tmp_path / f) for f in ("cities.json", "choice.json", "ppl.json")))
    r = run_suite(model, tok, cities, ctx, tmp_path / "out")
    assert r["n"] == 2 and r["metrics"]["correct"]["n"] == 2
    r = run_suite(model, tok, choice, ctx, tmp_path / "out")
    picked = [json.loads(line) for line in (tmp_path / "out" / "choice" / "samples.jsonl").read_text().splitlines()]
    assert all(p["response"] in ("Oslo", "Lyon") and len(p["option_logprobs"]) == 2 for p in picked)
    assert r["metrics"]["correct"]["value"] == sum(p["response"] == p["gold"] for p in picked) / 2
    r = run_suite(model, tok, ppl, ctx, tmp_path / "out")
    assert 1 < r["metrics"]["perplexity"]["value"] < 2 * len(tok)


@pytest.mark.parametrize("spec, message", [
    ({"data": "data.jsonl", "grader": "vibes"}, "unknown grader 'vibes'; graders: exact"),
    ({"data": "data.jsonl", "prompt": "{question}"}, "needs field 'question'"),
    ({"data": "missing.jsonl"}, "does not exist"),
    ({"data": "data.jsonl", "gold": "answer"}, "no gold field 'answer'"),
])
def test_bad_user_suites_get_one_clear_error(tmp_path, spec, message):
    (tmp_path / "data.jsonl").write_text(json.dumps({"prompt": "hi", "gold": "x"}) + "\n")
    (tmp_path / "s.json").write_text(json.dumps(spec))
    with pytest.raises(LabError, match=message):
        resolve_suites(str(tmp_path / "s.json"))


def test_harness_runs_on_a_model_without_lab_tokens_or_chat_template(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    world = build_world(WorldConfig(people_per_exposure=2, exposures=(0, 4)))
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    texts = [q.text for p in world.people for q in world.questions(p)]
    raw.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2))
    ctx = EvalContext(world, Identity(), None)
    r = run_suite(model.eval(), tok, SUITES["hallucination"], ctx, tmp_path, limit=4)
    rows = [json.loads(line) for line in (tmp_path / "hallucination" / "samples.jsonl").read_text().splitlines()]
    assert r["n"] == 4 and all(row["tool_calls"] == [] for row in rows)


def test_every_suite_has_unique_sample_ids(outside_model):
    _, _, ctx = outside_model
    for suite in SUITES.values():
        ids = [s["id"] for s in suite.samples(ctx)]
        assert len(ids) == len(set(ids)), suite.name  # results, caches and paired comparisons key on the id


def test_an_exported_labgpt_scores_the_same_as_the_original(outside_model, tmp_path):
    """The harness runs unchanged on a Llama-format export, with the same answers and metrics."""
    from lab.model.export import to_llama
    from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM

    _, tok, ctx = outside_model
    torch.manual_seed(1)
    ours = LabGPTForCausalLM(LabGPTConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=512)).eval()
    a = run_suite(ours, tok, SUITES["context"], ctx, tmp_path / "ours", limit=12)
    b = run_suite(to_llama(ours).eval(), tok, SUITES["context"], ctx, tmp_path / "llama", limit=12)
    rows = [[json.loads(line)["response"] for line in (tmp_path / d / "context" / "samples.jsonl").read_text().splitlines()]
            for d in ("ours", "llama")]
    assert rows[0] == rows[1] and a["metrics"] == b["metrics"]


def test_profile_suite_grades_with_the_gold_judge(outside_model):
    _, _, ctx = outside_model
    sample = next(s for s in SUITES["profile"].samples(ctx) if s["extras"]["k"] > 0)
    person = ctx.world.by_name(sample["gold"])
    city = next(q.answer for q in ctx.world.questions(person) if q.attribute == "birth_city")
    other = next(c for c in ctx.world.values("birth_city") if c != city)
    grade = SUITES["profile"].grade
    right, wrong = grade(sample, f"Was born in the city of {city}.", []), grade(sample, f"Was born in {other}.", [])
    assert right["states_correct_fact"] and not right["states_wrong_fact"] and wrong["states_wrong_fact"]
    assert right["gold_score"] > grade(sample, "I don't know who that is.", [])["gold_score"] > wrong["gold_score"]


def test_math_asks_every_problem_worked_and_direct_and_pairs_the_gain(outside_model):
    """Tokens to think: the same held-out problems in both forms, the gain paired by problem."""
    from tasks.answer_forms import DIRECT_INSTRUCTION

    _, _, ctx = outside_model
    suite = SUITES["math"]
    samples = suite.samples(ctx)
    by_problem = {}
    for s in samples:
        by_problem.setdefault(s["extras"]["problem"], {})[s["extras"]["condition"]] = s["messages"][-1]["content"]
    assert all(set(v) == {"worked", "direct"} for v in by_problem.values())
    assert all(v["direct"] == v["worked"] + DIRECT_INSTRUCTION for v in by_problem.values())
    assert {s["extras"]["block"] for s in samples} == {"mixed", "arithmetic"}

    def rows(worked_right: int, direct_right: int, block: str = "arithmetic") -> list[dict]:
        out = []
        for i in range(10):
            for form, right in (("worked", worked_right), ("direct", direct_right)):
                out.append({"correct": i < right, "response_chars": 10,
                            "extras": {"problem": f"{block}{i}", "condition": form, "block": block}})
        return out

    metrics = suite.summarize(rows(8, 2) + rows(0, 5, "mixed"))["metrics"]
    assert metrics["worked_minus_direct_arithmetic"]["value"] == pytest.approx(0.6)
    assert metrics["worked_minus_direct"]["value"] == pytest.approx((6 - 5) / 20)
    assert metrics["worked_minus_direct_arithmetic"]["ci95"][0] > 0 and metrics["worked_minus_direct"]["n"] == 20
    flipped = suite.summarize(rows(2, 8))["metrics"]["worked_minus_direct_arithmetic"]
    assert flipped["value"] == pytest.approx(-0.6) and flipped["ci95"][1] < 0
    spelling = SUITES["spelling"].summarize([r | {"extras": r["extras"] | {"condition": {"worked": "steps"}.get(
        r["extras"]["condition"], r["extras"]["condition"])}} for r in rows(7, 3)])["metrics"]
    assert spelling["steps_minus_direct"]["value"] == pytest.approx(0.4) and "tool_minus_direct" not in spelling


@pytest.fixture
def restored_suites():
    from evals.suites import SUITES as registry

    before = dict(registry)
    yield registry
    registry.clear()
    registry.update(before)


def test_a_toy_suite_registered_from_outside_runs_and_reaches_the_report(outside_model, tmp_path, restored_suites):
    """A suite is one declaration and one register_suite call: `lab eval` resolves it, the evals stage runs it on
    every policy that takes every suite, and the report's summary table shows its headline, with no list edited."""
    from evals import suites
    from evals.harness import Suite
    from lab.runs import Run
    from reports.report import report_card

    def samples(ctx):
        return [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Say {i}."}], "gold": str(i), "extras": {}}
                for i in range(6)]

    def grade(sample, response, calls):
        said = sample["gold"] in response
        return {"grade": "correct" if said else "incorrect", "said_it": said}

    toy = suites.register_suite(Suite("toy", "1", samples, grade, ("said_it",), max_new_tokens=4))
    assert resolve_suites("toy") == [toy] and "toy" in [s.name for s in resolve_suites("all")]
    with pytest.raises(LabError, match="a suite named 'toy' is already registered"):
        suites.register_suite(toy)
    model, tok, ctx = outside_model
    run = Run(tmp_path / "run")
    run_suite(model, tok, toy, ctx, run.stage_dir("sft") / "evals", seed=0)
    header, rows = report_card(run)
    assert header == ["suite/metric", "sft"] and [r[0] for r in rows] == ["toy/said_it"]
