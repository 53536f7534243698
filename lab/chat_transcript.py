"""What a new user meets in `lab chat`: scripted questions put to a policy through lab/chat_session.py's
ChatSession (exactly what `lab chat` runs, tools on as it starts), graded one by one.

The checks, `per_check` questions each, every question in a fresh conversation:
- known_in_other_words: a fact about an SFT-split person with the world's largest exposure, asked in a held-out
  wording (tasks/world.py HELDOUT_QUESTION_TEMPLATES, in no training source): answered with the right value.
- never_seen: the same kinds of question about a made-up name no document mentions: refused, or looked up
  with the name copied exactly and then refused; never a made-up fact.
- spelling_with_tool / spelling_without_tool: a question about a held-out word's letters, tools on (the python
  tool must be called and the answer right) and tools off (the answer right, spelled out by the model itself).
- calculator: a product of a 4- and a 3-digit number, tools on: the right product.
- identity: the held-out identity probes (tasks/identity.py): the answer names the lab's assistant.
Never a held-out person (those are the evals'). The stage `experiments/chat` writes transcript.jsonl (every
turn, its tool calls and the verdict) and results.json (each check's rate with its 95% CI); `lab chat` on the
same stage reproduces any line of it. Run: `lab pipeline --redo experiments/chat`.
"""

from __future__ import annotations

import json
import random
import re

from evals.hallucination import grade
from evals.stats import proportion
from evals.wording import heldout_text
from lab.chat_session import ChatSession
from lab.experiments.settings import ChatTranscriptSettings
from lab.runs import read_json, write_json
from tasks import math as math_problems
from tasks.chat import is_refusal
from tasks.identity import probe_targets
from tasks.reading import fresh_person
from tasks.spelling import SpellingConfig
from tasks.spelling import generate as generate_spelling
from tasks.world import World


def _items(world: World, identity, n: int, seed: int) -> list[dict]:
    """(check, question, gold, tools) for every check: deterministic in the world and the seed."""
    rng = random.Random(seed)
    top = max(p.k for p in world.sft_people())
    known = [q for p in world.sft_people() if p.k == top for q in world.questions(p)]
    items = [{"check": "known_in_other_words", "question": heldout_text(q), "gold": q.answer, "aliases": q.aliases,
              "tools": True} for q in rng.sample(known, min(n, len(known)))]
    for q in rng.sample(known, min(n, len(known))):  # real questions, the person swapped for a made-up one
        name, _ = fresh_person(rng)
        while world.lookup(name) is not None:
            name, _ = fresh_person(rng)
        items.append({"check": "never_seen", "question": heldout_text(q).replace(q.person, name), "gold": "",
                      "name": name, "tools": True})
    for p in generate_spelling(SpellingConfig(seed=seed), n, split="heldout"):
        items += [{"check": f"spelling_{'with' if tools else 'without'}_tool", "question": p.question,
                   "gold": p.answer, "tools": tools} for tools in (True, False)]
    for _ in range(n):
        a, b = math_problems.draw_operands(rng, (1000, 9999), (100, 999), "heldout")
        items.append({"check": "calculator", "question": f"What is {a} * {b}?", "gold": str(a * b), "tools": True})
    probes = probe_targets(identity)
    items += [{"check": "identity", "question": q, "gold": gold, "tools": True}
              for q, gold in rng.sample(probes, min(n, len(probes)))]
    return items


def _final(answer: str) -> str:
    match = re.search(r"Answer:\s*(.+)", answer)
    return (match.group(1) if match else answer).strip().strip(".").lower()


def passed(item: dict, answer: str, calls: list) -> bool:
    """The check's verdict on one answer and its tool calls (each a ToolCall: name, argument, output)."""
    check = item["check"]
    if check == "known_in_other_words":
        return grade(answer, item["gold"], item["aliases"]) == "correct"
    if check == "never_seen":  # refused; a lookup is fine only with the name copied exactly
        return is_refusal(answer) and all(c.name != "lookup" or c.argument.strip() == item["name"] for c in calls)
    if check == "spelling_with_tool":
        return any(c.name == "python" for c in calls) and _final(answer) == item["gold"].lower()
    if check in ("spelling_without_tool", "calculator"):
        return _final(answer).replace(",", "") == item["gold"].lower()
    return item["gold"].lower() in answer.lower()  # identity


def chat_transcript(settings: ChatTranscriptSettings, context) -> dict:
    """The `experiments/chat` stage: every check's questions through ChatSession on `context.source`."""
    run = context.run
    out = run.open_stage(context.stage)
    stage = run.require(context.source)
    session = ChatSession(stage, max_new_tokens=settings.max_new_tokens, seed=context.seed)  # the model, loaded once
    rows = []
    for item in _items(context.world, context.sft.identity, settings.per_check, context.seed):
        session.tools = item["tools"]
        session.reset()  # one conversation a question, its system message saying whether the tools are on
        answer = session.ask(item["question"])
        calls = [{"name": c.name, "argument": c.argument, "output": c.output} for c in answer.calls]
        rows.append(item | {"answer": answer.answer, "calls": calls, "passed": passed(item, answer.answer, answer.calls)})
    checks = dict.fromkeys(r["check"] for r in rows)
    results = {"stage": context.source, "checks": {c: proportion(sum(r["passed"] for r in rows if r["check"] == c),
                                                                 sum(r["check"] == c for r in rows)) for c in checks}}
    (out / "transcript.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json(out / "results.json", results)
    run.mark_complete(context.stage, {c: v["value"] for c, v in results["checks"].items()})
    return results


CHECK_TEXT = {"known_in_other_words": "a well-known SFT person asked in a held-out wording: answered right",
              "never_seen": "a made-up person: refused (a lookup, if any, copies the name exactly)",
              "spelling_with_tool": "a word's letters, tools on: python called, answer right",
              "spelling_without_tool": "a word's letters, tools off: answer right",
              "calculator": "a 4- by 3-digit product, tools on: right",
              "identity": "who it is (held-out identity probes): names the lab's assistant"}


def chat_sections(run, stage: str) -> list[tuple[str, list]]:
    """The report's section: each check's rate, and one answer of each as `lab chat` printed it."""
    path = run.stage_dir(stage) / "results.json"
    if not path.exists():
        return []
    results = read_json(path)
    checks = results["checks"]
    rows = [json.loads(line) for line in (run.stage_dir(stage) / "transcript.jsonl").read_text().splitlines()]
    first = {}
    for r in rows:
        first.setdefault(r["check"], r)

    def shown(r: dict) -> str:
        calls = "".join(f"[{c['name']}: {c['argument'].strip()[:40]}] " for c in r["calls"])
        return f"{r['question']} → {calls}{' '.join(r['answer'].split())[:80]}"

    table = [[c, CHECK_TEXT.get(c, ""), f"{v['value']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]", v["n"],
              shown(first[c])] for c, v in checks.items()]
    return [(f"`lab chat`, as a new user tries it ({run.name}/{results['stage']})", [
        ("text", "Scripted questions through the same session `lab chat` runs (tools on unless the check says off), "
                 "one conversation each, never about a held-out person (lab/chat_transcript.py). "
                 f"Every turn is in {stage}/transcript.jsonl."),
        ("table", (["check", "passes when", "rate [95% CI]", "n", "first question → tool calls, answer"], table)),
    ])]
