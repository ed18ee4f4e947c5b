"""How far a result can be trusted: rate maps from simulated images of several kinds against the truth.

    PYTHONPATH=src .venv/bin/python benchmarks/verdict_table.py [--nuclei gradient:21 patches:5]
        [--cases phi:0.01 phi:0.03 intensity:1000:15 ...] [--out benchmarks/results/verdict_table.md]

Each simulated steady state (256^2 at 10 nm, cached in benchmarks/.cache/) is imaged in each case:
``phi:NOISE`` adds Gaussian noise of that standard deviation to phi (fraction input);
``intensity:PHOTONS:FWHM`` renders Poisson counts with ``PHOTONS`` mean counts in a pure
heterochromatin pixel, euchromatin at 0.3 of it, a Gaussian PSF of that FWHM in nm, a small
background, then a detector gain 2.7 and offset 100 (unknown to the fit: intensity input);
``sted``, ``airyscan``, ``confocal`` (optionally ``:PHOTONS:FWHM``) render with that modality's
preset PSF, background and detector (``napari_mollifier.simulate.MODALITIES``);
``smlm[:EMITTERS_PER_UM2[:LOCALISATIONS_PER_EMITTER]]`` draws a localisation table
(``render_smlm``: default 3000 emitters per µm² of heterochromatin, 3 localisations each, precision
10-25 nm) and renders it at 10 nm, each localisation blurred by its precision.
Each fit runs with default settings in this process, one after the other. Scores on the interior
20 px inside the nucleus edge: Pearson r of each map, the ratio of the mean rates to the truth,
the coverage of the +-1.64 sd intervals (when the result carries sd maps) and the result's verdict
(when it has one). The table is the evidence the verdict rules are calibrated against.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
OUT = HERE / "results" / "verdict_table.md"
GAIN, OFFSET, BACKGROUND = 2.7, 100.0, 0.5
DEFAULT_NUCLEI = ["gradient:21", "patches:5"]
DEFAULT_CASES = [
    "phi:0.01",
    "phi:0.03",
    "phi:0.1",
    "intensity:1000:15",
    "intensity:200:15",
    "intensity:30:15",
    "sted:1000",
    "sted",
    "airyscan",
    "confocal",
]


def simulated(rates: str, seed: int, n: int = 256) -> dict:
    """The cached simulated nucleus (simulated and saved on first use)."""
    from mollifier_bench.nuclei import cached_preset

    return cached_preset(CACHE, rates, seed, n)


def imaged(sim: dict, case: str, seed: int) -> tuple[np.ndarray, str]:
    """The image of one case and the input kind the fit takes."""
    kind, *args = case.split(":")
    rng = np.random.default_rng(1000 + seed)
    if kind == "phi":
        return sim["phi"] + float(args[0]) * rng.standard_normal(sim["phi"].shape), "fraction"
    if kind == "intensity":
        from napari_mollifier.simulate import render_intensity

        photons, fwhm = float(args[0]), float(args[1])
        counts = render_intensity(
            sim["phi"],
            sim["mask"],
            10.0,
            photons=photons,
            precision_nm=fwhm / 2.3548,
            background=BACKGROUND,
            seed=1000 + seed,
        )
        return GAIN * counts + OFFSET, "intensity"
    from napari_mollifier.simulate import MODALITIES, render_microscope

    if kind == "smlm":
        # smlm[:EMITTERS_PER_UM2[:LOCALISATIONS_PER_EMITTER]]: a localisation table (precision
        # 10-25 nm, repeated localisations), rendered at 10 nm with each localisation blurred by its
        # own precision, as `mollifier infer TABLE.csv` renders it.
        from napari_mollifier.io import render_localisations
        from napari_mollifier.simulate import render_smlm

        density = float(args[0]) if args else 3000.0
        repeats = float(args[1]) if len(args) > 1 else 3.0
        r = render_smlm(
            sim["phi"],
            sim["mask"],
            10.0,
            emitters_per_um2=density,
            localisations_per_emitter=repeats,
            seed=1000 + seed,
        )
        t = r.table
        return render_localisations(t[:, 2], t[:, 3], 10.0, shape=sim["phi"].shape, precision_nm=t[:, 6]), (
            "intensity"
        )
    if kind in MODALITIES:
        # MODALITY[:PHOTONS[:FWHM]]: the modality's preset detector (gain, offset, read noise).
        photons = float(args[0]) if args else None
        fwhm = float(args[1]) if len(args) > 1 else None
        r = render_microscope(
            sim["phi"], sim["mask"], 10.0, modality=kind, photons=photons, psf_fwhm_nm=fwhm, seed=1000 + seed
        )
        return r.image, "intensity"
    raise SystemExit(
        f"verdict_table: unknown case {case!r} (phi:NOISE, intensity:PHOTONS:FWHM, "
        f"smlm[:EMITTERS_PER_UM2[:REPEATS]] or {'|'.join(MODALITIES)}[:PHOTONS[:FWHM]])"
    )


def score(result, sim: dict) -> dict:
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(sim["mask"], iterations=20) & result.fit.analysed
    out = {"status": result.status}
    for key, est in (("gamma_me", result.gamma_me), ("gamma_ac", result.gamma_ac)):
        e, t = est[inner], sim[key][inner]
        ok = np.isfinite(e)
        out[f"r_{key}"] = float(np.corrcoef(e[ok], t[ok])[0, 1]) if ok.sum() > 10 else float("nan")
        out[f"mean_ratio_{key}"] = float(np.nanmean(e) / np.mean(t))
        sd = getattr(result, f"{key}_sd", None)
        if sd is None:
            sd = getattr(result.fit, f"{key}_sd", None)
        if sd is not None:
            s = np.asarray(sd)[inner]
            out[f"coverage_{key}"] = float(np.mean(np.abs(e - t) <= 1.64 * s))
            out[f"median_rel_sd_{key}"] = float(np.nanmedian(s / np.abs(e)))
    verdict = getattr(result, "verdict", None)
    if verdict is not None:
        out["verdict"] = getattr(verdict, "verdict", verdict)
        out["verdict_reason"] = getattr(verdict, "reason", getattr(result, "verdict_reason", ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--nuclei", nargs="+", default=DEFAULT_NUCLEI, help="RATES:SEED of each simulated nucleus"
    )
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the settings' default)")
    ap.add_argument("--calibration", default=None, help="the intensity calibration setting (default: fixed)")
    ap.add_argument(
        "--fixed-tolerance",
        action="store_true",
        help="keep residual_tolerance as given at any noise (noise_scaled_tolerance off: the comparison)",
    )
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--json", default=None, help="also write the records as JSON")
    a = ap.parse_args()

    import torch

    from napari_mollifier.config import InferenceSettings
    from napari_mollifier.inverse import infer_rates

    torch.set_flush_denormal(True)
    settings = InferenceSettings(device="cpu")
    if a.steps is not None:
        settings = settings.model_copy(update={"steps": a.steps})
    if a.fixed_tolerance:
        settings = settings.model_copy(update={"noise_scaled_tolerance": False})
    if a.calibration is not None:
        settings = settings.model_copy(update={"calibration": a.calibration})
    rows = []
    for spec in a.nuclei:
        rates, seed = spec.split(":")
        sim = simulated(rates, int(seed))
        for case in a.cases:
            image, kind = imaged(sim, case, int(seed))
            load = " ".join(open("/proc/loadavg").read().split()[:3])
            t = time.perf_counter()
            try:
                result = infer_rates(
                    image.astype(np.float32),
                    pixel_size_nm=10.0,
                    mask=sim["mask"],
                    input=kind,
                    settings=settings,
                )
                rec = score(result, sim)
            except Exception as exc:  # noqa: BLE001 - a failed case is a row
                rec = {"status": f"error: {type(exc).__name__}: {str(exc)[:120]}"}
            rec.update(nucleus=spec, case=case, fit_s=time.perf_counter() - t, load=load)
            print(json.dumps(rec), flush=True)
            rows.append(rec)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    Path(a.out).write_text(render(rows, a) + "\n")
    print(a.out)


def _f(v, fmt=".3f") -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)


def render(rows: list[dict], a) -> str:
    lines = [
        "# Rate maps of simulated images against the truth: r, mean rates, coverage, verdict",
        "",
        f"`PYTHONPATH=src .venv/bin/python benchmarks/verdict_table.py --nuclei {' '.join(a.nuclei)} "
        f"--cases {' '.join(a.cases)}"
        + (f" --calibration {a.calibration}" if a.calibration else "")
        + (" --fixed-tolerance" if a.fixed_tolerance else "")
        + f"` ({time.strftime('%Y-%m-%d')})",
        "",
        "Simulated steady states, 256² at 10 nm. phi:NOISE = phi plus Gaussian noise (fraction input); "
        f"intensity:PHOTONS:FWHM = Poisson counts, PSF of that FWHM, detector gain {GAIN} and offset "
        f"{OFFSET:g} (intensity input, uncalibrated). Default settings. Scores on the interior 20 px inside "
        "the nucleus edge; ratio = mean estimate / mean truth; cover = fraction of pixels whose truth "
        "lies within ±1.64 sd.",
        "",
        "| nucleus | case | status | r Γ_me | r Γ_ac | ratio Γ_me | ratio Γ_ac | cover Γ_me | cover Γ_ac "
        "| verdict | fit s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['nucleus']} | {r['case']} | {r['status']} | {_f(r.get('r_gamma_me'))} | "
            f"{_f(r.get('r_gamma_ac'))} | {_f(r.get('mean_ratio_gamma_me'), '.2f')} | "
            f"{_f(r.get('mean_ratio_gamma_ac'), '.2f')} | {_f(r.get('coverage_gamma_me'), '.2f')} | "
            f"{_f(r.get('coverage_gamma_ac'), '.2f')} | {r.get('verdict', '')} | {r['fit_s']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
