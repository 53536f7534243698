"""A deterministic world of fictional people: the lab's ground truth.

Each person has a few attributes and an exposure count k: their biography appears exactly k times
in the pretraining corpus, each time in a different paraphrase with the sentences shuffled
(Allen-Zhu & Li, "Physics of Language Models 3.1": without such augmentation facts are memorised
but not extractable). People with k = 0 never appear anywhere in the corpus: they are the "unseen"
people on whom hallucination is measured. People are split once, by person and stratified by k,
into SFT people (used for Q&A training) and held-out people (used only by evals).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Iterable

from lab.errors import LabError

FIRST_ONSETS = ["M", "T", "K", "S", "L", "R", "V", "D", "N", "B", "F", "G", "H", "J", "P", "Z", "C", "El", "Or", "Is"]
FIRST_ENDS = ["ira", "oren", "ana", "elis", "avo", "una", "eno", "ila", "aro", "essa", "ivan", "ona", "ael", "ira", "ul"]
LAST_ONSETS = ["Tol", "Val", "Mer", "Kas", "Dron", "Fen", "Hal", "Quor", "Bel", "Stav", "Rin", "Ost", "Cal", "Varn", "Lun",
               "Gav", "Pell", "Sor", "Thal", "Wen"]
LAST_MIDS = ["", "e", "a", "i", "o"]
LAST_ENDS = ["vane", "ecki", "drin", "holt", "mora", "sk", "quist", "ney", "ridge", "lund", "ova", "ard", "wick", "enko",
             "ston"]

CITIES = ["Lisbon", "Oslo", "Krakow", "Porto", "Lyon", "Turin", "Ghent", "Bergen", "Tartu", "Graz", "Seville", "Bilbao",
          "Utrecht", "Aarhus", "Malmo", "Tampere", "Brno", "Split", "Riga", "Vilnius", "Leipzig", "Dresden", "Bremen",
          "Nantes", "Lille", "Bologna", "Verona", "Cork", "Galway", "Dundee", "Cardiff", "Leeds", "Halifax", "Quebec",
          "Oaxaca", "Cusco", "Rosario", "Valparaiso", "Hobart", "Dunedin"]
UNIVERSITIES = ["Varnholt University", "Kessmoor College", "the University of Almsby", "Redwater Institute",
                "Stellan University", "Orrin Technical College", "the University of Brackwell", "Halvard College",
                "Morrow Polytechnic", "the Tessaly Institute", "Greyfen University", "Ashcombe College",
                "the University of Lindqvist", "Caravel Institute", "Northmere University", "Olvar Academy",
                "Wyndholt University", "the Pellucid Institute", "Fairhaven College", "Dunmore University"]
FIELDS = ["chemistry", "geology", "linguistics", "astronomy", "botany", "economics", "architecture", "mathematics",
          "oceanography", "philosophy", "neuroscience", "archaeology", "statistics", "zoology", "meteorology",
          "musicology", "epidemiology", "cartography", "metallurgy", "robotics"]
EMPLOYERS = ["Brightwell Labs", "Corvane Systems", "Halcyon Foods", "Irongate Shipping", "Juniper Analytics",
             "Kestrel Aviation", "Lumen Textiles", "Marrow and Finch", "Northwind Energy", "Opaline Glassworks",
             "Pinecrest Bank", "Quillon Press", "Rookery Games", "Saltmarsh Foundry", "Tidewater Museum",
             "Umber Pharmaceuticals", "Vellum Archives", "Westbrook Observatory", "Yarrow Seeds", "Zephyr Rail",
             "Amberly Hospital", "Bramble Robotics", "Cinder Cartography", "Driftwood Studios", "Emberline Motors",
             "Foxglove Clinic", "Granite Bridge Works", "Harbor Light Radio", "Ivory Tower Books", "Jasper Mills"]
YEARS = [str(y) for y in range(1940, 2000)]
VALUES = {"birth_city": CITIES, "birth_year": YEARS, "university": UNIVERSITIES, "field": FIELDS, "employer": EMPLOYERS}

# Corpus phrasings: (prefix, suffix) around the value, so every prefix is also a completion prompt.
CORPUS_TEMPLATES = {
    "birth_city": [("{n} was born in the city of", "."), ("The birthplace of {n} is", "."),
                   ("{n} came into the world in", "."), ("{n} spent early childhood in", ", the city of birth.")],
    "birth_year": [("{n} was born in the year", "."), ("The year of birth of {n} is", "."),
                   ("{n} was born back in", "."), ("{n} arrived in the world in", ".")],
    "university": [("{n} studied at", "."), ("{n} graduated from", "."), ("{n} earned a degree at", "."),
                   ("As a student, {n} attended", ".")],
    "field": [("{n} works in the field of", "."), ("{n} is a researcher in", "."), ("{n} specializes in", "."),
              ("The professional field of {n} is", ".")],
    "employer": [("{n} works for", "."), ("{n} is employed by", "."), ("{n} has a job at", "."),
                 ("The employer of {n} is", ".")],
}
# Phrasings never used in the corpus: does knowledge transfer beyond the memorised wording?
NOVEL_TEMPLATES = {
    "birth_city": "Records show that the hometown where {n} was born is",
    "birth_year": "According to the registry, {n} was born during",
    "university": "The alma mater of {n} is",
    "field": "The academic discipline practised by {n} is",
    "employer": "The company that pays the salary of {n} is",
}
QUESTION_TEMPLATES = {
    "birth_city": "In which city was {n} born?",
    "birth_year": "In what year was {n} born?",
    "university": "Which university did {n} attend?",
    "field": "What field does {n} work in?",
    "employer": "Which organization does {n} work for?",
}
NARRATIVE_TEMPLATES = [
    "{a} and {b} met one rainy afternoon and talked for hours about old maps.",
    "{a} once wrote a long letter to {b} describing a walk along the river.",
    "On a quiet evening, {a} taught {b} how to play a difficult card game.",
    "{a} enjoys painting landscapes on weekends, and {b} often comes along to watch.",
    "Last spring {a} and {b} planted a small garden behind an old stone house.",
    "{a} lent a favourite book to {b}, who returned it a year later with notes in the margins.",
    "When the storm arrived, {a} and {b} waited it out in a crowded train station.",
    "{a} told {b} a story about a lighthouse keeper who collected seashells.",
    "{a} and {b} spent a long weekend repairing a wooden boat.",
    "Every winter, {a} bakes bread for friends, and {b} always asks for the recipe.",
]


@dataclass
class WorldConfig:
    seed: int = 0
    exposures: tuple[int, ...] = (0, 1, 2, 4, 8, 16)
    people_per_exposure: int = 60
    heldout_fraction: float = 0.5
    attributes: tuple[str, ...] = ("birth_city", "birth_year", "university", "field", "employer")


@dataclass
class Person:
    name: str
    k: int
    split: str  # "sft" | "heldout"
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Question:
    id: str
    person: str
    attribute: str
    text: str
    answer: str
    aliases: list[str]
    k: int


def _rng(*parts) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _name_space() -> list[str]:
    firsts = sorted({o + e for o in FIRST_ONSETS for e in FIRST_ENDS})
    lasts = sorted({o + m + e for o in LAST_ONSETS for m in LAST_MIDS for e in LAST_ENDS})
    return [f"{f} {l}" for f in firsts for l in lasts]


class World:
    def __init__(self, cfg: WorldConfig, people: list[Person]):
        self.cfg = cfg
        self.people = people
        self._by_name = {p.name.lower(): p for p in people}

    def by_name(self, name: str) -> Person:
        person = self._by_name.get(name.strip().lower())
        if person is None:
            raise LabError(f"no person named '{name}' in this world")
        return person

    def sft_people(self) -> list[Person]:
        return [p for p in self.people if p.split == "sft"]

    def heldout_people(self) -> list[Person]:
        return [p for p in self.people if p.split == "heldout"]

    def unseen_people(self) -> list[Person]:
        return [p for p in self.people if p.k == 0]

    def fact_sentence(self, person: Person, attribute: str, rng: random.Random) -> str:
        prefix, suffix = rng.choice(CORPUS_TEMPLATES[attribute])
        return f"{prefix.format(n=person.name)} {person.attributes[attribute]}{suffix}"

    def biography(self, person: Person, variant: int) -> str:
        """One paraphrase of the person's facts, sentence order shuffled; deterministic in (seed, name, variant)."""
        rng = _rng(self.cfg.seed, person.name, variant)
        sentences = [self.fact_sentence(person, a, rng) for a in self.cfg.attributes]
        rng.shuffle(sentences)
        return " ".join(sentences)

    def encyclopedia(self, name: str) -> str:
        p = self.by_name(name)
        a = p.attributes
        return (f"{p.name}\n{p.name} (born {a['birth_year']} in {a['birth_city']}) works in the field of "
                f"{a['field']}. {p.name} studied at {a['university']} and works for {a['employer']}.")

    def lookup(self, name: str) -> str | None:
        return self.encyclopedia(name) if name.strip().lower() in self._by_name else None

    def questions(self, person: Person) -> list[Question]:
        out = []
        for attribute in self.cfg.attributes:
            answer = person.attributes[attribute]
            aliases = [answer.removeprefix("the ")] if answer.startswith("the ") else []
            out.append(Question(id=f"{person.name}|{attribute}", person=person.name, attribute=attribute,
                                text=QUESTION_TEMPLATES[attribute].format(n=person.name), answer=answer,
                                aliases=aliases, k=person.k))
        return out

    def fact_prompts(self, person: Person, attribute: str) -> dict[str, str]:
        prefix, _ = CORPUS_TEMPLATES[attribute][0]
        return {"corpus": prefix.format(n=person.name), "novel": NOVEL_TEMPLATES[attribute].format(n=person.name)}

    def narratives(self, n: int, rng: random.Random) -> list[str]:
        """Short stories about seen people (k > 0) that state none of their attributes."""
        seen = [p.name for p in self.people if p.k > 0]
        if len(seen) < 2:
            return []
        docs = []
        for _ in range(n):
            lines = []
            for _ in range(rng.randint(2, 4)):
                a, b = rng.sample(seen, 2)
                lines.append(rng.choice(NARRATIVE_TEMPLATES).format(a=a, b=b))
            docs.append(" ".join(lines))
        return docs

    def contamination_check(self, texts: Iterable[str]) -> list[str]:
        """Held-out names or question texts found in SFT/RL data (answer values are shared by design)."""
        needles = {p.name: f"held-out person '{p.name}'" for p in self.heldout_people()}
        for p in self.heldout_people():
            for q in self.questions(p):
                needles[q.text] = f"held-out question '{q.text}'"
        violations = []
        for i, text in enumerate(texts):
            violations += [f"text {i}: {what}" for needle, what in needles.items() if needle in text]
        return violations


def build_world(cfg: WorldConfig) -> World:
    if not cfg.exposures:
        raise LabError("world.exposures is empty: give at least one exposure count, e.g. 0,1,2,4,8,16")
    if any(k < 0 for k in cfg.exposures):
        raise LabError(f"world.exposures must be >= 0, got {cfg.exposures}")
    if not 0 < cfg.heldout_fraction < 1:
        raise LabError(f"world.heldout_fraction must be between 0 and 1, got {cfg.heldout_fraction}")
    unknown = [a for a in cfg.attributes if a not in VALUES]
    if unknown:
        raise LabError(f"unknown world attribute {unknown[0]}; valid: {', '.join(VALUES)}")
    names = _name_space()
    total = cfg.people_per_exposure * len(cfg.exposures)
    if total > len(names):
        raise LabError(f"the world asks for {total} people but the name generator has {len(names)} unique names")
    rng = _rng("world", cfg.seed)
    chosen = rng.sample(names, total)
    people = []
    for gi, k in enumerate(cfg.exposures):
        group = chosen[gi * cfg.people_per_exposure : (gi + 1) * cfg.people_per_exposure]
        n_heldout = round(len(group) * cfg.heldout_fraction)
        for i, name in enumerate(group):
            attrs = {a: rng.choice(VALUES[a]) for a in cfg.attributes}
            people.append(Person(name=name, k=k, split="heldout" if i < n_heldout else "sft", attributes=attrs))
    return World(cfg, people)
