"""The stage graph (lab/stages.py): the lists the rest of the lab reads are derived from the declarations, a
toy stage runs in a toy pipeline without editing any shared list, and a bad declaration is one clear error."""

import dataclasses
import json
from dataclasses import dataclass

import pytest

from lab.errors import LabError
from lab.pipeline import provide, run_pipeline
from lab.presets import get_preset, preset_type
from lab.runs import Run
from lab.stage_names import BASE, DPO, RL_MATH, RLHF_GRPO, RLHF_PPO, RLHF_RLOO, SFT, SFT_IDK, SFT_MATH
from lab.stages import STAGES, Stage, by_name, check_stages, compared, eval_suites, stage_sections, stage_settings


@dataclass
class CountSettings:
    start: int = 1  # the number the first stage writes
    step: int = 1  # what each later stage adds


def write_start(settings: CountSettings, context) -> None:
    out = context.run.open_stage(context.stage)
    (out / "n.json").write_text(json.dumps(settings.start))
    context.run.mark_complete(context.stage)


def add_step(settings: CountSettings, context) -> None:
    n = json.loads((context.run.require(context.source) / "n.json").read_text())
    out = context.run.open_stage(context.stage)
    (out / "n.json").write_text(json.dumps(n + settings.step))
    context.run.mark_complete(context.stage)


TOY = [
    Stage("first", (), write_start, "count", CountSettings),
    Stage("second", ("first",), add_step, "count", CountSettings, source="first"),
    Stage("third", ("second",), add_step, "count", CountSettings, source="second", settings_changes=(("step", 10),)),
]


def test_a_toy_stage_runs_in_a_toy_pipeline_with_its_own_settings_section(tmp_path):
    ToyPreset = preset_type(TOY, "ToyPreset")
    preset = ToyPreset(name="toy")
    assert preset.count == CountSettings()  # the section comes from the declaration
    preset.count.start = 5
    run = run_pipeline(preset, tmp_path, stages=TOY)
    read = [json.loads((run.stage_dir(s.name) / "n.json").read_text()) for s in TOY]
    assert read == [5, 6, 16]  # the third stage's own change to the shared section
    again = run_pipeline(preset, tmp_path, stages=TOY)  # complete stages are skipped, not rerun
    assert (again.stage_dir("third") / "COMPLETE").stat().st_mtime == (run.stage_dir("third") / "COMPLETE").stat().st_mtime


def test_provide_trains_only_what_a_toy_experiment_needs(tmp_path):
    ToyPreset = preset_type(TOY, "ToyPreset")
    run = Run.create_or_open(tmp_path / "toy", ToyPreset(name="toy"))
    provide(run, ToyPreset(name="toy"), ("second",), stages=TOY)
    assert run.is_complete("first") and run.is_complete("second") and not run.is_complete("third")


def test_the_lists_the_lab_reads_are_derived_from_the_declarations():
    from reports.report import EVAL_STAGES, STAGE_PAIRS
    from reports.rl_sections import RLHF_STAGES

    assert EVAL_STAGES == (BASE, SFT, SFT_IDK, SFT_MATH, RL_MATH, DPO, RLHF_GRPO, RLHF_PPO)
    assert STAGE_PAIRS == ((BASE, SFT), (SFT, SFT_IDK), (SFT_IDK, SFT_MATH), (SFT_MATH, RL_MATH), (SFT_IDK, DPO),
                           (SFT_IDK, RLHF_GRPO), (SFT_IDK, RLHF_PPO))
    assert list(RLHF_STAGES) == [RLHF_GRPO, RLHF_PPO, RLHF_RLOO] and "lab/ppo.py" not in RLHF_STAGES[RLHF_PPO]
    assert by_name()["evals"].parents == tuple(eval_suites())
    assert compared() == list(STAGE_PAIRS)
    preset = get_preset("tiny")
    assert stage_settings(by_name()[RLHF_RLOO], preset).algo == "rloo" and preset.rlhf.algo == "grpo"
    sections = [name for name, _, _ in stage_sections(STAGES)]
    assert sections == list(dict.fromkeys(s.section for s in STAGES if s.section))  # each once, in pipeline order
    assert sections[:4] == ["data", "tokenizer", "pretrain", "reading"] and {"sft", "rl", "rlhf", "evals"} <= set(sections)


def test_every_declared_stage_function_imports():
    for stage in STAGES:
        assert callable(stage.function()), stage.name


@pytest.mark.parametrize("stages, message", [
    ([Stage("a", (), write_start), Stage("a", (), write_start)], "two stages are named 'a'"),
    ([Stage("a", ("nowhere",), write_start)], "names 'nowhere' which is not a stage; stages: a"),
    ([Stage("b", ("a",), add_step), Stage("a", ("b",), add_step)], "declared after it"),  # a cycle
    ([Stage("a", (), write_start, source="zzz")], "names 'zzz' which is not a stage"),
    ([Stage("a", (), write_start, "count")], "needs both a settings section and its settings type"),
    ([Stage("a", (), write_start, "count", CountSettings), Stage("b", (), write_start, "count", dict)],
     "section 'count' is declared with two types"),
    ([Stage("a", (), "lab.no_such_module:f")], "whose module does not exist"),
])
def test_a_bad_stage_graph_is_one_clear_error(stages, message):
    with pytest.raises(LabError, match=message):
        check_stages(stages)


def test_a_stage_whose_function_is_missing_fails_in_one_line_before_it_runs(tmp_path):
    stages = [Stage("a", (), "lab.stages:no_such_function")]
    with pytest.raises(LabError, match="stage 'a'.*no_such_function.*does not import"):
        run_pipeline(preset_type(stages, "ToyPreset")(name="toy"), tmp_path, stages=stages)


def test_unknown_algorithms_are_refused_at_preset_load():
    with pytest.raises(LabError, match="unknown rl.algo 'ppo'; valid: grpo, dr_grpo, dapo, bnpo, rloo"):
        get_preset("tiny", ["rl.algo=ppo"])
    with pytest.raises(LabError, match="unknown rlhf.algo 'nope'"):
        get_preset("tiny", ["rlhf.algo=nope"])


def test_a_toy_rl_algorithm_registers_in_one_place(monkeypatch):
    from lab.train import rl_algorithms
    from lab.train.rl_algorithms import ALGORITHMS, RLAlgorithm, get_algorithm, register_algorithm
    from lab.train.rl_settings import RLSettings

    monkeypatch.setattr(rl_algorithms, "ALGORITHMS", dict(ALGORITHMS))
    toy = register_algorithm(RLAlgorithm("toy_grpo", "grpo", "GRPO with a wider clip", {"epsilon": 0.3}))
    assert get_algorithm("toy_grpo", ("grpo", "rloo")) is toy
    assert RLSettings(algo="toy_grpo").algo == "toy_grpo"  # the settings accept it: the stage and CLI read one registry
    with pytest.raises(LabError, match="registered twice"):
        register_algorithm(toy)


def test_the_preset_keeps_its_sections_and_their_json_round_trip():
    from lab.settings import from_settings

    preset = get_preset("gpu")
    fields = [f.name for f in dataclasses.fields(preset)]
    assert fields[:2] == ["name", "seed"] and {"rl", "rlhf", "ppo", "scaling", "goodhart"} <= set(fields)
    assert from_settings(type(preset), json.loads(json.dumps(dataclasses.asdict(preset), default=list))) == preset


@pytest.mark.parametrize("setting, message", [
    ("rl.rewards=corectness", "unknown reward\\(s\\) 'corectness' in rl.rewards; valid rewards are correctness"),
    ("rl.rewards=os.path:nope", "os.path has no nope"),
    ("rl.rewards=no_such_package.module:fn", "cannot import no_such_package.module"),
    ("rl.rewards=os:sep", "names a str, not a function"),
    ("rlhf.rewards=", "rlhf.rewards is empty"),
])
def test_reward_names_are_checked_at_preset_load(setting, message):
    with pytest.raises(LabError, match=message):
        get_preset("tiny", [setting])
    assert get_preset("tiny", ["rl.rewards=correctness,rewards.math_answers:self_check", "rl.reward_weights=1,0"])
