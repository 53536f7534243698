"""The report's section on RL past a fallible demonstrator (experiments/demonstrator, lab/experiments/demonstrator.py),
and the claims-table measure that reads it: RL − demonstrator on held-out problems of the practised procedure,
paired, with the side condition that RL also beats SFT on the demonstrator's traces (RL − SFT-on-noisy with its CI
above 0): surpassing the demonstrator while imitation of it does as well is no sign that RL did it.

(The measure lives here, beside the section, rather than in reports/claim_measures.py: one experiment, one module.)
"""

from __future__ import annotations

from lab.runs import Run
from lab.stage_names import DEMONSTRATOR
from reports.claim_verdicts import Effect
from reports.common import jsonl, stage_results


def demonstrator_effect(results: dict) -> Effect | None:
    """The claim's effect from experiments/demonstrator's results: RL − demonstrator on the held-out two-digit split,
    paired; `unmet` says so when RL − SFT-on-noisy there does not have its CI above 0."""
    heldout = results.get("splits", {}).get("heldout", {})
    d, vs_sft = heldout.get("rl_minus_demonstrator"), heldout.get("rl_minus_sft")
    if not d or not d.get("n") or not vs_sft:
        return None
    over_sft = Effect.from_difference(vs_sft, binary=True)
    said = f"RL − SFT-on-noisy {over_sft.value:+.3f} [{over_sft.low:+.3f}, {over_sft.high:+.3f}]"
    unmet = "" if over_sft.low > 0 else f"{said}: RL does not beat imitation of the demonstrator"
    return Effect.from_difference(d, binary=True, unmet=unmet,
                                  where=f"demonstrator {d['mean_a']:.2f} → RL {d['mean_b']:.2f}; {said}")


def rl_surpasses_demonstrator(run: Run) -> Effect | None:
    """The claims-table measure: demonstrator_effect of the run's experiments/demonstrator (None when it has not run)."""
    return demonstrator_effect(stage_results(run, DEMONSTRATOR))


def demonstrator_sections(run: Run, stage: str = DEMONSTRATOR) -> list[tuple[str, list]]:
    """The stage's table, what was trained, and one error-class problem as the demonstrator and both models answer
    it, when the stage ran."""
    results = stage_results(run, stage)
    table = run.stage_dir(stage) / "table.md"
    if not results or not table.exists():
        return []
    sft, rl, rules = results["sft"], results["rl"], results["rules"]
    solved = ("" if rl.get("groups_solved_first") is None else
              f"; groups holding a right answer: {rl['groups_solved_first']:.2f} at the first step, "
              f"{rl['groups_solved_last']:.2f} at the last")
    items = [("text", f"A demonstrator right on exactly {results['rate']:.2f} of its problems writes worked solutions "
                      "of two-digit column addition and subtraction; on the rest (its error class, drawn as a fixed "
                      f"share) it follows one wrong rule: in addition it {rules['+']}, in subtraction it "
                      f"{rules['-']}. sft-idk fine-tuned on {sft['problems']} of its solutions ({sft['steps']} steps, "
                      f"{sft['replayed']} of sft-idk's conversations replayed) is SFT-on-noisy; RL from it with the "
                      f"verifier (correctness + 0.1 format, {rl['steps']} steps on {rl['train_problems']} problems drawn "
                      f"the same way{solved}) is RL. All three answer the same held-out problems, greedily, graded "
                      "by the verifier: two-digit ones with the practice's share in the error class, and three-digit "
                      "ones no practice showed (the demonstrator's answer there is its rule applied to them). "
                      "Differences are paired per problem."),
             ("markdown", table.read_text())]
    example = _example(run.stage_dir(stage) / "samples" / "heldout.jsonl")
    if example:
        items += [("text", "One held-out error-class problem, as the demonstrator, SFT-on-noisy and RL answered it:"),
                  ("markdown", example)]
    return [(f"RL past a fallible demonstrator ({run.name})", items)]


def _example(path) -> str:
    """The first error-class problem RL got right (else the first one): gold, the demonstrator's answer, each model's
    response."""
    wrong = [r for r in jsonl(path) if r["error_class"]]
    if not wrong:
        return ""
    r = next((r for r in wrong if r["correct"].get("rl")), wrong[0])
    lines = [f"**{r['question']}** gold {r['gold']}, the demonstrator's answer {r['demonstrator_answer']}", ""]
    for arm, name in (("sft", "SFT-on-noisy"), ("rl", "RL")):
        if arm in r["responses"]:
            verdict = "right" if r["correct"][arm] else "wrong"
            lines += [f"{name} ({verdict}):", "", "```", r["responses"][arm].strip(), "```", ""]
    return "\n".join(lines)
