"""Presets: every setting of a run, as nested dataclasses, overridable from the CLI with `--set a.b=v`.

`tiny` fits 2 CPU cores (the whole pipeline in about 20 minutes); `gpu` is sized for one H100-class GPU
(only its pretraining has been measured there; scripts/gpu_check.sh is the prepared check of every stage).
Change a preset here, or override single fields on the command line.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path

from evals.harness import EvalSettings
from evals.reading import ReadingSettings
from lab.errors import LabError
from lab.experiments.goodhart import GoodhartSettings
from lab.experiments.math_rewards import MathRewardsSettings
from lab.experiments.overoptimization import OveroptimizationSettings
from lab.experiments.rlhf_methods import RLHFMethodsSettings
from lab.experiments.scaling import ScalingSettings
from lab.model.tokenizer_settings import TokenizerSettings
from lab.settings import apply_override, from_settings
from lab.train.dpo import DPOSettings
from lab.train.math_practice import MathSFTSettings
from lab.train.ppo.loop import PPOSettings
from lab.train.pretrain_settings import ModelShape, PretrainSettings, SampleSettings
from lab.train.reward_model import RewardModelSettings
from lab.train.rl_math import RLSettings
from lab.train.rlhf import RLHFSettings
from lab.train.sft_settings import SFTSettings
from tasks.corpus import CorpusConfig, DataSettings
from tasks.world import WorldConfig


@dataclass
class Preset:
    name: str = "tiny"
    seed: int = 0
    data: DataSettings = field(default_factory=DataSettings)
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    model: ModelShape = field(default_factory=ModelShape)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    sample: SampleSettings = field(default_factory=SampleSettings)
    evals: EvalSettings = field(default_factory=EvalSettings)  # the evals stage: every suite in full unless cut
    reading: ReadingSettings = field(default_factory=ReadingSettings)  # the knowledge stage's reading probes
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    # tiny: every differing sample pair is used (about 2.7x less sampling than disjoint pairs)
    rm: RewardModelSettings = field(default_factory=lambda: RewardModelSettings(pairs=400, disjoint_pairs=False))
    math_sft: MathSFTSettings = field(default_factory=MathSFTSettings)  # sft-math: practice before rl-math
    # the rl-math stage; self_check and group_solved (weight 0) are only tracked: does checking one's work
    # emerge, and what share of groups holds a correct answer (GRPO's signal)?
    rl: RLSettings = field(default_factory=lambda: RLSettings(
        rewards=("correctness", "format", "self_check", "group_solved"), reward_weights=(1.0, 0.1, 0.0, 0.0)))
    math_rewards: MathRewardsSettings = field(default_factory=MathRewardsSettings)  # the RL-on-math grid's arms
    dpo: DPOSettings = field(default_factory=DPOSettings)
    rlhf: RLHFSettings = field(default_factory=RLHFSettings)  # the rlhf-grpo stage: the learned RM as reward
    ppo: PPOSettings = field(default_factory=PPOSettings)  # the rlhf-ppo stage: same prompts, RM and sample count
    rlhf_methods: RLHFMethodsSettings = field(default_factory=RLHFMethodsSettings)  # PPO/GRPO/RLOO/DPO compared
    overoptimization: OveroptimizationSettings = field(default_factory=OveroptimizationSettings)
    goodhart: GoodhartSettings = field(default_factory=GoodhartSettings)  # RM quality vs over-optimization


def tiny() -> Preset:
    return Preset(name="tiny")


def gpu() -> Preset:
    # 100.7M parameters (d=768, 12 layers, GQA 12/4) at the 32k vocabulary below, 1024-token context
    # (tests/test_gpu_preset.py runs every stage at exactly this shape on CPU). The BPE stops where its corpus runs
    # out of pairs seen twice: on this preset's own corpus that is 26,064 tokens, so its base model has 95.5M.
    return Preset(
        name="gpu",
        data=DataSettings(world=WorldConfig(people_per_exposure=400), corpus=CorpusConfig(
            narratives=20000, heldout_docs=1000, extra_sources={"math": 20000, "spelling": 20000,
                                                                "fresh_people": 40000, "copy_drills": 20000})),
        tokenizer=TokenizerSettings(vocab_size=32768),
        model=ModelShape(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=1024
        ),
        pretrain=PretrainSettings(
            seq_len=1024,
            batch_size=32,
            grad_accum=4,
            max_steps=1200,
            lr=1.5e-3,
            warmup_steps=100,
            eval_every=200,
            ckpt_every=200,
            log_every=10,
            compile=True,
        ),
        scaling=ScalingSettings(sizes="128x2,256x4,384x6,512x8,768x12", steps=600),
    )


PRESETS: dict[str, typing.Callable[[], Preset]] = {"tiny": tiny, "gpu": gpu}


def get_preset(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Preset:
    if name not in PRESETS:
        raise LabError(f"unknown preset '{name}'; valid presets: {', '.join(PRESETS)}")
    preset = PRESETS[name]()
    for item in overrides:
        apply_override(preset, item)
    return preset


def run_preset(run_root: Path) -> Preset | None:
    """The preset a run directory was created with, or None outside a run."""
    from lab.runs import read_json

    config = Path(run_root) / "config.json"
    return from_settings(Preset, read_json(config)["settings"]) if config.exists() else None
