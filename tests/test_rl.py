"""RL on math (lab/train/rl_math.py): GRPO and RLOO write a complete stage, a rerun resumes, completions stop at <|im_end|>."""

import json
from dataclasses import replace

import pytest
import torch
from tiny_policy import untrained_policy

import lab.train.rl_math
from lab.errors import LabError
from lab.presets import get_preset, stage_context
from lab.runs import Run
from lab.train.rl_math import rl_math
from lab.train.rl_settings import RLSettings

# Small enough that a step is a fraction of a second: 2 prompts x 4 samples of at most 12 tokens.
FAST = RLSettings(steps=2, num_generations=4, batch_size=8, max_completion_length=12, train_problems=16,
                  eval_problems=6, eval_every=2, ckpt_every=2, log_every=1, lr=1e-3, beta=0.05,
                  tasks=("arithmetic",), bands=(1,))


def with_untrained_policy(run: Run) -> Run:
    """`run` with an untrained tiny labgpt as its complete sft-idk stage (RL only needs a policy + tokenizer)."""
    from tasks.math import MathConfig, generate

    untrained_policy(run, [f"{p.question}\n{p.solution}" for p in generate(MathConfig(bands=(1,)), 200)], context=128)
    return run


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return with_untrained_policy(Run(tmp_path_factory.mktemp("runs") / "r"))


def at(run: Run, stage: str = "rl-math", source: str = "sft-idk", preset=None):
    """The StageContext a stage of `run` gets (the tiny preset's unless `preset`), writing `stage` from `source`."""
    return stage_context(run, preset or get_preset("tiny")).at(stage, source)


def copy_run(run, tmp_path):
    import shutil

    shutil.copytree(run.root, tmp_path / "r")
    return Run(tmp_path / "r")


def read_log(stage_dir):
    return [json.loads(line) for line in (stage_dir / "logs" / "train.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algo,stage,lora_r", [("grpo", "rl-math", 0), ("rloo", "experiments/math-rewards/rloo", 0),
                                                ("dapo", "rl-math", 4)])
def test_a_short_run_writes_a_complete_stage(source, tmp_path, algo, stage, lora_r):
    from safetensors.torch import load_file

    run = copy_run(source, tmp_path)
    probe = 2 if lora_r else 0  # one arm through the solve-rate filter: an untrained policy solves nothing
    summary = rl_math(replace(FAST, algo=algo, lora_r=lora_r, solve_probe_samples=probe), at(run, stage))
    out = run.stage_dir(stage)
    assert run.is_complete(stage) and (out / "tokenizer.json").exists()
    weights = load_file(out / "model.safetensors")  # a plain labgpt checkpoint: LoRA merged in, no adapter left
    assert weights.keys() == load_file(run.stage_dir("sft-idk") / "model.safetensors").keys()
    log = read_log(out)
    steps = [r for r in log if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert [r["step"] for r in log if "heldout_accuracy" in r] == [2]  # eval_every=2, graded mid-training
    for key in ("reward", "kl", "entropy", "accuracy", "rewards/correctness/mean", "rewards/format/mean",
                "completions/mean_length"):
        assert all(key in r for r in steps), key
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["algo"] == algo and on_disk["steps"] == 2 and summary["steps_this_session"] == 2
    assert on_disk["heldout_before"]["all"]["n"] == on_disk["heldout_after"]["all"]["n"] == 6
    if probe:  # nothing qualified, so every problem was trained on, and the summary says so
        assert on_disk["solve_probe"]["filtered"] is False and on_disk["train_problems"] == FAST.train_problems
    else:
        assert on_disk["solve_probe"] is None
    assert len((out / "heldout" / "after.jsonl").read_text().splitlines()) == 6


def test_a_rerun_with_more_steps_resumes_from_the_last_checkpoint(source, tmp_path):
    run = copy_run(source, tmp_path)
    first = rl_math(FAST, at(run))
    assert first["resumed_from"] is None
    second = rl_math(replace(FAST, steps=4), at(run))
    assert second["resumed_from"].endswith("checkpoint-2")
    assert second["steps"] == 4 and second["steps_this_session"] == 2  # steps 1-2 were not trained again
    steps = [r["step"] for r in read_log(run.stage_dir("rl-math")) if "reward" in r]
    assert steps == [1, 2, 3, 4]


def test_completions_stop_at_im_end_and_rewards_see_plain_text(source, tmp_path, monkeypatch):
    """A policy steered to say <|im_end|> at once: TRL must stop there (length 1), and the reward gets ''."""
    from lab.model.labgpt import LabGPTForCausalLM
    from lab.model.tokenizer import load_tokenizer

    run = copy_run(source, tmp_path)
    stage = run.stage_dir("sft-idk")
    model, im_end = LabGPTForCausalLM.from_pretrained(stage), load_tokenizer(stage).convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():  # every hidden state points along dim 0, and <|im_end|>'s (tied) embedding most of all
        for name, p in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                p.zero_()
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 1.0
        emb[im_end, 0] = 3.0
    model.save_pretrained(stage)
    run.refresh_manifest("sft-idk")
    seen = []

    def recording(prompts, completions, **kwargs):
        seen.extend(completions)
        return [0.0] * len(completions)

    monkeypatch.setattr(lab.train.rl_math, "get_rewards", lambda names, context=None: [recording])
    rl_math(replace(FAST, steps=1, rewards=("correctness",), reward_weights=(1.0,)), at(run))
    assert seen and all(c == "" for c in seen)
    assert [r["completions/mean_length"] for r in read_log(run.stage_dir("rl-math")) if "reward" in r] == [1.0]


@pytest.mark.parametrize("change,message", [
    ({"algo": "ppo"}, "unknown rl.algo 'ppo'"),  # refused by RLSettings itself now, naming its field
    ({"rewards": ("correctness", "vibes")}, "vibes"),
    ({"reward_weights": (1.0,)}, "2 rewards .* but 1 reward_weights"),
    ({"batch_size": 6}, "multiple of rl.num_generations"),
])
def test_bad_settings_are_one_clear_error(source, change, message):
    with pytest.raises(LabError, match=message):
        rl_math(replace(FAST, **change), at(source))
    assert not source.stage_dir("rl-math").exists()  # refused before anything was written


def test_a_missing_source_stage_is_a_clear_error(source):
    with pytest.raises(LabError, match="stage 'sft' of run .* is not complete"):
        rl_math(FAST, at(source, source="sft"))


def test_the_solve_rate_filter_keeps_problems_solved_sometimes_and_a_resume_reuses_its_probe(source, tmp_path,
                                                                                            monkeypatch):
    """Canned answers: problem i gets i % 5 right of 4, so only counts 1-3 are kept; the probe is saved and read back."""
    import evals.math_heldout
    import lab.train.rl_math as rl_module
    from lab.model.labgpt import LabGPTForCausalLM
    from lab.model.tokenizer import load_tokenizer
    from tasks.math import MathConfig, generate

    settings = replace(FAST, solve_probe_samples=4, train_problems=20)  # the filter is off by default
    problems = generate(MathConfig(seed=0, tasks=settings.tasks, bands=settings.bands), 20, split="train")
    calls = []

    def canned(model, tokenizer, probs, max_new_tokens, temperature=0.0, per_problem=1, seed=None, batch_size=64):
        calls.append(len(probs))
        return [f"Answer: {p.answer}" if j < i % 5 else "Answer: nothing" for i, p in enumerate(probs)
                for j in range(per_problem)]

    monkeypatch.setattr(evals.math_heldout, "_answers", canned)  # what the probe's sampled_correct draws from
    stage = copy_run(source, tmp_path).stage_dir("sft-idk")
    model, tokenizer = LabGPTForCausalLM.from_pretrained(stage), load_tokenizer(stage)
    kept, report = rl_module.solve_rate_filter(model, tokenizer, problems, settings, tmp_path)
    assert kept == [p for i, p in enumerate(problems) if 0 < i % 5 < 4]
    assert report["filtered"] and report["kept"] == 12 and report["solved_histogram"] == {str(c): 4 for c in range(5)}
    again, _ = rl_module.solve_rate_filter(model, tokenizer, problems, settings, tmp_path)
    assert again == kept and calls == [20]  # read back from solve_probe.json, not probed again
    with pytest.raises(LabError, match="probed with other settings"):
        rl_module.solve_rate_filter(model, tokenizer, problems, replace(settings, solve_probe_samples=8), tmp_path)
    # fewer qualifying problems than one step's prompts (2 here): train on every problem, and say so
    few, report = rl_module.solve_rate_filter(model, tokenizer, problems[:2], settings, tmp_path / "sft-idk")
    assert few == problems[:2] and not report["filtered"]


@pytest.mark.parametrize("samples", [1, -2])
def test_a_solve_probe_of_fewer_than_two_answers_is_refused(samples):
    with pytest.raises(LabError, match="rl.solve_probe_samples"):
        replace(FAST, solve_probe_samples=samples)


@pytest.mark.parametrize("algo", ["dr_grpo", "rloo"])
def test_the_policy_learns_a_toy_reward_and_unlearns_it_when_the_sign_flips(source, tmp_path, monkeypatch, algo):
    """Reward: the share of a completion's characters that are "1". Training must raise the policy's probability
    of starting its answer with that token, and the same run with the reward negated must lower it: a broken
    advantage (zeroed, or of the wrong sign) fails one side."""
    from lab.model.chat_format import chat_prompts
    from lab.model.labgpt import LabGPTForCausalLM
    from lab.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(source.stage_dir("sft-idk"))
    target = tokenizer.convert_tokens_to_ids("1")
    questions = ["Compute 3 + 4.", "What is 9 - 2?", "Calculate 5 + 5.", "What is 8 - 6?"]
    prompts = [ids for _, ids in chat_prompts(tokenizer, questions)]

    def first_token_probability(stage_dir) -> float:
        model = LabGPTForCausalLM.from_pretrained(stage_dir).eval()
        with torch.no_grad():
            return sum(model(torch.tensor([p])).logits[0, -1].softmax(-1)[target].item() for p in prompts) / len(prompts)

    before = first_token_probability(source.stage_dir("sft-idk"))
    after = {}
    for sign in (1, -1):
        def ones(prompts, completions, sign=sign, **kwargs):
            return [sign * c.count("1") / max(1, len(c)) for c in completions]

        monkeypatch.setattr(lab.train.rl_math, "get_rewards", lambda names, context=None, f=ones: [f])
        run = copy_run(source, tmp_path / f"sign{sign}")
        settings = replace(FAST, algo=algo, steps=12, eval_every=0, ckpt_every=0, beta=0.0, lr=3e-3,
                           rewards=("correctness",), reward_weights=(1.0,), temperature=1.0)
        rl_math(settings, at(run))
        after[sign] = first_token_probability(run.stage_dir("rl-math"))
    assert after[1] > 1.5 * before and after[-1] < 0.8 * before, (before, after)


def test_a_toy_reward_registered_outside_the_lab_is_trained_on_by_name(source, tmp_path):
    """Adding a reward is a function and its registration: rl.rewards names it, and TRL logs it under that name."""
    from rewards.registry import REWARDS, register_reward

    @register_reward("short_answer")
    def short_answer(prompts, completions, **kwargs):
        return [1.0 if len(c) < 20 else 0.0 for c in completions]

    try:
        settings = replace(FAST, steps=1, eval_every=0, rewards=("correctness", "short_answer"), reward_weights=(1.0, 0.5))
        rl_math(settings, at(copy_run(source, tmp_path)))
        logged = read_log(tmp_path / "r" / "rl-math")
        assert any("rewards/short_answer/mean" in r for r in logged)
    finally:
        REWARDS.pop("short_answer", None)
