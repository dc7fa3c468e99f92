"""Generated scene results for testing and benchmarking the report writer.

Seeded and varied: 0..N ships, fire clusters and crop-stress areas, with or without each
measure (moored or at-sea vessels among them), place names and acquisition times, different
sets of detectors that ran or were skipped, and sometimes failed tiles (partial scans).
"""

from __future__ import annotations

import random

from shapely.geometry import Point, box

from ..core.results import Detection, SceneResult, TileFailure

PLACES = (
    "Honolulu",
    "Casablanca",
    "Fort Nelson",
    "Rotterdam",
    "Port Hedland",
    "Valparaiso",
    "Gdansk",
    "Kherson",
    "Santa Rosa",
    "Darwin",
)
SEVERITIES = ("low", "moderate", "high")


def _box(lon: float, lat: float, half_deg: float) -> object:
    return box(lon - half_deg, lat - half_deg, lon + half_deg, lat + half_deg)


def random_result(seed: int, max_per_class: int = 14) -> SceneResult:
    """A hand-made :class:`SceneResult` with seeded, varied detections and measures."""
    rng = random.Random(seed)
    lon0 = rng.uniform(-170.0, 170.0)
    lat0 = rng.uniform(-60.0, 70.0)
    detectors = rng.choice(
        [("fire",), ("ships",), ("fire", "ships"), ("fire", "ships", "crop"), ("crop",)]
    )
    dets: list[Detection] = []

    def where() -> tuple[float, float]:
        return lon0 + rng.uniform(-0.2, 0.2), lat0 + rng.uniform(-0.2, 0.2)

    if "fire" in detectors:
        for _ in range(rng.choice([0, 0, 1, 2, rng.randint(1, max_per_class)])):
            lon, lat = where()
            px = rng.randint(1, 400)
            pix_area = rng.choice([100.0, 400.0])
            m: dict[str, float | int | str] = {
                "pixel_count": px,
                "area_m2": round(px * pix_area, 1),
                "max_swir22_reflectance": round(rng.uniform(0.3, 1.2), 4),
                "centroid_lon": round(lon, 6),
                "centroid_lat": round(lat, 6),
                "tiles": f"r{rng.randint(0, 9):03d}c{rng.randint(0, 9):03d}",
            }
            dets.append(Detection("fire", round(rng.uniform(0.3, 1.0), 4), _box(lon, lat, 1e-3), m))
    if "ships" in detectors:
        for _ in range(rng.choice([0, 1, 3, rng.randint(0, max_per_class)])):
            lon, lat = where()
            m = {"centroid_lon": round(lon, 6), "centroid_lat": round(lat, 6)}
            if rng.random() < 0.85:
                m["length_m"] = round(rng.uniform(8.0, 380.0), 1)
            if rng.random() < 0.7:
                m["heading_deg"] = round(rng.uniform(0.0, 359.9), 1)
            if rng.random() < 0.5:
                m["setting"] = rng.choice(("at_sea", "moored"))
            if rng.random() < 0.5:
                m["pixel_count"] = rng.randint(2, 60)
            dets.append(Detection("ship", round(rng.uniform(0.3, 1.0), 4), Point(lon, lat), m))
    if "crop" in detectors:
        for _ in range(rng.choice([0, 1, rng.randint(1, max_per_class // 2 or 1)])):
            lon, lat = where()
            m = {
                "area_km2": round(rng.uniform(0.01, 12.0), 3),
                "centroid_lon": round(lon, 6),
                "centroid_lat": round(lat, 6),
            }
            if rng.random() < 0.5:
                m["severity"] = rng.choice(SEVERITIES)
            elif rng.random() < 0.5:
                m["severity"] = round(rng.random(), 2)
            dets.append(
                Detection("crop_stress", round(rng.uniform(0.3, 1.0), 4), _box(lon, lat, 5e-3), m)
            )
    dets.sort(key=lambda d: -d.score)
    info: dict[str, object] = {}
    if rng.random() < 0.6:
        info["place"] = rng.choice(PLACES)
    if rng.random() < 0.6:
        info["datetime"] = (
            f"20{rng.randint(17, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
        )
    # what the run looked at: detectors that ran, and (sometimes) ones skipped for want of
    # bands, or tiles that failed; skipped detectors emit nothing
    status = dict.fromkeys(detectors, "ran")
    for name, why in (
        ("fire", "needs band(s) B12"),
        ("ships", "needs band(s) B02, B03, B04, B08"),
        ("crop", "needs band(s) B04, B08"),
    ):
        if name not in status and rng.random() < 0.3:
            status[name] = f"skipped: {why}"
    tiles = 1
    failures: tuple[TileFailure, ...] = ()
    if rng.random() < 0.2:
        tiles = rng.randint(2, 16)
        failures = tuple(
            TileFailure(f"r000c{i:03d}", (0, 0, 1, 1), "cannot read window")
            for i in range(rng.randint(1, tiles - 1))
        )
    return SceneResult(
        scene=f"gen_{seed:04d}",
        detections=tuple(dets),
        failures=failures,
        problems=(),
        tiles_total=tiles,
        timings_s={},
        models={},
        detectors=status,
        info=info,
    )
