"""Your own math problems for RL (`lab rl math RUN --data FILE`): one problem a row of any file evals/custom.py's
load_rows reads (JSONL, TSV/CSV, .json, parquet, a `datasets` folder), with a question and a gold answer field.

A row that cannot be graded honestly is skipped and listed with its line and why: no question, an empty
answer, an answer the verifier cannot read as math ("see above"). A seeded share of the questions is held
out (split_user_problems) and replaces rl-math's generated held-out set before and after training.
"""

from __future__ import annotations

import random
from pathlib import Path

from evals.custom import load_rows
from lab.errors import LabError
from rewards.verifier import ANSWER_FORMS, extract_answer, reads_as_answer, verify
from tasks.math import Problem

# the held-out split is fixed, whatever the training seed (rl-math's held-out set uses the same seed)
SPLIT_SEED = 1234
USER_TASK = "user"  # the task name of problems from a user's file (difficulty 0, no worked solution)
HELDOUT_SHARE = 5  # a user file holds out one question in this many (at most rl.eval_problems, at least 1)
_PLACEHOLDERS = {"n/a", "n.a.", "na", "none", "null", "nan", "tbd", "unknown", "?", "-"}


def gold_answer(raw) -> tuple[str | None, str | None]:
    """(gold, None) for a gradeable answer field, or (None, why not). A field holding a worked solution with a
    final-answer marker (GSM8K's "... #### 72", "\\boxed{...}", "Answer: ...") gives what the marker marks, as
    the verifier extracts it from a response. The gold must read as math: words other than trailing units
    ("see above", "yes") would be compared as strings or as products of letters, so they are refused here
    rather than mis-graded, as is anything the verifier calls unparseable or cannot check in time."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return None, "empty answer"
    gold = extract_answer(text, last_number_fallback=False) or text
    if gold.lower() in _PLACEHOLDERS or not reads_as_answer(gold):
        return None, f"answer {_clip(gold)!r} is not math the verifier can read"
    reason = verify(gold, "0").reason  # parses the gold as a response would be; "0" is any other value
    if reason in ("unparseable", "timeout", "no_answer"):
        return None, f"answer {_clip(gold)!r} is {'too slow for' if reason == 'timeout' else 'unparseable by'} the verifier"
    return gold, None


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def load_user_problems(path: Path, question_field: str = "question", answer_field: str = "answer") -> tuple[list, dict]:
    """(problems, report) from a user's file: each usable row a tasks.math.Problem (id from the row's "id" field,
    else "line-N"; task "user"; difficulty 0; no solution; extras: line and the raw answer field), and the report
    summary.json keeps (path, format, fields, rows, skipped: [{"line", "reason"}]). Rows are numbered as
    evals.custom.load_rows numbers them (the file's line, or the position from 1 in formats without lines).

    One LabError, naming the file, when it cannot be read, holds no rows, no row has one of the two fields (a
    misspelt --question-field), or no row is usable; a bad row on its own is skipped and listed, never graded."""
    path = Path(path)
    numbered = load_rows(path, numbered=True)
    if not numbered:
        raise LabError(f"{path} holds no rows")
    rows = [row for _, row in numbered if row is not None]
    for kind, field in (("question", question_field), ("answer", answer_field)):
        if rows and not any(field in row for row in rows):
            # a name with a newline or other unprintable character is quoted, so the error stays one line
            fields = sorted({k if k.isprintable() else repr(k) for row in rows[:20] for k in map(str, row)})
            raise LabError(f"no row of {path} has the {kind} field '{field}' (its fields: {', '.join(fields)}); "
                           f"name the right one with --{kind}-field")
    problems, skipped = [], []
    for line, row in numbered:
        why, gold = None, None
        if row is None:
            why = "not a JSON object"
        elif field_missing := next((f"no {k} field '{f}'" for k, f in (("question", question_field),
                                                                      ("answer", answer_field)) if f not in row), None):
            why = field_missing
        elif isinstance(row[question_field], (dict, list)):
            why = "the question is not text"
        elif row[question_field] is None or not str(row[question_field]).strip():
            why = "empty question"
        else:
            gold, why = gold_answer(row[answer_field])
        if why:
            skipped.append({"line": line, "reason": why})
            continue
        rid = row.get("id")
        problems.append(Problem(id=str(rid) if rid not in (None, "") else f"line-{line}", task=USER_TASK, difficulty=0,
                                question=str(row[question_field]).strip(), answer=gold, solution="",
                                extras={"line": line, "raw_answer": str(row[answer_field])}))
    report = {"path": str(path), "format": "datasets" if path.is_dir() else path.suffix.lstrip("."),
              "question_field": question_field, "answer_field": answer_field, "rows": len(numbered),
              "usable": len(problems), "skipped": skipped}
    if not problems:
        raise LabError(f"no usable row in {path}: all {len(numbered)} skipped ({skip_list(skipped)}); "
                       f"{ANSWER_FORMS}")
    return problems, report


def skip_list(skipped: list[dict], n: int = 3) -> str:
    shown = "; ".join(f"line {s['line']}: {s['reason']}" for s in skipped[:n])
    return shown + (f"; and {len(skipped) - n} more" if len(skipped) > n else "")


def split_user_problems(problems, settings) -> tuple[list, list, list]:
    """(train, held_out, unused): min(rl.eval_problems, a fifth) of the distinct questions, at least one, chosen
    with SPLIT_SEED (as the generator's held-out set: runs of any rl.seed are scored on the same questions), are
    held out with every row that asks them, so no held-out question is trained on; the rest train, at most
    rl.train_problems of them (the others are unused). Each part in file order."""
    groups: dict[str, list] = {}
    for p in problems:
        groups.setdefault(" ".join(p.question.split()), []).append(p)
    if len(groups) < 2:
        raise LabError(f"the data has {len(groups)} usable distinct question(s); RL needs at least 2, one to train "
                       "on and one held out")
    keys = list(groups)
    random.Random(SPLIT_SEED).shuffle(keys)
    n_held = max(1, min(settings.eval_problems, len(keys) // HELDOUT_SHARE))
    held = [p for k in keys[:n_held] for p in groups[k]]
    pool = [p for k in keys[n_held:] for p in groups[k]]
    train, unused = pool[: settings.train_problems], pool[settings.train_problems :]

    def in_order(ps):
        return sorted(ps, key=lambda p: p.extras["line"])

    return in_order(train), in_order(held), in_order(unused)
