"""The eval harness: a registry of suites, one batched runner, lm-evaluation-harness-style outputs.

A suite is a name, a version, a generator of samples (each with an id, chat messages and a gold), a
grader and its metrics. The runner renders every sample with the model's chat template, generates
greedily through our engine, grades, and writes `<out>/<suite>/samples.jsonl` and `results.json`
(every metric as value, stderr, 95% CI, n, plus model, suite version, seed and samples/s).
MODEL is a stage of a run (`runs/tiny/sft`) or any HF causal-LM directory.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from evals.stats import paired_difference, proportion
from lab.errors import LabError


@dataclass
class EvalContext:
    world: object  # tasks.world.World
    identity: object  # tasks.identity.Identity
    system: str | None


@dataclass
class Suite:
    name: str
    version: str
    samples: Callable[[EvalContext], list[dict]]  # dicts with id, messages, gold, extras
    grade: Callable[[dict, str], dict]  # (sample, response) -> {"grade": ..., binary metrics ...}
    metrics: tuple[str, ...]  # binary per-sample fields averaged into results
    group_by: tuple[str, ...] = ()  # extras keys: metrics are also broken down by each one's values
    max_new_tokens: int = 32
    tools: bool = False  # whether tool calls are executed (otherwise they get a "tools are off" error)


# ---------------------------------------------------------------- suites


def _hallucination_samples(ctx: EvalContext) -> list[dict]:
    return [{"id": q.id, "messages": [{"role": "user", "content": q.text}], "gold": q.answer,
             "extras": {"k": q.k, "aliases": q.aliases, "attribute": q.attribute}}
            for p in ctx.world.heldout_people() for q in ctx.world.questions(p)]


def _hallucination_grade(sample: dict, response: str) -> dict:
    from evals.hallucination import grade

    g = grade(response, sample["gold"], sample["extras"]["aliases"])
    unseen = sample["extras"]["k"] == 0
    out = {"grade": g, "correct": g == "correct", "incorrect": g == "incorrect", "not_attempted": g == "not_attempted"}
    if unseen:
        out["hallucinated_unseen"] = g == "incorrect"
    return out


def _identity_samples(ctx: EvalContext) -> list[dict]:
    from tasks.identity import OTHER_ASSISTANTS, probe_targets

    return [{"id": f"identity-{i}", "messages": [{"role": "user", "content": q}], "gold": target,
             "extras": {"others": OTHER_ASSISTANTS}} for i, (q, target) in enumerate(probe_targets(ctx.identity))]


def _identity_grade(sample: dict, response: str) -> dict:
    text = response.lower()
    claims_other = any(f"i am {o.lower()}" in text or f"i'm {o.lower()}" in text for o in sample["extras"]["others"])
    own = sample["gold"].lower() in text
    return {"grade": "correct" if own and not claims_other else "incorrect", "own_identity": own,
            "claims_other_assistant": claims_other}


SPELLING_CONDITIONS = {"direct": " Answer directly with just the answer.", "steps": "",
                       "tool": " Check it with the python tool."}


def _spelling_samples(ctx: EvalContext, per_condition: int = 200) -> list[dict]:
    from tasks.spelling import SpellingConfig, generate

    problems = generate(SpellingConfig(seed=1), per_condition, split="heldout")
    return [{"id": f"{p.id}|{condition}", "messages": [{"role": "user", "content": p.question + suffix}],
             "gold": p.answer, "extras": {"task": p.task, "condition": condition, "band": p.extras["band"],
                                          "length": p.extras["length"]}}
            for condition, suffix in SPELLING_CONDITIONS.items() for p in problems]


def final_answer(response: str) -> str:
    """The text after the last "Answer:" (the format every worked solution ends with), else the response."""
    text = response.rsplit("Answer:", 1)[-1] if "Answer:" in response else response
    return " ".join(text.strip().strip(".").strip('"').split()).lower()


def _spelling_grade(sample: dict, response: str) -> dict:
    ok = final_answer(response) == sample["gold"].lower()
    return {"grade": "correct" if ok else "incorrect", "correct": ok}


SUITES: dict[str, Suite] = {
    "hallucination": Suite("hallucination", "1", _hallucination_samples, _hallucination_grade,
                           ("correct", "incorrect", "not_attempted", "hallucinated_unseen"), group_by=("k",)),
    "identity": Suite("identity", "1", _identity_samples, _identity_grade, ("own_identity", "claims_other_assistant")),
    "spelling": Suite("spelling", "1", _spelling_samples, _spelling_grade, ("correct",),
                      group_by=("condition", "task", "band"), max_new_tokens=96, tools=True),
}


def resolve_suites(spec: str) -> list[Suite]:
    names = list(SUITES) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown or not names:
        raise LabError(f"unknown suite '{(unknown or [spec])[0]}'; suites: {', '.join(SUITES)}, all")
    return [SUITES[n] for n in names]


# ---------------------------------------------------------------- runner


def context_for(model_dir: Path) -> EvalContext:
    """The world and identity of the run a stage belongs to, or the defaults for an outside model."""
    from lab.presets import Preset, run_preset
    from tasks.identity import system_message
    from tasks.world import build_world

    preset = run_preset(Path(model_dir).parent) or Preset()
    world, identity = build_world(preset.data.world), preset.sft.identity
    return EvalContext(world=world, identity=identity, system=system_message(identity))


def _prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Our renderer for lab tokenizers; the model's own chat template, or plain text, for any other model."""
    if tokenizer.convert_tokens_to_ids("<|im_start|>") == 3:
        from lab.chat_format import render

        return render(tokenizer, messages, add_generation_prompt=True)[0]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    text = "\n".join(m["content"] for m in messages) + "\nAnswer:"
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(text, add_special_tokens=False)["input_ids"]


def run_suite(model, tokenizer, suite: Suite, ctx: EvalContext, out: Path, limit: int | None = None,
              seed: int = 0, batch_size: int = 64, model_name: str = "") -> dict:
    from lab.engine import SamplingParams

    samples = suite.samples(ctx)
    if limit is not None:
        samples = random.Random(seed).sample(samples, min(limit, len(samples)))
    stops = tuple(t for t in (tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab()
                              else None, tokenizer.eos_token_id) if t is not None)
    params = SamplingParams(max_new_tokens=suite.max_new_tokens, stop_token_ids=stops)
    context = getattr(model.config, "max_position_embeddings", 10**9)
    t0, graded, skipped = time.perf_counter(), [], 0
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        system = [{"role": "system", "content": ctx.system}] if ctx.system else []
        prompts = [_prompt_ids(tokenizer, system + s["messages"]) for s in batch]
        keep = [i for i, p in enumerate(prompts) if len(p) + params.max_new_tokens <= context]
        skipped += len(batch) - len(keep)  # too long for the model: skipped and counted, never truncated
        for i, (response, calls) in zip(keep, _answers(model, tokenizer, [prompts[i] for i in keep], params, suite, ctx)):
            sample = batch[i]
            graded.append({"id": sample["id"], "prompt": sample["messages"][-1]["content"], "response": response,
                           "gold": sample["gold"], **suite.grade(sample, response), "tool_calls": calls,
                           "extras": sample["extras"]})
    seconds = time.perf_counter() - t0
    results = {"suite": suite.name, "suite_version": suite.version, "model": model_name, "seed": seed,
               "limit": limit, "n": len(graded), "skipped_too_long": skipped, "seconds": seconds,
               "samples_per_s": len(graded) / seconds if seconds else None,
               "metrics": _metrics(graded, suite.metrics), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    results["by_group"] = {
        key: {str(v): _metrics([g for g in graded if g["extras"][key] == v], suite.metrics)
              for v in sorted({g["extras"][key] for g in graded})}
        for key in suite.group_by}
    target = Path(out) / suite.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "samples.jsonl").write_text("".join(json.dumps(g) + "\n" for g in graded))
    (target / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _answers(model, tokenizer, prompts, params, suite: Suite, ctx: EvalContext) -> list[tuple[str, list]]:
    """(answer text, tool calls) per prompt: through the engine's tool loop when the tokenizer has the lab's
    tool-call tokens, else plain generation (a model we did not build cannot call our tools)."""
    from lab.engine import generate, generate_with_tools

    def engine(batch, p):
        return generate(model, batch, p, pad_token_id=tokenizer.pad_token_id or 0)

    if "<|tool_call|>" not in tokenizer.get_vocab():
        stops = set(params.stop_token_ids)
        return [(tokenizer.decode([t for t in out if t not in stops]), []) for out in engine(prompts, params)]
    from lab.tools import ToolContext, ToolResult, run_tool

    tool_context = ToolContext(world=ctx.world)

    def tool(name, argument):
        if not suite.tools:
            return ToolResult(False, "error: tools are switched off in this eval", "unavailable")
        return run_tool(name, argument, tool_context)

    answers = generate_with_tools(engine, tokenizer, prompts, params, tool,
                                  context_length=getattr(model.config, "max_position_embeddings", None))
    return [(a.answer, [{"name": c.name, "argument": c.argument, "ok": c.ok} for c in a.calls]) for a in answers]


def _metrics(graded: list[dict], names: tuple[str, ...]) -> dict:
    return {m: proportion(sum(bool(g[m]) for g in graded if m in g), sum(1 for g in graded if m in g)) for m in names}


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
