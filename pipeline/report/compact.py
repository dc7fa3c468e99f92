"""Compact GeoJSON for the downlink: ~1 m coordinates, operator properties, a feature budget,
and what the scan looked at: the scene outcome and, per class, found N / none found / not checked.

Only the properties an operator reads go down (``CLASS_PROPERTIES``; the table is in
docs/outputs.md); measures kept for debugging (pixel rows and columns, tile ids, intermediate
test values) stay in detections.geojson.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from shapely.geometry import mapping

from ..core.results import DETECTION_CLASSES, NOT_CHECKED, Detection, SceneResult

#: 5 decimals of a degree: ~1.1 m at the equator
COMPACT_DECIMALS = 5
#: per class, the measures an operator needs (beside class and score), and their decimals
CLASS_PROPERTIES: dict[str, tuple[tuple[str, int], ...]] = {
    "fire": (("area_m2", 0), ("pixel_count", 0), ("max_swir22_reflectance", 3)),
    "ship": (("length_m", 0), ("width_m", 0), ("heading_deg", 0), ("setting", 0)),
    "crop_stress": (("area_km2", 3), ("severity", 2)),
}
#: properties of every class, where the cloud screen looked: the share of the footprint under
#: cloud or shadow, and the flag of a detection kept under cloud (a fire)
SKY_PROPERTIES: tuple[tuple[str, int], ...] = (("cloud_fraction", 2), ("under_cloud", 0))
#: vessel settings under which a heading means nothing (a moored hull's axis is the quay's)
NO_HEADING_SETTINGS = frozenset({"moored"})


def _q(v: float) -> float:
    r = round(float(v), COMPACT_DECIMALS)
    return 0.0 if r == 0 else r  # no "-0.0"


def _ring(coords: Any) -> list[list[float]]:
    out: list[list[float]] = []
    for x, y, *_ in coords:
        pt = [_q(x), _q(y)]
        if not out or out[-1] != pt:
            out.append(pt)
    return out


def _geometry(d: Detection) -> dict[str, Any]:
    """WGS84 geometry with quantised coordinates; a polygon that collapses at 1 m becomes its
    centroid point."""
    g = d.geometry
    if g.is_empty:
        lon = d.measures.get("centroid_lon", 0.0)
        lat = d.measures.get("centroid_lat", 0.0)
        return {"type": "Point", "coordinates": [_q(float(lon)), _q(float(lat))]}
    if g.geom_type == "Point":
        return {"type": "Point", "coordinates": [_q(g.x), _q(g.y)]}
    polys = (
        list(g.geoms) if g.geom_type == "MultiPolygon" else [g] if g.geom_type == "Polygon" else []
    )
    if not polys:
        geo = mapping(g)
        return _round_any(geo)
    out_polys: list[list[list[list[float]]]] = []
    for p in polys:
        rings = [_ring(p.exterior.coords)] + [_ring(r.coords) for r in p.interiors]
        if len(rings[0]) < 4:
            continue
        out_polys.append([r for r in rings if len(r) >= 4])
    if not out_polys:
        c = g.centroid
        return {"type": "Point", "coordinates": [_q(c.x), _q(c.y)]}
    if len(out_polys) == 1:
        return {"type": "Polygon", "coordinates": out_polys[0]}
    return {"type": "MultiPolygon", "coordinates": out_polys}


def _round_any(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _round_any(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round_any(v) for v in obj]
    if isinstance(obj, float):
        return _q(obj)
    return obj


def _properties(d: Detection) -> dict[str, Any]:
    props: dict[str, Any] = {"class": d.cls, "score": round(float(d.score), 2)}
    for key, nd in (*CLASS_PROPERTIES.get(d.cls, ()), *SKY_PROPERTIES):
        v = d.measures.get(key)
        if isinstance(v, bool):
            if v:
                props[key] = True
            continue
        if v is None:
            continue
        if isinstance(v, int | float):
            f = float(v)
            if not math.isfinite(f):
                continue
            props[key] = int(round(f)) if nd == 0 else round(f, nd)
        elif isinstance(v, str):
            props[key] = v
    if props.get("setting") in NO_HEADING_SETTINGS:
        props.pop("heading_deg", None)
    return props


def compact_geojson(result: SceneResult, max_features: int = 50) -> dict[str, Any]:
    """FeatureCollection of at most ``max_features`` of the scene's detections, highest score
    first, with the scene outcome and per-class status (see :func:`compact_collection`)."""
    return compact_collection(
        result.scene, result.detections, max_features, status=result.status_dict()
    )


def compact_collection(
    scene: str,
    detections: Sequence[Detection],
    max_features: int = 50,
    status: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """FeatureCollection of at most ``max_features`` detections, highest score first.

    The member ``"eotriage"`` holds the scene name, the counts of all detections per class and
    how many per class the budget left out.  With ``status`` (``SceneResult.status_dict()``) it
    also holds ``outcome``, ``outcome_reasons`` and ``classes``, and a class that was not
    checked has the count ``null``, never 0.  Deterministic and JSON-serialisable.
    """
    if max_features < 0:
        raise ValueError(f"max_features must be >= 0, got {max_features}")
    order = sorted(range(len(detections)), key=lambda i: (-detections[i].score, i))
    kept = order[:max_features]
    counts = {c: 0 for c in DETECTION_CLASSES}
    omitted = {c: 0 for c in DETECTION_CLASSES}
    for d in detections:
        counts[d.cls] += 1
    for i in order[max_features:]:
        omitted[detections[i].cls] += 1
    features = [
        {
            "type": "Feature",
            "geometry": _geometry(detections[i]),
            "properties": _properties(detections[i]),
        }
        for i in kept
    ]
    member: dict[str, Any] = {"scene": scene, "counts": dict(counts), "omitted": omitted}
    if status is not None:
        classes = {str(k): dict(v) for k, v in status.get("classes", {}).items()}
        for cls, entry in classes.items():
            if entry.get("status") == NOT_CHECKED and not counts.get(cls):
                member["counts"][cls] = None
        member["outcome"] = status.get("outcome")
        member["outcome_reasons"] = list(status.get("outcome_reasons", []))
        if status.get("clouds") is not None:
            member["clouds"] = dict(status["clouds"])
        member["classes"] = classes
    return {"type": "FeatureCollection", "features": features, "eotriage": member}
