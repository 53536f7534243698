"""Stage 4, quality filters in the style of Gopher (Rae et al. 2021, "Scaling Language Models",
appendix A): cheap heuristics that catch machine-generated lists, boilerplate, spam and gibberish.

Every rule has a name, and the report counts documents by the first rule they fail, so a user can
see which rule ate their data and loosen that one threshold in `QualityConfig`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lab.errors import LabError

BULLETS = ("•", "●", "○", "◦", "▪", "▫", "‣", "⁃", "·", "-", "–", "—", "*", "+", "→", "►", "✓")
ELLIPSES = ("...", "…")
STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
_PUNCT = "\"'“”‘’«»()[]{}<>.,;:!?¡¿…-–—/\\|*_~`^"


@dataclass
class QualityConfig:
    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1  # ("#" + ellipses) per word
    max_bullet_lines: float = 0.9
    max_ellipsis_lines: float = 0.3
    max_dup_line_fraction: float = 0.3
    max_dup_line_char_fraction: float = 0.2
    max_top_2gram_char_fraction: float = 0.20
    max_top_3gram_char_fraction: float = 0.18
    max_top_4gram_char_fraction: float = 0.16
    stop_words: tuple[str, ...] = STOP_WORDS  # English: set min_stop_words=0 for other languages
    min_stop_words: int = 2
    min_alpha_words: float = 0.8

    def __post_init__(self):
        if not 0 <= self.min_words <= self.max_words:
            raise LabError(f"quality word bounds must satisfy 0 <= min <= max, got {self.min_words}..{self.max_words}")
        if not 0 <= self.min_mean_word_length <= self.max_mean_word_length:
            raise LabError("quality mean word length bounds must satisfy 0 <= min <= max")
        for name in ("max_bullet_lines", "max_ellipsis_lines", "max_dup_line_fraction", "max_dup_line_char_fraction",
                     "max_top_2gram_char_fraction", "max_top_3gram_char_fraction", "max_top_4gram_char_fraction",
                     "min_alpha_words"):
            if not 0 <= getattr(self, name) <= 1:
                raise LabError(f"quality {name} is a fraction and must be in [0, 1], got {getattr(self, name)}")
        self.stop_words = tuple(w.lower() for w in self.stop_words)


def _norm_word(token: str) -> str:
    return token.strip(_PUNCT).lower()


def _top_ngram_char_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Share of all word characters covered by the most frequent n-gram's occurrences (0 if no
    n-gram repeats: a single occurrence is not repetition)."""
    if len(words) < n or total_chars == 0:
        return 0.0
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = counts.most_common(1)[0]
    if count < 2:
        return 0.0
    return count * sum(len(w) for w in gram) / total_chars


def quality_stats(text: str, stop_words: tuple[str, ...] = STOP_WORDS) -> dict[str, float]:
    """All the numbers the rules look at, by name (also handy for inspecting a single document)."""
    tokens = text.split()
    words = [w for w in (_norm_word(t) for t in tokens) if w]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    n_tokens, n_lines = len(tokens), len(lines)
    word_chars = sum(len(w) for w in words)
    line_chars = sum(len(line) for line in lines)

    seen: set[str] = set()
    dup_lines = dup_chars = 0
    for line in lines:
        if line in seen:
            dup_lines += 1
            dup_chars += len(line)
        seen.add(line)

    symbols = text.count("#") + sum(text.count(e) for e in ELLIPSES)
    return {
        "words": n_tokens,
        "mean_word_length": word_chars / len(words) if words else 0.0,
        "symbol_word_ratio": symbols / n_tokens if n_tokens else 0.0,
        "bullet_lines": sum(line.startswith(BULLETS) for line in lines) / n_lines if n_lines else 0.0,
        "ellipsis_lines": sum(line.endswith(ELLIPSES) for line in lines) / n_lines if n_lines else 0.0,
        "dup_line_fraction": dup_lines / n_lines if n_lines else 0.0,
        "dup_line_char_fraction": dup_chars / line_chars if line_chars else 0.0,
        "top_2gram_char_fraction": _top_ngram_char_fraction(words, 2, word_chars),
        "top_3gram_char_fraction": _top_ngram_char_fraction(words, 3, word_chars),
        "top_4gram_char_fraction": _top_ngram_char_fraction(words, 4, word_chars),
        "stop_words": len(set(words) & set(stop_words)),
        "alpha_words": sum(any(c.isalpha() for c in t) for t in tokens) / n_tokens if n_tokens else 0.0,
    }


def failed_rules(text: str, cfg: QualityConfig | None = None) -> list[str]:
    """Names of every rule the text fails, in rule order; [] means it passes."""
    cfg = cfg or QualityConfig()
    s = quality_stats(text, cfg.stop_words)
    checks = [
        ("word_count", cfg.min_words <= s["words"] <= cfg.max_words),
        ("mean_word_length", cfg.min_mean_word_length <= s["mean_word_length"] <= cfg.max_mean_word_length),
        ("symbol_word_ratio", s["symbol_word_ratio"] <= cfg.max_symbol_word_ratio),
        ("bullet_lines", s["bullet_lines"] <= cfg.max_bullet_lines),
        ("ellipsis_lines", s["ellipsis_lines"] <= cfg.max_ellipsis_lines),
        ("dup_line_fraction", s["dup_line_fraction"] <= cfg.max_dup_line_fraction),
        ("dup_line_char_fraction", s["dup_line_char_fraction"] <= cfg.max_dup_line_char_fraction),
        ("top_2gram", s["top_2gram_char_fraction"] <= cfg.max_top_2gram_char_fraction),
        ("top_3gram", s["top_3gram_char_fraction"] <= cfg.max_top_3gram_char_fraction),
        ("top_4gram", s["top_4gram_char_fraction"] <= cfg.max_top_4gram_char_fraction),
        ("stop_words", s["stop_words"] >= cfg.min_stop_words),
        ("alpha_words", s["alpha_words"] >= cfg.min_alpha_words),
    ]
    return [name for name, ok in checks if not ok]


def quality_reason(text: str, cfg: QualityConfig) -> str | None:
    """The first rule the text fails (the report's drop reason), or None if it passes them all."""
    failed = failed_rules(text, cfg)
    return failed[0] if failed else None
