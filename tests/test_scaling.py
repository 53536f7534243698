"""The scaling sweep: size parsing and its errors at preset load, the power-law fit on known numbers, the abrupt-
copying rule (Schaeffer et al. 2023) on hand-made rows, the continuous copy score, a sweep end to end, and the
experiments/scaling stage in the pipeline's graph."""

import dataclasses
import json

import pytest
import torch
from test_pretrain import small_preset

from lab.errors import LabError
from lab.experiments.scaling import abruptness, copy_per_digit, fit_power_law, parse_sizes, run_sweep, sized
from lab.model.tokenizer import load_tokenizer
from lab.pipeline import run_pipeline
from lab.presets import get_preset, stage_context
from lab.runs import Run
from lab.stage_names import SCALING, TOKENIZER
from lab.stages import by_name
from lab.train.pretrain import model_config
from lab.train.pretrain_settings import ModelShape, PretrainSettings


def test_parse_sizes_and_its_errors():
    assert parse_sizes("32x1, 64X2") == ((32, 1), (64, 2))
    with pytest.raises(LabError, match="hidden size x layers"):
        parse_sizes("32-1")
    with pytest.raises(LabError, match="multiples of 32"):
        parse_sizes("48x2")


@pytest.mark.parametrize("overrides,message", [
    (["scaling.sizes=48x2,64x2"], r"scaling\.sizes: hidden sizes must be positive multiples of 32 .* got 48x2"),
    (["scaling.sizes=64x0,64x2"], r"scaling\.sizes: .*layers at least 1, got 64x0"),
    (["scaling.sizes=64x2"], r"scaling\.sizes needs at least two sizes"),
    (["scaling.steps=10"], r"scaling\.steps must be at least scaling\.warmup_steps \(25\)"),
    (["scaling.warmup_steps=-1"], r"scaling\.warmup_steps must be a whole number >= 0"),
])
def test_a_sweep_that_cannot_be_built_is_one_line_at_preset_load(overrides, message):
    with pytest.raises(LabError, match=message) as error:
        get_preset("tiny", overrides)
    assert "\n" not in str(error.value)


def test_every_size_the_settings_accept_builds_a_model():
    """Heads of 32 dimensions share key/value heads in groups that divide them (160 wide: 5 heads, 1 group)."""
    for hidden in (32, 96, 160, 224, 256):
        shape, train = sized(ModelShape(), PretrainSettings(), hidden, 2, 40, 4)
        config = model_config(shape, 64)
        assert config.num_attention_heads * 32 == hidden and config.num_attention_heads % config.num_key_value_heads == 0
        assert (train.max_steps, train.warmup_steps, train.reading_probes) == (40, 4, False)


def _rows(exact, digits):
    return [{"size": f"s{i}", "non_embedding_parameters": 1000 * 2 ** i,
             "reading": {"copy_digits_8": e, "copy_digit_accuracy": d}} for i, (e, d) in enumerate(zip(exact, digits))]


@pytest.mark.parametrize("exact,digits,verdict,at", [
    # exact match jumps 0.6 from s1 to s2, and per-digit accuracy takes its largest step there too
    ([0.0, 0.05, 0.65, 0.7], [0.1, 0.3, 0.9, 0.95], "abrupt under both", ("s1", "s2")),
    # the same exact-match jump, while per digit rose most from s0 to s1: the mirage
    ([0.0, 0.05, 0.65, 0.7], [0.1, 0.6, 0.85, 0.95], "abrupt only under exact match", ("s1", "s2")),
    # no rise of 0.25 between neighbours, however the continuous metric moves
    ([0.0, 0.2, 0.4, 0.6], [0.1, 0.6, 0.8, 0.9], "smooth", ("s0", "s1")),
])
def test_the_abruptness_rule_on_hand_made_rows(exact, digits, verdict, at):
    rows = _rows(exact, digits)
    result = abruptness(list(reversed(rows)))  # neighbours by size, not by the order given
    assert result["verdict"] == verdict
    assert (result["largest_exact"]["from"], result["largest_exact"]["to"]) == at
    assert [s["exact"] for s in result["steps"]] == pytest.approx([b - a for a, b in zip(exact, exact[1:])])


class _Copier(torch.nn.Module):
    """Predicts the token one period back: a perfect copier of `text\ntext\n` once it has seen a period."""

    def __init__(self, vocab: int, period: int):
        super().__init__()
        self.vocab, self.period, self.w = vocab, period, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids):
        ids = input_ids[0]
        logits = torch.zeros(1, len(ids), self.vocab)
        for p in range(len(ids)):
            if p + 1 - self.period >= 0:
                logits[0, p, ids[p + 1 - self.period]] = 20.0
        return type("Out", (), {"logits": logits})()


def test_the_continuous_copy_score_is_teacher_forced_on_the_copy(prepared_run):
    tokenizer = load_tokenizer(prepared_run.stage_dir(TOKENIZER))
    perfect = copy_per_digit(_Copier(len(tokenizer), 9), tokenizer)  # 8 digits and a newline: a period of 9 tokens
    assert perfect["copy_digit_accuracy"] == 1.0 and perfect["copy_digit_loglik"] > -0.01
    shifted = copy_per_digit(_Copier(len(tokenizer), 8), tokenizer)  # one token off: (almost) never the digit
    assert shifted["copy_digit_accuracy"] < 0.3


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_pipeline(small_preset("pretrain.max_steps=4", "pretrain.ckpt_every=2", "pretrain.log_every=2"), root, "r",
                 until="tokenizer")
    return Run.open_existing(root / "r")


def test_power_law_fit_recovers_known_coefficients():
    params = [1e4, 3e4, 1e5, 3e5, 1e6]
    losses = [1.5 + 40 * n ** -0.35 for n in params]
    fit = fit_power_law(params, losses)
    assert fit["alpha"] == pytest.approx(0.35, abs=0.03) and fit["E"] == pytest.approx(1.5, abs=0.1)


def test_sweep_trains_each_size_once_and_writes_table_and_plot(tmp_path):
    preset = small_preset("pretrain.max_steps=4", "pretrain.ckpt_every=2", "pretrain.log_every=2",
                          "scaling.warmup_steps=1")
    run_pipeline(preset, tmp_path, "r", until="tokenizer")
    run = Run.open_existing(tmp_path / "r")
    context = stage_context(run, preset).at("experiments/scaling")
    rows = run_sweep(preset.scaling, context, preset.pretrain, ((32, 1), (64, 1)), steps=4)
    assert [r["size"] for r in rows] == ["d32-l1", "d64-l1"]
    assert rows[0]["parameters"] < rows[1]["parameters"] and rows[0]["flops"] < rows[1]["flops"]
    assert set(rows[0]["recall_by_k"]) == {"0", "1", "2"}
    assert {"induction_score", "copy_digits_8", "copy_digit_accuracy", "copy_digit_loglik", "open_book_corpus",
            "open_book_novel"} <= set(rows[0]["reading"])
    out = run.stage_dir("experiments/scaling")
    table = (out / "table.md").read_text()
    assert "induction score" in table and "copy per digit" in table
    results = json.loads((out / "results.json").read_text())
    assert results["fit"]["alpha"] is not None and results["abruptness"]["verdict"] in table
    assert (out / "scaling.png").stat().st_size > 1000 and "| d64-l1 |" in table
    stamp = (out / "d32-l1" / "COMPLETE").stat().st_mtime_ns
    run_sweep(preset.scaling, context, preset.pretrain, ((32, 1), (64, 1)), steps=4)
    assert (out / "d32-l1" / "COMPLETE").stat().st_mtime_ns == stamp  # finished sizes are not retrained
    run_sweep(preset.scaling, context, preset.pretrain, ((32, 1), (64, 1)), steps=6)
    assert json.loads((out / "d32-l1" / "summary.json").read_text())["settings"]["max_steps"] == 6  # other steps: again
    with pytest.raises(LabError, match=r"scaling steps \(2\) must be at least scaling.warmup_steps \(5\)"):
        run_sweep(dataclasses.replace(preset.scaling, warmup_steps=5), context, preset.pretrain, ((32, 1), (64, 1)),
                  steps=2)  # `lab experiment scaling --steps` below the preset's warm-up


def test_the_sweep_is_a_pipeline_stage_on_the_run_data():
    stage = by_name()[SCALING]
    assert stage.parents == (TOKENIZER,) and stage.section == "scaling" and stage.source is None
    assert stage.function().__name__ == "scaling_stage" and stage.report_sections() is not None
    assert [s.name for s in by_name().values()].index(SCALING) < [s.name for s in by_name().values()].index("export")


def test_every_preset_has_a_valid_sweep():
    from lab.presets import PRESETS, get_preset

    for name in PRESETS:
        assert len(parse_sizes(get_preset(name).scaling.sizes)) >= 4


@pytest.mark.parametrize("digits,verdict,unmet", [
    ([0.1, 0.3, 0.9, 0.95], "shown", ""),
    ([0.1, 0.6, 0.85, 0.95], "not shown at this size", "abrupt only under exact match: the continuous metric's "
                                                         "largest step is elsewhere"),
])
def test_the_claims_row_reads_the_jump_and_withholds_a_mirage(tmp_path, digits, verdict, unmet):
    from reports.claim_verdicts import verdict as claim_verdict
    from reports.claims import CLAIMS

    rows = _rows([0.0, 0.05, 0.65, 0.7], digits)
    out = tmp_path / "r" / "experiments" / "scaling"
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps({"rows": rows, "abruptness": abruptness(rows)}))
    run = Run(tmp_path / "r")
    run.mark_complete("experiments/scaling")
    claim = next(c for c in CLAIMS if c.claim == "some abilities appear abruptly with size")
    effect = claim.measure(run)
    assert effect.value == pytest.approx(0.6) and effect.low > 0 and effect.unmet == unmet  # 2/40 -> 26/40
    assert claim_verdict(claim, effect) == verdict
