"""Knowledge vs exposure: how often the base model completes a fact about a person, by exposure k.

For every person and attribute the model completes two prompts greedily: one in a phrasing the
corpus used ("Mira Tolvane was born in the city of") and one it never saw ("Records show that the
hometown where Mira Tolvane was born is"). A completion is correct if it starts with the gold value.
For unseen people (k = 0) every fluent value is an invention: the share of completions that name a
real value of the attribute's kind is the base model's confident-hallucination rate.
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.stats import format_ci, proportion
from lab.model.engine import SamplingParams, generate_text
from tasks.world import VALUES, World


def normalise(text: str) -> str:
    return " ".join(text.lower().replace(".", " ").replace(",", " ").split())


def starts_with_value(completion: str, value: str) -> bool:
    """The completion begins with `value` as whole words: "Tarsil, where" names Tarsil, "Tarsilia" does not."""
    answer, value = normalise(completion), normalise(value)
    return answer == value or answer.startswith(value + " ")


def grade(completion: str, gold: str, values: list[str]) -> dict:
    """correct: it names the gold value first; plausible: it names some value of the attribute's kind (for an
    unseen person, a fluent invention)."""
    return {"correct": starts_with_value(completion, gold),
            "plausible": any(starts_with_value(completion, v) for v in values)}


def probe(model, tokenizer, world: World, batch_size: int = 128, max_new_tokens: int = 10) -> list[dict]:
    items = []
    for person in world.people:
        for attribute in world.cfg.attributes:
            for phrasing, prompt in world.fact_prompts(person, attribute).items():
                items.append({"person": person.name, "k": person.k, "split": person.split, "attribute": attribute,
                              "phrasing": phrasing, "prompt": prompt, "gold": person.attributes[attribute]})
    params = SamplingParams(max_new_tokens=max_new_tokens, stop_token_ids=(tokenizer.eos_token_id,))
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        for item, completion in zip(batch, generate_text(model, tokenizer, [i["prompt"] for i in batch], params)):
            item["completion"] = completion
            item.update(grade(completion, item["gold"], VALUES[item["attribute"]]))
    return items


def summarize(items: list[dict]) -> list[dict]:
    rows = []
    for k in sorted({i["k"] for i in items}):
        for phrasing in ("corpus", "novel"):
            group = [i for i in items if i["k"] == k and i["phrasing"] == phrasing]
            correct = sum(i["correct"] for i in group)
            invented = sum(i["plausible"] and not i["correct"] for i in group)
            rows.append({"k": k, "phrasing": phrasing, "accuracy": proportion(correct, len(group)),
                         "confident_wrong": proportion(invented, len(group))})
    return rows


def chance_accuracy(world: World) -> float:
    return sum(1 / len(VALUES[a]) for a in world.cfg.attributes) / len(world.cfg.attributes)


def table_markdown(rows: list[dict], chance: float) -> str:
    lines = ["| exposure k | accuracy, corpus phrasing | accuracy, novel phrasing | fluent but wrong (corpus) |",
             "|---|---|---|---|"]
    for k in sorted({r["k"] for r in rows}):
        corpus = next(r for r in rows if r["k"] == k and r["phrasing"] == "corpus")
        novel = next(r for r in rows if r["k"] == k and r["phrasing"] == "novel")
        lines.append(f"| {k} | {format_ci(corpus['accuracy'])} | {format_ci(novel['accuracy'])} "
                     f"| {format_ci(corpus['confident_wrong'])} |")
    lines.append(f"\nChance accuracy (a uniform guess among each attribute's values): {chance:.3f}. "
                 f"n = {corpus['accuracy']['n']} prompts per cell. 95% Wilson intervals.")
    return "\n".join(lines)


def plot(rows: list[dict], chance: float, path: Path) -> None:
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ks = sorted({r["k"] for r in rows})
    xs = list(range(len(ks)))
    for phrasing, style in (("corpus", "o-"), ("novel", "s--")):
        sel = [next(r for r in rows if r["k"] == k and r["phrasing"] == phrasing) for k in ks]
        values = [r["accuracy"]["value"] for r in sel]
        errs = [[v - r["accuracy"]["ci95"][0] for v, r in zip(values, sel)],
                [r["accuracy"]["ci95"][1] - v for v, r in zip(values, sel)]]
        ax.errorbar(xs, values, yerr=errs, fmt=style, capsize=3, label=f"{phrasing} phrasing")
    wrong = [next(r for r in rows if r["k"] == k and r["phrasing"] == "corpus")["confident_wrong"]["value"] for k in ks]
    ax.plot(xs, wrong, "x:", color="tab:red", label="fluent but wrong")
    ax.axhline(chance, color="gray", lw=0.8, ls=":", label="chance")
    ax.set_xticks(xs, [str(k) for k in ks])
    ax.set_xlabel("exposure k (biographies in the corpus)")
    ax.set_ylabel("share of fact prompts")
    ax.set_ylim(0, 1)
    ax.set_title("Knowledge vs exposure (base model)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def run_probe(model, tokenizer, world: World, out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    items = probe(model, tokenizer, world)
    rows = summarize(items)
    chance = chance_accuracy(world)
    (out / "samples.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (out / "results.json").write_text(json.dumps({"rows": rows, "chance": chance}, indent=2) + "\n")
    (out / "table.md").write_text(table_markdown(rows, chance) + "\n")
    plot(rows, chance, out / "knowledge_vs_exposure.png")
    return rows
