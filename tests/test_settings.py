"""The settings schema: comparison switches hidden from ``--help`` but accepted, legacy records."""

from __future__ import annotations

import pydantic
import pytest

from napari_mollifier.cli import build_parser, settings_from_args
from napari_mollifier.config import (
    ARCHS,
    COMPARISON_FIELDS,
    InferenceSettings,
    settings_from_record,
)


def _subparser(name):
    return build_parser()._subparsers._group_actions[0].choices[name]


@pytest.mark.parametrize("command", ["infer", "batch"])
def test_comparison_switches_are_accepted_but_not_listed(command):
    text = _subparser(command).format_help()
    for name in COMPARISON_FIELDS:
        assert "--" + name.replace("_", "-") not in text
    assert "--model" not in text
    first = ["x.tif"] if command == "infer" else ["folder"]
    args = build_parser().parse_args(
        [command, *first, "--out", "o", "--arch", "mlp", "--derivatives", "autodiff", "--residual-form"]
        + ["chain", "--alignment-every", "5", "--network-width", "16", "--network-blocks", "2"]
    )
    s = settings_from_args(args, command)
    assert (s.derivatives, s.residual_form, s.alignment_every) == ("autodiff", "chain", 5)
    assert s.network_size() == (16, 2)
    plain = settings_from_args(build_parser().parse_args([command, *first, "--out", "o"]), command)
    assert plain == InferenceSettings()
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, *first, "--out", "o", "--residual-form", "loose"])


def test_archs_come_from_the_settings_schema():
    assert ARCHS == ("grid", "mlp", "piratenet", "convnet")
    assert set(COMPARISON_FIELDS) <= set(InferenceSettings.model_fields)


def test_old_records_with_a_model_key_are_still_read():
    record = InferenceSettings(steps=7).model_dump()
    assert "model" not in record
    assert settings_from_record(dict(record, model="chr")) == InferenceSettings(steps=7)
    with pytest.raises(pydantic.ValidationError):
        InferenceSettings(model="chr")  # not a setting any more
