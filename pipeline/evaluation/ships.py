"""Ships against labelled vessels.

A detection and a labelled vessel can match when the detection's centroid lies within
``tolerance_m`` (ground metres) of the vessel's box (or of its centroid when the label has no
box).  Pairs are matched greedily, closest centroids first, each vessel and each detection at
most once (a vessel found as two pieces gives one true positive and one false alarm; two vessels
merged into one detection give one true positive and one miss).  False alarms are also given
per 10 km2 of sea, with the sea area from the ship detector's water mask (NDWI).  When the
labels come with an instance raster (``vessel_instances.tif`` beside the labels, as in
sen2ships), recall is also split by where the vessels lie (:func:`vessel_settings`: at sea or
moored) and precision by the detector's kind of detection (``free`` / ``shore``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.results import Detection, SceneResult
from ..errors import InputError
from ..settings import Settings
from .scoring import detection_lonlat, distance_m, metres_east_north, rounded

if TYPE_CHECKING:
    from ..core.scene import Scene
    from ..core.tiling import Tile

#: default matching tolerance between a detection centroid and a vessel box, ground metres
SHIP_TOLERANCE_M = 30.0
#: A labelled vessel is "at sea" when at least this share of the 3-pixel ring around its mask
#: (other vessels left out) is water by the ship detector's NDWI test; "moored" otherwise
#: (alongside a quay, a pier or another hull).
AT_SEA_RING_WATER = 0.9
#: Instance raster of labelled vessels looked for beside the labels file (sen2ships form:
#: pixel value = the vessel's instance_id, on the scene grid).
INSTANCES_FILE = "vessel_instances.tif"


@dataclass(frozen=True)
class Vessel:
    """One labelled vessel: centroid and optional box, WGS84 lon/lat."""

    id: int
    lon: float
    lat: float
    #: (lon_min, lat_min, lon_max, lat_max) or None
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class ShipMatch:
    vessel_id: int
    detection: int  # index into the scored detections
    distance_m: float  # centroid to centroid


@dataclass(frozen=True)
class ShipScore:
    """Per-scene ship scores."""

    scene: str
    labels: int
    detections: int
    tp: int
    fp: int
    fn: int
    sea_km2: float
    tolerance_m: float
    matches: tuple[ShipMatch, ...] = ()
    missed: tuple[int, ...] = ()
    false_alarms: tuple[int, ...] = ()
    #: "at_sea" / "moored" -> (labelled vessels, found) when the labels have an instance
    #: raster; "free" / "shore" -> (detections, correct)
    by_setting: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def precision(self) -> float | None:
        return self.tp / self.detections if self.detections else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.labels if self.labels else None

    @property
    def f1(self) -> float | None:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else None

    @property
    def false_alarms_per_10km2(self) -> float | None:
        return 10.0 * self.fp / self.sea_km2 if self.sea_km2 > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scene": self.scene,
            "labels": self.labels,
            "detections": self.detections,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": rounded(self.precision),
            "recall": rounded(self.recall),
            "f1": rounded(self.f1),
            "sea_km2": round(self.sea_km2, 3),
            "false_alarms_per_10km2": rounded(self.false_alarms_per_10km2),
            "tolerance_m": self.tolerance_m,
            "missed_vessel_ids": list(self.missed),
            "false_alarm_detections": list(self.false_alarms),
            "by_setting": {k: list(v) for k, v in self.by_setting.items()},
            "matches": [
                {
                    "vessel": m.vessel_id,
                    "detection": m.detection,
                    "distance_m": round(m.distance_m, 1),
                }
                for m in self.matches
            ],
        }


# ------------------------------------------------------------------------------ ships


def load_vessel_labels(path: str | Path) -> list[Vessel]:
    """Vessels from a labels JSON: the sen2ships form (``vessels`` with ``centroid_lonlat`` and
    ``bbox_crs_xyxy`` in ``image.crs``) or plain ``{"vessels": [{"lon": .., "lat": ..}]}``."""
    from rasterio.warp import transform as warp_transform

    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: labels file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: unreadable labels ({exc})") from None
    items = doc.get("vessels") if isinstance(doc, Mapping) else None
    if not isinstance(items, list):
        raise InputError(f"{p}: no 'vessels' list in labels")
    crs = (doc.get("image") or {}).get("crs") if isinstance(doc.get("image"), Mapping) else None
    out: list[Vessel] = []
    for i, v in enumerate(items):
        try:
            if "centroid_lonlat" in v:
                lon, lat = (float(a) for a in v["centroid_lonlat"])
            else:
                lon, lat = float(v["lon"]), float(v["lat"])
            box = None
            if crs and "bbox_crs_xyxy" in v:
                x0, y0, x1, y1 = (float(a) for a in v["bbox_crs_xyxy"])
                lons, lats = warp_transform(crs, "EPSG:4326", [x0, x1, x0, x1], [y0, y0, y1, y1])
                box = (min(lons), min(lats), max(lons), max(lats))
            vid = int(v.get("instance_id", v.get("id", i + 1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{p}: vessel {i}: malformed label ({exc!r})") from None
        out.append(Vessel(vid, lon, lat, box))
    return out


def _box_distance_m(lon: float, lat: float, v: Vessel) -> float:
    if v.box is None:
        return distance_m(lon, lat, v.lon, v.lat)
    x0, y0 = metres_east_north(v.box[0], v.box[1], v.lon, v.lat)
    x1, y1 = metres_east_north(v.box[2], v.box[3], v.lon, v.lat)
    x, y = metres_east_north(lon, lat, v.lon, v.lat)
    dx = max(x0 - x, 0.0, x - x1)
    dy = max(y0 - y, 0.0, y - y1)
    return math.hypot(dx, dy)


def match_ships(
    detections: Sequence[Detection],
    vessels: Sequence[Vessel],
    tolerance_m: float = SHIP_TOLERANCE_M,
) -> tuple[list[ShipMatch], list[int], list[int]]:
    """Greedy one-to-one matching; returns (matches, missed vessel ids, false detection idx)."""
    pts = [detection_lonlat(d) for d in detections]
    pairs: list[tuple[float, int, int]] = []
    for j, v in enumerate(vessels):
        for i, (lon, lat) in enumerate(pts):
            if _box_distance_m(lon, lat, v) <= tolerance_m:
                pairs.append((math.hypot(*metres_east_north(lon, lat, v.lon, v.lat)), j, i))
    pairs.sort()
    used_v: set[int] = set()
    used_d: set[int] = set()
    matches: list[ShipMatch] = []
    for dist, j, i in pairs:
        if j in used_v or i in used_d:
            continue
        used_v.add(j)
        used_d.add(i)
        matches.append(ShipMatch(vessels[j].id, i, dist))
    missed = [v.id for j, v in enumerate(vessels) if j not in used_v]
    false = [i for i in range(len(detections)) if i not in used_d]
    return matches, missed, false


def _water_cores(scene: Scene, settings: Settings) -> Iterator[tuple[Tile, np.ndarray]]:
    """The ship detector's NDWI water mask of a scene, tile by tile: (tile, water over the
    tile core)."""
    from ..core.ingest import SceneReader
    from ..core.tiling import iter_tiles
    from ..detectors.ships import ShipDetector, water_mask

    det = ShipDetector(settings)
    ndwi_min = det.thresholds["ndwi_min"]
    names = [scene.band_for_role("green").name, scene.band_for_role("nir").name]
    g = scene.grid
    with SceneReader(scene, settings.robustness) as reader:
        for tile in iter_tiles(g.width, g.height, settings.tile_size, 0):
            data = reader.read(tile, names)
            wm = water_mask(data.bands[names[0]], data.bands[names[1]], data.valid, ndwi_min)
            yield tile, wm[tile.core_in_read]


def sea_area_km2(scene_path: str | Path, settings: Settings | None = None) -> float:
    """Water area of a scene by the ship detector's NDWI water mask, km2 (tile by tile)."""
    from ..core.scene import open_scene

    settings = settings or Settings(detectors=("ships",))
    scene = open_scene(scene_path, sensor=settings.sensor, scaling=settings.scaling)
    n = sum(int(np.count_nonzero(water)) for _, water in _water_cores(scene, settings))
    return n * scene.grid.pixel_area_m2 / 1e6


def vessel_settings(
    scene_path: str | Path, instances: str | Path, settings: Settings | None = None
) -> dict[int, str]:
    """Instance id -> ``"at_sea"`` or ``"moored"`` (see :data:`AT_SEA_RING_WATER`), from an
    instance raster on the scene grid and the ship detector's water mask (the same tiles as
    :func:`sea_area_km2`)."""
    import cv2
    import rasterio

    from ..core.scene import open_scene

    settings = settings or Settings(detectors=("ships",))
    scene = open_scene(scene_path, sensor=settings.sensor, scaling=settings.scaling)
    g = scene.grid
    try:
        with rasterio.open(instances) as f:
            inst = f.read(1)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{instances}: unreadable vessel instance raster ({exc})") from None
    if inst.shape != (g.height, g.width):
        raise InputError(
            f"{instances}: instance raster is {inst.shape[1]} x {inst.shape[0]} px, the scene "
            f"{scene_path} is {g.width} x {g.height}"
        )
    water = np.zeros(inst.shape, bool)
    for tile, core in _water_cores(scene, settings):
        r0, c0 = int(tile.core.row_off), int(tile.core.col_off)
        water[r0 : r0 + core.shape[0], c0 : c0 + core.shape[1]] = core
    kernel = np.ones((7, 7), np.uint8)  # 3-pixel ring
    out: dict[int, str] = {}
    for i in (int(v) for v in np.unique(inst) if v):
        obj = (inst == i).astype(np.uint8)
        ring = (cv2.dilate(obj, kernel) > 0) & (obj == 0) & (inst == 0)
        share = float(water[ring].mean()) if ring.any() else 0.0
        out[i] = "at_sea" if share >= AT_SEA_RING_WATER else "moored"
    return out


def score_ships(
    result: SceneResult,
    vessels: Sequence[Vessel],
    sea_km2: float,
    tolerance_m: float = SHIP_TOLERANCE_M,
    settings_of_vessels: Mapping[int, str] | None = None,
) -> ShipScore:
    """Match ``result``'s ships to ``vessels``; ``settings_of_vessels`` (from
    :func:`vessel_settings`) adds the at-sea / moored split."""
    dets = [d for d in result.detections if d.cls == "ship"]
    matches, missed, false = match_ships(dets, vessels, tolerance_m)
    split: dict[str, tuple[int, int]] = {}
    lost = set(missed)
    for vid, where in (settings_of_vessels or {}).items():
        n, found = split.get(where, (0, 0))
        split[where] = (n + 1, found + (vid not in lost))
    wrong = set(false)
    for j, det in enumerate(dets):
        kind = str(det.measures.get("kind", "free"))
        n, right = split.get(kind, (0, 0))
        split[kind] = (n + 1, right + (j not in wrong))
    return ShipScore(
        scene=result.scene,
        labels=len(vessels),
        detections=len(dets),
        tp=len(matches),
        fp=len(false),
        fn=len(missed),
        sea_km2=sea_km2,
        tolerance_m=tolerance_m,
        matches=tuple(matches),
        missed=tuple(missed),
        false_alarms=tuple(false),
        by_setting=split,
    )


def sum_by_setting(
    splits: Iterable[Mapping[str, Sequence[int]]],
) -> dict[str, list[int]]:
    """Element-wise sum of :attr:`ShipScore.by_setting` mappings (or their JSON form)."""
    tot: dict[str, list[int]] = {}
    for split in splits:
        for k, (n, m) in split.items():
            acc = tot.setdefault(k, [0, 0])
            acc[0] += n
            acc[1] += m
    return tot


def evaluate_ships(
    scene_path: str | Path,
    labels: str | Path | None = None,
    settings: Settings | None = None,
    tolerance_m: float = SHIP_TOLERANCE_M,
) -> tuple[ShipScore, SceneResult]:
    """Run the ship detector on a scene and score it against its labels
    (default ``SCENE/labels.json``)."""
    from ..core.engine import run_scene

    scene_path = Path(scene_path)
    settings = (settings or Settings()).replace(detectors=("ships",))
    vessels = load_vessel_labels(labels or scene_path / "labels.json")
    result = run_scene(scene_path, settings)
    if result.failures or result.problems:
        causes = [f.cause for f in result.failures[:2]] + list(result.problems[:2])
        raise InputError(f"{scene_path}: ship run incomplete: {'; '.join(causes)}")
    sea = sea_area_km2(scene_path, settings)
    instances = Path(labels or scene_path / "labels.json").parent / INSTANCES_FILE
    where = vessel_settings(scene_path, instances, settings) if instances.is_file() else None
    return score_ships(result, vessels, sea, tolerance_m, where), result
