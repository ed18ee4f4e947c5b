"""Reading images and tables, preprocessing, and writing results."""

from ._atomic import atomic_write_bytes, atomic_write_text
from ._input import LoadedInput, load_image, load_input
from ._messages import one_line_error
from ._photons import PhotonTransfer, estimate_photon_transfer
from ._preprocess import (
    check_fraction,
    check_mask,
    intensity_to_fraction,
    label_nuclei,
    localisation_coverage_notice,
    nucleus_support,
    segment_nucleus,
)
from ._readers import (
    MAX_PIXELS,
    PIXEL_SIZE_RANGE_NM,
    ImageData,
    InputError,
    check_pixel_size,
    read_image,
    read_tiff_as_is,
    select_plane,
)
from ._results import RATE_TABLE_COLUMNS, rate_table_rows, result_stem, save_result, write_rate_table
from ._settings_files import CONFIG_SUFFIXES, read_settings_file, settings_template
from ._tables import (
    DEFAULT_RENDER_PIXEL_NM,
    RENDER_MARGIN_NM,
    TABLE_SUFFIXES,
    XY_UNITS,
    LocalisationTable,
    MissingUnitError,
    ReadOptions,
    RenderedTable,
    is_table,
    read_localisations,
    read_table,
    render_localisations,
    render_table,
)
from ._writers import write_json, write_tiff

__all__ = [
    "CONFIG_SUFFIXES",
    "read_settings_file",
    "settings_template",
    "RATE_TABLE_COLUMNS",
    "rate_table_rows",
    "result_stem",
    "save_result",
    "write_rate_table",
    "load_image",
    "label_nuclei",
    "nucleus_support",
    "DEFAULT_RENDER_PIXEL_NM",
    "MAX_PIXELS",
    "PIXEL_SIZE_RANGE_NM",
    "RENDER_MARGIN_NM",
    "TABLE_SUFFIXES",
    "XY_UNITS",
    "LocalisationTable",
    "MissingUnitError",
    "ReadOptions",
    "read_table",
    "select_plane",
    "ImageData",
    "InputError",
    "RenderedTable",
    "LoadedInput",
    "PhotonTransfer",
    "estimate_photon_transfer",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_fraction",
    "check_pixel_size",
    "check_mask",
    "intensity_to_fraction",
    "is_table",
    "load_input",
    "localisation_coverage_notice",
    "one_line_error",
    "read_image",
    "read_tiff_as_is",
    "read_localisations",
    "render_localisations",
    "render_table",
    "segment_nucleus",
    "write_json",
    "write_tiff",
]
