"""Messages of the shared checks, worded for the fit widget (Qt-free).

The loaders, the solver and the cost model word their errors for the command line (``give a mask
with --mask``); in the widget the same advice names the control to change instead (``pick a labels
layer as Nucleus mask``). The error classes stay shared: only the wording of the line changes.
"""

from __future__ import annotations

import re

__all__ = ["LABELS", "for_the_widget"]

#: The settings form's label of each field (also what a message names instead of its option).
LABELS = {
    "method": "Method",
    "arch": "Architecture",
    "optimizer": "Optimiser",
    "steps": "Steps",
    "kernel_radius_nm": "Kernel radius (nm)",
    "device": "Device",
    "learning_rate": "Learning rate",
    "rate_scale_nm": "Rate scale (nm)",
    "edge_margin_nm": "Edge margin (nm)",
    "residual_tolerance": "Residual tolerance",
    "smoothness": "Smoothness",
    "noise_floor": "Noise floor",
    "psf_sigma_nm": "PSF sigma (nm)",
    "psf_sigma_min_nm": "PSF sigma fit, min (nm)",
    "psf_sigma_max_nm": "PSF sigma fit, max (nm)",
    "calibration": "Intensity calibration",
    "euchromatin_level": "Euchromatin intensity (φ = 0)",
    "heterochromatin_level": "Heterochromatin intensity (φ = 1)",
    "init_smoothing_px": "Initial smoothing (px)",
    "precision": "Precision",
    "uncertainty": "Uncertainty (sd maps)",
    "bootstrap_fits": "Bootstrap refits",
    "seed": "Seed",
    "report_every": "Report every (steps)",
}

# Whole phrases first (their CLI wording does not read well with only the flag replaced) ...
_PHRASES = (
    (r"--input fraction expects", "Input “fraction (φ)” expects"),
    (
        r"check the input kind \(--input fraction for heterochromatin-fraction images, "
        r"intensity for raw ones\)",
        "check Input (“fraction (φ)” for heterochromatin-fraction images, “intensity” for raw ones)",
    ),
    (r"check the input kind \(--input\)", "check Input"),
    (r"give a nucleus mask \(--mask\)", "pick a labels layer as Nucleus mask"),
    (r"give a label image \(--labels FILE\)", "pick a labels layer of the nuclei under Labels"),
    (r"check the --labels path", "pick another Labels layer"),
    (r"use --input intensity for raw images", "choose Input “intensity” for raw images"),
    (r"give a mask with --mask|give a mask \(--mask\)|give --mask", "pick a labels layer as Nucleus mask"),
    (r"check the --mask path", "pick another Nucleus mask layer"),
    (r"(?:give it )?(?:in nm )?with --pixel-size NM(?: in nm)?", "type it in nm in the Pixel size box"),
    (r"give --pixel-size NM in nm", "type the pixel size in nm in the Pixel size box"),
    (r"--pixel-size (\d+(?:\.\d+)?)", r"Pixel size \1 nm"),
    (r"use --device auto or cpu", "choose Device auto or CPU"),
    (r"\(and the --pattern of a batch\)", ""),
)
# ... then any flag left: the widget's control of that name.
_CONTROLS = {
    "input": "Input",
    "mask": "Nucleus mask",
    "pixel-size": "Pixel size",
    "device": "Device",
    "labels": "Labels",
}


def for_the_widget(text: str) -> str:
    """``text`` with the command-line options it quotes replaced by the widget's control names
    (the settings fields by their labels in the form)."""
    for pattern, repl in _PHRASES:
        text = re.sub(pattern, repl, text)

    def control(m: re.Match) -> str:
        flag = m.group(1)
        name = _CONTROLS.get(flag) or LABELS.get(flag.replace("-", "_"))
        if name is None and flag.endswith("-nm"):
            name = LABELS.get(flag[:-3].replace("-", "_") + "_nm")
        return f"“{name}”" if name else m.group(0)

    text = re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", control, text)
    return re.sub(r"  +", " ", text).replace(" ;", ";").replace(" )", ")").strip()
