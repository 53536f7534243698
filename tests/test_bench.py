"""`lab bench verify` measures what it says: a realistic mix, verdicts of both kinds, the hostile inputs."""

from lab.experiments.bench import HOSTILE, bench_verify, verify_mix


def test_verify_mix_has_both_answer_markers_and_wrong_answers():
    pairs = verify_mix(30)
    assert len(pairs) == 30
    assert any("####" in r for r, _ in pairs) and any("Answer:" in r for r, _ in pairs)


def test_bench_verify_reports_rates_verdicts_and_the_slowest_check():
    r = bench_verify(60, slowest_of=5)
    assert r["checks"] == 60 and r["checks_per_s_per_core"] > 0
    assert r["reasons"].get("equal", 0) >= 30 and r["reasons"].get("not_equal", 0) >= 10  # a third are wrong
    assert 0 < r["slowest_s"] < 2.0 and len(HOSTILE) >= 5


def test_bench_generate_measures_the_engine_against_hf_generate_on_llama_and_on_labgpt(tiny_model):
    from lab.experiments.bench import bench_generate

    r = bench_generate(model=tiny_model, batch=2, prompt_len=6, new_tokens=5, rounds=1, device="cpu")
    assert set(r["tokens_per_s"]) == {"engine", "hf_generate_llama", "hf_generate_labgpt"}
    assert r["same_greedy_tokens"] == {"hf_generate_llama": True, "hf_generate_labgpt": True}
    assert r["ratio"] == r["tokens_per_s"]["engine"] / r["tokens_per_s"]["hf_generate_llama"]
