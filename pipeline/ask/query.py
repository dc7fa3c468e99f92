"""Questions from the ground, as structured filters, answered exactly from the store.

A question is free text plus optional structured filters (area as bbox or WKT, time window,
class, kind of question, a point for "nearest").  Whatever the filters leave open is filled
from the text: numbers (coordinates, times, boxes) only by deterministic parsing, never by a
model; the kind of question and the class by the onboard LLM when one is given
(:mod:`pipeline.ask.intent`) or by keywords.  The answer is then computed exactly with SQL (the
R-tree) and shapely.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from shapely import wkt as shapely_wkt
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from ..errors import QuestionError
from .store import SIZE_MEASURE, DetectionStore, StoredDetection

KINDS = ("count", "nearest", "largest")
CLASSES = ("ship", "fire", "crop_stress")
EARTH_RADIUS_M = 6_371_008.8


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

    def __post_init__(self) -> None:
        if not self.text.strip() and self.kind is None:
            raise QuestionError("empty question without a structured kind")
        if len(self.text) > 500:
            raise QuestionError(f"question of {len(self.text)} characters (at most 500)")
        if self.kind is not None and self.kind not in KINDS:
            raise QuestionError(f"unknown question kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.cls is not None and self.cls not in CLASSES:
            raise QuestionError(f"unknown class {self.cls!r} (known: {', '.join(CLASSES)})")
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
        for t in (self.since, self.until):
            if t is not None and not ISO_TIME.fullmatch(t):
                raise QuestionError(f"bad time {t!r} (ISO 8601 UTC, e.g. 2026-11-28T10:00:00Z)")

    def to_value(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_value(cls, value: Any) -> Question:
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            raise QuestionError("question payload is not a mapping with a text")
        allowed = {"text", "qid", "kind", "cls", "bbox", "wkt", "point", "since", "until"}
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

    def area(self) -> BaseGeometry | None:
        if self.wkt is not None:
            return shapely_wkt.loads(self.wkt)
        if self.bbox is not None:
            return box(*self.bbox)
        return None


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z?)?")
_COORD = re.compile(
    r"(?P<lat>\d{1,2}(?:\.\d+)?)\s*°?\s*(?P<ns>[NS])[\s,]+(?P<lon>\d{1,3}(?:\.\d+)?)\s*°?\s*(?P<ew>[EW])",
    re.I,
)
_BBOX = re.compile(
    r"bbox\s*\(?\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,"
    r"\s*(-?\d+(?:\.\d+)?)\s*\)?",
    re.I,
)
_SINCE = re.compile(r"since\s+(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?Z?)?)", re.I)
_UNTIL = re.compile(r"(?:until|before)\s+(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?Z?)?)", re.I)
_WITHIN_KM = re.compile(r"within\s+(\d+(?:\.\d+)?)\s*km", re.I)

KIND_WORDS = {
    "nearest": ("nearest", "closest", "near ", "next to"),
    "largest": ("largest", "biggest", "how large", "how big", "greatest", "longest"),
    "count": ("how many", "count", "number of", "any "),
}
CLASS_WORDS = {
    "ship": ("ship", "vessel", "boat", "tanker", "cargo"),
    "fire": ("fire", "burn", "blaze", "hot spot", "hotspot", "wildfire"),
    "crop_stress": ("crop", "field", "stress", "drought", "farm"),
}


def parse_numbers(q: Question) -> Question:
    """Fill bbox, point, since and until from the text where the question leaves them open."""
    text = q.text
    changes: dict[str, Any] = {}
    if q.point is None:
        m = _COORD.search(text)
        if m:
            lat = float(m["lat"]) * (-1 if m["ns"].upper() == "S" else 1)
            lon = float(m["lon"]) * (-1 if m["ew"].upper() == "W" else 1)
            changes["point"] = (lon, lat)
    if q.bbox is None and q.wkt is None:
        m = _BBOX.search(text)
        if m:
            changes["bbox"] = tuple(float(m.group(i)) for i in range(1, 5))
        else:
            km = _WITHIN_KM.search(text)
            pt = changes.get("point", q.point)
            if km and pt is not None:
                changes["bbox"] = _box_around(pt, float(km.group(1)) * 1000)
    if q.since is None and (m := _SINCE.search(text)):
        changes["since"] = _iso(m.group(1))
    if q.until is None and (m := _UNTIL.search(text)):
        changes["until"] = _iso(m.group(1))
    return replace(q, **changes) if changes else q


def keyword_intent(text: str) -> tuple[str | None, str | None]:
    """(kind, class) from keywords, None where no keyword matches."""
    low = f" {text.lower()} "
    kind = next((k for k, words in KIND_WORDS.items() if any(w in low for w in words)), None)
    cls = next((c for c, words in CLASS_WORDS.items() if any(w in low for w in words)), None)
    return kind, cls


def _iso(t: str) -> str:
    if "T" not in t:
        return t + "T00:00:00Z"
    if t.count(":") == 1:
        t = t.rstrip("Z") + ":00"
    return t if t.endswith("Z") else t + "Z"


def _box_around(pt: tuple[float, float], radius_m: float) -> tuple[float, float, float, float]:
    lon, lat = pt
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(0.01, math.cos(math.radians(lat)))
    return (max(-180, lon - dlon), max(-90, lat - dlat), min(180, lon + dlon), min(90, lat + dlat))


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class QueryResult:
    """The exact answer to a resolved question."""

    question: Question
    #: detections matching the filters (all of them for "count")
    matches: int
    #: the detection that answers "nearest" / "largest" (None when nothing matches)
    best: StoredDetection | None
    #: metres from the question's point to ``best`` ("nearest" only)
    distance_m: float | None

    def facts(self) -> dict[str, Any]:
        """JSON-ready facts: everything the answer text may state."""
        q = self.question
        out: dict[str, Any] = {"kind": q.kind, "cls": q.cls, "matches": self.matches}
        if q.bbox is not None:
            out["bbox"] = list(q.bbox)
        if q.since is not None:
            out["since"] = q.since
        if q.until is not None:
            out["until"] = q.until
        if self.best is not None:
            b = self.best
            out["best"] = {
                "cls": b.cls,
                "lon": round(b.lon, 4),
                "lat": round(b.lat, 4),
                "size": b.size,
                "size_unit": SIZE_MEASURE.get(b.cls, ("", ""))[1],
                "scene": b.scene,
                "acquired_utc": b.acquired_utc,
                "score": round(b.score, 2),
            }
        if self.distance_m is not None:
            out["distance_km"] = round(self.distance_m / 1000, 1)
        return out


def run_query(store: DetectionStore, q: Question) -> QueryResult:
    """Answer a fully resolved question (kind set) exactly."""
    if q.kind is None:
        raise QuestionError(f"question {q.qid}: kind of question unknown")
    if q.kind == "nearest" and q.point is None:
        raise QuestionError(
            f"question {q.qid}: 'nearest' needs a point (e.g. '44.2N 121.3W' or point=lon,lat)"
        )
    area = q.area()
    bbox = area.bounds if area is not None else None
    found = []
    for d in store.candidates(q.cls, bbox, q.since, q.until):
        if area is not None and not area.intersects(d.geometry):
            continue
        found.append(d)
    best: StoredDetection | None = None
    dist: float | None = None
    if q.kind == "nearest" and found:
        assert q.point is not None
        pt = q.point
        best = min(found, key=lambda d: (distance_m(pt, (d.lon, d.lat)), d.id))
        dist = distance_m(pt, (best.lon, best.lat))
    elif q.kind == "largest":
        sized = [d for d in found if d.size is not None]
        if sized:
            best = max(sized, key=lambda d: (d.size or 0.0, -d.id))
    return QueryResult(q, len(found), best, dist)


__all__ = [
    "CLASSES",
    "KINDS",
    "Point",
    "Question",
    "QuestionError",
    "QueryResult",
    "keyword_intent",
    "parse_numbers",
    "run_query",
]
