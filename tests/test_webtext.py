"""The web text pipeline (tasks/webtext): each stage pinned on small crafted inputs, then one run
over a fixture folder with HTML, WARC and JSONL that exercises every stage and every bad-input path."""

from __future__ import annotations

import gzip
import json

import pytest

from lab.errors import LabError
from tasks.webtext import PipelineConfig, QualityConfig, run_pipeline
from tasks.webtext.dedup import Deduplicator
from tasks.webtext.extract import extract_text
from tasks.webtext.langid import language_reason
from tasks.webtext.pii import luhn_ok, scrub
from tasks.webtext.quality import STOP_WORDS, failed_rules, quality_reason
from tasks.webtext.sources import BadDoc, RawDoc, iter_documents
from tasks.webtext.urls import block_reason


def paragraphs(block: str) -> list[str]:
    """Title and paragraphs of an article written as blank-line separated, hard-wrapped text."""
    return [" ".join(p.split()) for p in block.strip().split("\n\n")]


RIVER = paragraphs("""
How a River Shapes the Valley Around It

The river that runs through the valley has shaped the lives of the people who live beside it for more than a
thousand years. Farmers depend on its water to irrigate their fields in the dry months, and the town grew up
at the one place where the banks were low enough to build a bridge.

Every spring the snow melts in the mountains and the water level rises quickly. In most years the floods are
small and they leave behind a thin layer of rich soil that makes the fields along the banks some of the most
fertile land in the region. In bad years, however, the water reaches the market square and the old mill.

Historians who study the valley have found records of a great flood in the fourteenth century that destroyed
the first wooden bridge. The stone bridge that replaced it still stands today, and its arches are wide
enough to let the spring floods pass without damage to the road above.

Today the river is also a place for leisure. Families walk along the towpath on weekends, anglers sit on the
banks at dawn, and a small rowing club trains on the calm stretch below the weir. The local council has
planted willows to protect the banks from erosion and to give shade to the walkers.

Scientists from the university measure the quality of the water every month. They have found that the number
of fish has grown steadily since the factories upstream were closed, and otters have returned to the valley
for the first time in fifty years.
""")
BREAD = paragraphs("""
Baking Sourdough Bread at Home

Sourdough bread is made with a starter, a living culture of wild yeast and bacteria that the baker feeds
with flour and water. The starter gives the bread its open crumb, its chewy crust and the gentle sour taste
that so many people love.

To make a starter, mix equal weights of whole grain flour and water in a clean jar and leave it at room
temperature. Every day, throw away half of the mixture and feed the rest with fresh flour and water. After
about a week the starter should double in size within a few hours of each feeding.

The dough itself needs only flour, water, salt and a spoonful of active starter. Most recipes ask the baker
to mix the flour and water first and to let them rest for an hour, which makes the dough easier to stretch.
Then the starter and the salt are added and the dough is folded every half hour.

After the first rise the dough is shaped into a tight round loaf and placed in a basket lined with a floured
cloth. Many bakers leave it in the refrigerator overnight, because the slow cold rise develops more flavour
and makes the loaf easier to score with a sharp blade.

The loaf is baked in a very hot covered pot for the first twenty minutes so that the steam can help the
crust to expand. The lid is then removed and the bread bakes until the crust is a deep brown colour. It
should cool for at least an hour before it is cut.
""")
LIGHTHOUSE = paragraphs("""
The Keepers of the Northern Lighthouses

For almost two centuries the lighthouses along the northern coast were kept by families who lived in small
cottages beside the towers. The keepers climbed the stairs every evening to light the lamps and they stayed
awake through the night to make sure that the light never went out.

The work was hard and often lonely. Supplies arrived by boat once a month, and in winter storms the boats
could not land for many weeks. The keepers kept careful logbooks in which they recorded the weather, the
ships that passed and every repair that they made to the lamp and the lens.

The great glass lenses were designed to bend the light of a small flame into a beam that could be seen more
than twenty miles out at sea. Each lighthouse had its own pattern of flashes so that sailors could tell one
light from another and know exactly where they were along the coast.

In the second half of the twentieth century the lights were converted to electricity and then automated. The
last keepers left their towers in the nineteen nineties, and many of the cottages have since been turned
into small museums that tell the story of the families who lived there.
""")
BEES = paragraphs("""
Keeping Bees in a Small Garden

Honeybees are easier to keep in a small garden than many people expect. A single hive needs little space,
and the bees will fly up to three miles to find flowers, so the garden itself does not have to be large or
full of plants for the colony to be healthy.

The best place for a hive is a sheltered corner that gets the morning sun and is away from paths where
people walk. A tall hedge or fence in front of the entrance makes the bees fly upwards as soon as they leave
the hive, which keeps them away from the neighbours.

New beekeepers should join a local association before they buy their first colony. The members are usually
happy to share their experience and to show how to open a hive calmly, how to find the queen and how to tell
whether the colony is preparing to swarm.

For questions write to the club secretary at bee.club@example.org or call 555-123-4567 in the evening. The
club website runs on a small server at 192.168.10.20 in the village hall. Donations were tested with card
number 4111 1111 1111 1111 and the membership number 1234 5678 9012 3456 is printed on every receipt.
""")
GERMAN = paragraphs("""
Die Geschichte der alten Mühle

Die alte Mühle am Rande des Dorfes wurde im sechzehnten Jahrhundert gebaut und war mehr als dreihundert
Jahre lang in Betrieb. Die Bauern aus der ganzen Gegend brachten ihr Getreide hierher, um es zu Mehl mahlen
zu lassen.

Das große Wasserrad wurde von einem kleinen Bach angetrieben, der aus den Bergen kommt. Im Winter fror der
Bach manchmal zu, und dann musste der Müller warten, bis das Eis wieder geschmolzen war, bevor er
weiterarbeiten konnte.

Heute gehört die Mühle einem Verein, der sie sorgfältig restauriert hat. An jedem ersten Sonntag im Monat
wird das Rad wieder in Bewegung gesetzt, und die Besucher können sehen, wie aus dem Korn frisches Mehl
entsteht.
""")
# Lines that vary only by an item number: trafilatura keeps them, the n-gram rules catch them.
SPAM = ["Cheap watches for sale"] + [
    f"Cheap watches, cheap watches, best cheap watches online! Order cheap watches today, offer {i}." for i in range(15)
]
BOILERPLATE = ("cookies", "Manage settings", "About us", "Related posts", "Ten tips", "Copyright", "Privacy policy")


def page(paras: list[str]) -> str:
    """An article wrapped in the usual cookie banner, navigation, sidebar and footer."""
    body = f"<h1>{paras[0]}</h1>" + "".join(f"<p>{p}</p>" for p in paras[1:])
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Example site</title></head><body>
<div id="cookie-banner">We use cookies to improve your experience. Accept all cookies. Manage settings.</div>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li></ul></nav></header>
<main><article>{body}</article><aside><h3>Related posts</h3><ul><li><a href="/a">Ten tips for your garden</a></li>
<li><a href="/b">Our favourite recipes</a></li></ul></aside></main>
<footer><p>Copyright 2024 Example Media Ltd. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a></p></footer></body></html>"""


def warc_record(warc_type: str, block: bytes, uri: str | None = None) -> bytes:
    head = f"WARC/1.0\r\nWARC-Type: {warc_type}\r\nWARC-Date: 2024-05-01T00:00:00Z\r\n"
    if uri:
        head += f"WARC-Target-URI: {uri}\r\n"
    head += f"Content-Type: application/http; msgtype={warc_type}\r\nContent-Length: {len(block)}\r\n\r\n"
    return head.encode() + block + b"\r\n\r\n"


def http_response(body: bytes, content_type: str = "text/html; charset=utf-8") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def text_of(paras: list[str]) -> str:
    return "\n".join(paras)


# --- stage by stage ----------------------------------------------------------------------------


def test_extraction_keeps_article_and_drops_boilerplate():
    text = extract_text(page(RIVER))
    assert text.startswith(RIVER[0])
    for para in RIVER[1:]:
        assert para in text
    for junk in BOILERPLATE:
        assert junk not in text


def test_language_id_keeps_english_and_names_the_language_it_drops():
    assert language_reason(text_of(RIVER), ["en"], 0.65)[0] is None
    reason, lang, prob = language_reason(text_of(GERMAN), ["en"], 0.65)
    assert (reason, lang) == ("lang:de", "de") and prob > 0.9
    assert language_reason(text_of(GERMAN), ["en", "de"], 0.65)[0] is None


ARTICLE = text_of(RIVER)
SENTENCES = [s.strip() + "." for p in RIVER[1:] for s in p.rstrip(".").split(". ")]
GOPHER_CASES = {
    "word_count": "The river is long and wide and the town has a bridge.",
    "mean_word_length": " ".join(["a", "to", "be", "of", "it", "is", "we", "go"] * 8),
    "symbol_word_ratio": ARTICLE + "\n" + " ".join(f"#topic{i}" for i in range(40)),
    "bullet_lines": "\n".join(f"• {s}" for s in SENTENCES),
    "ellipsis_lines": "\n".join(s[:-1] + "..." if i % 2 else s for i, s in enumerate(SENTENCES)),
    "dup_line_fraction": ARTICLE + ("\n" + RIVER[1]) * 5,
    "dup_line_char_fraction": ARTICLE + ("\n" + RIVER[2]) * 2,  # 2 of 8 lines, but the longest ones
    "top_2gram": ARTICLE + "\n" + " ".join(f"alpha beta item{i}" for i in range(40)),
    "top_3gram": ARTICLE + "\n" + " ".join(f"alpha beta gamma item{i}" for i in range(26)),
    "top_4gram": ARTICLE + "\n" + " ".join(f"alpha beta gamma delta item{i}" for i in range(17)),
    "stop_words": " ".join(w for w in ARTICLE.split() if w.lower().strip(".,") not in STOP_WORDS),
    "alpha_words": ARTICLE + "\n" + " ".join(str(n) for n in range(100)),
}


@pytest.mark.parametrize("rule", sorted(GOPHER_CASES))
def test_each_gopher_rule_trips_on_its_crafted_text(rule):
    assert quality_reason(GOPHER_CASES[rule], QualityConfig()) == rule


def test_normal_articles_pass_every_gopher_rule_and_max_words_is_enforced():
    for article in (RIVER, BREAD, LIGHTHOUSE, BEES):
        assert failed_rules(text_of(article)) == []
    assert quality_reason(ARTICLE, QualityConfig(max_words=100)) == "word_count"
    with pytest.raises(LabError):
        QualityConfig(min_words=10, max_words=5)


def test_pii_is_replaced_and_only_luhn_valid_cards_count():
    assert luhn_ok("4111111111111111") and not luhn_ok("1234567890123456")
    text, counts = scrub(BEES[4])
    assert "bee.club@example.org" not in text and "<EMAIL>" in text
    assert "555-123-4567" not in text and "<PHONE>" in text
    assert "192.168.10.20" not in text and "<IP>" in text
    assert "4111 1111 1111 1111" not in text and "<CARD>" in text
    assert "1234 5678 9012 3456" in text  # 16 digits failing Luhn: an ID, not a card
    assert counts == {"email": 1, "phone": 1, "ip": 1, "card": 1}
    kept, counts = scrub("Version 999.1.2.3 shipped on 2024-05-01; call +44 20 7946 0958 or 4111-1111-1111-1111.")
    assert kept == "Version 999.1.2.3 shipped on 2024-05-01; call <PHONE> or <CARD>."
    assert counts == {"phone": 1, "card": 1}


def test_dedup_removes_exact_and_near_copies_and_keeps_distinct_articles():
    dedup = Deduplicator(threshold=0.8)
    near = ARTICLE.replace("thousand", "hundred").replace("otters", "beavers").replace("willows", "poplars")
    assert dedup.check(ARTICLE) is None
    assert dedup.check("  " + ARTICLE.upper().replace(" ", "   ")) == "exact_duplicate"
    assert dedup.check(near) == "near_duplicate"
    assert dedup.check(text_of(BREAD)) is None
    assert dedup.check(text_of(LIGHTHOUSE)) is None


def test_url_filter_blocks_configured_domains_and_spam_words():
    assert block_reason("https://www.spam-farm.example/a", ["spam-farm.example"]) == "blocked_domain"
    assert block_reason("https://spam-farm.example.org/a", ["spam-farm.example"]) is None
    assert block_reason("http://best-casino-bonus.example/win", []) == "spam_domain"
    assert block_reason("https://freeporntube.example/", []) == "spam_domain"
    assert block_reason("https://www.essex.ac.uk/news", []) is None  # "sex" inside a word is fine
    assert block_reason(None, ["example.org"]) is None


def test_warc_reader_keeps_records_before_a_truncated_one(tmp_path):
    good = warc_record("response", http_response(page(LIGHTHOUSE).encode()), "https://coast.example.com/")
    broken = warc_record("response", http_response(b"<html>never finished</html>"))[:-40]
    (tmp_path / "c.warc").write_bytes(good + broken)
    docs = list(iter_documents(tmp_path, [tmp_path / "c.warc"], {}))
    assert isinstance(docs[0], RawDoc) and docs[0].url == "https://coast.example.com/"
    assert isinstance(docs[1], BadDoc) and docs[1].where == "c.warc:record 2" and docs[1].reason == "bad_warc"


def test_bad_input_folders_and_configs_are_clear_errors(tmp_path):
    with pytest.raises(LabError, match="does not exist"):
        run_pipeline(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an input")
    with pytest.raises(LabError, match="no .html/.warc/.jsonl files in"):
        run_pipeline(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(LabError):
        PipelineConfig(languages=[])
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.html").write_text(page(RIVER))
    with pytest.raises(LabError, match="unknown language"):
        run_pipeline(tmp_path / "one", tmp_path / "out", PipelineConfig(languages=["xx"]))


# --- the whole pipeline on one folder -----------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("webtext_in")
    (d / "a_river.html").write_text(page(RIVER), encoding="utf-8")
    (d / "b_bread.html").write_text(page(BREAD), encoding="utf-8")
    (d / "c_german.html").write_text(page(GERMAN), encoding="utf-8")
    (d / "d_spam.html").write_text(page(SPAM), encoding="utf-8")
    (d / "e_blocked.html").write_text(page(LIGHTHOUSE), encoding="utf-8")
    (d / "f_latin1.html").write_bytes(page(["Caf\u00e9 culture"] + BREAD[1:]).encode("latin-1"))
    (d / "notes.txt").write_text("ignored: not an input kind")
    (d / "manifest.tsv").write_text(
        "file\turl\na_river.html\thttps://news.example.org/rivers\n"
        "b_bread.html\thttps://food.example.org/sourdough\ne_blocked.html\thttps://www.spam-farm.example/x\n"
    )
    near_river = ARTICLE.replace("thousand", "hundred").replace("otters", "beavers").replace("willows", "poplars")
    bees = text_of(BEES)
    lines = [
        json.dumps({"text": bees, "url": "https://bees.example.net/club"}),
        json.dumps({"text": "  " + bees.replace("Honeybees", "HONEYBEES").replace("\n", " \n\n ")}),  # exact copy
        '{"text": "this line was cut off',
        json.dumps({"url": "https://example.com/no-text"}),
        json.dumps({"text": near_river, "url": "https://mirror.example.com/rivers"}),
        json.dumps({"text": text_of(LIGHTHOUSE), "url": "http://best-casino-bonus.example/win"}),
        "",
        json.dumps({"text": "\n".join([BREAD[1]] * 6)}),  # repeated lines
    ]
    (d / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    uri = "https://coast.example.com/lighthouses"
    records = [
        warc_record("warcinfo", b"software: test\r\n"),
        warc_record("request", b"GET /lighthouses HTTP/1.1\r\nHost: coast.example.com\r\n\r\n", uri),
        warc_record("response", http_response(page(LIGHTHOUSE).encode()), uri),
        warc_record("response", http_response(b"\x89PNG....", "image/png"), "https://coast.example.com/logo.png"),
    ]
    (d / "crawl.warc.gz").write_bytes(b"".join(gzip.compress(r) for r in records))  # one gzip member per record
    return d


@pytest.fixture(scope="module")
def result(fixture_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("webtext_out")
    report = run_pipeline(fixture_dir, out, PipelineConfig(blocked_domains=["spam-farm.example"]))
    return report, out


def test_report_counts_add_up_and_chain_between_stages(result):
    report, _ = result
    stages = list(report["stages"].values())
    for s in stages:
        assert s["in"] == s["kept"] + s["dropped"] == s["kept"] + sum(s["reasons"].values())
    for before, after in zip(stages, stages[1:]):
        assert after["in"] == before["kept"]
    assert report["documents_in"] == 14 and report["documents_kept"] == 4
    assert report["files"] == {"html": 6, "warc": 1, "jsonl": 1}


def test_every_stage_drops_what_it_should(result):
    s = result[0]["stages"]
    assert s["read"]["reasons"] == {"not_utf8": 1, "not_json": 1, "missing_text": 1}
    assert s["url_filter"]["reasons"] == {"blocked_domain": 1, "spam_domain": 1}
    assert s["extract"]["dropped"] == 0
    assert s["langid"]["reasons"] == {"lang:de": 1}
    assert s["quality"]["reasons"] == {"top_2gram": 1, "dup_line_fraction": 1}
    assert s["pii"]["dropped"] == 0
    assert s["dedup"]["reasons"] == {"exact_duplicate": 1, "near_duplicate": 1}
    # the bees article and its exact copy are both scrubbed: PII runs before dedup
    assert result[0]["pii"] == {"email": 2, "card": 2, "ip": 2, "phone": 2}


def test_bad_documents_are_listed_with_file_and_line(result):
    bad = result[0]["bad_documents"]
    assert bad["count"] == 3
    assert [entry.split(": ")[0] for entry in bad["listed"]] == ["docs.jsonl:3", "docs.jsonl:4", "f_latin1.html"]


def test_output_dataset_loads_with_the_kept_documents_in_file_order(result, fixture_dir, tmp_path):
    from datasets import load_from_disk

    report, out = result
    ds = load_from_disk(str(out / "dataset"))
    assert ds.column_names == ["text", "url", "source_file"]
    assert ds["source_file"] == ["a_river.html", "b_bread.html", "crawl.warc.gz", "docs.jsonl"]
    assert ds["url"] == ["https://news.example.org/rivers", "https://food.example.org/sourdough",
                         "https://coast.example.com/lighthouses", "https://bees.example.net/club"]
    assert ds["text"][0].startswith(RIVER[0]) and "Copyright" not in ds["text"][0]
    assert "<EMAIL>" in ds["text"][3] and "1234 5678 9012 3456" in ds["text"][3]
    assert json.loads((out / "report.json").read_text()) == report
    assert "| dedup | 6 | 4 | 2 |" in (out / "report.md").read_text()
    again = run_pipeline(fixture_dir, tmp_path / "again", PipelineConfig(blocked_domains=["spam-farm.example"]))
    assert again["stages"] == report["stages"]
    assert load_from_disk(str(tmp_path / "again" / "dataset"))["text"] == ds["text"]
