"""PPO for RLHF, written out: policy, value model, frozen reference and reward model (TRL no longer ships it).

The classic recipe (Ziegler et al. 2019; Ouyang et al. 2022), one step at a time:

1. Rollout: the policy answers a batch of prompts through our engine (one sample per prompt, KV cache).
2. Score: the reward model scores each whole answer; every token also pays -kl_coef x (log pi - log ref),
   its log-ratio to the frozen reference, so the total reward is RM score - kl_coef x KL(answer).
3. Advantages: a value model predicts, before each answer token, the reward still to come; generalized
   advantage estimation (GAE, Schulman et al. 2016) turns rewards and values into per-token advantages
   (whitened over the batch) and returns (the value model's targets).
4. Update: several epochs over shuffled minibatches of the rollout, with the clipped surrogate for the
   policy (no gain from moving a token's probability ratio beyond 1 +- clip_range) and a clipped value
   loss; stopped early when the approximate KL between the new and the sampling policy gets too large.
5. The KL coefficient adapts towards a target KL per answer (Ziegler et al.'s proportional controller).

Log-probabilities are of the sampling distribution (logits / temperature): the same one the engine drew
from, so the ratio starts at exactly 1 and the KL is between what the two models would actually say.
The value model is a copy of the reward model (its backbone and scalar head, applied at every position;
InstructGPT's choice) or of the policy with a fresh head. The gold judge scores every answer but is only
logged, as in lab/train/rlhf.py, so PPO joins GRPO and RLOO on the same over-optimization axes.

The core (`train_ppo`) takes any scoring function, so tests can drive it with a toy reward; `ppo_rlhf`
wires it to a run: sft-idk policy, the rm stage's reward model, the RLHF prompts, stage folder rlhf-ppo/.
Its settings, PPOSettings, live torch-free in lab/train/rl_settings.py (the presets hold them).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from peft import get_peft_model

from lab.errors import LabError
from lab.model.chat_format import answer_stops
from lab.model.engine import SamplingParams, generate
from lab.model.labgpt import LabGPTForCausalLM
from lab.progress import TrainLogger
from lab.runs import atomic_file, write_json, write_train_log
from lab.stage_names import RM
from lab.train.memory import memory_of
from lab.train.policy_gradient import check_prompts, load_policy, save_snapshot
from lab.train.ppo.losses import explained_variance, gae, masked_mean, masked_whiten, policy_loss, value_loss
from lab.train.rl_settings import PPOSettings
from lab.train.rlhf import ends, rlhf_dataset
from lab.train.trainers import lora_config, save_trained
from rewards.gold import decode_completion, gold_score
from rewards.proxy import check_tokenizers_match, load_reward_model, score


class AdaptiveKL:
    """Ziegler et al.'s proportional controller: kl_coef x (1 + clip(KL/target - 1, +-0.2) x answers/horizon)."""

    def __init__(self, coef: float, target: float | None, horizon: int):
        self.coef, self.target, self.horizon = coef, target, horizon

    def update(self, kl: float, answers: int) -> None:
        if self.target is None:
            return
        error = min(max(kl / self.target - 1, -0.2), 0.2)
        self.coef *= 1 + error * answers / self.horizon


# ---------------------------------------------------------------- rollouts


@dataclass
class Batch:
    """Prompts left-padded to one column, answers right-padded after it: answer token t sits at column
    width + t and is predicted from column width + t - 1."""

    ids: torch.Tensor  # [batch, width + tokens]
    attention: torch.Tensor
    response: torch.Tensor  # [batch, tokens], padding 0
    mask: torch.Tensor  # [batch, tokens], 1.0 on answer tokens
    width: int

    def rows(self, index: torch.Tensor) -> Batch:
        return Batch(self.ids[index], self.attention[index], self.response[index], self.mask[index], self.width)


def make_batch(prompts: list[list[int]], responses: list[list[int]], pad_token_id: int, device) -> Batch:
    width, tokens = max(len(p) for p in prompts), max(1, max(len(r) for r in responses))
    ids = torch.full((len(prompts), width + tokens), pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    mask = torch.zeros((len(prompts), tokens))
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, width - len(p) : width] = torch.tensor(p)
        ids[i, width : width + len(r)] = torch.tensor(r, dtype=torch.long)
        attention[i, width - len(p) : width + len(r)] = 1
        mask[i, : len(r)] = 1
    response = ids[:, width:] * (attention[:, width:] > 0)
    return Batch(ids.to(device), attention.to(device), response.to(device), mask.to(device), width)


def answer_logprobs(model, batch: Batch, temperature: float, entropy: bool = False):
    """Log-probability of each answer token under the sampling distribution (logits / temperature)."""
    logits = model(input_ids=batch.ids, attention_mask=batch.attention, use_cache=False).logits
    logp = (logits[:, batch.width - 1 : -1].float() / temperature).log_softmax(-1)
    chosen = logp.gather(-1, batch.response[..., None]).squeeze(-1)
    if not entropy:
        return chosen
    return chosen, -(logp.exp() * logp).sum(-1)


def answer_values(value_model, batch: Batch) -> torch.Tensor:
    """The value head at every answer position: the state before each answer token."""
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(input_ids=batch.ids, attention_mask=batch.attention, use_cache=False).last_hidden_state
    return value_model.score(hidden[:, batch.width - 1 : -1]).squeeze(-1).float()


def check_value_model(value_model, policy) -> None:
    head = getattr(value_model, "score", None)
    if head is None or not hasattr(value_model, "base_model_prefix"):
        raise LabError("the PPO value model needs a backbone and a scalar `score` head (a sequence-classification "
                       "model such as the rm stage's)")
    if head.out_features != 1:
        raise LabError(f"the value head gives {head.out_features} values per token; PPO needs 1 "
                       "(a reward model trained with num_labels=1)")
    if value_model.config.vocab_size != policy.config.vocab_size:
        raise LabError(f"the value model reads {value_model.config.vocab_size} token ids but the policy writes "
                       f"{policy.config.vocab_size}: start it from the policy's run")


# ---------------------------------------------------------------- the training loop


@dataclass
class PPOResult:
    policy: object
    logs: list[dict]
    seconds: float
    resumed_from: int | None  # the step the last checkpoint had reached
    steps_this_session: int
    memory: dict


def _trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def _check_finite(step: int, what: str, values: torch.Tensor, kept: str) -> None:
    if not torch.isfinite(values).all():
        where = f" (first at index {(~torch.isfinite(values)).nonzero()[0].tolist()})" if values.dim() else ""
        raise LabError(f"PPO step {step}: {what} is not finite{where}; stopped before updating, {kept}")


_RESUMABLE = ("steps", "ckpt_every", "snapshot_every")  # settings a resumed run may change


def _save_checkpoint(path: Path, step: int, policy, value_model, optimizer, kl: AdaptiveKL, logs, settings) -> None:
    state = {"step": step, "policy": policy.state_dict(), "value": value_model.state_dict(),
             "optimizer": optimizer.state_dict(), "kl_coef": kl.coef, "logs": logs, "settings": asdict(settings)}
    with atomic_file(path) as tmp:  # a kill leaves the old checkpoint or the new one, never half of one
        torch.save(state, tmp)


def _load_checkpoint(path: Path, settings: PPOSettings) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    now = asdict(settings)
    differs = [k for k, v in now.items() if k not in _RESUMABLE and state["settings"].get(k) != v]
    if differs:
        k = differs[0]
        raise LabError(f"{path} was made with ppo.{k}={state['settings'].get(k)!r}, not {now[k]!r}; "
                       "rerun with the same settings to resume, or delete the stage to start over")
    return state


def check_ppo_settings(settings: PPOSettings) -> None:
    """The refusals that need no model: before anything is loaded or written."""
    if settings.batch_size % settings.minibatch_size:
        raise LabError(f"ppo.batch_size ({settings.batch_size}) must be a multiple of ppo.minibatch_size "
                       f"({settings.minibatch_size})")
    if settings.value_init not in ("rm", "policy"):
        raise LabError(f"ppo.value_init must be 'rm' or 'policy', got {settings.value_init!r}")
    if settings.temperature <= 0:
        raise LabError(f"ppo.temperature must be > 0 (PPO samples its rollouts), got {settings.temperature}")


def train_ppo(out: Path, policy, ref_model, value_model, prompts: list[list[int]], score_fn, settings: PPOSettings,
              stop_token_ids: tuple[int, ...], pad_token_id: int, judge_fn=None, title: str = "ppo",
              quiet: bool = False, held=()) -> PPOResult:
    """Train `policy` with PPO on `prompts` (token ids) for settings.steps steps, into `out`.

    score_fn(indices, answers) -> one reward per answer, indices into `prompts`, answers as generated ids
    (stop token included when the model closed its turn); judge_fn likewise, logged only. The reference is
    frozen; the value model is trained beside the policy. Checkpoints go to out/checkpoint.pt every
    settings.ckpt_every steps and at the end (none when it is 0); a rerun resumes from there. Logs:
    out/logs/train.jsonl. `held`: models the scoring functions keep in memory (the reward model), counted
    in the memory figure."""
    check_ppo_settings(settings)
    if not prompts:
        raise LabError("PPO got no prompts")
    check_value_model(value_model, policy)
    device = next(policy.parameters()).device
    ref_model.eval().requires_grad_(False)
    optimizer = torch.optim.AdamW([{"params": _trainable(policy), "lr": settings.lr},
                                   {"params": _trainable(value_model), "lr": settings.value_lr}],
                                  eps=1e-5, weight_decay=0.0)
    kl = AdaptiveKL(settings.init_kl_coef, settings.target_kl, settings.kl_horizon)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, logs, start = out / "checkpoint.pt", [], 0
    if ckpt.exists():
        state = _load_checkpoint(ckpt, settings)
        policy.load_state_dict(state["policy"])
        value_model.load_state_dict(state["value"])
        optimizer.load_state_dict(state["optimizer"])
        kl.coef, logs, start = state["kl_coef"], state["logs"], state["step"]
    # the log restarts from the checkpoint's: steps done after it (a kill) are redone, not duplicated
    write_train_log(out, logs)
    logger = TrainLogger(out / "logs", True, settings.steps, start=start, title=title, quiet=quiet)
    order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(settings.seed)).tolist()
    t0, kept = time.perf_counter(), f"the last good checkpoint (step {start}) is kept" if start else "no checkpoint yet"
    try:
        for step in range(start + 1, settings.steps + 1):
            row = _ppo_step(step, policy, ref_model, value_model, optimizer, kl, prompts, order, score_fn, judge_fn,
                            settings, stop_token_ids, pad_token_id, device, kept)
            row["seconds"] = time.perf_counter() - t0
            logs.append(row)
            logger.log(row)
            if settings.snapshot_every and step % settings.snapshot_every == 0:
                save_snapshot(policy, out, step)
            if settings.ckpt_every and (step % settings.ckpt_every == 0 or step == settings.steps):
                _save_checkpoint(ckpt, step, policy, value_model, optimizer, kl, logs, settings)
                kept = f"the last good checkpoint (step {step}) is kept"
    finally:
        logger.close()
    memory = memory_of([policy, ref_model, value_model, *held], optimizer)
    return PPOResult(policy, logs, time.perf_counter() - t0, start or None, settings.steps - start, memory)


def _ppo_step(step, policy, ref_model, value_model, optimizer, kl, prompts, order, score_fn, judge_fn, settings,
              stop_token_ids, pad_token_id, device, kept) -> dict:
    n, size = len(prompts), settings.batch_size
    indices = [order[((step - 1) * size + i) % n] for i in range(size)]  # through the shuffled prompts, cyclically
    batch_prompts = [prompts[i] for i in indices]

    # 1. rollout, seeded by the step: a resumed run samples what the uninterrupted one would have
    policy.eval()
    params = SamplingParams(max_new_tokens=settings.max_completion_length, temperature=settings.temperature,
                            stop_token_ids=stop_token_ids, seed=settings.seed * 1_000_003 + step)
    answers = generate(policy, batch_prompts, params, pad_token_id=pad_token_id)
    batch = make_batch(batch_prompts, answers, pad_token_id, device)
    with torch.no_grad():
        old_logprobs = answer_logprobs(policy, batch, settings.temperature)
        ref_logprobs = answer_logprobs(ref_model, batch, settings.temperature)
        old_values = answer_values(value_model, batch)

    # 2. rewards: the RM's score on the last token, the KL penalty on every token
    scores = torch.tensor(score_fn(indices, answers), dtype=torch.float32, device=device)
    _check_finite(step, "the reward", scores, kept)
    mask = batch.mask
    log_ratio = (old_logprobs - ref_logprobs) * mask
    rewards = -kl.coef * log_ratio
    last = mask.sum(1).long() - 1
    rewards[torch.arange(size, device=device), last] += scores

    # 3. advantages
    advantages, returns = gae(rewards, old_values * mask, mask, settings.gamma, settings.lam)
    if settings.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    _check_finite(step, "an advantage", advantages, kept)

    # 4. PPO epochs over shuffled minibatches, stopped early if the policy moved too far
    policy.train()
    value_model.train()
    shuffle = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
    stats: dict[str, list[float]] = {k: [] for k in ("pg_loss", "vf_loss", "clip_fraction", "vf_clip_fraction",
                                                     "approx_kl", "entropy")}
    epochs, stopped = 0, False
    for epoch in range(settings.ppo_epochs):
        for rows in torch.randperm(size, generator=shuffle).split(settings.minibatch_size):
            rows = rows.to(device)
            mb = batch.rows(rows)
            logprobs, entropy = answer_logprobs(policy, mb, settings.temperature, entropy=True)
            values = answer_values(value_model, mb)
            pg, clip_fraction, approx_kl = policy_loss(logprobs, old_logprobs[rows], advantages[rows], mb.mask,
                                                       settings.clip_range)
            vf, vf_clip_fraction = value_loss(values, old_values[rows], returns[rows], mb.mask,
                                              settings.value_clip_range)
            loss = pg + settings.vf_coef * vf
            _check_finite(step, f"the loss (epoch {epoch + 1})", loss.detach(), kept)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(_trainable(policy), settings.max_grad_norm)
            torch.nn.utils.clip_grad_norm_(_trainable(value_model), settings.max_grad_norm)
            optimizer.step()
            for key, value in (("pg_loss", pg), ("vf_loss", vf), ("clip_fraction", clip_fraction),
                               ("vf_clip_fraction", vf_clip_fraction), ("approx_kl", approx_kl),
                               ("entropy", masked_mean(entropy.detach(), mb.mask))):
                stats[key].append(float(value.detach()))
            if float(approx_kl) > settings.max_approx_kl:
                stopped = True
                break
        epochs = epoch + 1
        if stopped:
            break

    kl_seq = log_ratio.sum(1)  # per answer: the sequence KL(policy || reference), estimated on its own samples
    row = {"step": step, "reward": float((scores - kl.coef * kl_seq).mean()), "proxy": float(scores.mean()),
           "kl_seq": float(kl_seq.mean()), "kl": float(masked_mean(log_ratio, mask)), "kl_coef": kl.coef,
           "length": float(mask.sum(1).mean()), "explained_variance": explained_variance(old_values, returns, mask),
           "value_mean": float(masked_mean(old_values, mask)), "epochs": epochs, "early_stop": stopped,
           "finished": sum(bool(a) and a[-1] in stop_token_ids for a in answers) / size}
    row.update({k: sum(v) / len(v) for k, v in stats.items() if v})
    kl.update(row["kl_seq"], size)  # the next step's coefficient
    if judge_fn is not None:
        gold = [g for g in judge_fn(indices, answers) if g is not None]
        row["gold"] = sum(gold) / len(gold) if gold else None
    return row


# ---------------------------------------------------------------- RLHF on a run


def _value_model(settings: PPOSettings, rm_dir: Path, source_dir: Path):
    value_model, _ = load_reward_model(rm_dir if settings.value_init == "rm" else source_dir)
    if settings.value_init == "policy":
        value_model.score.weight.data.zero_()  # a fresh head predicts 0 everywhere, not noise
    return value_model.train()


def ppo_rlhf(settings: PPOSettings, context, rm_stage: str = RM) -> dict:
    """PPO from `context.source` against the `rm_stage` reward model on the RLHF prompts, into `context.stage`."""
    run, source, out_stage = context.run, context.source, context.stage
    check_ppo_settings(settings)
    src, rm_dir = run.require(source), run.require(rm_stage)
    policy, tokenizer = load_policy(src)
    rm_model, rm_tokenizer = load_reward_model(rm_dir)
    check_tokenizers_match(rm_tokenizer, tokenizer)
    device = next(rm_model.parameters()).device
    ref_model = LabGPTForCausalLM.from_pretrained(src, dtype=torch.float32).to(device)
    value_model = _value_model(settings, rm_dir, src)
    policy = policy.to(device)
    if settings.lora_r > 0:
        policy = get_peft_model(policy, lora_config(settings.lora_r, settings.lora_alpha))
    world = context.world
    dataset, prompts = rlhf_dataset(world, tokenizer, settings.seed)
    check_prompts(tokenizer, policy, prompts, settings.max_completion_length)
    people = dataset["person"]
    out = run.open_stage(out_stage)

    def decoded(answers):  # special tokens kept as text, a cut-off answer marked unfinished: as for GRPO
        return [decode_completion(tokenizer, a) for a in answers]

    def proxy(indices, answers):
        return score(rm_model, rm_tokenizer, [prompts[i][0] for i in indices], [t for t, _ in decoded(answers)])

    def gold(indices, answers):
        return [gold_score(world, people[i], text, finished=done).total
                for i, (text, done) in zip(indices, decoded(answers))]

    done = train_ppo(out, policy, ref_model, value_model, [ids for _, ids in prompts], proxy, settings,
                     answer_stops(tokenizer),
                     tokenizer.pad_token_id, judge_fn=gold, title=out_stage, held=(rm_model,))
    save_trained(done.policy, tokenizer, out)
    steps = done.logs
    proxy_first, proxy_last = ends([r["proxy"] for r in steps])
    gold_first, gold_last = ends([r.get("gold") for r in steps])
    summary = {
        "algo": "ppo", "source": source, "rm_stage": rm_stage, "steps": len(steps),
        "resumed_from": done.resumed_from, "steps_this_session": done.steps_this_session, "seconds": done.seconds,
        "seconds_per_step": done.seconds / max(1, done.steps_this_session),
        "completions": settings.steps * settings.batch_size,
        "proxy_first": proxy_first, "proxy_last": proxy_last, "gold_first": gold_first, "gold_last": gold_last,
        "kl_seq_last": ends([r["kl_seq"] for r in steps])[1], "kl_coef_last": steps[-1]["kl_coef"],
        "length_first": ends([r["length"] for r in steps])[0], "length_last": ends([r["length"] for r in steps])[1],
        "explained_variance_last": ends([r["explained_variance"] for r in steps])[1],
        "memory": done.memory, "prompts": len(prompts), "settings": asdict(settings),
    }
    write_json(out / "summary.json", summary)
    run.mark_complete(out_stage, {"algo": "ppo", "steps": summary["steps"], "proxy_last": proxy_last,
                                  "gold_last": gold_last})
    return summary
