"""Seeing inside the model: token views are byte-exact, embedding maps measure what they claim, and
attention maps come from a path whose logits match the fast one."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from lab.errors import LabError
from lab.model.inspect_model import (
    attention_figure,
    attention_maps,
    default_groups,
    embedding_map,
    head_stats,
    nearest_words,
    render_embedding_map,
    render_head_stats,
    render_neighbours,
    render_top_attended,
    top_attended,
    word_pieces,
    word_vectors,
)
from lab.model.inspect_tokens import (
    compare_tokenizers,
    render_comparison,
    render_tokens,
    show_bytes,
    tokenize_view,
    tokenizer_from,
)
from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
from lab.model.loading import load_model_and_tokenizer
from lab.model.tokenizer import SPECIAL_TOKENS, encode_text, save_tokenizer, train_tokenizer

WORDS = ("the a cat dog river city teacher garden library market station bridge castle forest island "
         "village harbor museum kitchen window Lisbon Oslo Porto chemistry geology botany was born in year").split()


def corpus(n=300, seed=0):
    rng = random.Random(seed)
    return [f"{' '.join(rng.choices(WORDS, k=8))} {rng.randint(1900, 2000)}." for _ in range(n)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(corpus(), vocab_size=400)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    config = LabGPTConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, max_position_embeddings=48)
    return LabGPTForCausalLM(config).eval()


def recorded(width=100):
    return Console(record=True, width=width, color_system=None)


# ----------------------------------------------------------------------------- tokens

HOSTILE = "Bonjour ça va? 🙂 日本語\x1b[31m\x00 tab\there\r\nno\u00a0break ␣ ⟨x⟩ <|im_start|>\u200d"


def test_tokens_concatenate_to_the_exact_bytes_of_any_text(tok):
    view = tokenize_view(tok, HOSTILE)
    assert b"".join(t.data for t in view.tokens) == HOSTILE.encode("utf-8")
    assert [t.start for t in view.tokens[1:]] == [t.end for t in view.tokens[:-1]]
    assert view.ids == encode_text(tok, HOSTILE)
    assert view.fragments, "an emoji must become byte fragments in a 400-token vocabulary"
    assert all(t.shown.startswith("⟨") for t in view.fragments)
    # Controls, a no-break space, a zero-width joiner and a literal '␣' are hex: the display is unambiguous.
    whole = show_bytes(HOSTILE.encode())
    for hidden in ("⟨1b⟩", "⟨00⟩", "⟨0d⟩", "⟨c2 a0⟩", "⟨e2 80 8d⟩", "⟨e2 90 a3⟩", "⟨e2 9f a8⟩x⟨e2 9f a9⟩"):
        assert hidden in whole
    assert "⟨1b⟩" in [t.shown for t in view.tokens]
    assert not any(t.special for t in view.tokens)  # a typed "<|im_start|>" is characters, not the control token


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_text_is_shown_without_raising_and_losslessly(tok, text):
    view = tokenize_view(tok, text)
    assert b"".join(t.data for t in view.tokens) == text.encode("utf-8")
    render_tokens(view, recorded())


def test_show_bytes_marks_what_a_terminal_hides():
    assert show_bytes(b" a\n\tb") == "␣a↵⇥b"
    assert show_bytes("é".encode()[:1]) == "⟨c3⟩"  # half a character
    assert show_bytes(b"\xe2\x80") == "⟨e2 80⟩"
    assert show_bytes("日".encode()) == "日"


def test_render_shows_digits_one_token_words_spaces_and_newlines(tok):
    view = tokenize_view(tok, "the cat was born in 1987\nin Lisbon")
    assert [n.pieces for n in view.numbers] == [["1", "9", "8", "7"]]
    assert "Lisbon" in [w.text for w in view.one_token_words]
    console = recorded()
    render_tokens(view, console, table=True)
    out = console.export_text()
    assert f"{view.count} tokens" in out and "chars/token" in out
    assert "␣cat" in out and "↵" in out and "1987 → 1|9|8|7" in out
    assert "one-token words" in out and "Lisbon" in out
    assert " ".join(map(str, view.ids[:5])) in out


def test_special_tokens_mode_matches_control_tokens(tok):
    text = "<|im_start|>user\nhi<|im_end|>"
    plain, special = tokenize_view(tok, text), tokenize_view(tok, text, special_tokens=True)
    assert special.tokens[0].id == SPECIAL_TOKENS.index("<|im_start|>") and special.tokens[0].special
    assert plain.count > special.count
    assert "start" in [w.text for w in plain.words] and "start" not in [w.text for w in special.words]
    assert b"".join(t.data for t in special.tokens) == text.encode()


def test_compare_two_vocabularies_side_by_side(tok):
    small = train_tokenizer(corpus(), vocab_size=300)
    a, b = compare_tokenizers(small, tok, "the library was born in Lisbon")
    assert a.count > b.count and a.chars_per_token < b.chars_per_token
    console = recorded(140)
    render_comparison((a, b), console, names=("small", "large"))
    out = console.export_text()
    assert "small" in out and "large" in out and "split differently" in out


def test_bad_input_is_one_clear_error(tok, model, tmp_path):
    with pytest.raises(LabError, match="empty"):
        tokenize_view(tok, "")
    with pytest.raises(LabError, match="empty"):
        attention_maps(model, tok, "")
    with pytest.raises(LabError, match="does not exist"):
        tokenizer_from(tmp_path / "nope")
    with pytest.raises(LabError, match="does not exist"):
        load_model_and_tokenizer(tmp_path / "runs" / "nope" / "base")
    with pytest.raises(LabError, match="not a word"):
        nearest_words(model, tok, " ")
    with pytest.raises(LabError, match="context"):
        attention_maps(model, tok, "the cat " * 40)
    with pytest.raises(LabError, match="at least one word"):
        embedding_map(model, tok, {"cities": ["Oslo"], "fields": []})
    save_tokenizer(tok, tmp_path / "run" / "tokenizer")  # a run dir resolves to its tokenizer
    assert tokenizer_from(tmp_path / "run").get_vocab() == tok.get_vocab()


# ----------------------------------------------------------------------------- embeddings

def set_rows(model, tok, vectors: dict[str, torch.Tensor]):
    """Place chosen words' embeddings (single-token words with their leading space)."""
    table = model.get_input_embeddings().weight
    with torch.no_grad():
        for word, v in vectors.items():
            (i,) = word_pieces(tok, word)
            table[i] = v


def test_nearest_words_uses_leading_space_forms_and_composes_unknown_words(tok, model):
    base = torch.randn(32, generator=torch.Generator().manual_seed(1)) * 3
    set_rows(model, tok, {"cat": base, "dog": base * 2})
    result = nearest_words(model, tok, "cat", ["dog", "river", "castle", "cat"], k=2, center=False)
    assert result.neighbours[0][0] == "dog" and result.neighbours[0][1] == pytest.approx(1.0, abs=1e-5)
    assert "cat" not in [w for w, _ in result.neighbours] and result.pieces == ["␣cat"]
    # An out-of-vocabulary word is the mean of its pieces; a bare leading-space token is not one of them.
    pieces = word_pieces(tok, "zqxj")
    assert len(pieces) > 1 and encode_text(tok, " ")[0] not in word_pieces(tok, "1987")
    table = model.get_input_embeddings().weight.detach()
    assert torch.allclose(word_vectors(model, tok, ["zqxj"], center=False)[0], table[pieces].mean(0))
    console = recorded()
    render_neighbours(nearest_words(model, tok, "zqxj", k=3), console)
    assert "composed of" in console.export_text()


def test_embedding_map_measures_clusters_and_writes_a_png(tok, model, tmp_path):
    g = torch.Generator().manual_seed(0)
    groups = {"places": ["Lisbon", "Oslo", "Porto"], "fields": ["chemistry", "geology", "botany"]}
    centres = {"places": torch.randn(32, generator=g) * 3, "fields": torch.randn(32, generator=g) * 3}
    set_rows(model, tok, {w: centres[k] + 0.3 * torch.randn(32, generator=g) for k, ws in groups.items() for w in ws})
    result = embedding_map(model, tok, groups, tmp_path / "map.png")
    for c in result.cosines.values():
        assert c["within"] > 0.8 and c["within"] > c["between"] + 0.5
    assert result.overall["within"] > result.overall["between"]
    assert {k: v.shape for k, v in result.coords.items()} == {"places": (3, 2), "fields": (3, 2)}
    assert result.explained[0] > 0.5  # two tight clusters: the first axis separates them
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = recorded(120)
    render_embedding_map(result, console)
    out = console.export_text()
    assert "places" in out and "all groups" in out


def test_default_groups_come_from_the_world():
    groups = default_groups()
    assert {"cities", "fields", "years", "universities", "first names"} <= groups.keys()
    assert "Lisbon" in groups["cities"] and "Almsby" in groups["universities"]
    assert not {"the", "University", "College"} & set(groups["universities"])
    assert all(len(ws) >= 10 for ws in groups.values())


# ----------------------------------------------------------------------------- attention

def test_attention_maps_come_from_eager_attention_matching_sdpa(tok, model):
    text = "the cat was born in 1987"
    assert model.config._attn_implementation == "sdpa"
    ids = torch.tensor([[tok.bos_token_id] + encode_text(tok, text)])
    with torch.no_grad():
        fast = model(ids, use_cache=False).logits
        model.set_attn_implementation("eager")
        slow = model(ids, use_cache=False).logits
        model.set_attn_implementation("sdpa")
    assert torch.allclose(fast, slow, atol=1e-5)
    tokens, weights = attention_maps(model, tok, text)
    assert model.config._attn_implementation == "sdpa"  # the model is handed back as it came
    T = ids.shape[1]
    assert tokens[0] == "<|bos|>" and len(tokens) == T and "␣cat" in tokens
    assert weights.shape == (2, 4, T, T)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, T), atol=1e-5)
    assert weights.triu(1).abs().max() == 0  # causal


def previous_token_weights(layers=2, heads=3, T=20):
    """Head 0 of every layer looks at the previous token, head 1 at the first, head 2 uniformly back."""
    w = torch.zeros(layers, heads, T, T)
    for i in range(T):
        w[:, 0, i, max(i - 1, 0)] = 1.0
        w[:, 1, i, 0] = 1.0
        w[:, 2, i, :i + 1] = 1.0 / (i + 1)
    return w


def test_top_attended_and_head_roles_on_known_patterns():
    w = previous_token_weights()
    tokens = [f"t{i}" for i in range(20)]
    tops = top_attended(tokens, w, layer=-1, k=3)
    assert [len(r) for r in tops[:3]] == [1, 2, 3]  # causal: position i has only i + 1 choices
    assert tops[5][0][:2] == (4, "t4") and tops[5][1][:2] == (0, "t0")  # mean over heads
    roles = {(s.layer, s.head): s.role for s in head_stats([w, w[:, :, :16, :16]])}
    assert roles[(0, 0)] == "previous token" and roles[(1, 1)] == "first token" and roles[(0, 2)] == "spread"
    with pytest.raises(LabError, match="layer 5"):
        top_attended(tokens, w, layer=5)
    console = recorded(120)
    render_top_attended(tokens, tops, console, layer=1)
    render_head_stats(head_stats(w), console)
    out = console.export_text()
    assert "previous token" in out and "t4 @4" in out


def test_attention_figure_is_a_png_with_or_without_labels(tok, model, tmp_path):
    tokens, weights = attention_maps(model, tok, "the cat\nwas born in Lisbon 🙂")
    for name, max_labels in (("labelled.png", 40), ("bare.png", 4)):
        path = attention_figure(tokens, weights, tmp_path / name, max_labels=max_labels)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_attention_command_prints_the_induction_table(tok, model, tmp_path):
    from typer.testing import CliRunner

    from lab.cli.main import app

    stage = tmp_path / "run" / "base"
    model.save_pretrained(stage)
    tok.save_pretrained(stage)
    result = CliRunner().invoke(app, ["inspect", "attention", str(stage), "the cat sat by the river"])
    assert result.exit_code == 0, result.output
    assert "Induction" in result.output and "head 0" in result.output and (stage / "inspect" / "attention.png").exists()
