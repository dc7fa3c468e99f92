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
    "run_scene": "core.engine",
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
    "CheckpointError": "errors",
    "LlmTimeout": "errors",
    "OutboxError": "errors",
    "OutputError": "errors",
    "QuestionError": "errors",
    "StoreError": "errors",
    "UplinkError": "errors",
    "SceneRunner": "runner",
    "SceneOutcome": "runner",
    "write_scene": "runner",
    "ClassStatus": "core.results",
    "Detection": "core.results",
    "SceneResult": "core.results",
    "TileFailure": "core.results",
    "Scene": "core.scene",
    "open_scene": "core.scene",
    "PROFILES": "sensors",
    "CropSettings": "settings",
    "DownlinkSettings": "settings",
    "ReportSettings": "settings",
    "FireSettings": "settings",
    "Settings": "settings",
    "ShipSettings": "settings",
    "ReportWriter": "report.writer",
    "compact_geojson": "report.compact",
    "Triage": "core.stream",
    "StripLayout": "core.stream",
}

__all__ = [
    "CheckpointError",
    "ClassStatus",
    "ConfigError",
    "CropSettings",
    "Detection",
    "DownlinkSettings",
    "EmptySceneError",
    "EotriageError",
    "FireSettings",
    "InputError",
    "LlmTimeout",
    "ModelError",
    "OutboxError",
    "OutputError",
    "PROFILES",
    "PacketError",
    "QuestionError",
    "ReportSettings",
    "ReportWriter",
    "Scene",
    "SceneOutcome",
    "SceneResult",
    "SceneRunner",
    "Settings",
    "ShipSettings",
    "StoreError",
    "StripLayout",
    "TileError",
    "ComputeFaultError",
    "StageTimeout",
    "TileFailure",
    "Triage",
    "UnknownSensorError",
    "UplinkError",
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
    from .core.engine import run_scene
    from .core.results import ClassStatus, Detection, SceneResult, TileFailure
    from .core.scene import Scene, open_scene
    from .core.stream import StripLayout, Triage
    from .errors import (
        CheckpointError,
        ComputeFaultError,
        ConfigError,
        EmptySceneError,
        EotriageError,
        InputError,
        LlmTimeout,
        ModelError,
        OutboxError,
        OutputError,
        PacketError,
        QuestionError,
        StageTimeout,
        StoreError,
        TileError,
        UnknownSensorError,
        UplinkError,
    )
    from .report.compact import compact_geojson
    from .report.writer import ReportWriter
    from .runner import SceneOutcome, SceneRunner, write_scene
    from .sensors import PROFILES
    from .settings import (
        CropSettings,
        DownlinkSettings,
        FireSettings,
        ReportSettings,
        Settings,
        ShipSettings,
    )
