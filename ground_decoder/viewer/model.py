"""What the ground viewer shows, taken out of a :class:`~ground_decoder.Decoded` scene.

Standard library plus Pillow (to check that a chip or quicklook picture decodes).  Everything
read from the products is read defensively: a damaged or older product may lack a member, hold
a string where a number belongs, or carry coordinates off the Earth; such values are skipped or
shown as "unknown", never raised.

Fields that newer products add (scene outcome, per-class "found N / looked and found none / not
checked", cloud fractions, acquisition time) are looked up under several names in the compact
GeoJSON's ``eotriage`` member, the report and its facts, and the manifest, and shown when found.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..decode import Decoded

#: class -> (display name, colour); other classes get OTHER_STYLE
CLASS_STYLES: dict[str, tuple[str, str]] = {
    "fire": ("Fire", "#e8400c"),
    "ship": ("Ship", "#0a8fd8"),
    "crop_stress": ("Crop stress", "#c9a800"),
    "cloud": ("Cloud", "#7d8ea0"),
}
OTHER_COLOUR = "#c2189b"
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
#: largest picture a chip or quicklook may decode to (ours are 64 px chips, 256 px quicklooks)
MAX_IMAGE_PIXELS = 1 << 24
OUTCOMES = ("complete", "partial", "failed")

# property keys shown in their own popup rows (in this order), the rest go under "other"
_SHOWN = (
    "class",
    "score",
    "length_m",
    "width_m",
    "area_m2",
    "area_km2",
    "heading_deg",
    "setting",
    "severity",
    "centroid_lon",
    "centroid_lat",
)


def class_label(cls: str) -> str:
    return CLASS_STYLES.get(cls, (cls.replace("_", " ").capitalize(), ""))[0]


def class_colour(cls: str) -> str:
    return CLASS_STYLES.get(cls, ("", OTHER_COLOUR))[1]


# ------------------------------------------------------------------------------ small readers


def _num(v: Any) -> float | None:
    """A finite number, else None (bools, strings, NaN and inf are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _text(v: Any, limit: int = 2000) -> str | None:
    if isinstance(v, str):
        s = v.strip()
        return (s[:limit] + " ...") if len(s) > limit else (s or None)
    return None


def _on_earth(x: float, y: float) -> bool:
    return -360.0 <= x <= 360.0 and -90.0 <= y <= 90.0


def _position(c: Any) -> tuple[float, float] | None:
    if isinstance(c, list | tuple) and len(c) >= 2:
        x, y = _num(c[0]), _num(c[1])
        if x is not None and y is not None and _on_earth(x, y):
            return x, y
    return None


def _clean_ring(ring: Any, closed: bool) -> list[list[float]] | None:
    if not isinstance(ring, list | tuple):
        return None
    pts = [_position(p) for p in ring]
    if not pts or any(p is None for p in pts):
        return None
    out = [[p[0], p[1]] for p in pts if p is not None]
    return out if len(out) >= (4 if closed else 2) else None


def clean_geometry(geom: Any) -> dict[str, Any] | None:
    """A copy of a GeoJSON geometry with only finite, on-Earth coordinates, or None when
    nothing of it can be drawn (a damaged product can hold NaN, 1e300 or strings)."""
    if not isinstance(geom, dict):
        return None
    t, c = geom.get("type"), geom.get("coordinates")
    if t == "Point":
        p = _position(c)
        return {"type": t, "coordinates": list(p)} if p else None
    if t in ("MultiPoint", "LineString"):
        pts = [_position(p) for p in c] if isinstance(c, list) else []
        kept = [list(p) for p in pts if p is not None]
        if t == "LineString" and (len(kept) != len(pts) or len(kept) < 2):
            return None
        return {"type": t, "coordinates": kept} if kept else None
    if t == "MultiLineString":
        lines = [_clean_ring(ln, False) for ln in c] if isinstance(c, list) else []
        kept_lines = [ln for ln in lines if ln]
        return {"type": t, "coordinates": kept_lines} if kept_lines else None
    if t == "Polygon":
        rings = [_clean_ring(r, True) for r in c] if isinstance(c, list) else []
        if not rings or rings[0] is None:
            return None
        return {"type": t, "coordinates": [r for r in rings if r]}
    if t == "MultiPolygon":
        polys = []
        for poly in c if isinstance(c, list) else []:
            cleaned = clean_geometry({"type": "Polygon", "coordinates": poly})
            if cleaned:
                polys.append(cleaned["coordinates"])
        return {"type": t, "coordinates": polys} if polys else None
    if t == "GeometryCollection":
        parts = [clean_geometry(g) for g in geom.get("geometries") or []]
        kept_parts = [g for g in parts if g]
        return {"type": t, "geometries": kept_parts} if kept_parts else None
    return None


def _positions(geom: dict[str, Any]) -> Iterator[tuple[float, float]]:
    if geom.get("type") == "GeometryCollection":
        for g in geom.get("geometries", []):
            yield from _positions(g)
        return

    def walk(c: Any) -> Iterator[tuple[float, float]]:
        if isinstance(c, list) and c and isinstance(c[0], float | int):
            yield float(c[0]), float(c[1])
        elif isinstance(c, list):
            for x in c:
                yield from walk(x)

    yield from walk(geom.get("coordinates"))


Bbox = tuple[float, float, float, float]


def _bbox(points: Iterable[tuple[float, float]]) -> Bbox | None:
    xs: list[float] = []
    ys: list[float] = []
    for x, y in points:
        xs.append(x)
        ys.append(y)
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


def union_bbox(boxes: Iterable[Bbox | None]) -> Bbox | None:
    pts: list[tuple[float, float]] = []
    for b in boxes:
        if b is not None:
            pts += [(b[0], b[1]), (b[2], b[3])]
    return _bbox(pts)


def _bbox_ok(b: Any) -> Bbox | None:
    if not isinstance(b, list | tuple) or len(b) != 4:
        return None
    vals = [_num(v) for v in b]
    if any(v is None for v in vals):
        return None
    w, s, e, n = (float(v) for v in vals if v is not None)
    return (w, s, e, n) if _on_earth(w, s) and _on_earth(e, n) and w < e and s < n else None


# ------------------------------------------------------------------------------ formatting


def fmt_area(m2: float) -> str:
    if m2 >= 1e6:
        return f"{m2 / 1e6:.2f} km²"
    if m2 >= 1e4:
        return f"{m2 / 1e4:.2f} ha"
    return f"{m2:,.0f} m²"


def fmt_lat_lon(lat: float, lon: float) -> str:
    return f"{abs(lat):.4f}°{'N' if lat >= 0 else 'S'} {abs(lon):.4f}°{'E' if lon >= 0 else 'W'}"


def fmt_fraction(f: float) -> str:
    return f"{100 * f:.0f} %" if f >= 0.01 or f == 0 else f"{100 * f:.1f} %"


def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, str):
        return v[:200]
    if v is None:
        return "–"
    text = str(v)
    return text[:200] + (" ..." if len(text) > 200 else "")


def _label(key: str) -> str:
    return key.replace("_", " ")


# ------------------------------------------------------------------------------ view types


@dataclass(frozen=True)
class DetectionView:
    """One detection as the viewer shows it (map feature, popup, table row)."""

    index: int  #: position in the received FeatureCollection (the onboard order)
    cls: str
    score: float | None
    size_text: str  #: "70 m" (length) or "1.52 ha" (area), "" when unknown
    size_value: float | None  #: metres for lengths, m² for areas (for sorting)
    heading: float | None
    setting: str | None
    cloud: str | None  #: the cloud flag or fraction, when the product carries one
    lat: float | None
    lon: float | None
    bbox: Bbox | None
    geometry: dict[str, Any] | None  #: cleaned GeoJSON geometry, None when not drawable
    rows: tuple[tuple[str, str], ...]  #: popup rows (label, value), in display order

    @property
    def label(self) -> str:
        return class_label(self.cls)

    @property
    def colour(self) -> str:
        return class_colour(self.cls)


@dataclass(frozen=True)
class ClassStatus:
    """What a product says about one class: found N, looked and found none, not checked."""

    cls: str
    received: int  #: features of this class on the map
    reported: int | None  #: the count the satellite reported (None when not stated)
    state: str  #: "found" | "none" | "not_checked" | "unknown"
    reason: str | None = None
    omitted: int = 0  #: detections the satellite kept back (not downlinked)
    coverage: float | None = None  #: fraction of the scene looked at (None when not stated)

    @property
    def label(self) -> str:
        return class_label(self.cls)

    @property
    def colour(self) -> str:
        return class_colour(self.cls)

    def text(self) -> str:
        if self.state == "not_checked":
            return "not checked" + (f" ({self.reason})" if self.reason else "")
        part = (
            f" ({100 * self.coverage:.1f} % of the scene checked)"
            if self.coverage is not None and 0.0 < self.coverage < 1.0
            else ""
        )
        return self._text() + part

    def _text(self) -> str:
        if self.state == "none":
            return "looked and found none"
        n = self.reported if self.reported is not None else self.received
        if self.state == "found":
            got = f"found {n}"
            if self.reported is not None and self.received < self.reported:
                got += f" ({self.received} received)"
            if self.omitted:
                got += f"; {self.omitted} more kept onboard"
            return got
        return f"{self.received} received (whether it looked is not stated)"


@dataclass(frozen=True)
class ImageView:
    """A chip or the quicklook as a data URI at its lon/lat footprint."""

    name: str
    bbox: Bbox
    data_uri: str
    size_px: tuple[int, int]
    index: int | None = None  #: the detection a chip shows


@dataclass(frozen=True)
class Notice:
    level: str  #: "error" | "warning" | "info"
    text: str


@dataclass(frozen=True)
class SceneView:
    """Everything one scene page shows."""

    title: str
    scene: str | None
    scene_tag: int
    acquired: str | None
    priority: str | None
    summary: str | None
    report_text: str | None
    writer: str | None
    outcome: str | None  #: "complete" | "partial" | "failed" | None (not stated)
    outcome_reasons: tuple[str, ...]
    cloud_fraction: float | None
    shadow_fraction: float | None
    classes: tuple[ClassStatus, ...]
    detections: tuple[DetectionView, ...]
    quicklook: ImageView | None
    chips: tuple[ImageView, ...]
    packets: int
    ok: bool
    damage_lines: tuple[str, ...]
    damaged_ranges: tuple[tuple[str, int, int], ...]  #: (cause, first byte, end byte)
    recovered: tuple[tuple[str, str], ...]  #: (product, "received" / "3 of 12" / "lost")
    waiting: tuple[str, ...]
    notices: tuple[Notice, ...]
    bounds: Bbox | None
    extra: Mapping[str, str] = field(default_factory=dict)  #: other scene facts to show

    @property
    def priority_rank(self) -> int:
        return PRIORITY_RANK.get(self.priority or "", 3)

    @property
    def detection_count(self) -> int:
        return len(self.detections)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.detections:
            out[d.cls] = out.get(d.cls, 0) + 1
        return out


# ------------------------------------------------------------------------------ building


def _sources(decoded: Decoded) -> list[Mapping[str, Any]]:
    """Where scene-level facts may sit, most specific first."""
    out: list[Mapping[str, Any]] = []
    gj = decoded.geojson if isinstance(decoded.geojson, dict) else {}
    for key in ("eotriage", "properties"):
        if isinstance(gj.get(key), dict):
            out.append(gj[key])
    rep = decoded.report if isinstance(decoded.report, dict) else {}
    if rep:
        out.append(rep)
        if isinstance(rep.get("facts"), dict):
            out.append(rep["facts"])
    m = decoded.manifest
    if m is not None:
        md = {k: getattr(m, k) for k in dir(m) if not k.startswith("_")}
        out.append({k: v for k, v in md.items() if not callable(v)})
    return out


def _first(sources: list[Mapping[str, Any]], *keys: str) -> Any:
    for src in sources:
        for k in keys:
            v = src.get(k)
            if v is not None:
                return v
    return None


def _outcome(sources: list[Mapping[str, Any]]) -> tuple[str | None, tuple[str, ...]]:
    v = _first(sources, "outcome", "scene_outcome", "scene_status")
    reasons: list[str] = []
    if isinstance(v, dict):
        for k in ("reasons", "reason", "why", "notes"):
            r = v.get(k)
            if isinstance(r, str):
                reasons.append(r)
            elif isinstance(r, list | tuple):
                reasons += [str(x) for x in r if isinstance(x, str | int | float)]
        v = v.get("status") or v.get("outcome") or v.get("state")
    if not isinstance(v, str):
        v = _first(sources, "status")  # a plain "status" only counts when it is an outcome
    text = v.strip().lower() if isinstance(v, str) else None
    if text not in OUTCOMES:
        return None, ()
    if not reasons:
        r = _first(sources, "outcome_reasons", "outcome_reason")
        if isinstance(r, str):
            reasons = [r]
        elif isinstance(r, list | tuple):
            reasons = [str(x) for x in r if isinstance(x, str)]
    return text, tuple(reasons[:10])


def _fraction(v: Any) -> float | None:
    f = _num(v)
    if f is None:
        return None
    if 1.0 < f <= 100.0:  # a percentage
        f /= 100.0
    return f if 0.0 <= f <= 1.0 else None


def _clouds(sources: list[Mapping[str, Any]]) -> tuple[float | None, float | None]:
    cloud = shadow = None
    for src in sources:
        for k in ("cloud_fraction", "cloud_cover", "cloud"):
            if cloud is None:
                cloud = _fraction(src.get(k))
        for k in ("shadow_fraction", "cloud_shadow_fraction"):
            if shadow is None:
                shadow = _fraction(src.get(k))
        c = src.get("clouds")
        if isinstance(c, dict):
            if cloud is None:
                cloud = _fraction(c.get("fraction", c.get("cloud_fraction", c.get("cloud"))))
            if shadow is None:
                shadow = _fraction(c.get("shadow_fraction", c.get("shadow")))
        elif cloud is None:
            cloud = _fraction(c)
    return cloud, shadow


def _acquired(sources: list[Mapping[str, Any]]) -> str | None:
    v = _first(
        sources, "acquired", "acquisition_time", "datetime", "sensing_time", "time_utc", "time"
    )
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        try:
            return dt.datetime.fromtimestamp(v, dt.UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return None
    return _text(v, 64)


_NOT_CHECKED = {"not_checked", "not checked", "skipped", "unchecked", "not_run", "not run"}
_NONE = {
    "none",
    "none found",
    "none_found",
    "looked",
    "clear",
    "checked",
    "looked_none",
    "nothing",
}


def _class_entries(sources: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-class statements merged from every source (first source wins per key)."""
    out: dict[str, dict[str, Any]] = {}

    def put(cls: Any, **kv: Any) -> None:
        if not isinstance(cls, str) or not cls:
            return
        slot = out.setdefault(cls[:40], {})
        for k, v in kv.items():
            if v is not None and k not in slot:
                slot[k] = v

    def entry(cls: Any, e: Any) -> None:
        if isinstance(e, dict):
            put(
                cls,
                count=_num(e.get("count", e.get("n", e.get("found")))),
                checked=e.get("checked") if isinstance(e.get("checked"), bool) else None,
                status=_text(e.get("status", e.get("state")), 40),
                coverage=_fraction(e.get("coverage")),
                reason=_text(
                    e.get("reason", e.get("why", e.get("skipped_reason", e.get("not_checked")))),
                    200,
                ),
            )
        elif _num(e) is not None:
            put(cls, count=_num(e))
        elif isinstance(e, str):
            put(cls, status=e[:40])

    for src in sources:
        classes = src.get("classes", src.get("detectors"))
        if isinstance(classes, list):
            for e in classes:
                if isinstance(e, dict):
                    entry(e.get("cls", e.get("class", e.get("name"))), e)
        elif isinstance(classes, dict):
            for cls, e in classes.items():
                entry(cls, e)
        counts = src.get("counts")
        if isinstance(counts, dict):
            for cls, n in counts.items():
                put(cls, count=_num(n))
        omitted = src.get("omitted")
        if isinstance(omitted, dict):
            for cls, n in omitted.items():
                put(cls, omitted=_num(n))
        for key, checked in (("not_checked", False), ("skipped", False), ("checked", True)):
            v = src.get(key)
            if isinstance(v, dict):
                for cls, why in v.items():
                    put(cls, checked=checked, reason=_text(why, 200) if not checked else None)
            elif isinstance(v, list):
                for cls in v:
                    put(cls, checked=checked)
    return out


def _class_statuses(
    sources: list[Mapping[str, Any]], received: Mapping[str, int]
) -> tuple[ClassStatus, ...]:
    entries = _class_entries(sources)
    order = list(entries) + [c for c in received if c not in entries]
    out: list[ClassStatus] = []
    for cls in order:
        e = entries.get(cls, {})
        got = received.get(cls, 0)
        count = e.get("count")
        reported = int(count) if count is not None and count >= 0 else None
        status = str(e.get("status", "")).lower().strip()
        checked = e.get("checked")
        if status in _NOT_CHECKED or checked is False:
            state = "not_checked"
        elif status == "found" or (reported or 0) > 0 or got > 0:
            state = "found"
        elif status in _NONE or (checked is True and not reported and not got):
            state = "none"
        else:
            state = "unknown"
        omitted = e.get("omitted")
        out.append(
            ClassStatus(
                cls,
                got,
                reported,
                state,
                e.get("reason"),
                int(omitted) if omitted else 0,
                e.get("coverage"),
            )
        )
    return tuple(out)


def _detection(i: int, feature: Any) -> DetectionView:
    props = feature.get("properties") if isinstance(feature, dict) else None
    props = props if isinstance(props, dict) else {}
    cls = str(props.get("class", "?"))[:40] or "?"
    geom = clean_geometry(feature.get("geometry")) if isinstance(feature, dict) else None
    bbox = _bbox(_positions(geom)) if geom else None
    lon, lat = _num(props.get("centroid_lon")), _num(props.get("centroid_lat"))
    if (lon is None or lat is None or not _on_earth(lon, lat)) and bbox is not None:
        lon, lat = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    elif lon is None or lat is None or not _on_earth(lon, lat):
        lon = lat = None
    score = _num(props.get("score"))
    length = _num(props.get("length_m"))
    area = _num(props.get("area_m2"))
    if area is None and _num(props.get("area_km2")) is not None:
        area = float(props["area_km2"]) * 1e6
    if length is not None:
        size_text, size_value = f"{length:,.0f} m", length
    elif area is not None:
        size_text, size_value = fmt_area(area), area
    else:
        size_text, size_value = "", None
    heading = _num(props.get("heading_deg"))
    setting = _text(props.get("setting", props.get("vessel_setting")), 40)
    cloud_keys = [k for k in props if isinstance(k, str) and "cloud" in k.lower()]
    # the table's cloud mark only where some cloud touches the feature (a cloud fraction of 0
    # or under_cloud false is a clear look; the popup still lists the values)
    cloud = None
    if any(props[k] not in (None, 0, 0.0, False, "") for k in cloud_keys):
        cloud = "; ".join(f"{_label(k)} {fmt_value(props[k])}" for k in cloud_keys)

    rows: list[tuple[str, str]] = [("class", class_label(cls))]
    if score is not None:
        rows.append(("score", f"{score:.2f}"))
    if length is not None:
        rows.append(("length", f"{length:,.0f} m"))
    if _num(props.get("width_m")) is not None:
        rows.append(("width", f"{float(props['width_m']):,.0f} m"))
    if area is not None:
        rows.append(("area", fmt_area(area)))
    if heading is not None:
        rows.append(("heading", f"{heading:.0f}°"))
    if setting:
        rows.append(("setting", setting))
    if isinstance(props.get("severity"), str):
        rows.append(("severity", str(props["severity"])[:40]))
    for k in cloud_keys:
        rows.append((_label(k), fmt_value(props[k])))
    if lat is not None and lon is not None:
        rows.append(("position", fmt_lat_lon(lat, lon)))
    for k, v in props.items():
        if isinstance(k, str) and k not in _SHOWN and k not in cloud_keys and len(rows) < 40:
            rows.append((_label(k)[:60], fmt_value(v)))
    if geom is None:
        rows.append(("map", "no drawable position in this feature (damaged?)"))
    return DetectionView(
        index=i,
        cls=cls,
        score=score,
        size_text=size_text,
        size_value=size_value,
        heading=heading,
        setting=setting,
        cloud=cloud,
        lat=lat,
        lon=lon,
        bbox=bbox,
        geometry=geom,
        rows=tuple(rows),
    )


def image_data_uri(image: bytes) -> tuple[str, tuple[int, int]]:
    """A data URI for a downlinked picture: JPEG and PNG as they came, anything else as PNG.

    Raises ValueError (or OSError) for pictures that do not decode or claim absurd sizes.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(image))
        except Image.DecompressionBombError as exc:
            raise ValueError(str(exc)) from None
    with im:
        if im.width * im.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"image of {im.width} x {im.height} px (damaged?)")
        im.load()  # a truncated picture fails here, not in the browser
        size = (im.width, im.height)
        if im.format in ("JPEG", "PNG"):
            mime, data = f"image/{im.format.lower()}", image
        else:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG", optimize=True)
            mime, data = "image/png", buf.getvalue()
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", size


def _recovered(decoded: Decoded, n_dets: int, bad_images: list[str]) -> list[tuple[str, str]]:
    dmg = decoded.damage
    lost_names = [*dmg.missing_products, *dmg.incomplete, *dmg.undecodable]

    def lost(prefix: str) -> int:
        return sum(1 for n in lost_names if n.startswith(prefix + "["))

    out = [
        ("manifest", "received" if decoded.manifest is not None else "lost"),
        ("report", "received" if decoded.report is not None else "lost"),
    ]
    expected = decoded.manifest.features if decoded.manifest is not None else None
    if expected is None and decoded.geojson is not None:
        expected = n_dets + len(dmg.missing_features)
    if decoded.geojson is None:
        det = "lost" if (expected or lost("detections")) else "none received"
    else:
        det = f"{n_dets} of {expected}" if expected is not None and expected != n_dets else "all"
        det += " received"
    out.append(("detections", det))
    chips_expected = len(decoded.chips) + lost("chip")
    if chips_expected:
        bad = sum(1 for b in bad_images if b.startswith("chip"))
        out.append(("chips", f"{len(decoded.chips) - bad} of {chips_expected} shown"))
    if decoded.quicklook is not None or lost("quicklook"):
        ok = decoded.quicklook is not None and not any(
            b.startswith("quicklook") for b in bad_images
        )
        out.append(("quicklook", "received" if ok else "lost"))
    return out


def scene_view(decoded: Decoded) -> SceneView:
    """Gather what a scene page shows from a decoded scene (never raises on content)."""
    sources = _sources(decoded)
    feats = (decoded.geojson or {}).get("features")
    features = feats if isinstance(feats, list) else []
    detections = tuple(_detection(i, f) for i, f in enumerate(features))
    received: dict[str, int] = {}
    for d in detections:
        received[d.cls] = received.get(d.cls, 0) + 1

    report = decoded.report if isinstance(decoded.report, dict) else None
    priority = _text(report.get("priority"), 20) if report else None
    summary = _text(report.get("summary")) if report else None
    report_text = _text(report.get("text"), 8000) if report else None
    writer = _text(report.get("writer"), 40) if report else None
    outcome, reasons = _outcome(sources)
    cloud, shadow = _clouds(sources)

    bad_images: list[str] = []
    quicklook = None
    if decoded.quicklook is not None:
        qb = _bbox_ok(decoded.quicklook.bbox)
        try:
            uri, size = image_data_uri(decoded.quicklook.image)
            if qb is None:
                bad_images.append("quicklook: footprint off the map")
            else:
                quicklook = ImageView("quicklook", qb, uri, size)
        except (OSError, ValueError, SyntaxError) as exc:
            bad_images.append(f"quicklook: picture does not decode ({exc})")
    chips: list[ImageView] = []
    for chip in decoded.chips:
        cb = _bbox_ok(chip.bbox)
        try:
            uri, size = image_data_uri(chip.image)
        except (OSError, ValueError, SyntaxError) as exc:
            bad_images.append(f"chip {chip.index}: picture does not decode ({exc})")
            continue
        if cb is None:
            bad_images.append(f"chip {chip.index}: footprint off the map")
            continue
        chips.append(ImageView(f"chip {chip.index}", cb, uri, size, index=chip.index))

    dmg = decoded.damage
    ranges = sorted(
        (r.cause, r.start, r.end) for r in (*dmg.crc_failures, *dmg.truncated, *dmg.garbage)
    )
    ranges.sort(key=lambda t: t[1])
    recovered = _recovered(decoded, len(detections), bad_images)
    notices: list[Notice] = []
    nothing = decoded.packets == 0
    if nothing:
        why = "no valid packet was found in this file"
        if ranges:
            nbytes = sum(e - s for _c, s, e in ranges)
            why += f" ({nbytes:,} byte(s) unreadable: CRC failures, truncation or garbage)"
        else:
            why += " (the file is empty)"
        notices.append(Notice("error", f"Nothing could be recovered from this pass: {why}."))
    elif not dmg.ok:
        got = [f"{name} ({state})" if state != "received" else name for name, state in recovered]
        kinds = []
        if dmg.crc_failures:
            kinds.append(f"{len(dmg.crc_failures)} packet(s) failed CRC")
        if dmg.truncated:
            kinds.append(f"{len(dmg.truncated)} truncated")
        if dmg.garbage:
            kinds.append(f"{sum(r.end - r.start for r in dmg.garbage):,} byte(s) of garbage")
        lost_pkts = sum(len(v) for v in dmg.lost_seq.values())
        if lost_pkts:
            kinds.append(f"{lost_pkts} packet(s) lost")
        notices.append(
            Notice(
                "warning",
                "This pass arrived damaged"
                + (f" ({', '.join(kinds)})" if kinds else "")
                + ". Recovered: "
                + "; ".join(got)
                + ". The damaged byte ranges are listed under 'Downlink'.",
            )
        )
    why = f": {'; '.join(reasons[:4])}" if reasons else ""
    if outcome == "failed":
        notices.append(
            Notice("error", f"The satellite reports a failed scan, nothing was checked{why}.")
        )
    elif outcome == "partial":
        notices.append(
            Notice(
                "warning", f"The satellite reports a partial scan, not everything was checked{why}."
            )
        )
    if not nothing:
        if decoded.geojson is None:
            notices.append(
                Notice(
                    "error" if decoded.manifest is None or decoded.manifest.features else "info",
                    "No detections on the map: the detections product was not received."
                    if decoded.manifest is None or decoded.manifest.features
                    else "No detections on the map: the satellite sent no detections product.",
                )
            )
        elif not detections:
            notices.append(Notice("info", "Zero detections: the satellite reported nothing found."))
        elif not any(d.geometry for d in detections):
            notices.append(
                Notice("warning", "No detection has a drawable position (damaged coordinates).")
            )
        if report is None:
            notices.append(Notice("warning", "The report was not received."))
    for b in bad_images:
        notices.append(Notice("warning", f"Picture not shown: {b}."))

    title = decoded.scene or (
        f"scene tag {decoded.scene_tag:#06x} (name lost)"
        if decoded.packets
        else "nothing recovered"
    )
    bounds = union_bbox(
        [d.bbox for d in detections]
        + [quicklook.bbox if quicklook else None]
        + [c.bbox for c in chips]
    )
    extra: dict[str, str] = {}
    place = _first(sources, "place")
    if _text(place, 100):
        extra["place"] = str(place)[:100]
    if writer:
        extra["report writer"] = writer
    return SceneView(
        title=title,
        scene=decoded.scene,
        scene_tag=decoded.scene_tag,
        acquired=_acquired(sources),
        priority=priority,
        summary=summary,
        report_text=report_text,
        writer=writer,
        outcome=outcome,
        outcome_reasons=reasons,
        cloud_fraction=cloud,
        shadow_fraction=shadow,
        classes=_class_statuses(sources, received),
        detections=detections,
        quicklook=quicklook,
        chips=tuple(chips),
        packets=decoded.packets,
        ok=decoded.ok,
        damage_lines=tuple(dmg.lines()),
        damaged_ranges=tuple(ranges),
        recovered=tuple(recovered),
        waiting=decoded.waiting,
        notices=tuple(notices),
        bounds=bounds,
        extra=extra,
    )
