"""Does a model read its context? Probes that need no world and no chat format (they run on a base model).

- Induction score (Olsson et al. 2022): a random token sequence, then the same sequence again. A model
  that copies from its context predicts the second copy far better than the first, which nothing in the
  prompt predicts. `induction_score` reports the mean next-token loss on each half and
  1 - second / first (0: no copying; 1: the second copy is free). `induction_heads` gives each head's
  attention from a token of the second copy to the token after its first occurrence, the induction
  pattern, averaged (eager attention, so `lab inspect attention`'s path).
- Copy accuracy: a random string shown twice on lines of its own, then a new line. The greedy
  continuation copies it or not, by kind (digits, made-up names) and length. The format is no training
  template's: no source in the corpus writes a string on two lines and then a third time.

Use: `induction_score(model)`, `copy_accuracy(model, tokenizer)`; both are pure functions of the model
and a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evals.stats import proportion


@dataclass(frozen=True)
class ReadingSettings:
    induction_length: int = 32  # tokens in the random sequence that is repeated
    induction_rows: int = 16
    copy_lengths: tuple[int, ...] = (3, 5, 8, 12)  # characters
    copy_kinds: tuple[str, ...] = ("digits", "names")
    copy_per_cell: int = 40
    seed: int = 0


def _random_tokens(vocab_size: int, first_id: int, rows: int, length: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(first_id, vocab_size, (rows, length), generator=generator)


def _repeated(model, settings: ReadingSettings, first_id: int) -> torch.Tensor:
    """(rows, 1 + 2 * length): bos, a random sequence, the same sequence again."""
    bos = model.config.bos_token_id if model.config.bos_token_id is not None else first_id
    half = _random_tokens(model.config.vocab_size, first_id, settings.induction_rows, settings.induction_length,
                          settings.seed)
    return torch.cat([torch.full((half.shape[0], 1), bos), half, half], dim=1)


@torch.no_grad()
def induction_score(model, settings: ReadingSettings = ReadingSettings(), first_id: int = 7) -> dict:
    """Mean next-token loss on the first and the second copy of a repeated random sequence, and the score.

    `first_id`: the lowest id drawn (the lab's tokenizers put their special tokens below 7)."""
    was_training = model.training
    model.eval()
    ids = _repeated(model, settings, first_id).to(next(model.parameters()).device)
    logits = model(input_ids=ids, use_cache=False).logits.float()
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (rows, 2 * length)
    model.train(was_training)
    n = settings.induction_length
    # losses[:, j] is the loss on token j + 1. The same tokens of each copy, its 2nd to last: the first token
    # of the second copy follows the end of the first, which nothing predicts.
    first, second = losses[:, 1:n].mean().item(), losses[:, n + 1 :].mean().item()
    return {"first_half_loss": first, "second_half_loss": second, "score": 1 - second / first,
            "rows": settings.induction_rows, "length": n}


@torch.no_grad()
def induction_heads(model, settings: ReadingSettings = ReadingSettings(), first_id: int = 7) -> list[list[float]]:
    """[layer][head]: mean attention from each token of the second copy to the token after its first
    occurrence (what an induction head attends to). Needs the eager attention path for the weights."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        ids = _repeated(model, settings, first_id).to(next(model.parameters()).device)
        attentions = model(input_ids=ids, use_cache=False, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(previous)
    n = settings.induction_length
    queries = torch.arange(n + 1, 2 * n + 1)  # positions of the second copy (bos is position 0)
    targets = queries - n + 1  # the token after the same token's first occurrence
    return [layer[:, :, queries, targets].mean(dim=(0, 2)).tolist() for layer in attentions]


# ---------------------------------------------------------------- copying strings

_SYLLABLES = ["ka", "lo", "mi", "ru", "te", "vo", "zi", "na", "pe", "so", "du", "ar", "el", "iv", "or", "ub"]


def copy_string(kind: str, length: int, rng: random.Random) -> str:
    """A random string of `length` characters: digits, or a made-up capitalised name from syllables no world
    table uses (the world's names are drawn from its own tables; these are cut to length)."""
    if kind == "digits":
        return "".join(rng.choice("0123456789") for _ in range(length))
    if kind == "names":
        text = ""
        while len(text) < length:
            text += rng.choice(_SYLLABLES)
        return text[:length].capitalize()
    raise ValueError(f"unknown copy kind {kind!r}; valid: digits, names")


def copy_prompt(text: str) -> str:
    return f"{text}\n{text}\n"


def copied(continuation: str, text: str) -> bool:
    """The continuation starts with the string, followed by nothing or a break (not a longer string)."""
    rest = continuation[len(text):]
    return continuation.startswith(text) and (not rest or not rest[0].isalnum())


def copy_accuracy(model, tokenizer, settings: ReadingSettings = ReadingSettings(), generate_text=None) -> list[dict]:
    """One row per (kind, length): the share of strings the greedy continuation copies, with its 95% CI.
    `generate_text(texts, max_new_tokens) -> continuations` defaults to the engine."""
    if generate_text is None:
        from lab.model.engine import SamplingParams
        from lab.model.engine import generate_text as engine_text

        def generate_text(texts, max_new_tokens):
            return engine_text(model, tokenizer, texts, SamplingParams(max_new_tokens=max_new_tokens))

    rng = random.Random(settings.seed)
    rows = []
    for kind in settings.copy_kinds:
        for length in settings.copy_lengths:
            strings = [copy_string(kind, length, rng) for _ in range(settings.copy_per_cell)]
            # characters are at most one token each, plus room for what follows
            outs = generate_text([copy_prompt(s) for s in strings], length + 2)
            hits = [copied(out, s) for out, s in zip(outs, strings)]
            rows.append({"kind": kind, "length": length, "accuracy": proportion(sum(hits), len(hits)),
                         "examples": [{"string": s, "continuation": o} for s, o in list(zip(strings, outs))[:3]]})
    return rows
