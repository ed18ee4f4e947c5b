"""The fit widget's memory of the last settings it fitted with (Qt-free): a JSON file in the user's
configuration folder, ``platformdirs.user_config_dir("napari-mollifier")/last_settings.json``, or
in ``$NAPARI_MOLLIFIER_CONFIG_DIR`` when that is set."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["CONFIG_DIR_VARIABLE", "last_settings_path", "remember_settings", "remembered_settings"]

#: Environment variable that moves the folder of ``last_settings.json`` (tests, shared accounts).
CONFIG_DIR_VARIABLE = "NAPARI_MOLLIFIER_CONFIG_DIR"


def last_settings_path() -> Path:
    """Where the last settings are kept."""
    folder = os.environ.get(CONFIG_DIR_VARIABLE)
    if not folder:
        import platformdirs

        folder = platformdirs.user_config_dir("napari-mollifier", appauthor=False)
    return Path(folder) / "last_settings.json"


def remember_settings(values: dict) -> Path | None:
    """Keep ``values`` (the settings form's field values) for the next widget; None when the file
    cannot be written (a read-only home must not stop a fit)."""
    from ..io import atomic_write_text

    path = last_settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(values, indent=1, default=str) + "\n")
    except OSError:
        return None


def remembered_settings() -> dict:
    """The settings last remembered, each field checked against the settings model: fields that
    no longer exist or whose value is no longer valid are left out (their defaults apply); {}
    without a (readable) file."""
    from pydantic import ValidationError

    from ..config import InferenceSettings

    try:
        values = json.loads(last_settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(values, dict):
        return {}
    fields = InferenceSettings.model_fields
    out = {}
    for name, v in values.items():
        if name not in fields:
            continue
        try:
            InferenceSettings.__pydantic_validator__.validate_assignment(
                InferenceSettings.model_construct(), name, v
            )
        except (ValidationError, TypeError, ValueError):
            continue
        out[name] = v
    try:
        InferenceSettings(**out)
    except ValidationError:
        return {}  # e.g. a half of a pair of levels: start from the defaults instead
    return out
