"""`lab bench verify` measures what it says: a realistic mix, verdicts of both kinds, the hostile inputs."""

import pytest

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


def test_the_readme_table_is_rendered_from_bench_results_and_replaces_only_its_block(tiny_model):
    from lab.experiments.bench import (
        PERF_BEGIN,
        PERF_END,
        bench_generate,
        bench_train,
        machine,
        perf_rows,
        replace_perf_block,
    )
    from lab.presets import get_preset

    preset = get_preset("tiny", ["model.hidden_size=32", "model.num_hidden_layers=1", "pretrain.seq_len=16",
                                 "pretrain.batch_size=2"])
    result = {"machine": machine(), "preset": "tiny", "train": bench_train(preset, steps=5, vocab_size=97, device="cpu"),
              "generate": {"2": bench_generate(model=tiny_model, batch=2, prompt_len=6, new_tokens=5, rounds=1, device="cpu")},
              "verify": bench_verify(20, slowest_of=2)}
    table = perf_rows([result])
    assert f"{result['train']['ratio']:.2f}" in table and f"{result['generate']['2']['ratio']:.2f}" in table
    assert result["machine"]["versions"]["torch"] in table and "identical greedy tokens" in table
    readme = f"# lab\nbefore\n{PERF_BEGIN}\n| old | row |\n{PERF_END}\nafter\n"
    updated = replace_perf_block(readme, table)
    assert "| old | row |" not in updated and table in updated
    assert updated.startswith("# lab\nbefore\n") and updated.endswith(f"{PERF_END}\nafter\n")
    assert replace_perf_block(updated, table) == updated
    with pytest.raises(ValueError, match="no .* block to fill"):
        replace_perf_block("# a README without the markers\n", table)


def test_the_readmes_performance_rows_are_the_committed_bench_results():
    """Never typed by hand: `lab bench table reports/bench/*.json --readme README.md` wrote them."""
    from pathlib import Path

    from lab.experiments.bench import PERF_BEGIN, PERF_END, perf_rows, replace_perf_block
    from lab.runs import read_json

    root = Path(__file__).resolve().parents[1]
    results = [read_json(f) for f in sorted((root / "reports" / "bench").glob("*.json"))]
    readme = (root / "README.md").read_text()
    assert results and PERF_BEGIN in readme and PERF_END in readme
    assert replace_perf_block(readme, perf_rows(results)) == readme


def test_bench_verify_cases_scores_both_verifiers_on_the_labels_and_names_what_ours_gets_wrong(tmp_path):
    import json

    from lab.experiments.bench import bench_verify_cases, load_cases

    rows = [("\\boxed{\\frac{10}{9}}", "10/9", True), ("$\\dfrac{1}{2}$", "0.5", True), ("1 000", "1000", True),
            ("\\boxed{9/10}", "10/9", False), ("(1, 2]", "(1, 2)", False), ("#### 4", "4", False)]  # last: mislabelled
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps({"id": f"c{i}", "prediction": p, "gold": g, "equal": e}) + "\n"
                            for i, (p, g, e) in enumerate(rows)))
    r = bench_verify_cases(load_cases(path))
    assert r["ours"]["agreement"] == 5 / 6 and r["ours"]["wrong"] == ["c5"]
    assert r["ours"]["positives_accepted"] == 1.0 and r["ours"]["negatives_rejected"] == 2 / 3
    assert r["math_verify"]["version"] and 0 <= r["math_verify"]["agreement"] <= 1  # math-verify is in [dev]


@pytest.mark.parametrize("text,message", [("{nope", "cases.jsonl:1: not JSON"),
                                          ('{"prediction": "1", "gold": "1"}', "cases.jsonl:1: a case needs"),
                                          ("", "holds no cases")])
def test_a_bad_cases_file_is_one_clear_error(tmp_path, text, message):
    from lab.errors import LabError
    from lab.experiments.bench import load_cases

    (tmp_path / "cases.jsonl").write_text(text)
    with pytest.raises(LabError, match=message):
        load_cases(tmp_path / "cases.jsonl")
