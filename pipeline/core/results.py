"""Frozen result types and their GeoJSON form."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

DETECTION_CLASSES = ("ship", "fire", "crop_stress")
#: GeoJSON coordinates are written with 7 decimals (~1 cm), enough for 10 m pixels.
COORD_DECIMALS = 7


@dataclass(frozen=True)
class Detection:
    """One detected object in WGS84 (lon/lat), with the measures that explain it."""

    cls: str
    score: float
    geometry: BaseGeometry
    measures: Mapping[str, float | int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cls not in DETECTION_CLASSES:
            raise ValueError(f"unknown detection class {self.cls!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in 0..1, got {self.score}")

    def to_feature(self) -> dict[str, Any]:
        geom = _round_coords(mapping(self.geometry), COORD_DECIMALS)
        props: dict[str, Any] = {"class": self.cls, "score": round(self.score, 4)}
        props.update(self.measures)
        return {"type": "Feature", "geometry": geom, "properties": props}

    @classmethod
    def from_feature(cls, feature: Mapping[str, Any]) -> Detection:
        props = dict(feature["properties"])
        klass = props.pop("class")
        score = float(props.pop("score"))
        return cls(klass, score, shape(feature["geometry"]), props)


@dataclass(frozen=True)
class TileFailure:
    """A tile that could not be processed, and why."""

    tile_id: str
    window: tuple[int, int, int, int]  # col_off, row_off, width, height on the working grid
    cause: str

    def to_dict(self) -> dict[str, Any]:
        return {"tile": self.tile_id, "window": list(self.window), "cause": self.cause}


@dataclass(frozen=True)
class SceneResult:
    """Everything one run of one scene produced."""

    scene: str
    detections: tuple[Detection, ...]
    failures: tuple[TileFailure, ...]
    #: scene-level problems that make the result incomplete (e.g. a band that is all NaN)
    problems: tuple[str, ...]
    tiles_total: int
    timings_s: Mapping[str, float]
    models: Mapping[str, Mapping[str, str]]
    detectors: Mapping[str, str]
    info: Mapping[str, Any]
    #: the cloud screen's coarse scene map (``pipeline.core.sky.SkyMap``), when it ran
    sky_map: Any = None

    @property
    def ok(self) -> bool:
        return not self.failures and not self.problems

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in DETECTION_CLASSES}
        for d in self.detections:
            out[d.cls] += 1
        return out

    def to_geojson(self) -> dict[str, Any]:
        """RFC 7946 FeatureCollection (WGS84 lon/lat, counter-clockwise exteriors)."""
        return {"type": "FeatureCollection", "features": [d.to_feature() for d in self.detections]}

    def geojson_bytes(self) -> bytes:
        return json.dumps(self.to_geojson(), separators=(",", ":")).encode()


def _round_coords(obj: Any, nd: int) -> Any:
    if isinstance(obj, Mapping):
        return {k: _round_coords(v, nd) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round_coords(v, nd) for v in obj]
    if isinstance(obj, float):
        return round(obj, nd)
    return obj
