"""Packaging checks: the shipped npe2 manifest, the wheel, import hygiene, the console script."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "napari.yaml"
DIST = "napari-mollifier"
BIN = Path(sys.executable).parent

# Modules that `import napari_mollifier` must not load (the compute core is GUI-free):
# napari and its submodules, qtpy, and any Qt binding (PyQt5/6, PySide2/6).
GUI_MODULE = re.compile(r"^(napari|qtpy)(\.|$)|^(PyQt|PySide)")


def _manifest_entry_point() -> importlib.metadata.EntryPoint:
    eps = [ep for ep in importlib.metadata.distribution(DIST).entry_points if ep.group == "napari.manifest"]
    assert len(eps) == 1, f"expected one 'napari.manifest' entry point in {DIST}, got {eps}"
    return eps[0]


def _script(name: str) -> str:
    """Path of a console script installed beside this interpreter (fallback: PATH)."""
    for candidate in (BIN / name, BIN / f"{name}.exe"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"console script {name!r} not found beside {sys.executable} nor on PATH")
    return found


def test_installed_manifest_is_the_top_level_file():
    ep = _manifest_entry_point()
    module, _, resource = ep.value.partition(":")
    assert (module, resource) == ("napari_mollifier", "napari.yaml")
    installed = importlib.resources.files(module).joinpath(resource).read_bytes()
    assert installed == MANIFEST.read_bytes(), (
        "the installed napari.yaml differs from the top-level napari.yaml: reinstall "
        "(pip install -e '.[dev]') and check src/napari_mollifier/napari.yaml"
    )


def test_npe2_validate():
    proc = subprocess.run(
        [_script("npe2"), "validate", "--imports", DIST],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"npe2 validate failed:\n{proc.stdout}\n{proc.stderr}"
    assert "valid" in proc.stdout


def test_wheel_ships_the_manifest(tmp_path):
    pytest.importorskip(
        "hatchling", reason="building the wheel without isolation needs hatchling (dev extra)"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = list(tmp_path.glob("napari_mollifier-*.whl"))
    assert len(wheels) == 1, f"expected one wheel, got {sorted(p.name for p in tmp_path.iterdir())}"
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
        assert "napari_mollifier/napari.yaml" in names
        assert zf.read("napari_mollifier/napari.yaml") == MANIFEST.read_bytes()
        # the sample nuclei (napari's File > Open Sample, `mollifier demo`) travel inside the wheel
        for n in (1, 2, 3):
            for suffix in ("phi", "mask", "intensity", "gamma_me_true", "gamma_ac_true"):
                name = f"napari_mollifier/sample_images/nucleus{n}_{suffix}.tif"
                assert zf.read(name) == (REPO / "sample_images" / f"nucleus{n}_{suffix}.tif").read_bytes(), (
                    name
                )
        # the research harness ships beside the library (`mollifier benchmark`)
        for module in ("__init__", "cli", "child", "paper_physics", "problems/__init__"):
            assert f"mollifier_bench/{module}.py" in names, module
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        text = zf.read(entry_points).decode()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "[napari.manifest]" in text
    assert "napari_mollifier:napari.yaml" in text
    # psutil (the harness's memory figures) is an extra, not a dependency of the library
    psutil_reqs = [ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist: psutil")]
    assert psutil_reqs, metadata
    assert all("extra ==" in ln for ln in psutil_reqs), psutil_reqs
    assert any("extra == 'bench'" in ln or 'extra == "bench"' in ln for ln in psutil_reqs), psutil_reqs


def test_import_loads_no_gui_modules():
    code = textwrap.dedent(
        """
        import json, sys
        import napari_mollifier
        print(json.dumps(sorted(sys.modules)))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    offenders = [m for m in loaded if GUI_MODULE.match(m)]
    assert not offenders, f"`import napari_mollifier` loaded GUI modules: {offenders}"
    harness = [m for m in loaded if m.split(".")[0] == "mollifier_bench"]
    assert not harness, f"`import napari_mollifier` loaded the research harness: {harness}"


def test_console_script_help():
    proc = subprocess.run([_script("mollifier"), "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"`mollifier --help` failed:\n{proc.stdout}\n{proc.stderr}"
    assert "usage" in (proc.stdout + proc.stderr).lower()
    for command in ("infer", "batch", "simulate", "scaling", "demo", "benchmark"):
        assert command in proc.stdout, f"`mollifier --help` does not list {command}"
