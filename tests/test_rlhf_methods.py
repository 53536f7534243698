"""The four-method RLHF comparison (lab/experiments/rlhf_methods.py): every policy scored alike, KL measured, costs recorded."""

import json

import pytest
from test_pretrain import small_preset
from test_reward_model import source  # noqa: F401  (fixture rm_run builds on)
from test_rl import at, copy_run
from test_rlhf import rm_run  # noqa: F401  (fixture: a tiny run with sft-idk and rm stages)

from lab.experiments.rlhf_methods import METHODS, NEEDS, OUT, gold_at_kl, run_rlhf_methods, turnover
from lab.pipeline import provide
from rewards.gold import gold_score
from tasks.world import build_world


def test_gold_at_kl_interpolates_the_path():
    path = [{"kl": 0.0, "gold": 0.0}, {"kl": 1.0, "gold": 0.2}, {"kl": 3.0, "gold": 0.6}]
    assert gold_at_kl(path, 2.0) == pytest.approx(0.4)  # halfway between the last two points
    assert gold_at_kl(path, 0.0) == pytest.approx(0.0)
    assert gold_at_kl(path, 5.0) is None  # the path never got that far from the start


def test_the_turnover_peak_is_chosen_on_one_half_and_measured_on_the_other():
    def rows(even, odd):
        return [{"gold": even if i % 2 == 0 else odd} for i in range(10)]

    # step 1 looks best on the even prompts, but on the odd ones it is no better than the end
    path = [rows(0.0, 0.0), rows(0.9, 0.1), rows(0.5, 0.5), rows(0.2, 0.1)]
    result = turnover(path)
    assert result["peak_index"] == 1
    assert result["final_minus_peak"]["difference"] == pytest.approx(0.0) and result["final_minus_peak"]["n"] == 5


TINY = ["ppo.steps=2", "ppo.batch_size=4", "ppo.minibatch_size=2", "ppo.max_completion_length=8", "ppo.snapshot_every=1",
        "rlhf.steps=2", "rlhf.batch_size=8", "rlhf.max_completion_length=8", "rlhf.snapshot_every=1",
        "dpo.epochs=1", "dpo.batch_size=8",
        "rlhf_methods.prompts=8", "rlhf_methods.max_new_tokens=8", "rlhf_methods.batch_size=4"]


def test_four_methods_are_trained_and_scored_on_the_same_prompts(rm_run, tmp_path):  # noqa: F811
    run = copy_run(rm_run, tmp_path)
    provide(run, small_preset(*TINY), NEEDS)  # as `lab experiment rlhf-methods` does
    results = run_rlhf_methods(small_preset(*TINY).rlhf_methods, at(run, OUT, preset=small_preset(*TINY)))
    assert all(run.is_complete(stage) for stage in (*METHODS, OUT))
    methods = results["methods"]
    assert list(methods) == ["sft-idk", *METHODS]
    assert methods["sft-idk"]["kl"]["value"] == 0.0  # the reference against itself: every log-ratio is 0
    assert methods["dpo"]["kl"]["value"] != 0.0  # DPO moved the policy, though it never sampled
    assert methods["dpo"]["completions"] == 0 and methods["rlhf-ppo"]["completions"] == 8
    assert methods["rlhf-grpo"]["completions"] == methods["rlhf-rloo"]["completions"] == 16
    for stage in METHODS:
        m = methods[stage]
        assert m["gold_vs_source"]["n"] == 8 and m["memory_mb"] > 0 and m["seconds"] > 0
    samples = {stage: [json.loads(line) for line in (run.stage_dir(OUT) / "samples" / f"{stage}.jsonl").open()]
               for stage in methods}
    world = build_world(small_preset(*TINY).data.world)
    for stage in METHODS[:3]:  # sft-idk, the step-1 snapshot, the finished policy: each evaluated alike
        path = methods[stage]["path"]
        assert [p["step"] for p in path] == [0, 1, 2] and path[0]["kl"] == 0.0
        # the path's last point is the finished policy: its gold, judged again from the saved answers
        rejudged = [gold_score(world, r["person"], r["answer"], finished=r["finished"]).total for r in samples[stage]]
        assert path[-1]["gold"] == pytest.approx(sum(rejudged) / len(rejudged))
        assert methods[stage]["turnover"]["final_minus_peak"]["n"] == 4
    people = [r["person"] for r in samples["sft-idk"]]
    assert all([r["person"] for r in rows] == people for rows in samples.values())  # paired by prompt
    assert (run.stage_dir(OUT) / "samples" / "rlhf-ppo-step-1.jsonl").exists()
    table = (run.stage_dir(OUT) / "table.md").read_text()
    assert all(f"| {stage} |" in table for stage in methods)
    assert (run.stage_dir(OUT) / "rlhf_methods.png").stat().st_size > 10_000
