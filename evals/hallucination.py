"""Hallucination on held-out people, SimpleQA-style: correct / incorrect / not attempted, by exposure k.

Questions are about held-out people only (never in SFT data); k = 0 people were never seen at all,
so any answer about them is invented. A refusal ("I don't know who that is.") is "not attempted".
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.knowledge import normalise
from evals.stats import proportion
from lab.chat_format import render
from lab.engine import SamplingParams, generate

GRADES = ("correct", "incorrect", "not_attempted")


def grade(response: str, gold: str, aliases: list[str]) -> str:
    from tasks.chat import is_refusal

    if is_refusal(response):
        return "not_attempted"
    text = f" {normalise(response)} "
    return "correct" if any(f" {normalise(g)} " in text for g in (gold, *aliases)) else "incorrect"


def run_suite(model, tokenizer, world, out: Path, system: str | None = None, batch_size: int = 128,
              max_new_tokens: int = 24) -> dict:
    questions = [q for p in world.heldout_people() for q in world.questions(p)]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    params = SamplingParams(max_new_tokens=max_new_tokens, stop_token_ids=(im_end, tokenizer.eos_token_id))
    samples = []
    for start in range(0, len(questions), batch_size):
        batch = questions[start : start + batch_size]
        prompts = []
        for q in batch:
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q.text}]
            prompts.append(render(tokenizer, messages, add_generation_prompt=True)[0])
        for q, tokens in zip(batch, generate(model, prompts, params, pad_token_id=tokenizer.pad_token_id)):
            response = tokenizer.decode([t for t in tokens if t not in (im_end, tokenizer.eos_token_id)])
            samples.append({"id": q.id, "k": q.k, "prompt": q.text, "response": response, "gold": q.answer,
                            "grade": grade(response, q.answer, q.aliases)})
    results = {"overall": _rates(samples), "by_k": {str(k): _rates([s for s in samples if s["k"] == k])
                                                   for k in sorted({s["k"] for s in samples})}}
    unseen = [s for s in samples if s["k"] == 0]
    results["hallucination_rate_unseen"] = proportion(sum(s["grade"] == "incorrect" for s in unseen), len(unseen))
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _rates(samples: list[dict]) -> dict:
    n = len(samples)
    return {g: proportion(sum(s["grade"] == g for s in samples), n) for g in GRADES}
