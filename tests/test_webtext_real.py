"""`lab data` end to end through the CLI on real pages, not crafted ones (issue #22).

tests/fixtures/webtext_real/ holds real documentation pages (Debian packages' HTML docs, and one Rust
Embedded Book chapter from two releases) and real WARCs (warcio's test data). Its LICENSES.md gives
each file's origin and licence, and describes the one derived page. The folder goes through one
`python -m lab.cli data` run, and the tests check what a person would check in the output dataset
and report:

- boilerplate gone: each page's own navigation, sidebar and footer strings are absent from its text;
- main text kept: known sentences from the body of each page are present;
- PII scrubbed: the real e-mail address in the Debian FAQ and the IPs in Node's example are replaced,
  while a bug number followed by a date stays (these pages showed it being taken for a card number,
  fixed in tasks/webtext/pii.py);
- non-English dropped: the German translation of the FAQ chapter is counted as lang:de and is absent;
- duplicates merged: a mirror of the Valgrind page with different navigation is an exact duplicate
  once extracted, and the nightly Embedded Book chapter (upstream changed "USB" to "Mini-USB") is a
  near one;
- WARCs: iana.org's chunked response is kept with its URL, example.com's gzip-encoded page is decoded
  and dropped as too short, the truncated WARC loses its last two records and the report lists them.

The report's counts are pinned too, so a page that starts being dropped, or kept, is noticed.

What the extractor (trafilatura) still gets wrong on these pages is pinned at the end as strict
xfails, so a fix shows up as an XPASS.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "webtext_real"

KEPT = [  # folder order; every other input is dropped, each for a reason the report names
    "a_libxslt_faq.html",
    "b_valgrind_manual_intro.html",
    "c_debian_faq_contributing.en.html",
    "d_debian_faq_customizing.en.html",
    "e_rust_embedded_book_hardware.1.95.html",
    "f_libffi_introduction.html",
    "f_nodejs_synopsis.html",
    "g_warcio_iana_chunked.warc",
    "h_zlib_usage_example.html",
]

# Strings of each page's navigation, sidebar, site banner or footer (all present in the page itself).
BOILERPLATE = {
    "a_libxslt_faq.html": ["The XSLT C library for GNOME", "Main Menu", "Related links", "API Indexes",
                           "Reporting bugs and getting help", "Windows binaries", "Xsldbg Debugger"],
    "b_valgrind_manual_intro.html": ["Valgrind User Manual", "Using and understanding the Valgrind core"],
    "c_debian_faq_contributing.en.html": ["Chapter 12. Getting support for Debian GNU/Linux",
                                          "Chapter 14. Redistributing Debian GNU/Linux in a commercial product"],
    "d_debian_faq_customizing.en.html": ["Chapter 10. Debian and the kernel",
                                         "Chapter 12. Getting support for Debian GNU/Linux"],
    "e_rust_embedded_book_hardware.1.95.html": ["Keyboard shortcuts", "to navigate between chapters",
                                                "The Embedded Rust Book", "Navy"],
    "f_nodejs_synopsis.html": ["Assertion testing", "Asynchronous context tracking", "Deprecated APIs",
                               "Worker threads"],
    "g_warcio_iana_chunked.warc": ["Root Zone Management", "Database of Top Level Domains", "Abuse Information",
                                   "Presentations", "Excellence", "Contact Us", "Public Technical Identifiers"],
    "h_zlib_usage_example.html": ["Copyright (c) 2004, 2005 by Mark Adler", "Last modified 11 December 2005"],
}

# Sentences from each page's body, from its first paragraphs and its last.
MAIN_TEXT = {
    "a_libxslt_faq.html": [
        "There is a small shell script xslt-config which is installed as part of libxslt usual install process "
        "which provides those flags.",
        "Libxslt interpret the parameter values as XPath expressions,",
        "Yes for example xmlwrapp",
    ],
    "b_valgrind_manual_intro.html": [
        "Valgrind is an instrumentation framework for building dynamic analysis tools.",
        "Memcheck is a memory error detector.",
        "you have to read the options documentation both for Valgrind's core and for the tool you want to use.",
    ],
    "c_debian_faq_contributing.en.html": [
        "Donations of time (to develop new packages, maintain existing packages, or provide user support),",
        "Software in the Public Interest (SPI) is an IRS 501(c)(3) non-profit organization based in the United States.",
        "Additional affiliate organizations in other countries are listed in Organizations page in the Debian Wiki.",
    ],
    "d_debian_faq_customizing.en.html": [
        "Install the libpaper1 package, and it will ask you for a system-wide default paper size.",
    ],
    "e_rust_embedded_book_hardware.1.95.html": [
        "Let’s get familiar with the hardware we’ll be working with.",
        "A single-core ARM Cortex-M4F processor with hardware support for single-precision floating point "
        "operations and a maximum clock frequency of 72 MHz.",
        "A USB interface accessible through the USB port labeled “USB USER”.",
        "The microcontroller STM32F303VCT6 pins take a nominal voltage of 3.3 volts.",
    ],
    "f_libffi_introduction.html": [
        "The calling convention is a set of assumptions made by the compiler about where function arguments will "
        "be found on entry to a function.",
        "A layer must exist above libffi that handles type conversions for values passed between the two languages.",
    ],
    "f_nodejs_synopsis.html": [
        "An example of a web server written with Node.js which responds with 'Hello, World!':",
        "If the browser displays the string Hello, World!, that indicates the server is working.",
    ],
    "g_warcio_iana_chunked.warc": [
        "Coordination of the global IP and AS number spaces, such as allocations made to Regional Internet Registries.",
        "Following successful key ceremonies in October 2016 and February 2017, a new key signing key for the DNS "
        "root zone has been generated",
        "The report describes the methodology and responses received.",
    ],
    "h_zlib_usage_example.html": [  # prose between the <pre> blocks of an annotated program, and the program
        "We now include the header files for the required definitions.",
        "deflateInit() is called with a pointer to the structure to be initialized and the compression level,",
        "#define CHUNK 16384",
        'fputs("zpipe usage: zpipe [-d] < source > dest\\n", stderr);',
    ],
}


def flat(text: str) -> str:
    """Whitespace collapsed: the pages hard-wrap their paragraphs and the extractor keeps some of the breaks."""
    return " ".join(text.split())


def page_text(name: str) -> str:
    """The input page's text, roughly: tags removed, entities decoded, whitespace collapsed. Enough to
    check that a string really is on the page before checking what the output did with it."""
    if name.endswith((".warc", ".warc.gz")):
        from tasks.webtext.warc import iter_html_pages

        raw = " ".join(page.body.decode("utf-8") for _, page in iter_html_pages(FIXTURES / name))
    else:
        raw = (FIXTURES / name).read_text(encoding="utf-8")
    return flat(html.unescape(re.sub(r"<[^>]*>", "", raw)))


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    from datasets import load_from_disk

    out = tmp_path_factory.mktemp("webtext_real") / "out"
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "data", str(FIXTURES), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ds = load_from_disk(str(out / "dataset"))
    texts = {row["source_file"]: flat(row["text"]) for row in ds}
    assert len(texts) == len(ds)  # one kept document per file here, so files name them
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"stdout": flat(proc.stdout), "out": out, "ds": ds, "texts": texts, "report": report}


def test_the_cli_keeps_the_real_pages_it_should_in_folder_order(cleaned):
    ds, report = cleaned["ds"], cleaned["report"]
    assert "kept 9 of 15 documents" in cleaned["stdout"]
    assert report["files"] == {"html": 11, "warc": 3}
    assert ds["source_file"] == KEPT
    # the HTML files have no manifest here, so no URL; the WARC record has its target URI
    assert ds["url"] == [None] * 7 + ["http://www.iana.org/", None]


def test_the_report_names_why_each_dropped_document_went(cleaned):
    stages = cleaned["report"]["stages"]
    for s in stages.values():
        assert s["in"] == s["kept"] + s["dropped"] == s["kept"] + sum(s["reasons"].values())
    # 15 documents: 11 pages, iana.org's response, example.com's response (its revisit record is no
    # page), and the truncated WARC's two broken records.
    assert stages["read"]["reasons"] == {"not_utf8": 1, "bad_warc": 1}
    assert stages["url_filter"]["dropped"] == stages["extract"]["dropped"] == stages["pii"]["dropped"] == 0
    assert stages["langid"]["reasons"] == {"lang:de": 1}
    assert stages["quality"]["reasons"] == {"word_count": 1}  # example.com's 28 words, the only document left to fail
    assert stages["dedup"]["reasons"] == {"exact_duplicate": 1, "near_duplicate": 1}
    md = (cleaned["out"] / "report.md").read_text(encoding="utf-8")
    assert "| langid | 13 | 12 | 1 | lang:de 1 |" in md
    assert "| dedup | 11 | 9 | 2 | exact_duplicate 1, near_duplicate 1 |" in md


@pytest.mark.parametrize("name", sorted(BOILERPLATE))
def test_navigation_sidebars_and_footers_of_real_pages_are_gone(cleaned, name):
    page, text = page_text(name), cleaned["texts"][name]
    for junk in BOILERPLATE[name]:
        assert junk in page, f"{junk!r} is not on {name}: the check would prove nothing"
        assert junk not in text, f"boilerplate {junk!r} kept from {name}"


@pytest.mark.parametrize("name", sorted(MAIN_TEXT))
def test_the_body_text_of_real_pages_is_kept(cleaned, name):
    page, text = page_text(name), cleaned["texts"][name]
    for sentence in MAIN_TEXT[name]:
        assert sentence in page, f"{sentence!r} is not on {name}"
        assert sentence in text, f"body text {sentence!r} lost from {name}"


def test_real_pii_is_scrubbed_and_a_bug_number_with_a_date_is_not_a_card(cleaned):
    texts = cleaned["texts"]
    assert "debian-admin@lists.debian.org" in page_text("c_debian_faq_contributing.en.html")
    assert "please contact <<EMAIL>>." in texts["c_debian_faq_contributing.en.html"]
    # the Node example's loopback address is scrubbed too: every valid IPv4 address is, by design
    assert "const hostname = '<IP>';" in texts["f_nodejs_synopsis.html"]
    assert "Server running at http://<IP>:3000/" in texts["f_nodejs_synopsis.html"]
    email = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)*\.[A-Za-z]{2,}")
    for name, text in texts.items():
        assert not email.search(text), f"an e-mail address is left in {name}"
        assert "127.0.0.1" not in text
    # "Bug #746578 2014-11-15" is 14 digits with mixed separators that pass Luhn: not a card
    customizing = texts["d_debian_faq_customizing.en.html"]
    assert "Bug #727708 2014-02-11:" in customizing and "Bug #746578 2014-11-15:" in customizing
    assert "<CARD>" not in customizing
    assert cleaned["report"]["pii"] == {"email": 1, "card": 0, "ip": 3, "phone": 0}


def test_the_german_translation_is_dropped_and_its_english_original_kept(cleaned):
    texts = cleaned["texts"]
    german = "Die Entwicklung von Debian ist für jeden zugänglich."
    assert german in page_text("c_debian_faq_contributing.de.html")
    assert "c_debian_faq_contributing.de.html" not in texts and "c_debian_faq_contributing.en.html" in texts
    assert not any(german in text or "Spiegel-Server" in text for text in texts.values())
    assert cleaned["report"]["stages"]["langid"]["reasons"] == {"lang:de": 1}


def test_a_mirror_is_an_exact_duplicate_and_the_next_release_a_near_one(cleaned):
    texts = cleaned["texts"]
    assert "b_valgrind_manual_intro.mirror.html" not in texts and "b_valgrind_manual_intro.html" in texts
    nightly = "e_rust_embedded_book_hardware.1.97-nightly.html"
    assert nightly not in texts and "e_rust_embedded_book_hardware.1.95.html" in texts
    assert "the USB port labeled “USB USER”" in texts["e_rust_embedded_book_hardware.1.95.html"]
    assert "A Mini-USB interface accessible through the USB port" in page_text(nightly)
    everything = "\n".join(texts.values())
    assert "Mini-USB" not in everything  # nothing of the nightly's wording survives
    for junk in ("Docs mirror", "About this mirror", "Last synchronised with upstream"):
        assert junk in page_text("b_valgrind_manual_intro.mirror.html") and junk not in everything
    # The nightly's text differs ("Mini-USB"), so it cannot be the exact duplicate: the mirror is
    # exact (its navigation went with the extraction) and the nightly near.
    assert cleaned["report"]["stages"]["dedup"]["reasons"] == {"exact_duplicate": 1, "near_duplicate": 1}


def test_real_warcs_are_read_decoded_and_their_broken_records_listed(cleaned):
    ds, report = cleaned["ds"], cleaned["report"]
    iana = ds[ds["source_file"].index("g_warcio_iana_chunked.warc")]
    assert iana["url"] == "http://www.iana.org/"  # a chunked HTTP body, in one chunk
    # example.com's body is gzip-encoded; decoded, it reaches the quality stage (its only drop above)
    with gzip.open(FIXTURES / "g_warcio_example.warc.gz") as f:
        assert b"Content-Encoding: gzip" in f.read()
    assert not any("illustrative examples" in text for text in cleaned["texts"].values())
    bad = report["bad_documents"]
    assert bad["count"] == 2
    assert [entry.split(": ")[0] for entry in bad["listed"]] == [
        "g_warcio_example_trunc.warc:record 3", "g_warcio_example_trunc.warc:record 4"]


# --- what the extractor still gets wrong on these real pages --------------------------------------

NAV_KEPT = [  # navigation inside the main column that trafilatura keeps
    ("f_libffi_introduction.html", "Next: Using libffi, Previous: libffi, Up: libffi"),
    ("f_nodejs_synopsis.html", "Other versions"),
    ("b_valgrind_manual_intro.html", "Table of Contents"),
]
HEADINGS_DROPPED = [  # section headings that trafilatura drops
    ("c_debian_faq_contributing.en.html", "13.1. How can I become a Debian member/Debian developer?"),
    ("d_debian_faq_customizing.en.html", "11.1. How can I ensure that all programs use the same paper size?"),
    ("b_valgrind_manual_intro.html", "1.1. An Overview of Valgrind"),
    ("f_libffi_introduction.html", "1 What is libffi?"),
]


PROSE_DROPPED = [  # paragraphs of an old-style page (text straight in <body>, between <pre> blocks)
    ("h_zlib_usage_example.html", "We often get questions about how the deflate() and inflate() functions should be used."),
    ("h_zlib_usage_example.html", "This is an ugly hack required to avoid corruption of the input and output data on "
                                  "Windows/MS-DOS systems."),
    ("h_zlib_usage_example.html", "CHUNK is simply the buffer size for feeding data to and pulling data from the zlib "
                                  "routines."),
]


def test_the_known_misses_name_strings_that_are_on_their_pages():
    for name, string in NAV_KEPT + HEADINGS_DROPPED + PROSE_DROPPED:
        assert string in page_text(name), f"{string!r} is not on {name}"


@pytest.mark.xfail(strict=True, reason="trafilatura 2.3 keeps navigation that sits inside the main column: "
                   "Texinfo's 'Next: / Previous: / Up:' line, the Node docs' toolbar, DocBook's 'Table of Contents' "
                   "caption. favor_precision=True drops them but also drops real paragraphs of the Debian FAQ")
@pytest.mark.parametrize("name, junk", NAV_KEPT)
def test_known_miss_in_page_navigation_is_kept(cleaned, name, junk):
    assert junk not in cleaned["texts"][name]


@pytest.mark.xfail(strict=True, reason="trafilatura 2.3 drops the section headings of these DocBook and Texinfo "
                   "pages, so the FAQ loses its questions (the answers stay); wrapping libffi's chapter <div> in "
                   "<article> brings its heading back, and the crafted pages in test_webtext.py use <article>")
@pytest.mark.parametrize("name, heading", HEADINGS_DROPPED)
def test_known_miss_section_headings_are_dropped(cleaned, name, heading):
    assert heading in cleaned["texts"][name]


@pytest.mark.xfail(strict=True, reason="trafilatura 2.3 drops 5 of the 31 prose paragraphs (about 550 of 3,350 "
                   "words) of zlib's annotated example, whose text sits straight in <body> between <pre> blocks; "
                   "no trafilatura option tried (favor_recall, favor_precision, fast) brings them back")
@pytest.mark.parametrize("name, sentence", PROSE_DROPPED)
def test_known_miss_body_paragraphs_are_dropped(cleaned, name, sentence):
    assert sentence in cleaned["texts"][name]
