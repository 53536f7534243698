"""Math practice: supervised fine-tuning on worked solutions of one kind of problem (the `sft-math` stage).

RL needs partial competence to reinforce (a group of samples that are all wrong has no advantage), and the
tiny sft-idk has almost none: its SFT spreads 300 math problems over every task and band, and solves
~0.5% of two-digit additions and subtractions. Worked solutions of that one procedure, each seen once at
SFT's learning rate, bring it to partial competence, which is where rl-math starts. How much practice
decides whether RL has anything to reinforce: from one sft-idk (seed 0 at 34be2e2), 3,000 problems left
sampled answers right 3.5% of the time (RL then gained nothing), 6,000 reached 32% (and RL +0.32 greedy on
validation problems); other seeds' 3,000 reached 11-15% (docs/robust-claims-notes.md).
Practice on one task alone makes the 1M model forget the rest (measured on the hallucination suite:
without replay, the practised model after RL answered 0.01 of questions about people correctly, against
sft-idk's 0.27, and no longer refused; with 1,000 replayed conversations sft-math keeps 0.10 and refuses
more), so a share of sft-idk's own SFT conversations is replayed among the problems.
Half the worked solutions (check_share) check their result with the inverse operation, and 0.3 of those
(slip_share) first make a slip in one column that the check catches, then redo the columns (tasks/math_checks.py):
a check that can fail, so that RL has a behaviour to amplify if checking pays (rl-math reports verified checks
before and after, evals/math_checks.py).
The same trainer is the math-rewards grid's control arm (more SFT at RL's compute).
"""

from __future__ import annotations

import random
from dataclasses import asdict

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from lab.errors import LabError
from lab.model.chat_format import encode_assistant_content
from lab.model.labgpt import LabGPTForCausalLM
from lab.model.tokenizer import decode_ids, load_tokenizer
from lab.progress import trainer_progress
from lab.runs import Run, read_json, write_json
from lab.train.sft import build_dataset, decide_known
from lab.train.sft_settings import MathSFTSettings, SFTSettings
from lab.train.trainers import checkpoint_args, common_trainer_args, save_trained, train_resuming
from tasks.answer_forms import FORMS, ask, reply
from tasks.chat import build_mixture
from tasks.identity import system_message
from tasks.math import MathConfig, generate
from tasks.math_checks import REDO, slip_line


def solution_records(problems, forms: tuple[str, ...] = ("worked",)) -> list[dict]:
    """Chat records of problems answered in each of `forms` (tasks/answer_forms.py): the worked solution,
    and with "direct" the same problem asked for a bare answer."""
    unknown = [f for f in forms if f not in FORMS]
    if unknown or not forms:
        raise LabError(f"unknown answer form(s) {unknown or '(none given)'}; valid forms are {', '.join(FORMS)}")
    return [{"messages": [{"role": "user", "content": ask(p.question, form)},
                          {"role": "assistant", "content": reply(p.solution, p.answer, form)}]}
            for p in problems for form in forms]


def with_system_messages(records: list[dict], sft: SFTSettings, seed: int) -> list[dict]:
    """The identity's system message on the share of records SFT gives it (sft.mixture.system_prompt_share).
    The eval suites always send it: practice without it measured worse there than on its own held-out problems
    (dev world: 0.07 two-digit sums worked in the math suite against 0.21 in rl-math's held-out check)."""
    rng, system = random.Random(f"system|{seed}"), system_message(sft.identity)
    share = sft.mixture.system_prompt_share
    return [{**r, "messages": [{"role": "system", "content": system}] + r["messages"]} if rng.random() < share else r
            for r in records]


def replay_records(context, source: str, n: int, seed: int) -> list[dict]:
    """`n` conversations of the SFT mixture `source` was trained on (sft-idk's refusals where its probe
    found the base model ignorant), drawn with `seed`."""
    if n <= 0:
        return []
    probe, sft = context.run.stage_dir(source) / "probe.json", context.sft
    # decided as sft-idk decided it (per person by default), not by the probe's per-question field
    known = decide_known(read_json(probe), sft.known_unit, sft.known_threshold) if probe.exists() else None
    records = build_mixture(context.world, sft.mixture, sft.identity, known)
    return random.Random(seed).sample(records, min(n, len(records)))


def answer_tokens(dataset) -> float:
    """Mean trained (assistant) tokens per conversation of a build_dataset dataset."""
    return sum(sum(m) for m in dataset["assistant_masks"]) / len(dataset)


def hide_slips(dataset, tokenizer):
    """The dataset with each planted slip's line out of the loss (tasks/math_checks.slip_line): the model reads the
    slip and learns to check, catch and redo it, but is never trained to make it. Trained on, the slips were
    imitated (dev world: off-by-one column sums in 47% of greedy column lines, against 15% without slips; held-out
    accuracy 0.15 against 0.70). Returns the dataset and how many slips it hid."""
    rows, hidden = dataset.to_dict(), 0
    for ids, mask in zip(rows["input_ids"], rows["assistant_masks"]):
        if 1 not in mask:
            continue
        start = mask.index(1)
        body = decode_ids(tokenizer, ids[start:start + sum(mask)])
        line = slip_line(body.split("<|")[0]) if REDO in body else None
        if line is None:
            continue
        cut = body.index(line)
        before, through = (encode_assistant_content(tokenizer, body[:k]) for k in (cut, cut + len(line)))
        if ids[start:start + len(through)] != through or through[:len(before)] != before:
            raise LabError("a slip line does not tokenize on its own: cannot hide it from the loss")
        mask[start + len(before):start + len(through)] = [0] * (len(through) - len(before))
        hidden += 1
    return Dataset.from_dict(rows), hidden


def train_on_records(run: Run, dataset, out_stage: str, steps: int, batch_size: int, lr: float, seed: int,
                     source: str, log_every: int, ckpt_every: int, max_length: int) -> dict:
    """SFT of `source` on a build_dataset dataset (loss on the answers only) into `out_stage`: constant
    learning rate after 10% warm-up (at most 10 steps), as the RL stages. Resumes from its last checkpoint.
    Returns what it trained: steps, tokens, seconds, the model; the caller owns COMPLETE."""
    src = run.require(source)
    out = run.open_stage(out_stage)
    tokenizer = load_tokenizer(src)
    model = LabGPTForCausalLM.from_pretrained(src, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out / "trainer"), max_steps=steps, learning_rate=lr,
        lr_scheduler_type="constant_with_warmup", warmup_steps=min(10, steps // 10),
        per_device_train_batch_size=batch_size, logging_steps=log_every, **checkpoint_args(ckpt_every),
        max_length=max_length, seed=seed, data_seed=seed,
        **common_trainer_args(checkpointing=False),  # TRL turns it on; off, the same weights came 8% sooner
    )
    trainer = SFTTrainer(model=model.train(), args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[trainer_progress(out / "logs", out_stage)])
    _, seconds = train_resuming(trainer, out / "trainer")
    trained = save_trained(trainer.model, tokenizer, out)
    return {"model": trained, "steps": trainer.state.global_step, "batch_size": batch_size,
            "tokens_trained": round(steps * batch_size * answer_tokens(dataset)), "seconds": seconds}


def math_sft(settings: MathSFTSettings, context) -> dict:
    """The sft-math stage: `settings.problems` training problems of the given tasks and bands, each seen
    once, with `settings.replay` of the source's SFT conversations mixed in."""
    run, source, out_stage, max_length = context.run, context.source, context.stage, context.sft.max_length
    tokenizer = load_tokenizer(run.require(source))
    problems = generate(MathConfig(seed=settings.seed, tasks=tuple(settings.tasks), bands=tuple(settings.bands),
                                   check_share=settings.check_share, slip_share=settings.slip_share),
                        settings.problems, split="train")
    records = (with_system_messages(solution_records(problems, tuple(settings.forms)), context.sft, settings.seed)
               + replay_records(context, source, settings.replay, settings.seed))
    dataset, too_long = build_dataset(records, tokenizer, max_length)
    dataset, hidden = hide_slips(dataset, tokenizer)
    steps = max(1, len(records) // settings.batch_size)
    done = train_on_records(run, dataset, out_stage, steps, settings.batch_size, settings.lr,
                            settings.seed, source, settings.log_every, settings.ckpt_every, max_length)
    summary = {"source": source, "problems": len(problems), "distinct_questions": len({p.question for p in problems}),
               "checked": sum(p.extras["checked"] for p in problems),  # solutions that check their result
               "slipped": sum(p.extras.get("slipped", False) for p in problems),  # of those, a slip caught and redone
               "slips_hidden": hidden,  # slip lines kept out of the loss (hide_slips)
               "replayed": len(records) - len(problems) * len(settings.forms), "dropped_too_long": too_long,
               **{k: v for k, v in done.items() if k != "model"}, "settings": asdict(settings)}
    write_json(run.stage_dir(out_stage) / "summary.json", summary)
    run.mark_complete(out_stage, {"steps": summary["steps"], "problems": len(problems)})
    return summary
