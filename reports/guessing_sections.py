"""The report's section on grading that rewards guessing (experiments/guessing, lab/experiments/guessing.py), and the
claims-table measure that reads it: hallucination on never-seen people, zero_one arm − penalised arm, paired, with
the side condition that the penalty costs at most KNOWN_ACCURACY_MARGIN of accuracy on well-known people.

(The measure lives here, beside the section, rather than in reports/claim_measures.py: one experiment, one module.)
"""

from __future__ import annotations

from lab.runs import Run
from lab.stage_names import GUESSING
from reports.claim_verdicts import Effect
from reports.common import stage_results

# Issue #35's rule: the penalised arm's accuracy on known people (k >= known_min_k) may be at most this much lower
KNOWN_ACCURACY_MARGIN = 0.05


def guessing_effect(results: dict) -> Effect | None:
    """The claim's effect from experiments/guessing's results: zero_one − penalised hallucination (answered, not
    refused) on never-seen people, paired, its CLT interval clipped to [-1, 1]; `unmet` names the two accuracies on
    known people when the penalised arm's is more than KNOWN_ACCURACY_MARGIN below the zero_one arm's."""
    d = results.get("zero_one_minus_penalised")
    if not d or not d.get("n"):
        return None
    models, k = results["models"], results["known_min_k"]
    zero_one, penalised = models["zero_one"]["known"]["correct"]["value"], models["penalised"]["known"]["correct"]["value"]
    accuracies = f"correct on k >= {k}: zero_one {zero_one:.2f}, penalised {penalised:.2f}"
    unmet = ""
    if penalised < zero_one - KNOWN_ACCURACY_MARGIN:
        unmet = f"{accuracies}: the penalty costs more than {KNOWN_ACCURACY_MARGIN:.2f} of accuracy on known people"
    return Effect.from_difference(d, binary=True, unmet=unmet, where=f"never-seen answered: penalised "
                                  f"{d['mean_a']:.2f}, zero_one {d['mean_b']:.2f}; {accuracies}")


def guessing_breeds_hallucination(run: Run) -> Effect | None:
    """The claims-table measure: guessing_effect of the run's experiments/guessing (None when it has not run)."""
    return guessing_effect(stage_results(run, GUESSING))


def guessing_sections(run: Run, stage: str = GUESSING) -> list[tuple[str, list]]:
    """The stage's table with what was trained and asked, when the stage ran."""
    results = stage_results(run, stage)
    table = run.stage_dir(stage) / "table.md"
    if not results or not table.exists():
        return []
    t = results.get("training", {})
    trained = ", ".join(f"{arm} ({r['reward']}): {r['steps']} steps on {r['prompts']} questions" for arm, r in t.items())
    said = results.get("start_refusals", {})
    items = [("text", "sft-idk trained further with RL (the shared policy-gradient core) on questions about its SFT "
                      "people, in two arms that differ in their reward alone: 0/1 grading (a refusal earns what a wrong "
                      "answer earns) and a grading that costs a wrong answer −1 (right +1, \"I don't know\" 0). "
                      f"{trained}. sft-idk and both arms then answer held-out people, closed book: never-seen ones "
                      "(k = 0, where any answer is made up) and well-known ones (k >= "
                      f"{results['known_min_k']}). Graded as the hallucination suite grades. "
                      f"{said.get('say_refusal', 0)} of sft-idk's {said.get('n', 0)} refusals here say "
                      f"{said.get('refusal', '')!r}."),
             ("markdown", table.read_text())]
    effect = guessing_effect(results)
    if effect is not None and effect.unmet:
        items.append(("text", f"Side condition unmet: {effect.unmet}."))
    return [(f"Grading that rewards guessing ({run.name})", items)]
