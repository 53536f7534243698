"""User suites from files, the way lm-evaluation-harness loads custom tasks.

`lab eval MODEL --suite my_task.json` where the spec names a data file (JSONL, TSV or CSV with a header,
a .json list of objects, parquet, or a folder saved by `datasets`: load_rows, which `lab rl math --data`
reads too), a prompt template over its fields, the gold field and a grader:

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
import math
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from evals.hallucination import grade as simpleqa
from evals.suites import Suite, final_answer, normalise_answer
from lab.errors import LabError
from rewards.verifier import verify_response

GRADERS = ("exact", "contains", "simpleqa", "math", "choice", "perplexity")
DEFAULTS = {"prompt": "{prompt}", "gold": "gold", "grader": "contains", "max_new_tokens": 32, "choices": "choices",
            "text": "text", "version": "1"}


FORMATS = ".jsonl, .ndjson, .json (a list of objects), .tsv/.csv (with a header), .parquet, or a folder saved by datasets"


def load_rows(path: Path, numbered: bool = False) -> list:
    """The records of a data file, as dicts: JSONL (one object a line, blank lines skipped), .json (a list of
    objects), TSV or CSV with a header line, parquet, or a folder written by `datasets`' save_to_disk (a
    DatasetDict gives its "train" split, or its only one). Shared by user suites and `lab rl math --data`.

    numbered=True gives (line, row) pairs instead: the row's line in the file (JSONL; TSV/CSV, where the
    header is line 1 and a record spanning lines has the line it starts on) or its position from 1 (.json,
    parquet, datasets), and a JSONL line that is not a JSON object comes as (line, None) for the caller to
    skip and report; without numbered such a line is an error. A missing file or an unknown format is one
    LabError either way."""
    path = Path(path)
    if not path.exists():
        raise LabError(f"data file {path} does not exist")
    if path.is_dir():
        pairs = list(enumerate(_dataset_rows(path), 1))
    elif path.suffix in (".tsv", ".csv"):
        pairs = _table_rows(path, "\t" if path.suffix == ".tsv" else ",")
    elif path.suffix in (".jsonl", ".ndjson"):
        pairs = _json_lines(path, numbered)
    elif path.suffix == ".json":
        pairs = list(enumerate(_json_list(path), 1))
    elif path.suffix == ".parquet":
        pairs = list(enumerate(_parquet_rows(path), 1))
    else:
        raise LabError(f"{path}: unknown data format '{path.suffix or path.name}'; formats: {FORMATS}")
    return pairs if numbered else [row for _, row in pairs]


def _json_lines(path: Path, numbered: bool) -> list[tuple[int, dict | None]]:
    pairs = []
    for i, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if not numbered:
                raise LabError(f"{path}:{i} is not valid JSON") from None
            row = None
        if row is not None and not isinstance(row, dict):
            if not numbered:
                raise LabError(f"{path}:{i} is not a JSON object")
            row = None
        pairs.append((i, row))
    return pairs


def _json_list(path: Path) -> list[dict]:
    try:
        rows = json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise LabError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}); JSON Lines files end in .jsonl") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise LabError(f"{path} must hold a JSON list of objects (one per record)")
    return rows


def _table_rows(path: Path, delimiter: str) -> list[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(f, delimiter=delimiter)
        pairs = []
        try:
            reader.fieldnames  # noqa: B018 (reads the header)
            last = reader.line_num
            for row in reader:  # numbered by the line its record starts on (a quoted cell may span lines)
                # a record longer than the header keeps its extra cells under None: no field, so dropped
                pairs.append((last + 1, {k: v for k, v in row.items() if k is not None}))
                last = reader.line_num
        except (csv.Error, UnicodeDecodeError) as e:
            raise LabError(f"{path}:{reader.line_num} cannot be read as {path.suffix[1:].upper()}: {e}") from None
    return pairs


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LabError(f"{path} is not UTF-8 text") from None


def _parquet_rows(path: Path) -> list[dict]:
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError, its IO errors OSErrors
        raise LabError(f"{path} cannot be read as parquet: {e}") from None


def _dataset_rows(path: Path) -> list[dict]:
    try:
        data = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise LabError(f"{path} is a folder but no dataset saved by datasets' save_to_disk") from None
    if isinstance(data, datasets.DatasetDict):
        if "train" in data:
            data = data["train"]
        elif len(data) == 1:
            data = next(iter(data.values()))
        else:
            raise LabError(f"{path} holds the splits {', '.join(data)}: name none 'train' or keep only one")
    return data.to_list()


def _read_spec(path: Path) -> dict:
    """A suite spec file's settings over DEFAULTS, each of the type it must have, or one LabError."""
    if not path.exists():
        raise LabError(f"suite spec {path} does not exist")
    try:
        raw = json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise LabError(f"suite spec {path} is not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(raw, dict):
        raise LabError(f'suite spec {path} must be a JSON object, e.g. {{"data": "qa.jsonl", "grader": "contains"}}')
    if "data" not in raw:
        raise LabError(f"suite spec {path} names no 'data' file")
    spec = DEFAULTS | {"name": path.stem} | raw
    tokens = spec["max_new_tokens"]
    if not (isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0):
        raise LabError(f"suite spec {path}: max_new_tokens must be a whole number of tokens above 0, got {tokens!r}")
    if isinstance(spec["version"], (int, float)) and not isinstance(spec["version"], bool):
        spec["version"] = str(spec["version"])  # "version": 2 is the version "2"
    for key in (*DEFAULTS, "name", "data"):
        if key != "max_new_tokens" and not isinstance(spec[key], str):
            raise LabError(f"suite spec {path}: '{key}' must be text, got {spec[key]!r}"[:300])
    return spec


def load_suite(path: Path) -> Suite:
    path = Path(path)
    if path.suffix == ".json":
        spec = _read_spec(path)
        data = path.parent / spec["data"]
    else:
        spec, data = DEFAULTS | {"name": path.stem}, path
    if spec["grader"] not in GRADERS:
        raise LabError(f"{path}: unknown grader {spec['grader']!r}; graders: {', '.join(GRADERS)}")
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
            raise LabError(f"{where}: no field {spec['text']!r} to score")
        return {"id": str(row.get("id", i)), "messages": [], "text": row[spec["text"]], "gold": "", "extras": {}}
    try:
        prompt = spec["prompt"].format(**row)
    except KeyError as e:
        raise LabError(f"{where}: the prompt template needs field {e}, the sample has "
                       f"{', '.join(map(repr, row)) or 'no fields'}") from None
    except (IndexError, ValueError, AttributeError, TypeError) as e:  # "{0}", a lone "{", "{x.y}", "{x:>{y}}"
        raise LabError(f"{where}: the prompt template {spec['prompt']!r} cannot be filled ({e}); name fields as "
                       "{field} and write a brace as {{ or }}") from None
    if spec["gold"] not in row:
        raise LabError(f"{where}: no gold field {spec['gold']!r}")
    sample = {"id": str(row.get("id", i)), "messages": [{"role": "user", "content": prompt}],
              "gold": str(row[spec["gold"]]), "extras": {}}
    if spec["grader"] == "choice":
        options = row.get(spec["choices"])
        if not isinstance(options, list) or sample["gold"] not in map(str, options):
            raise LabError(f"{where}: {spec['choices']!r} must be a list of options that includes the gold")
        sample["choices"] = [str(o) for o in options]
    return sample


def _grader(name: str):
    def grade(sample: dict, response: str, calls: list) -> dict:
        gold = sample["gold"]
        if name == "simpleqa":
            g = simpleqa(response, gold, [])
            return {"grade": g, "correct": g == "correct", "incorrect": g == "incorrect",
                    "not_attempted": g == "not_attempted"}
        if name == "math":
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
    tokens = sum(r["tokens"] for r in rows)
    return {"metrics": {"perplexity": {"value": math.exp(-sum(r["logprob"] for r in rows) / tokens),
                                       "stderr": None, "ci95": [None, None], "n": tokens}}}
