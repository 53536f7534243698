"""Stage 3, language identification with py3langid (langid.py's naive Bayes over byte n-grams).

The model ships inside the py3langid package (data/model.npz.xz), so nothing is downloaded. We load
our own identifier with normalised probabilities: the module-level `py3langid.classify` returns raw
log-scores, which cannot be compared with a confidence threshold.
"""

from __future__ import annotations

from functools import cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

# Long documents are classified on their opening: language is settled well before this many
# characters, and the DFA walk is linear in length.
MAX_CHARS = 20_000


@cache
def _identifier():
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def known_languages() -> set[str]:
    return set(_identifier().labels)


def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability in [0, 1]) for the text's language."""
    lang, prob = _identifier().classify(text[:MAX_CHARS])
    return lang, float(prob)


def language_reason(text: str, languages: list[str], min_confidence: float) -> tuple[str | None, str, float]:
    """(drop reason or None, detected language, confidence). A document in a wanted language but
    below the threshold is "low_confidence"; one in another language is "lang:<code>"."""
    lang, prob = detect(text)
    if lang not in languages:
        return f"lang:{lang}", lang, prob
    if prob < min_confidence:
        return "low_confidence", lang, prob
    return None, lang, prob
