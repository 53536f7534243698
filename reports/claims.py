"""The claims table the report opens with: each claim the lab tests, the one effect that tests it, and a verdict.

A claim is one entry of CLAIMS: its wording, the experiment (named so a reader can find it in the run), a
function that reads the effect from the files the run wrote (or None when the run lacks them), the command
that measures it, and which side of "no effect" the claim predicts. `claim_rows` turns them into table rows;
with seeds (lab/replicate.py's runs), `claim_rows_across` gives one effect column a seed.

The effects are measured in reports/claim_measures.py; the verdicts (shown, not shown at this size,
contradicted, not measured in this run) follow reports/claim_verdicts.py.
"""

from __future__ import annotations

import math

from lab.runs import Run, read_json
from reports.claim_measures import (
    abrupt_copying,
    base_induction,
    context_beats_parameters,
    context_overrides_parameters,
    idk_cuts_hallucination,
    invented_fluently,
    knowledge_grows,
    lookup_replaces_guessing,
    neighbouring_tasks,
    power_law,
    ppo_vs_dpo,
    reward_model_gamed,
    rl_beats_sft,
    rl_improves,
    self_check_emerges,
    sft_makes_an_assistant,
    similar_embeddings,
    spelling_fails,
    spelling_metric,
    tokens_split_words,
    varied_wording_extracts,
    worked_minus_direct,
)
from reports.claim_verdicts import NOT_MEASURED, Claim, Effect, ci_side, format_effect, is_measured, verdict


def claim_rows(run: Run, claims: tuple[Claim, ...] | None = None) -> list[list[str]]:
    """claim | experiment | effect [95% CI] | n | verdict, one row a claim (the seed columns will join here)."""
    rows = []
    for c in claims if claims is not None else CLAIMS:
        effect = c.measure(run)
        measured = effect is not None and not math.isnan(effect.value)
        where = f"; {effect.where}" if measured and effect.where else ""
        rows.append([c.claim, c.experiment + where, format_effect(effect, c.signed) if measured else "–",
                     effect.n if measured else "–", verdict(c, effect)])
    return rows


# ---------------------------------------------------------------- the table's entries

EVAL = "lab eval RUN/sft-idk --suite {}"

CLAIMS: tuple[Claim, ...] = (
    Claim("tokens split words", "tokenizer: share of held-out English words (spelling split) cut into 2+ tokens",
          tokens_split_words, "lab pipeline (tokenizer stage)", signed=False),
    Claim("similar words get similar embeddings", "base: mean cosine same-group − other-group word pairs (cities, "
          "fields, universities, first names), bootstrap over words", similar_embeddings, "lab pretrain"),
    Claim("attention links related tokens (induction heads)", "base: induction score, 1 − loss on 2nd copy / 1st of "
          "a random 32-token sequence of ids the corpus uses 100+ times (uniform over the vocabulary where the run "
          "has no token files); an induction head: a score of 0.5 or more", base_induction, "lab pretrain", signed=False,
          min_effect=0.5),  # a weak score is any copying at all, not the head that copies by content (issue #34's bar)
    Claim("knowledge grows with exposure", "experiments/knowledge: base recall, corpus phrasing", knowledge_grows,
          "lab pipeline (knowledge stage)"),
    Claim("unseen facts are invented fluently", "experiments/knowledge: base, k = 0, fluent but wrong (corpus "
          "phrasing)", invented_fluently, "lab pipeline (knowledge stage)", signed=False),
    Claim("SFT makes an assistant", "sft − base, identity/own_identity (names itself on held-out questions; both "
          "get the system message that names it), paired", sft_makes_an_assistant, "lab eval RUN/base --suite identity"),
    Claim("knowledge extraction needs varied wording", "experiments/wording: sft-idk (SFT questions in varied "
          "wordings) − the same sft-idk trained on the canonical wording only, held-out people, questions in held-out "
          "wordings, correct, closed book, paired", varied_wording_extracts, "lab pipeline (experiments/wording stage)"),
    Claim("\"I don't know\" training cuts hallucination", "sft-idk − sft, hallucination/hallucinated_unseen, k = 0, "
          "paired", idk_cuts_hallucination, EVAL.format("hallucination"), direction=-1),
    Claim("a lookup tool replaces guessing", "sft-idk, hallucination/hallucinated_unseen, k = 0: tools on − "
          "closed book, paired", lookup_replaces_guessing, EVAL.format("hallucination"), direction=-1),
    Claim("the context window beats parameters", "sft-idk, context/correct, k = 0: article − no article, paired",
          context_beats_parameters, EVAL.format("context")),
    Claim("the context window overrides parameters", "sft-idk, context, counterfactual article: follows context − "
          "follows memory, paired", context_overrides_parameters, EVAL.format("context")),
    Claim("models need tokens to think", "math/worked_minus_direct_arithmetic: worked steps − direct answer, the "
          "same held-out two-digit sums and differences, paired", worked_minus_direct, "lab eval RUN/sft-math --suite math"),
    Claim("counting and spelling fail on tokens", "sft-idk, spelling/correct, direct condition (tools off); fails: "
          "below 0.5", spelling_fails, EVAL.format("spelling"), direction=-1, null=0.5, signed=False),
    Claim("step by step helps (spelling)", "sft-idk, spelling/steps_minus_direct, paired", spelling_metric(
          "steps_minus_direct"), EVAL.format("spelling")),
    Claim("a code tool solves them", "sft-idk, spelling/tool_minus_direct, paired", spelling_metric(
          "tool_minus_direct"), EVAL.format("spelling")),
    Claim("RL on a verifiable reward improves a half-known procedure", "rl-math: held-out problems of the trained "
          "tasks, greedy correct, after − before, paired", rl_improves, "lab rl math RUN"),
    Claim("... and beats SFT at matched compute", "experiments/math-rewards: baseline (RL) − sft arm, held-out "
          "correct, paired", rl_beats_sft, "lab experiment math-rewards RUN"),
    Claim("checking one's work emerges under RL", "rl-math: held-out answers with a self-check phrase "
          "(rewards/math_answers.SELF_CHECK), after − before, paired", self_check_emerges, "lab rl math RUN"),
    Claim("a learned reward model gets gamed", "experiments/rlhf-methods: rlhf-grpo gold, final − peak on the "
          "other half of prompts, paired", reward_model_gamed, "lab experiment rlhf-methods RUN", direction=-1),
    Claim("PPO vs GRPO vs RLOO vs DPO: online RL beats offline DPO", "experiments/rlhf-methods: gold, rlhf-ppo − dpo, "
          "same prompts, paired", ppo_vs_dpo, "lab experiment rlhf-methods RUN"),
    Claim("loss falls as a power law with size", "experiments/scaling: fitted alpha of held-out loss vs "
          "non-embedding parameters", power_law, "lab experiment scaling RUN", min_effect=0.0, signed=False),
    Claim("some abilities appear abruptly with size", "experiments/scaling: 8-digit copying, 2 layers − 1 layer; "
          "abrupt: a jump of 0.25 or more", abrupt_copying, "lab experiment scaling RUN", min_effect=0.25),
    Claim("the same model is strong and weak on neighbouring tasks", "sft-idk, tooluse/correct, tools on: 4×3-digit "
          "products − 2-digit sums (the harder one higher)", neighbouring_tasks, EVAL.format("tooluse")),
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
        effects = {seed: e if is_measured(e := c.measure(run)) else None for seed, run in runs.items()}
        values = [e.value for e in effects.values() if e is not None]
        mean = sum(values) / len(values) if values else None
        sd = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None)
        out.append({"claim": c.claim, "experiment": c.experiment, "signed": c.signed,
                    "effects": {seed: None if e is None else vars(e) for seed, e in effects.items()},
                    "mean": mean, "sd": sd, "measured": len(values), "seeds": len(runs),
                    "agree": sum(e is not None and ci_side(c, e) > 0 for e in effects.values()),
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
        cells = ["–" if e is None else format_effect(Effect(**e), r["signed"]) for e in r["effects"].values()]
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
