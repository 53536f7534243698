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
