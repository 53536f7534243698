"""The claims' measurements: each reads one effect, with its 95% CI, from the files a run wrote (None when the run
lacks them); reports/claims.py pairs each with the claim it tests.

Most effects are metrics of results.json or paired differences over samples.jsonl. Three come from the models
themselves, with an interval computed here: held-out English words split by the tokenizer (Wilson), the
embedding gap between same-group and other-group words (bootstrap over words), and the induction score over
fresh random sequences (CLT).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from evals.corpus_stats import USED_MIN_COUNT, corpus_used_ids
from evals.harness import compare
from evals.math_checks import check_summary
from evals.reading import ReadingSettings, induction_score
from evals.stats import bootstrap, mean_metric, newcombe, paired_difference, proportion
from lab.errors import LabError
from lab.model.inspect_model import default_groups, word_vectors
from lab.model.loading import load_model_and_tokenizer
from lab.model.tokenizer import encode_texts, load_tokenizer
from lab.runs import Run, read_json
from lab.stage_names import KNOWLEDGE, RL_MATH, RLHF_METHODS, SFT_IDK, SFT_MATH
from reports.claim_verdicts import Effect
from reports.common import jsonl, stage_results, suite_results
from tasks.math import split_of
from tasks.spelling import BANDS, words

# ---------------------------------------------------------------- reading the run's files


def _from_metric(m: dict | None) -> Effect | None:
    """A results.json metric ({value, ci95 (or low/high), n}) as an effect; None when absent or empty."""
    if not m or not m.get("n"):
        return None
    low, high = m["ci95"] if "ci95" in m else (m["low"], m["high"])
    return Effect(m["value"], low, high, m["n"])


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
    d = paired_difference([a[k] for k in keys], [b[k] for k in keys])
    return Effect.from_difference(d, where=where, means=True, binary=True)


def _newcombe(p1: dict, p2: dict, where: str = "") -> Effect | None:
    """p2 - p1 for two independent proportions, with Newcombe's hybrid Wilson-score interval (method 10)."""
    n1, n2 = p1["n"], p2["n"]
    if not n1 or not n2:
        return None
    d = newcombe(round(p1["value"] * n1), n1, round(p2["value"] * n2), n2)
    said = (f"{where}: " if where else "") + f"{p1['value']:.2f} → {p2['value']:.2f}"
    return Effect(d["difference"], *d["ci95"], d["n"], said)


def _has_base_model(run: Run) -> bool:
    return run.is_complete("base") and (run.stage_dir("base") / "config.json").exists()


@lru_cache(maxsize=2)
def _base_model(stage_dir: str):
    return load_model_and_tokenizer(Path(stage_dir))


# ---------------------------------------------------------------- inside the model


def tokens_split_words(run: Run) -> Effect | None:
    """Share of held-out English words (the spelling suite's split) that the run's tokenizer cuts into pieces."""
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


def similar_embeddings(run: Run) -> Effect | None:
    """Mean cosine of same-group word pairs minus other-group pairs, base model; bootstrap over words."""
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


def _induction_used(run: Run) -> Effect | None:
    """The corpus-used draw at 32 tokens, as the knowledge stage measured it (reading.json), else from the base
    model and the run's token counts; None when the run has neither."""
    path = run.stage_dir(KNOWLEDGE) / "reading.json"
    rows = read_json(path).get("induction_used", []) if path.exists() else []
    row = next((r for r in rows if r["length"] == 32 and "by_row" in r), None)
    allowed = corpus_used_ids(run.stage_dir("base") / "data") if row is None and _has_base_model(run) else None
    if allowed is not None:
        model, _ = _base_model(str(run.stage_dir("base")))
        row = induction_score(model, ReadingSettings(induction_rows=INDUCTION_SEQUENCES), allowed_ids=allowed,
                              length=32)
    if row is None:
        return None
    m = row["by_row"]
    return Effect(m["value"], *m["ci95"], m["n"], f"{m['n']} sequences of 32 tokens drawn from the {row['ids']} "
                  f"ids the corpus uses {USED_MIN_COUNT}+ times")


def base_induction(run: Run) -> Effect | None:
    """Induction score (1 - loss on a repeated random sequence's 2nd copy / 1st) of the base model, one score a
    sequence, CLT over sequences: on ids the corpus uses (evals/corpus_stats.corpus_used_ids) where the run has
    them, else (a run without its token files) uniform over the vocabulary, one fresh sequence a seed."""
    used = _induction_used(run)
    if used is not None or not _has_base_model(run):
        return used
    model, _ = _base_model(str(run.stage_dir("base")))
    scores = [induction_score(model, ReadingSettings(induction_rows=1, seed=seed))["score"]
              for seed in range(INDUCTION_SEQUENCES)]
    m = mean_metric(scores)
    return Effect(m["value"], *m["ci95"], m["n"], f"{m['n']} sequences of 32 tokens, uniform over the vocabulary")


# ---------------------------------------------------------------- knowledge and hallucination


def _experiment(run: Run, name: str) -> dict:
    """experiments/NAME/results.json of the run, {} when that experiment has not run."""
    return stage_results(run, f"experiments/{name}")


def _knowledge_rows(run: Run) -> list[dict]:
    return [r for r in _experiment(run, "knowledge").get("rows", []) if r["phrasing"] == "corpus"]


def knowledge_grows(run: Run) -> Effect | None:
    rows = sorted(_knowledge_rows(run), key=lambda r: r["k"])
    if len(rows) < 2:
        return None
    return _newcombe(rows[0]["accuracy"], rows[-1]["accuracy"], f"k = {rows[0]['k']} → k = {rows[-1]['k']}")


def invented_fluently(run: Run) -> Effect | None:
    unseen = [r for r in _knowledge_rows(run) if r["k"] == 0]
    return _from_metric(unseen[0]["confident_wrong"]) if unseen else None


def _stage_minus_parent(run: Run, parent: str, stage: str, suite: str, metric: str) -> Effect | None:
    """stage − parent on one binary metric, paired over the samples both evaluated (evals.harness.compare)."""
    try:
        d = compare(run.stage_dir(parent) / "evals", run.stage_dir(stage) / "evals", suite, metric)
    except LabError:  # a stage or its samples missing
        return None
    return Effect.from_difference(d, means=True, binary=True)


def sft_makes_an_assistant(run: Run) -> Effect | None:
    return _stage_minus_parent(run, "base", "sft", "identity", "own_identity")


def idk_cuts_hallucination(run: Run) -> Effect | None:
    return _stage_minus_parent(run, "sft", SFT_IDK, "hallucination", "hallucinated_unseen")


def lookup_replaces_guessing(run: Run) -> Effect | None:
    """The same k = 0 questions closed-book and with tools on (id + "|tools"), sft-idk, paired by question."""
    rows = _samples(run, SFT_IDK, "hallucination")
    closed = {r["id"]: float(r["hallucinated_unseen"]) for r in rows if "hallucinated_unseen" in r}
    tools = {r["id"].removesuffix("|tools"): float(r["hallucinated_unseen_with_tools"])
             for r in rows if "hallucinated_unseen_with_tools" in r}
    return _paired(closed, tools)


# ---------------------------------------------------------------- the context window


def _context(run: Run, condition: str, k: int | None = None) -> dict[str, dict]:
    """sft-idk's context samples of one condition (and exposure k) asked canonically, keyed by question (the id
    less its condition)."""
    return {r["id"].rsplit("|", 1)[0]: r for r in _samples(run, SFT_IDK, "context")
            if r["extras"]["condition"] == condition and (k is None or r["extras"]["k"] == k)
            and r["extras"].get("wording", "canonical") == "canonical"}


def context_beats_parameters(run: Run) -> Effect | None:
    none, article = _context(run, "none", 0), _context(run, "article", 0)
    return _paired({q: float(r["correct"]) for q, r in none.items()}, {q: float(r["correct"]) for q, r in article.items()})


def context_overrides_parameters(run: Run) -> Effect | None:
    """Counterfactual articles about the best-known people: answers that follow the article minus answers that
    follow the memorised value, paired within each question."""
    every = _context(run, "counterfactual")
    if not every:
        return None
    top = max(r["extras"]["k"] for r in every.values())
    rows = [r for r in every.values() if r["extras"]["k"] == top]
    d = paired_difference([float(r["follows_memory"]) for r in rows], [float(r["follows_context"]) for r in rows])
    return Effect.from_difference(d, where=f"k = {top}", binary=True)


# ---------------------------------------------------------------- tokens to think, spelling, tools


def worked_minus_direct(run: Run) -> Effect | None:
    """On sft-math (both forms practised on the same problems; rl-math then trains the worked form alone, so it
    is no fair comparison), the arithmetic block, whose procedure it practised; sft-idk if sft-math did not run."""
    for stage in (SFT_MATH, SFT_IDK):
        effect = _metric(run, stage, "math", "worked_minus_direct_arithmetic")
        if effect:
            return Effect(effect.value, effect.low, effect.high, effect.n, stage)
    return None


def spelling_fails(run: Run) -> Effect | None:
    return _metric(run, SFT_IDK, "spelling", "correct", ("condition", "direct"))


def spelling_metric(name: str) -> Callable[[Run], Effect | None]:
    return lambda run: _metric(run, SFT_IDK, "spelling", name)


def neighbouring_tasks(run: Run) -> Effect | None:
    results = suite_results(run, SFT_IDK, "tooluse")
    groups = results["by_group"].get("kind/condition", {}) if results else {}
    big, small = groups.get("big_arithmetic/tools"), groups.get("small_arithmetic/tools")
    return _newcombe(small["correct"], big["correct"], "sums → products") if big and small else None


# ---------------------------------------------------------------- RL


def _rl_math_heldout(run: Run, field: Callable[[dict], float]) -> Effect | None:
    """rl-math's held-out problems before and after RL (rl-math/heldout/*.jsonl), paired by problem."""
    folder = run.stage_dir(RL_MATH) / "heldout"
    before, after = ({r["id"]: field(r) for r in jsonl(folder / f"{when}.jsonl")} for when in ("before", "after"))
    return _paired(before, after)


def rl_improves(run: Run) -> Effect | None:
    return _rl_math_heldout(run, lambda r: float(r["correct"]))


def self_check_emerges(run: Run) -> Effect | None:
    """Verified-check rate after − before (evals/math_checks.py), paired by problem: each problem's share of sampled
    answers with a check where rl-math sampled them (greedy answers take one branch where the model is split), else
    its greedy answer. The claim also needs answers with a check to be right more often than those without (after
    RL, the same answers), or Effect.unmet says the two accuracies."""
    folder = run.stage_dir(RL_MATH) / "heldout"
    s = check_summary(jsonl(folder / "before.jsonl"), jsonl(folder / "after.jsonl"))
    if not s:
        return None
    sampled = "sampled_accuracy_by_check_after" in s
    acc = s["sampled_accuracy_by_check_after" if sampled else "accuracy_by_check_after"]
    w, wo = acc["with_check"], acc["without_check"]
    share = lambda m: f"{m['value']:.2f} (n {m['n']})" if m["n"] else "– (n 0)"  # noqa: E731
    said = f"{'sampled' if sampled else 'greedy'} answers; accuracy after RL with a check {share(w)} vs without {share(wo)}"
    unmet = "" if w["n"] and wo["n"] and w["value"] > wo["value"] else said
    # On a right answer a copied operand is also a right check: only a check that catches a wrong result shows
    # checking itself, so checks that change the answer must not be absent after RL, nor rarer than before.
    key = "sampled_changed_answer_{}" if sampled else "changed_answer_{}"
    caught = [s[key.format(when)] for when in ("before", "after")]
    counts = " → ".join(f"{round(c['value'] * c['n'])} of {c['n']}" for c in caught)
    if not unmet and (caught[1]["value"] == 0 or caught[1]["value"] < caught[0]["value"]):
        unmet = (f"checks that caught a wrong result and changed the answer, before → after RL: {counts}; the rise is "
                 "in checks of answers that were already right")
    said += f"; checks that changed the answer {counts}"
    return Effect.from_difference(s["sampled_verified_share" if sampled else "verified_rate"], where=said, means=True,
                                  binary=True, unmet=unmet)


def rl_beats_sft(run: Run) -> Effect | None:
    arm = _experiment(run, "math-rewards").get("arms", {}).get("sft", {})
    if "vs_baseline" not in arm:
        return None
    return Effect.from_difference(arm["vs_baseline"], sign=-1, binary=True)  # baseline - sft


def reward_model_gamed(run: Run) -> Effect | None:
    """Gold at the end minus its peak along the RM-gamed run (experiments/rm-gamed, else `lab experiment goodhart`'s
    first reward model), on prompts the peak was not chosen on."""
    for name in ("rm-gamed", "goodhart"):
        rms = _experiment(run, name).get("rms", {})
        if rms:
            rm, r = next(iter(rms.items()))
            turn, path = r["turnover"], r["path"]
            where = (f"experiments/{name}, {rm}: RM held-out accuracy {r['rm_heldout_accuracy']:.2f}, peak at step "
                     f"{turn['peak_step']}, proxy {path[0]['proxy']:.2f} → {path[-1]['proxy']:.2f}")
            return Effect.from_difference(turn["final_minus_peak"], means=True, where=where)
    return None


def ppo_vs_dpo(run: Run) -> Effect | None:
    """Gold of rlhf-ppo minus dpo on the same fixed prompts (the experiment's samples, one line a prompt)."""
    folder = run.stage_dir(RLHF_METHODS) / "samples"
    ppo, dpo = jsonl(folder / "rlhf-ppo.jsonl"), jsonl(folder / "dpo.jsonl")
    kl = _experiment(run, "rlhf-methods").get("methods")
    if not kl or not ppo or len(ppo) != len(dpo) or any(a["person"] != b["person"] for a, b in zip(ppo, dpo)):
        return None
    where = f"KL {kl['rlhf-ppo']['kl']['value']:.2f} vs {kl['dpo']['kl']['value']:.2f}"
    return Effect.from_difference(paired_difference([a["gold"] for a in dpo], [a["gold"] for a in ppo]), where=where,
                                  means=True)


# ---------------------------------------------------------------- scaling

T_975 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23)  # Student t quantiles, 1-10 degrees of freedom


def power_law(run: Run) -> Effect | None:
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


def abrupt_copying(run: Run) -> Effect | None:
    """8-digit copying, exact match: the largest rise between neighbouring sizes of the sweep, with its CI (each size
    from reading_snapshot's 40 strings, evals/reading.SNAPSHOT). The rule (lab/experiments/scaling.abruptness)
    also asks per-digit accuracy to take its largest step at the same place; where it does not, the jump is
    Schaeffer et al.'s mirage and the claim is unmet. A sweep from before the rule had no continuous score: None."""
    r = _experiment(run, "scaling")
    if "abruptness" not in r:
        return None
    abrupt, rows = r["abruptness"], {x["size"]: x for x in r["rows"]}
    step, n = abrupt["largest_exact"], abrupt["n"]
    a, b = (proportion(round(rows[step[end]]["reading"]["copy_digits_8"] * n), n) for end in ("from", "to"))
    effect = _newcombe(a, b, f"{step['from']} → {step['to']}, {abrupt['verdict']}")
    if effect is not None and abrupt["verdict"] == "abrupt only under exact match":
        effect = replace(effect, unmet="abrupt only under exact match: the continuous metric's largest step is elsewhere")
    return effect


# ---------------------------------------------------------------- question wording


def varied_wording_extracts(run: Run) -> Effect | None:
    """experiments/wording: held-out-wording accuracy of sft-idk (varied SFT wording) minus its canonical-wording twin,
    paired over the same samples."""
    r = _experiment(run, "wording")
    if "varied_minus_canonical" not in r:
        return None
    return Effect.from_difference(r["varied_minus_canonical"], where=f"k >= {r['min_k']}", means=True, binary=True)
