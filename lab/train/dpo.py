"""DPO on the reward model's own comparisons: RLHF's goal without a reward model or sampling.

Direct Preference Optimization (Rafailov et al. 2023) fits the policy to the same chosen/rejected pairs
the `rm` stage trained its reward model on, through TRL's DPOTrainer, from sft-idk with sft-idk as the
frozen reference. The comparison with RLHF is then on equal data: same prompts, same labels, and the
same gold judge (the `profile` eval suite) to score both.

Prompts are passed as our chat-format text (lab/model/chat_format.render, checked to round-trip through the
tokenizer), answers as text, and the tokenizer's eos is `<|im_end|>` while training, so TRL appends
exactly the token that ends an assistant turn.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from trl import DPOConfig, DPOTrainer

from lab.errors import LabError
from lab.model.chat_format import render
from lab.model.labgpt import LabGPTForCausalLM
from lab.model.tokenizer import decode_ids, load_tokenizer
from lab.progress import trainer_progress
from lab.runs import write_json, write_train_log
from lab.stage_names import RM
from lab.train.memory import training_memory
from lab.train.rl_settings import DPOSettings
from lab.train.trainers import checkpoint_args, common_trainer_args, save_trained, train_resuming
from rewards.preferences import load_preferences


def _as_text(tokenizer, data):
    """Conversational pairs -> (prompt text in our chat format, answer texts), checked to round-trip."""

    def convert(row):
        ids, _ = render(tokenizer, row["prompt"], add_generation_prompt=True)
        return {"prompt": decode_ids(tokenizer, ids), "chosen": row["chosen"][-1]["content"],
                "rejected": row["rejected"][-1]["content"]}

    out = data.map(convert, remove_columns=[c for c in data.column_names if c not in ("prompt", "chosen", "rejected")])
    first = out[0]["prompt"]
    if tokenizer(first, add_special_tokens=False)["input_ids"] != render(tokenizer, data[0]["prompt"], True)[0]:
        raise LabError(f"the tokenizer does not round-trip the chat format for prompt {first!r}")
    return out


def dpo(settings: DPOSettings, context, preferences: str = RM) -> dict:
    """DPO of `context.source` on the `preferences` stage's comparisons into `context.stage`."""
    run, source, out_stage = context.run, context.source, context.stage
    src = run.require(source)
    data = load_preferences(run.require(preferences) / "preferences")
    out = run.open_stage(out_stage)
    tokenizer = load_tokenizer(src)
    train = _as_text(tokenizer, data["train"])
    training_tokenizer = load_tokenizer(src)
    training_tokenizer.eos_token = "<|im_end|>"  # what TRL appends to every answer: the end of the turn
    model = LabGPTForCausalLM.from_pretrained(src, dtype=torch.float32)
    args = DPOConfig(
        output_dir=str(out / "trainer"), num_train_epochs=settings.epochs, learning_rate=settings.lr,
        per_device_train_batch_size=settings.batch_size, beta=settings.beta, loss_type=[settings.loss_type],
        max_length=settings.max_length, lr_scheduler_type="cosine", warmup_steps=0.05,
        logging_steps=settings.log_every, **checkpoint_args(settings.ckpt_every),
        seed=settings.seed, data_seed=settings.seed, **common_trainer_args(checkpointing=False),
    )
    trainer = DPOTrainer(model=model.train(), args=args, train_dataset=train, processing_class=training_tokenizer,
                         callbacks=[trainer_progress(out / "logs", out_stage)])
    last, seconds = train_resuming(trainer, out / "trainer")
    save_trained(trainer.model, tokenizer, out)  # the original tokenizer, eos included
    logs = [dict(r) for r in trainer.state.log_history]
    write_train_log(out, logs)
    summary = {"source": source, "pairs": len(train), "steps": trainer.state.global_step,
               "seconds": seconds, "resumed_from": last,
               "final_loss": next((r["loss"] for r in reversed(logs) if "loss" in r), None),
               "final_reward_accuracy": next((r["rewards/accuracies"] for r in reversed(logs)
                                              if "rewards/accuracies" in r), None),
               "completions": 0, "memory": training_memory(trainer), "settings": asdict(settings)}
    write_json(out / "summary.json", summary)
    run.mark_complete(out_stage, {"pairs": len(train), "steps": summary["steps"]})
    return summary
