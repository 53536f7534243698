"""The eval harness: a registry of suites, one batched runner, lm-evaluation-harness-style outputs.

The runner renders every sample with the model's chat template, generates greedily through our
engine (with the tool loop where the suite allows tools), grades, optionally scores the answer's
probability and draws k samples for pass@k, and writes `<out>/<suite>/samples.jsonl` and
`results.json` (every metric as value, stderr, 95% CI, n, plus model, suite version, seed, samples/s).

Finished samples are appended to `samples.partial.jsonl` batch by batch, under a header that names
the model's weights, the suite version and the settings: a run killed halfway resumes where it
stopped, and a cache made with anything different is ignored. `results.json` is written last, so a
partial run is never reported as a complete one. MODEL is a stage of a run or any HF causal-LM dir.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

from evals.custom import load_suite
from evals.eval_settings import EvalSettings
from evals.loglik import answer_confidence, choose, continuation_logprobs
from evals.stats import mean_metric, paired_difference, proportion
from evals.suites import SUITES, EvalContext, Suite, final_answer  # noqa: F401  (re-exported for callers)
from lab.errors import LabError
from lab.model.chat_format import render
from lab.model.engine import SamplingParams, generate
from lab.model.tool_loop import generate_with_tools
from lab.runs import read_json, write_text_atomic
from lab.settings import from_settings
from lab.tools import ToolContext, ToolResult, run_tool
from tasks.chat import TOOLS_OFF, with_tools
from tasks.identity import Identity, system_message
from tasks.world import WorldConfig, build_world


def sized(suite: Suite, settings: EvalSettings) -> Suite:
    """The suite with its answers capped at settings.max_new_tokens (the cap is part of the cache key)."""
    if settings.max_new_tokens < 0 or settings.limit < 0:
        raise LabError(f"evals.limit and evals.max_new_tokens must be >= 0 (0 = no cut), got {settings.limit} and "
                       f"{settings.max_new_tokens}")
    if settings.max_new_tokens and settings.max_new_tokens < suite.max_new_tokens:
        return replace(suite, max_new_tokens=settings.max_new_tokens)
    return suite


def resolve_suites(spec: str) -> list[Suite]:
    """Suite names, comma-separated, `all`, or paths to a user suite file (evals/custom.py)."""
    names = list(SUITES) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    suites = []
    for name in names:
        if name in SUITES:
            suites.append(SUITES[name])
        elif Path(name).suffix in (".json", ".jsonl", ".tsv"):
            suites.append(load_suite(Path(name)))
        else:
            raise LabError(f"unknown suite '{name}'; suites: {', '.join(SUITES)}, all, or a .json/.jsonl/.tsv file")
    if not suites:
        raise LabError(f"no suite named in '{spec}'; suites: {', '.join(SUITES)}, all")
    return suites


def context_for(model_dir: Path) -> EvalContext:
    """The world and identity of the run a stage belongs to, or the defaults for an outside model."""
    config = Path(model_dir).parent / "config.json"
    settings = read_json(config)["settings"] if config.exists() else {}  # the run's preset, recorded
    world = build_world(from_settings(WorldConfig, settings.get("data", {}).get("world", {})))
    identity = from_settings(Identity, settings.get("sft", {}).get("identity", {}))
    return EvalContext(world=world, identity=identity, system=system_message(identity))


def model_fingerprint(model_dir: Path) -> str:
    """Name, size and mtime of the weight files: a retrained model at the same path invalidates caches."""
    files = sorted(p for p in Path(model_dir).glob("*") if p.suffix in (".safetensors", ".bin", ".json"))
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def _prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Our renderer for lab tokenizers; the model's own chat template, or plain text, for any other model."""
    if tokenizer.convert_tokens_to_ids("<|im_start|>") == 3:
        return render(tokenizer, messages, add_generation_prompt=True)[0]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    text = "\n".join(m["content"] for m in messages) + "\nAnswer:"
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(text, add_special_tokens=False)["input_ids"]


# ---------------------------------------------------------------- runner


def run_suite(model, tokenizer, suite: Suite, ctx: EvalContext, out: Path, limit: int | None = None, seed: int = 0,
              batch_size: int = 64, model_name: str = "", fingerprint: str = "", samples_per_prompt: int = 1,
              temperature: float = 0.7, fresh: bool = False) -> dict:
    """Evaluate one suite; `samples_per_prompt` > 1 adds that many sampled answers per prompt for pass@k."""
    samples = suite.samples(ctx)
    if limit is not None:
        samples = random.Random(seed).sample(samples, min(limit, len(samples)))
    target = Path(out) / suite.name
    # the samples themselves are part of the key: a generator change can never be served stale results
    digest = hashlib.sha256(json.dumps([[s["id"], s["messages"], s["gold"]] for s in samples]).encode()).hexdigest()
    key = {"suite": suite.name, "suite_version": suite.version, "samples": digest[:16], "model": model_name,
           "fingerprint": fingerprint,
           "seed": seed, "limit": limit, "samples_per_prompt": samples_per_prompt,
           "temperature": temperature if samples_per_prompt > 1 else None, "max_new_tokens": suite.max_new_tokens}
    finished = _load_results(target / "results.json")
    if not fresh and finished is not None and finished.get("cache_key") == key:
        return finished
    (target / "results.json").unlink(missing_ok=True)  # stale or about to be replaced: never half-true
    cache = {} if fresh else _load_cache(target / "samples.partial.jsonl", key)
    todo = [s for s in samples if s["id"] not in cache]
    if cache:
        print(f"{suite.name}: resuming, {len(samples) - len(todo)} of {len(samples)} samples done before",
              file=sys.stderr)
    t0 = time.perf_counter()
    target.mkdir(parents=True, exist_ok=True)
    position = {s["id"]: i for i, s in enumerate(samples)}
    resuming = not fresh and bool(cache)
    with open(target / "samples.partial.jsonl", "a" if resuming else "w") as partial:
        if not resuming:
            partial.write(json.dumps({"cache_key": key}) + "\n")
        elif not (target / "samples.partial.jsonl").read_bytes().endswith(b"\n"):
            partial.write("\n")  # a kill tore the last line: the next row starts on its own
        for start in range(0, len(todo), batch_size):
            # seeded by the batch's place among all samples, so a resumed run samples what an unbroken one would
            for row in _evaluate(model, tokenizer, suite, ctx, todo[start : start + batch_size],
                                 samples_per_prompt, temperature, seed + position[todo[start]["id"]]):
                cache[row["id"]] = row
                partial.write(json.dumps(row) + "\n")
            partial.flush()
    seconds = time.perf_counter() - t0
    graded = [cache[s["id"]] for s in samples if not cache[s["id"]].get("skipped")]
    results = {"suite": suite.name, "suite_version": suite.version, "model": model_name, "seed": seed,
               "limit": limit, "n": len(graded), "skipped_too_long": len(samples) - len(graded),
               "computed": len(todo), "seconds": seconds, "samples_per_s": len(todo) / seconds if todo and seconds else None,
               "metrics": _metrics(graded, suite, samples_per_prompt), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
               "cache_key": key}
    results["by_group"] = {_label(key_): {_label(v): _metrics([g for g in graded if _group(g, key_) == v], suite, 1)
                                          for v in sorted({_group(g, key_) for g in graded})}
                           for key_ in suite.group_by}
    if suite.summarize and graded:  # metrics that are not a mean of one field, and curves
        summary = suite.summarize(graded)
        results["metrics"].update(summary.pop("metrics", {}))
        results.update(summary)
    write_text_atomic(target / "samples.jsonl", "".join(json.dumps(g) + "\n" for g in graded))
    write_text_atomic(target / "results.json", json.dumps(results, indent=2) + "\n")  # last: the run is done
    (target / "samples.partial.jsonl").unlink()
    return results


def _evaluate(model, tokenizer, suite: Suite, ctx: EvalContext, batch: list[dict], k: int, temperature: float,
              seed: int) -> list[dict]:
    """Graded rows for one batch; prompts too long for the model become `skipped` rows (never truncated)."""
    stops = tuple(t for t in (tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab()
                              else None, tokenizer.eos_token_id) if t is not None)
    greedy = SamplingParams(max_new_tokens=suite.max_new_tokens, stop_token_ids=stops)
    context = getattr(model.config, "max_position_embeddings", 10**9)

    def system(sample: dict) -> list[dict]:  # the tools-on line when this sample's tools are on, as in SFT
        content = with_tools(ctx.system, sample.get("tools_on", suite.tools))
        return [{"role": "system", "content": content}] if content else []

    prompts = [_prompt_ids(tokenizer, system(s) + s["messages"]) for s in batch]
    keep = [i for i, p in enumerate(prompts) if len(p) + suite.max_new_tokens <= context]
    rows = {i: {"id": batch[i]["id"], "skipped": "too_long"} for i in range(len(batch)) if i not in keep}
    kept, kept_prompts = [batch[i] for i in keep], [prompts[i] for i in keep]
    if suite.mode != "generate":
        rows.update(zip(keep, _score(model, tokenizer, suite, kept, kept_prompts, context)))
        return [rows[i] for i in range(len(batch))]
    answers = _answers(model, tokenizer, kept_prompts, greedy, kept, suite, ctx)
    for i, sample, (response, calls, _tokens) in zip(keep, kept, answers):
        rows[i] = {"id": sample["id"], "prompt": sample["messages"][-1]["content"], "response": response,
                   "gold": sample["gold"], **suite.grade(sample, response, calls), "tool_calls": calls,
                   "extras": sample["extras"]}
    if suite.confidence and kept:
        plain = [j for j, (_, calls, tokens) in enumerate(answers) if not calls and tokens]
        scores = answer_confidence(model, [kept_prompts[j] for j in plain], [answers[j][2] for j in plain],
                                   tokenizer.pad_token_id or 0)
        for j, score in zip(plain, scores):
            rows[keep[j]]["confidence"] = score
    if k > 1 and kept:
        sampled = SamplingParams(max_new_tokens=suite.max_new_tokens, stop_token_ids=stops, temperature=temperature,
                                 top_k=0, seed=seed)
        many = _answers(model, tokenizer, [p for p in kept_prompts for _ in range(k)], sampled,
                        [s for s in kept for _ in range(k)], suite, ctx)
        for j, (i, sample) in enumerate(zip(keep, kept)):
            grades = [suite.grade(sample, r, c) for r, c, _ in many[j * k : (j + 1) * k]]
            if all("correct" in g for g in grades):
                rows[i]["sampled_correct"], rows[i]["sampled_n"] = sum(g["correct"] for g in grades), k
    return [rows[i] for i in range(len(batch))]


def _score(model, tokenizer, suite: Suite, samples: list[dict], prompts: list[list[int]], context: int) -> list[dict]:
    """Log-likelihood modes: multiple choice (the most probable option is the response) or perplexity."""
    pad = tokenizer.pad_token_id or 0
    rows = []
    for sample, prompt in zip(samples, prompts):
        row = {"id": sample["id"], "prompt": sample.get("text") or sample["messages"][-1]["content"],
               "gold": sample["gold"], "extras": sample["extras"]}
        if suite.mode == "choice":
            # after a chat header the answer starts a fresh line; after "Answer:" it needs a space
            sep = "" if tokenizer.decode(prompt[-1:]).endswith(("\n", " ")) else " "
            options = [tokenizer(sep + o, add_special_tokens=False)["input_ids"] for o in sample["choices"]]
            best, scores = choose(model, prompt, options, pad)
            row |= {"response": sample["choices"][best], "option_logprobs": scores}
        else:
            bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
            ids = bos + tokenizer(sample["text"], add_special_tokens=False)["input_ids"]
            if len(ids) > context or len(ids) < 2:
                rows.append({"id": sample["id"], "skipped": "too_long" if len(ids) > context else "empty"})
                continue
            logprobs = continuation_logprobs(model, [ids[:1]], [ids[1:]], pad)[0]
            row |= {"response": "", "logprob": sum(logprobs), "tokens": len(logprobs)}
        rows.append(row | suite.grade(sample, row["response"], []))
    return rows


def _answers(model, tokenizer, prompts, params, samples: list[dict], suite: Suite,
             ctx: EvalContext) -> list[tuple[str, list, list[int]]]:
    """(answer text, tool calls, generated tokens) per prompt: through the engine's tool loop when the
    tokenizer has the lab's tool-call tokens, else plain generation (an outside model cannot call our tools)."""
    def engine(batch, p):
        return generate(model, batch, p, pad_token_id=tokenizer.pad_token_id or 0)

    if not prompts:
        return []
    if "<|tool_call|>" not in tokenizer.get_vocab():
        stops = set(params.stop_token_ids)
        return [(tokenizer.decode([t for t in out if t not in stops]), [], out) for out in engine(prompts, params)]
    tool_context = ToolContext(world=ctx.world)
    out: list = [None] * len(prompts)
    for enabled in (True, False):  # a suite may switch tools off per sample (tooluse: with vs without)
        rows = [i for i, s in enumerate(samples) if s.get("tools_on", suite.tools) == enabled]
        if not rows:
            continue

        def tool(name, argument, enabled=enabled):
            if not enabled:
                return ToolResult(False, TOOLS_OFF, "unavailable")
            return run_tool(name, argument, tool_context)

        answers = generate_with_tools(engine, tokenizer, [prompts[i] for i in rows], params, tool,
                                      context_length=getattr(model.config, "max_position_embeddings", None))
        for i, a in zip(rows, answers):
            out[i] = (a.answer, [{"name": c.name, "argument": c.argument, "ok": c.ok} for c in a.calls], a.tokens)
    return out


def _metrics(graded: list[dict], suite: Suite, k: int) -> dict:
    metrics = {m: proportion(sum(bool(g[m]) for g in graded if m in g), sum(1 for g in graded if m in g))
               for m in suite.metrics}
    sampled = [g for g in graded if "sampled_n" in g]
    if sampled:
        for at in sorted({1, k} | {2**i for i in range(1, 8) if 2**i < k}):
            metrics[f"pass@{at}"] = mean_metric([pass_at_k(g["sampled_n"], g["sampled_correct"], at) for g in sampled])
    return metrics


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1 - k / i
    return 1.0 - prob_all_wrong


def _group(row: dict, key: str | tuple[str, ...]):
    return tuple(row["extras"][k] for k in key) if isinstance(key, tuple) else row["extras"][key]


def _label(value) -> str:
    return "/".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _load_results(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _load_cache(path: Path, key: dict) -> dict[str, dict]:
    """Rows of an interrupted run with the same key. A torn or corrupted line (a kill mid-write) is dropped
    with one warning and its sample recomputed: a cache can cost time, never correctness."""
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    try:
        if json.loads(lines[0]).get("cache_key") != key:
            return {}
    except (IndexError, json.JSONDecodeError, AttributeError):
        return {}
    rows, bad = {}, 0
    for line in lines[1:]:
        try:
            row = json.loads(line)
            rows[row["id"]] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            bad += 1
    if bad:
        print(f"warning: {path}: dropped {bad} corrupted line(s); those samples are recomputed", file=sys.stderr)
    return rows


def default_out(model_dir: Path) -> Path:
    model_dir = Path(model_dir)
    if (model_dir.parent / "config.json").exists():  # a stage of a run
        return model_dir / "evals"
    return Path("runs") / "external" / model_dir.name / "evals"


def compare(a: Path, b: Path, suite: str, metric: str) -> dict:
    """Paired difference B - A of a binary metric over the samples both evaluated (CLT on per-item differences)."""
    def load(path: Path) -> dict[str, dict]:
        file = Path(path) / suite / "samples.jsonl"
        if not file.exists():
            raise LabError(f"{file} does not exist; run `lab eval` on that model first")
        rows = {}
        for i, line in enumerate(file.read_text().splitlines(), 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise LabError(f"{file}:{i} is not valid JSON (a corrupted results file; rerun the eval)") from None
            rows[row["id"]] = row
        return rows

    rows_a, rows_b = load(a), load(b)
    shared = sorted(i for i in rows_a if i in rows_b and metric in rows_a[i] and metric in rows_b[i])
    if not shared:
        raise LabError(f"no shared samples with metric '{metric}' in {a} and {b}")
    return paired_difference([float(rows_a[i][metric]) for i in shared], [float(rows_b[i][metric]) for i in shared])
