"""eotriage onboard library: streaming ingest, ONNX detectors, GeoJSON results.

Typical use::

    import pipeline

    scene = pipeline.open_scene("sample_scenes/s2_fire_G90292")
    result = pipeline.run_scene(scene)
    for det in result.detections:
        print(det.cls, det.score, det.measures["area_m2"])
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

from .engine import run_scene  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    EmptySceneError,
    EotriageError,
    InputError,
    ModelError,
    PacketError,
    TileError,
    UnknownSensorError,
)
from .outputs import write_scene  # noqa: E402
from .results import Detection, SceneResult, TileFailure  # noqa: E402
from .scene import Scene, open_scene  # noqa: E402
from .sensors import PROFILES  # noqa: E402
from .settings import FireSettings, Settings  # noqa: E402

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "PROFILES",
    "ConfigError",
    "Detection",
    "EmptySceneError",
    "EotriageError",
    "FireSettings",
    "InputError",
    "ModelError",
    "PacketError",
    "Scene",
    "SceneResult",
    "Settings",
    "TileError",
    "TileFailure",
    "UnknownSensorError",
    "__version__",
    "open_scene",
    "run_scene",
    "write_scene",
]
