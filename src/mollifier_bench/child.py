"""Run one benchmark configuration in a fresh process and print its record as JSON.

A fresh process per configuration makes CPU peak memory honest (peak resident set of this
process minus its idle baseline) and keeps an out-of-memory failure from taking down the run.
Usage (internal): python -m mollifier_bench.child '<config json>'
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
import traceback

import torch

# The harness and the library (torch, scipy, ...) are loaded before the address-space cap: a
# library whose start-up allocation fails under the cap can spin instead of raising (scipy's
# OpenBLAS does).
from . import chromatin_step, derivative_step, fits, problems, steps  # noqa: F401
from ._deps import require_psutil


def _cap_address_space(limit_bytes: int | None) -> None:
    """Make allocations beyond the cap fail with an exception instead of waking the OOM killer."""
    if not limit_bytes:
        return
    vms = require_psutil().Process().memory_info().vms
    resource.setrlimit(resource.RLIMIT_AS, (vms + limit_bytes, vms + limit_bytes))


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return (
        isinstance(exc, MemoryError)
        or "out of memory" in text
        or "can't allocate memory" in text
        or "cannot allocate memory" in text
        or "outofmemory" in text
    )


def _memory_baseline(device, proc, sync) -> int:
    """Collect garbage, then the allocated bytes (CUDA, peak statistics reset) or the resident set."""
    gc.collect()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return proc.memory_info().rss


def _peak_rss() -> int:
    """This process's lifetime peak RSS in bytes.

    Linux's VmHWM where there is one: ``ru_maxrss`` keeps the parent's RSS from before the exec,
    so under a large parent it reads high.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _peak_above(device, base: int) -> int:
    """Peak memory since the baseline: CUDA's peak allocation, or the process's lifetime peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) - base)
    return int(max(_peak_rss() - base, 0))


def run(config: dict) -> dict:
    device = torch.device(config["device"])
    record = {k: config.get(k) for k in ("problem", "order", "arch", "method", "grid")}
    record["kind"] = config.get("kind", "step")
    record.update(
        time_per_step_s=None,
        peak_memory_bytes=None,
        recovery_r=None,
        recovery_rel_error=None,
        device=str(device),
        status="ok",
        steps_timed=0,
    )
    if device.type == "cuda":
        record["device_name"] = torch.cuda.get_device_name(device)
        record["memory_source"] = "torch.cuda.max_memory_allocated minus allocated before the step"
    else:
        record["memory_source"] = "peak RSS of a fresh process minus its RSS after set-up"
        torch.set_flush_denormal(True)
    proc = require_psutil().Process()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if config.get("kind") == "fit":
        return _run_fit(config, device, record, proc, sync)
    try:
        step = steps.build_step(config, device)
        base = _memory_baseline(device, proc, sync)
        t0 = time.perf_counter()
        step()  # warm-up (also allocates the optimiser state)
        sync()
        first = time.perf_counter() - t0
        times = []
        min_time, min_steps, max_steps = (
            float(config.get(k, d)) for k, d in (("min_time_s", 2.0), ("min_steps", 2), ("max_steps", 20))
        )
        # Slow configurations (over ~20 s per step) are timed on fewer steps.
        if first > 20:
            min_steps = 1
        while len(times) < max_steps and (len(times) < min_steps or sum(times) < min_time):
            t0 = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t0)
        times.sort()
        record["time_per_step_s"] = times[len(times) // 2]
        record["steps_timed"] = len(times)
        record["peak_memory_bytes"] = _peak_above(device, base)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
        record["status"] = "out_of_memory" if _is_oom(exc) else "error"
        record["time_per_step_s"] = None
        record["peak_memory_bytes"] = None
        record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if record["status"] == "error":
            record["traceback"] = traceback.format_exc()[-2000:]
    return record


def _run_fit(config: dict, device, record: dict, proc, sync) -> dict:
    """A whole fit: the simulation is set-up; memory is the fit's peak above it."""
    record.update({k: config.get(k) for k in ("kind", "optimizer", "noise", "steps")})
    try:
        data = fits.prepare(config)
        base = _memory_baseline(device, proc, sync)
        before = _peak_rss()
        record.update(fits.run_fit(config, data, device))
        sync()
        record["peak_memory_bytes"] = _peak_above(device, base)
        # The peak RSS is the lifetime peak: if the set-up peaked higher, the fit's own peak is
        # unknown and the figure is a lower bound (flagged).
        if device.type != "cuda" and _peak_rss() <= before:
            record["memory_source"] += " (lower bound: the set-up peaked higher)"
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
        record["status"] = "out_of_memory" if _is_oom(exc) else "error"
        record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if record["status"] == "error":
            record["traceback"] = traceback.format_exc()[-2000:]
    return record


def main() -> None:
    config = json.loads(sys.argv[1])
    if config.get("device", "cpu") == "cpu":
        _cap_address_space(config.get("memory_cap_bytes"))
    record = run(config)
    sys.stdout.write("\n" + json.dumps(record) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
