"""RL on verifiable math rewards with TRL: the SFT model practises problems and is paid for right answers.

SFT shows the model worked solutions; RL lets it sample its own and reinforces the ones the verifier
(rewards/verifier.py, through the reward functions in rewards/format.py) accepts. That only works
from partial competence: a group of samples where every answer is wrong (or every one right) has zero
advantage and teaches nothing. So the default task is the one the sft-math stage (lab/train/math_practice.py)
practises to partial competence, two-digit column addition and subtraction (band 2 arithmetic), and rl-math
starts there; the learning rate sits an order below SFT's (calibration notes: 10x the good rate collapsed
the policy). Its held-out questions (~1,200 distinct) are new combinations of the column steps every
training problem uses, so a held-out gain is a gain in carrying out the procedure. Watch held-out accuracy,
not the training reward: where
competence was ~5% (band 1 of every task, when SFT spread 300 problems over all of them) RL raised the
training reward on the few hundred distinct band-1 questions while held-out accuracy did not move.

Algorithms are TRL's GRPOTrainer with its loss variants (grpo, dr_grpo, dapo, bnpo) or RLOOTrainer.
Prompts are our chat format (lab/model/chat_format.render, user turn = the question) passed as text; we check
that TRL's tokenization of that text gives exactly render()'s ids, and make `<|im_end|>` an eos so a
completion ends where the engine would stop it (TRL decodes completions without special tokens for the
rewards). Before and after training, greedy accuracy on a fixed set of held-out problems is measured with
our engine and the same verifier, so arms are comparable.

The TRL core (load_policy, check_rl_settings, check_prompts, train_policy) is shared with RLHF (lab/train/rlhf.py):
only the prompts, the rewards and the summary differ between the two.

Your own problems instead of the generator (`lab rl math RUN --data FILE`, rl_math's `data`): any file
evals/custom.py's load_rows reads (JSONL, TSV/CSV, .json, parquet, a `datasets` folder), one problem a row
with a question and a gold answer field (load_user_problems). A row that cannot be graded honestly is
skipped and listed in summary.json with its line and why: no question, an empty answer, an answer the
verifier cannot read as math ("see above"), a prompt the model's context cannot hold. A seeded share of the
questions is held out (split_user_problems) and replaces the generator's held-out set before and after.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import LabError
from lab.runs import Run, write_json, write_train_log

if TYPE_CHECKING:  # annotations only: rlhf builds on this module, the presets sit above both
    from lab.presets import Preset
    from lab.train.rlhf import RLHFSettings

# Each variant is a set of TRL config fields; rloo is its own trainer.
ALGOS = {
    "grpo": {"loss_type": "grpo", "scale_rewards": "group"},
    "dr_grpo": {"loss_type": "dr_grpo", "scale_rewards": "none"},  # Dr. GRPO: no length or std normalisation
    "dapo": {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True},  # clip-higher
    "bnpo": {"loss_type": "bnpo"},
    "rloo": {},
}
EVAL_SEED = 1234  # the held-out eval set is fixed, whatever the training seed, so arms see the same problems


@dataclass
class RLSettings:
    algo: str = "dr_grpo"  # grpo | dr_grpo | dapo | bnpo | rloo
    # ~3 s a step on 2 free CPU cores with the tiny model. From sft-math's 6,000-problem practice, 60 steps took
    # validation problems 0.36 -> 0.68 greedy; from the weaker 3,000-problem starts 80 gained less than 120
    steps: int = 60
    lr: float = 1e-4  # SFT's is 1e-3; on tiny, 3e-4 and 5e-4 gained no more reward, with 2-4x the KL
    num_generations: int = 8  # samples per prompt: the group the advantage is computed in
    # completions per step (batch_size / num_generations prompts). At 32 (4 groups, about half of them with no
    # correct answer) held-out accuracy fell from some sft-math starts (dev world: 0.21 -> 0.12 greedy, the
    # policy drifting on noise: "7 - 3 = 3"); 64 gained from both dev starts (CIs including 0), 128 gained
    # significantly from the weaker one (0.18 -> 0.28); twice the learning rate instead of a bigger batch
    # collapsed (docs/robust-claims-notes.md)
    batch_size: int = 128
    temperature: float = 0.7  # at 1.0 the tiny model's samples are far worse than its greedy answers
    max_completion_length: int = 128  # band 2 arithmetic solutions are ~75 tokens; cut-off answers earn nothing
    beta: float = 0.01  # KL to the source model; > 0 loads a reference model (LoRA: the adapter is switched off)
    rewards: tuple[str, ...] = ("correctness", "format")
    reward_weights: tuple[float, ...] = (1.0, 0.1)
    lora_r: int = 0  # 0 = full fine-tune
    lora_alpha: int = 16
    # the task sft-math practises to partial competence (tiny: sft-idk 0.5% greedy, sft-math 16%); band 2
    # has ~1,200 distinct held-out questions built from the same column steps: a gain there is skill, not recall
    tasks: tuple[str, ...] = ("arithmetic",)
    bands: tuple[int, ...] = (2,)
    train_problems: int = 2000
    # the solve-rate filter (0 = off): before training, the start answers each training problem this many times
    # at `temperature`, and only problems it got right at least once and wrong at least once are trained on (a
    # group of all-wrong or all-right answers has zero advantage). From a start that solved a fifth of its groups
    # it doubled the groups with signal (0.20 -> 0.48) and the training reward rose, but validation accuracy did
    # not (0.033 -> 0.040: it learnt the 211 problems kept); more practice fixed that start instead. Off by
    # default: the probe costs ~50 s of the pipeline (docs/robust-claims-notes.md)
    solve_probe_samples: int = 0
    eval_problems: int = 300  # distinct held-out questions, graded greedily before and after
    eval_samples: int = 4  # and this many answers each at `temperature` (0 = greedy only): a finer paired measure
    eval_every: int = 0  # also grade the held-out set every this many steps (0 = before and after only)
    log_every: int = 1
    ckpt_every: int = 50
    seed: int = 0
    use_vllm: bool = False  # GPU only: TRL's colocated vLLM generation, when vllm is installed

    def __post_init__(self):
        if self.solve_probe_samples < 0 or self.solve_probe_samples == 1:
            raise LabError(f"rl.solve_probe_samples is {self.solve_probe_samples}: 0 trains on every problem, and "
                           "the filter needs at least 2 answers a problem to find one right and one wrong")


def chat_prompts(tokenizer, questions: list[str]) -> list[tuple[str, list[int]]]:
    """(text, ids) of each question as a user turn in our chat format, ready for the assistant's answer."""
    from lab.model.chat_format import render
    from lab.model.tokenizer import decode_ids

    out = []
    for q in questions:
        ids, _ = render(tokenizer, [{"role": "user", "content": q}], add_generation_prompt=True)
        out.append((decode_ids(tokenizer, ids), ids))
    return out


def _prompts(tokenizer, problems) -> list[tuple[str, list[int]]]:
    return chat_prompts(tokenizer, [p.question for p in problems])


def eval_problems(settings: RLSettings):
    """The fixed held-out set: distinct questions (band 1 repeats a lot), first come first kept."""
    from tasks.math import MathConfig, generate

    pool = generate(MathConfig(seed=EVAL_SEED, tasks=tuple(settings.tasks), bands=tuple(settings.bands)),
                    4 * settings.eval_problems, split="heldout")
    seen, out = set(), []
    for p in pool:
        if p.question not in seen and len(out) < settings.eval_problems:
            seen.add(p.question)
            out.append(p)
    return out


USER_TASK = "user"  # the task name of problems from a user's file (difficulty 0, no worked solution)
HELDOUT_SHARE = 5  # a user file holds out one question in this many (at most rl.eval_problems, at least 1)
_PLACEHOLDERS = {"n/a", "n.a.", "na", "none", "null", "nan", "tbd", "unknown", "?", "-"}


def gold_answer(raw) -> tuple[str | None, str | None]:
    """(gold, None) for a gradeable answer field, or (None, why not). A field holding a worked solution with a
    final-answer marker (GSM8K's "... #### 72", "\\boxed{...}", "Answer: ...") gives what the marker marks, as
    the verifier extracts it from a response. The gold must read as math: words other than trailing units
    ("see above", "yes") would be compared as strings or as products of letters, so they are refused here
    rather than mis-graded, as is anything the verifier calls unparseable or cannot check in time."""
    from rewards.verifier import extract_answer, reads_as_answer, verify

    text = "" if raw is None else str(raw).strip()
    if not text:
        return None, "empty answer"
    gold = extract_answer(text, last_number_fallback=False) or text
    if gold.lower() in _PLACEHOLDERS or not reads_as_answer(gold):
        return None, f"answer {_clip(gold)!r} is not math the verifier can read"
    reason = verify(gold, "0").reason  # parses the gold as a response would be; "0" is any other value
    if reason in ("unparseable", "timeout", "no_answer"):
        return None, f"answer {_clip(gold)!r} is {'too slow for' if reason == 'timeout' else 'unparseable by'} the verifier"
    return gold, None


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def load_user_problems(path: Path, question_field: str = "question", answer_field: str = "answer") -> tuple[list, dict]:
    """(problems, report) from a user's file: each usable row a tasks.math.Problem (id from the row's "id" field,
    else "line-N"; task "user"; difficulty 0; no solution; extras: line and the raw answer field), and the report
    summary.json keeps (path, format, fields, rows, skipped: [{"line", "reason"}]). Rows are numbered as
    evals.custom.load_rows numbers them (the file's line, or the position from 1 in formats without lines).

    One LabError, naming the file, when it cannot be read, holds no rows, no row has one of the two fields (a
    misspelt --question-field), or no row is usable; a bad row on its own is skipped and listed, never graded."""
    from evals.custom import load_rows
    from tasks.math import Problem

    path = Path(path)
    numbered = load_rows(path, numbered=True)
    if not numbered:
        raise LabError(f"{path} holds no rows")
    rows = [row for _, row in numbered if row is not None]
    for kind, field in (("question", question_field), ("answer", answer_field)):
        if rows and not any(field in row for row in rows):
            # a name with a newline or other unprintable character is quoted, so the error stays one line
            fields = sorted({k if k.isprintable() else repr(k) for row in rows[:20] for k in map(str, row)})
            raise LabError(f"no row of {path} has the {kind} field '{field}' (its fields: {', '.join(fields)}); "
                           f"name the right one with --{kind}-field")
    problems, skipped = [], []
    for line, row in numbered:
        why, gold = None, None
        if row is None:
            why = "not a JSON object"
        elif field_missing := next((f"no {k} field '{f}'" for k, f in (("question", question_field),
                                                                      ("answer", answer_field)) if f not in row), None):
            why = field_missing
        elif isinstance(row[question_field], (dict, list)):
            why = "the question is not text"
        elif row[question_field] is None or not str(row[question_field]).strip():
            why = "empty question"
        else:
            gold, why = gold_answer(row[answer_field])
        if why:
            skipped.append({"line": line, "reason": why})
            continue
        rid = row.get("id")
        problems.append(Problem(id=str(rid) if rid not in (None, "") else f"line-{line}", task=USER_TASK, difficulty=0,
                                question=str(row[question_field]).strip(), answer=gold, solution="",
                                extras={"line": line, "raw_answer": str(row[answer_field])}))
    report = {"path": str(path), "format": "datasets" if path.is_dir() else path.suffix.lstrip("."),
              "question_field": question_field, "answer_field": answer_field, "rows": len(numbered),
              "usable": len(problems), "skipped": skipped}
    if not problems:
        from rewards.verifier import ANSWER_FORMS

        raise LabError(f"no usable row in {path}: all {len(numbered)} skipped ({_skip_list(skipped)}); "
                       f"{ANSWER_FORMS}")
    return problems, report


def _skip_list(skipped: list[dict], n: int = 3) -> str:
    shown = "; ".join(f"line {s['line']}: {s['reason']}" for s in skipped[:n])
    return shown + (f"; and {len(skipped) - n} more" if len(skipped) > n else "")


def fit_prompts(tokenizer, model, problems, max_completion_length: int, skipped: list[dict]) -> list:
    """The problems whose prompt has no prompt_faults (check_prompts' conditions, row by row); the others are
    added to `skipped` with their fault."""
    kept = []
    for p, fault in zip(problems, prompt_faults(tokenizer, model, _prompts(tokenizer, problems), max_completion_length)):
        if fault:
            skipped.append({"line": p.extras["line"], "reason": fault})
        else:
            kept.append(p)
    skipped.sort(key=lambda s: s["line"])
    return kept


def split_user_problems(problems, settings: RLSettings) -> tuple[list, list, list]:
    """(train, held_out, unused): min(rl.eval_problems, a fifth) of the distinct questions, at least one, chosen
    with EVAL_SEED (as the generator's held-out set: runs of any rl.seed are scored on the same questions), are
    held out with every row that asks them, so no held-out question is trained on; the rest train, at most
    rl.train_problems of them (the others are unused). Each part in file order."""
    groups: dict[str, list] = {}
    for p in problems:
        groups.setdefault(" ".join(p.question.split()), []).append(p)
    if len(groups) < 2:
        raise LabError(f"the data has {len(groups)} usable distinct question(s); RL needs at least 2, one to train "
                       "on and one held out")
    keys = list(groups)
    random.Random(EVAL_SEED).shuffle(keys)
    n_held = max(1, min(settings.eval_problems, len(keys) // HELDOUT_SHARE))
    held = [p for k in keys[:n_held] for p in groups[k]]
    pool = [p for k in keys[n_held:] for p in groups[k]]
    train, unused = pool[: settings.train_problems], pool[settings.train_problems :]

    def in_order(ps):
        return sorted(ps, key=lambda p: p.extras["line"])

    return in_order(train), in_order(held), in_order(unused)


def _answers(model, tokenizer, problems, max_new_tokens: int, temperature: float = 0.0, per_problem: int = 1,
             seed: int | None = None, batch_size: int = 64) -> list[str]:
    """`per_problem` answers to each problem from our engine, in order, as text. Sampled batches are seeded by
    their position (seed + start), so every model draws with the same seeds."""
    from lab.model.chat_format import answer_stops
    from lab.model.engine import SamplingParams, generate  # runs under torch.no_grad
    from lab.model.tokenizer import decode_ids

    was_training = model.training
    model.eval()
    prompts = [ids for _, ids in _prompts(tokenizer, problems) for _ in range(per_problem)]
    outs = []
    for start in range(0, len(prompts), batch_size):
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature,
                                stop_token_ids=answer_stops(tokenizer), seed=None if seed is None else seed + start)
        outs += generate(model, prompts[start : start + batch_size], params, pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    return [decode_ids(tokenizer, o, skip_special_tokens=True) for o in outs]


def greedy_accuracy(model, tokenizer, problems, max_new_tokens: int, batch_size: int = 64) -> dict:
    """Greedy answers from our engine, graded by the verifier: overall, per band and per task, plus samples."""
    from rewards.verifier import verify_many

    responses = _answers(model, tokenizer, problems, max_new_tokens, batch_size=batch_size)
    verdicts = verify_many([(r, p.answer) for r, p in zip(responses, problems)])
    groups: dict[str, list[bool]] = {}
    for p, v in zip(problems, verdicts):
        for key in ("all", f"band{p.difficulty}", p.task):
            groups.setdefault(key, []).append(v.equivalent)
    result = {k: {"accuracy": sum(v) / len(v), "n": len(v)} for k, v in groups.items()}
    result["samples"] = [{"id": p.id, "question": p.question, "gold": p.answer, "response": r, "correct": v.equivalent,
                          "reason": v.reason} for p, r, v in zip(problems, responses, verdicts)]
    return result


def sampled_correct(model, tokenizer, problems, settings, k: int, seed: int, batch_size: int) -> list[int]:
    """How many of `k` answers to each problem, sampled at the RL temperature, the verifier accepts."""
    from rewards.verifier import verify_many

    texts = _answers(model, tokenizer, problems, settings.max_completion_length, settings.temperature,
                     per_problem=k, seed=seed, batch_size=batch_size)
    verdicts = verify_many([(t, problems[i // k].answer) for i, t in enumerate(texts)])
    return [sum(v.equivalent for v in verdicts[i * k : (i + 1) * k]) for i in range(len(problems))]


def heldout_accuracy(model, tokenizer, problems, settings) -> dict:
    """greedy_accuracy, plus each problem's share of `eval_samples` sampled answers the verifier accepts:
    RL changes the sampling distribution before it flips greedy answers, and a share per problem is a
    finer paired measure than one greedy bit."""
    result = greedy_accuracy(model, tokenizer, problems, settings.max_completion_length)
    k = settings.eval_samples
    if k <= 0:
        return result
    correct = sampled_correct(model, tokenizer, problems, settings, k, seed=EVAL_SEED, batch_size=128)
    for sample, c in zip(result["samples"], correct):
        sample["sampled_share"] = c / k
    result["sampled"] = {"accuracy": sum(s["sampled_share"] for s in result["samples"]) / len(problems), "k": k,
                         "temperature": settings.temperature}
    return result


def solve_rate_filter(model, tokenizer, problems, settings: RLSettings, out: Path) -> tuple[list, dict]:
    """The training problems the start solves sometimes but not always, and what the probe found.

    Each problem gets `settings.solve_probe_samples` sampled answers at the training temperature, graded by the
    verifier. Saved as out/solve_probe.json, so a resumed run trains on the same problems without probing again.
    When fewer problems than one step's prompts qualify, every problem is kept and the summary says so."""
    import time

    from lab.runs import read_json

    k, cached = settings.solve_probe_samples, out / "solve_probe.json"
    if cached.exists():
        probe = read_json(cached)
    else:
        start = time.time()
        solved = sampled_correct(model, tokenizer, problems, settings, k, seed=settings.seed, batch_size=256)
        probe = {"samples": k, "solved": solved, "seconds": time.time() - start}
        write_json(cached, probe)
    solved = probe["solved"]
    if len(solved) != len(problems) or probe["samples"] != k:
        raise LabError(f"{cached} was probed with other settings; delete it (or the stage) to probe again")
    kept = [p for p, c in zip(problems, solved) if 0 < c < k]
    enough = len(kept) >= settings.batch_size // settings.num_generations
    report = {"samples": k, "problems": len(problems), "kept": len(kept) if enough else len(problems),
              "filtered": enough, "sampled_accuracy": sum(solved) / (k * len(problems)),
              "solved_histogram": {str(c): solved.count(c) for c in range(k + 1)}, "seconds": probe["seconds"]}
    return (kept if enough else problems), report


def write_heldout(out: Path, before: dict, after: dict) -> None:
    """heldout/before.jsonl and after.jsonl: each held-out problem's grades (the samples leave the dicts)."""
    (out / "heldout").mkdir(exist_ok=True)
    for name, result in (("before", before), ("after", after)):
        (out / "heldout" / f"{name}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in result.pop("samples")))


def write_log(out, history: list[dict]) -> list[dict]:
    """logs/train.jsonl from the trainer's log history (restored from the checkpoint on resume, so complete)."""
    rows = [dict(r) for r in history]
    for r in rows:  # "accuracy": the share of sampled completions the verifier accepted
        if "rewards/correctness/mean" in r:
            r["accuracy"] = r["rewards/correctness/mean"]
    write_train_log(out, rows)
    return rows


def _eval_callback(settings: RLSettings, tokenizer, problems):
    from transformers import TrainerCallback

    class HeldoutEval(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if settings.eval_every and state.global_step % settings.eval_every == 0:
                acc = greedy_accuracy(model, tokenizer, problems, settings.max_completion_length)
                # log_history is saved in every checkpoint, so these rows survive a resume
                state.log_history.append({"step": state.global_step, "heldout_accuracy": acc["all"]["accuracy"]})

    return HeldoutEval()


def _tensorboard(out) -> list:
    try:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        return [TensorBoardCallback(tb_writer=SummaryWriter(str(out / "logs" / "tensorboard")))]
    except ImportError:  # TensorBoard is a nicety; logs/train.jsonl is the record
        return []


def _trainer_args(settings, out) -> dict:
    """The config fields GRPOConfig and RLOOConfig share (settings: RLSettings or RLHFSettings)."""
    from lab.train.trainers import checkpoint_args, common_trainer_args

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


def load_policy(src):
    """(model, tokenizer) of a causal-LM stage, made ready for TRL generation."""
    import torch

    from lab.model.chat_format import answer_stops
    from lab.model.labgpt import LabGPTForCausalLM
    from lab.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(src)
    model = LabGPTForCausalLM.from_pretrained(src, dtype=torch.float32)
    # TRL stops a completion at every eos the generation config lists: the chat turn ends at <|im_end|>
    model.generation_config.eos_token_id = list(answer_stops(tokenizer))
    return model, tokenizer


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
    if settings.algo not in ALGOS:
        raise LabError(f"unknown RL algo '{settings.algo}'; valid: {', '.join(ALGOS)}")
    if len(settings.reward_weights) != n_rewards:
        raise LabError(f"rl has {n_rewards} rewards ({', '.join(settings.rewards)}) but "
                       f"{len(settings.reward_weights)} reward_weights")
    if settings.batch_size % settings.num_generations:
        raise LabError(f"rl.batch_size ({settings.batch_size}) must be a multiple of rl.num_generations "
                       f"({settings.num_generations}): each prompt's samples form one group")
    if settings.use_vllm:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise LabError("rl.use_vllm=true needs the vllm package (GPU only); install it or set "
                           "rl.use_vllm=false") from None


def save_snapshot(model, out: Path, step: int) -> None:
    """The policy's weights at `step` in out/snapshots/step-N (LoRA merged into a copy): one point of the
    run's path away from its start, for experiments to evaluate afterwards (lab/experiments/rlhf_methods.py)."""
    import copy

    from lab.runs import atomic_dir

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
                 write_logs=write_log, snapshot_every: int = 0) -> TrainedPolicy:
    """The TRL core shared by RL on math and RLHF: config, trainer, resume, train, save, logs; the policy is
    kept every `snapshot_every` steps (snapshots/step-N, 0 = never: RLHF measures its KL path so).

    `model` comes from load_policy. The caller has checked its settings and prompts and owns the summary
    and COMPLETE."""
    import trl
    from transformers import TrainerCallback

    from lab.train.trainers import lora_config, save_trained, train_resuming

    peft_config = lora_config(settings.lora_r, settings.lora_alpha)
    rloo = settings.algo == "rloo"
    Config, Trainer = (trl.RLOOConfig, trl.RLOOTrainer) if rloo else (trl.GRPOConfig, trl.GRPOTrainer)
    args = Config(**_trainer_args(settings, out), **ALGOS[settings.algo])
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


def _log_ends(logs: list[dict], key: str) -> tuple[float | None, float | None]:
    """The mean of `key` over the first and the last few logged steps (single steps are a few prompts)."""
    values = [r[key] for r in logs if key in r]
    if not values:
        return None, None
    window = max(1, min(10, len(values) // 4))
    return sum(values[:window]) / window, sum(values[-window:]) / window


def rl_math(run: Run, preset: Preset, settings: RLSettings, source: str = "sft-idk", out_stage: str = "rl-math",
            data: Path | None = None, question_field: str = "question", answer_field: str = "answer") -> dict:
    """Train `source` with RL on math into `run/<out_stage>` (a relative path such as experiments/x/arm works).

    `preset` is the run's preset, passed like to every stage; the RL settings come separately so
    experiment arms can vary them. `data`: a file of your own problems (load_user_problems) instead of the
    generator's rl.tasks and rl.bands; part of it is held out (split_user_problems) and summary["data"]
    says which rows trained, were held out, or were skipped and why."""
    from datasets import Dataset

    from rewards.format import get_rewards
    from tasks.math import MathConfig, generate

    reward_funcs = get_rewards(list(settings.rewards))
    check_rl_settings(settings, len(settings.rewards))
    src = run.require(source)
    user = load_user_problems(data, question_field, answer_field) if data is not None else None  # before any write
    model, tokenizer = load_policy(src)
    data_report = None
    if user is not None:
        problems, data_report = user
        problems = fit_prompts(tokenizer, model, problems, settings.max_completion_length, data_report["skipped"])
        try:
            problems, held_out, unused = split_user_problems(problems, settings)
        except LabError as e:  # too few rows left: say which were skipped and why
            raise LabError(f"{data}: {e} (skipped {len(data_report['skipped'])}: "
                           f"{_skip_list(data_report['skipped'])})") from None
        skipped = data_report.pop("skipped")  # kept last: the list can be long
        data_report |= {"usable": len(problems) + len(held_out) + len(unused), "trained": len(problems),
                        "held_out": len(held_out), "unused": len(unused), "split_seed": EVAL_SEED,
                        "held_out_lines": [p.extras["line"] for p in held_out], "skipped": skipped}
    else:
        problems = generate(MathConfig(seed=settings.seed, tasks=tuple(settings.tasks), bands=tuple(settings.bands)),
                            settings.train_problems, split="train")
        held_out = eval_problems(settings)
    out = run.open_stage(out_stage)

    prompts = _prompts(tokenizer, problems)
    check_prompts(tokenizer, model, prompts, settings.max_completion_length)
    probe = None
    if settings.solve_probe_samples:
        problems, probe = solve_rate_filter(model, tokenizer, problems, settings, out)
        prompts = _prompts(tokenizer, problems)
    dataset = Dataset.from_dict({"prompt": [text for text, _ in prompts], "answer": [p.answer for p in problems],
                                 "task": [p.task for p in problems], "difficulty": [p.difficulty for p in problems]})
    before = heldout_accuracy(model, tokenizer, held_out, settings)

    done = train_policy(out, model, tokenizer, settings, dataset, reward_funcs,
                        callbacks=[_eval_callback(settings, tokenizer, held_out)])
    last, trainer = done.resumed_from, done.trainer
    after = heldout_accuracy(done.model, tokenizer, held_out, settings)
    write_heldout(out, before, after)
    reward_first, reward_last = _log_ends(done.logs, "reward")
    solved_first, solved_last = _log_ends(done.logs, "rewards/group_solved/mean")
    summary = {
        "algo": settings.algo, "source": source, "steps": trainer.state.global_step,
        "resumed_from": Path(last).name if last else None, "steps_this_session": done.steps_this_session,
        "seconds": done.seconds, "seconds_per_step": done.seconds / max(1, done.steps_this_session),
        "reward_first": reward_first, "reward_last": reward_last,
        # the share of groups holding a correct answer: GRPO's signal (None when group_solved is not tracked)
        "groups_solved_first": solved_first, "groups_solved_last": solved_last,
        "heldout_before": before, "heldout_after": after, "train_problems": len(problems), "solve_probe": probe,
        "data": data_report,  # None: the generator's problems (rl.tasks, rl.bands)
        "settings": asdict(settings),
    }
    write_json(out / "summary.json", summary)
    run.mark_complete(out_stage, {"algo": settings.algo, "steps": summary["steps"], "heldout_before":
                                  before["all"]["accuracy"], "heldout_after": after["all"]["accuracy"]}
                      | ({"data": data_report["path"]} if data_report else {}))
    return summary
