"""Presets: every setting of a run, as nested dataclasses, overridable from the CLI with `--set a.b=v`.

`tiny` fits 2 CPU cores (the whole pipeline in about 20 minutes); `gpu` is sized for one H100-class GPU
(only its pretraining has been measured there; scripts/gpu_check.sh is the prepared check of every stage).
Change a preset here, or override single fields on the command line.
"""

from __future__ import annotations

import typing
from dataclasses import field, make_dataclass
from pathlib import Path

from lab.errors import LabError
from lab.experiments.settings import GoodhartSettings, OveroptimizationSettings, ScalingSettings
from lab.model.tokenizer_settings import TokenizerSettings
from lab.runs import read_json
from lab.settings import apply_override, from_settings
from lab.stages import STAGES, StageContext, stage_sections
from lab.train.pretrain_settings import ModelShape, PretrainSettings, SampleSettings
from tasks.corpus import CorpusConfig, DataSettings
from tasks.world import WorldConfig

# The sections every stage may read (through StageContext), then one section a stage's settings (declared in
# lab/stages.py), then the experiments' own.
RUN_SECTIONS = [
    ("name", str, field(default="tiny")),
    ("seed", int, field(default=0)),
    ("model", ModelShape, field(default_factory=ModelShape)),
    ("sample", SampleSettings, field(default_factory=SampleSettings)),  # the base model's first samples
]
EXPERIMENT_SECTIONS = [
    ("overoptimization", OveroptimizationSettings, field(default_factory=OveroptimizationSettings)),
    ("goodhart", GoodhartSettings, field(default_factory=GoodhartSettings)),  # RM quality vs over-optimization
]


def preset_type(stages, name: str = "Preset") -> type:
    """The settings dataclass of a pipeline of `stages`: the run's own sections, one a stage, one an experiment."""
    return make_dataclass(name, RUN_SECTIONS + stage_sections(stages) + EXPERIMENT_SECTIONS)


Preset = preset_type(STAGES)


def stage_context(run, preset) -> StageContext:
    """What every stage of this run is given besides its own settings."""
    # a pipeline without the data or sft stages (a toy one) has no such sections: its context holds None
    return StageContext(run=run, seed=preset.seed, data=getattr(preset, "data", None), model=preset.model,
                        sample=preset.sample, sft=getattr(preset, "sft", None))


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
            stream_share=0.0,  # its corpus has no stream (data.corpus.stream_sources): measured on tiny only
            lr=1.5e-3,
            warmup_steps=100,
            eval_every=200,
            ckpt_every=200,
            log_every=10,
            compile=True,
        ),
        scaling=ScalingSettings(sizes="128x2,256x4,384x6,512x8,768x12", steps=600, warmup_steps=60),
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
    config = Path(run_root) / "config.json"
    return from_settings(Preset, read_json(config)["settings"]) if config.exists() else None
