"""Reading probes: the induction score sees copying when there is copying and none when there is not, per head
too, and copy accuracy scores exactly what a continuation copies."""

import random
from types import SimpleNamespace

import pytest
import torch

from evals.eval_settings import ReadingSettings
from evals.reading import (
    copied,
    copy_accuracy,
    copy_prompt,
    copy_string,
    induction_heads,
    induction_score,
    open_book,
    open_book_items,
    reading_snapshot,
)
from tasks.world import name_space

SMALL = ReadingSettings(induction_length=12, induction_rows=4, copy_lengths=(3, 8), copy_per_cell=5)


class Copier(torch.nn.Module):
    """A scripted model that predicts every token of a repeated sequence's second copy from its first copy,
    and knows nothing else (uniform logits)."""

    def __init__(self, vocab_size=97, length=12):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size, bos_token_id=1)
        self.length = length
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, use_cache=False):
        rows, width = input_ids.shape
        logits = torch.zeros(rows, width, self.config.vocab_size)
        for t in range(self.length + 1, width):  # position t predicts t + 1, seen length positions earlier
            if t + 1 < width:
                logits[torch.arange(rows), t, input_ids[:, t + 1 - self.length]] = 30.0
        return SimpleNamespace(logits=logits)


def test_the_induction_score_is_near_one_for_a_copier_and_near_zero_for_a_random_model(tiny_model):
    copier = induction_score(Copier(), SMALL)
    assert copier["second_half_loss"] < 0.01 < copier["first_half_loss"] and copier["score"] > 0.99
    random_model = induction_score(tiny_model, SMALL)
    assert abs(random_model["score"]) < 0.1 and random_model["rows"] == 4 and random_model["length"] == 12


def test_induction_heads_reads_attention_per_layer_and_head_and_restores_the_kernel(tiny_model):
    heads = induction_heads(tiny_model, SMALL)
    assert len(heads) == tiny_model.config.num_hidden_layers
    assert all(len(layer) == tiny_model.config.num_attention_heads for layer in heads)
    assert all(0.0 <= w <= 1.0 for layer in heads for w in layer)
    assert tiny_model.config._attn_implementation == "sdpa"


def test_copy_strings_have_their_length_and_kind():
    rng = random.Random(0)
    digits, name = copy_string("digits", 8, rng), copy_string("names", 5, rng)
    assert len(digits) == 8 and digits.isdigit() and len(name) == 5 and name[0].isupper() and name.isalpha()
    assert copy_prompt("123") == "123\n123\n"
    with pytest.raises(ValueError, match="unknown copy kind"):
        copy_string("emoji", 3, rng)


@pytest.mark.parametrize("continuation, anywhere, exact", [
    ("4821\nmore", True, True), ("4821", True, True), ("48210", False, False), ("482", False, False),
    (" 4821", True, False), ("Copy of label: 4821.", True, False), ("Copy: 14821", False, False),
    ("nothing\n4821", False, False), ("\n4821 ok", True, False)])
def test_a_copy_counts_only_when_the_whole_string_is_reproduced_on_the_first_line(continuation, anywhere, exact):
    assert copied(continuation, "4821") is anywhere
    assert copied(continuation, "4821", exact=True) is exact


def test_copy_accuracy_scores_what_the_continuations_copy():
    def echo(texts, max_new_tokens):  # copies the string it was shown
        return [text.split("\n")[0] + "\n" for text in texts]

    def babble(texts, max_new_tokens):
        return ["the city of" for _ in texts]

    rows = copy_accuracy(None, None, SMALL, generate_text=echo)
    assert [(r["kind"], r["length"]) for r in rows] == [("digits", 3), ("digits", 8), ("names", 3), ("names", 8)]
    assert all(r["accuracy"]["value"] == r["exact"]["value"] == 1.0 and r["accuracy"]["n"] == 5 for r in rows)
    assert all(r["accuracy"]["value"] == 0.0 for r in copy_accuracy(None, None, SMALL, generate_text=babble))


def _reader(items_by_prompt):
    """A scripted reader: it answers every open-book prompt with the value its article states."""
    return lambda texts, max_new_tokens: [f" {items_by_prompt[t]['golds'][0]}." for t in texts]


def test_open_book_scores_a_reader_one_and_a_guesser_near_chance():
    settings = ReadingSettings(open_book_people=6)
    items = open_book_items(settings)
    assert len(items) == 6 * 5 * 2 and {i["phrasing"] for i in items} == {"corpus", "novel"}
    for item in items:  # the answer is in the prompt's article, stated once
        article, prompt = item["prompt"].split("\n")
        assert article.count(item["golds"][0]) >= 1 and item["person"] in prompt and "Q:" not in item["prompt"]
    reader = open_book(None, None, settings, generate_text=_reader({i["prompt"]: i for i in items}))
    assert all(reader[p]["accuracy"]["value"] == 1.0 for p in ("corpus", "novel"))
    lisbon = open_book(None, None, settings, generate_text=lambda texts, n: [" Lisbon"] * len(texts))
    assert all(lisbon[p]["accuracy"]["value"] < 0.2 for p in ("corpus", "novel"))


def test_open_book_people_are_fresh_and_avoid_excluded_names():
    items = open_book_items(ReadingSettings(open_book_people=4))
    first = items[0]["person"]
    again = open_book_items(ReadingSettings(open_book_people=4), exclude=frozenset({first}))
    assert first not in {i["person"] for i in again}
    world = set(name_space())
    assert not {i["person"] for i in items} & world


def test_the_snapshot_reports_every_probe_and_leaves_the_model_as_it_was():
    from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
    from lab.model.tokenizer import train_tokenizer

    tiny_tokenizer = train_tokenizer([i["prompt"] for i in open_book_items(ReadingSettings(open_book_people=8))], 300)
    torch.manual_seed(0)
    tiny_model = LabGPTForCausalLM(LabGPTConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2,
                                                num_attention_heads=4, num_key_value_heads=2,
                                                max_position_embeddings=256)).train()
    snap = reading_snapshot(tiny_model, tiny_tokenizer, settings=ReadingSettings(
        induction_length=8, induction_rows=2, copy_lengths=(8,), copy_kinds=("digits",), copy_per_cell=3,
        open_book_people=2))
    assert set(snap) == {"induction_score", "copy_digits_8", "open_book_corpus", "open_book_novel"}
    assert tiny_model.training
    assert set(reading_snapshot(tiny_model, tiny_tokenizer, world_probes=False, settings=ReadingSettings(
        induction_length=8, induction_rows=2, copy_lengths=(8,), copy_kinds=("digits",), copy_per_cell=3))) == {
        "induction_score", "copy_digits_8"}
