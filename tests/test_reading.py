"""Reading probes: the induction score sees copying when there is copying and none when there is not, per head
too, and copy accuracy scores exactly what a continuation copies."""

import json
import random
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evals.corpus_stats import corpus_epochs, corpus_used_ids, token_counts, used_token_ids
from evals.eval_settings import ReadingSettings
from evals.reading import (
    HELDOUT_TEMPLATES,
    LAYOUT_KINDS,
    LAYOUTS,
    PROBE_CONSONANTS,
    copied,
    copy_accuracy,
    copy_prompt,
    copy_string,
    induction_heads,
    induction_score,
    layout_copy,
    layout_items,
    layout_string,
    open_book,
    open_book_items,
    open_book_two,
    reading_snapshot,
    two_people_items,
)
from lab.errors import LabError
from lab.presets import Preset
from lab.runs import Run
from tasks.corpus import SOURCES, CorpusConfig, DataSettings, build_corpus
from tasks.reading import COPY_FRAMES, FRESH_CONSONANTS
from tasks.world import CORPUS_TEMPLATES, build_world, name_space

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
    assert len(items) == 6 * 5 * 3 and {i["phrasing"] for i in items} == {"corpus", "novel", "heldout"}
    for item in items:  # the answer is in the prompt's article, stated once
        article, prompt = item["prompt"].split("\n")
        assert article.count(item["golds"][0]) >= 1 and item["person"] in prompt and "Q:" not in item["prompt"]
    reader = open_book(None, None, settings, generate_text=_reader({i["prompt"]: i for i in items}))
    assert all(reader[p]["accuracy"]["value"] == 1.0 for p in ("corpus", "novel", "heldout"))
    lisbon = open_book(None, None, settings, generate_text=lambda texts, n: [" Lisbon"] * len(texts))
    assert all(lisbon[p]["accuracy"]["value"] < 0.2 for p in ("corpus", "novel", "heldout"))


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
        layout_per_cell=1, open_book_people=2, two_people_pairs=1))
    copying = {"induction_score", "induction_heads", "induction_head_best", "copy_digits_8", "copy_layouts",
               *(f"copy_{layout}_{kind}" for layout in LAYOUTS for kind in LAYOUT_KINDS)}
    assert set(snap) == copying | {"open_book_corpus", "open_book_novel", "open_book_heldout", "open_book_two",
                                   "open_book_two_other"}
    assert tiny_model.training
    assert len(snap["induction_heads"]) == 2 and all(len(layer) == 4 for layer in snap["induction_heads"])
    assert set(reading_snapshot(tiny_model, tiny_tokenizer, world_probes=False, settings=ReadingSettings(
        induction_length=8, induction_rows=2, copy_lengths=(8,), copy_kinds=("digits",), copy_per_cell=3,
        layout_per_cell=1), allowed_ids=range(7, 60))) == copying | {"induction_used_16", "induction_used_32",
                                                                     "induction_used_64"}


def test_the_corpus_used_draw_takes_only_the_allowed_ids_and_a_copier_still_scores_one(tiny_model):
    seen = []

    class Spy(Copier):
        def forward(self, input_ids, use_cache=False):
            seen.append(input_ids)
            return super().forward(input_ids, use_cache)

    allowed = {11, 23, 42, 57}
    result = induction_score(Spy(), SMALL, allowed_ids=allowed)
    assert set(seen[0][:, 1:].flatten().tolist()) <= allowed and result["draw"] == "used" and result["ids"] == 4
    assert result["score"] > 0.99 and result["by_row"]["n"] == 4 and result["by_row"]["value"] > 0.99
    assert induction_score(Spy(), SMALL, allowed_ids=allowed, length=6)["length"] == 6
    assert induction_score(tiny_model, SMALL)["draw"] == "uniform"  # the original draw, unchanged
    for bad, message in (({3}, "at least 2"), ({5, 500}, "outside the model's vocabulary")):
        with pytest.raises(LabError, match=message):
            induction_score(Spy(), SMALL, allowed_ids=bad)


def test_layout_strings_have_their_kind_and_length_and_names_share_no_consonant_with_fresh_names():
    rng = random.Random(0)
    digits, name, code = (layout_string(kind, rng) for kind in ("digits", "names", "codes"))
    assert len(digits) == 8 and digits.isdigit() and len(name) == 8 and name.isalpha() and name[0].isupper()
    assert len(code) == 6 and any(c.isdigit() for c in code) and any(c.isalpha() for c in code)
    assert not set(PROBE_CONSONANTS) & set(FRESH_CONSONANTS)
    with pytest.raises(LabError, match="unknown layout-copy kind"):
        layout_string("emoji", rng)
    items = layout_items(ReadingSettings(layout_per_cell=4))
    assert len(items) == 4 * len(LAYOUTS) * len(LAYOUT_KINDS)
    by_layout = {layout: [i["string"] for i in items if i["layout"] == layout] for layout in LAYOUTS}
    assert by_layout["id"] == by_layout["pipe"]  # the same strings in both layouts: a paired comparison
    assert items[0]["prompt"] == f"id={items[0]['string']};\nid="


def test_layout_copy_counts_exact_copies_only():
    def echo(texts, max_new_tokens):  # the string the prompt shows, then the layout's own closing character
        return [t.split("=")[1].split(";")[0] + ";" if t.startswith("id=") else t.split(" | ")[0] + " |" for t in texts]

    rows = layout_copy(None, None, ReadingSettings(layout_per_cell=3), generate_text=echo)
    assert [(r["layout"], r["kind"]) for r in rows] == [(a, k) for a in LAYOUTS for k in LAYOUT_KINDS]
    assert all(r["accuracy"]["value"] == 1.0 and r["accuracy"]["n"] == 3 for r in rows)
    framed = layout_copy(None, None, ReadingSettings(layout_per_cell=3),
                         generate_text=lambda texts, n: ["Copy of label: " + echo([t], n)[0] for t in texts])
    assert all(r["accuracy"]["value"] == 0.0 for r in framed)


def test_two_people_prompts_state_both_values_and_score_the_asked_and_the_other_apart():
    items = two_people_items(ReadingSettings(two_people_pairs=4))
    assert len(items) == 4 * 5 and {i["position"] for i in items} == {"first", "second"}
    for item in items:
        first, second, prompt = item["prompt"].split("\n")
        assert item["golds"][0] != item["others"][0] and item["person"] in prompt
        assert {item["golds"][0] in first, item["golds"][0] in second} == {True, False}
        assert item["others"][0] in (second if item["golds"][0] in first else first)
    by_prompt = {i["prompt"]: i for i in items}

    def answer(key):
        return lambda texts, n: [f" {by_prompt[t][key][0]}." for t in texts]

    right = open_book_two(None, None, ReadingSettings(two_people_pairs=4), generate_text=answer("golds"))
    wrong = open_book_two(None, None, ReadingSettings(two_people_pairs=4), generate_text=answer("others"))
    assert right["accuracy"]["value"] == 1.0 and right["other"]["value"] == 0.0
    assert wrong["accuracy"]["value"] == 0.0 and wrong["other"]["value"] == 1.0
    assert right["by_position"]["first"]["n"] + right["by_position"]["second"]["n"] == 20


def test_no_pretraining_source_writes_the_frozen_layouts_or_the_held_out_wordings():
    """The default corpus, and every registered source at 2,000 documents (the stream's sources among them):
    no document holds a copy layout's fixed text or a held-out open-book wording, and the wordings use only
    words the corpus uses."""
    data = DataSettings()
    train, heldout, _ = build_corpus(build_world(data.world), data.corpus)
    more = build_corpus(build_world(data.world), CorpusConfig(narratives=2, heldout_docs=1, seed=7,
                                                              extra_sources={name: 2000 for name in SOURCES}))[0]
    texts = [d["text"] for d in train + heldout + more]
    assert {d["source"] for d in more} >= {"fresh_people", "copy_drills", "tool_transcripts"}
    fixed = ["id=", " | "]  # LAYOUTS' fixed text: "id=X;\nid=" and "X | X | "
    assert all(any(part in template for template in LAYOUTS.values()) for part in fixed)
    assert not any(part in frame for part in fixed for frame in COPY_FRAMES)
    wordings = [part.strip() for template in HELDOUT_TEMPLATES.values() for part in template.split("{n}")]
    assert not [(part, t[:80]) for t in texts for part in fixed + wordings if part in t]
    assert not set(HELDOUT_TEMPLATES.values()) & {p for templates in CORPUS_TEMPLATES.values() for p, _ in templates}
    known = {w.lower() for t in texts for w in re.findall(r"[A-Za-z]+", t)}
    assert {w.lower() for part in wordings for w in part.split()} <= known


def test_token_counts_cover_every_training_file_but_not_heldout_and_used_ids_keep_the_frequent_ones(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.json").write_text(json.dumps({"tokens": {"train": 203, "heldout": 50}, "dtype": "uint32"}))
    np.array([1, 8] * 100 + [9, 9, 70000], dtype=np.uint32).tofile(data / "train.bin")
    np.array([8] * 60 + [10] * 100 + [12] * 99, dtype=np.uint32).tofile(data / "stream.bin")  # a 2nd training file
    np.array([11] * 500, dtype=np.uint32).tofile(data / "heldout.bin")
    counts = token_counts(data)
    assert counts[8] == 160 and counts[9] == 2 and counts[10] == 100 and counts[11] == 0 and counts[70000] == 1
    assert used_token_ids(data) == [8, 10]  # 1 is special; 12 falls one short of 100; heldout's 11 is not counted
    assert used_token_ids(data, min_count=2) == [8, 9, 10, 12]
    with pytest.raises(LabError, match="at least 2"):
        used_token_ids(data, min_count=150)
    # what pretraining and the knowledge stage call: None (uniform only) for no token files or a toy corpus
    assert corpus_used_ids(data) == [8, 10] and corpus_used_ids(data, min_count=150) is None
    assert corpus_used_ids(tmp_path) is None
    with pytest.raises(LabError, match="missing"):
        token_counts(tmp_path)


def test_corpus_epochs_prefers_the_summary_and_falls_back_on_tokens_trained(tmp_path):
    run = Run.create_or_open(tmp_path / "r", Preset())
    assert corpus_epochs(run) is None  # no base stage yet
    base = run.stage_dir("base")
    (base / "data").mkdir(parents=True)
    (base / "data" / "meta.json").write_text(json.dumps({"tokens": {"train": 1000, "heldout": 10}, "dtype": "uint16"}))
    (base / "summary.json").write_text(json.dumps({"tokens_trained": 13760}))
    assert corpus_epochs(run) == pytest.approx(13.76)
    (base / "summary.json").write_text(json.dumps({"tokens_trained": 13760, "epochs": {"corpus": 9.5, "stream": 1.0}}))
    assert corpus_epochs(run) == 9.5
