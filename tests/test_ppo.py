"""PPO (lab/train/ppo/loop.py): GAE by hand, the clipped objective's gradients, a toy reward learned, resume, refusals."""

import json
import math
from dataclasses import replace

import pytest
import torch
from test_pretrain import small_preset
from test_reward_model import source  # noqa: F401  (fixture rm_run builds on)
from test_rl import at, copy_run
from test_rlhf import rm_run  # noqa: F401  (fixture: a tiny run with sft-idk and rm stages)

from lab.errors import LabError
from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
from lab.model.labgpt_rm import LabGPTForSequenceClassification
from lab.train.ppo.loop import AdaptiveKL, ppo_rlhf, train_ppo
from lab.train.ppo.losses import (
    explained_variance,
    gae,
    masked_whiten,
    policy_loss,
    value_loss,
)
from lab.train.rl_settings import PPOSettings

# ---------------------------------------------------------------- the maths


def test_gae_matches_a_hand_computed_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [0.1, 0.2, 9.0]])  # 9.0 sits on padding: must not bootstrap
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.9)
    # row 0: deltas 0.1, 0.1, 0.3 -> A2 = 0.3, A1 = 0.1 + 0.9*0.3 = 0.37, A0 = 0.1 + 0.9*0.37 = 0.433
    # row 1: A1 = 2 - 0.2 = 1.8 (the answer ends, value after it 0), A0 = (0 + 0.2 - 0.1) + 0.9*1.8 = 1.72
    torch.testing.assert_close(advantages, torch.tensor([[0.433, 0.37, 0.3], [1.72, 1.8, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.933, 0.97, 1.0], [1.82, 2.0, 0.0]]))


def test_gae_discounts_with_gamma():
    advantages, _ = gae(torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), gamma=0.5, lam=1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.5, 1.0]]))  # lam = 1: discounted return minus value


def test_clipped_objective_has_no_gradient_outside_the_trust_region():
    old = torch.zeros(4)
    # ratios e^0.5 (above 1.2) and e^-0.5 (below 0.8), each with a positive and a negative advantage
    new = torch.tensor([0.5, 0.5, -0.5, -0.5], requires_grad=True)
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])
    for i in range(4):
        mask = torch.zeros(4)
        mask[i] = 1
        loss, clipped, _ = policy_loss(new, old, advantages, mask, clip_range=0.2)
        (grad,) = torch.autograd.grad(loss, new)
        # clipped where moving further would help (ratio high with A > 0, low with A < 0): no gradient;
        # where the move hurt, the unclipped (pessimistic) term keeps pulling back
        gone = i in (0, 3)
        assert (grad[i] == 0) == gone and bool(clipped) == gone


def test_clipped_objective_inside_the_trust_region_is_the_policy_gradient():
    old = torch.zeros(3)
    new = torch.zeros(3, requires_grad=True)
    advantages = torch.tensor([1.0, -2.0, 0.5])
    loss, clipped, approx_kl = policy_loss(new, old, advantages, torch.ones(3), clip_range=0.2)
    (grad,) = torch.autograd.grad(loss, new)
    assert grad.tolist() == pytest.approx((-advantages / 3).tolist()) and clipped == 0 and approx_kl == 0


def test_value_loss_is_clipped_around_the_old_value():
    old, returns = torch.tensor([0.0]), torch.tensor([1.0])
    values = torch.tensor([0.5], requires_grad=True)  # beyond the 0.2 clip, but closer to the return: clipped loss wins
    loss, clipped = value_loss(values, old, returns, torch.ones(1), clip_range=0.2)
    (grad,) = torch.autograd.grad(loss, values)
    assert loss.item() == pytest.approx(0.5 * 0.8**2) and grad.item() == 0 and clipped == 1


def test_whitening_and_explained_variance_ignore_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    torch.testing.assert_close(masked_whiten(x, mask), torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-4, rtol=0)
    returns = torch.tensor([[1.0, 3.0, 50.0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full_like(returns, 2.0), returns, mask) == pytest.approx(0.0)


def test_adaptive_kl_moves_towards_the_target_by_at_most_20_percent_of_a_horizon():
    kl = AdaptiveKL(0.1, target=4.0, horizon=100)
    kl.update(40.0, 100)  # far above the target: the error is clipped to +0.2
    assert kl.coef == pytest.approx(0.12)
    kl.update(2.0, 50)  # half the target: error -0.2 over half a horizon
    assert kl.coef == pytest.approx(0.12 * 0.9)
    fixed = AdaptiveKL(0.1, target=None, horizon=100)
    fixed.update(40.0, 100)
    assert fixed.coef == 0.1


# ---------------------------------------------------------------- the loop on a toy reward

VOCAB, TARGET, STOP = 16, 7, 15
TOY = PPOSettings(steps=40, batch_size=16, minibatch_size=8, ppo_epochs=4, lr=3e-3, value_lr=3e-3,
                  init_kl_coef=0.0, target_kl=None, temperature=1.0, max_completion_length=4, ckpt_every=5,
                  max_approx_kl=1.0, seed=0)


def toy_models():
    torch.manual_seed(0)
    config = LabGPTConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                          num_key_value_heads=2, max_position_embeddings=16)
    policy = LabGPTForCausalLM(config)
    ref = LabGPTForCausalLM(config)
    ref.load_state_dict(policy.state_dict())
    value = LabGPTForSequenceClassification(LabGPTConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                                                         num_attention_heads=4, num_labels=1))
    return policy, ref, value


PROMPTS = [[1, 2 + i % 5] for i in range(32)]


def share_of_target(indices, answers):
    return [sum(t == TARGET for t in a) / len(a) for a in answers]


def test_a_tiny_policy_learns_to_emit_the_rewarded_token(tmp_path):
    policy, ref, value = toy_models()
    done = train_ppo(tmp_path, policy, ref, value, PROMPTS, share_of_target, TOY, (STOP,), 0, quiet=True)
    rewards = [r["proxy"] for r in done.logs]
    assert len(rewards) == TOY.steps and sum(rewards[:3]) / 3 < 0.2  # 1 token in 16: ~6% at the start
    assert sum(rewards[-5:]) / 5 > 0.8
    last = done.logs[-1]
    assert last["kl_seq"] > 0 and 0 <= last["clip_fraction"] <= 1 and math.isfinite(last["explained_variance"])
    assert {"pg_loss", "vf_loss", "approx_kl", "entropy", "length", "epochs"} <= last.keys()
    assert done.memory["state_mb"] > 0
    logged = [json.loads(line) for line in (tmp_path / "logs" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, TOY.steps + 1))


def test_the_kl_penalty_holds_the_policy_near_the_reference(tmp_path):
    free, held = (train_ppo(tmp_path / name, *toy_models(), PROMPTS, share_of_target, replace(TOY, steps=15, init_kl_coef=coef),
                            (STOP,), 0, quiet=True) for name, coef in (("free", 0.0), ("held", 1.0)))
    assert held.logs[-1]["kl_seq"] < free.logs[-1]["kl_seq"]


def test_a_resumed_run_continues_the_same_run(tmp_path):
    settings = replace(TOY, steps=6, ckpt_every=2)
    straight = train_ppo(tmp_path / "a", *toy_models(), PROMPTS, share_of_target, settings, (STOP,), 0, quiet=True)
    policy, ref, value = toy_models()
    train_ppo(tmp_path / "b", policy, ref, value, PROMPTS, share_of_target, replace(settings, steps=3), (STOP,), 0,
              quiet=True)
    # the same run, killed after its step-3 checkpoint... then extended: steps 4-6 from step 3's state
    resumed = train_ppo(tmp_path / "b", *toy_models(), PROMPTS, share_of_target, settings, (STOP,), 0, quiet=True)
    assert resumed.resumed_from == 3 and resumed.steps_this_session == 3
    for a, b in zip(straight.policy.state_dict().values(), resumed.policy.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    assert len(resumed.logs) == len(straight.logs)
    for a, b in zip(straight.logs, resumed.logs):
        a.pop("seconds"), b.pop("seconds")
        assert a == pytest.approx(b)


def test_nan_rewards_stop_with_the_step_named_and_the_checkpoint_kept(tmp_path):
    def breaks_at_step_3(indices, answers, calls=[]):  # noqa: B006  (counts calls: one per step)
        calls.append(1)
        return [float("nan") if len(calls) == 3 else 0.5 for _ in answers]

    settings = replace(TOY, steps=5, ckpt_every=1)
    with pytest.raises(LabError, match=r"PPO step 3: the reward is not finite.*step 2\) is kept"):
        train_ppo(tmp_path, *toy_models(), PROMPTS, breaks_at_step_3, settings, (STOP,), 0, quiet=True)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 2


def test_a_value_head_of_the_wrong_shape_is_refused(tmp_path):
    policy, ref, _ = toy_models()
    two = LabGPTForSequenceClassification(LabGPTConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=4, num_labels=2))
    with pytest.raises(LabError, match="value head gives 2 values per token"):
        train_ppo(tmp_path, policy, ref, two, PROMPTS, share_of_target, TOY, (STOP,), 0, quiet=True)


def test_resuming_with_other_settings_is_refused(tmp_path):
    train_ppo(tmp_path, *toy_models(), PROMPTS, share_of_target, replace(TOY, steps=2, ckpt_every=1), (STOP,), 0,
              quiet=True)
    with pytest.raises(LabError, match="ppo.lr=0.003, not 0.1"):
        train_ppo(tmp_path, *toy_models(), PROMPTS, share_of_target, replace(TOY, steps=4, lr=0.1), (STOP,), 0,
                  quiet=True)


# ---------------------------------------------------------------- RLHF on a run

FAST = PPOSettings(steps=2, batch_size=4, minibatch_size=2, ppo_epochs=2, max_completion_length=8, lr=1e-3,
                   ckpt_every=1)


def ppo_at(run):
    """The context ppo_rlhf gets on the small preset's run: writing rlhf-ppo from sft-idk."""
    return at(run, "rlhf-ppo", preset=small_preset())


def test_ppo_rlhf_trains_a_stage_logging_proxy_gold_and_kl(rm_run, tmp_path):  # noqa: F811
    run = copy_run(rm_run, tmp_path)
    summary = ppo_rlhf(FAST, ppo_at(run))
    out = run.stage_dir("rlhf-ppo")
    assert run.is_complete("rlhf-ppo") and (out / "model.safetensors").exists()
    assert summary["completions"] == 8 and summary["memory"]["state_mb"] > 0
    rows = [json.loads(line) for line in (out / "logs" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all({"proxy", "gold", "kl_seq", "reward", "length", "explained_variance"} <= r.keys() for r in rows)
    again = ppo_rlhf(replace(FAST, steps=3), ppo_at(run))
    assert again["resumed_from"] == 2 and again["steps_this_session"] == 1


def test_ppo_rlhf_with_lora_saves_a_merged_policy(rm_run, tmp_path):  # noqa: F811
    run = copy_run(rm_run, tmp_path)
    ppo_rlhf(replace(FAST, steps=1, lora_r=4, value_init="policy"), ppo_at(run))
    saved = LabGPTForCausalLM.from_pretrained(run.stage_dir("rlhf-ppo"))
    assert not any("lora" in k for k in saved.state_dict())


def test_a_reward_model_with_another_tokenizer_is_refused(rm_run, tmp_path):  # noqa: F811
    from lab.model.tokenizer import train_tokenizer

    run = copy_run(rm_run, tmp_path)
    train_tokenizer(["something else entirely"] * 20, vocab_size=300).save_pretrained(run.stage_dir("rm"))
    run.refresh_manifest("rm")  # an rm made with another tokenizer, not a damaged one
    with pytest.raises(LabError, match="tokenizer does not match"):
        ppo_rlhf(FAST, ppo_at(run))


@pytest.mark.parametrize("change, message", [
    ({"minibatch_size": 5}, "must be a multiple of ppo.minibatch_size"),
    ({"value_init": "foo"}, "ppo.value_init must be 'rm' or 'policy'"),
    ({"temperature": 0.0}, "ppo.temperature must be > 0"),
])
def test_settings_are_checked_before_anything_is_loaded(rm_run, tmp_path, change, message):  # noqa: F811
    run = copy_run(rm_run, tmp_path)
    with pytest.raises(LabError, match=message):
        ppo_rlhf(replace(FAST, **change), ppo_at(run))
    assert not run.stage_dir("rlhf-ppo").exists()
