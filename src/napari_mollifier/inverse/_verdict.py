"""What a result is worth: "determined", "relative" or "undetermined", with the reason.

The status of a fit (:mod:`._status`) says whether the optimisation went right; the verdict says
whether the data could determine the rates at all. It weighs what the image carries (the noise
left in phi, the photons behind a pixel), how phi was obtained from it (given, calibrated
intensity levels, or uncalibrated ones) and, when the result has them, the uncertainty maps.

Every threshold below comes from fits of simulated nuclei whose rates are known
(``benchmarks/results/verdict_table.md``, ``benchmarks/results/chromatin_recovery.md``,
``benchmarks/results/intensity_calibration.md``); the rules are checked against that table's
truth in ``tests/test_verdict.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["VERDICTS", "Verdict", "judge_rates", "DETERMINED_NOISE", "RELATIVE_NOISE", "MIN_PHOTONS"]

VERDICTS = ("determined", "relative", "undetermined")

#: Noise in phi (as the fit estimates it) up to which the maps are absolute rates: at 1-5 % noise
#: eight simulated nuclei gave mean rates within 4 % of the truth and r >= 0.86 for both maps up to
#: 3 %, >= 0.69 at 5 % (the PDE's tolerance grows with the noise above 3 %:
#: inverse._solver.residual_tolerance), and their sd maps, systematic part included, held the truth
#: on >= 89 % of the pixels (benchmarks/results/systematic_sd.md). The bound leaves the estimate a
#: margin: at a true 5 % it read 5.0-5.1 %.
DETERMINED_NOISE = 0.055
#: Noise in phi up to which the maps are compared, not read as values: at 10 % noise two simulated
#: nuclei kept r >= 0.92 and their means within 6 %, but the noise estimate of one of them read
#: 10.03 % (benchmarks/results/verdict_table.md), so the bound sits at the edge of what was tested.
RELATIVE_NOISE = 0.10
#: Photons in a bright nucleus pixel below which intensity data do not determine the rates even
#: with calibrated levels: renders read as 152-156 photons kept their means within 3 % but r of
#: Gamma_me fell to 0.51 on one nucleus, at 36 photons r 0.58-0.97 with means within 7 %
#: (benchmarks/results/likelihood.md, the "gaussian" rows).
MIN_PHOTONS = 200.0
#: Median relative standard deviation of the rate maps above which they are undetermined, and
#: above which they are relative at best.
UNDETERMINED_SD = 0.5
#: How the rates followed a wrong PSF width (benchmarks/results/psf_width.md).
PSF_SENSITIVITY = "a width 25 % too wide gave mean rates 0.4-0.8x, 25 % too narrow 1.3-1.5x"
RELATIVE_SD = 0.25


@dataclass(frozen=True)
class Verdict:
    """``verdict`` (one of :data:`VERDICTS`), ``reason`` (one sentence) and the figures it rests on."""

    verdict: str
    reason: str
    figures: dict = field(default_factory=dict)

    def as_record(self) -> dict:
        return {"verdict": self.verdict, "verdict_reason": self.reason, "verdict_figures": dict(self.figures)}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %" if x < 0.1 else f"{100 * x:.0f} %"


def judge_rates(
    *,
    status: str,
    status_reason: str = "",
    input_kind: str = "fraction",
    levels: str | None = None,
    noise_in_phi: float | None = None,
    photons: float | None = None,
    median_rel_sd: float | None = None,
    psf_pinned: bool | None = None,
    psf_sigma_nm: float | None = None,
    weighted_data: bool = False,
) -> Verdict:
    """The verdict on one result.

    Parameters
    ----------
    status, status_reason : str
        The fit's status (:attr:`RateFit.status`) and why.
    input_kind : {"fraction", "intensity"}
        What the image was taken to be.
    levels : {"given", "uncalibrated", "plateaus", "joint"}, optional
        For intensity input: how the intensity-to-phi map was set (calibration levels given by the
        user, the image's own class medians, a steady state's plateau levels, or fitted jointly
        with the rates: ``settings.calibration``).
    noise_in_phi : float, optional
        The noise level of phi the fit estimated (:func:`estimate_noise`), in units of phi.
    photons : float, optional
        Photons behind a bright nucleus pixel (:func:`napari_mollifier.io.estimate_photon_transfer`),
        for intensity input whose noise looks like photon counts.
    median_rel_sd : float, optional
        The larger of the median relative standard deviations of the two rate maps, when the
        result carries uncertainty maps.
    psf_pinned : bool, optional
        For a PSF width fitted within bounds (``psf_sigma_min_nm``/``psf_sigma_max_nm``): whether
        the loss was lowest inside them. None when the width was given.
    psf_sigma_nm : float, optional
        The fitted width (for the reason).
    weighted_data : bool
        The data term weighted each pixel by its count variance (``likelihood="poisson"``, a
        comparison): on a simulated nucleus its maps lost their pattern (Gamma_me r 0.65 at 1000
        counts, anti-correlated at 200 and 50), so its results are "undetermined".
    """
    figures = {
        k: v
        for k, v in (
            ("noise_in_phi", noise_in_phi),
            ("photons", photons),
            ("median_rel_sd", median_rel_sd),
            ("psf_sigma_nm", psf_sigma_nm),
        )
        if v is not None
    }
    if status != "ok":
        why = f"the fit is {status}: {status_reason or 'no reason given'}"
        # What the data alone say, too: the way out differs (a better fit, or better data).
        data = judge_rates(
            status="ok",
            input_kind=input_kind,
            levels=levels,
            noise_in_phi=noise_in_phi,
            photons=photons,
            median_rel_sd=median_rel_sd,
            psf_pinned=psf_pinned,
            psf_sigma_nm=psf_sigma_nm,
            weighted_data=weighted_data,
        )
        if data.verdict == "undetermined":
            why = f"{why}; and {data.reason}"
        return Verdict("undetermined", why, figures)
    if input_kind == "intensity" and levels == "uncalibrated":
        return Verdict(
            "undetermined",
            "uncalibrated intensity: the map from intensity to the heterochromatin fraction is not known, "
            "and a wrong map changes the rates' scale and even their sign (on simulated nuclei Γ_me "
            "anti-correlated with the truth); give calibration levels (euchromatin_level, "
            "heterochromatin_level) to read rates",
            figures,
        )
    if input_kind == "intensity" and levels == "joint":
        return Verdict(
            "undetermined",
            "intensity levels fitted jointly with the rates: on simulated nuclei the fit ran away "
            "(gain 11-21x the truth, rates off by orders of magnitude); give calibration levels",
            figures,
        )
    if weighted_data:
        return Verdict(
            "undetermined",
            "the data term weighted each pixel by its photon-count variance (likelihood 'poisson', a "
            "comparison): on a simulated nucleus its Γ_me fell to r 0.65 at 1000 counts and "
            "anti-correlated with the truth at 200 and 50, its means 1.5-1.8x; use the default "
            "likelihood",
            figures,
        )
    if psf_pinned is False:
        at = "" if psf_sigma_nm is None else f" ({psf_sigma_nm:.3g} nm)"
        return Verdict(
            "undetermined",
            f"the PSF width is not pinned by the data: the fit's loss was lowest at a bound of its "
            f"range, or barely below the bounds' losses{at}, and the rates move with the width "
            "(simulated nuclei at 1000 counts: "
            f"{PSF_SENSITIVITY}); give the PSF width, or use a brighter image",
            figures,
        )
    if input_kind == "intensity" and photons is not None and photons < MIN_PHOTONS:
        return Verdict(
            "undetermined",
            f"~{photons:.0f} photons in a bright pixel of the nucleus, below the ~{MIN_PHOTONS:.0f} "
            "that simulated nuclei needed for the rates (fewer: the mean rates held but a map's pattern "
            "fell to r 0.5-0.6); bin the image or image longer",
            figures,
        )
    verdict, reason = "determined", "the rates are determined"
    if noise_in_phi is not None:
        if noise_in_phi > RELATIVE_NOISE:
            return Verdict(
                "undetermined",
                f"noise in φ of {_pct(noise_in_phi)}, beyond the {_pct(RELATIVE_NOISE)} up to which "
                "simulated nuclei kept the rate patterns; bin the image or use a brighter one",
                figures,
            )
        if noise_in_phi > DETERMINED_NOISE:
            verdict = "relative"
            reason = (
                f"noise in φ of {_pct(noise_in_phi)}: above {_pct(DETERMINED_NOISE)} the maps were tested "
                "only up to 10 % noise (simulated nuclei: means within 6 %, r ≥ 0.92), so compare maps "
                "rather than read values"
            )
        else:
            reason = (
                f"noise in φ of {_pct(noise_in_phi)}, within the {_pct(DETERMINED_NOISE)} up to which "
                "simulated nuclei gave mean rates within 4 % (7 % from calibrated counts), both maps "
                "with r ≥ 0.69, and sd maps that held the truth"
            )
    if input_kind == "intensity" and levels == "plateaus" and verdict == "determined":
        verdict = "relative"
        reason = (
            "intensity levels from a steady state's plateau levels, which hold for rates of the "
            "default magnitude (simulated nuclei at 1000 counts: means 0.73-0.98 of the truth) but move "
            "with it (1.4x high at half the rates): compare maps, not values"
        )
    if median_rel_sd is not None:
        if median_rel_sd > UNDETERMINED_SD:
            return Verdict(
                "undetermined",
                f"the rates' uncertainty is {_pct(median_rel_sd)} of their value (median), "
                f"beyond {_pct(UNDETERMINED_SD)}",
                figures,
            )
        if median_rel_sd > RELATIVE_SD and verdict == "determined":
            verdict = "relative"
            reason = (
                f"the rates' uncertainty is {_pct(median_rel_sd)} of their value (median): compare maps, "
                "not values"
            )
    return Verdict(verdict, reason, figures)
