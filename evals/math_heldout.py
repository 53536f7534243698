"""Held-out math grading: a model's answers to math problems from the lab's engine, graded as the math eval
suite grades them (grade_math: the verifier on the marked final answer, no last-number fallback).

rl-math grades its fixed held-out set with it before and after training (greedy, plus a share of sampled
answers a problem), and the math suite (evals/suites.py) grades its samples with the same rule, so the
two never disagree about what counts as right.
"""

from __future__ import annotations

from evals.suites import grade_math
from lab.model.chat_format import answer_stops, chat_prompts
from lab.model.engine import SamplingParams, generate
from lab.model.tokenizer import decode_ids
from rewards.math_checks import read_checks
from tasks.math import MathConfig
from tasks.math import generate as generate_problems

EVAL_SEED = 1234  # the held-out eval set is fixed, whatever the training seed, so arms see the same problems


def problem_prompts(tokenizer, problems) -> list[tuple[str, list[int]]]:
    """(text, ids) of each problem's question as a user turn: what the engine answers and TRL is given."""
    return chat_prompts(tokenizer, [p.question for p in problems])


def eval_problems(settings):
    """The fixed held-out set of rl-math (settings: an RLSettings): distinct questions (band 1 repeats a
    lot), first come first kept."""
    pool = generate_problems(MathConfig(seed=EVAL_SEED, tasks=tuple(settings.tasks), bands=tuple(settings.bands)),
                    4 * settings.eval_problems, split="heldout")
    seen, out = set(), []
    for p in pool:
        if p.question not in seen and len(out) < settings.eval_problems:
            seen.add(p.question)
            out.append(p)
    return out


def _answers(model, tokenizer, problems, max_new_tokens: int, temperature: float = 0.0, per_problem: int = 1,
             seed: int | None = None, batch_size: int = 64) -> list[str]:
    """`per_problem` answers to each problem from our engine, in order, as text. Sampled batches are seeded by
    their position (seed + start), so every model draws with the same seeds."""
    was_training = model.training
    model.eval()
    prompts = [ids for _, ids in problem_prompts(tokenizer, problems) for _ in range(per_problem)]
    outs = []
    for start in range(0, len(prompts), batch_size):
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature,
                                stop_token_ids=answer_stops(tokenizer), seed=None if seed is None else seed + start)
        outs += generate(model, prompts[start : start + batch_size], params, pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    return [decode_ids(tokenizer, o, skip_special_tokens=True) for o in outs]


def greedy_accuracy(model, tokenizer, problems, max_new_tokens: int, batch_size: int = 64) -> dict:
    """Greedy answers from our engine, graded by grade_math: overall, per band and per task, plus samples."""
    responses = _answers(model, tokenizer, problems, max_new_tokens, batch_size=batch_size)
    verdicts = grade_math([(r, p.answer) for r, p in zip(responses, problems)])
    groups: dict[str, list[bool]] = {}
    for p, v in zip(problems, verdicts):
        for key in ("all", f"band{p.difficulty}", p.task):
            groups.setdefault(key, []).append(v.equivalent)
    result = {k: {"accuracy": sum(v) / len(v), "n": len(v)} for k, v in groups.items()}
    result["samples"] = [{"id": p.id, "question": p.question, "gold": p.answer, "response": r, "correct": v.equivalent,
                          "reason": v.reason} for p, r, v in zip(problems, responses, verdicts)]
    return result


def sampled_correct(model, tokenizer, problems, settings, k: int, seed: int, batch_size: int) -> list[int]:
    """How many of `k` answers to each problem, sampled at the RL temperature, the verifier accepts."""
    return _sampled(model, tokenizer, problems, settings, k, seed, batch_size)[0]


def _sampled(model, tokenizer, problems, settings, k: int, seed: int, batch_size: int) -> tuple[list[int], list[dict]]:
    """Of `k` answers to each problem sampled at the RL temperature: how many the verifier accepts, and how many
    hold a verified check of their own answer (rewards/math_checks.py), are right with one, and had a check
    change the answer."""
    texts = _answers(model, tokenizer, problems, settings.max_completion_length, settings.temperature,
                     per_problem=k, seed=seed, batch_size=batch_size)
    verdicts = grade_math([(t, problems[i // k].answer) for i, t in enumerate(texts)])
    checks = [read_checks(t, problems[i // k].question) for i, t in enumerate(texts)]
    counts = []
    for i in range(len(problems)):
        span = range(i * k, (i + 1) * k)
        counts.append({"checked": sum(checks[j].verified for j in span),
                       "checked_correct": sum(checks[j].verified and verdicts[j].equivalent for j in span),
                       "changed": sum(checks[j].changed for j in span)})
    return [sum(verdicts[j].equivalent for j in range(i * k, (i + 1) * k)) for i in range(len(problems))], counts


def heldout_accuracy(model, tokenizer, problems, settings) -> dict:
    """greedy_accuracy, plus each problem's share of `eval_samples` sampled answers the verifier accepts:
    RL changes the sampling distribution before it flips greedy answers, and a share per problem is a
    finer paired measure than one greedy bit. The same samples give each problem's share with a verified check
    (sampled_check_share), for "checking one's work emerges under RL"."""
    result = greedy_accuracy(model, tokenizer, problems, settings.max_completion_length)
    k = settings.eval_samples
    if k <= 0:
        return result
    correct, checks = _sampled(model, tokenizer, problems, settings, k, seed=EVAL_SEED, batch_size=128)
    for sample, c, v in zip(result["samples"], correct, checks):
        sample["sampled_share"], sample["sampled_check_share"] = c / k, v["checked"] / k
        sample["sampled_checks"] = v | {"k": k}  # counts of the k answers, for accuracy with and without a check
    result["sampled"] = {"accuracy": sum(s["sampled_share"] for s in result["samples"]) / len(problems), "k": k,
                         "temperature": settings.temperature}
    return result
