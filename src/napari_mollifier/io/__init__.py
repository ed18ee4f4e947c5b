"""Reading images and tables, preprocessing, and writing results."""

from ._atomic import atomic_write_bytes, atomic_write_text
from ._input import LoadedInput, load_input
from ._messages import one_line_error
from ._preprocess import check_fraction, check_mask, intensity_to_fraction, segment_nucleus
from ._readers import (
    MAX_PIXELS,
    PIXEL_SIZE_RANGE_NM,
    ImageData,
    InputError,
    check_pixel_size,
    read_image,
    read_localisations,
    render_localisations,
)
from ._writers import write_json, write_tiff

__all__ = [
    "MAX_PIXELS",
    "PIXEL_SIZE_RANGE_NM",
    "ImageData",
    "InputError",
    "LoadedInput",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_fraction",
    "check_pixel_size",
    "check_mask",
    "intensity_to_fraction",
    "load_input",
    "one_line_error",
    "read_image",
    "read_localisations",
    "render_localisations",
    "segment_nucleus",
    "write_json",
    "write_tiff",
]
