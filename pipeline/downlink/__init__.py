"""Downlink: priority order and pass budget, optional extras, alerts and the outbox.

Typical use::

    from pipeline.downlink import encode_scene

    plan = encode_scene(report, geojson, budget_bytes=64_000)
    Path("downlink.bin").write_bytes(plan.packets)

The packet format itself (codec, CCSDS framing, products) is :mod:`pipeline.wire`, which the
ground decoder shares.  ``plan`` uses the standard library only; ``chips`` (image chips and the
quicklook) reads scenes with rasterio and is imported only when used; ``pack`` puts a scene's
products together; ``alerts`` frames live alerts of the streaming API; ``outbox`` is the
crash-safe queue of packets waiting for a pass.
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
    "pack_scene": "pack",
    "make_chips": "chips",
    "make_quicklook": "chips",
    "make_extras": "chips",
}

__all__ = [
    "DownlinkPlan",
    "SentProduct",
    "build_products",
    "encode_scene",
    "make_chips",
    "make_extras",
    "make_quicklook",
    "pack_scene",
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
    from .pack import pack_scene
    from .plan import DownlinkPlan, SentProduct, build_products, encode_scene, plan_pass
