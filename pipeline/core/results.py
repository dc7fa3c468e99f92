"""Frozen result types and their GeoJSON form."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

DETECTION_CLASSES = ("ship", "fire", "crop_stress")
#: the order in which products list the classes: alerts first
REPORT_ORDER = ("fire", "ship", "crop_stress")
#: detector name (``Settings.detectors``, ``SceneResult.detectors``) -> the class it emits
CLASS_OF_DETECTOR = {"fire": "fire", "ships": "ship", "crop": "crop_stress"}
DETECTOR_OF_CLASS = {c: d for d, c in CLASS_OF_DETECTOR.items()}

#: scene outcomes, best first: every enabled detector looked at every pixel / something was not
#: looked at (a tile or detector failed or was skipped, samples were unusable) / nothing was
OUTCOMES = ("complete", "partial", "failed")
#: per-class states: the three things a product may say about a class
FOUND = "found"
NONE_FOUND = "none found"
NOT_CHECKED = "not checked"
CLASS_STATES = (FOUND, NONE_FOUND, NOT_CHECKED)
#: the reason of "not checked" when cloud hid the whole scene; from this share of cloud and
#: shadow on, "none found" would claim a look nobody had
UNDER_CLOUD = "under cloud"
ALL_UNDER_CLOUD = 0.99
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
class ClassStatus:
    """What a run can truthfully say about one detection class.

    ``status`` is one of :data:`CLASS_STATES`: ``"found"`` (``count`` > 0), ``"none found"``
    (its detector looked and found nothing) or ``"not checked"`` (``reason`` says why; ``count``
    is ``None``, never 0).  ``coverage`` is the fraction of the scene's pixels the detector
    actually looked at (usable samples of its bands in tiles that finished): below 1 the class
    was only partly checked; 0 when not checked.  Cloud screening will lower it (and say
    "under cloud" in ``reason``) without changing the format.
    """

    cls: str
    status: str
    count: int | None
    coverage: float
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in CLASS_STATES:
            raise ValueError(f"unknown class status {self.status!r}")

    @property
    def checked(self) -> bool:
        return self.status != NOT_CHECKED

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in run.json, report.json and compact.geojson."""
        out: dict[str, Any] = {
            "status": self.status,
            "count": self.count,
            "coverage": round(self.coverage, 4),
        }
        if self.reason:
            out["reason"] = self.reason
        return out

    def text(self) -> str:
        """``found 12`` / ``looked and found none`` / ``not checked (reason)``."""
        if self.status == FOUND:
            return f"found {self.count}"
        if self.status == NONE_FOUND:
            return "looked and found none"
        return "not checked" + (f" ({self.reason})" if self.reason else "")


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
    #: detector name -> working-grid pixels it looked at (usable samples of its bands in tiles
    #: that finished); empty when not measured (then tile failures give the coverage)
    looked_px: Mapping[str, int] = field(default_factory=dict)
    #: pixels of the scene's working grid (0: unknown)
    scene_px: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.problems

    def coverage(self, detector: str) -> float:
        """Fraction of the scene the detector looked at (0 when it did not run)."""
        status = self.detectors.get(detector)
        if status is None or status.startswith("skipped"):
            return 0.0
        if detector in self.looked_px and self.scene_px > 0:
            return min(1.0, max(0.0, self.looked_px[detector] / self.scene_px))
        if self.tiles_total > 0:
            return max(0.0, 1.0 - len(self.failures) / self.tiles_total)
        return 1.0

    def class_status(self) -> dict[str, ClassStatus]:
        """Per class (in :data:`REPORT_ORDER`): found N, none found or not checked."""
        counts = self.counts()
        out: dict[str, ClassStatus] = {}
        for cls in REPORT_ORDER:
            det = DETECTOR_OF_CLASS[cls]
            status = self.detectors.get(det)
            n = counts[cls]
            if status is None:
                if n:  # detections of a class whose detector is not named (hand-made results)
                    out[cls] = ClassStatus(cls, FOUND, n, 1.0)
                else:
                    out[cls] = ClassStatus(cls, NOT_CHECKED, None, 0.0, "detector not enabled")
                continue
            if status.startswith("skipped"):
                why = status.partition(":")[2].strip() or "skipped"
                out[cls] = ClassStatus(cls, NOT_CHECKED, None, 0.0, why)
                continue
            cov = self.coverage(det)
            if not n and self._all_under_cloud():
                out[cls] = ClassStatus(cls, NOT_CHECKED, None, 0.0, UNDER_CLOUD)
                continue
            if n:
                out[cls] = ClassStatus(cls, FOUND, n, cov)
            elif cov <= 0.0:
                out[cls] = ClassStatus(cls, NOT_CHECKED, None, 0.0, self._unlooked_reason(det))
            else:
                out[cls] = ClassStatus(cls, NONE_FOUND, 0, cov)
        return out

    def _all_under_cloud(self) -> bool:
        """The cloud screen saw (nearly) the whole scene under cloud or shadow: nothing could be
        seen, so "none found" would be untrue."""
        sky = self._sky_fractions()
        return sky is not None and sky[0] + sky[1] >= ALL_UNDER_CLOUD

    def _sky_fractions(self) -> tuple[float, float] | None:
        """(cloud, shadow) fractions the cloud screen measured, None when it measured none."""
        c = self.info.get("clouds") or {}
        cf, sf = c.get("cloud_fraction"), c.get("shadow_fraction")
        return None if cf is None or sf is None else (float(cf), float(sf))

    def _unlooked_reason(self, detector: str) -> str:
        if self.tiles_total and len(self.failures) >= self.tiles_total:
            return f"all {self.tiles_total} tiles failed"
        bands = self.info.get("bands_used", {}).get(detector, ())
        read = int(self.info.get("pixels_processed", 0) or 0)
        invalid = self.info.get("invalid_samples", {})
        empty = [b for b in bands if read > 0 and invalid.get(b, -1) >= read]
        if empty:
            return f"no usable samples in band(s) {', '.join(empty)}"
        return "no usable samples in its bands"

    @property
    def outcome(self) -> str:
        """``complete``, ``partial`` or ``failed`` (see :attr:`outcome_reasons`)."""
        return self._outcome()[0]

    @property
    def outcome_reasons(self) -> tuple[str, ...]:
        """Why the outcome is not ``complete`` (empty when it is), one short line each."""
        return self._outcome()[1]

    def _outcome(self) -> tuple[str, tuple[str, ...]]:
        statuses = self.class_status()
        # a detector that does not apply to the scene by design (crop stress with no cropland
        # layer over it) is "not checked" for its class but leaves the scan complete
        skip = set(self.info.get("not_applicable", ()))
        enabled = [
            c
            for c, s in statuses.items()
            if DETECTOR_OF_CLASS[c] in self.detectors and DETECTOR_OF_CLASS[c] not in skip
        ]
        reasons: list[str] = []
        if self.tiles_total and len(self.failures) >= self.tiles_total:
            first = self.failures[0].cause if self.failures else ""
            reasons.append(f"all {self.tiles_total} tiles failed: {first}".rstrip(": "))
        elif self.failures:
            reasons.append(f"{len(self.failures)} of {self.tiles_total} tiles failed")
        for p in self.problems:
            if not p.startswith("all ") or "tiles failed" not in p:
                reasons.append(p)
        # cloud is what the scene looked like, not a failure of the scan (the products give
        # the cloud fraction beside the outcome)
        enabled = [c for c in enabled if statuses[c].reason != UNDER_CLOUD]
        for c in enabled:
            s = statuses[c]
            if s.status == NOT_CHECKED:
                reasons.append(f"{c} not checked: {s.reason}")
            elif s.coverage < 1.0 and not self.failures:
                reasons.append(f"{c} checked on {percent(s.coverage)} % of the scene")
        looked = [c for c in enabled if statuses[c].checked]
        if enabled and not looked:
            return "failed", tuple(dict.fromkeys(reasons)) or ("nothing was checked",)
        if reasons:
            return "partial", tuple(dict.fromkeys(reasons))
        return "complete", ()

    def clouds(self) -> dict[str, Any] | None:
        """What the cloud screen saw, as the products carry it: ``{"status": "checked",
        "cloud_fraction", "shadow_fraction", "model"}`` (fractions of the pixels it could
        classify), ``{"status": "not checked", "reason"}`` when it was skipped, ``None`` when
        it was not enabled."""
        status = self.detectors.get("clouds")
        if status is None:
            return None
        if status.startswith("skipped"):
            why = status.partition(":")[2].strip() or "skipped"
            return {"status": NOT_CHECKED, "reason": why}
        sky = self._sky_fractions()
        if sky is None:
            return {"status": NOT_CHECKED, "reason": "no usable samples"}
        return {
            "status": "checked",
            "cloud_fraction": round(sky[0], 3),
            "shadow_fraction": round(sky[1], 3),
            "model": str((self.info.get("clouds") or {}).get("model", "")),
        }

    def status_dict(self) -> dict[str, Any]:
        """``outcome``, ``outcome_reasons``, ``classes`` and ``clouds`` (when the cloud screen
        was enabled) as written into the products."""
        outcome, reasons = self._outcome()
        out: dict[str, Any] = {
            "outcome": outcome,
            "outcome_reasons": list(reasons),
            "classes": {c: s.to_dict() for c, s in self.class_status().items()},
        }
        clouds = self.clouds()
        if clouds is not None:
            out["clouds"] = clouds
        return out

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


def percent(fraction: float) -> str:
    """``62.5`` for 0.625, never rounded up to ``100`` (nor down to ``0``) when not exact."""
    if fraction >= 1.0:
        return "100"
    if fraction <= 0.0:
        return "0"
    v = math.floor(fraction * 1000) / 10
    return f"{max(v, 0.1):.1f}"


def _round_coords(obj: Any, nd: int) -> Any:
    if isinstance(obj, Mapping):
        return {k: _round_coords(v, nd) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round_coords(v, nd) for v in obj]
    if isinstance(obj, float):
        return round(obj, nd)
    return obj
