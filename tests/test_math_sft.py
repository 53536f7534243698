"""The sft-math stage (lab/train/math_practice.py): practice on worked solutions, the start of rl-math."""

from dataclasses import replace

import pytest
import torch
from test_rl import copy_run, source  # noqa: F401  (fixture: a run with an untrained tiny sft-idk)

from lab.errors import LabError
from lab.model.labgpt import LabGPTForCausalLM
from lab.presets import get_preset, stage_context
from lab.train.math_practice import math_sft
from lab.train.sft_settings import MathSFTSettings

SMALL = MathSFTSettings(tasks=("arithmetic",), bands=(1,), problems=12, replay=4, batch_size=4, log_every=1,
                        ckpt_every=1)


def sft_math_at(run, preset):
    """The context of `run`'s sft-math stage under `preset`: written from sft-idk."""
    return stage_context(run, preset).at("sft-math", "sft-idk")


def test_practice_trains_every_problem_once_and_writes_a_loadable_stage(source, tmp_path):  # noqa: F811
    run = copy_run(source, tmp_path)
    summary = math_sft(SMALL, sft_math_at(run, get_preset("tiny", ["sft.max_length=128"])))
    assert run.is_complete("sft-math") and summary["problems"] == 12 and summary["replayed"] == 4
    # 12 problems, each worked and direct, and 4 replayed: 28 conversations, 4 a step
    assert summary["steps"] == 7 and summary["tokens_trained"] > 0
    before = LabGPTForCausalLM.from_pretrained(run.stage_dir("sft-idk"))
    after = LabGPTForCausalLM.from_pretrained(run.stage_dir("sft-math"))
    assert not torch.equal(before.lm_head.weight, after.lm_head.weight)  # it trained
    assert (run.stage_dir("sft-math") / "tokenizer.json").exists()


def test_practice_checks_and_slips_the_shares_it_is_given(source, tmp_path):  # noqa: F811
    """Every problem checked and slipped (band 1: one-digit sums and differences, all column procedures), and none:
    the summary counts what the practice data held."""
    run = copy_run(source, tmp_path)
    every = replace(SMALL, problems=4, replay=0, check_share=1.0, slip_share=1.0, ckpt_every=0)
    summary = math_sft(every, sft_math_at(run, get_preset("tiny")))
    assert summary["checked"] == summary["slipped"] == summary["slips_hidden"] == 4 and summary["dropped_too_long"] == 0
    run = copy_run(source, tmp_path / "none")
    summary = math_sft(replace(every, check_share=0.0), sft_math_at(run, get_preset("tiny")))
    assert summary["checked"] == summary["slipped"] == 0


def test_an_unknown_task_is_one_clear_error(source, tmp_path):  # noqa: F811
    run = copy_run(source, tmp_path)
    with pytest.raises(LabError, match="calculus"):
        math_sft(MathSFTSettings(tasks=("calculus",)), sft_math_at(run, get_preset("tiny")))
    with pytest.raises(LabError, match="answer form.*mumbled"):
        math_sft(MathSFTSettings(forms=("worked", "mumbled")), sft_math_at(run, get_preset("tiny")))
    assert not run.is_complete("sft-math")


def test_practice_carries_the_system_message_the_evals_send_at_sfts_share():
    from lab.train.math_practice import solution_records, with_system_messages
    from tasks.identity import system_message
    from tasks.math import MathConfig, generate

    preset = get_preset("tiny")
    records = with_system_messages(solution_records(generate(MathConfig(bands=(1,)), 200)), preset.sft, seed=0)
    with_system = [r for r in records if r["messages"][0]["role"] == "system"]
    assert all(r["messages"][0]["content"] == system_message(preset.sft.identity) for r in with_system)
    assert 70 < len(with_system) < 130  # the share is 0.5
    assert with_system_messages(solution_records(generate(MathConfig(bands=(1,)), 200)), preset.sft, seed=0) == records
    none = get_preset("tiny", ["sft.mixture.system_prompt_share=0"])
    plain = solution_records(generate(MathConfig(bands=(1,)), 50))
    assert with_system_messages(plain, none.sft, seed=0) == plain


@pytest.mark.parametrize("lr", [MathSFTSettings.lr, 0.0])
def test_practice_lowers_the_loss_on_its_solutions_and_not_at_lr_zero(source, tmp_path, lr):  # noqa: F811
    """20 steps of practice at the stage's own lr cut the training loss by 0.74-0.79 nats (6 seeds); at lr 0 the
    same batches, in the same order, move it by at most 0.03. So a fall of 0.3 is learning, not batch noise or
    an easy last batch."""
    from lab.runs import read_train_log

    run = copy_run(source, tmp_path)
    settings = replace(SMALL, problems=80, replay=0, batch_size=8, lr=lr, ckpt_every=0)  # 160 conversations
    math_sft(settings, sft_math_at(run, get_preset("tiny", ["sft.max_length=128"])))
    losses = [r["loss"] for r in read_train_log(run.stage_dir("sft-math")) if "loss" in r]
    fall = sum(losses[:3]) / 3 - sum(losses[-3:]) / 3
    assert len(losses) == 20 and (fall > 0.3 if lr else abs(fall) < 0.05), (fall, losses)


def test_a_planted_slip_is_read_but_never_trained_on(source):  # noqa: F811
    """hide_slips takes exactly the slip's line out of the loss; the check that catches it and the redo stay in."""
    from lab.model.tokenizer import decode_ids, load_tokenizer
    from lab.train.math_practice import hide_slips, solution_records
    from lab.train.sft import build_dataset
    from tasks.math import MathConfig, generate
    from tasks.math_checks import slip_line

    tokenizer = load_tokenizer(source.stage_dir("sft-idk"))
    problems = generate(MathConfig(seed=4, tasks=("arithmetic",), bands=(2,), check_share=1.0, slip_share=0.5), 40)
    dataset, _ = build_dataset(solution_records(problems), tokenizer, 384)
    hidden, count = hide_slips(dataset, tokenizer)
    assert count == sum(p.extras["slipped"] for p in problems) > 0
    for p, before, after in zip(problems, dataset, hidden):
        out = [t for t, a, b in zip(before["input_ids"], before["assistant_masks"], after["assistant_masks"]) if a != b]
        assert decode_ids(tokenizer, out) == (slip_line(p.solution) if p.extras["slipped"] else "")
        assert all(b <= a for a, b in zip(before["assistant_masks"], after["assistant_masks"]))
