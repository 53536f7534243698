"""Stage 5, PII scrubbing: replace personal data with placeholders instead of dropping documents.

Kinds, applied in this order so that earlier patterns protect their digits from later ones:
emails -> <EMAIL>, card numbers -> <CARD> (13-19 digits, optional space/dash separators, and only
when the Luhn checksum holds: most long digit runs are order numbers, ISBNs or IDs, not cards; and
with one kind of separator: a card is written "4111 1111 1111 1111" or "4111-1111-1111-1111", while
a number followed by a date mixes them, as in "Bug #746578 2014-11-15", whose 14 digits pass Luhn),
IPv4 addresses with valid octets -> <IP>, phone numbers -> <PHONE>.

Phones are matched by shape, not by "any run of digits": an international number starting with
"+", or a North-American style (555) 123-4567 / 555-123-4567. Dates, years and long IDs stay.
"""

from __future__ import annotations

import re
from collections import Counter

KINDS = ("email", "card", "ip", "phone")

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")

# A digit run not glued to more digits on either side (the lookarounds see through one separator).
CARD = re.compile(r"(?<!\d)(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)")

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)")

PHONE = re.compile(
    r"""
    (?<![\w+])(?<!\d[ .-])
    (?:
        \+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}   # +44 20 7946 0958
      | (?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}                        # (555) 123-4567
    )
    (?![ .-]?\d)(?!\w)
    """,
    re.VERBOSE,
)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _card_ok(s: str) -> bool:
    """A card number: at most one kind of separator, and the Luhn checksum holds."""
    return len({c for c in s if not c.isdigit()}) <= 1 and luhn_ok(_digits(s))


def scrub(text: str) -> tuple[str, Counter]:
    """(text with PII replaced, replacements per kind)."""
    counts: Counter = Counter()

    def sub(kind: str, placeholder: str, accept=None):
        def repl(m: re.Match) -> str:
            if accept is not None and not accept(m.group(0)):
                return m.group(0)
            counts[kind] += 1
            return placeholder

        return repl

    text = EMAIL.sub(sub("email", "<EMAIL>"), text)
    text = CARD.sub(sub("card", "<CARD>", _card_ok), text)
    text = IPV4.sub(sub("ip", "<IP>"), text)
    # international numbers are 8-15 digits (E.164); the plain pattern is always 10
    text = PHONE.sub(sub("phone", "<PHONE>", lambda s: 8 <= len(_digits(s)) <= 15), text)
    return text, counts
