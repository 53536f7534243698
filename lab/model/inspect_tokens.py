"""Tokenizer explorer: what the model actually receives when we type a piece of text.

Many "reasoning" failures of a small model are tokenizer facts in disguise. Our byte-level BPE splits
every digit into its own token (so "1987" is four symbols, and arithmetic stays learnable), merges
frequent words into one token (so the model never sees the letters of " Lisbon": spelling questions
are hard), glues the leading space to the word (" Mira" and "Mira" at a document's start are
different tokens), and falls back to raw bytes for anything it rarely saw (an emoji is four tokens,
each a fragment of one UTF-8 character). This module makes all of that visible.

Every token is kept as the exact bytes it covers, so the concatenation of the tokens is the text's
UTF-8 encoding, byte for byte, whatever the text holds. Display strings mark what a terminal would
hide: a space is '␣', a newline '↵', a tab '⇥', and bytes that are not a whole printable character
(a partial UTF-8 sequence, a control character, a no-break space) are shown in hex, e.g. ⟨e2 80⟩.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lab.errors import LabError
from lab.model.tokenizer import encode_text, load_tokenizer

SPACE, NEWLINE, TAB = "␣", "↵", "⇥"
# Our own markers are shown as hex when they occur literally in the text, so every display is unambiguous.
MARKERS = {SPACE, NEWLINE, TAB, "⟨", "⟩"}
# Alternating backgrounds make token boundaries visible without separators that could be read as text.
# Plain ANSI colours: they survive 8-colour terminals, where hex colours collapse into one grey.
STYLES = ("white on blue", "black on cyan")
SPECIAL_STYLE, BYTES_STYLE = "bold white on magenta", "black on yellow"


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: each vocabulary character stands for one byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:  # bytes that would be invisible or whitespace get shifted to code points above 255
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


def _utf8_length(lead: int) -> int:
    """Length of the UTF-8 sequence a lead byte starts; 0 for a continuation or invalid byte."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _show_char(ch: str) -> str | None:
    """Visible form of one character, or None where only its bytes can be shown honestly."""
    if ch == " ":
        return SPACE
    if ch == "\n":
        return NEWLINE
    if ch == "\t":
        return TAB
    if ch in MARKERS or unicodedata.category(ch)[0] in "CZ":  # controls, format chars, odd spaces
        return None
    return ch


def show_bytes(data: bytes) -> str:
    """Byte-exact display: whole printable characters as themselves, everything else as ⟨hex⟩."""
    out, pending, i = [], [], 0

    def flush():
        if pending:
            out.append("⟨" + " ".join(f"{b:02x}" for b in pending) + "⟩")
            pending.clear()

    while i < len(data):
        n = _utf8_length(data[i])
        ch = None
        if n and i + n <= len(data):
            try:
                ch = data[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                ch = None
        shown = _show_char(ch) if ch is not None else None
        if shown is None:
            pending.extend(data[i:i + (n if ch is not None else 1)])
            i += n if ch is not None else 1
            continue
        flush()
        out.append(shown)
        i += n
    flush()
    return "".join(out)


def token_shown(tokenizer, token_id: int) -> str:
    """Display string of one vocabulary entry, e.g. '␣Lisbon' or '⟨e2 80⟩'."""
    piece = tokenizer.backend_tokenizer.id_to_token(int(token_id))
    if piece is None:
        raise LabError(f"id {token_id} is not in the tokenizer's vocabulary")
    decoder = _byte_decoder()
    if int(token_id) in tokenizer.all_special_ids or not all(c in decoder for c in piece):
        return piece
    return show_bytes(bytes(decoder[c] for c in piece))


_show_cached = lru_cache(maxsize=1 << 16)(show_bytes)  # a text repeats the same few thousand tokens


@dataclass
class Token:
    id: int
    piece: str  # the vocabulary entry, in the byte-level alphabet ('ĠLisbon')
    data: bytes  # the exact bytes of the text it covers
    start: int  # byte offsets into text.encode("utf-8")
    end: int
    special: bool = False

    @property
    def complete(self) -> bool:
        """True when the token is whole UTF-8 characters (not a fragment of one)."""
        try:
            self.data.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    @property
    def shown(self) -> str:
        return self.piece if self.special else _show_cached(self.data)


@dataclass
class Span:
    """A number or a word in the text, and the tokens it became."""
    text: str
    pieces: list[str]  # display strings of the tokens that overlap it (leading '␣' included)


@dataclass
class TokenView:
    text: str
    tokens: list[Token]
    numbers: list[Span] = field(default_factory=list)
    words: list[Span] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]

    @property
    def count(self) -> int:
        return len(self.tokens)

    @property
    def chars_per_token(self) -> float:
        return len(self.text) / max(1, self.count)

    @property
    def bytes_per_token(self) -> float:
        return len(self.text.encode("utf-8")) / max(1, self.count)

    @property
    def one_token_words(self) -> list[Span]:
        return [w for w in self.words if len(w.pieces) == 1]

    @property
    def fragments(self) -> list[Token]:
        """Tokens that are part of a character: bytes the tokenizer (almost) never saw together."""
        return [t for t in self.tokens if not t.special and not t.complete]


def tokenizer_from(path: str | Path):
    """A tokenizer from a tokenizer dir, a stage dir (runs/tiny/base) or a run dir (runs/tiny)."""
    path = Path(path)
    if not path.exists():
        raise LabError(f"{path} does not exist")
    if not (path / "tokenizer.json").is_file() and (path / "tokenizer" / "tokenizer.json").is_file():
        path = path / "tokenizer"
    return load_tokenizer(path)


def tokenize_view(tokenizer, text: str, special_tokens: bool = False) -> TokenView:
    """Tokenize `text` the way the model sees it, keeping each token's exact bytes.

    Plain text goes through `encode_text` (a typed "<|im_start|>" is characters, as for any user
    input); `special_tokens=True` matches special-token strings instead, to look at rendered chats."""
    if not isinstance(text, str):
        raise LabError(f"tokenize_view needs a str, got a {type(text).__name__}")
    if not text:
        raise LabError("the text is empty: nothing to tokenize")
    if special_tokens:
        # Through transformers, which resets truncation left on the shared backend by an earlier call.
        ids = tokenizer(text, add_special_tokens=False, truncation=False, padding=False)["input_ids"]
    else:
        ids = encode_text(tokenizer, text)
    specials = set(tokenizer.all_special_ids)
    decoder = _byte_decoder()
    tokens, offset = [], 0
    for token_id in ids:
        piece = tokenizer.backend_tokenizer.id_to_token(token_id)
        if token_id in specials:
            data = piece.encode("utf-8")
        elif all(c in decoder for c in piece):
            data = bytes(decoder[c] for c in piece)
        else:
            raise LabError(f"token {piece!r} is not in the byte-level alphabet: only byte-level BPE tokenizers "
                           "(ours, GPT-2's) can be shown byte-exactly")
        tokens.append(Token(token_id, piece, data, offset, offset + len(data), special=token_id in specials))
        offset += len(data)
    encoded = text.encode("utf-8")
    if b"".join(t.data for t in tokens) != encoded:
        # A normalizer (lowercasing, NFC) would make the tokens differ from the text; ours has none.
        raise LabError("this tokenizer changes the text before splitting it (a normalizer?): tokens do not "
                       "concatenate back to the text")
    byte_at = _byte_offsets(text)
    return TokenView(text, tokens, numbers=_spans(text, tokens, r"\d+", byte_at),
                     words=_spans(text, tokens, r"[^\W\d_]+", byte_at))


def _byte_offsets(text: str) -> list[int] | range:
    """Byte offset of every character position (and of the end)."""
    if text.isascii():
        return range(len(text) + 1)
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + len(ch.encode("utf-8")))
    return offsets


def _spans(text: str, tokens: list[Token], pattern: str, byte_at) -> list[Span]:
    starts = [t.start for t in tokens]
    out = []
    for m in re.finditer(pattern, text):
        lo, hi = byte_at[m.start()], byte_at[m.end()]
        first = bisect.bisect_right(starts, lo) - 1  # the token holding the span's first byte
        last = bisect.bisect_left(starts, hi)  # the first token starting after the span
        covering = tokens[first:last]
        if not any(t.special for t in covering):  # "start" inside <|im_start|> is no word of the text
            out.append(Span(m.group(), [t.shown for t in covering]))
    return out


def _coloured(view: TokenView, separator: str = "") -> Text:
    line = Text()
    for i, t in enumerate(view.tokens):
        style = SPECIAL_STYLE if t.special else (BYTES_STYLE if "⟨" in t.shown else STYLES[i % 2])
        if separator and i and not view.tokens[i - 1].data.endswith(b"\n"):
            line.append(separator, style="dim")
        line.append(t.shown, style=style)
        if t.data.endswith(b"\n"):  # keep the text's own line structure after the visible ↵
            line.append("\n")
    return line


def _separator(console: Console) -> str:
    # Without colour (piped output, NO_COLOR) the boundaries need a character; '·' can be ambiguous
    # only where the text itself holds one, and the ids line settles that.
    return "·" if console.no_color or console.color_system is None else ""


def _summary(view: TokenView) -> str:
    return (f"{view.count} tokens · {len(view.text)} chars · {view.chars_per_token:.2f} chars/token · "
            f"{view.bytes_per_token:.2f} bytes/token")


def findings(view: TokenView, limit: int = 12) -> list[str]:
    """The facts that most often explain a failure, one line each."""
    lines = []
    numbers = list(dict.fromkeys(f"{n.text} → {'|'.join(n.pieces)}" for n in view.numbers if len(n.text) > 1))
    if numbers:
        more = f" (+{len(numbers) - limit})" if len(numbers) > limit else ""
        lines.append(f"numbers become one token per digit: {', '.join(numbers[:limit])}{more}")
    one = list(dict.fromkeys(w.text for w in view.one_token_words if len(w.text) >= 3))
    if one:
        more = f" (+{len(one) - limit})" if len(one) > limit else ""
        lines.append(f"one-token words (the model cannot see their letters): {', '.join(one[:limit])}{more}")
    split = list(dict.fromkeys(f"{w.text} → {'|'.join(w.pieces)}" for w in view.words if len(w.pieces) > 1))
    if split:
        more = f" (+{len(split) - limit})" if len(split) > limit else ""
        lines.append(f"words split into pieces: {', '.join(split[:limit])}{more}")
    if view.fragments:
        lines.append(f"{len(view.fragments)} tokens are fragments of a UTF-8 character (rare bytes, shown in hex): "
                     f"{' '.join(t.shown for t in view.fragments[:limit])}")
    return lines


def render_tokens(view: TokenView, console: Console, show_ids: bool = True, table: bool = False) -> None:
    """Coloured token boundaries, the ids, the counts, and what the split means for the model."""
    console.print(f"[bold]{_summary(view)}[/bold]")
    console.print(_coloured(view, _separator(console)), overflow="fold")
    if show_ids:
        console.print(Text("ids: " + " ".join(map(str, view.ids)), style="dim"))
    if table:
        t = Table("#", "id", "token", "bytes", "vocab entry", box=None)
        for i, tok in enumerate(view.tokens):
            t.add_row(str(i), str(tok.id), Text(tok.shown), tok.data.hex(" "), Text(tok.piece))
        console.print(t)
    for line in findings(view):
        console.print(Text("• " + line))


def compare_tokenizers(tok_a, tok_b, text: str, special_tokens: bool = False) -> tuple[TokenView, TokenView]:
    """The same text under two tokenizers (e.g. two runs' vocabularies)."""
    return tokenize_view(tok_a, text, special_tokens), tokenize_view(tok_b, text, special_tokens)


def render_comparison(views: tuple[TokenView, TokenView], console: Console,
                      names: tuple[str, str] = ("a", "b")) -> None:
    """Side by side, then the words the two tokenizers split differently."""
    a, b = views
    side = Table(show_lines=True, expand=True)
    for name in names:  # fold: token runs have no real spaces to wrap at (spaces are shown as ␣)
        side.add_column(name, overflow="fold", ratio=1)
    side.add_row(_summary(a), _summary(b))
    side.add_row(_coloured(a, _separator(console)), _coloured(b, _separator(console)))
    console.print(side)
    differ = Table("word", *names, title="split differently", box=None)
    seen = set()
    for wa, wb in zip(a.words + a.numbers, b.words + b.numbers):  # same text, so the same spans in order
        if wa.pieces != wb.pieces and wa.text not in seen:
            seen.add(wa.text)
            differ.add_row(wa.text, Text("|".join(wa.pieces)), Text("|".join(wb.pieces)))
    if differ.row_count:
        console.print(differ)
    else:
        console.print("every word and number is split the same way")
