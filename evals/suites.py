"""The lab's six eval suites: what each asks, how it grades, which metrics it reports.

Every suite draws its samples from generators with known ground truth (the world, the math and
spelling generators), held-out material only, so a grade is exact. A sample is a dict with an id,
chat messages, a gold answer and extras (the keys results are broken down by). A grader turns one
response into a grade plus binary per-sample fields; `summarize` adds metrics that are not a mean of
one field (F-score, calibration, paired tool metrics, response length).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from evals.calibration import calibration_curve, coverage_curve, ece_metric
from evals.hallucination import grade
from evals.stats import bootstrap, mean_metric, paired_difference, proportion
from evals.wording import WELL_KNOWN_K, heldout_text, is_canonical, picked_attribute, with_heldout, worded, wording_gap
from lab.errors import LabError
from lab.tools import TOOLS
from rewards.gold import PROMPT_TEMPLATES, gold_score, prompt_for
from rewards.verifier import Verdict, verify_many
from tasks import math as math_tasks
from tasks.answer_forms import DIRECT_INSTRUCTION, FORMS, ask
from tasks.identity import OTHER_ASSISTANTS, probe_targets
from tasks.math import MathConfig
from tasks.math import generate as generate_math
from tasks.spelling import SpellingConfig
from tasks.spelling import generate as generate_spelling


@dataclass
class EvalContext:
    world: object  # tasks.world.World
    identity: object  # tasks.identity.Identity
    system: str | None


@dataclass
class Suite:
    name: str
    version: str
    samples: Callable[[EvalContext], list[dict]]  # dicts with id, messages, gold, extras
    grade: Callable[[dict, str, list], dict]  # (sample, response, tool calls) -> {"grade": ..., binary fields}
    metrics: tuple[str, ...]  # binary per-sample fields averaged into results (present only where they apply)
    group_by: tuple[str | tuple[str, ...], ...] = ()  # extras keys (or key tuples) to break metrics down by
    max_new_tokens: int = 32
    tools: bool = False  # whether tool calls are executed (else they get a "tools are off" error)
    confidence: bool = False  # score the probability of each generated answer (evals/loglik.py)
    summarize: Callable[[list[dict]], dict] | None = None  # extra metrics from all graded rows
    mode: str = "generate"  # "choice": pick an option by log-likelihood; "perplexity": score sample["text"]
    headline: tuple[str, ...] = ()  # the metrics a report's summary table shows (default: `metrics`)


def normalise_answer(text: str) -> str:
    return " ".join(text.strip().strip(".").strip('"').replace(",", "").split()).lower()


def final_answer(response: str) -> str:
    """The text after the last "Answer:" (the format every worked solution ends with), else the response."""
    text = response.rsplit("Answer:", 1)[-1] if "Answer:" in response else response
    return normalise_answer(text)


# ---------------------------------------------------------------- hallucination


def _hallucination_samples(ctx: EvalContext) -> list[dict]:
    """Every question about every held-out person, closed-book, canonically and in a held-out wording (evals/
    wording.py); and canonically with the tools on (a `lookup` can answer them) for the never-seen and the
    best-known people: does a model that can look up stop inventing?"""
    people = ctx.world.heldout_people()
    ends = {0, max(p.k for p in people)}
    asked = ((False, "canonical"), (True, "canonical"), (False, "heldout"))  # (tools on, wording)
    return [{"id": q.id + ("|tools" if tools else "") + ("|heldout" if wording == "heldout" else ""),
             "messages": [{"role": "user", "content": q.text if wording == "canonical" else heldout_text(q)}],
             "gold": q.answer, "tools_on": tools,
             "extras": {"k": q.k, "aliases": q.aliases, "attribute": q.attribute, "item": q.id, "wording": wording,
                        "condition": "tools" if tools else "closed_book"}}
            for tools, wording in asked for p in people if not tools or p.k in ends for q in ctx.world.questions(p)]


def _closed_book(rows: list[dict]) -> list[dict]:
    """The closed-book rows asked canonically (today's metrics are theirs)."""
    return [r for r in rows if r["extras"].get("condition", "closed_book") == "closed_book" and is_canonical(r)]


def _hallucination_grade(sample: dict, response: str, calls: list) -> dict:
    g = grade(response, sample["gold"], sample["extras"]["aliases"])
    if sample["extras"].get("condition") == "tools":  # its own fields: the closed-book metrics stay closed-book
        out = {"grade": g, "correct_with_tools": g == "correct", "looked_up": any(c["name"] == "lookup" for c in calls)}
        if sample["extras"]["k"] == 0:
            out["hallucinated_unseen_with_tools"] = g == "incorrect"
        return out
    out = {"grade": g, "correct": g == "correct", "incorrect": g == "incorrect", "not_attempted": g == "not_attempted",
           "attempted": g != "not_attempted"}
    if g != "not_attempted":
        out["correct_given_attempted"] = g == "correct"
    if sample["extras"]["k"] == 0:
        out["hallucinated_unseen"] = g == "incorrect"
    return worded(out, sample["extras"].get("wording", "canonical"))  # held-out wording: fields of its own


def _f_score(rows: list[dict]) -> float:
    """SimpleQA's F-score: the harmonic mean of overall accuracy and accuracy on attempted questions."""
    correct = sum(r["correct"] for r in rows)
    attempted = sum(r["attempted"] for r in rows)
    overall, given = correct / len(rows), (correct / attempted if attempted else 0.0)
    return 2 * overall * given / (overall + given) if overall + given else 0.0


def _hallucination_summary(rows: list[dict]) -> dict:
    """F-score and calibration of the canonical closed-book rows; held-out minus canonical wording, paired by
    question, over every held-out person and over the well-known ones (k >= WELL_KNOWN_K)."""
    gaps = {"heldout_minus_canonical": wording_gap(rows),
            f"heldout_minus_canonical_k{WELL_KNOWN_K}": wording_gap(rows, where=lambda r: r["extras"]["k"] >= WELL_KNOWN_K)}
    rows = _closed_book(rows)
    scored = [r for r in rows if r.get("confidence") is not None]
    attempted = [r for r in scored if r["attempted"]]
    out = {"metrics": {"f_score": bootstrap(rows, _f_score, random.Random(0))}}
    out["metrics"].update({name: gap for name, gap in gaps.items() if gap is not None})
    if attempted:
        conf, hit = [r["confidence"] for r in attempted], [r["correct"] for r in attempted]
        out["metrics"]["ece"] = ece_metric(conf, hit)
        out["metrics"]["mean_confidence"] = mean_metric(conf)
        out["calibration"] = {
            "curve": calibration_curve(conf, hit),
            "coverage": coverage_curve([r["confidence"] if r["attempted"] else None for r in scored],
                                       [r["correct"] for r in scored])}
    return out


# ---------------------------------------------------------------- identity


def _identity_samples(ctx: EvalContext) -> list[dict]:
    return [{"id": f"identity-{i}", "messages": [{"role": "user", "content": q}], "gold": target,
             "extras": {"others": OTHER_ASSISTANTS}} for i, (q, target) in enumerate(probe_targets(ctx.identity))]


def _identity_grade(sample: dict, response: str, calls: list) -> dict:
    text = response.lower()
    claims_other = any(f"i am {o.lower()}" in text or f"i'm {o.lower()}" in text for o in sample["extras"]["others"])
    own = sample["gold"].lower() in text
    return {"grade": "correct" if own and not claims_other else "incorrect", "own_identity": own,
            "claims_other_assistant": claims_other}


# ---------------------------------------------------------------- spelling


SPELLING_CONDITIONS = {"direct": DIRECT_INSTRUCTION, "steps": "", "tool": " Check it with the python tool."}


def _spelling_samples(ctx: EvalContext, per_condition: int = 200) -> list[dict]:
    problems = generate_spelling(SpellingConfig(seed=1), per_condition, split="heldout")
    # Only the tool condition has tools: "direct" and "steps" measure the model on its own.
    return [{"id": f"{p.id}|{condition}", "messages": [{"role": "user", "content": p.question + suffix}],
             "gold": p.answer, "tools_on": condition == "tool",
             "extras": {"task": p.task, "condition": condition, "band": p.extras["band"],
                        "length": p.extras["length"], "problem": p.id}}
            for condition, suffix in SPELLING_CONDITIONS.items() for p in problems]


def _exact_grade(sample: dict, response: str, calls: list) -> dict:
    ok = final_answer(response) == normalise_answer(sample["gold"])
    return {"grade": "correct" if ok else "incorrect", "correct": ok}


def paired_gain(rows: list[dict], better: str, worse: str, where=lambda row: True, key: str = "problem") -> dict | None:
    """Mean of `correct` in condition `better` minus in `worse` over the problems asked both ways (the samples'
    extras[key]), with the CLT interval of the paired difference; None when no problem was asked both ways."""
    by_problem: dict[str, dict[str, dict]] = {}
    for r in rows:
        if where(r):
            by_problem.setdefault(r["extras"][key], {})[r["extras"]["condition"]] = r
    pairs = [v for v in by_problem.values() if better in v and worse in v]
    if not pairs:
        return None
    gain = paired_difference([float(p[worse]["correct"]) for p in pairs], [float(p[better]["correct"]) for p in pairs])
    return {"value": gain["difference"], "stderr": gain["stderr"], "ci95": gain["ci95"], "n": gain["n"]}


def _gains(rows: list[dict], wanted: dict[str, tuple]) -> dict:
    """{"metrics": name -> paired gain} for each name -> (better, worse[, where]) that has pairs."""
    gains = {name: paired_gain(rows, *args) for name, args in wanted.items()}
    return {"metrics": {name: g for name, g in gains.items() if g is not None}}


def _spelling_summary(rows: list[dict]) -> dict:
    """Paired by word and task: step by step minus direct (both tools off), and the python tool minus direct."""
    return _gains(rows, {"steps_minus_direct": ("steps", "direct"), "tool_minus_direct": ("tool", "direct")})


# ---------------------------------------------------------------- tool use


# Questions come without a hint ("use python"): the model must decide by itself when a tool is worth it.
TOOLUSE_KINDS = {  # kind -> (needs a tool, the tools that are right for it)
    "big_arithmetic": (True, ("calculator", "python")),
    "letter_count": (True, ("python",)),
    "rare_person": (True, ("lookup",)),
    "small_arithmetic": (False, ()),
    "famous_person": (False, ()),
}


def _tooluse_items(ctx: EvalContext, per_kind: int) -> list[dict]:
    rng = random.Random(7)
    items = []

    def arithmetic(kind: str, digits: tuple[int, int], op: str) -> None:
        seen = set()
        while len(seen) < per_kind:
            a, b = math_tasks.draw_operands(rng, *((10 ** (d - 1), 10 ** d - 1) for d in digits), "heldout", op)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            items.append({"kind": kind, "id": f"{kind}-{a}{op}{b}", "question": f"What is {a} {op} {b}?",
                          "gold": str(a * b if op == "*" else a + b), "needles": [str(a), str(b)]})

    arithmetic("big_arithmetic", (4, 3), "*")
    arithmetic("small_arithmetic", (2, 2), "+")  # the band-2 shape SFT taught: answerable without a tool
    for p in generate_spelling(SpellingConfig(seed=3, tasks=("count_letter",)), per_kind, split="heldout"):
        items.append({"kind": "letter_count", "id": p.id, "question": p.question, "gold": p.answer,
                      "needles": [p.extras["word"]]})
    people = ctx.world.heldout_people()
    top = max(p.k for p in people)
    for kind, pool in (("rare_person", [p for p in people if p.k <= 1]), ("famous_person", [p for p in people if p.k == top])):
        questions = [q for p in pool for q in ctx.world.questions(p)]
        for q in random.Random(kind).sample(questions, min(per_kind, len(questions))):
            items.append({"kind": kind, "id": q.id, "question": q.text, "gold": q.answer, "aliases": q.aliases,
                          "needles": [q.person]})
    return items


def _tooluse_samples(ctx: EvalContext, per_kind: int = 50) -> list[dict]:
    return [{"id": f"{item['id']}|{condition}", "messages": [{"role": "user", "content": item["question"]}],
             "gold": item["gold"], "tools_on": condition == "tools",
             "extras": {"item": item["id"], "kind": item["kind"], "condition": condition,
                        "needs_tool": TOOLUSE_KINDS[item["kind"]][0], "aliases": item.get("aliases", []),
                        "needles": item["needles"]}}
            for condition in ("tools", "no_tools") for item in _tooluse_items(ctx, per_kind)]


def _tooluse_grade(sample: dict, response: str, calls: list) -> dict:
    extras = sample["extras"]
    if extras["kind"].endswith("person"):
        correct = grade(response, sample["gold"], extras["aliases"]) == "correct"
    else:
        correct = _exact_grade(sample, response, calls)["correct"]
    unclosed = "<|tool_call|>" in response  # a call opened but never closed: the tool loop never saw it
    out = {"grade": "correct" if correct else "incorrect", "correct": correct, "called_tool": bool(calls) or unclosed}
    if extras["condition"] == "tools":
        if extras["needs_tool"]:  # over every item that needs a tool: no call is not a faithful call
            out["faithful_call"] = bool(calls) and all(n in calls[0]["argument"] for n in extras["needles"])
        else:  # famous people and small sums need no tool
            out["unnecessary_call"] = out["called_tool"]
    if out["called_tool"]:
        out["well_formed"] = not unclosed and all(c["name"] in TOOLS for c in calls)
        if extras["needs_tool"] and calls:
            out["right_tool"] = calls[0]["name"] in TOOLUSE_KINDS[extras["kind"]][1]
            # a call about something else is no help: the argument must carry the question's numbers/word/name
            out["argument_faithful"] = all(n in calls[0]["argument"] for n in extras["needles"])
    return out


def _tooluse_summary(rows: list[dict]) -> dict:
    """Paired by item: accuracy with tools minus without, and tool calls on items the model answered right
    without a tool (calls_when_known; `unnecessary_call` counts calls on items that need no tool at all)."""
    by_item: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_item.setdefault(r["extras"]["item"], {})[r["extras"]["condition"]] = r
    pairs = [v for v in by_item.values() if len(v) == 2]
    metrics = {}
    if pairs:
        metrics["tool_accuracy_gain"] = paired_gain(rows, "tools", "no_tools", key="item")
        known = [p for p in pairs if p["no_tools"]["correct"]]
        metrics["calls_when_known"] = proportion(sum(p["tools"]["called_tool"] for p in known), len(known))
    return {"metrics": metrics}


# ---------------------------------------------------------------- math


# Two blocks of held-out problems: every task at every band (how far the model's math reaches), and two-digit
# sums and differences (band 2: the procedure sft-math practises, whose carries a worked column writes down).
MATH_BLOCKS = {"mixed": ({}, (1, 2, 3, 4), 60), "arithmetic": ({"tasks": ("arithmetic",)}, (2,), 200)}


def _math_samples(ctx: EvalContext) -> list[dict]:
    """Each problem asked for worked steps and for a direct answer (tasks/answer_forms.py), paired by problem."""
    problems = [(block, band, p) for block, (cfg, bands, per_band) in MATH_BLOCKS.items() for band in bands
                for p in generate_math(MathConfig(seed=11, bands=(band,), **cfg), per_band, split="heldout")]
    return [{"id": f"{block}|band{band}|{p.id}|{form}", "messages": [{"role": "user", "content": ask(p.question, form)}],
             "gold": p.answer, "extras": {"difficulty": p.difficulty, "task": p.task, "block": block, "condition": form,
                                          "problem": f"{block}|band{band}|{p.id}"}}
            for block, band, p in problems for form in FORMS]


def grade_math(pairs: list[tuple[str, str]]) -> list[Verdict]:
    """The verdict on each (response, gold): the final answer a response marks ("Answer: ...", a box), never
    its last number standing in for one (an unmarked answer is not an answer the model gave)."""
    return verify_many(pairs, last_number_fallback=False)


def _math_grade(sample: dict, response: str, calls: list) -> dict:
    (verdict,) = grade_math([(response, sample["gold"])])
    formatted = any(line.startswith("Answer:") for line in response.strip().splitlines()[-1:])
    return {"grade": "correct" if verdict.equivalent else "incorrect", "correct": verdict.equivalent,
            "format_ok": formatted, "verdict": verdict.reason, "response_chars": len(response)}


def _math_summary(rows: list[dict]) -> dict:
    """Response length, and worked minus direct ("tokens to think"), paired by problem, over all problems
    and over the arithmetic block alone."""
    out = _gains(rows, {"worked_minus_direct": ("worked", "direct"),
                        "worked_minus_direct_arithmetic": ("worked", "direct",
                                                           lambda r: r["extras"]["block"] == "arithmetic")})
    out["metrics"]["response_chars"] = mean_metric([float(r["response_chars"]) for r in rows])
    return out


# ---------------------------------------------------------------- context vs memory


CONTEXT_OPENER = "Here is an encyclopedia article:\n{t}"  # the SFT context demos' first opener
CONTEXT_ACK = "Got it."


def _context_samples(ctx: EvalContext) -> list[dict]:
    """Every question about every held-out person, asked alone, after their article, and after an article in
    which the asked attribute was changed to another value: does the answer follow the context or memory? One
    question per person (its attribute picked by name) is also asked in a held-out wording, in every condition:
    a subsample, as the articles make these the suites' longest prompts."""
    world = ctx.world
    out = []
    for person, q in ((p, q) for p in world.heldout_people() for q in world.questions(p)):
        rng = random.Random(f"context|{q.id}")
        article = world.encyclopedia(person.name)
        other = rng.choice([v for v in world.values(q.attribute) if v != q.answer and v not in q.aliases])
        changed = world.encyclopedia(person.name, {q.attribute: other})
        wordings = [("canonical", q.text)]
        if q.attribute == picked_attribute(person.name, world.cfg.attributes):
            wordings.append(("heldout", heldout_text(q)))
        for condition, text in (("none", None), ("article", article), ("counterfactual", changed)):
            prefix = [] if text is None else [{"role": "user", "content": CONTEXT_OPENER.format(t=text)},
                                             {"role": "assistant", "content": CONTEXT_ACK}]
            out += [{"id": f"{q.id}{'|heldout' if wording == 'heldout' else ''}|{condition}",
                     "messages": prefix + [{"role": "user", "content": asked}],
                     "gold": other if condition == "counterfactual" else q.answer,
                     "extras": {"condition": condition, "k": q.k, "memory": q.answer, "aliases": q.aliases,
                                "item": f"{q.id}|{condition}", "wording": wording}} for wording, asked in wordings]
    return out


def _context_grade(sample: dict, response: str, calls: list) -> dict:
    extras = sample["extras"]
    follows_context = grade(response, sample["gold"], [] if extras["condition"] == "counterfactual" else extras["aliases"])
    out = {"grade": follows_context, "correct": follows_context == "correct"}
    if extras["condition"] == "counterfactual":
        out["follows_context"] = follows_context == "correct"
        out["follows_memory"] = grade(response, extras["memory"], extras["aliases"]) == "correct"
    return worded(out, extras.get("wording", "canonical"))


def _context_summary(rows: list[dict]) -> dict:
    """Held-out minus canonical wording, paired by question and condition: after the article, and following a
    counterfactual one."""
    gaps = {"heldout_minus_canonical_article": wording_gap(rows, where=lambda r: r["extras"]["condition"] == "article"),
            "heldout_minus_canonical_follows_context": wording_gap(rows, "follows_context")}
    return {"metrics": {name: gap for name, gap in gaps.items() if gap is not None}}


# ---------------------------------------------------------------- open-ended profiles (the RLHF task)


def _profile_samples(ctx: EvalContext) -> list[dict]:
    """"Tell me about <person>" for every held-out person in each prompt phrasing, graded by the gold judge
    that labels the reward model's comparisons (rewards/gold.py): the RLHF stages' task on unseen people."""
    return [{"id": f"{p.name}|{t}", "messages": [{"role": "user", "content": prompt_for(p.name, t)}], "gold": p.name,
             "world": ctx.world,  # for the judge; not written to samples.jsonl
             "extras": {"k": p.k, "template": t}}
            for p in ctx.world.heldout_people() for t in range(len(PROMPT_TEMPLATES))]


def _profile_grade(sample: dict, response: str, calls: list) -> dict:
    g = gold_score(sample["world"], sample["gold"], response)
    return {"grade": "refusal" if g.refusal else ("wrong" if g.wrong else ("correct" if g.correct else "empty")),
            "gold_score": g.total, "refusal": g.refusal, "states_correct_fact": g.correct > 0,
            "states_wrong_fact": g.wrong > 0}


def _profile_summary(rows: list[dict]) -> dict:
    return {"metrics": {"gold_score": mean_metric([r["gold_score"] for r in rows])}}


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("hallucination", "5", _hallucination_samples, _hallucination_grade,
          with_heldout(("correct", "incorrect", "not_attempted", "attempted", "correct_given_attempted",
                        "hallucinated_unseen")) + ("correct_with_tools", "hallucinated_unseen_with_tools", "looked_up"),
          group_by=("k", "condition"), confidence=True, summarize=_hallucination_summary,
          headline=("correct", "hallucinated_unseen", "not_attempted", "correct_given_attempted", "f_score", "ece",
                    "hallucinated_unseen_with_tools", "correct_with_tools", "correct_heldout_wording",
                    "hallucinated_unseen_heldout_wording", f"heldout_minus_canonical_k{WELL_KNOWN_K}")),
    Suite("spelling", "4", _spelling_samples, _exact_grade, ("correct",),
          group_by=("condition", "task", "band", ("task", "condition")), max_new_tokens=96, tools=True,
          summarize=_spelling_summary, headline=("correct", "steps_minus_direct", "tool_minus_direct")),
    Suite("tooluse", "3", _tooluse_samples, _tooluse_grade,
          ("correct", "called_tool", "well_formed", "right_tool", "argument_faithful", "faithful_call",
           "unnecessary_call"),
          group_by=("condition", "kind", ("kind", "condition")), max_new_tokens=128, tools=True,
          summarize=_tooluse_summary, headline=("correct", "called_tool", "right_tool", "faithful_call",
                                                "unnecessary_call", "tool_accuracy_gain")),
    Suite("math", "2", _math_samples, _math_grade, ("correct", "format_ok"),
          group_by=("condition", "difficulty", "task", ("block", "condition"), ("difficulty", "condition")),
          max_new_tokens=192, summarize=_math_summary,
          headline=("correct", "worked_minus_direct", "worked_minus_direct_arithmetic", "format_ok", "response_chars")),
    Suite("context", "3", _context_samples, _context_grade, with_heldout(("correct", "follows_context", "follows_memory")),
          group_by=("condition", ("condition", "k")), summarize=_context_summary,
          headline=("correct", "follows_context", "follows_memory", "correct_heldout_wording",
                    "heldout_minus_canonical_article")),
    Suite("profile", "1", _profile_samples, _profile_grade, ("refusal", "states_correct_fact", "states_wrong_fact"),
          group_by=("k",), max_new_tokens=64, summarize=_profile_summary,
          headline=("gold_score", "refusal", "states_correct_fact", "states_wrong_fact")),
    # 64 tokens: a trained denial ("No. I am Lab Assistant, made by the lab team, not ChatGPT.") is ~31 tokens,
    # and at 32 the maker's name was cut off in answers that were right
    Suite("identity", "3", _identity_samples, _identity_grade, ("own_identity", "claims_other_assistant"),
          max_new_tokens=64),
)}


def register_suite(suite: Suite) -> Suite:
    """Add a suite to SUITES: the evals stage runs it on every policy that takes every suite, `lab eval` finds
    it by name, and the report's tables show its headline metrics."""
    if suite.name in SUITES:
        raise LabError(f"a suite named '{suite.name}' is already registered; suites: {', '.join(SUITES)}")
    SUITES[suite.name] = suite
    return suite


def headline_metrics() -> dict[str, tuple[str, ...]]:
    """Suite -> the metrics summary tables show."""
    return {name: suite.headline or suite.metrics for name, suite in SUITES.items()}
