"""User suites from files, the way lm-evaluation-harness loads custom tasks.

`lab eval MODEL --suite my_task.json` where the spec names a data file (JSONL or TSV with a header),
a prompt template over its fields, the gold field and a grader:

    {"name": "capitals", "data": "capitals.jsonl", "prompt": "What is the capital of {country}?",
     "gold": "capital", "grader": "contains", "max_new_tokens": 24}

Graders: `exact` (the final answer equals gold), `contains` (gold appears as whole words), `simpleqa`
(correct / incorrect / not attempted, refusals recognised), `math` (the sympy verifier), `choice`
(multiple choice by log-likelihood: `choices` names a field holding the options, gold is the right
option's text) and `perplexity` (no prompt: `text` names the field to score). A bare `.jsonl`/`.tsv`
file is a suite with the defaults: prompt "{prompt}", gold "gold", grader "contains".
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from evals.suites import Suite, final_answer, normalise_answer
from lab.errors import LabError

GRADERS = ("exact", "contains", "simpleqa", "math", "choice", "perplexity")
DEFAULTS = {"prompt": "{prompt}", "gold": "gold", "grader": "contains", "max_new_tokens": 32, "choices": "choices",
            "text": "text", "version": "1"}


def load_rows(path: Path) -> list[dict]:
    if not path.exists():
        raise LabError(f"suite data file {path} does not exist")
    if path.suffix == ".tsv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise LabError(f"{path}:{i} is not valid JSON") from None
    return rows


def load_suite(path: Path) -> Suite:
    path = Path(path)
    if path.suffix == ".json":
        if not path.exists():
            raise LabError(f"suite spec {path} does not exist")
        try:
            spec = DEFAULTS | json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise LabError(f"suite spec {path} is not valid JSON ({e.msg}, line {e.lineno})") from None
        data = path.parent / spec.get("data", "")
        if "data" not in spec:
            raise LabError(f"suite spec {path} names no 'data' file")
    else:
        spec, data = DEFAULTS | {"name": path.stem}, path
    spec.setdefault("name", path.stem)
    if spec["grader"] not in GRADERS:
        raise LabError(f"{path}: unknown grader '{spec['grader']}'; graders: {', '.join(GRADERS)}")
    rows = load_rows(data)
    if not rows:
        raise LabError(f"{data} holds no samples")
    samples = [_sample(spec, row, i, data) for i, row in enumerate(rows)]
    mode = spec["grader"] if spec["grader"] in ("choice", "perplexity") else "generate"
    metrics = {"simpleqa": ("correct", "incorrect", "not_attempted"), "perplexity": ()}.get(spec["grader"], ("correct",))
    return Suite(spec["name"], str(spec["version"]), lambda ctx: samples, _grader(spec["grader"]), metrics,
                 max_new_tokens=int(spec["max_new_tokens"]), mode=mode,
                 summarize=_perplexity_summary if mode == "perplexity" else None)


def _sample(spec: dict, row: dict, i: int, data: Path) -> dict:
    where = f"{data}, sample {i + 1}"
    if spec["grader"] == "perplexity":
        if spec["text"] not in row:
            raise LabError(f"{where}: no field '{spec['text']}' to score")
        return {"id": str(row.get("id", i)), "messages": [], "text": row[spec["text"]], "gold": "", "extras": {}}
    try:
        prompt = spec["prompt"].format(**row)
    except KeyError as e:
        raise LabError(f"{where}: the prompt template needs field {e}, the sample has {', '.join(row)}") from None
    if spec["gold"] not in row:
        raise LabError(f"{where}: no gold field '{spec['gold']}'")
    sample = {"id": str(row.get("id", i)), "messages": [{"role": "user", "content": prompt}],
              "gold": str(row[spec["gold"]]), "extras": {}}
    if spec["grader"] == "choice":
        options = row.get(spec["choices"])
        if not isinstance(options, list) or sample["gold"] not in map(str, options):
            raise LabError(f"{where}: '{spec['choices']}' must be a list of options that includes the gold")
        sample["choices"] = [str(o) for o in options]
    return sample


def _grader(name: str):
    def grade(sample: dict, response: str, calls: list) -> dict:
        gold = sample["gold"]
        if name == "simpleqa":
            from evals.hallucination import grade as simpleqa

            g = simpleqa(response, gold, [])
            return {"grade": g, "correct": g == "correct", "incorrect": g == "incorrect",
                    "not_attempted": g == "not_attempted"}
        if name == "math":
            from rewards.verifier import verify_response

            ok = verify_response(response, gold).equivalent
        elif name == "exact":
            ok = final_answer(response) == normalise_answer(gold)
        elif name == "contains":
            ok = f" {normalise_answer(gold)} " in f" {normalise_answer(response)} "
        elif name == "choice":
            ok = response == gold
        else:  # perplexity: nothing to grade, the runner stores the log-probabilities
            return {"grade": "scored"}
        return {"grade": "correct" if ok else "incorrect", "correct": ok}

    return grade


def _perplexity_summary(rows: list[dict]) -> dict:
    import math

    tokens = sum(r["tokens"] for r in rows)
    return {"metrics": {"perplexity": {"value": math.exp(-sum(r["logprob"] for r in rows) / tokens),
                                       "stderr": None, "ci95": [None, None], "n": tokens}}}
