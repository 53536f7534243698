"""Preference data for the reward model: pairs of the policy's own answers, labelled by the gold judge.

RLHF's comparisons are between samples of the policy being tuned (the reward model must rank what the
policy actually says), so we sample "Tell me about <person>." answers from the sft-idk stage with our
engine, several per prompt, and pair different answers to the same prompt. The gold judge
(rewards/gold.py) plays the human rater through a Bradley-Terry draw

    P(a preferred to b) = sigmoid((gold_a - gold_b) / label_temperature)

with an extra `label_noise` chance of flipping the label (raters disagree); `label_mode="argmax"`
always prefers the higher gold score. Pairs whose gold scores tie, or whose texts are identical, say
nothing and are dropped.

Only SFT people are asked about, and answers that name a held-out person are dropped, so held-out
people stay unseen by every stage. The RM's own train/test split is by person as well: a test person
is never in the training comparisons.

The dataset is TRL's conversational preference format (RewardTrainer and DPOTrainer both take it):
prompt = [user message], chosen/rejected = [assistant message], plus gold_chosen, gold_rejected,
person and k.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict, load_from_disk

from lab.errors import LabError
from lab.model.chat_format import answer_stops, render
from lab.model.engine import SamplingParams, generate
from lab.model.loading import load_model_and_tokenizer
from lab.runs import atomic_dir, read_json, write_json
from rewards.gold import PROMPT_TEMPLATES, GoldWeights, decode_completion, gold_score, prompt_for
from tasks.world import World, seeded_rng

COLUMNS = ("prompt", "chosen", "rejected", "gold_chosen", "gold_rejected", "person", "k")
LABEL_MODES = ("bt", "argmax")
# The settings that decide which comparisons exist; a resumed stage must not mix two sets.
SAMPLING_FIELDS = ("pairs", "samples_per_prompt", "temperature", "max_new_tokens", "label_mode", "label_temperature",
                   "label_noise", "heldout_share", "disjoint_pairs", "seed")


def split_of(person: str, heldout_share: float, seed: int = 0) -> str:
    """'test' or 'train' for a person, fixed by (seed, name): a person's pairs never straddle the split."""
    return "test" if seeded_rng("rm-split", seed, person).random() < heldout_share else "train"


def preference_probability(gold_a: float, gold_b: float, temperature: float) -> float:
    return 1.0 / (1.0 + math.exp(-(gold_a - gold_b) / temperature))


def label(gold_a: float, gold_b: float, rng: random.Random, mode: str = "bt", temperature: float = 0.1,
          noise: float = 0.0) -> bool:
    """True when a is preferred to b."""
    if mode == "argmax":
        a_wins = gold_a > gold_b
    else:
        a_wins = rng.random() < preference_probability(gold_a, gold_b, temperature)
    return a_wins != (rng.random() < noise)


def sample_responses(model, tokenizer, prompts: list[str], samples: int, temperature: float, max_new_tokens: int,
                     seed: int, batch_size: int = 64) -> list[list[tuple[str, bool]]]:
    """`samples` answers per user prompt as (text, finished); finished = the model closed its turn itself."""
    stops = answer_stops(tokenizer)
    ids = [render(tokenizer, [{"role": "user", "content": p}], add_generation_prompt=True)[0] for p in prompts]
    flat = [x for x in ids for _ in range(samples)]
    outs: list[list[int]] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(flat), batch_size):
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + start,
                                stop_token_ids=stops)
        outs += generate(model, flat[start : start + batch_size], params, pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    texts = [decode_completion(tokenizer, o) for o in outs]
    return [texts[i * samples : (i + 1) * samples] for i in range(len(prompts))]


def _pairs(responses: list[tuple[str, float]], tie_margin: float,
           disjoint: bool = True) -> tuple[list[tuple[int, int]], int, int]:
    """Pairs of answers that differ in text and in gold score; also the ties and duplicates skipped.

    disjoint: each answer in at most one pair (independent comparisons); otherwise every differing pair,
    as InstructGPT did with its K-way rankings (2-3x the pairs from the same samples, but correlated)."""
    used, pairs, ties, same = set(), [], 0, 0
    for i in range(len(responses)):
        for j in range(i + 1, len(responses)):
            if disjoint and (i in used or j in used):
                continue
            if responses[i][0].strip() == responses[j][0].strip():
                same += 1
            elif abs(responses[i][1] - responses[j][1]) <= tie_margin:
                ties += 1
            else:
                pairs.append((i, j))
                used |= {i, j}
    return pairs, ties, same


def build_preferences(model, tokenizer, world: World, pairs: int = 1000, samples_per_prompt: int = 4,
                      temperature: float = 0.7, max_new_tokens: int = 64, label_mode: str = "bt",
                      label_temperature: float = 0.1, label_noise: float = 0.0, heldout_share: float = 0.2,
                      tie_margin: float = 1e-6, disjoint: bool = True, seed: int = 0, batch_size: int = 64,
                      max_rounds: int = 20, weights: GoldWeights | None = None):
    """Sample, judge and label until `pairs` comparisons exist (or `max_rounds` rounds of prompts ran out).

    Returns (DatasetDict with 'train' and 'test', stats)."""
    if label_mode not in LABEL_MODES:
        raise LabError(f"unknown label_mode '{label_mode}'; valid: {', '.join(LABEL_MODES)}")
    if samples_per_prompt < 2:
        raise LabError(f"samples_per_prompt must be at least 2 to make a pair, got {samples_per_prompt}")
    if not 0 <= label_noise <= 0.5:
        raise LabError(f"label_noise must be between 0 and 0.5 (0.5 = coin flips), got {label_noise}")
    if label_temperature <= 0:
        raise LabError(f"label_temperature must be > 0, got {label_temperature}")
    people = world.sft_people()
    if not people:
        raise LabError("the world has no SFT people to ask about")
    heldout_names = {p.name for p in world.heldout_people()}
    rng = seeded_rng("preferences", seed)
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    counts = ("prompts responses unfinished dropped_heldout_name empty ties identical label_disagrees_with_gold "
              "refusals with_correct_fact with_wrong_fact").split()
    stats = {**dict.fromkeys(counts, 0), "golds": []}
    t0 = time.perf_counter()
    for round_ in range(max_rounds):
        if len(rows["prompt"]) >= pairs:
            break
        # Ask as many prompts as the yield so far says the missing pairs need (+10%), so little is sampled in vain.
        pairs_per_prompt = len(rows["prompt"]) / stats["prompts"] if stats["prompts"] else samples_per_prompt // 2
        per_round = math.ceil(1.1 * (pairs - len(rows["prompt"])) / max(pairs_per_prompt, 0.05))
        order = people[:]
        seeded_rng("preferences-order", seed, round_).shuffle(order)
        asked = [(order[i % len(order)], (round_ + i // len(order)) % len(PROMPT_TEMPLATES)) for i in range(per_round)]
        prompts = [prompt_for(p.name, t) for p, t in asked]
        sampled = sample_responses(model, tokenizer, prompts, samples_per_prompt, temperature, max_new_tokens,
                                   seed=seed * 1_000_003 + round_ * 100_000, batch_size=batch_size)
        for (person, _), prompt, answers in zip(asked, prompts, sampled):
            stats["prompts"] += 1
            judged = []
            for text, finished in answers:
                stats["responses"] += 1
                stats["unfinished"] += not finished
                if not text.strip():  # nothing to compare; validate_preferences refuses empty answers
                    stats["empty"] += 1
                    continue
                if world.names_in(text) & heldout_names:
                    stats["dropped_heldout_name"] += 1
                    continue
                g = gold_score(world, person.name, text, finished=finished, weights=weights)
                stats["golds"].append(g.total)
                stats["refusals"] += g.refusal
                stats["with_correct_fact"] += g.correct > 0
                stats["with_wrong_fact"] += g.wrong > 0
                judged.append((text, g.total))
            chosen_pairs, ties, same = _pairs(judged, tie_margin, disjoint)
            stats["ties"] += ties
            stats["identical"] += same
            for i, j in chosen_pairs:
                if len(rows["prompt"]) >= pairs:
                    break
                (a, ga), (b, gb) = judged[i], judged[j]
                if not label(ga, gb, rng, label_mode, label_temperature, label_noise):
                    (a, ga), (b, gb) = (b, gb), (a, ga)
                stats["label_disagrees_with_gold"] += ga < gb
                rows["prompt"].append([{"role": "user", "content": prompt}])
                rows["chosen"].append([{"role": "assistant", "content": a}])
                rows["rejected"].append([{"role": "assistant", "content": b}])
                rows["gold_chosen"].append(ga)
                rows["gold_rejected"].append(gb)
                rows["person"].append(person.name)
                rows["k"].append(person.k)
    if not rows["prompt"]:
        raise LabError("no usable preference pairs: every sampled pair was identical or tied in gold score "
                       "(raise the sampling temperature or samples_per_prompt)")
    splits = [split_of(p, heldout_share, seed) for p in rows["person"]]
    data = DatasetDict({name: Dataset.from_dict({c: [v for v, s in zip(rows[c], splits) if s == name] for c in COLUMNS})
                        for name in ("train", "test")})
    validate_preferences(data)
    golds = stats.pop("golds")
    stats.update(pairs=len(rows["prompt"]), train_pairs=len(data["train"]), test_pairs=len(data["test"]),
                 seconds=time.perf_counter() - t0, gold=describe(golds),
                 gold_gap=describe([abs(a - b) for a, b in zip(rows["gold_chosen"], rows["gold_rejected"])]))
    return data, stats


def describe(values: list[float]) -> dict:
    """Mean, spread and a coarse histogram: is there enough variety between samples for labels to inform?"""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def q(share):
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    hist: dict[str, int] = {}
    for v in values:
        key = f"{math.floor(v * 4) / 4:+.2f}"  # buckets of 0.25
        hist[key] = hist.get(key, 0) + 1
    return {"n": len(values), "mean": statistics.fmean(values), "std": statistics.pstdev(values),
            "min": ordered[0], "p10": q(0.1), "p50": q(0.5), "p90": q(0.9), "max": ordered[-1],
            "histogram": dict(sorted(hist.items(), key=lambda kv: float(kv[0])))}


def _content(messages, where: str) -> str:
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise LabError(f"{where} is neither text nor a list of chat messages")
    return "".join(str(m.get("content") or "") for m in messages)


def validate_preferences(data) -> None:
    """Refuse a preference set TRL would silently mistrain on: a missing column, an empty prompt or answer,
    or a pair whose chosen and rejected answers are the same text. Takes a Dataset or a DatasetDict."""
    splits = data.items() if isinstance(data, DatasetDict) else [("data", data)]
    for name, ds in splits:
        missing = [c for c in ("prompt", "chosen", "rejected") if c not in ds.column_names]
        if missing:
            raise LabError(f"preference split '{name}' lacks the column(s) {', '.join(missing)}; "
                           f"expected {', '.join(COLUMNS)}")
        for i, row in enumerate(ds):
            where = f"preference split '{name}' row {i}"
            prompt = _content(row["prompt"], f"{where}: prompt")
            chosen = _content(row["chosen"], f"{where}: chosen")
            rejected = _content(row["rejected"], f"{where}: rejected")
            if not prompt.strip():
                raise LabError(f"{where} has an empty prompt")
            if not chosen.strip() or not rejected.strip():
                raise LabError(f"{where} has an empty {'chosen' if not chosen.strip() else 'rejected'} response")
            if chosen.strip() == rejected.strip():
                raise LabError(f"{where}: chosen and rejected are the same text ({chosen[:60]!r}); "
                               "such a pair teaches nothing")


def save_preferences(data, path: Path) -> None:
    validate_preferences(data)
    with atomic_dir(Path(path)) as tmp:
        data.save_to_disk(str(tmp))


def load_preferences(path: Path):
    path = Path(path)
    if not path.exists():
        raise LabError(f"{path} holds no preference data")
    try:
        data = load_from_disk(str(path), keep_in_memory=True)  # later .map()s then write no cache files here
    except (FileNotFoundError, ValueError) as e:
        raise LabError(f"{path} is not a saved preference dataset ({str(e).splitlines()[0]})") from None
    validate_preferences(data)
    return data


def stage_preferences(run, world, settings, source: str, out: Path):
    """The rm stage's comparisons (settings: a RewardModelSettings), sampled from `source` once and kept in
    out/preferences, so a resumed stage trains on the same ones. Returns (DatasetDict, stats)."""
    chosen = asdict(settings)
    sampling = {"source": source, **{k: chosen[k] for k in SAMPLING_FIELDS}}
    if (out / "preferences.json").exists():
        stats = read_json(out / "preferences.json")
        if stats.get("sampling") != sampling:
            raise LabError(f"{out}/preferences was sampled with other settings ({stats.get('sampling')}); "
                           "use another out stage, or delete that folder and preferences.json to resample")
        return load_preferences(out / "preferences"), stats
    device = "cuda" if torch.cuda.is_available() else "cpu"
    policy, tokenizer = load_model_and_tokenizer(run.require(source), device=device)
    data, stats = build_preferences(
        policy, tokenizer, world, pairs=settings.pairs, samples_per_prompt=settings.samples_per_prompt,
        temperature=settings.temperature, max_new_tokens=settings.max_new_tokens, label_mode=settings.label_mode,
        label_temperature=settings.label_temperature, label_noise=settings.label_noise,
        heldout_share=settings.heldout_share, disjoint=settings.disjoint_pairs, seed=settings.seed,
        batch_size=settings.sample_batch_size)
    stats["sampling"] = sampling
    texts = [m["content"] for split in data.values() for col in ("prompt", "chosen", "rejected") for ms in split[col]
             for m in ms]
    violations = world.contamination_check(texts)
    if violations:
        raise LabError(f"preference data mentions held-out material ({len(violations)} cases), first: {violations[0]}")
    save_preferences(data, out / "preferences")
    write_json(out / "preferences.json", stats)  # written last: its presence means the data is complete
    return data, stats
