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
from reports.claim_verdicts import (
    NOT_MEASURED,
    Claim,
    Effect,
    ci_side,
    detectable_effect,
    format_effect,
    is_measured,
    verdict,
)
from reports.demonstrator_sections import rl_surpasses_demonstrator
from reports.guessing_sections import guessing_breeds_hallucination

Measured = list[tuple[Claim, dict[int, Effect | None]]]  # each claim with its effect in each seed (None: unmeasured)


def measure_claims(runs: dict[int, Run], claims: tuple[Claim, ...] | None = None) -> Measured:
    """Every claim's effect in each seed's run, read once: the report's forest plot and its table show the same."""
    return [(c, {seed: e if is_measured(e := c.measure(run)) else None for seed, run in runs.items()})
            for c in (claims if claims is not None else CLAIMS)]


def with_power(signed: bool, said: str, effects: list[Effect | None]) -> str:
    """A verdict, and beside it for a difference, the smallest effect its n could detect at 80% power: whether a
    "not shown" could have been "shown" (with seeds, the largest of theirs: every seed could detect that much)."""
    found = [detectable_effect(e) for e in effects if e is not None]
    if said.startswith(NOT_MEASURED):
        return said
    unmet = [e.unmet for e in effects if e is not None and e.unmet]
    if unmet:  # the CI was not what held it back: say what was
        note = f"side condition unmet{'' if len(effects) == 1 else f' in {len(unmet)} of {len(effects)} seeds'}: {unmet[0]}"
        return f"{said[:-1]}; {note})" if said.endswith(")") else f"{said} ({note})"
    if not signed or not found or max(found) == 0:  # a CI of zero width (every pair equal) has no power to state
        return said
    seeds = "" if len(found) == 1 else " in every seed" if len(found) == len(effects) else f" in each of {len(found)} seeds"
    note = f"detectable at 80% power: ≥ {max(found):.3f}{seeds}"
    return f"{said[:-1]}; {note})" if said.endswith(")") else f"{said} ({note})"


def claim_rows(run: Run, claims: tuple[Claim, ...] | None = None, measured: Measured | None = None) -> list[list[str]]:
    """claim | experiment | effect [95% CI] | n | verdict, one row a claim (`measured`: effects already read)."""
    rows = []
    for c, effects in measured if measured is not None else measure_claims({0: run}, claims):
        effect = next(iter(effects.values()))
        where = f"; {effect.where}" if effect is not None and effect.where else ""
        rows.append([c.claim, c.experiment + where, format_effect(effect, c.signed) if effect is not None else "–",
                     effect.n if effect is not None else "–", with_power(c.signed, verdict(c, effect), [effect])])
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
    Claim("grading that rewards guessing breeds hallucination", "experiments/guessing: RL from sft-idk on SFT people's "
          "questions, 0/1 reward − penalised reward (right +1, \"I don't know\" 0, wrong −1), same prompts and steps; "
          "never-seen held-out people answered rather than refused, paired; needs accuracy on known people (k >= 8) "
          "under the penalty at most 0.05 below 0/1", guessing_breeds_hallucination,
          "lab pipeline (experiments/guessing stage)", min_effect=0.0),
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
    Claim("RL can surpass the demonstrations it started from", "experiments/demonstrator: RL (from SFT on a "
          "demonstrator right on a fixed share of two-digit sums and differences, systematically wrong on the rest) − "
          "the demonstrator, held-out problems drawn with its error share, greedy correct, paired; shown also needs "
          "RL − SFT-on-noisy with its CI above 0", rl_surpasses_demonstrator, "lab pipeline (experiments/demonstrator "
          "stage)"),
    Claim("checking one's work emerges under RL", "rl-math: held-out answers with a verified check (right "
          "arithmetic, of the answer given: rewards/math_checks.py), share of sampled answers a problem, after − "
          "before, paired; shown also needs higher accuracy with a check than without, after RL", self_check_emerges,
          "lab rl math RUN"),
    Claim("a learned reward model gets gamed", "experiments/rm-gamed: GRPO against a reward model of few comparisons, "
          "gold judge at the end − at its peak along the run, on the half of prompts the peak was not chosen on, "
          "paired", reward_model_gamed, "lab pipeline (experiments/rm-gamed stage)", direction=-1),
    Claim("PPO vs GRPO vs RLOO vs DPO: online RL beats offline DPO", "experiments/rlhf-methods: gold, rlhf-ppo − dpo, "
          "same prompts, paired", ppo_vs_dpo, "lab experiment rlhf-methods RUN"),
    Claim("loss falls as a power law with size", "experiments/scaling: fitted alpha of held-out loss vs "
          "non-embedding parameters", power_law, "lab experiment scaling RUN", min_effect=0.0, signed=False),
    Claim("some abilities appear abruptly with size", "experiments/scaling: 8-digit copying, exact match, the largest "
          "rise between neighbouring sizes; abrupt (fixed in advance): a rise of 0.25 or more where per-digit accuracy "
          "(teacher-forced, continuous) also takes its largest step, else Schaeffer et al. 2023's mirage",
          abrupt_copying, "lab pipeline (experiments/scaling stage)", min_effect=0.25),
    Claim("the same model is strong and weak on neighbouring tasks", "sft-idk, tooluse/correct, tools on: 4×3-digit "
          "products − 2-digit sums (the harder one higher)", neighbouring_tasks, EVAL.format("tooluse")),
)


# ---------------------------------------------------------------- across seeds (lab/replicate.py's runs)

REPLICATE = "experiments/replicate"  # seeds of every stage after pretraining
FULL_REPLICATE = "experiments/replicate-full"  # seeds of the whole pipeline, world included


def claim_runs(run: Run) -> dict[int, Run]:
    """Seed -> run of every seed the claims read: replicate_runs', or the run alone under its own seed."""
    return replicate_runs(run) or {read_json(run.config_path).get("seed", 0) if run.config_path.exists() else 0: run}


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


def claims_across(runs: dict[int, Run], claims: tuple[Claim, ...] | None = None,
                  measured: Measured | None = None) -> list[dict]:
    """For each claim: its effect in each seed (None where unmeasured), the mean and standard deviation of the
    effects across seeds, how many seeds agree in sign with a CI excluding no effect, and the verdict across
    seeds. The record `lab experiment replicate` writes (summary.json "claims", claims.md) and the report's
    seed columns show. `measured`: the effects, already read (measure_claims)."""
    out = []
    for c, effects in measured if measured is not None else measure_claims(runs, claims):
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
        verdict_cell = with_power(r["signed"], r["verdict"], [e and Effect(**e) for e in r["effects"].values()])
        rows.append([r["claim"], r["experiment"], *cells, _spread_cell(r), agree, verdict_cell])
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
               "(with the command that measures it); beside its verdict, a difference states the smallest effect "
               "its n could detect at 80% power ((1.96 + 0.84) × SE, SE from the 95% CI). Paired differences are over "
               "the same items; a level is against 0 unless the row names another value. Every number is read from "
               "this run's files (reports/claims.py).")


def claims_section(run: Run, measured: Measured | None = None) -> tuple[str, list]:
    """The claims table; with a finished replicate, one effect column a seed and verdicts that need every seed.
    `measured`: measure_claims(claim_runs(run)), when the caller has read it already."""
    runs = claim_runs(run)
    measured = measured if measured is not None else measure_claims(runs)
    if len(runs) > 1:
        header = _across_header(runs)
        return (f"Claims and what this run shows ({run.name}, {len(runs)} seeds)", [
            ("text", CLAIMS_TEXT + " With seeds, a claim is shown only when every seed shows it; the spread of "
                     "the effect across seeds (training noise) sits beside each seed's CI over items (measurement "
                     "noise)."),
            ("table", (header, claim_rows_across(runs, records=claims_across(runs, measured=measured))))])
    return (f"Claims and what this run shows ({run.name})", [
        ("text", CLAIMS_TEXT),
        ("table", (["claim", "experiment", "effect [95% CI]", "n", "verdict"], claim_rows(run, measured=measured)))])
