"""eotriage onboard library: streaming ingest, ONNX detectors, GeoJSON results.

Typical use::

    import pipeline

    scene = pipeline.open_scene("sample_scenes/s2_fire_G90292")
    result = pipeline.run_scene(scene)
    for det in result.detections:
        print(det.cls, det.score, det.measures["area_m2"])

Names are imported lazily, so light submodules (``pipeline.errors``, the downlink codec) can be
imported without loading rasterio, onnxruntime or llama-cpp.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: public name -> submodule that defines it
_EXPORTS = {
    "run_scene": "engine",
    "ConfigError": "errors",
    "EmptySceneError": "errors",
    "EotriageError": "errors",
    "InputError": "errors",
    "ModelError": "errors",
    "PacketError": "errors",
    "TileError": "errors",
    "ComputeFaultError": "errors",
    "StageTimeout": "errors",
    "UnknownSensorError": "errors",
    "write_scene": "outputs",
    "Detection": "results",
    "SceneResult": "results",
    "TileFailure": "results",
    "Scene": "scene",
    "open_scene": "scene",
    "PROFILES": "sensors",
    "CropSettings": "settings",
    "DownlinkSettings": "settings",
    "ReportSettings": "settings",
    "FireSettings": "settings",
    "Settings": "settings",
    "ShipSettings": "settings",
    "ReportWriter": "report.writer",
    "compact_geojson": "report.compact",
    "Triage": "stream",
    "StripLayout": "stream",
}

__all__ = [
    "ConfigError",
    "CropSettings",
    "Detection",
    "DownlinkSettings",
    "EmptySceneError",
    "EotriageError",
    "FireSettings",
    "InputError",
    "ModelError",
    "PROFILES",
    "PacketError",
    "ReportSettings",
    "ReportWriter",
    "Scene",
    "SceneResult",
    "Settings",
    "ShipSettings",
    "StripLayout",
    "TileError",
    "ComputeFaultError",
    "StageTimeout",
    "TileFailure",
    "Triage",
    "UnknownSensorError",
    "__version__",
    "compact_geojson",
    "open_scene",
    "run_scene",
    "write_scene",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .engine import run_scene
    from .errors import (
        ComputeFaultError,
        ConfigError,
        EmptySceneError,
        EotriageError,
        InputError,
        ModelError,
        PacketError,
        StageTimeout,
        TileError,
        UnknownSensorError,
    )
    from .outputs import write_scene
    from .report.compact import compact_geojson
    from .report.writer import ReportWriter
    from .results import Detection, SceneResult, TileFailure
    from .scene import Scene, open_scene
    from .sensors import PROFILES
    from .settings import (
        CropSettings,
        DownlinkSettings,
        FireSettings,
        ReportSettings,
        Settings,
        ShipSettings,
    )
    from .stream import StripLayout, Triage
