"""Checks that pay: planted slips a real check catches (tasks/math_checks.py), and the verified-check metric
(rewards/math_checks.py, evals/math_checks.py) that counts a check only when its arithmetic is right and it
checks the answer given."""

import hashlib
import re

import pytest

from evals.math_checks import check_summary
from lab.errors import LabError
from lab.presets import get_preset
from lab.train.sft_settings import MathSFTSettings
from rewards.math_checks import read_checks, verified_check
from tasks.math import BANDS, MathConfig, generate
from tasks.math_checks import column_steps, slip_line, slips
from tasks.math_solutions import add_steps, sub_steps

COLUMNS = MathConfig(seed=5, tasks=("arithmetic",), bands=(2, 3, 4), check_share=1.0, slip_share=1.0)
# The test's own reading of a check line, independent of rewards/math_checks.py's regex.
LINE = re.compile(r"Check: (\d+) ([-+]) (\d+) = (-?\d+)(?:, not (\d+)\.|\. Correct\.)")


def _value(lines: list[str]) -> int:
    """The number column lines write: each line's written digit at its place, plus a carry put in front."""
    digits = [int(re.search(r"write (\d+)", line)[1]) for line in lines if "write" in line]
    front = [int(re.search(r"carry (\d+) goes", line)[1]) for line in lines if "goes in front" in line]
    return sum(d * 10 ** i for i, d in enumerate(digits)) + (front[0] * 10 ** len(digits) if front else 0)


def test_a_planted_slip_is_caught_by_a_real_check_and_redone():
    slipped = [p for p in generate(COLUMNS, 300) if p.extras["op"] in "+-"]
    assert slipped and all(p.extras["slipped"] for p in slipped)
    for p in slipped:
        a, op, b, gold = p.extras["a"], p.extras["op"], p.extras["b"], int(p.answer)
        lines = p.solution.split("\n")
        checks = [(i, LINE.fullmatch(line)) for i, line in enumerate(lines) if line.startswith("Check:")]
        assert len(checks) == 2 and all(m for _, m in checks), p.solution
        (i1, first), (i2, second) = checks
        wrong = int(lines[i1 - 1].removeprefix("Result: ").rstrip("."))
        # the slip's columns really write the wrong result, and it is wrong
        assert _value(lines[1:i1 - 1]) == wrong != gold
        # the failing check is a real computation on the wrong result: the inverse, computed right, misses a
        x, inv, y, z = int(first[1]), first[2], int(first[3]), int(first[4])
        assert (x, y, inv) == (wrong, b, {"+": "-", "-": "+"}[op]) and z == (x - y if inv == "-" else x + y)
        assert z != a and int(first[5]) == a
        # the redo is the right procedure, and its check passes on the right result: it gives a back
        assert lines[i1 + 2:i2 - 1] == (add_steps if op == "+" else sub_steps)(a, b)
        assert _value(lines[i1 + 2:i2 - 1]) == gold and lines[i2 - 1] == f"Result: {gold}."
        x, y, z = int(second[1]), int(second[3]), int(second[4])
        assert x == gold and z == a and z == (x - y if second[2] == "-" else x + y) and second[5] is None
        assert lines[-1] == f"Answer: {gold}"
        # the line practice keeps out of the loss is the slip: in the first attempt, and no step of the right procedure
        assert slip_line(p.solution) in lines[1:i1 - 1] and slip_line(p.solution) not in lines[i1 + 2:i2 - 1]
        # the metric reads the same: both checks verified, and the failed one changed the answer
        r = read_checks(p.solution, p.question)
        assert [c.verified for c in r.checks] == [True, True] and r.changed and r.answer == gold


def test_every_slip_changes_exactly_one_column_and_the_result():
    for a, b in [(37, 38), (75, 38), (90, 15), (61, 63), (4321, 1234), (5000, 4999), (70, 13), (99, 99)]:
        for op in "+-":
            x, y = (a, b) if op == "+" or a >= b else (b, a)
            right, value = column_steps(x, op, y)
            assert right == (add_steps if op == "+" else sub_steps)(x, y) and value == (x + y if op == "+" else x - y)
            for slip in slips(x, op, y):
                lines, wrong = column_steps(x, op, y, slip)
                assert wrong != value and _value(lines) == wrong
                assert sum(s != t for s, t in zip(lines, right)) >= 1


def test_slip_share_is_a_share_of_the_checked_column_problems():
    ps = generate(MathConfig(seed=2, tasks=("arithmetic",), bands=(2,), check_share=0.5, slip_share=0.3), 2000)
    checked = [p for p in ps if p.extras["checked"]]
    slipped = [p for p in ps if p.extras["slipped"]]
    assert 0.45 < len(checked) / len(ps) < 0.55 and all(p.extras["checked"] for p in slipped)
    assert 0.25 < len(slipped) / len(checked) < 0.35
    # a slip never changes which problems are drawn, nor their answers
    plain = generate(MathConfig(seed=2, tasks=("arithmetic",), bands=(2,), check_share=0.5), 2000)
    assert [(p.question, p.answer) for p in ps] == [(p.question, p.answer) for p in plain]
    assert all(p.solution == q.solution for p, q in zip(ps, plain) if not p.extras["slipped"])


def test_shares_at_zero_give_the_solutions_they_always_gave():
    """The pretraining corpus's math source and SFT's mixture call generate without slips: their data must not move.
    The fingerprints were taken from tasks/math.py before slips existed (c3a46b0)."""
    for share, split, fingerprint in [
            (0.0, "train", "9e1a8892e2275d5893ad534a2f41afee136708e7bc955bf64fe5a51d042fb2da"),
            (0.3, "train", "89d23e325d51b7ffb24435a30864376824273177683c897f688e8240a45ab7db"),
            (0.3, "heldout", "3d90d09d1cce970e36b4c121cd94405c23a93fb915d795aba6bcbb502f67e941")]:
        ps = generate(MathConfig(seed=7, bands=BANDS, check_share=share, slip_share=0.0), 300, split)
        assert hashlib.sha256("\n\n".join(p.question + "\n" + p.solution for p in ps).encode()).hexdigest() == fingerprint
        assert all("slipped" not in p.extras for p in ps)


@pytest.mark.parametrize("text", [
    "Result: 75.\nCheck: looks right. Correct.\nAnswer: 75",  # the word, no computation
    "Result: 75.\nCheck: 75 - 38 = 36. Correct.\nAnswer: 75",  # wrong arithmetic
    "Result: 75.\nCheck: 75 - 38 = 37. Correct.\nAnswer: 76",  # a right computation of another number
    "Result: 65.\nCheck: 65 - 38 = 27. Correct.\nAnswer: 65",  # right arithmetic, wrong verdict: 27 is not 37
    "Result: 75.\nCheck: 75 - 37 = 38, not 37.\nAnswer: 75",  # a "failure" that is none
    "Result: 75.\nCheck: 80 - 5 = 75. Correct.\nAnswer: 75",  # right, of the answer, but not this problem's check
    "Result: 75.\nCheck: 75 - 38 = 37. Correct.",  # no answer given
    "Wait, let me double-check. I verify it. Answer: 75",
])
def test_check_words_without_a_right_computation_of_the_answer_do_not_count(text):
    assert not read_checks(text, "What is 37 + 38?").verified
    assert verified_check(["User: What is 37 + 38?\nAssistant:"], [text]) == [0.0]


@pytest.mark.parametrize("text, question", [
    ("Result: 75.\nCheck: 75 - 38 = 37. Correct.\nAnswer: 75", "What is 37 + 38?"),
    ("Result: 75.\nCheck: 75 - 37 = 38. Correct.\nAnswer: 75", "What is 37 + 38?"),
    ("Result: 75.\nCheck: 37 + 38 = 75. Correct.\nAnswer: 75", "Compute 37 + 38."),  # redone forward
    ("Result: 37.\nCheck: 37 + 38 = 75. Correct.\nAnswer: 37", "Calculate 75 - 38."),
    ("Result: 65.\nCheck: 65 - 38 = 27, not 37.\nAnswer: 65", "What is 37 + 38?"),  # it fails, and says so
])
def test_a_right_check_of_the_answer_counts(text, question):
    assert read_checks(text, question).verified
    assert verified_check([[{"role": "user", "content": question}]], [[{"role": "assistant", "content": text}]]) == [1.0]


def test_check_summary_pairs_rates_and_splits_accuracy_by_check():
    def sample(i, text, correct):
        return {"id": str(i), "question": "What is 37 + 38?", "response": text, "correct": correct}
    good = "Result: 75.\nCheck: 75 - 38 = 37. Correct.\nAnswer: 75"
    fixed = "Result: 65.\nCheck: 65 - 38 = 27, not 37.\nRedo the columns.\nResult: 75.\nCheck: 75 - 38 = 37. Correct.\nAnswer: 75"
    before = [sample(i, "Result: 75.\nAnswer: 75", i % 2 == 0) for i in range(8)]
    after = [sample(i, good if i < 4 else fixed if i == 4 else "Result: 74.\nAnswer: 74", i <= 4) for i in range(8)]
    s = check_summary(before, after)
    assert s["verified_rate"]["mean_a"] == 0 and s["verified_rate"]["difference"] == pytest.approx(5 / 8)
    acc = s["accuracy_by_check_after"]
    assert acc["with_check"]["value"] == 1.0 and acc["with_check"]["n"] == 5 and acc["without_check"]["value"] == 0.0
    low, high = acc["with_minus_without"]["ci95"]
    assert acc["with_minus_without"]["difference"] == 1.0 and 0 < low < 1 and high <= 1.0
    assert s["changed_answer_after"]["value"] == pytest.approx(1 / 8) and s["changed_answer_after"]["ended_right"] == 1
    assert s["changed_answer_before"]["value"] == 0 and "sampled_verified_share" not in s


def test_check_summary_pools_sampled_answers_where_rl_math_sampled_them():
    def sample(i, checked, both, right, changed=0):
        return {"id": str(i), "question": "What is 37 + 38?", "response": "Answer: 75", "correct": True,
                "sampled_share": right / 4, "sampled_check_share": checked / 4,
                "sampled_checks": {"checked": checked, "checked_correct": both, "changed": changed, "k": 4}}
    before = [sample(i, 0, 0, 2) for i in range(10)]
    after = [sample(i, 2, 2, 3, changed=1 if i < 3 else 0) for i in range(10)]  # checks right, the rest 1 of 2
    s = check_summary(before, after)
    assert s["sampled_verified_share"]["difference"] == pytest.approx(0.5) and s["verified_rate"]["difference"] == 0
    acc = s["sampled_accuracy_by_check_after"]
    assert (acc["with_check"]["value"], acc["with_check"]["n"], acc["without_check"]["value"]) == (1.0, 20, 0.5)
    assert acc["with_minus_without"]["difference"] == 0.5 and acc["with_minus_without"]["ci95"][0] > 0
    assert s["sampled_changed_answer_after"]["value"] == pytest.approx(3 / 40)
    assert s["sampled_accuracy_by_check_before"]["with_check"]["n"] == 0


@pytest.mark.parametrize("name, value", [("check_share", 1.5), ("slip_share", -0.1)])
def test_shares_outside_0_1_are_one_clear_error_at_preset_load(name, value):
    with pytest.raises(LabError, match=rf"math_sft\.{name} must be within \[0, 1\], got {value}"):
        MathSFTSettings(**{name: value})
    with pytest.raises(LabError, match=rf"math_sft\.{name}"):
        get_preset("tiny", [f"math_sft.{name}={value}"])
    with pytest.raises(LabError, match=name):
        generate(MathConfig(**{name: value}), 5)


@pytest.mark.parametrize("changed_before, changed_after, shown", [(0, 2, True), (3, 1, False), (0, 0, False)])
def test_the_claim_needs_checks_that_catch_not_only_checks_of_right_answers(tmp_path, changed_before, changed_after,
                                                                            shown):
    import json

    from lab.runs import Run
    from lab.stage_names import RL_MATH
    from reports.claim_measures import self_check_emerges
    from reports.claim_verdicts import Claim, verdict

    def sample(i, checked, both, right, changed):
        return {"id": str(i), "question": "What is 37 + 38?", "response": "Answer: 75", "correct": True,
                "sampled_share": right / 4, "sampled_check_share": checked / 4,
                "sampled_checks": {"checked": checked, "checked_correct": both, "changed": changed, "k": 4}}
    folder = tmp_path / RL_MATH / "heldout"
    folder.mkdir(parents=True)
    for name, rows in (("before", [sample(i, 0, 0, 2, int(i < changed_before)) for i in range(40)]),
                       ("after", [sample(i, 3, 3, 3, int(i < changed_after)) for i in range(40)])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    effect = self_check_emerges(Run(tmp_path))
    assert effect.value == pytest.approx(0.75) and effect.low > 0  # the check rate rose, with checked answers right
    claim = Claim("checking emerges", "", self_check_emerges, "")
    assert (verdict(claim, effect) == "shown") == shown
    assert ("caught a wrong result" in effect.unmet) == (not shown)
