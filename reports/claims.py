"""The claims table the report opens with: each claim the lab tests, the one effect that tests it, and a verdict.

A claim is one entry of CLAIMS: its wording, the experiment (named so a reader can find it in the run), a
function that reads the effect from the files the run wrote (or None when the run lacks them), the command
that measures it, and which side of "no effect" the claim predicts. `claim_rows` turns them into table rows.

Verdicts, from the effect's 95% CI against the claim's no-effect value:
  shown                    the CI excludes no effect, on the claimed side, and the effect is big enough to count
  not shown at this size   the CI includes no effect, or the effect is below the claim's smallest effect
  contradicted             the CI excludes no effect on the other side
  not measured in this run the run lacks the stage or file (the row says which command measures it)

Most effects are metrics of results.json or paired differences over samples.jsonl. Three come from the models
themselves, with an interval computed here: held-out English words split by the tokenizer (Wilson), the
embedding gap between same-group and other-group words (bootstrap over words), and the induction score over
fresh random sequences (CLT).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evals.stats import mean_metric, paired_difference, proportion, wilson_interval
from lab.runs import Run, read_json
from reports.common import jsonl, suite_results


@dataclass(frozen=True)
class Effect:
    value: float
    low: float
    high: float
    n: int
    where: str = ""  # appended to the experiment's description (e.g. which stage it was read from)


@dataclass(frozen=True)
class Claim:
    claim: str
    experiment: str  # what is measured, named so a reader can find it in the run
    measure: Callable[[Run], Effect | None]  # None: the run lacks the stage or file
    command: str  # what measures it when the run lacks it
    direction: int = +1  # +1: the claim predicts an effect above `null`; -1: below
    null: float = 0.0  # the value of "no effect"
    min_effect: float = 0.05  # smaller effects do not count, even when the CI excludes no effect
    signed: bool = True  # a difference (shown with its sign) rather than a level


NOT_MEASURED = "not measured in this run"


def _measured(effect: Effect | None) -> bool:
    return effect is not None and not any(math.isnan(x) for x in (effect.value, effect.low, effect.high))


def _ci_side(claim: Claim, effect: Effect) -> int:
    """+1 when the whole CI lies on the claimed side of no effect, -1 on the other side, 0 when it straddles."""
    low, high = (effect.low - claim.null) * claim.direction, (effect.high - claim.null) * claim.direction
    if min(low, high) > 0:  # direction -1 swaps the ends
        return +1
    return -1 if max(low, high) < 0 else 0


def verdict(claim: Claim, effect: Effect | None) -> str:
    if not _measured(effect):
        return f"{NOT_MEASURED} (`{claim.command}`)"
    side = _ci_side(claim, effect)
    if side > 0:
        big_enough = (effect.value - claim.null) * claim.direction >= claim.min_effect
        return "shown" if big_enough else "not shown at this size"
    return "contradicted" if side < 0 else "not shown at this size"


def _format(effect: Effect, signed: bool) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(effect.value)} [{f.format(effect.low)}, {f.format(effect.high)}]"


def claim_rows(run: Run, claims: tuple[Claim, ...] | None = None) -> list[list[str]]:
    """claim | experiment | effect [95% CI] | n | verdict, one row a claim (the seed columns will join here)."""
    rows = []
    for c in claims if claims is not None else CLAIMS:
        effect = c.measure(run)
        measured = effect is not None and not math.isnan(effect.value)
        where = f"; {effect.where}" if measured and effect.where else ""
        rows.append([c.claim, c.experiment + where, _format(effect, c.signed) if measured else "–",
                     effect.n if measured else "–", verdict(c, effect)])
    return rows


# ---------------------------------------------------------------- reading the run's files


def _from_metric(m: dict | None) -> Effect | None:
    """A results.json metric ({value, ci95 (or low/high), n}) as an effect; None when absent or empty."""
    if not m or not m.get("n"):
        return None
    low, high = m["ci95"] if "ci95" in m else (m["low"], m["high"])
    return Effect(m["value"], low, high, m["n"])


def _from_difference(d: dict, sign: int = +1, where: str = "", means: bool = False, binary: bool = False) -> Effect:
    """A paired_difference dict as an effect; sign -1 flips it (A - B instead of B - A). `means` names the two
    means in the row ("A → B"); `binary`: a difference of 0/1 values, whose CLT interval is clipped to [-1, 1]."""
    low, high = sorted(x * sign for x in d["ci95"])
    if binary:
        low, high = max(low, -1.0), min(high, 1.0)
    said = [f"{d['mean_a']:.2f} → {d['mean_b']:.2f}"] if means else []
    return Effect(d["difference"] * sign, low, high, d["n"], "; ".join(said + [where] if where else said))


def _metric(run: Run, stage: str, suite: str, name: str, group: tuple[str, str] | None = None) -> Effect | None:
    results = suite_results(run, stage, suite)
    if results is None:
        return None
    metrics = results.get("by_group", {}).get(group[0], {}).get(group[1], {}) if group else results["metrics"]
    return _from_metric(metrics.get(name))


def _samples(run: Run, stage: str, suite: str) -> list[dict]:
    return jsonl(run.stage_dir(stage) / "evals" / suite / "samples.jsonl")


def _paired(a: dict[str, float], b: dict[str, float], where: str = "") -> Effect | None:
    """Mean of b - a over the keys both have, with paired_difference's CLT interval."""
    keys = sorted(k for k in a if k in b)
    if not keys:
        return None
    return _from_difference(paired_difference([a[k] for k in keys], [b[k] for k in keys]), where=where, means=True,
                            binary=True)


def _newcombe(p1: dict, p2: dict, where: str = "") -> Effect | None:
    """p2 - p1 for two independent proportions, with Newcombe's hybrid Wilson-score interval (method 10)."""
    n1, n2 = p1["n"], p2["n"]
    if not n1 or not n2:
        return None
    x1, x2 = round(p1["value"] * n1), round(p2["value"] * n2)
    a, b = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson_interval(x1, n1), wilson_interval(x2, n2)
    d = b - a
    said = (f"{where}: " if where else "") + f"{a:.2f} → {b:.2f}"
    return Effect(d, d - math.sqrt((b - l2) ** 2 + (u1 - a) ** 2), d + math.sqrt((u2 - b) ** 2 + (a - l1) ** 2),
                  n1 + n2, said)


def _has_base_model(run: Run) -> bool:
    return run.is_complete("base") and (run.stage_dir("base") / "config.json").exists()


@lru_cache(maxsize=2)
def _base_model(stage_dir: str):
    from lab.model.loading import load_model_and_tokenizer

    return load_model_and_tokenizer(Path(stage_dir))


# ---------------------------------------------------------------- inside the model


def _tokens_split_words(run: Run) -> Effect | None:
    """Share of held-out English words (the spelling suite's split) that the run's tokenizer cuts into pieces."""
    from lab.model.tokenizer import encode_texts, load_tokenizer
    from tasks.math import split_of
    from tasks.spelling import BANDS, words

    folder = run.stage_dir("tokenizer")
    if not (folder / "tokenizer.json").exists():
        return None
    tokenizer = load_tokenizer(folder)
    held = [w for band in BANDS for w in words(band) if split_of(w) == "heldout"]
    pieces = encode_texts(tokenizer, [" " + w for w in held])  # mid-sentence form: leading space glued on
    m = proportion(sum(len(p) > 1 for p in pieces), len(held))
    return Effect(m["value"], *m["ci95"], m["n"])


# Years cluster by construction (every digit is a token: " 1957" and " 1962" share pieces), which measures the
# tokenizer, not learning (lab/model/inspect_model.default_groups): they are left out of the claim.
EMBEDDING_GROUPS = ("cities", "fields", "universities", "first names")


def _similar_embeddings(run: Run) -> Effect | None:
    """Mean cosine of same-group word pairs minus other-group pairs, base model; bootstrap over words."""
    import numpy as np

    from evals.stats import bootstrap
    from lab.model.inspect_model import default_groups, word_vectors

    if not _has_base_model(run):
        return None
    model, tokenizer = _base_model(str(run.stage_dir("base")))
    groups = {g: ws for g, ws in default_groups().items() if g in EMBEDDING_GROUPS}
    vectors = np.concatenate([word_vectors(model, tokenizer, ws).numpy() for ws in groups.values()])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cos = vectors @ vectors.T
    label = np.array([i for i, ws in enumerate(groups.values()) for _ in ws])

    def gap(idx: list[int]) -> float:
        idx = np.array(idx)
        same = label[idx][:, None] == label[idx][None, :]
        distinct = idx[:, None] != idx[None, :]  # a word drawn twice is not a pair with itself
        sub = cos[np.ix_(idx, idx)]
        return float(sub[same & distinct].mean() - sub[~same].mean())

    m = bootstrap(list(range(len(label))), gap, random.Random(0))
    return Effect(m["value"], *m["ci95"], m["n"], f"{m['n']} words")


INDUCTION_SEQUENCES = 32


def _induction(run: Run) -> Effect | None:
    """Induction score (1 - loss on a repeated random sequence's 2nd copy / 1st) of the base model, one score a
    fresh sequence (evals/reading.induction_score with one row and its own seed), CLT over sequences."""
    from evals.reading import ReadingSettings, induction_score

    if not _has_base_model(run):
        return None
    model, _ = _base_model(str(run.stage_dir("base")))
    scores = [induction_score(model, ReadingSettings(induction_rows=1, seed=seed))["score"]
              for seed in range(INDUCTION_SEQUENCES)]
    m = mean_metric(scores)
    return Effect(m["value"], *m["ci95"], m["n"], f"{m['n']} sequences of 32 tokens")


# ---------------------------------------------------------------- knowledge and hallucination


def _experiment(run: Run, name: str) -> dict:
    """experiments/NAME/results.json of the run, {} when that experiment has not run."""
    path = run.stage_dir(f"experiments/{name}") / "results.json"
    return read_json(path) if path.exists() else {}


def _knowledge_rows(run: Run) -> list[dict]:
    return [r for r in _experiment(run, "knowledge").get("rows", []) if r["phrasing"] == "corpus"]


def _knowledge_grows(run: Run) -> Effect | None:
    rows = sorted(_knowledge_rows(run), key=lambda r: r["k"])
    if len(rows) < 2:
        return None
    return _newcombe(rows[0]["accuracy"], rows[-1]["accuracy"], f"k = {rows[0]['k']} → k = {rows[-1]['k']}")


def _invented_fluently(run: Run) -> Effect | None:
    unseen = [r for r in _knowledge_rows(run) if r["k"] == 0]
    return _from_metric(unseen[0]["confident_wrong"]) if unseen else None


def _stage_minus_parent(run: Run, parent: str, stage: str, suite: str, metric: str) -> Effect | None:
    """stage − parent on one binary metric, paired over the samples both evaluated (evals.harness.compare)."""
    from evals.harness import compare
    from lab.errors import LabError

    try:
        d = compare(run.stage_dir(parent) / "evals", run.stage_dir(stage) / "evals", suite, metric)
    except LabError:  # a stage or its samples missing
        return None
    return _from_difference(d, means=True, binary=True)


def _sft_makes_an_assistant(run: Run) -> Effect | None:
    return _stage_minus_parent(run, "base", "sft", "identity", "own_identity")


def _idk_cuts_hallucination(run: Run) -> Effect | None:
    return _stage_minus_parent(run, "sft", "sft-idk", "hallucination", "hallucinated_unseen")


def _lookup_replaces_guessing(run: Run) -> Effect | None:
    """The same k = 0 questions closed-book and with tools on (id + "|tools"), sft-idk, paired by question."""
    rows = _samples(run, "sft-idk", "hallucination")
    closed = {r["id"]: float(r["hallucinated_unseen"]) for r in rows if "hallucinated_unseen" in r}
    tools = {r["id"].removesuffix("|tools"): float(r["hallucinated_unseen_with_tools"])
             for r in rows if "hallucinated_unseen_with_tools" in r}
    return _paired(closed, tools)


# ---------------------------------------------------------------- the context window


def _context(run: Run, condition: str, k: int | None = None) -> dict[str, dict]:
    """sft-idk's context samples of one condition (and exposure k), keyed by question (the id less its condition)."""
    return {r["id"].rsplit("|", 1)[0]: r for r in _samples(run, "sft-idk", "context")
            if r["extras"]["condition"] == condition and (k is None or r["extras"]["k"] == k)}


def _context_beats_parameters(run: Run) -> Effect | None:
    none, article = _context(run, "none", 0), _context(run, "article", 0)
    return _paired({q: float(r["correct"]) for q, r in none.items()}, {q: float(r["correct"]) for q, r in article.items()})


def _context_overrides_parameters(run: Run) -> Effect | None:
    """Counterfactual articles about the best-known people: answers that follow the article minus answers that
    follow the memorised value, paired within each question."""
    every = _context(run, "counterfactual")
    if not every:
        return None
    top = max(r["extras"]["k"] for r in every.values())
    rows = [r for r in every.values() if r["extras"]["k"] == top]
    d = paired_difference([float(r["follows_memory"]) for r in rows], [float(r["follows_context"]) for r in rows])
    return _from_difference(d, where=f"k = {top}", binary=True)


# ---------------------------------------------------------------- tokens to think, spelling, tools


def _worked_minus_direct(run: Run) -> Effect | None:
    """On sft-math (both forms practised on the same problems; rl-math then trains the worked form alone, so it
    is no fair comparison), the arithmetic block, whose procedure it practised; sft-idk if sft-math did not run."""
    for stage in ("sft-math", "sft-idk"):
        effect = _metric(run, stage, "math", "worked_minus_direct_arithmetic")
        if effect:
            return Effect(effect.value, effect.low, effect.high, effect.n, stage)
    return None


def _spelling_fails(run: Run) -> Effect | None:
    return _metric(run, "sft-idk", "spelling", "correct", ("condition", "direct"))


def _spelling_metric(name: str) -> Callable[[Run], Effect | None]:
    return lambda run: _metric(run, "sft-idk", "spelling", name)


def _neighbouring_tasks(run: Run) -> Effect | None:
    results = suite_results(run, "sft-idk", "tooluse")
    groups = results["by_group"].get("kind/condition", {}) if results else {}
    big, small = groups.get("big_arithmetic/tools"), groups.get("small_arithmetic/tools")
    return _newcombe(small["correct"], big["correct"], "sums → products") if big and small else None


# ---------------------------------------------------------------- RL


def _rl_math_heldout(run: Run, field: Callable[[dict], float]) -> Effect | None:
    """rl-math's held-out problems before and after RL (rl-math/heldout/*.jsonl), paired by problem."""
    folder = run.stage_dir("rl-math") / "heldout"
    before, after = ({r["id"]: field(r) for r in jsonl(folder / f"{when}.jsonl")} for when in ("before", "after"))
    return _paired(before, after)


def _rl_improves(run: Run) -> Effect | None:
    return _rl_math_heldout(run, lambda r: float(r["correct"]))


def _self_check_emerges(run: Run) -> Effect | None:
    from rewards.format import SELF_CHECK

    return _rl_math_heldout(run, lambda r: float(bool(SELF_CHECK.search(r["response"]))))


def _rl_beats_sft(run: Run) -> Effect | None:
    arm = _experiment(run, "math-rewards").get("arms", {}).get("sft", {})
    return _from_difference(arm["vs_baseline"], sign=-1, binary=True) if "vs_baseline" in arm else None  # baseline - sft


def _reward_model_gamed(run: Run) -> Effect | None:
    grpo = _experiment(run, "rlhf-methods").get("methods", {}).get("rlhf-grpo", {})
    if "turnover" not in grpo:
        return None
    return _from_difference(grpo["turnover"]["final_minus_peak"], means=True,
                            where=f"peak at step {grpo['turnover']['peak_step']}")


def _ppo_vs_dpo(run: Run) -> Effect | None:
    """Gold of rlhf-ppo minus dpo on the same fixed prompts (the experiment's samples, one line a prompt)."""
    folder = run.stage_dir("experiments/rlhf-methods") / "samples"
    ppo, dpo = jsonl(folder / "rlhf-ppo.jsonl"), jsonl(folder / "dpo.jsonl")
    if not ppo or len(ppo) != len(dpo) or any(a["person"] != b["person"] for a, b in zip(ppo, dpo)):
        return None
    kl = _experiment(run, "rlhf-methods")["methods"]
    where = f"KL {kl['rlhf-ppo']['kl']['value']:.2f} vs {kl['dpo']['kl']['value']:.2f}"
    return _from_difference(paired_difference([a["gold"] for a in dpo], [a["gold"] for a in ppo]), where=where,
                            means=True)


# ---------------------------------------------------------------- scaling

T_975 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23)  # Student t quantiles, 1-10 degrees of freedom


def _power_law(run: Run) -> Effect | None:
    """The fitted exponent alpha of L = E + A N^-alpha, with the t interval of the log-log slope at the fitted E
    (conditional on E, so narrower than one that also varied E)."""
    r = _experiment(run, "scaling")
    if not r:
        return None
    rows, e = r["rows"], r["fit"]["E"]
    if len(rows) < 3:
        return None
    xs = [math.log(x["non_embedding_parameters"]) for x in rows]
    ys = [math.log(x["heldout_loss"] - e) for x in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
    df = len(rows) - 2
    half = T_975[min(df, len(T_975)) - 1] * math.sqrt(resid / df / sxx)
    return Effect(-slope, -slope - half, -slope + half, len(rows), f"{len(rows)} sizes, E = {e:.2f}")


def _abrupt_copying(run: Run) -> Effect | None:
    """8-digit copying of the first size with 2 layers minus the 1-layer size (induction heads need two layers);
    each from reading_snapshot's 40 strings (evals/reading.SNAPSHOT)."""
    from evals.reading import SNAPSHOT

    rows = sorted(_experiment(run, "scaling").get("rows", []), key=lambda x: x["parameters"])
    one = [x for x in rows if x["layers"] == 1 and "copy_digits_8" in x.get("reading", {})]
    two = [x for x in rows if x["layers"] == 2 and "copy_digits_8" in x.get("reading", {})]
    if not one or not two:
        return None
    n = SNAPSHOT.copy_per_cell
    a, b = (proportion(round(x[0]["reading"]["copy_digits_8"] * n), n) for x in (one, two))
    return _newcombe(a, b, f"{one[0]['size']} → {two[0]['size']}")


# ---------------------------------------------------------------- the table's entries

EVAL = "lab eval RUN/sft-idk --suite {}"

CLAIMS: tuple[Claim, ...] = (
    Claim("tokens split words", "tokenizer: share of held-out English words (spelling split) cut into 2+ tokens",
          _tokens_split_words, "lab pipeline (tokenizer stage)", signed=False),
    Claim("similar words get similar embeddings", "base: mean cosine same-group − other-group word pairs (cities, "
          "fields, universities, first names), bootstrap over words", _similar_embeddings, "lab pretrain"),
    Claim("attention links related tokens (induction heads)", "base: induction score, 1 − loss on 2nd copy / 1st of "
          "a random sequence", _induction, "lab pretrain", signed=False),
    Claim("knowledge grows with exposure", "experiments/knowledge: base recall, corpus phrasing", _knowledge_grows,
          "lab pipeline (knowledge stage)"),
    Claim("unseen facts are invented fluently", "experiments/knowledge: base, k = 0, fluent but wrong (corpus "
          "phrasing)", _invented_fluently, "lab pipeline (knowledge stage)", signed=False),
    Claim("SFT makes an assistant", "sft − base, identity/own_identity (names itself on held-out questions; both "
          "get the system message that names it), paired", _sft_makes_an_assistant, "lab eval RUN/base --suite identity"),
    Claim("\"I don't know\" training cuts hallucination", "sft-idk − sft, hallucination/hallucinated_unseen, k = 0, "
          "paired", _idk_cuts_hallucination, EVAL.format("hallucination"), direction=-1),
    Claim("a lookup tool replaces guessing", "sft-idk, hallucination/hallucinated_unseen, k = 0: tools on − "
          "closed book, paired", _lookup_replaces_guessing, EVAL.format("hallucination"), direction=-1),
    Claim("the context window beats parameters", "sft-idk, context/correct, k = 0: article − no article, paired",
          _context_beats_parameters, EVAL.format("context")),
    Claim("the context window overrides parameters", "sft-idk, context, counterfactual article: follows context − "
          "follows memory, paired", _context_overrides_parameters, EVAL.format("context")),
    Claim("models need tokens to think", "math/worked_minus_direct_arithmetic: worked steps − direct answer, the "
          "same held-out two-digit sums and differences, paired", _worked_minus_direct, "lab eval RUN/sft-math --suite math"),
    Claim("counting and spelling fail on tokens", "sft-idk, spelling/correct, direct condition (tools off); fails: "
          "below 0.5", _spelling_fails, EVAL.format("spelling"), direction=-1, null=0.5, signed=False),
    Claim("step by step helps (spelling)", "sft-idk, spelling/steps_minus_direct, paired", _spelling_metric(
          "steps_minus_direct"), EVAL.format("spelling")),
    Claim("a code tool solves them", "sft-idk, spelling/tool_minus_direct, paired", _spelling_metric(
          "tool_minus_direct"), EVAL.format("spelling")),
    Claim("RL on a verifiable reward improves a half-known procedure", "rl-math: held-out problems of the trained "
          "tasks, greedy correct, after − before, paired", _rl_improves, "lab rl math RUN"),
    Claim("... and beats SFT at matched compute", "experiments/math-rewards: baseline (RL) − sft arm, held-out "
          "correct, paired", _rl_beats_sft, "lab experiment math-rewards RUN"),
    Claim("checking one's work emerges under RL", "rl-math: held-out answers with a self-check phrase "
          "(rewards/format.SELF_CHECK), after − before, paired", _self_check_emerges, "lab rl math RUN"),
    Claim("a learned reward model gets gamed", "experiments/rlhf-methods: rlhf-grpo gold, final − peak on the "
          "other half of prompts, paired", _reward_model_gamed, "lab experiment rlhf-methods RUN", direction=-1),
    Claim("PPO vs GRPO vs RLOO vs DPO: online RL beats offline DPO", "experiments/rlhf-methods: gold, rlhf-ppo − dpo, "
          "same prompts, paired", _ppo_vs_dpo, "lab experiment rlhf-methods RUN"),
    Claim("loss falls as a power law with size", "experiments/scaling: fitted alpha of held-out loss vs "
          "non-embedding parameters", _power_law, "lab experiment scaling RUN", min_effect=0.0, signed=False),
    Claim("some abilities appear abruptly with size", "experiments/scaling: 8-digit copying, 2 layers − 1 layer; "
          "abrupt: a jump of 0.25 or more", _abrupt_copying, "lab experiment scaling RUN", min_effect=0.25),
    Claim("the same model is strong and weak on neighbouring tasks", "sft-idk, tooluse/correct, tools on: 4×3-digit "
          "products − 2-digit sums (the harder one higher)", _neighbouring_tasks, EVAL.format("tooluse")),
)


# ---------------------------------------------------------------- across seeds (lab/replicate.py's runs)

REPLICATE = "experiments/replicate"  # seeds of every stage after pretraining
FULL_REPLICATE = "experiments/replicate-full"  # seeds of the whole pipeline, world included


def replicate_runs(run: Run) -> dict[int, Run]:
    """Seed -> run: the run and its most thorough finished replicate (full over after-pretraining); {} if none."""
    for stage in (FULL_REPLICATE, REPLICATE):
        if run.is_complete(stage):
            seeds = read_json(run.stage_dir(stage) / "summary.json")["seeds"]
            return {seeds[0]: run} | {s: Run.open_existing(run.stage_dir(stage) / f"seed-{s}") for s in seeds[1:]}
    return {}


def across_seeds(verdicts: list[str]) -> str:
    """One verdict from each seed's: a claim is shown (or contradicted) only when every seed shows it."""
    settled = [v for v in verdicts if not v.startswith(NOT_MEASURED)]
    if not settled:
        return verdicts[0]
    measured = "" if len(settled) == len(verdicts) else f" (measured in {len(settled)} of {len(verdicts)} seeds)"
    for word in ("shown", "contradicted"):
        if all(v == word for v in settled):
            return f"{word} in every seed{measured}" if not measured else word + measured
    shown = sum(v == "shown" for v in settled)
    return f"not shown at this size ({shown} of {len(settled)} seeds show it)"


def claims_across(runs: dict[int, Run], claims: tuple[Claim, ...] | None = None) -> list[dict]:
    """For each claim: its effect in each seed (None where unmeasured), the mean and standard deviation of the
    effects across seeds, how many seeds agree in sign with a CI excluding no effect, and the verdict across
    seeds. The record `lab experiment replicate` writes (summary.json "claims", claims.md) and the report's
    seed columns show."""
    out = []
    for c in claims if claims is not None else CLAIMS:
        effects = {seed: e if _measured(e := c.measure(run)) else None for seed, run in runs.items()}
        values = [e.value for e in effects.values() if e is not None]
        mean = sum(values) / len(values) if values else None
        sd = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None)
        out.append({"claim": c.claim, "experiment": c.experiment, "signed": c.signed,
                    "effects": {seed: None if e is None else vars(e) for seed, e in effects.items()},
                    "mean": mean, "sd": sd, "measured": len(values), "seeds": len(runs),
                    "agree": sum(e is not None and _ci_side(c, e) > 0 for e in effects.values()),
                    "verdict": across_seeds([verdict(c, e) for e in effects.values()])})
    return out


def _spread_cell(record: dict) -> str:
    if record["sd"] is None:
        return "–"
    f = "{:+.3f}" if record["signed"] else "{:.3f}"
    return f"{f.format(record['mean'])} ± {record['sd']:.3f}"


def _across_header(seeds) -> list[str]:
    return ["claim", "experiment", *(f"seed {s}: effect [95% CI]" for s in seeds), "mean ± sd (seeds)",
            "seeds agreeing (sign, CI off 0)", "verdict across seeds"]


def claim_rows_across(runs: dict[int, Run], claims: tuple[Claim, ...] | None = None,
                      records: list[dict] | None = None) -> list[list[str]]:
    """claim | experiment | effect [95% CI] in each seed | mean ± sd | seeds agreeing | verdict, one row a claim."""
    rows = []
    for r in records if records is not None else claims_across(runs, claims):
        cells = ["–" if e is None else _format(Effect(**e), r["signed"]) for e in r["effects"].values()]
        agree = f"{r['agree']} of {r['measured']}" if r["measured"] else "–"  # of the seeds that measured it
        rows.append([r["claim"], r["experiment"], *cells, _spread_cell(r), agree, r["verdict"]])
    return rows


def claims_across_markdown(runs: dict[int, Run], records: list[dict]) -> str:
    """The across-seeds claims table as markdown (the replicate experiment's own claims.md)."""
    head = _across_header(runs)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in claim_rows_across(runs, records=records)]
    return "\n".join(lines)


CLAIMS_TEXT = ("Each claim about how LLMs work or fail that this run tests, the one effect that tests it, and its "
               "95% CI. Verdicts: shown (the CI excludes no effect on the claimed side, and the effect is at least "
               "0.05 unless the row says otherwise), not shown at this size (the CI includes no effect, or the effect "
               "is smaller), contradicted (the CI excludes no effect on the other side), not measured in this run "
               "(with the command that measures it). Paired differences are over the same items; a level is against "
               "0 unless the row names another value. Every number is read from this run's files "
               "(reports/claims.py).")


def claims_section(run: Run) -> tuple[str, list]:
    """The claims table; with a finished replicate, one effect column a seed and verdicts that need every seed."""
    runs = replicate_runs(run)
    if len(runs) > 1:
        header = _across_header(runs)
        return (f"Claims and what this run shows ({run.name}, {len(runs)} seeds)", [
            ("text", CLAIMS_TEXT + " With seeds, a claim is shown only when every seed shows it; the spread of "
                     "the effect across seeds (training noise) sits beside each seed's CI over items (measurement "
                     "noise)."),
            ("table", (header, claim_rows_across(runs)))])
    return (f"Claims and what this run shows ({run.name})", [
        ("text", CLAIMS_TEXT),
        ("table", (["claim", "experiment", "effect [95% CI]", "n", "verdict"], claim_rows(run)))])
