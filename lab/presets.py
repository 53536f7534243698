"""Presets: every setting of a run, as nested dataclasses, overridable from the CLI with `--set a.b=v`.

`tiny` fits 2 CPU cores (the whole pipeline in about 20 minutes); `gpu` fits one H100-class GPU (each
stage under 8 minutes). Change a preset here, or override single fields on the command line.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from lab.dpo import DPOSettings
from lab.errors import LabError
from lab.goodhart import GoodhartSettings
from lab.math_rewards import MathRewardsSettings
from lab.math_sft import MathSFTSettings
from lab.overoptimization import OveroptimizationSettings
from lab.ppo import PPOSettings
from lab.rl import RLSettings
from lab.rlhf import RLHFSettings
from lab.rlhf_methods import RLHFMethodsSettings
from rewards.reward_model import RewardModelSettings
from tasks.chat import ChatMixture
from tasks.corpus import CorpusConfig
from tasks.identity import Identity
from tasks.world import WorldConfig


@dataclass
class DataSettings:
    # "world": the generated world corpus; "files": the user's own text (corpus_paths), e.g. `lab data` output.
    source: str = "world"
    corpus_paths: tuple[str, ...] = ()
    world: WorldConfig = field(default_factory=WorldConfig)
    # math and spelling walkthroughs join the world text (issue: the pretraining mix)
    corpus: CorpusConfig = field(default_factory=lambda: CorpusConfig(extra_sources={"math": 300, "spelling": 300}))


@dataclass
class TokenizerSettings:
    vocab_size: int = 2048
    min_frequency: int = 2


@dataclass
class ModelShape:
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 0  # 0 = 8/3 x hidden_size (SwiGLU default)
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0


@dataclass
class PretrainSettings:
    seq_len: int = 128
    batch_size: int = 16  # sequences per micro-batch (per process under DDP)
    grad_accum: int = 1
    max_steps: int = 2000
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    schedule: str = "cosine"  # cosine | wsd (warmup-stable-decay, decay over the last 20%)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 8
    ckpt_every: int = 250
    log_every: int = 25
    dtype: str = "auto"  # auto = bfloat16 autocast on CUDA, float32 on CPU
    compile: bool = False
    device: str = "auto"
    peak_tflops: float = 0.0  # for MFU; 0 = look up the GPU (H100/H200 bf16 dense), none on CPU
    gradient_checkpointing: bool = False
    parallel: str = "ddp"  # under torchrun: ddp (a whole model per rank) | fsdp (sharded, for models that don't fit)


@dataclass
class SFTSettings:
    epochs: float = 2.0
    lr: float = 1e-3
    batch_size: int = 32
    grad_accum: int = 1
    max_length: int = 384
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    log_every: int = 10
    ckpt_every: int = 100
    lora_r: int = 0  # 0 = full fine-tune; > 0 = LoRA of this rank (peft), merged into the saved model
    lora_alpha: int = 16
    # knowledge probing for sft-idk: a question is known if >= known_threshold of probe_samples are correct
    probe_samples: int = 8
    probe_temperature: float = 0.7
    known_threshold: float = 0.5
    mixture: ChatMixture = field(default_factory=lambda: ChatMixture(
        qa=1500, math=300, spelling=300, tool_use=300, identity=150, context=200))
    identity: Identity = field(default_factory=Identity)


@dataclass
class SampleSettings:
    prompts: tuple[str, ...] = ("Mira", "In 1988,", "The university of")
    max_new_tokens: int = 48
    temperature: float = 0.8
    top_k: int = 50


@dataclass
class ScalingSettings:
    # `lab experiment scaling`: hidden size x layers per model (heads of 32 dimensions), steps per model
    sizes: str = "32x1,64x2,96x3,128x4,192x4"  # ~0.1M to ~2.2M parameters with the 2k vocabulary
    steps: int = 600  # the same steps and batches for every size: fixed data


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
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    # tiny: every differing sample pair is used (about 2.7x less sampling than disjoint pairs)
    rm: RewardModelSettings = field(default_factory=lambda: RewardModelSettings(pairs=400, disjoint_pairs=False))
    math_sft: MathSFTSettings = field(default_factory=MathSFTSettings)  # sft-math: practice before rl-math
    # the rl-math stage; self_check (weight 0) is only tracked: does checking one's work emerge?
    rl: RLSettings = field(default_factory=lambda: RLSettings(rewards=("correctness", "format", "self_check"),
                                                              reward_weights=(1.0, 0.1, 0.0)))
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
    # ~120M parameters (d=768, 12 layers, GQA 12/4), 1024-token context, 48k vocabulary.
    return Preset(
        name="gpu",
        data=DataSettings(world=WorldConfig(people_per_exposure=400), corpus=CorpusConfig(
            narratives=20000, heldout_docs=1000, extra_sources={"math": 20000, "spelling": 20000})),
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


def from_settings(cls, settings: dict):
    """Rebuild a settings dataclass from the JSON a run recorded (lists become tuples, sections recurse).

    Fields added since the run was written keep their defaults, as Run.create_or_open allows."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in settings:
            continue
        value, hint = settings[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = from_settings(hint, value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def run_preset(run_root: Path) -> Preset | None:
    """The preset a run directory was created with, or None outside a run."""
    from lab.runs import read_json

    config = Path(run_root) / "config.json"
    return from_settings(Preset, read_json(config)["settings"]) if config.exists() else None


def field_paths(obj, prefix: str = "") -> list[str]:
    paths = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            paths += field_paths(value, f"{prefix}{f.name}.")
        else:
            paths.append(f"{prefix}{f.name}")
    return paths


def apply_override(preset: Preset, item: str) -> None:
    """Apply one `section.field=value` override, converting the value to the field's type."""
    if "=" not in item:
        raise LabError(f"override '{item}' is not of the form key=value (e.g. pretrain.lr=1e-3)")
    key, raw = item.split("=", 1)
    target, parts = preset, key.strip().split(".")
    for i, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(target)}
        if part not in names:
            where = ".".join(parts[:i]) or "the preset"
            raise LabError(f"unknown setting '{key}': {where} has {', '.join(names)}")
        if i < len(parts) - 1:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise LabError(f"unknown setting '{key}': '{part}' is a value, not a section")
    current = getattr(target, parts[-1])
    if dataclasses.is_dataclass(current):
        raise LabError(f"'{key}' is a section; set one of its fields, e.g. {field_paths(current, key + '.')[0]}=...")
    hints = typing.get_type_hints(type(target))
    setattr(target, parts[-1], _convert(raw.strip(), hints[parts[-1]], key))


def _convert(raw: str, hint, key: str):
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint in (int, float, str):
            return hint(raw)
        if origin is tuple:
            (item_type, *_) = typing.get_args(hint)
            items = [s.strip() for s in raw.strip("()[] ").split(",") if s.strip()]
            return tuple(_convert(s, item_type, key) for s in items)
        if origin is dict:
            return dict((k.strip(), int(v)) for k, v in (pair.split(":") for pair in raw.split(",") if pair))
    except ValueError:
        pass
    raise LabError(f"cannot read '{raw}' as {getattr(hint, '__name__', hint)} for setting '{key}'")
