"""Resuming a batch: the resume key of one file's inputs and settings (:func:`batch_key`), and the
"skipped" result of a file whose complete outputs carry that key (:func:`completed_result`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..config import InferenceSettings
from ..io import InputError
from ._result import FileResult

#: The per-file output maps (``S_{key}.tif``, besides ``S.json``) of a finished file (docs/interfaces.md).
OUTPUT_FILE_KEYS = (
    "gamma_me",
    "gamma_ac",
    "lambda",
    "phi",
    "mask",
    "gamma_me_sd",
    "gamma_ac_sd",
    "lambda_sd",
)
#: The standard-deviation maps among them: written unless the settings say ``uncertainty="none"``.
SD_FILE_KEYS = ("gamma_me_sd", "gamma_ac_sd", "lambda_sd")

# Settings that do not change the maps: left out of the resume key. The device is left out on
# purpose: a file fitted on a GPU is not redone on a CPU worker (float32 results agree to a few
# digits, not bit for bit; see docs/decisions.md).
_KEY_IGNORES = ("device", "report_every")


def _file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def batch_key(
    image,
    *,
    pixel_size_nm=None,
    mask=None,
    input: str | None = "intensity",
    settings: InferenceSettings | None = None,
    labels=None,
    read=None,
) -> dict:
    """What decides one file's maps, and its hash: the resume key stored in ``S.json["batch"]``.

    Parameters
    ----------
    image : path
        The input file; its bytes are hashed (a changed file is redone even under the same name).
    pixel_size_nm, mask, input, settings
        As for :func:`infer_file`. ``mask`` may be None, a path or a callable ``image -> path``;
        a mask file's bytes are hashed too.
    labels : None, "auto", path or callable ``image -> path or None``
        The label image of several nuclei (:func:`sibling_labels`); a file's bytes are hashed.
    read : ReadOptions, optional
        The choices of plane and table units; hashed only when any was made (older keys stay).

    Returns
    -------
    dict
        ``{"hash": hex digest, "fields": what was hashed}``.

    Raises
    ------
    InputError
        The image (or its mask) cannot be read; one line naming it.
    """
    from ..io import resolve_input_kind

    input = resolve_input_kind(image, input)
    from .. import __version__

    settings = settings or InferenceSettings()
    p = Path(image)
    if p.is_dir():  # `mollifier infer FOLDER`: the folder's images are a batch
        raise InputError(f"{p}: is a directory: use `mollifier batch {p}` to fit the images in it")
    if not p.is_file():
        raise InputError(f"{p}: file not found; check the path (and the --pattern of a batch)")
    m = mask(image) if callable(mask) else mask
    if m is not None and not Path(m).is_file():
        raise InputError(f"{m}: mask file not found; check the --mask path")
    fields = {
        "input_sha256": _file_digest(p),
        "mask_sha256": None if m is None else _file_digest(m),
        "pixel_size_nm": None if pixel_size_nm is None else float(pixel_size_nm),
        "input": input,
        "settings": {k: v for k, v in settings.model_dump().items() if k not in _KEY_IGNORES},
        "version": __version__,
    }
    lab = labels(image) if callable(labels) else labels
    if lab is not None and str(lab) != "auto" and not Path(lab).is_file():
        raise InputError(f"{lab}: label image not found; check the --labels path")
    if lab is not None:  # only then: the keys of single-nucleus results stay as they were
        fields["labels"] = str(lab) if str(lab) == "auto" else _file_digest(lab)
    if read is not None and read.record():
        fields["read"] = read.record()
    if p.suffix.lower() in (".hdf5", ".h5") and p.with_suffix(".yaml").is_file():
        fields["metadata_sha256"] = _file_digest(p.with_suffix(".yaml"))  # Picasso's pixel size
    text = json.dumps(fields, sort_keys=True, default=str)
    return {"hash": hashlib.sha256(text.encode()).hexdigest(), "fields": fields}


def _output_paths(image, out, overview: bool, sd: bool = True, stem: str | None = None) -> dict:
    stem = stem or Path(image).stem
    keys = [k for k in OUTPUT_FILE_KEYS if sd or k not in SD_FILE_KEYS]
    paths = {k: Path(out) / f"{stem}_{k}.tif" for k in keys}
    paths["rates"] = Path(out) / f"{stem}_rates.csv"
    paths["json"] = Path(out) / f"{stem}.json"
    if overview:
        paths["overview"] = Path(out) / f"{stem}_overview.png"
    return paths


def completed_result(
    image, out, key: str, *, overview: bool = False, stem: str | None = None
) -> FileResult | None:
    """A "skipped" result when ``out`` holds complete outputs of ``image`` made with resume key
    ``key`` (a finished fit with status "ok"); None when the file must be (re)run. Records of a
    failed, diverged or cancelled fit are run again; records written before the status existed
    count as ok unless they say diverged or cancelled. ``stem``: the outputs' names, as for
    :func:`infer_file`."""
    paths = _output_paths(image, out, overview, stem=stem)
    try:
        rec = json.loads(paths["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or unreadable record: run the file again rather than trust it
    # A fit without sd maps (uncertainty "none") is complete without their files.
    sd = (rec.get("uncertainty") or {}).get("method") != "none"
    paths = _output_paths(image, out, overview, sd=sd, stem=stem)
    if rec.get("nuclei"):  # several nuclei: their table stands for the one-region rates table
        paths["rates"] = paths["json"].with_name(paths["json"].stem + "_nuclei.csv")
    if not all(p.is_file() for p in paths.values()):
        return None
    batch = rec.get("batch") or {}
    if batch.get("key") != key or rec.get("cancelled") or rec.get("diverged"):
        return None
    if rec.get("status", "ok") != "ok":
        return None
    return FileResult(
        str(image),
        "skipped",
        "outputs exist with the same settings",
        outputs={k: str(v) for k, v in paths.items()},
        summary=rec.get("summary") or {},
        runtime_s=float(rec.get("runtime_s") or 0.0),
        steps_done=int(rec.get("steps_done") or 0),
        device=str(rec.get("device", "")),
        verdict=str(rec.get("verdict", "")),
        verdict_reason=str(rec.get("verdict_reason", "")),
        nuclei=list(rec.get("nuclei") or []),
    )
