"""PPO's arithmetic on tensors: generalized advantage estimation, the clipped losses, whitening, and the
critic's explained variance. Answers are right-padded rows [batch, tokens] with a mask of 1.0 on real tokens;
every mean is over real tokens only. lab/train/ppo/loop.py is the loop that uses them."""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit variance over the valid entries; padding stays 0."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """(advantages, returns) by generalized advantage estimation over right-padded answers [batch, tokens].

    values[:, t] is the value of the state before token t; after the last token the value is 0 (the answer
    is over), so padding neither bootstraps nor carries advantage back."""
    advantages = torch.zeros_like(rewards)
    carry = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        more = mask[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(carry)
        next_value = values[:, t + 1] * more if t + 1 < rewards.shape[1] else torch.zeros_like(carry)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        carry = delta + gamma * lam * carry * more
        advantages[:, t] = carry
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(logprobs, old_logprobs, advantages, mask, clip_range: float):
    """PPO's clipped surrogate: (loss, share of tokens clipped, approximate KL(old || new) per token)."""
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean((ratio - 1) - log_ratio, mask)  # Schulman's k3: >= 0, unbiased
    return loss, clip_fraction.detach(), approx_kl.detach()


def value_loss(values, old_values, returns, mask, clip_range: float):
    """Clipped value loss: a prediction gains nothing from moving further than clip_range from its old value."""
    clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
    loss = 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)
    return loss, masked_mean(((values - returns) ** 2 < (clipped - returns) ** 2).float(), mask).detach()


def explained_variance(values, returns, mask) -> float:
    """1 - Var(returns - values) / Var(returns): 1 for a perfect critic, 0 for one that predicts the mean."""
    var = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    residual = returns - values
    var_residual = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
    return float(1 - var_residual / var) if var > 0 else float("nan")
