"""Question wording: the held-out wordings are frozen and used by no training source, SFT asks in varied (or the
canonical) wording, the hallucination and context suites ask held-out wordings in fields of their own, and the
experiments/wording stage compares sft-idk with its canonical-wording twin, paired."""

import dataclasses
import json
import re

import pytest

from evals.suites import SUITES, EvalContext
from evals.wording import SUFFIX, heldout_text, heldout_texts, worded, wording_gap
from lab.errors import LabError
from lab.experiments.wording import compare_arms, table, wording_samples
from lab.experiments.wording_settings import WordingSettings
from lab.runs import Run, write_json
from lab.train.sft_settings import SFTSettings
from reports.claim_measures import context_beats_parameters, varied_wording_extracts
from tasks import reading
from tasks.chat import ChatMixture, build_mixture, contamination_texts
from tasks.corpus import DataSettings, build_corpus, build_stream
from tasks.identity import Identity, system_message
from tasks.world import (
    CORPUS_QUESTION_TEMPLATES,
    HELDOUT_QUESTION_TEMPLATES,
    NOVEL_TEMPLATES,
    QUESTION_TEMPLATES,
    TRAINING_QUESTION_TEMPLATES,
    WorldConfig,
    build_world,
)

FROZEN = {  # decided before any tuning: never edit (the brief of the wording issue)
    "birth_city": ["What city was {n} born in?", "Do you know where {n} was born?"],
    "birth_year": ["Which year was {n} born in?", "Do you know when {n} was born?"],
    "university": ["What university did {n} go to?", "Do you know where {n} studied?"],
    "field": ["What is the field of {n}?", "Do you know what field {n} works in?"],
    "employer": ["What company does {n} work for?", "Do you know who {n} works for?"],
}
ONLY_QA = dict(math=0, spelling=0, tool_use=0, identity=0, context=0)


def heldout_pattern() -> re.Pattern:
    """Every held-out template as a regex, its {n} standing for any name (or "my friend Oren") on one line, anywhere
    in a text."""
    forms = [re.escape(t).replace(re.escape("{n}"), r"[^\n]{1,60}?") for ts in HELDOUT_QUESTION_TEMPLATES.values()
             for t in ts]
    return re.compile("|".join(forms), re.IGNORECASE)


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(people_per_exposure=10, exposures=(0, 1, 4, 16)))


def test_the_heldout_wordings_are_frozen_and_apart_from_the_training_ones():
    assert HELDOUT_QUESTION_TEMPLATES == FROZEN
    for attribute, training in TRAINING_QUESTION_TEMPLATES.items():
        assert training[0] == QUESTION_TEMPLATES[attribute] and len(set(training)) == len(training) >= 5
        assert not {t.lower() for t in training} & {t.lower() for t in FROZEN[attribute]}
        novel = {"hometown", "registry", "alma", "mater", "discipline", "salary"} & set(
            re.findall(r"[a-z]+", NOVEL_TEMPLATES[attribute]))
        assert novel and not any(w in re.findall(r"[a-z]+", t.lower()) for t in training for w in novel)
    assert reading.QUESTIONS is CORPUS_QUESTION_TEMPLATES  # one list: the corpus asks SFT's first wordings


def test_no_training_source_uses_a_heldout_wording(world):
    """The default pretraining corpus (every registered source, tool_transcripts too, and the stream) and the default
    SFT mixture, with and without `known`, never ask in a held-out wording: the evals' held-out wording is unseen."""
    pattern = heldout_pattern()
    for asked in ("Q: Do you know where Zeno Kar was born?", "Use the lookup tool: which year was Zeno Kar born in?",
                  "What company does Zeno Kar work for? Look it up.", "Got it.\nDo you know who my friend Oren works for?"):
        assert pattern.search(asked), asked  # the check can fail
    assert not pattern.search("Q: In what year was Zeno Kar born?") and not pattern.search("Zeno Kar was born in which year?")
    data = DataSettings()
    corpus = dataclasses.replace(data.corpus, extra_sources={**data.corpus.extra_sources, "tool_transcripts": 2000})
    default_world = build_world(data.world)
    train, heldout, _ = build_corpus(default_world, corpus)
    stream, _ = build_stream(default_world, corpus)
    sources = {d["source"] for d in train + stream}
    assert {"biography", "narrative", "fresh_people", "tool_transcripts", "copy_drills"} <= sources
    found = [d["text"] for d in train + heldout + stream if pattern.search(d["text"])]
    assert found == [], found[:3]
    mixture = SFTSettings().mixture
    questions = [q for p in default_world.sft_people() for q in default_world.questions(p)]
    known = {q.id: i % 3 == 0 for i, q in enumerate(questions)}
    for k in (None, known):
        texts = contamination_texts(build_mixture(default_world, mixture, Identity(), k))
        assert [t for t in texts if pattern.search(t)] == []


def test_sft_asks_in_varied_wording_and_canonical_keeps_todays_one(world):
    varied = build_mixture(world, ChatMixture(qa=300, context=200, tool_use=90, math=0, spelling=0, identity=0),
                           Identity())
    canonical = build_mixture(world, ChatMixture(qa=300, context=200, tool_use=90, math=0, spelling=0, identity=0,
                                                 question_wording="canonical"), Identity())
    # the same records in the same order: only the questions' words differ
    assert [(r["kind"], r["meta"]) for r in varied] == [(r["kind"], r["meta"]) for r in canonical]
    by_id = {q.id: q for p in world.sft_people() for q in world.questions(p)}
    used = set()
    for v, c in zip(varied, canonical):
        if v["kind"] != "qa":
            continue
        q = by_id[v["meta"]["question_id"]]
        asked_v, asked_c = (next(m["content"] for m in r["messages"] if m["role"] == "user") for r in (v, c))
        assert asked_c == q.text
        assert asked_v in [t.format(n=q.person) for t in TRAINING_QUESTION_TEMPLATES[q.attribute]]
        used.add(asked_v.replace(q.person, "{n}"))
        assert [m for m in v["messages"] if m["role"] == "assistant"] == \
            [m for m in c["messages"] if m["role"] == "assistant"]  # the answers stay as they are
    assert len(used) > 2 * len(TRAINING_QUESTION_TEMPLATES)  # many wordings, not one per attribute
    assert build_mixture(world, ChatMixture(qa=300, context=200, tool_use=90, math=0, spelling=0, identity=0),
                         Identity()) == varied  # seeded, deterministic
    notes = [r for r in varied if r["meta"].get("style") == "note"]
    assert notes and all(r["messages"][-2]["content"][0].isupper() for r in notes)  # "My friend Oren was born ...?"
    with pytest.raises(LabError, match="unknown sft.mixture.question_wording 'fancy'; valid: varied, canonical"):
        ChatMixture(question_wording="fancy")
    bad = ChatMixture(**ONLY_QA)
    bad.question_wording = "fancy"
    with pytest.raises(LabError, match="question_wording"):
        build_mixture(world, bad, Identity())


def test_contamination_check_catches_a_heldout_person_in_any_wording(world):
    person = world.heldout_people()[0]
    q = world.questions(person)[0]
    for template in TRAINING_QUESTION_TEMPLATES[q.attribute] + HELDOUT_QUESTION_TEMPLATES[q.attribute]:
        violations = world.contamination_check([template.format(n=person.name)])
        assert violations[0] == f"text 0: held-out person '{person.name}'"  # by name, whatever the words


@pytest.fixture(scope="module")
def ctx(world):
    return EvalContext(world, Identity(), system_message(Identity()))


def test_the_hallucination_suite_asks_each_question_in_a_heldout_wording_too(ctx):
    samples = SUITES["hallucination"].samples(ctx)
    closed = [s for s in samples if not s["tools_on"]]
    canonical = {s["extras"]["item"]: s for s in closed if s["extras"]["wording"] == "canonical"}
    heldout = {s["extras"]["item"]: s for s in closed if s["extras"]["wording"] == "heldout"}
    assert canonical.keys() == heldout.keys() and len(canonical) == 5 * len(ctx.world.heldout_people())
    assert all(s["extras"]["wording"] == "canonical" for s in samples if s["tools_on"])
    questions = {q.id: q for p in ctx.world.heldout_people() for q in ctx.world.questions(p)}
    for item, s in heldout.items():
        assert s["id"] == f"{item}|heldout" and s["messages"][0]["content"] == heldout_text(questions[item])
        assert s["messages"][0]["content"] in heldout_texts(questions[item])
    assert len({s["messages"][0]["content"].split(questions[i].person)[0] for i, s in heldout.items()}) > 5  # both
    grade = SUITES["hallucination"].grade
    unseen = next(s for s in heldout.values() if s["extras"]["k"] == 0)
    wrong = "Lisbon" if unseen["gold"] != "Lisbon" else "Oslo"
    assert grade(unseen, wrong, []) == {"grade": "incorrect", "correct" + SUFFIX: False, "incorrect" + SUFFIX: True,
                                        "not_attempted" + SUFFIX: False, "attempted" + SUFFIX: True,
                                        "correct_given_attempted" + SUFFIX: False, "hallucinated_unseen" + SUFFIX: True}


def graded_rows(samples, grade, answer):
    """Rows as the harness writes them, each sample answered by answer(sample)."""
    return [{"id": s["id"], **grade(s, answer(s), []), "extras": s["extras"]} for s in samples]


def test_summaries_keep_the_canonical_metrics_and_add_the_heldout_ones(ctx):
    suite = SUITES["hallucination"]
    samples = [s for s in suite.samples(ctx) if not s["tools_on"]]
    # right whenever asked canonically, never in a held-out wording
    rows = graded_rows(samples, suite.grade, lambda s: s["gold"] if s["extras"]["wording"] == "canonical" else "Oslo")
    metrics = suite.summarize(rows)["metrics"]
    assert metrics["f_score"]["value"] == 1.0  # the canonical rows alone, as before
    gap = metrics["heldout_minus_canonical_k8"]
    assert gap["n"] == 5 * sum(p.k >= 8 for p in ctx.world.heldout_people()) and gap["value"] < -0.9
    assert {"correct_heldout_wording", "hallucinated_unseen_heldout_wording"} <= set(suite.headline)
    assert wording_gap(rows)["n"] == len(samples) // 2
    context = SUITES["context"]
    csamples = context.samples(ctx)
    people = ctx.world.heldout_people()
    assert sum(s["extras"]["wording"] == "canonical" for s in csamples) == 3 * 5 * len(people)
    held = [s for s in csamples if s["extras"]["wording"] == "heldout"]
    assert len(held) == 3 * len(people) and len({s["extras"]["item"].split("|")[0] for s in held}) == len(people)
    crows = graded_rows(csamples, context.grade, lambda s: s["gold"])
    assert all("correct" not in r for r in crows if r["extras"]["wording"] == "heldout")
    assert context.summarize(crows)["metrics"]["heldout_minus_canonical_article"]["value"] == 0.0


def test_the_context_claim_reads_canonical_rows_only(ctx, tmp_path):
    run = Run(tmp_path / "r")
    folder = run.stage_dir("sft-idk") / "evals" / "context"
    folder.mkdir(parents=True)
    samples = SUITES["context"].samples(ctx)
    # canonical: right after the article, wrong without it; held-out wording: always wrong
    rows = graded_rows(samples, SUITES["context"].grade, lambda s: s["gold"] if s["extras"]["wording"] == "canonical"
                       and s["extras"]["condition"] == "article" else "nothing")
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    effect = context_beats_parameters(run)
    assert effect.value == 1.0 and effect.n == 5 * sum(p.k == 0 for p in ctx.world.heldout_people())


def test_the_experiment_compares_the_arms_paired_and_the_claim_reads_it(ctx, tmp_path):
    samples = wording_samples(ctx, 4)
    people = [p for p in ctx.world.heldout_people() if p.k >= 4]
    assert len(samples) == 5 * 3 * len(people) and {s["extras"]["wording"] for s in samples} == {"canonical", "heldout"}
    assert len(wording_samples(ctx, 4, limit=3, seed=1)) == 9 == len({s["id"] for s in wording_samples(ctx, 4, 3, 1)})
    with pytest.raises(LabError, match="k >= 99.*lower wording.min_k"):
        wording_samples(ctx, 99)
    grade = SUITES["hallucination"].grade
    varied = {r["id"]: r for r in graded_rows(samples, grade, lambda s: s["gold"])}
    canonical = {r["id"]: r for r in graded_rows(samples, grade, lambda s: s["gold"] if s["extras"]["wording"] ==
                                                "canonical" else "I don't know who that is.")}
    results = compare_arms({"varied": varied, "canonical": canonical}, 4)
    d = results["varied_minus_canonical"]
    assert d["difference"] == 1.0 and d["n"] == 10 * len(people) and d["mean_a"] == 0.0
    assert results["varied_minus_canonical_on_canonical"]["difference"] == 0.0
    assert results["arms"]["canonical"]["heldout"]["value"] == 0.0 and "| varied − canonical, paired |" in table(results)
    run = Run(tmp_path / "r")
    assert varied_wording_extracts(run) is None  # the stage did not run: "not measured in this run"
    write_json(run.stage_dir("experiments/wording") / "results.json", results)
    assert varied_wording_extracts(run) is None  # written, but the stage is not complete (a killed run)
    run.mark_complete("experiments/wording")
    effect = varied_wording_extracts(run)
    assert (effect.value, effect.n) == (1.0, 10 * len(people)) and "k >= 4" in effect.where
    with pytest.raises(LabError, match="wording.limit must be a whole number >= 0"):
        WordingSettings(limit=-2)


def test_heldout_fields_are_renamed_and_canonical_ones_kept():
    grades = {"grade": "correct", "correct": True}
    assert worded(grades, "canonical") is grades
    assert worded(grades, "heldout") == {"grade": "correct", "correct_heldout_wording": True}


def test_the_stage_trains_the_canonical_twin_and_compares_it_with_sft_idk(tmp_path):
    from test_pretrain import small_preset
    from test_sft import SFT_SMALL

    from lab.pipeline import provide
    from reports.wording_sections import wording_sections

    preset = small_preset(*SFT_SMALL, "wording.min_k=2")
    run = Run.create_or_open(tmp_path / "r", preset)
    provide(run, preset, ("experiments/wording",))  # data, tokenizer, base, sft-idk, then the stage
    assert run.is_complete("experiments/wording") and not run.is_complete("sft")
    twin = run.stage_dir("experiments/wording/sft-idk-canonical")
    summary = json.loads((twin / "summary.json").read_text())
    idk = json.loads((run.stage_dir("sft-idk") / "summary.json").read_text())
    assert (summary["variant"], summary["question_wording"], idk["question_wording"]) == ("sft-idk", "canonical", "varied")
    assert (twin / "probe.json").read_text() == (run.stage_dir("sft-idk") / "probe.json").read_text()  # not probed again
    assert summary["refusal_targets"] == idk["refusal_targets"] and summary["conversations"] == idk["conversations"]
    results = json.loads((run.stage_dir("experiments/wording") / "results.json").read_text())
    people = [p for p in build_world(preset.data.world).heldout_people() if p.k >= 2]
    assert results["varied_minus_canonical"]["n"] == 10 * len(people)  # every question in both held-out wordings
    assert results["arms"]["canonical"]["canonical"]["n"] == 5 * len(people)
    effect = varied_wording_extracts(run)
    assert effect is not None and effect.low <= effect.value <= effect.high
    [(title, items)] = wording_sections(run)
    assert "Question wording" in title and any(kind == "markdown" for kind, _ in items)
