"""A deterministic world of fictional people: the lab's ground truth.

Each person has a few attributes and an exposure count k: their biography appears exactly k times
in the pretraining corpus, each time in a different paraphrase with the sentences shuffled
(Allen-Zhu & Li, "Physics of Language Models 3.1": without such augmentation facts are memorised
but not extractable). People with k = 0 never appear anywhere in the corpus: they are the "unseen"
people on whom hallucination is measured. People are split once, by person and stratified by k,
into SFT people (used for Q&A training) and held-out people (used only by evals).

Narratives (stories that name seen people) never state an attribute, so a person's facts reach the
corpus only through their k biographies. There is deliberately no relation attribute such as
"mentor": naming one person inside another's biography would expose the mentor's name more than k
times and could carry a held-out name into SFT answers.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lab.errors import LabError

# Names are onset + ending; the filters in name_space drop clumsy joins ("Pelllund", "Ororen").
FIRST_ONSETS = ["", "M", "T", "K", "S", "L", "R", "V", "D", "N", "B", "F", "G", "H", "J", "P", "Z", "El", "Or", "Is",
                "Th", "Br"]
FIRST_ENDS = ["ira", "oren", "ana", "elis", "avo", "una", "eno", "ila", "aro", "essa", "ivan", "ona", "ael", "ami",
              "ento"]
LAST_ONSETS = ["Tol", "Val", "Mer", "Kas", "Dron", "Fen", "Hal", "Dov", "Bel", "Stav", "Rin", "Ost", "Cal", "Lun",
               "Gav", "Pell", "Sor", "Thal", "Wen", "Brev", "Corv", "Elm", "Quell", "Tarn"]
LAST_ENDS = ["vane", "ecki", "drin", "holt", "mora", "quist", "ney", "ridge", "lund", "wick", "ston", "ivar", "essen",
             "thorne", "avik", "orin"]
# Ordinary words the first-name tables happen to spell, and real surnames (a few famous) the last-name
# tables happen to spell: never used.
WORD_FIRST_NAMES = {"Bravo", "Tuna", "Divan", "Faro", "Lira", "Mana", "Gila", "Pavo"}
REAL_SURNAMES = {"Fenwick", "Halston", "Halecki", "Belecki", "Ostlund", "Tollund", "Elmquist", "Calston", "Wenston",
                 "Belston", "Halquist", "Tolston", "Rinecki", "Dovecki", "Merridge", "Calney", "Belney", "Halney",
                 "Fenney", "Corvholt", "Ostwick", "Valdrin"}

CITIES = ["Lisbon", "Oslo", "Krakow", "Porto", "Lyon", "Turin", "Ghent", "Bergen", "Tartu", "Graz", "Seville", "Bilbao",
          "Utrecht", "Aarhus", "Malmo", "Tampere", "Brno", "Zadar", "Riga", "Vilnius", "Leipzig", "Dresden", "Bremen",
          "Nantes", "Lille", "Bologna", "Verona", "Limerick", "Galway", "Dundee", "Cardiff", "Leeds", "Halifax",
          "Quebec", "Oaxaca", "Cusco", "Rosario", "Valparaiso", "Hobart", "Dunedin"]
UNIVERSITIES = ["Varnholt University", "Kessmoor College", "the University of Almsby", "Redwater Institute",
                "Stellan University", "Orrin Technical College", "the University of Brackwell", "Harrowgate College",
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
             "Amberly Hospital", "Bramble Engineering", "Cinder Atlas Company", "Driftwood Studios", "Emberline Motors",
             "Foxglove Clinic", "Granite Bridge Works", "Harbor Light Radio", "Ivory Tower Books", "Jasper Mills"]
YEARS = [str(y) for y in range(1940, 2000)]
VALUES = {"birth_city": CITIES, "birth_year": YEARS, "university": UNIVERSITIES, "field": FIELDS, "employer": EMPLOYERS}
# True alternative names a grader should accept (case and punctuation are the grader's job).
ALIASES = {"Krakow": ["Kraków", "Cracow"], "Malmo": ["Malmö"], "Lisbon": ["Lisboa"], "Turin": ["Torino"],
           "Seville": ["Sevilla"], "Ghent": ["Gent"], "Valparaiso": ["Valparaíso"], "Cusco": ["Cuzco"],
           "Quebec": ["Quebec City"], "Porto": ["Oporto"], "Aarhus": ["Århus"],
           "Marrow and Finch": ["Marrow & Finch"], "mathematics": ["maths", "math"]}

# Corpus phrasings: (prefix, suffix) around the value, so every prefix is also a completion prompt.
# Every prefix names the person before the value: that is the direction the questions ask in.
CORPUS_TEMPLATES = {
    "birth_city": [("{n} was born in the city of", "."), ("The birthplace of {n} is", "."),
                   ("{n} came into the world in", "."), ("{n} was born and raised in", "."),
                   ("The birth city of {n} is", "."), ("{n} is a native of", ", where the family lived for years.")],
    "birth_year": [("{n} was born in the year", "."), ("The birth year of {n} is", "."),
                   ("{n}'s year of birth is", "."), ("{n} first saw daylight in the year", "."),
                   ("The year {n} was born was", "."), ("{n} entered the world in the year", ".")],
    "university": [("{n} studied at", "."), ("{n} graduated from", "."), ("{n} earned a degree at", "."),
                   ("As a student, {n} attended", "."), ("{n} received an education at", "."),
                   ("The university {n} went to was", ".")],
    "field": [("{n} works in the field of", "."), ("{n} is a researcher in", "."), ("{n} specializes in", "."),
              ("The professional field of {n} is", "."), ("{n} has devoted a career to", "."),
              ("{n} built a career in", ".")],
    "employer": [("{n} works for", "."), ("{n} is employed by", "."), ("{n} has a job at", "."),
                 ("The employer of {n} is", "."), ("{n} earns a living at", "."), ("{n} is on the staff of", ".")],
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
# Ways SFT asks each attribute (tasks/chat.py, question_wording="varied"): the canonical question first, then
# paraphrases sharing no words with NOVEL_TEMPLATES ("hometown", "registry", "alma mater", "discipline",
# "salary"). Asked one way only, the tiny model learns that wording, not the fact (Allen-Zhu & Li, "Physics of
# Language Models 3.1"). The first CORPUS_WORDINGS of each are also what the fresh_people and tool_transcripts
# documents ask (tasks/reading.py); the rest are SFT's alone, appended so the corpus keeps its documents.
TRAINING_QUESTION_TEMPLATES = {
    "birth_city": [QUESTION_TEMPLATES["birth_city"], "Where was {n} born?", "What is the birth city of {n}?",
                   "{n} was born in which city?", "Which city is {n} from?",
                   "Tell me where {n} was born.", "{n}: born in which city?"],
    "birth_year": [QUESTION_TEMPLATES["birth_year"], "When was {n} born?", "What is the birth year of {n}?",
                   "{n} was born in which year?", "In which year did {n} come into the world?",
                   "Tell me the year {n} was born.", "{n}: born in which year?"],
    "university": [QUESTION_TEMPLATES["university"], "Where did {n} study?", "Which school did {n} graduate from?",
                   "{n} earned a degree where?", "Where was {n} educated?",
                   "Tell me which university {n} attended.", "{n}: which university?"],
    "field": [QUESTION_TEMPLATES["field"], "What does {n} specialize in?", "What is the research area of {n}?",
              "{n} is an expert in what?", "Which subject has {n} devoted a career to?",
              "Tell me the research area of {n}.", "{n}: which field?"],
    "employer": [QUESTION_TEMPLATES["employer"], "Who employs {n}?", "Where does {n} work?",
                 "{n} has a job at which company?", "Which employer does {n} work for?",
                 "Tell me who employs {n}.", "{n}: which employer?"],
}
CORPUS_WORDINGS = 5
CORPUS_QUESTION_TEMPLATES = {a: t[:CORPUS_WORDINGS] for a, t in TRAINING_QUESTION_TEMPLATES.items()}
# Wordings no training source uses (pretraining corpus, SFT; tests/test_wording.py checks), frozen before any
# tuning: the evals ask them to see whether a fact SFT practised in other words is extracted at all.
HELDOUT_QUESTION_TEMPLATES = {
    "birth_city": ["What city was {n} born in?", "Do you know where {n} was born?"],
    "birth_year": ["Which year was {n} born in?", "Do you know when {n} was born?"],
    "university": ["What university did {n} go to?", "Do you know where {n} studied?"],
    "field": ["What is the field of {n}?", "Do you know what field {n} works in?"],
    "employer": ["What company does {n} work for?", "Do you know who {n} works for?"],
}
ENCYCLOPEDIA_LABELS = {"birth_city": "Birth city", "birth_year": "Birth year", "university": "Education", "field": "Field",
                       "employer": "Employer"}
# Openers in biographies that state nothing: one more source of surface variety between paraphrases.
BIO_OPENERS = ["", "", "Here is a short profile of {n}.", "This is a brief biography of {n}.",
               "A few facts about {n} follow."]

# Narratives: setting, events, ending. Places and event years are drawn at random, independent of anyone's
# attributes, and no template says born/studied/works, so narratives never add attribute exposure.
NARRATIVE_OPENERS = [
    "In {year}, {a} met {b} at a conference in {city}.",
    "One autumn in {city}, {a} and {b} shared a table at a crowded cafe.",
    "{a} first heard of {b} through a mutual friend in {city}.",
    "The winter of {year} brought {a} and {b} to {city} for a long holiday.",
    "For a few months in {year}, {a} and {b} were neighbours in {city}.",
    "During a rainy week in {city}, {a} ran into {b} at the railway station.",
    "{a} and {b} signed up for the same walking tour of {city} in {year}.",
]
NARRATIVE_EVENTS = [
    "They talked for hours about {topic}.",
    "{a} showed {b} a small collection of {things}.",
    "On the second day, {b} suggested a long walk along the river.",
    "{a} taught {b} how to play a difficult card game.",
    "{b} lent {a} a favourite novel, which came back a year later with notes in the margins.",
    "When a storm arrived, they waited it out in a crowded train station.",
    "{a} spends most weekends {hobby}, and {b} sometimes comes along.",
    "They spent a long weekend repairing a wooden boat.",
    "{a} baked bread for everyone, and {b} asked for the recipe.",
    "Later, {a} wrote {b} a long letter about {topic}.",
    "{b} told a story about a lighthouse keeper who collected {things}.",
    "Together they visited a small museum of {things} in {city2}.",
    "{a} lost an umbrella on the tram, and {b} found it the next morning.",
    "They argued, cheerfully, about whether {topic} is worth the trouble.",
    "{b} has a habit of {hobby}, which {a} finds hard to understand.",
    "A week later, {a} and {b} took a ferry to {city2}.",
]
NARRATIVE_ENDINGS = [
    "Years later, both of them still remembered that trip.",
    "{a} and {b} have exchanged postcards ever since.",
    "Neither of them ever went back to {city}.",
    "They promised to meet again in {city2} the following spring.",
    "{b} still keeps a photograph from that week on a shelf.",
    "",
]
HOBBIES = ["painting landscapes", "birdwatching", "playing chess", "cycling along the coast", "sailing",
           "collecting stamps", "hiking in the hills", "playing the cello", "gardening", "taking photographs",
           "knitting scarves", "fixing old radios"]
THINGS = ["old maps", "seashells", "pressed flowers", "antique clocks", "postcards", "river stones", "tin soldiers",
          "paper lanterns", "glass marbles", "train tickets"]
TOPICS = ["old maps", "the weather", "train timetables", "jazz records", "mountain walks", "the history of bridges",
          "the best way to brew tea", "a half-finished novel", "their favourite films", "the price of bicycles"]


@dataclass
class WorldConfig:
    seed: int = 0
    exposures: tuple[int, ...] = (0, 1, 2, 4, 8, 16)  # biographies per person in the pretraining corpus
    people_per_exposure: int = 60
    heldout_fraction: float = 0.5  # share of each exposure group kept out of SFT, for evals only
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


def seeded_rng(*parts) -> random.Random:
    """A random stream fixed by its parts (seed, name, variant, ...)."""
    # A hash, not Python's hash(): the same inputs give the same stream on every machine and process.
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@functools.lru_cache(maxsize=1)
def name_space() -> tuple[str, ...]:
    firsts = sorted({(o + e) if o else e.capitalize() for o in FIRST_ONSETS for e in FIRST_ENDS
                     if not (o and o[-1] in "aeiou" and e[0] in "aeiou") and not (o and o.lower() in e)}
                    - WORD_FIRST_NAMES)
    lasts = sorted({o + e for o in LAST_ONSETS for e in LAST_ENDS
                    if o[-1] != e[0] and o[-2:] != e[:2] and o.lower() not in e} - REAL_SURNAMES)
    return tuple(f"{f} {last}" for f in firsts for last in lasts)


@functools.lru_cache(maxsize=1)
def name_set() -> frozenset[str]:
    """name_space() as a set, built once: generators of other names check against it in a loop."""
    return frozenset(name_space())


def aliases_of(value: str) -> list[str]:
    """True alternative names of an attribute value a grader should accept (ALIASES, and "the X" as "X")."""
    aliases = list(ALIASES.get(value, []))
    if value.startswith("the "):
        aliases.append(value.removeprefix("the "))
    return aliases


def encyclopedia_card(name: str, facts: dict[str, str]) -> str:
    """An encyclopedia article: the name, a header, a labelled line per fact (what `lookup` returns)."""
    lines = [name, f"{name} is a person in this encyclopedia. Known facts:"]
    return "\n".join(lines + [f"{ENCYCLOPEDIA_LABELS[a]}: {v}" for a, v in facts.items()])


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


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

    def values(self, attribute: str) -> list[str]:
        """Every value the attribute can take: a guess among them is right with probability 1/len."""
        return VALUES[attribute]

    def names_in(self, text: str) -> set[str]:
        """Full names of this world's people that the text mentions (case-insensitive, whole words only)."""
        words = _words(text)
        return {self._by_name[b].name for b in map(" ".join, zip(words, words[1:])) if b in self._by_name}

    def fact_sentence(self, person: Person, attribute: str, rng: random.Random, canonical: bool = False) -> str:
        templates = CORPUS_TEMPLATES[attribute]
        prefix, suffix = templates[0] if canonical else rng.choice(templates)
        return f"{prefix.format(n=person.name)} {person.attributes[attribute]}{suffix}"

    def biography(self, person: Person, variant: int) -> str:
        """One paraphrase of the person's facts, sentence order shuffled; deterministic in (seed, name, variant).

        Variant 0 states every fact in the canonical phrasing (the first template), so the "corpus" fact
        prompt has been seen verbatim for everyone with k >= 1; later variants pick phrasings at random."""
        rng = seeded_rng(self.cfg.seed, person.name, variant)
        sentences = [self.fact_sentence(person, a, rng, canonical=variant == 0) for a in self.cfg.attributes]
        rng.shuffle(sentences)
        opener = rng.choice(BIO_OPENERS).format(n=person.name)
        return " ".join([opener] + sentences if opener else sentences)

    def encyclopedia(self, name: str, changed: dict[str, str] | None = None) -> str:
        """The canonical article for anyone, unseen people included: what a `lookup` tool returns. `changed`
        (attribute -> value) gives a counterfactual article, those facts replaced."""
        p = self.by_name(name)
        return encyclopedia_card(p.name, {a: p.attributes[a] for a in self.cfg.attributes} | (changed or {}))

    def lookup(self, name: str) -> str | None:
        return self.encyclopedia(name) if name.strip().lower() in self._by_name else None

    @staticmethod
    def lookup_miss(name: str) -> str:
        """What the `lookup` tool answers about someone the encyclopedia does not have."""
        return f"error: no article about '{name}'"

    def questions(self, person: Person) -> list[Question]:
        out = []
        for attribute in self.cfg.attributes:
            answer = person.attributes[attribute]
            aliases = aliases_of(answer)
            out.append(Question(id=f"{person.name}|{attribute}", person=person.name, attribute=attribute,
                                text=QUESTION_TEMPLATES[attribute].format(n=person.name), answer=answer,
                                aliases=aliases, k=person.k))
        return out

    def fact_prompts(self, person: Person, attribute: str) -> dict[str, str]:
        prefix, _ = CORPUS_TEMPLATES[attribute][0]
        return {"corpus": prefix.format(n=person.name), "novel": NOVEL_TEMPLATES[attribute].format(n=person.name)}

    def narratives(self, n: int, rng: random.Random) -> list[str]:
        """Short stories about pairs of seen people (k > 0) that state none of their attributes."""
        seen = [p.name for p in self.people if p.k > 0]
        if n > 0 and len(seen) < 2:
            raise LabError("narratives need at least two people with exposure k > 0; this world has "
                           f"{len(seen)} (check world.exposures)")
        docs = []
        for _ in range(n):
            a, b = rng.sample(seen, 2)
            city, city2 = rng.sample(CITIES, 2)
            slots = dict(a=a, b=b, city=city, city2=city2, year=rng.randint(1960, 2020), topic=rng.choice(TOPICS),
                         things=rng.choice(THINGS), hobby=rng.choice(HOBBIES))
            parts = [rng.choice(NARRATIVE_OPENERS)] + rng.sample(NARRATIVE_EVENTS, rng.randint(1, 3))
            parts.append(rng.choice(NARRATIVE_ENDINGS))
            docs.append(" ".join(t.format(**slots) for t in parts if t))
        return docs

    def contamination_check(self, texts: Iterable[str]) -> list[str]:
        """Held-out names or question texts found in SFT/RL data (answer values are shared by design)."""
        questions = {p.name: [q.text.lower() for q in self.questions(p)] for p in self.heldout_people()}
        violations = []
        for i, text in enumerate(texts):
            # Every question names its person, so only texts naming a held-out person can hold a question.
            for name in sorted(self.names_in(text) & questions.keys()):
                violations.append(f"text {i}: held-out person '{name}'")
                lowered = " ".join(text.lower().split())
                violations += [f"text {i}: held-out question '{q}'" for q in questions[name] if q in lowered]
        return violations


def build_world(cfg: WorldConfig) -> World:
    if not cfg.exposures:
        raise LabError("world.exposures is empty: give at least one exposure count, e.g. 0,1,2,4,8,16")
    if any(k < 0 for k in cfg.exposures):
        raise LabError(f"world.exposures must be >= 0, got {cfg.exposures}")
    if len(set(cfg.exposures)) != len(cfg.exposures):
        raise LabError(f"world.exposures lists an exposure twice: {cfg.exposures}")
    if cfg.people_per_exposure < 2:
        raise LabError("world.people_per_exposure must be at least 2, so that both the sft and the heldout split "
                       f"have someone at every exposure; got {cfg.people_per_exposure}")
    if not 0 < cfg.heldout_fraction < 1:
        raise LabError(f"world.heldout_fraction must be between 0 and 1 (exclusive), got {cfg.heldout_fraction}")
    if not cfg.attributes:
        raise LabError(f"world.attributes is empty; valid: {', '.join(VALUES)}")
    unknown = [a for a in cfg.attributes if a not in VALUES]
    if unknown:
        raise LabError(f"unknown world attribute '{unknown[0]}'; valid: {', '.join(VALUES)}")
    if len(set(cfg.attributes)) != len(cfg.attributes):
        raise LabError(f"world.attributes lists an attribute twice: {cfg.attributes}")
    names = name_space()
    total = cfg.people_per_exposure * len(cfg.exposures)
    if total > len(names):
        raise LabError(f"the world asks for {total} people but the name generator has only {len(names)} unique names")
    rng = seeded_rng("world", cfg.seed)
    chosen = rng.sample(names, total)
    people = []
    for gi, k in enumerate(cfg.exposures):
        # Stratified by k: each exposure group is split on its own, and each split gets at least one person.
        group = chosen[gi * cfg.people_per_exposure : (gi + 1) * cfg.people_per_exposure]
        n_heldout = min(max(round(len(group) * cfg.heldout_fraction), 1), len(group) - 1)
        for i, name in enumerate(group):
            attrs = {a: rng.choice(VALUES[a]) for a in cfg.attributes}
            people.append(Person(name=name, k=k, split="heldout" if i < n_heldout else "sft", attributes=attrs))
    return World(cfg, people)
