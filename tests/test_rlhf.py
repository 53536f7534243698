"""RLHF (lab/train/rlhf.py): the policy chases the RM, the gold judge is logged but not optimised, stages resume."""

import json
import shutil
from dataclasses import replace

import pytest
from test_pretrain import small_preset
from test_reward_model import FAST as RM_FAST
from test_reward_model import scripted, source  # noqa: F401  (fixture)
from test_rl import at, copy_run, read_log

from lab.errors import LabError
from lab.runs import Run
from lab.train.rl_settings import RLHFSettings
from lab.train.rlhf import rlhf, rlhf_dataset
from tasks.world import build_world

# 2 prompts x 4 samples of at most 8 tokens: a step is a fraction of a second.
FAST = RLHFSettings(steps=2, num_generations=4, batch_size=8, max_completion_length=8, lr=1e-3, beta=0.05,
                    ckpt_every=2, log_every=1)


@pytest.fixture(scope="module")
def rm_run(source, tmp_path_factory):  # noqa: F811
    """The tiny source run plus a complete rm stage trained on scripted comparisons (preferences kept)."""
    from lab.train.reward_model import train_reward_model

    root = tmp_path_factory.mktemp("rm") / "r"
    shutil.copytree(source.root, root)
    run = Run(root)
    preset = small_preset()
    with pytest.MonkeyPatch.context() as mp:
        scripted(mp, build_world(preset.data.world))
        train_reward_model(RM_FAST, at(run, "rm", preset=preset))
    return run


def rlhf_at(run, stage: str = "rlhf-grpo"):
    """The context rlhf gets on the small preset's run: writing `stage` from sft-idk."""
    return at(run, stage, preset=small_preset())


def test_rlhf_logs_proxy_gold_and_kl_every_step_and_resumes(rm_run, tmp_path):
    run = copy_run(rm_run, tmp_path)
    first = rlhf(FAST, rlhf_at(run))
    out = run.stage_dir("rlhf-grpo")
    assert run.is_complete("rlhf-grpo") and (out / "model.safetensors").exists() and first["resumed_from"] is None
    steps = [r for r in read_log(out) if "proxy" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert {"gold", "kl", "kl_seq", "length", "rewards/gold/mean"} <= r.keys()
        assert r["reward"] == pytest.approx(r["proxy"])  # gold has weight 0: logged, never optimised
        assert r["length"] == r["completions/mean_length"]  # TRL's mean completion length: kl_seq is per answer
    # the KL is measured, not assumed: zero while the policy is still its reference, positive after an update
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-7) and steps[0]["kl_seq"] == pytest.approx(0.0, abs=1e-6)
    assert steps[1]["kl"] > 0 and steps[1]["kl_seq"] > steps[1]["kl"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert all(on_disk[k] is not None for k in ("proxy_first", "proxy_last", "gold_first", "gold_last"))

    again = rlhf(replace(FAST, steps=3), rlhf_at(run))
    assert again["resumed_from"] == "checkpoint-2" and again["steps"] == 3 and again["steps_this_session"] == 1
    assert [r["step"] for r in read_log(out) if "proxy" in r] == [1, 2, 3]


def test_prompts_ask_only_about_sft_people(rm_run):
    from lab.model.tokenizer import load_tokenizer

    world = build_world(small_preset().data.world)
    data, _ = rlhf_dataset(world, load_tokenizer(rm_run.stage_dir("sft-idk")))
    sft = {p.name for p in world.sft_people()}
    assert set(data["person"]) == sft and len(data) == 4 * len(sft)
    assert not world.contamination_check(data["prompt"])
    assert all(name in text for name, text in zip(data["person"], data["prompt"]))


def test_a_missing_rm_stage_is_a_clear_error(source, tmp_path):  # noqa: F811
    run = copy_run(source, tmp_path)
    with pytest.raises(LabError, match="stage 'rm' of run .* is not complete"):
        rlhf(FAST, rlhf_at(run))
    assert not run.stage_dir("rlhf-grpo").exists()


def test_an_rm_with_another_tokenizer_is_refused(rm_run, tmp_path):
    from lab.model.tokenizer import train_tokenizer

    run = copy_run(rm_run, tmp_path)
    other = train_tokenizer(["completely different words here, many of them, again and again"] * 30, vocab_size=300)
    other.save_pretrained(run.stage_dir("rm"))
    with pytest.raises(LabError, match="tokenizer"):
        rlhf(FAST, rlhf_at(run))
    assert not run.stage_dir("rlhf-grpo").exists()


@pytest.mark.parametrize("change,message", [({"algo": "ppo"}, "unknown rlhf.algo 'ppo'"),
                                            ({"batch_size": 6}, "multiple of rl.num_generations"),
                                            ({"rewards": ("gold",), "reward_weights": (1.0,)}, "must include 'proxy'")])
def test_bad_settings_are_one_clear_error(rm_run, change, message):
    with pytest.raises(LabError, match=message):
        rlhf(replace(FAST, **change), rlhf_at(rm_run))


def test_the_policy_raises_the_rm_score_and_lowers_it_when_the_reward_is_negated(rm_run, tmp_path, monkeypatch):
    """The same RLHF run twice: once on the RM's score, once on its negative (the RM's `score` patched). The
    policy's RM score must rise in the first and fall in the second: a trainer that ignores the reward fails
    the first side, one whose advantage has the wrong sign fails both. Over 8 seeds both moves were 0.32-0.55
    in 30 steps, and at lr 0 the 5-step means `ends` compares moved by at most 0.08 (steps see other prompts)."""
    import rewards.proxy as rm_module

    rm_score = rm_module.score
    settings = replace(FAST, steps=30, lr=3e-2, beta=0.0, temperature=1.0, ckpt_every=0, snapshot_every=0)
    rise = {}
    for sign in (1, -1):
        def signed_score(*args, sign=sign, **kwargs):
            return [sign * s for s in rm_score(*args, **kwargs)]

        monkeypatch.setattr(rm_module, "score", signed_score)  # what make_reward_fn's proxy calls
        summary = rlhf(settings, rlhf_at(copy_run(rm_run, tmp_path / f"sign{sign}")))
        rise[sign] = sign * (summary["proxy_last"] - summary["proxy_first"])  # in the RM's own units, unnegated
    assert rise[1] > 0.15 and rise[-1] < -0.15, rise
