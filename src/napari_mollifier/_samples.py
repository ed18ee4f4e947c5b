"""Where the bundled sample nuclei live, in a source tree and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

__all__ = ["sample_images_dir"]


def sample_images_dir() -> Path:
    """The folder of the simulated sample nuclei (``nucleus1_phi.tif``, ...).

    A wheel carries them inside the package (hatch ``force-include`` of the repository's
    ``sample_images/`` as ``napari_mollifier/sample_images``); a source checkout or editable install
    uses the repository folder itself.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "sample_images", here.parents[1] / "sample_images"):
        if (candidate / "nucleus1_phi.tif").exists():
            return candidate
    raise FileNotFoundError(
        f"the sample images are neither in {here / 'sample_images'} nor in the repository's "
        "sample_images/; reinstall napari-mollifier or regenerate them with "
        "`bash scripts/make_sample_images.sh`"
    )
