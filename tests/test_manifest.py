"""The napari manifest: the package's copy (the one the entry point loads) and the repository's."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_manifest_is_a_file_identical_to_the_top_level_one():
    package = ROOT / "src" / "napari_mollifier" / "napari.yaml"
    top = ROOT / "napari.yaml"
    # A real file: a symlink would leave wheels and sdists without the manifest on some systems.
    assert package.is_file() and not package.is_symlink()
    assert package.read_bytes() == top.read_bytes(), "edit src/napari_mollifier/napari.yaml and copy it"
