"""Presets and `--set` overrides: typed, and unknown keys or bad values are one clear error."""

import pytest

from lab.errors import LabError
from lab.presets import get_preset
from lab.settings import field_paths


def test_overrides_are_converted_to_the_field_type():
    p = get_preset("tiny", ["pretrain.lr=1e-3", "pretrain.max_steps=7", "pretrain.compile=true",
                            "data.world.exposures=0,1,4", "sample.prompts=a,b"])
    assert p.pretrain.lr == 1e-3 and p.pretrain.max_steps == 7 and p.pretrain.compile is True
    assert p.data.world.exposures == (0, 1, 4)
    assert p.sample.prompts == ("a", "b")


@pytest.mark.parametrize("override, message", [
    ("pretrain.lrr=1", "unknown setting 'pretrain.lrr'"),
    ("nosuch.x=1", "unknown setting"),
    ("pretrain.max_steps=many", "cannot read 'many' as int"),
    ("pretrain.compile=maybe", "cannot read 'maybe' as bool"),
    ("pretrain", "not of the form key=value"),
    ("pretrain=3", "is a section"),
    ("sft.known_unit=fact", "unknown sft.known_unit 'fact'; valid: question, person"),  # a section's own checks
    ("sft.known_threshold=1.5", "sft.known_threshold must be within"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(LabError, match=message):
        get_preset("tiny", [override])


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(LabError, match="valid presets: tiny, gpu"):
        get_preset("huge")


def test_every_field_is_reachable_by_path():
    paths = field_paths(get_preset("gpu"))
    assert "pretrain.lr" in paths and "model.hidden_size" in paths and "data.world.seed" in paths
