"""Stage 1, the URL filter: drop pages from blocklisted domains before spending time on them.

Two sources of blocks: the user's `blocked_domains` (a domain blocks itself and all its subdomains)
and a small built-in list of words that, appearing as a whole label or hyphen-separated part of a
host name, mark adult or spam sites. Whole parts, not substrings, so "essex.ac.uk" passes ("sex"
inside "essex" is not a word); only a few substrings that are never innocent block anywhere.
A document without a URL (or with one that has no host) passes: there is nothing to judge.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Words that mark a host as adult or spam when they are a whole part of its name.
BUILTIN_BAD_WORDS = frozenset({
    "porn", "porno", "xxx", "sex", "sexy", "nude", "nudes", "escort", "escorts", "camgirl", "hentai",
    "casino", "poker", "slots", "betting", "viagra", "cialis", "pharmacy", "replica", "payday",
    "loans", "freemoney",
})
# Substrings so rarely innocent that they block even inside a longer word ("freeporntube").
BUILTIN_BAD_SUBSTRINGS = ("porn", "xxx", "viagra", "cialis", "hentai")

_PARTS = re.compile(r"[.\-_]")


def host_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "://" in url else "//" + url).hostname
    except ValueError:  # e.g. a malformed IPv6 literal
        return None
    return host.rstrip(".").lower() if host else None


def normalise_domains(domains: list[str]) -> list[str]:
    """Accept "example.com", ".example.com", "*.example.com" or a full URL in the config."""
    out = []
    for d in domains:
        d = d.strip().lower()
        host = host_of(d) if "/" in d else d.lstrip("*").lstrip(".")
        if host:
            out.append(host)
    return out


def block_reason(url: str | None, blocked_domains: list[str], builtin: bool = True) -> str | None:
    """Why this URL is blocked ("blocked_domain" / "spam_domain"), or None if it may pass."""
    host = host_of(url)
    if host is None:
        return None
    for domain in blocked_domains:
        if host == domain or host.endswith("." + domain):
            return "blocked_domain"
    if builtin:
        if any(part in BUILTIN_BAD_WORDS for part in _PARTS.split(host)):
            return "spam_domain"
        if any(s in host for s in BUILTIN_BAD_SUBSTRINGS):
            return "spam_domain"
    return None
