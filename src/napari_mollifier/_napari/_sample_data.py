"""npe2 sample data: the bundled simulated nuclei with their ground-truth rate maps (Qt-free).

Each sample gives: the heterochromatin fraction phi (the image to fit, ``input: fraction``), the
nucleus mask as a labels layer named ``"<name> nucleus mask"`` (the widget picks it up), the
simulated intensity image (hidden) and the true Gamma_me and Gamma_ac (hidden), all at the
files' pixel size. The files live in the wheel or the repository (:mod:`napari_mollifier._samples`).
"""

from __future__ import annotations

from .._samples import sample_images_dir
from ._reader import read_tiff

__all__ = ["nucleus_sample", "nucleus1", "nucleus2", "nucleus3"]


def nucleus_sample(name: str) -> list[tuple]:
    root = sample_images_dir()
    layers = []
    for suffix, label, extra in (
        ("phi", name, {"visible": True, "colormap": "gray", "contrast_limits": (0.0, 1.0)}),
        ("intensity", f"{name} intensity", {"visible": False}),
        ("gamma_me_true", f"{name} gamma_me true", {"visible": False}),
        ("gamma_ac_true", f"{name} gamma_ac true", {"visible": False}),
        ("mask", f"{name} nucleus mask", {"opacity": 0.3}),
    ):
        ((data, kw, kind),) = read_tiff(root / f"{name}_{suffix}.tif")
        kw.update(extra, name=label)
        if suffix == "phi":
            kw["metadata"]["input"] = "fraction"
        elif suffix == "intensity":
            kw["metadata"]["input"] = "intensity"
        layers.append((data, kw, kind))
    return layers


def nucleus1() -> list[tuple]:
    """Gradient of rates across the nucleus."""
    return nucleus_sample("nucleus1")


def nucleus2() -> list[tuple]:
    """Patches of different rates."""
    return nucleus_sample("nucleus2")


def nucleus3() -> list[tuple]:
    """Uniform rates."""
    return nucleus_sample("nucleus3")
