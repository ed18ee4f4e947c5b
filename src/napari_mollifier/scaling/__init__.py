"""The per-domain scaling-law estimate, a cross-check of the rate maps (docs/model.md, "Scaling law").

Before per-pixel maps, rates were estimated one pair per heterochromatin domain from the domain's
radius R and the spacing d to its nearest domains:

    Gamma_ac = D / d^2,    Gamma_me = Gamma_ac / ((d / R)^2 - 1)    (R^2 / d^2 = lambda / (1 + lambda))

This package segments the domains (percentile threshold of phi inside the nucleus, connected
components), evaluates that closed form per domain, and averages per-pixel maps over the same
domains so that the two can be listed side by side.

The package holds the domain segmentation (``_domains``), the per-domain table and its CSV
(``_table``), the scaling-law rates (``_estimate``), the comparison with rate maps (``_compare``)
and the end-to-end check of one image (``_crosscheck``).
"""

from ._compare import compare_with_maps, read_map_pair
from ._crosscheck import scaling_crosscheck
from ._domains import DEFAULT_MIN_AREA_PX, DEFAULT_PERCENTILE, segment_domains
from ._estimate import DEFAULT_NEIGHBOURS, domain_scaling_estimate
from ._table import DomainTable, pearson_r

__all__ = [
    "DEFAULT_PERCENTILE",
    "DEFAULT_MIN_AREA_PX",
    "DEFAULT_NEIGHBOURS",
    "DomainTable",
    "segment_domains",
    "domain_scaling_estimate",
    "compare_with_maps",
    "pearson_r",
    "read_map_pair",
    "scaling_crosscheck",
]
