"""Questions from the ground, and their exact evaluation against the store.

A :class:`Question` is free text plus optional structured fields (class, kind of question, area
as bbox or WKT, a point, a time window) and the time it was asked (relative times such as
"yesterday" are read against it).  :mod:`pipeline.ask.parse` turns it into a :class:`Query`
(every slot filled, or "not understood"); :func:`execute` evaluates a query exactly with SQL
(the R-tree), shapely and the scenes' per-class status.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shapely import wkt as shapely_wkt
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from ..errors import QuestionError
from .parse import CLASSES, OPS, Query, distance_m
from .store import DetectionStore, StoredDetection, StoredScene, scene_interval

#: kinds of question the ground may give as a structured field (``--kind``)
KINDS = OPS
EARTH_RADIUS_M = 6_371_008.8
#: detections listed in one answer at most (the count is always complete)
MAX_ITEMS = 10


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z?)?")


@dataclass(frozen=True)
class Question:
    """One question; ``None`` fields are open and filled from the text."""

    text: str
    qid: int = 0
    kind: str | None = None
    cls: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    wkt: str | None = None
    point: tuple[float, float] | None = None
    since: str | None = None
    until: str | None = None
    #: when the question was asked (ISO 8601 UTC); "today", "yesterday"... are read against it
    asked_utc: str | None = None

    def __post_init__(self) -> None:
        if not self.text.strip() and self.kind is None:
            raise QuestionError("empty question without a structured kind")
        if len(self.text) > 500:
            raise QuestionError(f"question of {len(self.text)} characters (at most 500)")
        if self.kind is not None and self.kind not in KINDS:
            raise QuestionError(f"unknown question kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.cls is not None and self.cls not in CLASSES:
            raise QuestionError(f"unknown class {self.cls!r} (known: {', '.join(CLASSES)})")
        if not 0 <= self.qid <= 0xFFFFFFFF:
            raise QuestionError(f"question id {self.qid} out of range (0 .. 2^32 - 1)")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise QuestionError(f"bad bbox {self.bbox} (west, south, east, north in degrees)")
        if self.point is not None:
            lon, lat = self.point
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise QuestionError(f"bad point {self.point} (lon, lat in degrees)")
        if self.wkt is not None:
            try:
                geom = shapely_wkt.loads(self.wkt)
            except Exception as exc:  # shapely raises its own GEOS errors
                raise QuestionError(f"bad WKT area: {exc}") from None
            if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
                raise QuestionError("WKT area must be a non-empty (multi)polygon")
        for t in (self.since, self.until, self.asked_utc):
            if t is not None and not ISO_TIME.fullmatch(t):
                raise QuestionError(f"bad time {t!r} (ISO 8601 UTC, e.g. 2026-11-28T10:00:00Z)")

    def to_value(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_value(cls, value: Any) -> Question:
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            raise QuestionError("question payload is not a mapping with a text")
        allowed = {
            "text", "qid", "kind", "cls", "bbox", "wkt", "point", "since", "until", "asked_utc"
        }  # fmt: skip
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise QuestionError(f"question payload has unknown field(s) {', '.join(unknown)}")
        v = dict(value)
        for key, n in (("bbox", 4), ("point", 2)):
            if v.get(key) is not None:
                try:
                    v[key] = tuple(float(x) for x in v[key])
                except (TypeError, ValueError):
                    raise QuestionError(f"question {key} must be {n} numbers") from None
                if len(v[key]) != n:
                    raise QuestionError(f"question {key} must be {n} numbers")
        try:
            return cls(**v)
        except TypeError as exc:
            raise QuestionError(f"bad question payload: {exc}") from None


def _iso(t: str, end_of_day: bool = False) -> str:
    """``2026-11-28`` -> ``2026-11-28T00:00:00Z`` (``T23:59:59Z`` with ``end_of_day``)."""
    if "T" not in t:
        return t + ("T23:59:59Z" if end_of_day else "T00:00:00Z")
    if t.count(":") == 1:
        t = t.rstrip("Z") + ":00"
    return t if t.endswith("Z") else t + "Z"


def _box_around(pt: tuple[float, float], radius_m: float) -> tuple[float, float, float, float]:
    lon, lat = pt
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(0.01, math.cos(math.radians(min(89.9, abs(lat)))))
    return (max(-180, lon - dlon), max(-90, lat - dlat), min(180, lon + dlon), min(90, lat + dlat))


def measure_of(cls: str) -> str:
    """The measure that says how large a detection of ``cls`` is."""
    return "length_m" if cls == "ship" else "area_m2"


def _measure(d: StoredDetection, measure: str) -> float | None:
    return d.length_m if measure == "length_m" else d.area_m2


@dataclass(frozen=True)
class Result:
    """The exact answer to a query, and the scope it was computed over."""

    query: Query
    #: scenes whose detections were searched (in the place/time scope, class checked)
    searched: tuple[StoredScene, ...]
    #: scenes in the place/time scope where the class was not looked for: name -> why
    not_checked: dict[str, str]
    #: scenes left out by a time window because their acquisition time is unknown
    unknown_time: tuple[str, ...]
    #: every matching detection
    matches: tuple[StoredDetection, ...]
    #: the detections the answer names, in order (best first)
    items: tuple[StoredDetection, ...]
    #: metres from the query point, per item (nearest)
    distances_m: tuple[float, ...]
    #: matches per searched scene
    per_scene: dict[str, int]
    #: scenes with the most / fewest matches
    best_scenes: tuple[str, ...]
    total_area_m2: float | None
    #: matches per class (class "any")
    by_class: dict[str, int]
    #: class "cloud": per searched scene, the shares under cloud and under shadow
    cloud_cover: dict[str, tuple[float, float]] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """JSON-ready facts: everything the answer text states, and what the ground checks."""
        q = self.query
        items = []
        for i, d in enumerate(self.items):
            item: dict[str, Any] = {
                "cls": d.cls,
                "scene": d.scene,
                "acquired_utc": d.acquired_utc,
                "lon": round(d.lon, 5),
                "lat": round(d.lat, 5),
            }
            if d.length_m is not None:
                item["length_m"] = round(d.length_m, 1)
            if d.area_m2 is not None:
                item["area_m2"] = round(d.area_m2, 1)
            if i < len(self.distances_m):
                item["distance_km"] = round(self.distances_m[i] / 1000, 3)
            items.append(item)
        out: dict[str, Any] = {
            "op": q.op,
            "cls": q.cls,
            "query": q.to_dict(),
            "count": len(self.matches),
            "searched": [s.name for s in self.searched],
            "not_checked": dict(self.not_checked),
            "unknown_time": list(self.unknown_time),
            "items": items,
        }
        if q.op in ("most", "least", "per_scene"):
            out["per_scene"] = dict(self.per_scene)
        if q.op in ("most", "least"):
            out["best_scenes"] = list(self.best_scenes)
        if q.op == "total_area":
            out["total_area_m2"] = (
                None if self.total_area_m2 is None else round(self.total_area_m2, 1)
            )
        if q.cls == "any":
            out["by_class"] = dict(self.by_class)
        if q.cls == "cloud":
            out["cloud_cover"] = {
                k: {"cloud_fraction": c, "shadow_fraction": sh}
                for k, (c, sh) in self.cloud_cover.items()
            }
        return out


def scope_scenes(
    scenes: Sequence[StoredScene], q: Query
) -> tuple[list[StoredScene], dict[str, str], list[str]]:
    """(scenes searched, {scene: why not checked}, scenes of unknown time left out)."""
    searched: list[StoredScene] = []
    not_checked: dict[str, str] = {}
    unknown: list[str] = []
    for s in scenes:
        if q.scenes is not None and s.name not in q.scenes:
            continue
        if q.since is not None or q.until is not None:
            span = scene_interval(s.acquired_utc)
            if span is None:
                unknown.append(s.name)
                continue
            if q.since is not None and span[1] < q.since:
                continue
            if q.until is not None and span[0] > q.until:
                continue
        if q.cls != "any" and not s.checked(q.cls):
            not_checked[s.name] = s.classes.get(q.cls, "not checked")
            continue
        if q.cls == "cloud" and s.cloud_fraction is None:
            not_checked[s.name] = "not checked: cloud fraction not recorded"
            continue
        searched.append(s)
    return searched, not_checked, unknown


def execute(store: DetectionStore, q: Query) -> Result:
    """Evaluate a query exactly over the store."""
    scenes = store.scene_records()
    searched, not_checked, unknown = scope_scenes(scenes, q)
    area: BaseGeometry | None = None
    if q.wkt is not None:
        area = shapely_wkt.loads(q.wkt)
    elif q.bbox is not None:
        area = box(*q.bbox)
    bbox = area.bounds if area is not None else None
    if q.point is not None and q.radius_km is not None:
        around = _box_around(q.point, q.radius_km * 1000 * 1.01)
        bbox = around if bbox is None else (
            max(bbox[0], around[0]), max(bbox[1], around[1]),
            min(bbox[2], around[2]), min(bbox[3], around[3]),
        )  # fmt: skip
    matches: list[StoredDetection] = []
    if searched and (bbox is None or (bbox[0] <= bbox[2] and bbox[1] <= bbox[3])):
        for d in store.candidates(
            None if q.cls == "any" else q.cls,
            bbox,
            scene_ids=[s.id for s in searched],
        ):
            if area is not None and not area.intersects(d.geometry):
                continue
            if q.point is not None and q.radius_km is not None:
                if distance_m(q.point, (d.lon, d.lat)) > q.radius_km * 1000:
                    continue
            if not all(b.holds(_measure(d, b.measure)) for b in q.sizes):
                continue
            matches.append(d)
    measure = measure_of(q.cls)
    items: list[StoredDetection] = []
    dists: list[float] = []
    sized = [d for d in matches if _measure(d, measure) is not None]

    def by_size(d: StoredDetection) -> tuple[float, int]:
        return (-(_measure(d, measure) or 0.0), d.id)

    if q.op in ("count", "any") and q.cls != "any":
        items = sorted(sized, key=by_size)[:1]
    elif q.op == "largest":
        items = sorted(sized, key=by_size)[:1]
    elif q.op == "smallest":
        items = sorted(sized, key=lambda d: (_measure(d, measure) or 0.0, d.id))[:1]
    elif q.op == "nearest" or (q.op == "list" and q.order == "nearest"):
        assert q.point is not None
        pt = q.point
        ranked = sorted(matches, key=lambda d: (distance_m(pt, (d.lon, d.lat)), d.id))
        items = ranked[: (q.n or 1) if q.op == "nearest" else (q.n or MAX_ITEMS)]
        dists = [distance_m(pt, (d.lon, d.lat)) for d in items]
    elif q.op == "list":
        if q.cls == "any":
            ranked = sorted(matches, key=lambda d: d.id)
        elif q.order == "smallest":
            ranked = sorted(sized, key=lambda d: (_measure(d, measure) or 0.0, d.id))
        else:
            ranked = sorted(sized, key=by_size)
            ranked += [d for d in matches if _measure(d, measure) is None]
        items = ranked[: min(q.n or MAX_ITEMS, MAX_ITEMS if q.n is None else q.n)]
    per_scene = {s.name: 0 for s in searched}
    for d in matches:
        per_scene[d.scene] = per_scene.get(d.scene, 0) + 1
    best: tuple[str, ...] = ()
    if q.op in ("most", "least") and per_scene:
        target = max(per_scene.values()) if q.op == "most" else min(per_scene.values())
        best = tuple(n for n, c in per_scene.items() if c == target)
    total = None
    if q.op == "total_area":
        total = sum(d.area_m2 or 0.0 for d in matches)
    by_class: dict[str, int] = {}
    for d in matches:
        by_class[d.cls] = by_class.get(d.cls, 0) + 1
    cover: dict[str, tuple[float, float]] = {}
    if q.cls == "cloud":  # cloud is what the screen saw per scene, not a list of detections
        cover = {s.name: (s.cloud_fraction or 0.0, s.shadow_fraction or 0.0) for s in searched}
        if q.op in ("most", "least") and cover:
            pick = max if q.op == "most" else min
            top = pick(c for c, _ in cover.values())
            best = tuple(n for n, (c, _) in cover.items() if c == top)
    return Result(
        q,
        tuple(searched),
        not_checked,
        tuple(unknown),
        tuple(matches),
        tuple(items),
        tuple(dists),
        per_scene,
        best,
        total,
        by_class,
        cover,
    )


__all__ = [
    "KINDS",
    "Point",
    "Question",
    "QuestionError",
    "Result",
    "distance_m",
    "execute",
    "measure_of",
    "scope_scenes",
]
