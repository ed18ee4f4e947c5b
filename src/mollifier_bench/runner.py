"""Run benchmark configurations, each in a fresh subprocess, and yield their records."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence

from ._deps import require_psutil

#: Grids of the full and the quick derivative benchmark (points per side).
FULL_GRIDS = (64, 128, 256)
QUICK_GRIDS = (64, 128)
#: Memory kept free for the system when capping a CPU configuration.
_RESERVE_BYTES = 1536 * 2**20


def resolve_device(device: str = "auto") -> str:
    """The device name a benchmark runs on (see ``napari_mollifier.inverse.resolve_device``)."""
    from napari_mollifier.inverse import resolve_device as resolve

    return str(resolve(device))


def derivative_configs(
    grids: Sequence[int] = FULL_GRIDS, orders: Sequence[int] = (1, 2, 4), quick: bool = False
) -> list[dict]:
    """Configurations of problem "derivatives": per grid, a data-only step, then each order
    with mollifier and autodiff. ``quick`` skips autodiff above 64^2 for orders 2 and 4
    (they take minutes on a 2-core CPU) but keeps the order-4 mollifier and data steps."""
    from .derivative_step import RESIDUAL_TERMS

    configs = []
    for n in grids:
        configs.append(dict(problem="derivatives", arch="mlp", grid=n, order=0, method="data"))
        for order in orders:
            if order not in RESIDUAL_TERMS:
                raise ValueError(f"order must be one of {sorted(RESIDUAL_TERMS)}, got {order}")
            for method in ("mollifier", "autodiff"):
                if quick and method == "autodiff" and n > 64 and order > 1:
                    continue
                configs.append(dict(problem="derivatives", arch="mlp", grid=n, order=order, method=method))
    return configs


def chromatin_step_configs(grids: Sequence[int] = FULL_GRIDS) -> list[dict]:
    """Configurations of the 4th-order "chromatin" step: mollifier and autodiff per grid."""
    return [
        dict(problem="chromatin", kind="step", arch="mlp", grid=n, order=4, method=m)
        for n in grids
        for m in ("mollifier", "autodiff")
    ]


def run_configs(
    configs: Iterable[dict],
    device: str = "auto",
    *,
    timeout_s: float = 1800,
    memory_cap_bytes: int | None = None,
) -> Iterator[dict]:
    """Run each configuration in a fresh Python process and yield its benchmark record.

    On CPU the child's address space is capped at the memory available when it starts (minus
    a reserve, or ``memory_cap_bytes``) so that a configuration that does not fit fails with
    an allocation error, recorded as status "out_of_memory", instead of exhausting the machine.
    """
    dev = resolve_device(device)
    for config in configs:
        cfg = dict(config, device=dev)
        if dev == "cpu":
            avail = require_psutil().virtual_memory().available - _RESERVE_BYTES
            cfg["memory_cap_bytes"] = int(min(avail, memory_cap_bytes) if memory_cap_bytes else avail)
        base = {
            k: cfg.get(k)
            for k in ("problem", "kind", "order", "arch", "method", "optimizer", "noise", "grid")
        }
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "mollifier_bench.child", json.dumps(cfg)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            yield dict(
                base,
                device=dev,
                status="error",
                error=f"timed out after {timeout_s:.0f} s",
                time_per_step_s=None,
                peak_memory_bytes=None,
                recovery_r=None,
                recovery_rel_error=None,
            )
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode == 0 and lines:
            yield json.loads(lines[-1])
        else:
            killed = proc.returncode in (-9, 137)  # the kernel's OOM killer sends SIGKILL
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            yield dict(
                base,
                device=dev,
                status="out_of_memory" if killed else "error",
                error=f"exit {proc.returncode}: {tail[0][:300]}",
                time_per_step_s=None,
                peak_memory_bytes=None,
                recovery_r=None,
                recovery_rel_error=None,
            )
