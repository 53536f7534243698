"""Seeing inside the model: input-embedding neighbourhoods and attention maps.

Two cheap windows into a trained labgpt, meant for questions like "does the model have a notion of
'city' before any layer runs?" and "which heads just copy the previous token?".

Embeddings. A word's vector is the mean of the input embeddings of the tokens it becomes, in the
form it takes in running text, i.e. with a leading space (" Lisbon" is one token; "Lisbon" at the
start of a document is another sequence entirely). A word missing from the vocabulary is composed
from its pieces the same way. When the leading space stays a token of its own (numbers: " 1987" is
"␣ 1 9 8 7" because digits are split), that bare space carries nothing about the word and is dropped.
Similarity is cosine after subtracting the vocabulary's mean embedding (`center=True`, the default).
The table holds one strong common direction (rarely trained tokens such as lone UTF-8 bytes sit near
it; on runs/tiny/base the mean cosine of a row with the mean row is 0.48), and a word composed of
several pieces is an average that falls onto it: uncentred, " Malmö" (five pieces) has cosine 0.87
with "Pharmaceutical", "aut" and "show" alike. Single-token words barely change either way. The
number that says whether a group clusters is its mean within-group cosine next to its mean cosine
with the other groups' words, which is the baseline for "unrelated" under the same centring.

Attention. `attention_maps` runs the eager attention path (the one that materialises the weights),
checks that its logits match the fast path's, and restores the model's own implementation. Text
is prefixed with <|bos|> as every pretraining document was. Text longer than the model's context
is refused rather than truncated: a cut text would silently show attention over something other
than what was asked, and a map over hundreds of tokens is unreadable anyway.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lab.errors import LabError
from lab.model.inspect_tokens import token_shown, tokenize_view
from lab.model.tokenizer import encode_text
from tasks.world import CITIES, FIELDS, UNIVERSITIES, YEARS, name_space

UNIVERSITY_WORDS = {"the", "of", "University", "College", "Institute", "Technical", "Polytechnic", "Academy"}


# ----------------------------------------------------------------------------- embeddings

def default_groups(years_every: int = 3, first_names: int = 20) -> dict[str, list[str]]:
    """Word groups from the world: cities, fields, years, universities (their own name) and first names.

    Years cluster by construction: every digit is its own token, so " 1957" and " 1962" share the
    pieces 1 and 9 and differ in two of four. Their cosine measures the tokenizer, not learning."""
    # "the University of Almsby" -> "Almsby": the shared words would make universities cluster trivially.
    universities = [next(w for w in u.split() if w not in UNIVERSITY_WORDS) for u in UNIVERSITIES]
    firsts = list(dict.fromkeys(n.split()[0] for n in name_space()))
    step = max(1, len(firsts) // first_names) if first_names else 0
    return {
        "cities": list(CITIES),
        "fields": list(FIELDS),
        "years": list(YEARS[::years_every]),
        "universities": universities,
        **({"first names": firsts[::step][:first_names]} if first_names else {}),
    }


def _embedding_table(model) -> torch.Tensor:
    return model.get_input_embeddings().weight.detach().float()


def word_pieces(tokenizer, word: str) -> list[int]:
    """Token ids of `word` as it appears in running text (after a space), minus a bare-space token."""
    if not isinstance(word, str) or not word.strip():
        raise LabError(f"not a word: {word!r}")
    ids = encode_text(tokenizer, " " + word.strip())
    space = encode_text(tokenizer, " ")
    if len(ids) > 1 and ids[:1] == space:
        ids = ids[1:]
    return ids


def word_vectors(model, tokenizer, words: list[str], center: bool = True) -> torch.Tensor:
    """One row per word: the mean input embedding of its pieces (see the module docstring)."""
    table = _embedding_table(model)
    if center:
        table = table - table.mean(0)
    rows = []
    for w in words:
        ids = word_pieces(tokenizer, w)
        if max(ids) >= table.shape[0]:
            raise LabError(f"the tokenizer gives id {max(ids)} for {w!r} but the model has only "
                           f"{table.shape[0]} embeddings: model and tokenizer are from different runs")
        rows.append(table[ids].mean(0))
    return torch.stack(rows)


def single_token_words(tokenizer, min_letters: int = 3) -> list[str]:
    """Words that are a single token with a leading space: the whole words the model has symbols for."""
    words = []
    for piece in tokenizer.backend_tokenizer.get_vocab():
        if piece.startswith("Ġ") and len(piece) > min_letters and piece[1:].isalpha() and piece[1:].isascii():
            words.append(piece[1:])
    return sorted(words)


@dataclass
class Neighbours:
    word: str
    pieces: list[str]  # how the query word was composed (one piece: a real vocabulary word)
    neighbours: list[tuple[str, float]]  # (word, cosine), most similar first


def nearest_words(model, tokenizer, word: str, vocabulary_words: list[str] | None = None, k: int = 10,
                  center: bool = True) -> Neighbours:
    """The k candidate words whose embeddings are closest (cosine) to `word`'s; the word itself excluded.

    Candidates default to every single-token word in the vocabulary (`single_token_words`)."""
    if k < 1:
        raise LabError(f"k must be at least 1, got {k}")
    pieces = word_pieces(tokenizer, word)  # refuses an empty word before anything else
    if vocabulary_words is None:
        vocabulary_words = single_token_words(tokenizer)
    candidates = [w for w in dict.fromkeys(vocabulary_words) if w != word.strip()]
    if not candidates:
        raise LabError("no candidate words to compare with")
    query = word_vectors(model, tokenizer, [word], center)
    others = word_vectors(model, tokenizer, candidates, center)
    sims = F.cosine_similarity(query, others, dim=-1)
    top = sims.topk(min(k, len(candidates)))
    nearest = [(candidates[i], float(s)) for s, i in zip(top.values, top.indices)]
    return Neighbours(word, [token_shown(tokenizer, i) for i in pieces], nearest)


def render_neighbours(result: Neighbours, console: Console) -> None:
    composed = "one token" if len(result.pieces) == 1 else f"composed of {len(result.pieces)} tokens"
    console.print(Text(f"{result.word}  ({composed}: {'|'.join(result.pieces)})", style="bold"))
    table = Table("#", "word", "cosine", box=None)
    for i, (w, s) in enumerate(result.neighbours, 1):
        table.add_row(str(i), w, f"{s:+.3f}")
    console.print(table)


def _mean_offdiag(sims: torch.Tensor) -> float:
    n = sims.shape[0]
    if n < 2:
        return float("nan")
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


def group_cosines(vectors: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per group: mean cosine between distinct members (within) and with every other group's words (between)."""
    normed = {g: F.normalize(v, dim=-1) for g, v in vectors.items()}
    out = {}
    for g, v in normed.items():
        rest = torch.cat([u for h, u in normed.items() if h != g]) if len(normed) > 1 else None
        out[g] = {"within": _mean_offdiag(v @ v.T), "between": float((v @ rest.T).mean()) if rest is not None else float("nan")}
    return out


def _overall(vectors: dict[str, torch.Tensor], cosines: dict[str, dict[str, float]]) -> dict[str, float]:
    within = [c["within"] for c in cosines.values() if c["within"] == c["within"]]  # skip NaN (1-word groups)
    normed = [F.normalize(v, dim=-1) for v in vectors.values()]
    between = [float((a @ b.T).mean()) for i, a in enumerate(normed) for b in normed[i + 1:]]
    return {"within": float(np.mean(within)) if within else float("nan"),
            "between": float(np.mean(between)) if between else float("nan")}


@dataclass
class EmbeddingMap:
    words: dict[str, list[str]]
    coords: dict[str, np.ndarray]  # group -> [n, 2] PCA coordinates
    explained: tuple[float, float]  # share of variance on each plotted axis
    cosines: dict[str, dict[str, float]]  # group -> {"within": ..., "between": ...}
    overall: dict[str, float]  # within: mean over groups; between: mean over pairs of different groups
    png: Path | None
    centred: bool = True


def embedding_map(model, tokenizer, groups: dict[str, list[str]] | None = None, out_png: str | Path | None = None,
                  center: bool = True) -> EmbeddingMap:
    """PCA of the groups' word vectors to 2-D, coloured by group, plus within/between-group cosines."""
    groups = groups if groups is not None else default_groups()
    groups = {g: list(dict.fromkeys(ws)) for g, ws in groups.items()}
    empty = [g for g, ws in groups.items() if not ws]
    if not groups or empty:
        raise LabError(f"every group needs at least one word (empty: {', '.join(empty) or 'no groups given'})")
    vectors = {g: word_vectors(model, tokenizer, ws, center) for g, ws in groups.items()}
    X = torch.cat(list(vectors.values())).numpy()
    X = X - X.mean(0)
    # PCA by SVD of the centred matrix (no scikit-learn needed): rows of vt are the principal axes.
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    coords_all = X @ vt[:2].T if len(s) >= 2 else np.pad(X @ vt[:1].T, ((0, 0), (0, 1)))
    var = s**2 / max((s**2).sum(), 1e-12)
    explained = (float(var[0]), float(var[1]) if len(var) > 1 else 0.0)
    coords, i = {}, 0
    for g, ws in groups.items():
        coords[g], i = coords_all[i:i + len(ws)], i + len(ws)
    cosines = group_cosines(vectors)
    result = EmbeddingMap(groups, coords, explained, cosines, _overall(vectors, cosines),
                          Path(out_png) if out_png else None, centred=center)
    if out_png:
        _plot_map(result, model)
    return result


def _plot_map(result: EmbeddingMap, model) -> None:
    # A bare Figure renders with Agg and never touches pyplot's global backend or figure list.
    from matplotlib import colormaps  # lazy: matplotlib is slow to import, and only the plots need it
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 7.5), layout="constrained")
    ax = fig.subplots()
    colours = colormaps["tab10"]
    for n, (g, xy) in enumerate(result.coords.items()):
        c = result.cosines[g]
        ax.scatter(xy[:, 0], xy[:, 1], s=22, color=colours(n % 10),
                   label=f"{g} (within {c['within']:+.2f} / between {c['between']:+.2f})")
        for (x, y), w in zip(xy, result.words[g]):
            ax.annotate(w, (x, y), fontsize=6.5, alpha=0.75, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel(f"PC1 ({result.explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({result.explained[1]:.0%} of variance)")
    name = getattr(model, "name_or_path", "") or type(model).__name__
    ax.set_title(f"input embeddings, words averaged over their tokens: {name}", fontsize=10)
    ax.legend(fontsize=8, title="mean cosine" + (" (centred)" if result.centred else ""), title_fontsize=8)
    result.png.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # words in scripts DejaVu lacks (CJK): boxes in the PNG, not a failure
        warnings.simplefilter("ignore")
        fig.savefig(result.png, dpi=130)


def render_embedding_map(result: EmbeddingMap, console: Console) -> None:
    title = "mean cosine of word embeddings" + (" (centred on the vocabulary mean)" if result.centred else "")
    table = Table("group", "words", "within", "between", "gap", title=title)
    rows = list(result.cosines.items()) + [("all groups", result.overall)]
    for g, c in rows:
        n = str(len(result.words[g])) if g in result.words else str(sum(map(len, result.words.values())))
        table.add_row(g, n, f"{c['within']:+.3f}", f"{c['between']:+.3f}", f"{c['within'] - c['between']:+.3f}")
    console.print(table)
    if result.png:
        console.print(f"map: {result.png}  (PC1 {result.explained[0]:.0%}, PC2 {result.explained[1]:.0%} of variance)")


# ----------------------------------------------------------------------------- attention

@torch.no_grad()
def attention_maps(model, tokenizer, text: str, add_bos: bool = True,
                   atol: float = 1e-4) -> tuple[list[str], torch.Tensor]:
    """Token labels and attention weights [layers, heads, T, T] for `text`, from the eager path.

    The eager path's logits are checked against the model's own implementation (sdpa by default),
    so the maps shown are those of the computation the model really does. `atol` is loose enough for
    float32 rounding on real runs (runs/tiny/base: 2.3e-5 at 465 tokens, logits up to 24); the tests
    hold a tiny model to 1e-5."""
    view = tokenize_view(tokenizer, text)  # refuses empty text
    ids = view.ids
    labels = [t.shown for t in view.tokens]
    if add_bos and tokenizer.bos_token_id is not None:
        ids, labels = [tokenizer.bos_token_id] + ids, [tokenizer.bos_token] + labels
    context = model.config.max_position_embeddings
    if len(ids) > context:
        raise LabError(f"the text is {len(ids)} tokens and the model's context is {context}: shorten it "
                       "(attention maps are readable up to a few dozen tokens anyway)")
    x = torch.tensor([ids], device=model.device)
    was_training, own = model.training, model.config._attn_implementation
    switch = False
    model.eval()
    try:
        reference = model(x, use_cache=False).logits
        switch = own not in (None, "eager")  # labgpt treats None as eager
        if switch:
            model.set_attn_implementation("eager")
        out = model(x, use_cache=False, output_attentions=True)
    finally:
        if switch:
            model.set_attn_implementation(own)
        model.train(was_training)
    gap = float((out.logits - reference).abs().max())
    if gap > atol:  # a bug in one of the attention paths, not a user error
        raise RuntimeError(f"eager attention's logits differ from {own}'s by {gap:.2e} (> {atol:.0e})")
    weights = torch.stack([a[0] for a in out.attentions]).float().cpu()
    return labels, weights


def attention_figure(tokens: list[str], weights: torch.Tensor, out_png: str | Path, max_labels: int = 40) -> Path:
    """A layers x heads grid of heatmaps (row: query position, column: attended position)."""
    from matplotlib.figure import Figure

    layers, heads, T, _ = weights.shape
    labelled = T <= max_labels
    size = max(2.2, min(5.0, 0.16 * T)) if labelled else 2.2
    fig = Figure(figsize=(heads * size + 1.2, layers * size + 0.8), layout="constrained")
    axes = fig.subplots(layers, heads, squeeze=False)
    fontsize = max(4.0, min(8.0, 0.8 * size * 72 / max(T, 1)))  # about one row of the map per label
    for layer in range(layers):
        for h in range(heads):
            ax = axes[layer][h]
            im = ax.imshow(weights[layer, h].numpy(), vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
            ax.set_title(f"layer {layer} head {h}", fontsize=8)
            if labelled:
                ax.set_xticks(range(T))
                ax.set_yticks(range(T))
                # Labels only on the outer panels: every panel shares the same tokens.
                ax.set_xticklabels(tokens if layer == layers - 1 else [], rotation=90, fontsize=fontsize)
                ax.set_yticklabels(tokens if h == 0 else [], fontsize=fontsize)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle("attention: row = query token, column = attended token", fontsize=10)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # CJK or emoji labels: DejaVu lacks glyphs; the PNG is still useful
        warnings.simplefilter("ignore")
        fig.savefig(out_png, dpi=110, bbox_inches="tight")
    return out_png


def _layer_index(weights: torch.Tensor, layer: int) -> int:
    n = weights.shape[0]
    if not -n <= layer < n:
        raise LabError(f"layer {layer} does not exist: the model has layers 0..{n - 1}")
    return layer % n


def top_attended(tokens: list[str], weights: torch.Tensor, layer: int,
                 k: int = 3) -> list[list[tuple[int, str, float]]]:
    """For each position, the k positions it attends to most in `layer` (head-averaged): (index, token, weight)."""
    avg = weights[_layer_index(weights, layer)].mean(0)
    out = []
    for i in range(avg.shape[0]):
        row = avg[i, :i + 1]  # causal: nothing after i can be attended
        top = row.topk(min(k, i + 1))
        out.append([(int(j), tokens[j], float(w)) for w, j in zip(top.values, top.indices)])
    return out


def render_top_attended(tokens: list[str], tops: list[list[tuple[int, str, float]]], console: Console,
                        layer: int | None = None) -> None:
    title = f"most attended tokens, layer {layer} (mean over heads)" if layer is not None else None
    table = Table("#", "token", "attends to", title=title, box=None)
    for i, (tok, row) in enumerate(zip(tokens, tops)):
        cell = Text()
        for j, (pos, t, w) in enumerate(row):
            cell.append(("   " if j else "") + f"{t}", style="bold" if pos == i - 1 else "")
            cell.append(f" @{pos} {w:.2f}", style="dim")
        table.add_row(str(i), Text(tok), cell)
    console.print(table)


LOCAL_WINDOW = 4


@dataclass
class HeadStats:
    layer: int
    head: int
    previous: float  # mean weight on the token just before
    local: float  # mean weight on the LOCAL_WINDOW tokens before (a blurred previous-token head)
    first: float  # mean weight on position 0 (<|bos|>, the usual "attention sink")
    self_: float  # mean weight on itself
    entropy: float  # mean entropy of the attention rows, in bits

    @property
    def role(self) -> str:
        for score, name in ((self.previous, "previous token"), (self.first, "first token"), (self.self_, "self"),
                            (self.local, f"last {LOCAL_WINDOW} tokens")):
            if score >= 0.5:
                return name
        return "spread"


def head_stats(weights: torch.Tensor | list[torch.Tensor]) -> list[HeadStats]:
    """What each head mostly does, averaged over positions (and over texts when given a list of maps,
    which is what a role claim needs: one sentence can make any head look special). The first
    LOCAL_WINDOW + 1 positions are skipped: there the choices are forced (position 0 sees only itself)."""
    maps = [weights] if isinstance(weights, torch.Tensor) else list(weights)
    if not maps:
        raise LabError("head statistics need at least one attention map")
    totals = None
    for w in maps:
        T = w.shape[-1]
        if T <= LOCAL_WINDOW + 1:
            raise LabError(f"head statistics need more than {LOCAL_WINDOW + 1} tokens; a text has {T}")
        i = torch.arange(LOCAL_WINDOW + 1, T)
        rows = w[:, :, i]  # [layers, heads, positions, T]
        scores = torch.stack([
            w[:, :, i, i - 1].mean(-1),
            sum(w[:, :, i, i - d] for d in range(1, LOCAL_WINDOW + 1)).mean(-1),
            w[:, :, i, 0].mean(-1),
            w[:, :, i, i].mean(-1),
            -(rows.clamp_min(1e-12).log2() * rows).sum(-1).mean(-1),
        ], -1)
        totals = scores if totals is None else totals + scores
    totals = totals / len(maps)
    return [HeadStats(layer, h, *map(float, totals[layer, h]))
            for layer in range(totals.shape[0]) for h in range(totals.shape[1])]


def render_head_stats(stats: list[HeadStats], console: Console) -> None:
    table = Table("layer", "head", "previous", f"last {LOCAL_WINDOW}", "first", "self", "entropy (bits)", "mostly",
                  title="what each head attends to (mean weight over positions)")
    for s in stats:
        table.add_row(str(s.layer), str(s.head), f"{s.previous:.2f}", f"{s.local:.2f}", f"{s.first:.2f}",
                      f"{s.self_:.2f}", f"{s.entropy:.2f}", s.role)
    console.print(table)
