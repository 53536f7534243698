"""The TRL policy-gradient core shared by RL on math (lab/train/rl_math.py) and RLHF (lab/train/rlhf.py).

load_policy readies a causal-LM stage for TRL's generation (the engine runs TRL's `generate` calls), the
checks refuse bad settings and prompts before anything is written, and train_policy runs TRL's GRPO or
RLOO trainer (lab/train/rl_algorithms.py says which) with resume, snapshots and logs. Only the prompts, the
rewards and the summary differ between the stages that use it.

Prompts are our chat format (lab/model/chat_format.render, user turn = the question) passed as text; we check
that TRL's tokenization of that text gives exactly render()'s ids, and make `<|im_end|>` an eos so a
completion ends where the engine would stop it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import trl
from transformers import TrainerCallback

from lab.errors import LabError
from lab.model.chat_format import answer_stops
from lab.model.hf_generate import use_engine
from lab.model.labgpt import LabGPTForCausalLM
from lab.model.tokenizer import load_tokenizer
from lab.runs import atomic_dir, write_train_log
from lab.train.rl_algorithms import TRL_ONLINE, get_algorithm
from lab.train.rl_settings import RLHFSettings, RLSettings
from lab.train.trainers import checkpoint_args, common_trainer_args, lora_config, save_trained, train_resuming


def load_policy(src):
    """(model, tokenizer) of a causal-LM stage, made ready for TRL generation (the engine runs its `generate`)."""
    tokenizer = load_tokenizer(src)
    model = LabGPTForCausalLM.from_pretrained(src, dtype=torch.float32)
    # TRL stops a completion at every eos the generation config lists: the chat turn ends at <|im_end|>
    model.generation_config.eos_token_id = list(answer_stops(tokenizer))
    return use_engine(model), tokenizer


ROUND_TRIP_FAULT = "the question does not round-trip the chat format"


def prompt_faults(tokenizer, model, prompts: list[tuple[str, list[int]]], max_completion_length: int) -> list:
    """Why each (text, ids) prompt cannot be trained on, or None. TRL tokenizes text prompts itself, so they must
    become exactly the ids SFT trained on and the engine uses, and leave room for the completion in the model's
    context."""
    trl_ids = tokenizer(text=[text for text, _ in prompts])["input_ids"] if prompts else []
    context, faults = model.config.max_position_embeddings, []
    for (_, ids), got in zip(prompts, trl_ids):
        if ids != got:
            faults.append(ROUND_TRIP_FAULT)
        elif len(ids) + max_completion_length > context:
            faults.append(f"question too long: {len(ids)} prompt tokens + rl.max_completion_length "
                          f"{max_completion_length} exceed the model's context {context}")
        else:
            faults.append(None)
    return faults


def check_prompts(tokenizer, model, prompts: list[tuple[str, list[int]]], max_completion_length: int) -> None:
    """prompt_faults as one error: every prompt must round-trip, and the longest leave room for the completion."""
    faults = prompt_faults(tokenizer, model, prompts, max_completion_length)
    drift = next((text for (text, _), fault in zip(prompts, faults) if fault == ROUND_TRIP_FAULT), None)
    if drift is not None:
        raise LabError(f"the tokenizer does not round-trip the chat format for prompt {drift!r}")
    if any(faults):
        longest = max(len(ids) for _, ids in prompts)
        raise LabError(f"prompts ({longest} tokens) + rl.max_completion_length ({max_completion_length}) "
                       f"exceed the model's context ({model.config.max_position_embeddings})")


def check_rl_settings(settings, n_rewards: int) -> None:
    """The refusals every policy-gradient stage shares, before anything is written."""
    get_algorithm(settings.algo, TRL_ONLINE)
    if len(settings.reward_weights) != n_rewards:
        raise LabError(f"rl has {n_rewards} rewards ({', '.join(settings.rewards)}) but "
                       f"{len(settings.reward_weights)} reward_weights")
    if settings.batch_size % settings.num_generations:
        raise LabError(f"rl.batch_size ({settings.batch_size}) must be a multiple of rl.num_generations "
                       f"({settings.num_generations}): each prompt's samples form one group")
    if settings.use_vllm:
        try:  # optional and GPU-only, so imported only to check it is there when asked for
            import vllm  # noqa: F401
        except ImportError:
            raise LabError("rl.use_vllm=true needs the vllm package (GPU only); install it or set "
                           "rl.use_vllm=false") from None


def save_snapshot(model, out: Path, step: int) -> None:
    """The policy's weights at `step` in out/snapshots/step-N (LoRA merged into a copy): one point of the
    run's path away from its start, for experiments to evaluate afterwards (lab/experiments/rlhf_methods.py)."""
    if hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model).merge_and_unload()
    with atomic_dir(Path(out) / "snapshots" / f"step-{step}") as tmp:
        model.save_pretrained(tmp)


@dataclass
class TrainedPolicy:
    trainer: object
    model: object  # LoRA merged in, use_cache on, saved in the stage folder
    logs: list[dict]  # logs/train.jsonl as written
    seconds: float
    resumed_from: str | None  # the checkpoint this session started from
    steps_this_session: int  # proves a rerun resumed, not restarted


def train_policy(out, model, tokenizer, settings: RLSettings | RLHFSettings, dataset, reward_funcs, callbacks=(),
                 write_logs=None, snapshot_every: int = 0) -> TrainedPolicy:
    """The TRL core shared by RL on math and RLHF: config, trainer, resume, train, save, logs; the policy is
    kept every `snapshot_every` steps (snapshots/step-N, 0 = never: RLHF measures its KL path so).

    `model` comes from load_policy. The caller has checked its settings and prompts and owns the summary
    and COMPLETE."""
    write_logs = write_logs or write_plain_log
    peft_config = lora_config(settings.lora_r, settings.lora_alpha)
    algorithm = get_algorithm(settings.algo, TRL_ONLINE)
    rloo = algorithm.trainer == "rloo"
    Config, Trainer = (trl.RLOOConfig, trl.RLOOTrainer) if rloo else (trl.GRPOConfig, trl.GRPOTrainer)
    args = Config(**_trainer_args(settings, out), **algorithm.config)
    counter = {"steps": 0}


    class Core(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            counter["steps"] += 1
            if snapshot_every and state.global_step % snapshot_every == 0:
                save_snapshot(model, out, state.global_step)

        def on_log(self, args, state, control, **kwargs):
            write_logs(out, state.log_history)  # rewritten whole each time: a live view of a long run

    trainer = Trainer(model=model.train(), reward_funcs=reward_funcs, args=args, train_dataset=dataset,
                      processing_class=tokenizer, peft_config=peft_config,
                      callbacks=[Core(), *callbacks, *_tensorboard(out)])
    last, seconds = train_resuming(trainer, out / "trainer")
    trained = save_trained(trainer.model, tokenizer, out)
    logs = write_logs(out, trainer.state.log_history)
    return TrainedPolicy(trainer, trained, logs, seconds, last, counter["steps"])


def write_plain_log(out, history: list[dict]) -> list[dict]:
    """logs/train.jsonl from the trainer's log history (restored from the checkpoint on resume, so complete)."""
    rows = [dict(r) for r in history]
    write_train_log(out, rows)
    return rows


def _tensorboard(out) -> list:
    try:  # optional: imported where it is used, so a machine without it trains all the same
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        return [TensorBoardCallback(tb_writer=SummaryWriter(str(out / "logs" / "tensorboard")))]
    except ImportError:  # TensorBoard is a nicety; logs/train.jsonl is the record
        return []


def _trainer_args(settings, out) -> dict:
    """The config fields GRPOConfig and RLOOConfig share (settings: RLSettings or RLHFSettings)."""
    return dict(
        output_dir=str(out / "trainer"), max_steps=settings.steps, learning_rate=settings.lr,
        lr_scheduler_type="constant_with_warmup", warmup_steps=min(10, settings.steps // 10),
        per_device_train_batch_size=settings.batch_size, num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length, temperature=settings.temperature,
        beta=settings.beta, reward_weights=list(settings.reward_weights),
        logging_steps=settings.log_every, **checkpoint_args(settings.ckpt_every),
        seed=settings.seed, data_seed=settings.seed,
        **common_trainer_args(checkpointing=False),  # TRL turns it on by default; a small model only gets slower
        use_vllm=settings.use_vllm, **({"vllm_mode": "colocate"} if settings.use_vllm else {}),
    )


def log_ends(logs: list[dict], key: str) -> tuple[float | None, float | None]:
    """The mean of `key` over the first and the last few logged steps (single steps are a few prompts)."""
    values = [r[key] for r in logs if key in r]
    if not values:
        return None, None
    window = max(1, min(10, len(values) // 4))
    return sum(values[:window]) / window, sum(values[-window:]) / window
