"""What happened to one input file: :class:`FileResult` and its row of ``summary.csv``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FileResult:
    """What happened to one input file.

    ``status`` is "ok", "skipped" (complete outputs with the same settings already existed),
    "diverged" (training stopped at a NaN or exploding loss; the last good maps were written),
    "failed" (the input could not be fitted: nothing written; or the fit ran but its maps cannot be
    read as rates, e.g. negative rates over much of the nucleus: maps written for inspection, with
    ``outputs``), "cancelled" or "not run". ``reason`` is one line (for "ok" it may carry a notice,
    e.g. a fall-back from the GPU to the CPU). ``verdict`` / ``verdict_reason``: what the written
    maps are worth ("determined", "relative" or "undetermined"; :func:`napari_mollifier.inverse.judge_rates`).
    """

    file: str
    status: str
    reason: str = ""
    outputs: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    runtime_s: float = 0.0
    steps_done: int = 0
    device: str = ""
    verdict: str = ""
    verdict_reason: str = ""
    # With a label image: one row per nucleus (napari_mollifier.inverse.NUCLEUS_COLUMNS).
    nuclei: list = field(default_factory=list)

    def row(self) -> dict:
        s = self.summary
        mean = lambda k: f"{s[k]['mean']:.6g}" if k in s else ""  # noqa: E731
        # Median sd / |map| (docs/method.md, "Uncertainty of the rate maps"); empty without sd maps.
        rel = lambda k: f"{s[k]['median_relative_sd']:.3g}" if "median_relative_sd" in s.get(k, {}) else ""  # noqa: E731
        done = bool(self.outputs)  # maps were written (by this run or, "skipped", by an earlier one)
        return {
            "file": self.file,
            "status": self.status,
            "reason": self.reason,
            "verdict": self.verdict,
            "verdict_reason": self.verdict_reason,
            "gamma_me_mean": mean("gamma_me"),
            "gamma_ac_mean": mean("gamma_ac"),
            "lambda_mean": mean("lambda"),
            "gamma_me_rel_sd": rel("gamma_me"),
            "gamma_ac_rel_sd": rel("gamma_ac"),
            "lambda_rel_sd": rel("lambda"),
            "runtime_s": f"{self.runtime_s:.2f}" if done else "",
            "steps_done": self.steps_done if done else "",
            "device": self.device,
            "outputs": str(self.outputs.get("json", "")),
        }
