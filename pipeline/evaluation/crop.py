"""Evaluate crop-stress detections against a synthetic scene's truth.

The detections (WGS84 polygons) are projected back to the scene CRS and rasterised on the truth
grid (pixel centres inside a polygon), then compared with ``truth_classes.tif`` pixel by pixel.
The *detected area* is the sum of the detections' reported ``area_km2`` (what the downlink
says), the pixel overlaps come from the rasterised polygons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from shapely.geometry import mapping

from ..core.results import SceneResult
from ..errors import InputError, cause_text


@dataclass(frozen=True)
class FieldHit:
    """One truth field: its stressed area and how much of it was detected."""

    id: int
    state: str
    truth_km2: float
    detected_km2: float

    @property
    def hit(self) -> bool:
        """At least half of the field's stressed area is covered by detections."""
        return self.truth_km2 > 0 and self.detected_km2 >= 0.5 * self.truth_km2


@dataclass(frozen=True)
class CropEvaluation:
    """Detected vs true stressed area, with the false alarms on water and bare soil."""

    mode: str  # "low" (no baseline) or "drop" (baseline given)
    truth_km2: float
    detected_km2: float
    relative_error: float
    #: stressed truth pixels covered by a detection / all stressed truth pixels
    pixel_recall: float
    #: detected pixels on stressed truth / all detected pixels
    pixel_precision: float
    fields: tuple[FieldHit, ...]
    fields_stressed: int
    fields_hit: int
    #: detections' pixels on healthy fields (the drop mode counts declining fields as stressed)
    false_px_healthy: int
    stress_px_on_water: int
    stress_px_on_bare: int
    stress_px_on_urban: int
    stress_px_on_woodland: int
    detections: int

    @property
    def within(self) -> float:
        """Absolute relative area error (0.05 = 5 %)."""
        return abs(self.relative_error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "truth_km2": round(self.truth_km2, 5),
            "detected_km2": round(self.detected_km2, 5),
            "relative_error": round(self.relative_error, 5),
            "pixel_recall": round(self.pixel_recall, 4),
            "pixel_precision": round(self.pixel_precision, 4),
            "fields_stressed": self.fields_stressed,
            "fields_hit": self.fields_hit,
            "false_px_healthy": self.false_px_healthy,
            "stress_px_on_water": self.stress_px_on_water,
            "stress_px_on_bare": self.stress_px_on_bare,
            "stress_px_on_urban": self.stress_px_on_urban,
            "stress_px_on_woodland": self.stress_px_on_woodland,
            "detections": self.detections,
        }


def detection_mask(
    result: SceneResult, shape: tuple[int, int], transform: Affine, crs: str
) -> np.ndarray:
    """Rasterise the ``crop_stress`` detections on a grid (bool, pixel centres inside)."""
    geoms = [
        transform_geom("EPSG:4326", crs, mapping(d.geometry))
        for d in result.detections
        if d.cls == "crop_stress"
    ]
    if not geoms:
        return np.zeros(shape, bool)
    burned = rasterize(
        [(g, 1) for g in geoms], out_shape=shape, transform=transform, fill=0, dtype="uint8"
    )
    return burned.astype(bool)


def load_truth(truth: str | Path) -> tuple[dict[str, Any], Path]:
    """``truth.json`` (or the scene folder holding it) -> (truth dict, its folder)."""
    p = Path(truth)
    if p.is_dir():
        p = p / "truth.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read crop truth ({exc})") from None
    if data.get("kind") != "crop stress":
        raise InputError(f"{p}: not a synthetic crop-stress truth file")
    return data, p.parent


def evaluate_crop(
    result: SceneResult, truth: str | Path, *, with_baseline: bool = False
) -> CropEvaluation:
    """Compare a run's crop-stress detections with the truth of a synthetic crop scene.

    ``truth`` is the scene folder or its ``truth.json``.  ``with_baseline``: the run used the
    scene's baseline raster, so declining fields (stressed only against the baseline) count as
    stressed too.
    """
    data, folder = load_truth(truth)
    classes: Mapping[str, int] = data["classes"]
    try:
        with rasterio.open(folder / data["class_raster"]) as ds:
            cls = ds.read(1)
            transform = ds.transform
            crs = ds.crs.to_string()
    except RasterioError as exc:
        raise InputError(f"{folder / data['class_raster']}: {cause_text(exc)}") from None
    states = data["stressed_drop_classes" if with_baseline else "stressed_low_classes"]
    truth_px = np.isin(cls, [classes[s] for s in states])
    det = detection_mask(result, cls.shape, transform, crs)
    px_km2 = float(data["pixel_m"]) ** 2 / 1e6
    truth_km2 = float(data["stressed_km2_baseline" if with_baseline else "stressed_km2"])
    detected_km2 = float(
        sum(float(d.measures["area_km2"]) for d in result.detections if d.cls == "crop_stress")
    )
    rel = (detected_km2 - truth_km2) / truth_km2 if truth_km2 > 0 else float("inf")
    tp = int(np.count_nonzero(det & truth_px))
    n_det = int(np.count_nonzero(det))
    n_truth = int(np.count_nonzero(truth_px))
    key = "stressed_km2_baseline" if with_baseline else "stressed_km2"
    hits: list[FieldHit] = []
    for f in data["fields"]:
        sl = (slice(f["row"], f["row"] + f["height"]), slice(f["col"], f["col"] + f["width"]))
        covered = int(np.count_nonzero(det[sl] & truth_px[sl]))
        hits.append(FieldHit(int(f["id"]), str(f["state"]), float(f[key]), covered * px_km2))
    stressed_fields = [h for h in hits if h.truth_km2 > 0]

    def on(name: str) -> int:
        return int(np.count_nonzero(det & (cls == classes[name])))

    healthy = on("healthy") + (0 if with_baseline else on("declining"))
    return CropEvaluation(
        mode="drop" if with_baseline else "low",
        truth_km2=truth_km2,
        detected_km2=detected_km2,
        relative_error=rel,
        pixel_recall=tp / n_truth if n_truth else 1.0,
        pixel_precision=tp / n_det if n_det else 1.0,
        fields=tuple(hits),
        fields_stressed=len(stressed_fields),
        fields_hit=sum(h.hit for h in stressed_fields),
        false_px_healthy=healthy,
        stress_px_on_water=on("water"),
        stress_px_on_bare=on("bare"),
        stress_px_on_urban=on("urban"),
        stress_px_on_woodland=on("woodland"),
        detections=sum(1 for d in result.detections if d.cls == "crop_stress"),
    )
