"""Stage 2, text extraction: the main text of an HTML page, without navigation, footers or comments.

trafilatura does the work (a tuned DOM-scoring extractor with readability/jusText fallbacks); regexes
over tags cannot tell an article from its sidebar. JSONL documents already are text and pass through.
"""

from __future__ import annotations

import logging
from functools import cache

import trafilatura


@cache
def _trafilatura():
    # trafilatura logs every page it finds too short at WARNING; the report counts those instead
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    return trafilatura


def extract_text(html: str, url: str | None = None) -> str:
    """The page's main text, paragraphs separated by newlines; "" when nothing worth keeping is found."""
    trafilatura = _trafilatura()
    text = trafilatura.extract(
        html,
        url=url,
        include_comments=False,  # reader comments are not the article and are often spam
        include_tables=True,
        include_links=False,
        include_images=False,
        include_formatting=False,
        deduplicate=False,  # repeated lines are the quality stage's evidence; don't hide them here
        output_format="txt",
    )
    return (text or "").strip()
