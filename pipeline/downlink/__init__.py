"""Downlink: compact codec, CCSDS space packets, priority order and budget, optional extras.

Typical use::

    from pipeline.downlink import encode_scene

    plan = encode_scene(report, geojson, budget_bytes=64_000)
    Path("downlink.bin").write_bytes(plan.packets)

The codec, packet framing and planning (``codec``, ``ccsds``, ``products``, ``plan``) use the
standard library only, so the ground decoder shares them; ``chips`` (image chips and the
quicklook) reads scenes with rasterio and is imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DownlinkPlan": "plan",
    "SentProduct": "plan",
    "build_products": "plan",
    "encode_scene": "plan",
    "plan_pass": "plan",
    "Chip": "products",
    "Extras": "products",
    "Kind": "products",
    "Product": "products",
    "Quicklook": "products",
    "make_chips": "chips",
    "make_quicklook": "chips",
    "make_extras": "chips",
}

__all__ = [
    "Chip",
    "DownlinkPlan",
    "Extras",
    "Kind",
    "Product",
    "Quicklook",
    "SentProduct",
    "build_products",
    "encode_scene",
    "make_chips",
    "make_extras",
    "make_quicklook",
    "plan_pass",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.downlink' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .chips import make_chips, make_extras, make_quicklook
    from .plan import DownlinkPlan, SentProduct, build_products, encode_scene, plan_pass
    from .products import Chip, Extras, Kind, Product, Quicklook
