"""Finding a batch's inputs: the images of a folder and the mask file beside each image."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import InputError


def find_images(folder: str | os.PathLike, pattern: str = "*.tif") -> list[Path]:
    """Files in ``folder`` matching the glob ``pattern``, sorted; masks (``*_mask.tif``) and label
    images (``*_labels.tif``) are left out."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; choose the folder that holds the images")
    return sorted(p for p in root.glob(pattern) if p.is_file() and not p.stem.endswith(("_mask", "_labels")))


def sibling_mask(image: str | os.PathLike) -> Path:
    """The mask file beside an image: ``S_mask.tif`` for ``S.tif``, or ``A_mask.tif`` for ``A_B.tif``
    (``nucleus1_phi.tif`` -> ``nucleus1_mask.tif``)."""
    p = Path(image)
    candidates = [p.with_name(f"{p.stem}_mask{p.suffix}")]
    if "_" in p.stem:
        candidates.append(p.with_name(f"{p.stem.rsplit('_', 1)[0]}_mask{p.suffix}"))
    for c in candidates:
        if c.exists():
            return c
    raise InputError(
        f"{p}: no mask file beside it (looked for {', '.join(c.name for c in candidates)}); "
        "add one or let the nucleus be segmented automatically"
    )


def sibling_labels(image: str | os.PathLike) -> Path | None:
    """The label image beside an image, or None: ``S_labels.tif`` for ``S.tif``, or
    ``A_labels.tif`` for ``A_B.tif`` (``cells_phi.tif`` -> ``cells_labels.tif``). With one, the
    file's nuclei are fitted one by one (:func:`napari_mollifier.inverse.infer_nuclei`)."""
    p = Path(image)
    candidates = [p.with_name(f"{p.stem}_labels{p.suffix}")]
    if "_" in p.stem:
        candidates.append(p.with_name(f"{p.stem.rsplit('_', 1)[0]}_labels{p.suffix}"))
    return next((c for c in candidates if c.exists()), None)
