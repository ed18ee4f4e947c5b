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


# ------------------------------------------------------------------ one option per setting
def _value_beside_default(name):
    """A valid value of a settings field other than its default (and the options it needs)."""
    import typing

    info = InferenceSettings.model_fields[name]
    args = [a for a in typing.get_args(info.annotation) if a is not type(None)]
    base = (
        info.annotation
        if typing.get_origin(info.annotation) is typing.Literal
        else args[0]
        if args
        else info.annotation
    )
    if typing.get_origin(base) is typing.Literal:
        value = next(v for v in typing.get_args(base) if v != info.default)
    elif base is int:
        value = 3 if info.default is None else info.default + 3
    elif base is str:  # a pattern-checked choice (device: auto, cpu, mps, cuda[:N])
        value = "cpu"
    elif base is bool:
        value = not info.default
    else:
        value = 0.75 if info.default is None else info.default * 2.5
    needs = ["--arch", "mlp"] if (name, value) == ("derivatives", "autodiff") else []
    return value, needs


PAIRED_FIELDS = ("euchromatin_level", "heterochromatin_level", "psf_sigma_min_nm", "psf_sigma_max_nm")
OPTION_FIELDS = [n for n in InferenceSettings.model_fields if n not in PAIRED_FIELDS]


@pytest.mark.parametrize("command", ["infer", "batch"])
def test_the_psf_range_option_sets_both_bounds(command):
    first = ["x.tif"] if command == "infer" else ["folder"]
    args = build_parser().parse_args([command, *first, "--out", "o", "--psf-sigma-range", "10", "30"])
    assert settings_from_args(args, command).psf_bounds_nm == (10.0, 30.0)
    bad = build_parser().parse_args([command, *first, "--out", "o", "--psf-sigma-range", "30", "10"])
    with pytest.raises(SystemExit, match="must be above psf_sigma_min_nm"):
        settings_from_args(bad, command)
    assert "--psf-sigma-range MIN MAX" in _subparser(command).format_help()


@pytest.mark.parametrize("command", ["infer", "batch"])
@pytest.mark.parametrize("name", OPTION_FIELDS)
def test_every_setting_has_an_option_that_reaches_the_settings(command, name):
    value, needs = _value_beside_default(name)
    first = ["x.tif"] if command == "infer" else ["folder"]
    option = "--" + name.replace("_", "-")
    if isinstance(value, bool):  # a switch: --name / --no-name
        given = [option if value else "--no-" + name.replace("_", "-")]
    else:
        given = [option, str(value)]
    args = build_parser().parse_args([command, *first, "--out", "o", *needs, *given])
    settings = settings_from_args(args, command)
    assert getattr(settings, name) == value
    assert getattr(settings, name) != InferenceSettings.model_fields[name].default
    text = _subparser(command).format_help()
    assert (option in text) == (name not in COMPARISON_FIELDS)


def test_help_groups_the_settings_and_shows_their_descriptions():
    text = _subparser("infer").format_help()
    for title in ("input:", "fit (the training):", "physics/model", "advanced:"):
        assert title in text
    physics = text[text.index("physics/model") : text.index("advanced:")]
    assert "--kernel-radius-nm NM" in physics and "--rate-scale-nm NM" in physics
    assert "1.01 x pixel size" in physics and "default: 500.0" in physics
    # the levels come together, not as two options
    assert "--intensity-levels EU HET" in text and "--euchromatin-level" not in text


def test_an_invalid_option_value_is_one_line_naming_the_option():
    args = build_parser().parse_args(["infer", "x.tif", "--out", "o", "--kernel-radius-nm", "-1"])
    with pytest.raises(SystemExit) as exc:
        settings_from_args(args, "infer")
    assert str(exc.value).startswith("mollifier infer: invalid settings: --kernel-radius-nm: ")
    assert "\n" not in str(exc.value)
    with pytest.raises(SystemExit):  # a choice outside the Literal is refused by the parser
        build_parser().parse_args(["infer", "x.tif", "--out", "o", "--precision", "float16"])


# ------------------------------------------------------------------ lengths at any pixel size
def test_the_default_kernel_radius_is_about_one_pixel():
    from napari_mollifier.config import resolved_kernel_radius_nm

    default = InferenceSettings()
    assert default.kernel_radius_nm is None
    assert resolved_kernel_radius_nm(default, 10.0) == pytest.approx(10.1)  # unchanged at 10 nm
    assert resolved_kernel_radius_nm(default, 5.0) == pytest.approx(10.1)
    assert resolved_kernel_radius_nm(default, 80.0) == pytest.approx(80.8)
    assert resolved_kernel_radius_nm(InferenceSettings(kernel_radius_nm=20.0), 80.0) == 20.0


@pytest.fixture(scope="module")
def nucleus_80nm(tmp_path_factory):
    """A small simulated nucleus at 80 nm pixels (64^2, 5 um): the pixel size of a 4x-binned image."""
    from napari_mollifier.cli import main

    out = tmp_path_factory.mktemp("sim80")
    assert main(["simulate", "--out", str(out), "--name", "n", "--size", "64", "--pixel-size", "80"]) == 0
    return out


def _infer(nucleus_80nm, out, *extra):
    from napari_mollifier.cli import main

    return main(
        [
            "infer",
            str(nucleus_80nm / "n_phi.tif"),
            "--input",
            "fraction",
            "--mask",
            str(nucleus_80nm / "n_mask.tif"),
        ]
        + ["--out", str(out), "--steps", "5", "--device", "cpu", *extra]
    )


def test_the_defaults_fit_at_80nm_pixels_and_the_record_keeps_the_resolved_radius(nucleus_80nm, tmp_path):
    import json

    from napari_mollifier.cli import main

    # The defaults are accepted and the fit runs; whether 5 steps at 80 nm determine the rates is the
    # status's call (the simulator's domains are barely two pixels wide here), not an input error.
    assert _infer(nucleus_80nm, tmp_path / "phi") in (0, 1)
    rec = json.loads((tmp_path / "phi" / "n_phi.json").read_text())
    assert rec["status"] in ("ok", "failed") and (rec["status"] == "ok") == (rec["status_reason"] == "")
    assert rec["pixel_size_nm"] == pytest.approx(80.0)
    assert rec["settings"]["kernel_radius_nm"] == pytest.approx(80.8)  # explicit: the fit is reproducible
    assert settings_from_record(rec["settings"]).kernel_radius_nm == pytest.approx(80.8)
    assert rec["steps_done"] == 5
    # intensity input, segmented: its default PSF (15 nm) is a fifth of a pixel here
    rc = main(
        ["infer", str(nucleus_80nm / "n_intensity.tif"), "--out", str(tmp_path / "int"), "--steps", "5"]
        + ["--device", "cpu"]
    )
    assert rc in (0, 1)
    rec = json.loads((tmp_path / "int" / "n_intensity.json").read_text())
    assert rec["steps_done"] == 5 and rec["settings"]["kernel_radius_nm"] == pytest.approx(80.8)


@pytest.mark.parametrize(
    "option, value, advice",
    [
        ("--kernel-radius-nm", "10", "kernel_radius_nm=10 is only 0.12 pixels at 80 nm/pixel"),
        ("--rate-scale-nm", "100", "use --rate-scale-nm 160 or more"),
        ("--edge-margin-nm", "2000", "use --edge-margin-nm "),
    ],
)
def test_a_length_the_pixel_size_cannot_take_is_one_line_with_a_working_value(
    nucleus_80nm, tmp_path, capsys, option, value, advice
):
    assert _infer(nucleus_80nm, tmp_path, option, value) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and advice in err[0], err
    if option == "--kernel-radius-nm":
        assert "use --kernel-radius-nm 81 (about one pixel) or more" in err[0]


def test_working_values_named_by_the_errors_do_work(nucleus_80nm, tmp_path, capsys):
    # Accepted: the fit runs and writes its record (its status is the fit's own verdict).
    assert _infer(nucleus_80nm, tmp_path, "--kernel-radius-nm", "81", "--rate-scale-nm", "160") in (0, 1)
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert (tmp_path / "n_phi.json").exists()
