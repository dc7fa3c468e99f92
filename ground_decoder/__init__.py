"""eotriage ground decoder: turns downlink packets back into GeoJSON, text and pictures.

It runs on the ground and must import without onnxruntime, llama-cpp-python or rasterio.
The packet codec arrives with the downlink issue; for now this package reads the onboard
GeoJSON products so ground tools have one place to grow from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def read_detections(path: str | Path) -> dict[str, Any]:
    """Load a ``detections.geojson`` FeatureCollection written by ``eotriage run``."""
    data = json.loads(Path(path).read_text())
    if data.get("type") != "FeatureCollection":
        raise ValueError(f"{path}: not a GeoJSON FeatureCollection")
    return data
