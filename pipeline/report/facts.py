"""The structured facts of a scene that a report may state: SceneResult -> frozen :class:`Facts`.

Everything a report says must be derivable from these facts.  Measures a detector does not
provide are simply absent (``None``): the writers then leave that detail out.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ..core.results import (
    CLASS_OF_DETECTOR,
    FOUND,
    NONE_FOUND,
    NOT_CHECKED,
    Detection,
    SceneResult,
)

#: report order of the classes: alerts first
CLASS_ORDER = ("fire", "ship", "crop_stress")
__all__ = ["CLASS_OF_DETECTOR", "CLASS_ORDER", "ClassFacts", "Facts", "Spot", "facts_from_result"]
#: ``SceneResult.info`` keys that may hold the acquisition time / a place name
TIME_KEYS = ("datetime", "acquired_utc", "sensing_time", "time_utc", "acquisition_time")
PLACE_KEYS = ("place", "place_name", "location")

_PLACE_RE = re.compile(r"^[A-Z][A-Za-z'\-]*(?: [A-Z][A-Za-z'\-]*){0,3}$")


@dataclass(frozen=True)
class Spot:
    """The most notable detection of a class: where it is and how big."""

    score: float
    lon: float
    lat: float
    #: fire: area in m²; crop stress: area in m²; ship: None
    area_m2: float | None = None
    pixels: int | None = None
    length_m: float | None = None
    heading_deg: float | None = None
    severity: str | None = None
    #: ships: ``at_sea`` or ``moored`` when the detector says (a moored vessel has no heading)
    setting: str | None = None


@dataclass(frozen=True)
class ClassFacts:
    """Counts and aggregates of one detection class."""

    cls: str
    count: int
    #: the detector of this class looked (``False``: the report must not claim "no ships")
    checked: bool
    total_area_m2: float | None = None
    total_pixels: int | None = None
    longest_m: float | None = None
    worst_severity: str | None = None
    top: Spot | None = None
    #: ``found`` / ``none found`` / ``not checked`` (see pipeline.core.results.ClassStatus)
    status: str = ""
    #: why the class was not checked
    reason: str | None = None
    #: fraction of the scene its detector looked at
    coverage: float = 1.0

    def __post_init__(self) -> None:
        if not self.status:  # derived when not given (hand-made facts)
            state = FOUND if self.count else NONE_FOUND if self.checked else NOT_CHECKED
            object.__setattr__(self, "status", state)
        if self.status == NOT_CHECKED:
            object.__setattr__(self, "coverage", 0.0)


@dataclass(frozen=True)
class Facts:
    """All a report may state about one scene."""

    scene: str
    classes: tuple[ClassFacts, ...]
    time_utc: str | None = None
    place: str | None = None
    #: ``complete``, ``partial`` or ``failed`` (see SceneResult.outcome)
    outcome: str = "complete"
    outcome_reasons: tuple[str, ...] = ()
    #: what the cloud screen saw (fractions of the pixels it could classify); ``None`` when it
    #: did not look (then ``clouds_reason`` says why, or the screen was not enabled)
    cloud_fraction: float | None = None
    shadow_fraction: float | None = None
    clouds_reason: str | None = None

    @property
    def obscured(self) -> float | None:
        """Share of the scene under cloud or cloud shadow (None: not screened)."""
        if self.cloud_fraction is None or self.shadow_fraction is None:
            return None
        return self.cloud_fraction + self.shadow_fraction

    def of(self, cls: str) -> ClassFacts:
        for c in self.classes:
            if c.cls == cls:
                return c
        raise KeyError(cls)

    def counts(self) -> dict[str, int]:
        return {c.cls: c.count for c in self.classes}

    @property
    def total(self) -> int:
        return sum(c.count for c in self.classes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def facts_from_result(result: SceneResult) -> Facts:
    """Extract the report facts of ``result`` (tolerant of missing measures): per class what
    was found, or that its detector looked and found none, or that it did not look, and why."""
    status = result.class_status()
    by_cls: dict[str, list[Detection]] = {c: [] for c in CLASS_ORDER}
    for d in result.detections:
        by_cls.setdefault(d.cls, []).append(d)
    classes = []
    for cls in CLASS_ORDER:
        st = status[cls]
        base = _class_facts(cls, by_cls[cls], st.checked)
        classes.append(
            dataclasses.replace(base, status=st.status, reason=st.reason, coverage=st.coverage)
        )
    outcome, reasons = result.outcome, result.outcome_reasons
    clouds = result.clouds() or {}
    return Facts(
        scene=result.scene,
        classes=tuple(classes),
        time_utc=_time_of(result.info),
        place=_place_of(result.info),
        outcome=outcome,
        outcome_reasons=reasons,
        cloud_fraction=clouds.get("cloud_fraction"),
        shadow_fraction=clouds.get("shadow_fraction"),
        clouds_reason=clouds.get("reason"),
    )


def _num(m: Mapping[str, Any], key: str) -> float | None:
    v = m.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _severity(m: Mapping[str, Any]) -> str | None:
    v = m.get("severity")
    if isinstance(v, str) and re.fullmatch(r"[a-z]{2,12}", v.strip().lower()):
        return v.strip().lower()
    num = _num(m, "severity")
    if num is None:
        return None
    return "high" if num >= 0.66 else "moderate" if num >= 0.33 else "low"


_SEVERITY_RANK = {"low": 0, "mild": 0, "moderate": 1, "medium": 1, "high": 2, "severe": 3}


def _lonlat(d: Detection) -> tuple[float, float]:
    lon, lat = _num(d.measures, "centroid_lon"), _num(d.measures, "centroid_lat")
    if lon is None or lat is None:
        p = d.geometry.representative_point() if not d.geometry.is_empty else None
        if p is None:
            return 0.0, 0.0
        lon, lat = float(p.x), float(p.y)
    return lon, lat


def _area_m2(d: Detection) -> float | None:
    a = _num(d.measures, "area_m2")
    if a is None:
        km2 = _num(d.measures, "area_km2")
        a = km2 * 1e6 if km2 is not None else None
    return a


def _spot(d: Detection) -> Spot:
    lon, lat = _lonlat(d)
    px = _num(d.measures, "pixel_count")
    return Spot(
        score=round(float(d.score), 4),
        lon=lon,
        lat=lat,
        area_m2=_area_m2(d),
        pixels=int(px) if px is not None else None,
        length_m=_num(d.measures, "length_m"),
        heading_deg=_num(d.measures, "heading_deg"),
        severity=_severity(d.measures),
        setting=_setting(d.measures),
    )


def _setting(m: Mapping[str, Any]) -> str | None:
    v = m.get("setting")
    return v if isinstance(v, str) and v in ("at_sea", "moored") else None


def _class_facts(cls: str, dets: list[Detection], checked: bool) -> ClassFacts:
    if not dets:
        return ClassFacts(cls, 0, checked)
    areas = [_area_m2(d) for d in dets]
    total_area = (
        sum(a for a in areas if a is not None) if any(a is not None for a in areas) else None
    )
    pix = [_num(d.measures, "pixel_count") for d in dets]
    total_px = (
        int(sum(p for p in pix if p is not None)) if all(p is not None for p in pix) else None
    )
    lengths = [x for x in (_num(d.measures, "length_m") for d in dets) if x is not None]
    sevs = [s for s in (_severity(d.measures) for d in dets) if s is not None]
    worst = max(sevs, key=lambda s: _SEVERITY_RANK.get(s, 1)) if sevs else None

    def key(d: Detection) -> tuple[float, float]:
        if cls == "ship":
            size = _num(d.measures, "length_m")
        else:
            size = _area_m2(d)
        return (size if size is not None else -1.0, d.score)

    top = max(dets, key=key)  # first of equals: dets keep the engine's score order
    return ClassFacts(
        cls,
        len(dets),
        True,
        total_area_m2=total_area if cls != "ship" else None,
        total_pixels=total_px if cls == "fire" else None,
        longest_m=max(lengths) if lengths and cls == "ship" else None,
        worst_severity=worst if cls == "crop_stress" else None,
        top=_spot(top),
    )


def _time_of(info: Mapping[str, Any]) -> str | None:
    for k in TIME_KEYS:
        v = info.get(k)
        if isinstance(v, datetime):
            dt = v
        elif isinstance(v, str) and v.strip():
            try:
                dt = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            except ValueError:
                continue
        else:
            continue
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC)
        return dt.strftime("%Y-%m-%d %H:%M UTC")
    return None


def _place_of(info: Mapping[str, Any]) -> str | None:
    for k in PLACE_KEYS:
        v = info.get(k)
        if isinstance(v, str) and _PLACE_RE.fullmatch(v.strip()):
            return v.strip()
    return None
