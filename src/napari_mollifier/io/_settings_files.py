"""Settings from files: an earlier result (``S.json`` or a map TIFF written by this package) or a
configuration file (TOML, JSON or YAML) naming fields of
:class:`~napari_mollifier.config.InferenceSettings`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._readers import InputError

__all__ = ["CONFIG_SUFFIXES", "read_settings_file", "settings_template"]

#: Configuration files by ending; ``.json`` may also be an earlier result's ``S.json``.
CONFIG_SUFFIXES = (".toml", ".json", ".yaml", ".yml")


def read_settings_file(path: str | os.PathLike) -> dict:
    """The settings a file gives, as ``{field: value}`` (only the fields it names).

    ``path`` is an earlier result (``S.json``, whose ``"settings"`` are those of its fit, or a
    map TIFF written by this package, which carries the same record) or a configuration file:
    TOML, JSON or YAML whose top level (or a ``settings`` table) maps field names of
    :class:`~napari_mollifier.config.InferenceSettings` to values. Keys of settings saved by
    earlier versions that no longer exist are dropped (:data:`~napari_mollifier.config.LEGACY_FIELDS`).

    Raises
    ------
    InputError
        One line naming the file and the fix: unreadable, not a settings file, an unknown field
        or an invalid value.
    """
    from pydantic import ValidationError

    from ..config import LEGACY_FIELDS, InferenceSettings

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: settings file not found; check the path")
    record = _record(p)
    fields = {k: v for k, v in record.items() if k not in LEGACY_FIELDS}
    try:
        InferenceSettings(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        what = "unknown setting" if err["type"] == "extra_forbidden" else "invalid setting"
        msg = err["msg"].removeprefix("Value error, ")
        raise InputError(
            f"{p}: {what} {where!r}: {msg}; the settings are the fields listed in docs/interfaces.md"
            if where
            else f"{p}: invalid settings: {msg}"
        ) from None
    return fields


def _record(p: Path) -> dict:
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        from ._readers import read_tiff_as_is

        info = read_tiff_as_is(p).metadata.get("info")
        settings = info.get("settings") if isinstance(info, dict) else None
        if not isinstance(settings, dict):
            raise InputError(
                f"{p}: the TIFF holds no fit settings; give a map written by napari-mollifier "
                "(S_gamma_me.tif, ...) or its S.json"
            )
        return settings
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{p}: cannot read the settings file ({type(exc).__name__}); check the file"
        ) from None
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError(
                    f"{p}: reading YAML needs PyYAML (pip install pyyaml); or use TOML"
                ) from None
            data = yaml.safe_load(text)
        else:
            raise InputError(
                f"{p}: not a settings file; give S.json or a map TIFF of an earlier result, or a "
                f"configuration file ({', '.join(CONFIG_SUFFIXES)})"
            )
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - tomllib, json and yaml each raise their own
        first = " ".join(str(exc).split())[:80]
        raise InputError(f"{p}: not a valid {suffix[1:].upper()} file ({first}); fix its syntax") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a table of settings (name = value), got {type(data).__name__}")
    if isinstance(data.get("settings"), dict):  # an S.json, or a config with a [settings] table
        return data["settings"]
    return data


def settings_template(settings=None) -> str:
    """A TOML configuration file with every field of
    :class:`~napari_mollifier.config.InferenceSettings`, generated from the model: each field's
    description as a comment above ``name = value`` (the values of ``settings``, default: the
    defaults); a field whose value is None (chosen per image) is written commented out."""
    import typing

    from ..config import InferenceSettings

    settings = settings or InferenceSettings()
    values = settings.model_dump()
    lines = [
        "# napari-mollifier fit settings (InferenceSettings). Use with `mollifier infer --config FILE`;",
        "# command-line options override these values. Lengths in nm.",
        "",
    ]
    for name, info in InferenceSettings.model_fields.items():
        for chunk in _wrap(info.description or ""):
            lines.append(f"# {chunk}")
        choices = [
            a
            for a in typing.get_args(info.annotation)
            if typing.get_origin(info.annotation) is typing.Literal
        ]
        if choices:
            lines.append(f"# one of: {', '.join(map(str, choices))}")
        value = values[name]
        if value is None:
            lines.append(f"# {name} =   (unset: the default described above)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def _wrap(text: str, width: int = 96) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) if text else []
