"""RL on the user's own math problems (`lab rl math RUN --data FILE`, evals/user_problems.py's load_user_problems).

The fixture tests/fixtures/rl_math_user/problems.jsonl holds 16 problems written for these tests, GSM8K-style
(word problems, "... #### 26" answers) and MATH-style (\\frac{3}{4}, \\sqrt{2}, (1, 2), x = 3, a \\boxed gold),
and four bad rows: line 5 has no question field, line 9 an empty answer, line 14 the answer "see above" and
line 18 is not JSON. Bad rows are skipped and listed with their line and reason; a file that gives nothing
to train on is one LabError (through the CLI: exit 2, one `error:` line).
"""

import csv
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import lab.train.rl_math
from evals.user_problems import load_user_problems, split_user_problems
from lab.errors import LabError
from lab.train.rl_math import fit_prompts
from lab.train.rl_settings import RLSettings

FIXTURE = Path(__file__).parent / "fixtures" / "rl_math_user" / "problems.jsonl"
BAD_LINES = {5: "no question field 'question'", 9: "empty answer", 14: "answer 'see above' is not math the verifier can read",
             18: "not a JSON object"}
GOLDS = {"gsm-01": "26", "gsm-07": "5,000", "math-01": "\\frac{3}{4}", "math-03": "x = 3", "math-04": "(1, 2)",
         "math-05": "\\frac{5}{6}"}  # "#### N" and \boxed{} golds as the verifier reads them
FAST = ["--set", "rl.steps=2", "--set", "rl.num_generations=4", "--set", "rl.batch_size=8",
        "--set", "rl.max_completion_length=12", "--set", "rl.eval_every=0", "--set", "rl.ckpt_every=0",
        "--set", "rl.log_every=1", "--set", "rl.eval_samples=2"]


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    """A run (with its config, so `lab rl math` opens it) whose sft-idk stage is an untrained tiny labgpt."""
    from test_rl import with_untrained_policy

    from lab.presets import get_preset
    from lab.runs import Run

    return with_untrained_policy(Run.create_or_open(tmp_path_factory.mktemp("rl") / "r", get_preset("tiny")))


def good_rows() -> list[dict]:
    return [json.loads(line) for i, line in enumerate(FIXTURE.read_text().splitlines(), 1) if i != 18]


def test_the_cli_trains_on_the_file_holds_part_out_and_lists_the_skipped_rows(policy_run, monkeypatch):
    from typer.testing import CliRunner

    from lab.cli.main import app

    seen = []
    real = lab.train.rl_math.get_rewards

    def spying(names, context=None):
        def spy(fn):
            def reward(prompts, completions, answer=None, **kw):
                seen.extend(answer)
                return fn(prompts, completions, answer=answer, **kw)
            return reward
        return [spy(f) for f in real(names, context)]

    monkeypatch.setattr(lab.train.rl_math, "get_rewards", spying)
    result = CliRunner().invoke(app, ["rl", "math", str(policy_run.root), "--from", "sft-idk", "--data", str(FIXTURE), *FAST])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "data " in result.output and "20 rows, 13 trained, 3 held out, 0 unused" in result.output
    assert "4 skipped (lines 5, 9, 14, 18" in " ".join(result.output.split())

    out = policy_run.stage_dir("rl-math")
    assert policy_run.is_complete("rl-math")
    summary = json.loads((out / "summary.json").read_text())
    data = summary["data"]
    assert {s["line"]: s["reason"] for s in data["skipped"]} == BAD_LINES
    assert data["rows"] == 20 and data["usable"] == 16 and data["unused"] == 0
    assert data["trained"] + data["held_out"] + data["unused"] + len(data["skipped"]) == data["rows"]
    assert (data["trained"], data["held_out"]) == (13, 3) == (summary["train_problems"], len(data["held_out_lines"]))
    assert summary["heldout_before"]["all"]["n"] == summary["heldout_after"]["all"]["n"] == 3
    assert summary["heldout_after"]["user"]["n"] == 3 and summary["steps"] == 2

    held = [json.loads(line) for line in (out / "heldout" / "after.jsonl").read_text().splitlines()]
    by_id = {p.id: p for p in load_user_problems(FIXTURE)[0]}
    assert sorted(by_id[s["id"]].extras["line"] for s in held) == data["held_out_lines"]
    assert all(s["gold"] == by_id[s["id"]].answer for s in held)  # the graded gold: "26", not "...\n#### 26"
    train_golds = {p.answer for p in by_id.values()} - {s["gold"] for s in held}
    # the rewards graded the user's golds, training rows only (every gold in the fixture is distinct)
    assert seen and set(seen) <= train_golds


def test_golds_are_read_like_the_verifier_reads_answers():
    problems, report = load_user_problems(FIXTURE)
    by_id = {p.id: p for p in problems}
    assert {k: by_id[k].answer for k in GOLDS} == GOLDS
    assert all(p.task == "user" and p.difficulty == 0 and p.solution == "" for p in problems)
    assert by_id["gsm-01"].extras == {"line": 1, "raw_answer": good_rows()[0]["answer"]}
    assert report["rows"] == 20 and len(problems) == 16 and [s["line"] for s in report["skipped"]] == sorted(BAD_LINES)


def test_the_split_is_seeded_disjoint_by_question_and_capped():
    problems, _ = load_user_problems(FIXTURE)
    twin = replace(problems[0], id="twin", extras={"line": 99})  # the same question again: always on one side
    problems = problems + [twin]
    settings = RLSettings(train_problems=5, eval_problems=300, seed=0)
    train, held, unused = split_user_problems(problems, settings)
    assert len({p.question for p in held}) == 3 and len(train) == 5 and len(train) + len(held) + len(unused) == 17
    assert not {p.question for p in train} & {p.question for p in held}
    assert not {p.question for p in unused} & {p.question for p in held}
    held_ids = {p.id for p in held}
    assert ("twin" in held_ids) == (problems[0].id in held_ids)
    # fixed whatever rl.seed: every run is scored on the same held-out questions, as with the generator's
    assert all(split_user_problems(problems, replace(settings, seed=s)) == (train, held, unused) for s in range(5))
    assert len(split_user_problems(problems, replace(settings, eval_problems=1))[1]) in (1, 2)  # at least 1
    with pytest.raises(LabError, match="at least 2"):
        split_user_problems(problems[:1], settings)


def test_a_prompt_too_long_for_the_context_is_skipped_with_its_line(policy_run):
    from lab.train.policy_gradient import load_policy

    model, tokenizer = load_policy(policy_run.stage_dir("sft-idk"))
    problems, report = load_user_problems(FIXTURE)
    skipped = list(report["skipped"])
    kept = fit_prompts(tokenizer, model, problems, 40, skipped)  # a 128-token context: the longest questions go
    long = [s for s in skipped if "too long" in s["reason"]]
    assert long and len(kept) + len(long) == len(problems) and [s["line"] for s in skipped] == sorted(s["line"] for s in skipped)
    assert "exceed the model's context 128" in long[0]["reason"]


def write_variants(tmp_path: Path) -> dict[str, Path]:
    import datasets
    import pandas as pd

    rows = good_rows()
    fields = ["id", "question", "problem", "answer"]
    paths = {"jsonl": FIXTURE}
    for ext, delimiter in (("tsv", "\t"), ("csv", ",")):
        paths[ext] = tmp_path / f"p.{ext}"
        with open(paths[ext], "w", newline="") as f:
            writer = csv.DictWriter(f, fields, delimiter=delimiter, restval="")
            writer.writeheader()
            writer.writerows(rows)
    paths["json"] = tmp_path / "p.json"
    paths["json"].write_text(json.dumps(rows))
    paths["parquet"] = tmp_path / "p.parquet"
    pd.DataFrame(rows, columns=fields).to_parquet(paths["parquet"])
    table = {f: [r.get(f) for r in rows] for f in fields}
    paths["datasets"] = tmp_path / "ds"
    datasets.Dataset.from_dict(table).save_to_disk(str(paths["datasets"]))
    paths["datasetdict"] = tmp_path / "dd"  # a DatasetDict: its train split
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(table),
                          "test": datasets.Dataset.from_dict({"question": ["q"], "answer": ["1"]})}
                         ).save_to_disk(str(paths["datasetdict"]))
    paths["one-split"] = tmp_path / "one"  # one split, whatever its name
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(table)}).save_to_disk(str(paths["one-split"]))
    return paths


def test_the_same_problems_load_from_every_format(tmp_path):
    import datasets

    paths = write_variants(tmp_path)
    loaded = {name: load_user_problems(path) for name, path in paths.items()}
    expected = [(p.id, p.question, p.answer) for p in loaded["jsonl"][0]]
    assert len(expected) == 16
    for name, (problems, report) in loaded.items():
        assert [(p.id, p.question, p.answer) for p in problems] == expected, name
        assert len(report["skipped"]) == (4 if name == "jsonl" else 3), name  # the others have no broken-JSON line
        assert report["rows"] == len(problems) + len(report["skipped"]), name
    # TSV/CSV count the header as line 1 and number a record spanning lines (a multi-line answer) by its first
    tsv_lines = [p.extras["line"] for p in loaded["tsv"][0]]
    assert tsv_lines[:2] == [2, 5] and tsv_lines == sorted(tsv_lines)
    assert loaded["tsv"][1]["format"] == "tsv" and loaded["datasets"][1]["format"] == "datasets"
    # lab eval's user suites read the same loader: a bare TSV or parquet via a spec still loads
    from evals.custom import load_suite

    (tmp_path / "s.json").write_text(json.dumps({"data": "p.parquet", "prompt": "{question}", "gold": "answer",
                                                 "grader": "math"}))
    assert len(load_suite(tmp_path / "s.json").samples(None)) == 19
    two = tmp_path / "two"
    datasets.DatasetDict({"a": datasets.Dataset.from_dict({"question": ["q"]}),
                          "b": datasets.Dataset.from_dict({"question": ["q"]})}).save_to_disk(str(two))
    with pytest.raises(LabError, match="splits a, b"):
        load_user_problems(two)


def bad_inputs(tmp_path: Path) -> list[tuple[Path, str, str]]:
    (tmp_path / "p.xlsx").write_text("x")
    (tmp_path / "bad.jsonl").write_text('{"question": "What is 1 + 1?", "answer": ""}\n{"question": "Why?", '
                                        '"answer": "see above"}\nnot json\n')
    return [(tmp_path / "missing.jsonl", "question", "does not exist"),
            (tmp_path / "p.xlsx", "question", "unknown data format '.xlsx'; formats: .jsonl"),
            (tmp_path / "bad.jsonl", "question", "no usable row in .*: all 3 skipped \\(line 1: empty answer; line 2: .*\\); "
                                                  "answers the verifier reads: a number"),
            (FIXTURE, "prompt", "no row of .* has the question field 'prompt' \\(its fields: answer, id, problem, "
                                "question\\); name the right one with --question-field")]


def test_bad_input_is_one_clear_error(tmp_path):
    for path, field, message in bad_inputs(tmp_path):
        with pytest.raises(LabError, match=message):
            load_user_problems(path, question_field=field)
    with pytest.raises(LabError, match="the answer field 'gold'"):
        load_user_problems(FIXTURE, answer_field="gold")


def test_bad_input_through_the_cli_is_one_error_line_and_exit_2(policy_run, tmp_path):
    cases = bad_inputs(tmp_path)
    for path, field, message in (cases[0], cases[3]):  # each start of the CLI costs seconds: two cases
        proc = subprocess.run([sys.executable, "-m", "lab.cli", "rl", "math", str(policy_run.root), "--from", "sft-idk",
                               "--data", str(path), "--question-field", field, "--out", "rl-bad"],
                              capture_output=True, text=True, timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and lines and lines[-1].startswith("error:"), proc.stderr
        assert "Traceback" not in proc.stderr and re.search(message, " ".join(proc.stderr.split())), proc.stderr
    assert not policy_run.stage_dir("rl-bad").exists()  # refused before anything was written
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "rl", "math", str(policy_run.root), "--answer-field", "gold"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error:") and "give --data" in proc.stderr


def test_too_few_rows_left_after_skipping_is_one_error_naming_them(policy_run, tmp_path):
    from test_rl import at

    from lab.train.rl_math import rl_math

    lines = [json.dumps({"question": "What is 2 + 3?", "answer": "5"}), json.dumps({"question": "Why?", "answer": "yes"})]
    (tmp_path / "two.jsonl").write_text("\n".join(lines) + "\n")
    message = "1 usable distinct question.*RL needs at least 2.*skipped 1: line 2: answer 'yes' is not math"
    with pytest.raises(LabError, match=message):
        rl_math(RLSettings(max_completion_length=12), at(policy_run, "rl-two"), data=tmp_path / "two.jsonl")
    assert not policy_run.stage_dir("rl-two").exists()
