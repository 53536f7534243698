"""Stage 2, text extraction: the main text of an HTML page, without navigation, footers or comments.

trafilatura does the work (a tuned DOM-scoring extractor with readability/jusText fallbacks); regexes
over tags cannot tell an article from its sidebar. JSONL documents already are text and pass through.
"""

from __future__ import annotations

import logging
import sys
import types
from functools import cache


def _allow_trafilatura_import() -> None:
    """lxml >= 5.2 moved `lxml.html.clean` into the separate `lxml_html_clean` package, and jusText
    (a trafilatura dependency) imports its Cleaner at module level. trafilatura only uses jusText's
    paragraph classifier, never that Cleaner, so when the package is missing a stand-in module lets
    the import succeed; anything that really tries to clean HTML with it gets a clear ImportError."""
    try:
        import lxml.html.clean  # noqa: F401
    except ImportError:
        stub = types.ModuleType("lxml.html.clean")

        class Cleaner:  # noqa: D401 - stand-in, see above
            def __init__(self, *args, **kwargs):
                raise ImportError("lxml.html.clean needs the lxml_html_clean package (pip install lxml_html_clean)")

        stub.Cleaner = Cleaner  # type: ignore[attr-defined]
        sys.modules["lxml.html.clean"] = stub


@cache
def _trafilatura():
    # imported on first use: it costs ~0.4 s, which `lab` commands that never see HTML shouldn't pay
    _allow_trafilatura_import()
    import trafilatura

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
