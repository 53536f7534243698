"""Does checking one's work emerge under RL: verified checks in rl-math's held-out answers, before and after.

rl-math writes each held-out problem's greedy answer (heldout/before.jsonl and after.jsonl, "response"), and
with eval_samples > 0 the share of its sampled answers holding a verified check ("sampled_check_share", with the
counts behind it in "sampled_checks").
A verified check is rewards/math_checks.py's: right arithmetic, of the answer given. `check_summary` reports

  - the verified-check rate after − before, paired by problem (greedy; and the sampled share where present);
  - accuracy after RL with a verified check − without one (two independent proportions, Newcombe's interval).
    This is observational: the problems a model checks may differ from those it does not;
  - how often a check changed the answer: a failing verified check followed by another result, and how many
    of those ended right;
  - with sampled answers, the last two over every sampled answer too ("sampled_..."): greedy answers take one
    branch where the model is split (check or answer at once), so a behaviour at 30% of samples can be 0% greedy.

rl-math puts it in summary.json ("checks"); the report's rl-math section and the claim "checking one's work
emerges under RL" (reports/claim_measures.self_check_emerges) read the same function on the same files.
"""

from __future__ import annotations

from evals.stats import newcombe, paired_difference, proportion
from rewards.math_checks import read_checks


def check_rows(samples: list[dict]) -> dict[str, dict]:
    """id -> verified (a verified check), changed (a failed check changed the answer), correct, and
    sampled_check_share when the sample has it."""
    out = {}
    for s in samples:
        r = read_checks(s.get("response", ""), s.get("question"))
        out[s["id"]] = {"verified": r.verified, "changed": r.changed, "correct": bool(s["correct"])} | (
            {"sampled_check_share": s["sampled_check_share"]} if "sampled_check_share" in s else {})
    return out


def accuracy_by_check(rows: dict[str, dict]) -> dict:
    """Accuracy of the answers with a verified check and of those without, and with − without (Newcombe)."""
    with_, without = ([r["correct"] for r in rows.values() if r["verified"] == v] for v in (True, False))
    return {"with_check": proportion(sum(with_), len(with_)), "without_check": proportion(sum(without), len(without)),
            "with_minus_without": newcombe(sum(without), len(without), sum(with_), len(with_))}


def check_summary(before: list[dict], after: list[dict]) -> dict:
    """The verified-check numbers of rl-math's held-out answers (the module docstring says which)."""
    a, b = check_rows(before), check_rows(after)
    ids = [i for i in a if i in b]
    if not ids:
        return {}
    out = {"verified_rate": paired_difference([float(a[i]["verified"]) for i in ids], [float(b[i]["verified"]) for i in ids])}
    if all("sampled_check_share" in a[i] and "sampled_check_share" in b[i] for i in ids):
        out["sampled_verified_share"] = paired_difference([a[i]["sampled_check_share"] for i in ids],
                                                          [b[i]["sampled_check_share"] for i in ids])
    for when, rows in (("before", a), ("after", b)):
        changed = [i for i in ids if rows[i]["changed"]]
        out[f"accuracy_by_check_{when}"] = accuracy_by_check({i: rows[i] for i in ids})
        out[f"changed_answer_{when}"] = proportion(len(changed), len(ids)) | {
            "ended_right": sum(rows[i]["correct"] for i in changed)}
    for when, samples in (("before", before), ("after", after)):
        if samples and all("sampled_checks" in x for x in samples):
            out |= sampled_by_check(samples, when)
    return out


def sampled_by_check(samples: list[dict], when: str) -> dict:
    """The same split over every sampled answer (math_heldout's per-problem counts, pooled): accuracy with − without
    a verified check and the share whose check changed the answer. The k answers to one problem are not
    independent, so the interval is somewhat narrower than it should be."""
    c = [x["sampled_checks"] for x in samples]
    k, checked, both = sum(x["k"] for x in c), sum(x["checked"] for x in c), sum(x["checked_correct"] for x in c)
    right = sum(round(x["sampled_share"] * x["sampled_checks"]["k"]) for x in samples)
    return {f"sampled_accuracy_by_check_{when}": {
                "with_check": proportion(both, checked), "without_check": proportion(right - both, k - checked),
                "with_minus_without": newcombe(right - both, k - checked, both, checked)},
            f"sampled_changed_answer_{when}": proportion(sum(x["changed"] for x in c), k)}
