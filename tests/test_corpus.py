"""The corpus: exposure exactly as assigned, unseen people nowhere, saved and loaded, user files read."""

import json
import re

import pytest

from lab.errors import LabError
from tasks.corpus import (
    SOURCES,
    CorpusConfig,
    build_corpus,
    build_stream,
    load_corpus,
    load_text_files,
    read_text_files,
    register_source,
    save_corpus,
)
from tasks.world import NOVEL_TEMPLATES, WorldConfig, build_world

CFG = WorldConfig(people_per_exposure=10, exposures=(0, 1, 2, 4, 16))


@pytest.fixture(scope="module")
def world():
    return build_world(CFG)


@pytest.fixture(scope="module")
def corpus(world):
    return build_corpus(world, CorpusConfig(narratives=50, heldout_docs=10))


def test_exposure_is_exact_and_unseen_people_never_appear(world, corpus):
    train, heldout, manifest = corpus
    text = "\n".join(d["text"] for d in train + heldout).lower()
    for p in world.unseen_people():
        assert p.name.lower() not in text
    for p in world.people:
        assert manifest["exposure"][p.name] == p.k
        assert sum(d["person"] == p.name for d in train) == p.k
        assert sum(p.name in d["text"] for d in train if d["source"] == "biography") == p.k
    assert manifest["documents"] == {"biography": 10 * (1 + 2 + 4 + 16), "narrative": 50}
    assert manifest["total_characters"] == sum(manifest["characters"].values()) == sum(len(d["text"]) for d in train)


def test_heldout_docs_are_fresh_narratives(corpus):
    train, heldout, manifest = corpus
    assert len(heldout) == manifest["heldout_documents"] == 10
    assert all(d["source"] == "narrative" and d["person"] == "" for d in heldout)
    assert not {d["text"] for d in heldout} & {d["text"] for d in train}


def test_novel_prompts_never_appear_in_the_corpus(world, corpus):
    train, heldout, _ = corpus
    text = "\n".join(d["text"] for d in train + heldout)
    for template in NOVEL_TEMPLATES.values():
        before, after = template.split("{n}")
        assert (before.strip() or after.strip()) not in text


def test_corpus_is_deterministic_and_shuffled(world, corpus):
    cfg = CorpusConfig(narratives=50, heldout_docs=10)
    assert build_corpus(world, cfg) == corpus
    sources = [d["source"] for d in corpus[0]]
    assert sources != sorted(sources)
    other = build_corpus(world, CorpusConfig(narratives=50, heldout_docs=10, seed=1))[0]
    assert [d["text"] for d in other] != [d["text"] for d in corpus[0]]


def test_extra_sources_plug_in_and_unknown_ones_are_an_error(world):
    @register_source("test_counting")
    def counting(n, rng):
        return [f"{rng.randint(0, 9)} plus one is a number." for _ in range(n)]

    try:
        train, _, manifest = build_corpus(world, CorpusConfig(narratives=5, heldout_docs=2,
                                                             extra_sources={"test_counting": 7}))
        assert manifest["documents"]["test_counting"] == 7
        assert sum(d["source"] == "test_counting" for d in train) == 7
        with pytest.raises(LabError, match="unknown corpus source 'poetry'.*test_counting"):
            build_corpus(world, CorpusConfig(extra_sources={"poetry": 3}))

        unseen = world.unseen_people()[0].name
        register_source("test_leaky")(lambda n, rng: [f"A note about {unseen}."] * n)
        with pytest.raises(LabError, match=f"'test_leaky' document names the world's {unseen}"):
            build_corpus(world, CorpusConfig(narratives=5, heldout_docs=2, extra_sources={"test_leaky": 1}))
        seen = next(p for p in world.people if p.k == 16).name  # a seen person's exposure would grow past k
        register_source("test_leaky")(lambda n, rng: [f"A note about {seen}."] * n)
        with pytest.raises(LabError, match=f"names the world's {seen}"):
            build_corpus(world, CorpusConfig(narratives=5, heldout_docs=2, extra_sources={"test_leaky": 1}))
    finally:
        SOURCES.pop("test_counting", None)
        SOURCES.pop("test_leaky", None)
    with pytest.raises(LabError, match="narratives must be >= 0"):
        build_corpus(world, CorpusConfig(narratives=-1))
    with pytest.raises(LabError, match="heldout_docs must be >= 1"):
        build_corpus(world, CorpusConfig(heldout_docs=0))


def test_save_load_round_trip(world, corpus, tmp_path):
    train, heldout, manifest = corpus
    save_corpus(tmp_path / "data", train, heldout, manifest)
    loaded = load_corpus(tmp_path / "data")
    assert set(loaded) == {"train", "heldout"}
    assert loaded["train"].to_list() == train and loaded["heldout"].to_list() == heldout
    saved = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert saved["exposure"] == manifest["exposure"] and saved["world"]["exposures"] == list(CFG.exposures)
    with pytest.raises(LabError, match="no held-out documents"):
        save_corpus(tmp_path / "noheld", train[:3], [], {})
    with pytest.raises(LabError, match="holds no corpus"):
        load_corpus(tmp_path / "nowhere")


def test_user_files_txt_jsonl_parquet(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "u" / "deep").mkdir(parents=True)
    (tmp_path / "u" / "a.txt").write_text("A whole document.\n\nStill the same document.")
    (tmp_path / "u" / "b.jsonl").write_text('{"text": "one"}\nnot json\n\n{"nope": 1}\n{"text": 5}\n{"text": "two"}\n')
    pq.write_table(pa.table({"text": ["three", None, "four"], "id": [1, 2, 3]}), tmp_path / "u" / "deep" / "c.parquet")
    (tmp_path / "u" / "ignored.csv").write_text("text\nnot read\n")
    docs, bad = read_text_files([tmp_path / "u"])
    assert sorted(d["text"] for d in docs) == ["A whole document.\n\nStill the same document.", "four", "one",
                                               "three", "two"]
    assert bad == [f"{tmp_path / 'u' / 'b.jsonl'}:{i}" for i in (2, 4, 5)]
    assert len(load_text_files([tmp_path / "u"])) == 5
    err = capsys.readouterr().err
    assert "skipped 3 JSONL lines" in err and "b.jsonl:2" in err


def test_user_file_errors_name_the_problem(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LabError, match="bad.txt is not UTF-8"):
        load_text_files([tmp_path / "bad.txt"])
    with pytest.raises(LabError, match="missing.*does not exist"):
        load_text_files([tmp_path / "missing"])
    (tmp_path / "empty.jsonl").write_text('{"text": ""}\n')
    with pytest.raises(LabError, match="the corpus is empty"):
        load_text_files([tmp_path / "empty.jsonl"])
    (tmp_path / "notext.parquet").write_bytes(b"")
    with pytest.raises(LabError, match="notext.parquet"):
        load_text_files([tmp_path / "notext.parquet"])
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(LabError, match="data.csv is not a .txt"):
        load_text_files([tmp_path / "data.csv"])


def test_reading_sources_name_no_world_person_and_leave_exposure_exact(world):
    import tasks.reading  # noqa: F401  (registers the sources)

    train, _, manifest = build_corpus(world, CorpusConfig(narratives=20, heldout_docs=2, extra_sources={
        "fresh_people": 300, "copy_drills": 100}))
    assert manifest["documents"]["fresh_people"] == 300 and manifest["documents"]["copy_drills"] == 100
    assert all(manifest["exposure"][p.name] == p.k for p in world.people)
    reading = [d for d in train if d["source"] in ("fresh_people", "copy_drills")]
    assert not any(world.names_in(d["text"]) for d in reading)
    assert all(d["person"] and d["person"] in d["text"] for d in reading if d["source"] == "fresh_people")
    again, _, _ = build_corpus(world, CorpusConfig(narratives=20, heldout_docs=2, extra_sources={
        "fresh_people": 300, "copy_drills": 100}))
    assert [d["text"] for d in again] == [d["text"] for d in train]  # seeded


def test_fresh_people_documents_follow_up_only_with_what_their_source_states():
    import random

    from tasks.reading import copy_drill_documents, fresh_people_documents

    docs = fresh_people_documents(300, random.Random(1))
    for doc in docs:
        source, follow = doc["text"].split("\n\n")
        assert source.count(doc["person"]) >= 2
        if follow.startswith("Q: "):  # every answer is stated in the article or card
            answers = [line.removeprefix("A: ").removesuffix(".") for line in follow.splitlines() if line.startswith("A: ")]
            assert answers and all(f" {a}" in source for a in answers)
        else:  # a restatement: every value it gives is in the source
            from tasks.world import VALUES

            given = {v for values in VALUES.values() for v in values if f" {v}" in follow}
            assert given and all(f" {v}" in source for v in given)
    layouts = {(d["text"].split("\n")[1].endswith("Known facts:"), "\n\nQ: " in d["text"]) for d in docs}
    assert len(layouts) == 4  # article or card, then questions or a restatement
    for doc in copy_drill_documents(100, random.Random(2)):  # every drill states its string at least twice
        for line in doc.replace("\nConfirm password", " Confirm password").replace("\nYour order", " Your order") \
                       .replace("\nCopy of label", " Copy of label").splitlines():
            words = [w.strip('".:;()') for w in line.split()]
            assert any(words.count(w) >= 2 for w in words if any(c.isalnum() for c in w))


def test_tool_transcripts_copy_the_request_into_the_call_and_show_the_real_output():
    import random

    from tasks import math as math_problems
    from tasks import spelling
    from tasks.reading import tool_transcript_documents
    from tasks.world import World

    docs = tool_transcript_documents(100, random.Random(3))
    transcripts = [t for d in docs for t in d.split("\n\nUser: ")]
    kinds = set()
    for t in transcripts:
        request, answer = t.removeprefix("User: ").split("\n", 1)[0], t.split("\nAssistant: ")[-1]
        tool, rest = t.split("\nAssistant: ", 1)[1].split("\n", 1)
        argument, output = rest.split("\nTool: ", 1)[0], rest.split("\nTool: ", 1)[1].split("\nAssistant: ")[0]
        kinds.add(tool)
        if tool == "calculator":
            a, b = map(int, argument.split(" * "))
            assert argument in request and output == f"{a * b}" and answer == f"Answer: {a * b}"
            assert math_problems.split_of(math_problems.split_key("arithmetic", {"a": a, "b": b, "op": "*"})) == "train"
        elif tool == "python":  # the request's word copied into the code, and what the sandbox would print
            word = re.search(r'"([a-z]+)"', argument).group(1)
            assert f'"{word}"' in request and spelling.split_of(word) == "train"
            assert answer == f"Answer: {output}"
        else:
            assert tool == "lookup" and argument in request
            assert output.startswith(argument) or output == World.lookup_miss(argument)
    assert kinds == {"lookup", "calculator", "python"}


def test_the_stream_is_generated_once_names_no_world_person_and_repeats_no_corpus_document(world):
    import tasks.reading  # noqa: F401  (registers the sources)

    cfg = CorpusConfig(narratives=20, heldout_docs=2, extra_sources={"fresh_people": 200, "copy_drills": 50},
                       stream_sources={"fresh_people": 300, "copy_drills": 100})
    train, _, manifest = build_corpus(world, cfg)
    stream, part = build_stream(world, cfg)
    assert part["documents"] == {"fresh_people": 300, "copy_drills": 100} and len(stream) == 400
    assert not any(world.names_in(d["text"]) for d in stream)
    assert not {d["text"] for d in stream} & {d["text"] for d in train}  # seeded apart from the corpus's copies
    assert all(manifest["exposure"][p.name] == p.k for p in world.people)  # the stream adds no exposure
    assert [d["text"] for d in build_stream(world, cfg)[0]] == [d["text"] for d in stream]  # seeded
    assert len({d["text"] for d in stream if d["source"] == "fresh_people"}) == 300  # none repeats
    with pytest.raises(LabError, match="unknown corpus source 'nope' in corpus.stream_sources"):
        build_stream(world, CorpusConfig(stream_sources={"nope": 3}))
