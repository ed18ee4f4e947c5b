"""Read and render 3 million localisations in each supported SMLM format.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/smlm_formats.py [--n 3000000] [--pixel-size 10]
        [--repeats 1] [--out benchmarks/results/smlm_formats.md]

One nucleus-sized cloud of ``--n`` localisations (a 15 x 12 µm ellipse with chromatin-like
clusters; precision 8-30 nm, log-normal) is written in a temporary folder as a Picasso HDF5 with
its YAML (camera pixels of 130 nm), a ThunderSTORM CSV (``"x [nm]"``, ..., ``"uncertainty [nm]"``),
a rapidSTORM text file (XML header, space-separated rows), an SMLM challenge CSV (``xnano``,
``ynano``: no precision) and a plain ``x,y`` CSV in camera pixels (read with ``xy_unit="px"``).
For each file the script times :func:`napari_mollifier.io.read_table` (parse to nm) and
:func:`napari_mollifier.io.render_table` (read + render at ``--pixel-size`` with each
localisation's precision as its blur), best of ``--repeats``. Writing the files is not timed.
The table records the machine and its load average before and after (other jobs share the cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "smlm_formats.md"
CAMERA_NM = 130.0


def _cloud(n: int, seed: int = 0):
    """x, y (nm) of n localisations in an elliptic nucleus, half of them in clusters, and their
    precisions (nm)."""
    r = np.random.default_rng(seed)
    centres = r.uniform(-1, 1, (4000, 2))
    centres = centres[(centres**2).sum(1) < 1] * [7500.0, 6000.0]
    k = n // 2
    owner = r.integers(0, len(centres), k)
    clustered = centres[owner] + r.normal(0, 60.0, (k, 2))
    u = r.uniform(-1, 1, (4 * (n - k), 2))
    u = u[(u**2).sum(1) < 1][: n - k] * [7500.0, 6000.0]
    xy = np.vstack([clustered, u]) + [10000.0, 9000.0]
    prec = np.clip(np.exp(r.normal(np.log(15.0), 0.3, n)), 8.0, 30.0)
    return xy[:, 0], xy[:, 1], prec


def write_files(folder: Path, n: int) -> dict[str, tuple[Path, dict]]:
    import h5py
    import pandas as pd
    import yaml

    x, y, p = _cloud(n)
    files = {}
    rec = np.zeros(
        n,
        [("frame", "u4"), ("x", "f4"), ("y", "f4"), ("photons", "f4"), ("sx", "f4"), ("sy", "f4")]
        + [("bg", "f4"), ("lpx", "f4"), ("lpy", "f4"), ("ellipticity", "f4"), ("net_gradient", "f4")],
    )
    rec["frame"] = np.arange(n) // 300
    rec["x"], rec["y"], rec["lpx"], rec["lpy"] = x / CAMERA_NM, y / CAMERA_NM, p / CAMERA_NM, p / CAMERA_NM
    rec["photons"] = 1000.0
    with h5py.File(folder / "picasso_locs.hdf5", "w") as f:
        f.create_dataset("locs", data=rec)
    (folder / "picasso_locs.yaml").write_text(
        yaml.dump_all([{"Camera": "sCMOS", "Frames": int(rec["frame"][-1]) + 1}, {"Pixelsize": CAMERA_NM}])
    )
    files["Picasso HDF5 + YAML"] = (folder / "picasso_locs.hdf5", {})
    frame = np.arange(n) // 300 + 1
    ts = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "frame": frame,
            "x [nm]": x,
            "y [nm]": y,
            "sigma [nm]": 130.0,
            "intensity [photon]": 1000.0,
            "offset [photon]": 10.0,
            "bkgstd [photon]": 3.0,
            "uncertainty [nm]": p,
        }
    )
    ts.to_csv(folder / "thunderstorm.csv", index=False, float_format="%.3f", quoting=2)  # quoted headers
    files["ThunderSTORM CSV"] = (folder / "thunderstorm.csv", {})
    header = (
        '# <localizations insequence="true" repetitions="variable">'
        '<field identifier="Position-0-0" syntax="floating point" semantic="position in sample space in X" '
        'unit="nanometer" /><field identifier="Position-0-0-uncertainty" syntax="floating point" '
        'semantic="position uncertainty in sample space in X" unit="nanometer" />'
        '<field identifier="Position-1-0" syntax="floating point" semantic="position in sample space in Y" '
        'unit="nanometer" /><field identifier="Position-1-0-uncertainty" syntax="floating point" '
        'semantic="position uncertainty in sample space in Y" unit="nanometer" />'
        '<field identifier="ImageNumber-0-0" syntax="integer" semantic="frame number" unit="frame" />'
        '<field identifier="Amplitude-0-0" syntax="floating point" semantic="emission strength" '
        'unit="A/D count" />'
        "</localizations>\n"
    )
    rs = pd.DataFrame({"x": x, "ux": p, "y": y, "uy": p, "frame": frame, "a": 5000.0})
    with open(folder / "rapidstorm.txt", "w") as fh:
        fh.write(header)
        rs.to_csv(fh, sep=" ", header=False, index=False, float_format="%.3f")
    files["rapidSTORM text"] = (folder / "rapidstorm.txt", {})
    ch = pd.DataFrame({"frame": frame, "xnano": x, "ynano": y, "znano": 0.0, "intensity": 1000.0})
    ch.to_csv(folder / "challenge.csv", index=False, float_format="%.3f")
    files["SMLM challenge CSV"] = (folder / "challenge.csv", {})
    plain = pd.DataFrame({"frame": frame, "x": x / CAMERA_NM, "y": y / CAMERA_NM})
    plain.to_csv(folder / "plain_px.csv", index=False, float_format="%.5f")
    files["plain x,y CSV (px, unit given)"] = (
        folder / "plain_px.csv",
        {"xy_unit": "px", "camera_pixel_nm": CAMERA_NM},
    )
    return files


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--pixel-size", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    from napari_mollifier.io import read_table, render_localisations, render_table

    load0 = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        files = write_files(folder, args.n)
        print(
            f"wrote {len(files)} files of {args.n} localisations in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
        for label, (path, kw) in files.items():
            t_read, table = _best(lambda p=path, kw=kw: read_table(p, **kw), args.repeats)
            t_all, r = _best(lambda p=path, kw=kw: render_table(p, args.pixel_size, **kw), args.repeats)
            t_render, img = _best(
                lambda t=table, r=r: render_localisations(
                    t.x_nm,
                    t.y_nm,
                    args.pixel_size,
                    shape=r.data.shape,
                    origin_nm=r.origin_nm,
                    precision_nm=t.precision_nm,
                ),
                args.repeats,
            )
            assert np.array_equal(img, r.data)
            mb = path.stat().st_size / 1e6
            rows.append(
                f"| {label} | {mb:.0f} | {table.x_nm.size} | {t_read:.2f} | {t_all:.2f} | "
                f"{t_render:.2f} | "
                f"{r.data.shape[0]}x{r.data.shape[1]} | "
                f"{'per localisation' if table.precision_nm is not None else 'none (histogram)'} |"
            )
            print(rows[-1], file=sys.stderr)
    load1 = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    import pandas

    text = "\n".join(
        [
            "# Reading and rendering 3 million localisations per SMLM format",
            "",
            f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} "
            "python benchmarks/smlm_formats.py"
            f"{'' if args.n == 3_000_000 else f' --n {args.n}'}`  ",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, Python "
            f"{platform.python_version()}, numpy {np.__version__}, pandas {pandas.__version__}  ",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
            f"Load average (1, 5, 15 min) before: {', '.join(load0)}; after: {', '.join(load1)}",
            "",
            f"{args.n} localisations of one 15 x 12 µm nucleus (precision 8-30 nm); render at "
            f"{args.pixel_size:g} nm "
            "over the bounding box plus 500 nm, each localisation a Gaussian of sd its precision (precision "
            f"classes 10 % wide). Best of {args.repeats} runs each; 'render' is the rendering of the table "
            "already read, timed on its own.",
            "",
            "| format | file (MB) | localisations | read (s) | read + render (s) | render (s) | image "
            "| blur |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
            *rows,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
