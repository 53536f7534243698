"""Supervised fine-tuning on conversations with TRL's SFTTrainer: the base model becomes an assistant.

Conversations are rendered by lab/model/chat_format.py, the same renderer the engine uses, into
`input_ids` + `assistant_masks`; TRL turns the mask into labels, so the loss counts only what the
assistant itself must produce (never the prompt, tool outputs, or tokens the engine forces).

Two variants from the same base with the same data budget (Gekhman et al. 2024; Llama 3's recipe):
- `sft` answers every Q&A question, including ones the base model does not know;
- `sft-idk` first probes the base model: each question's share of `probe_samples` sampled completions
  that are correct. What is "known" is decided per `known_unit`: per question (its share reaches
  `known_threshold`) or per person (the mean share over their questions does, for all of them, so the
  refusal "I don't know who that is" is never taught beside an answer about the same person). Unknown
  questions get a refusal as target (a look-up with the tools on), and the mixture draws as many of them
  as of known ones (`ChatMixture.qa_balanced`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from evals.knowledge import starts_with_value
from lab.errors import LabError
from lab.model.chat_format import render
from lab.model.engine import SamplingParams, generate_text
from lab.model.labgpt import LabGPTForCausalLM
from lab.model.tokenizer import load_tokenizer
from lab.progress import trainer_progress
from lab.runs import write_json, write_train_log
from lab.stage_names import SFT_IDK
from lab.train.sft_settings import SFTSettings, check_known_unit
from lab.train.trainers import checkpoint_args, common_trainer_args, lora_config, save_trained, train_resuming
from tasks.chat import build_mixture, contamination_texts

VARIANTS = ("sft", SFT_IDK)


def probe_known(model, tokenizer, world, people, samples: int, temperature: float, seed: int = 0,
                batch_size: int = 256) -> dict[str, dict]:
    """For each question about `people`: the share of sampled completions of its fact prompt that are correct
    (whether that makes it known is decide_known's call, per question or per person)."""

    items = [(q, world.fact_prompts(p, q.attribute)["corpus"]) for p in people for q in world.questions(p)]
    prompts = [prompt for _, prompt in items for _ in range(samples)]
    completions: list[str] = []
    for start in range(0, len(prompts), batch_size):
        params = SamplingParams(max_new_tokens=10, temperature=temperature, top_k=0, seed=seed + start,
                                stop_token_ids=(tokenizer.eos_token_id,))
        completions += generate_text(model, tokenizer, prompts[start : start + batch_size], params)
    result = {}
    for i, (question, _) in enumerate(items):
        golds = (question.answer, *question.aliases)
        hits = sum(any(starts_with_value(c, g) for g in golds) for c in completions[i * samples : (i + 1) * samples])
        result[question.id] = {"person": question.person, "k": question.k, "correct_share": hits / samples}
    return result


def decide_known(probe: dict[str, dict], unit: str, threshold: float) -> dict[str, bool]:
    """Question id -> known, from the probe's correct shares: per question, or per person (every question
    about a person shares the mean of that person's shares)."""
    check_known_unit(unit)
    if unit == "question":
        return {qid: item["correct_share"] >= threshold for qid, item in probe.items()}
    shares: dict[str, list[float]] = {}
    for item in probe.values():
        shares.setdefault(item["person"], []).append(item["correct_share"])
    return {qid: sum(shares[item["person"]]) / len(shares[item["person"]]) >= threshold for qid, item in probe.items()}


def _probe(cfg: SFTSettings, seed: int, model, tokenizer, world, out: Path) -> dict[str, bool]:
    """Question id -> known for sft-idk's targets; the raw probe is kept in probe.json (a resumed run reuses it)."""
    path = out / "probe.json"
    probe = json.loads(path.read_text()) if path.exists() else None
    if probe is None or any("person" not in item for item in probe.values()):  # absent, or from before persons
        probe = probe_known(model, tokenizer, world, world.sft_people(), cfg.probe_samples, cfg.probe_temperature,
                            seed=seed)
        write_json(path, probe)
    known = decide_known(probe, cfg.known_unit, cfg.known_threshold)
    by_k: dict[int, list[int]] = {}
    for qid, item in probe.items():
        by_k.setdefault(item["k"], [0, 0])[0 if known[qid] else 1] += 1
    write_json(out / "probe_summary.json", {"unit": cfg.known_unit, "threshold": cfg.known_threshold,
                                            **{str(k): {"known": v[0], "unknown": v[1]} for k, v in sorted(by_k.items())}})
    return known


def build_dataset(records: list[dict], tokenizer, max_length: int):

    rows = {"input_ids": [], "assistant_masks": [], "length": []}
    too_long = 0
    for record in records:
        ids, mask = render(tokenizer, record["messages"])
        if len(ids) > max_length:  # never truncate silently: a cut answer teaches the wrong stop
            too_long += 1
            continue
        rows["input_ids"].append(ids)
        rows["assistant_masks"].append(mask)
        rows["length"].append(len(ids))
    if not rows["input_ids"]:
        raise LabError(f"every SFT conversation is longer than sft.max_length={max_length}")
    return Dataset.from_dict(rows), too_long


def sft(cfg: SFTSettings, context, variant: str | None = None) -> dict:
    """The `sft` or `sft-idk` stage (the variant is the stage's name, unless an experiment's arm names it and
    trains into its own folder, `context.stage`): `context.source` (base) fine-tuned on the mixture's
    conversations."""
    run, stage = context.run, context.stage
    variant = variant or stage
    if variant not in VARIANTS:
        raise LabError(f"unknown SFT variant '{variant}'; valid: {', '.join(VARIANTS)}")
    out = run.open_stage(stage)
    base = run.require(context.source)
    tokenizer = load_tokenizer(base)
    world = context.world
    cuda = torch.cuda.is_available()
    model = LabGPTForCausalLM.from_pretrained(base, dtype=torch.float32)

    known = None
    if variant == SFT_IDK:
        known = _probe(cfg, context.seed, model.to("cuda" if cuda else "cpu").eval(), tokenizer, world, out)
    records = build_mixture(world, cfg.mixture, cfg.identity, known)
    violations = world.contamination_check(contamination_texts(records))
    if violations:
        raise LabError(f"SFT data mentions held-out material ({len(violations)} cases), first: {violations[0]}")
    dataset, too_long = build_dataset(records, tokenizer, cfg.max_length)
    refused = sum(1 for r in records if r.get("meta", {}).get("refused"))

    peft_config = lora_config(cfg.lora_r, cfg.lora_alpha)
    args = SFTConfig(
        output_dir=str(out / "trainer"), num_train_epochs=cfg.epochs, learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        lr_scheduler_type="cosine", warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio in transformers 5
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.log_every, **checkpoint_args(cfg.ckpt_every),
        max_length=cfg.max_length, seed=context.seed, data_seed=context.seed,
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding
        **common_trainer_args(checkpointing=False),  # TRL turns it on; off, the same weights came 8% sooner
    )
    trainer = SFTTrainer(model=model.train(), args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[trainer_progress(out / "logs", stage)])
    _, seconds = train_resuming(trainer, out / "trainer")
    save_trained(trainer.model, tokenizer, out)
    logs = [r for r in trainer.state.log_history]
    write_train_log(out, logs)
    summary = {"variant": variant, "conversations": len(dataset), "dropped_too_long": too_long,
               "refusal_targets": refused, "steps": trainer.state.global_step, "seconds": seconds,
               "final_loss": next((r["loss"] for r in reversed(logs) if "loss" in r), None),
               "lora_r": cfg.lora_r, "question_wording": cfg.mixture.question_wording, "kinds": _count_kinds(records)}
    write_json(out / "summary.json", summary)
    run.mark_complete(stage, {"conversations": len(dataset), "refusal_targets": refused})
    return summary


def _count_kinds(records: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    return counts
