"""Log-likelihood scoring: how probable a model finds a continuation of a prompt.

One batched forward pass per group of (prompt, continuation) pairs, right-padded, returns every
continuation token's log-probability. On top of it: answer confidence (the probability of the answer
the model itself generated), perplexity of a text, and multiple choice by the most likely option,
the three uses lm-evaluation-harness makes of `loglikelihood` requests.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def continuation_logprobs(model, prompts: list[list[int]], continuations: list[list[int]], pad_token_id: int = 0,
                          batch_size: int = 64) -> list[list[float]]:
    """Per-token log-probabilities of each continuation given its prompt (same order as the inputs)."""
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: -(len(prompts[i]) + len(continuations[i])))
    out: list[list[float]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        seqs = [prompts[i] + continuations[i] for i in rows]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = ids[:, 1:].to(device)
        picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
        for r, i in enumerate(rows):
            first = len(prompts[i]) - 1  # the logits at position t predict token t + 1
            out[i] = picked[r, first : first + len(continuations[i])].tolist()
    return out


def answer_confidence(model, prompts: list[list[int]], answers: list[list[int]], pad_token_id: int = 0) -> list[float]:
    """P(answer | prompt) for each generated answer: the product of its tokens' probabilities."""
    return [math.exp(sum(lp)) for lp in continuation_logprobs(model, prompts, answers, pad_token_id)]


def perplexity(model, texts: list[list[int]], pad_token_id: int = 0) -> float:
    """Token-level perplexity over texts (each starting with its own BOS), pooled over all tokens."""
    lps = continuation_logprobs(model, [t[:1] for t in texts], [t[1:] for t in texts], pad_token_id)
    tokens = sum(len(lp) for lp in lps)
    return math.exp(-sum(sum(lp) for lp in lps) / tokens)


def choose(model, prompt: list[int], options: list[list[int]], pad_token_id: int = 0) -> tuple[int, list[float]]:
    """Multiple choice: the option with the highest total log-probability, and every option's score."""
    scores = [sum(lp) for lp in continuation_logprobs(model, [prompt] * len(options), options, pad_token_id)]
    return max(range(len(options)), key=scores.__getitem__), scores
