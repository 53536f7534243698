"""The stage graph: one declaration a stage, from which the rest of the lab reads what it needs.

A stage is a function `run(settings, context) -> None` that reads its parents' folders and writes its own
(`context.stage`), marking itself complete last. Its declaration below says where that function is, which
preset section it takes (the Preset's stage sections are built from these declarations), the suites the
evals stage runs on it, the report section about it, what the gpu check cuts, and how it is compared in
the report. The pipeline (lab/pipeline.py), the report, replicate and the gpu check derive their lists
from STAGES; adding a stage is its module, one declaration here, and its test.

Torch-free: the functions are named by "module:function" and imported only when their stage runs, so the
presets and `lab --help` load no torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from evals.eval_settings import EvalSettings, ReadingSettings
from lab.errors import LabError
from lab.experiments.demonstrator_settings import DemonstratorSettings
from lab.experiments.guessing_settings import GuessingSettings
from lab.experiments.settings import (
    ChatTranscriptSettings,
    GoodhartSettings,
    MathRewardsSettings,
    RLHFMethodsSettings,
    ScalingSettings,
)
from lab.experiments.wording_settings import WordingSettings
from lab.model.export import ExportSettings
from lab.model.tokenizer_settings import TokenizerSettings
from lab.runs import Run
from lab.stage_names import (
    BASE,
    CHAT_TRANSCRIPT,
    DATA,
    DEMONSTRATOR,
    DPO,
    EVALS,
    GUESSING,
    KNOWLEDGE,
    MATH_REWARDS,
    REPORT,
    RL_MATH,
    RLHF_GRPO,
    RLHF_METHODS,
    RLHF_PPO,
    RLHF_RLOO,
    RM,
    RM_GAMED,
    SCALING,
    SFT,
    SFT_IDK,
    SFT_MATH,
    TOKENIZER,
    WORDING,
)
from lab.train.pretrain_settings import ModelShape, PretrainSettings, SampleSettings
from lab.train.reward_model_settings import RewardModelSettings
from lab.train.rl_settings import DPOSettings, PPOSettings, RLHFSettings, RLSettings
from lab.train.sft_settings import MathSFTSettings, SFTSettings
from tasks.corpus import DataSettings
from tasks.world import World, build_world


@dataclass(frozen=True)
class StageContext:
    """What the run gives a stage besides its own settings: the run directory, the seed, where the corpus
    came from, the model's shape, and the SFT recipe (identity, mixture, max length) later chat stages
    replay. `stage` is the folder the stage writes, `source` the stage whose model it starts from."""

    run: Run
    seed: int
    data: DataSettings | None
    model: ModelShape
    sample: SampleSettings
    sft: SFTSettings | None
    stage: str = ""
    source: str | None = None

    def at(self, stage: str, source: str | None = None) -> StageContext:
        """The same run, writing `stage` (e.g. an experiment's arm) from `source` (default: unchanged)."""
        return dataclasses.replace(self, stage=stage, source=source if source is not None else self.source)

    @cached_property
    def world(self) -> World:
        """The generated world the corpus was written from (one clear error on a user's own corpus)."""
        if self.data is None or self.data.source != "world":
            raise LabError(f"stage '{self.stage}' asks about the generated world's people, and this run pretrained on "
                           f"the user's own corpus (data.source={getattr(self.data, 'source', None)})")
        return build_world(self.data.world)


@dataclass(frozen=True)
class Stage:
    name: str
    parents: tuple[str, ...]
    run: str | Callable  # "module:function" taking (settings, StageContext), or the function itself
    section: str | None = None  # the preset section passed as `settings` (None: the stage takes none)
    settings: Callable[[], object] | None = None  # that section's type, or a factory of its defaults
    source: str | None = None  # the stage whose model this one starts from
    settings_changes: tuple[tuple[str, object], ...] = ()  # fields this stage sets in a shared section
    suites: tuple[str, ...] | None = ()  # eval suites run on its model: None every suite, () none
    policy: bool = False  # its folder holds a causal LM to talk to (`lab chat` refuses the others by name)
    compare_with: str | None = None  # the policy the report compares it with (default: its source)
    label: str = ""  # how the report names it, where the name alone does not say
    report: str | Callable | None = None  # "module:function(run, stage) -> [(title, blocks)]": the report on it
    gpu_check: tuple[str, ...] = ()  # `--set` items the gpu check cuts it with ({n}: the check's step count)
    always: bool = False  # cheap stages that summarise others (the report) are rebuilt on every run
    # rerun when a parent completed after it (evals: a stage added to a finished run gets evaluated; its
    # per-suite caches keep the rest from being recomputed). Training stages never restart on their own.
    refresh: bool = False

    @property
    def baseline(self) -> str | None:
        return self.compare_with or self.source

    def function(self) -> Callable[[object, StageContext], None]:
        return resolve(self.run, f"stage '{self.name}' names its function")

    def report_sections(self) -> Callable[[Run, str], list] | None:
        return resolve(self.report, f"stage '{self.name}' names its report section") if self.report else None


def resolve(ref: str | Callable, what: str) -> Callable:
    """The function a declaration names ("module:function"), imported now; a callable is its own."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise LabError(f"{what} '{ref}', which does not import ({e})") from None


# The RL stages' gpu check: about 20 steps each, held-out grading cut (scripts/gpu_check.py scales back).
STAGES: list[Stage] = [
    Stage(DATA, (), "tasks.corpus:data_stage", "data", DataSettings),
    Stage(TOKENIZER, (DATA,), "lab.model.tokenizer:tokenizer_stage", "tokenizer", TokenizerSettings),
    Stage(BASE, (TOKENIZER,), "lab.train.pretrain:base_stage", "pretrain", PretrainSettings,
          suites=("identity",), policy=True,  # the control for "SFT makes an assistant": no chat training
          gpu_check=("pretrain.max_steps=200",)),
    Stage(KNOWLEDGE, (BASE,), "evals.knowledge_stage:knowledge_stage", "reading", ReadingSettings, source=BASE),
    Stage(SFT, (BASE,), "lab.train.sft:sft", "sft", SFTSettings, source=BASE, suites=None, policy=True),
    Stage(SFT_IDK, (BASE,), "lab.train.sft:sft", "sft", SFTSettings, source=BASE, suites=None, policy=True,
          compare_with=SFT, gpu_check=("sft.probe_samples=2",), report="reports.report:knowledge_probe_sections"),
    Stage(SFT_MATH, (SFT_IDK,), "lab.train.math_practice:math_sft", "math_sft", MathSFTSettings, source=SFT_IDK,
          suites=("math", "hallucination"), policy=True),  # hallucination: does practice forget the rest?
    # verified_check and group_solved (weight 0) are only tracked: do checks of one's own answer (right arithmetic, of
    # the answer given: rewards/math_checks.py) emerge, and what share of groups holds a correct answer (GRPO's
    # signal)? 224 tokens: an answer whose check catches a slip and redoes the columns runs to ~210.
    Stage(RL_MATH, (SFT_MATH,), "lab.train.rl_math:rl_math", "rl", lambda: RLSettings(
          rewards=("correctness", "format", "verified_check", "group_solved"), reward_weights=(1.0, 0.1, 0.0, 0.0),
          max_completion_length=224),
          source=SFT_MATH, suites=("math", "hallucination", "identity"), policy=True,
          report="reports.rl_sections:rl_math_sections",
          gpu_check=("rl.steps={n}", "rl.eval_problems=100", "rl.eval_samples=1")),
    Stage(RM, (SFT_IDK,), "lab.train.reward_model:train_reward_model", "rm",
          lambda: RewardModelSettings(pairs=400, disjoint_pairs=False), source=SFT_IDK,
          report="reports.rl_sections:reward_model_sections"),
    Stage(DPO, (RM,), "lab.train.dpo:dpo", "dpo", DPOSettings, source=SFT_IDK,
          suites=("profile", "hallucination", "identity"), policy=True),
    Stage(RLHF_GRPO, (RM,), "lab.train.rlhf:rlhf", "rlhf", RLHFSettings, source=SFT_IDK,
          suites=("profile", "hallucination", "identity"), policy=True, label="GRPO (TRL)",
          gpu_check=("rlhf.steps={n}",), report="reports.rl_sections:rlhf_sections"),  # with rlhf-ppo and -rloo
    Stage(RLHF_PPO, (RM,), "lab.train.ppo.loop:ppo_rlhf", "ppo", PPOSettings, source=SFT_IDK,
          suites=("profile", "hallucination", "identity"), policy=True,
          label="PPO (lab/train/ppo: value model, GAE, clipped updates)", gpu_check=("ppo.steps={n}",)),
    Stage(RLHF_RLOO, (RM,), "lab.train.rlhf:rlhf", "rlhf", RLHFSettings, source=SFT_IDK,
          settings_changes=(("algo", "rloo"),), policy=True, label="RLOO (TRL)"),
    Stage(RLHF_METHODS, (DPO, RLHF_GRPO, RLHF_PPO, RLHF_RLOO), "lab.experiments.rlhf_methods:run_rlhf_methods",
          "rlhf_methods", RLHFMethodsSettings, source=SFT_IDK, refresh=True, gpu_check=("rlhf_methods.prompts=64",)),
    # the claims table's "a learned reward model gets gamed": one small RM and a GRPO run long enough to pass gold's
    # peak, with the recipes of rm, rlhf-grpo and rlhf-methods (chosen on the development world: settings-notes.md)
    Stage(RM_GAMED, (RLHF_METHODS,), "lab.experiments.goodhart:rm_gamed", "rm_gamed",
          lambda: GoodhartSettings(pairs=(300,), seeds=(0,), steps=80), source=SFT_IDK,
          gpu_check=("rm_gamed.steps=20",)),
    # RL from sft-idk on SFT people's questions, graded 0/1 and with wrong answers penalised (same prompts, steps and
    # seed), asked never-seen and well-known held-out people: does grading that rewards guessing breed hallucination?
    Stage(GUESSING, (SFT_IDK,), "lab.experiments.guessing:run_guessing", "guessing", GuessingSettings, source=SFT_IDK,
          report="reports.guessing_sections:guessing_sections", gpu_check=("guessing.steps={n}",)),
    # SFT from sft-idk on a demonstrator right on a fixed share of problems and systematically wrong on the rest,
    # then RL with the verifier from that SFT: can RL surpass the demonstrations it started from?
    Stage(DEMONSTRATOR, (SFT_IDK,), "lab.experiments.demonstrator:run_demonstrator", "demonstrator",
          DemonstratorSettings, source=SFT_IDK, report="reports.demonstrator_sections:demonstrator_sections",
          gpu_check=("demonstrator.rl_steps={n}",)),
    # models of several sizes pretrained on the run's data with the run's pretraining settings: loss against size,
    # and whether copying appears abruptly, under exact match and under a continuous metric (Schaeffer et al. 2023)
    Stage(SCALING, (TOKENIZER,), "lab.experiments.scaling:scaling_stage", "scaling", ScalingSettings,
          report="reports.scaling_sections:scaling_sections", gpu_check=("scaling.warmup_steps=0", "scaling.steps={n}")),
    # RL vs SFT at matched compute from sft-math: rl-math is the RL arm (the baseline recipe; its extra rewards have
    # weight 0), read, not trained twice; only the sft arm trains here (`lab experiment math-rewards` runs every arm)
    Stage(MATH_REWARDS, (SFT_MATH, RL_MATH), "lab.experiments.math_rewards:math_rewards_stage", "math_rewards",
          MathRewardsSettings, source=SFT_MATH, settings_changes=(("arms", ("sft",)), ("baseline_stage", RL_MATH)),
          refresh=True),  # a newer rl-math is re-read (the trained sft arm is kept)
    Stage("export", (SFT_IDK,), "lab.model.export:export_stage", "export", ExportSettings, source=SFT_IDK, policy=True,
          report="lab.model.export:export_sections"),  # the assistant as a Llama checkpoint, checked
    # sft-idk against its twin trained with every question in the canonical wording (`sft.*` settings), asked in
    # held-out wordings: does knowledge extraction need varied wording?
    Stage(WORDING, (SFT_IDK,), "lab.experiments.wording:run_wording", "wording", WordingSettings, source=SFT_IDK,
          report="reports.wording_sections:wording_sections", gpu_check=("wording.limit=64",)),
    # what a new user meets in `lab chat` on the assistant: scripted questions, graded
    Stage(CHAT_TRANSCRIPT, (SFT_IDK,), "lab.chat_transcript:chat_transcript", "chat_transcript", ChatTranscriptSettings,
          source=SFT_IDK, report="lab.chat_transcript:chat_sections", gpu_check=()),
    Stage(REPORT, (BASE,), "lab.pipeline:report_stage", always=True),
]


def check_stages(stages: Sequence[Stage]) -> None:
    """One clear error for a graph the pipeline cannot run: a name used twice, an unknown parent or source, a
    parent declared after its child (which also rules out cycles), a section with two types, a section
    without settings."""
    seen: dict[str, Stage] = {}
    sections: dict[str, object] = {}
    for stage in stages:
        if stage.name in seen:
            raise LabError(f"two stages are named '{stage.name}'; stage names must be unique")
        for parent in (*stage.parents, *filter(None, (stage.source, stage.compare_with))):
            if parent not in seen:
                known = ", ".join(s.name for s in stages)
                later = any(s.name == parent for s in stages)
                raise LabError(f"stage '{stage.name}' names '{parent}' " + (
                    "which is declared after it (a stage comes after its parents; a cycle has no such order)"
                    if later else f"which is not a stage; stages: {known}"))
        if isinstance(stage.run, str) and not _module_exists(stage.run.partition(":")[0]):
            raise LabError(f"stage '{stage.name}' names its function '{stage.run}', whose module does not exist")
        if (stage.section is None) != (stage.settings is None):
            raise LabError(f"stage '{stage.name}' needs both a settings section and its settings type, or neither")
        if stage.section is not None:
            kind = _settings_type(stage.settings)
            if sections.setdefault(stage.section, kind) is not kind:
                raise LabError(f"section '{stage.section}' is declared with two types ({sections[stage.section].__name__}, "
                               f"{kind.__name__}) by stage '{stage.name}'")
        seen[stage.name] = stage


def _module_exists(module: str) -> bool:
    """Whether `module` can be imported, found without importing it (stage modules load torch)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or an empty name
        return False


def _settings_type(settings) -> type:
    return settings if isinstance(settings, type) else type(settings())


def stage_sections(stages: Sequence[Stage]) -> list[tuple[str, type, dataclasses.Field]]:
    """(section, type, field with its defaults) for every settings section the stages declare, in order."""
    check_stages(stages)
    sections: dict[str, tuple[str, type, dataclasses.Field]] = {}
    for stage in stages:
        if stage.section and stage.section not in sections:
            sections[stage.section] = (stage.section, _settings_type(stage.settings), field(default_factory=stage.settings))
    return list(sections.values())


def stage_settings(stage: Stage, preset) -> object | None:
    """The settings a stage runs with: its preset section, with the stage's own changes to a shared one."""
    if stage.section is None:
        return None
    settings = getattr(preset, stage.section)
    return dataclasses.replace(settings, **dict(stage.settings_changes)) if stage.settings_changes else settings


def stage_names(stages: Sequence[Stage] = STAGES) -> list[str]:
    return [s.name for s in stages]


def eval_suites(stages: Sequence[Stage] = STAGES) -> dict[str, tuple[str, ...] | None]:
    """Each evaluated policy and the suites run on it (None: every suite), in pipeline order."""
    return {s.name: s.suites for s in stages if s.suites != ()}


def compared(stages: Sequence[Stage] = STAGES) -> list[tuple[str, str]]:
    """(baseline, stage) pairs among the evaluated policies: each compared with the model it came from."""
    evaluated = eval_suites(stages)
    return [(s.baseline, s.name) for s in stages if s.name in evaluated and s.baseline in evaluated]


# The eval suites on every policy that declares some; it reruns when one of them is newer than its results.
STAGES.insert(-1, Stage(EVALS, tuple(eval_suites(STAGES)), "lab.pipeline:evals_stage", "evals", EvalSettings,
                        refresh=True, gpu_check=("evals.limit=64",)))


def by_name(stages: Sequence[Stage] = STAGES) -> dict[str, Stage]:
    return {s.name: s for s in stages}
