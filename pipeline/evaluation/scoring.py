"""Matching helpers shared by the evaluations: ground distances, detection positions, and the
greedy one-to-one matching of detections to truth points."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core.results import Detection

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0


def rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def metres_east_north(lon: float, lat: float, lon0: float, lat0: float) -> tuple[float, float]:
    return (
        (lon - lon0) * _M_PER_DEG_LON_EQ * math.cos(math.radians(lat0)),
        (lat - lat0) * _M_PER_DEG_LAT,
    )


def distance_m(lon: float, lat: float, lon0: float, lat0: float) -> float:
    """Ground distance in metres between two nearby lon/lat points (local flat-earth)."""
    return math.hypot(*metres_east_north(lon, lat, lon0, lat0))


def detection_lonlat(d: Detection) -> tuple[float, float]:
    m = d.measures
    if "centroid_lon" in m and "centroid_lat" in m:
        return float(m["centroid_lon"]), float(m["centroid_lat"])
    c = d.geometry.centroid
    return float(c.x), float(c.y)


def match_points(
    truth: Sequence[tuple[float, float]],
    found: Sequence[tuple[float, float]],
    tolerance_m: float,
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of lon/lat points, closest pairs first, within
    ``tolerance_m``: ``(truth index, found index, distance in m)`` per match."""
    pairs = sorted(
        (distance_m(flon, flat, tlon, tlat), i, j)
        for i, (tlon, tlat) in enumerate(truth)
        for j, (flon, flat) in enumerate(found)
    )
    used_t: set[int] = set()
    used_f: set[int] = set()
    out = []
    for d, i, j in pairs:
        if d > tolerance_m:
            break
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
        out.append((i, j, d))
    return out
