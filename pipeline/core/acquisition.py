"""When (and where) a scene was acquired: from its metadata, a sidecar file or its file name.

:func:`scene_acquisition` looks, in this order, at

1. a **sidecar** beside the scene: ``scene.json`` inside a scene folder, or ``<stem>.scene.json``
   next to a single GeoTIFF (format below);
2. **GeoTIFF metadata**: acquisition tags (``ACQUISITION_DATE``, ``SENSING_TIME``,
   ``DATATAKE_SENSING_START``, ``DATE_ACQUIRED`` + ``SCENE_CENTER_TIME``, ``datetime``...) in the
   default, band or ``IMAGERY`` domains, then a date in a band description (the G90292 stack's
   bands read ``"20230514 20m: B11 1610nm"``);
3. the sen2ships ``labels.json`` beside the bands (its ``acquisition_date``);
4. a date in the **file name** (``G90292_20230514.tif``, ``..._20230514T190919_...``).

``TIFFTAG_DATETIME`` is *not* used: TIFF defines it as the time the file was written, which for
exports is the processing time.  Nor is the processing time ever used: when nothing says when the
scene was acquired, the answer is ``None`` (unknown) with the places looked at.

Sidecar format (``scene.json``; every key optional)::

    {"acquired_utc": "2023-01-08",            # ISO 8601: a date, or a UTC time
     "acquired_note": "date from the sen2ships README; time of day not recorded",
     "place": "Honolulu, Hawaii",            # place name(s), comma separated, or a list
     "kind": "port"}                         # what the scene shows (ports: "which port ...")

Dates without a time are kept as dates (``2023-01-08``): the time of day is unknown.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

log = logging.getLogger(__name__)

SIDECAR = "scene.json"
TIFF_SUFFIXES = (".tif", ".tiff")
#: metadata keys that hold the acquisition (sensing) time, most specific first
TIME_TAGS = (
    "ACQUISITION_DATETIME",
    "ACQUISITION_TIME",
    "ACQUISITION_DATE",
    "SENSING_TIME",
    "SENSING_START",
    "DATATAKE_SENSING_START",
    "PRODUCT_START_TIME",
    "DATATAKE_1_DATATAKE_SENSING_START",
    "DATE_ACQUIRED",
    "ACQUIRED",
    "DATETIME",
    "START_TIME",
)
_ISO = re.compile(
    r"(?<!\d)(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?",
    re.I,
)
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2}))?(?!\d)")
_PLACE_SPLIT = re.compile(r"\s*[,;/]\s*")


@dataclass(frozen=True)
class Acquisition:
    """A scene's acquisition time (``None``: unknown), where it came from, and place names."""

    #: ISO 8601 UTC: ``2023-05-14T19:09:19Z``, or a date ``2023-05-14`` when the time of day is
    #: not known; ``None`` when unknown
    utc: str | None
    #: e.g. ``"sidecar scene.json"``, ``"GeoTIFF tag ACQUISITION_DATE"``, ``"file name"``,
    #: ``"--acquired"``; ``"unknown (...)"`` with what was looked at
    source: str
    #: place names from the sidecar or labels (``("Honolulu", "Hawaii")``)
    places: tuple[str, ...] = field(default=())
    #: what the scene shows, when its sidecar or labels say (``"port"``); None when unknown
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "acquired_utc": self.utc,
            "acquired_source": self.source,
            "places": list(self.places),
            "scene_kind": self.kind,
        }


def normalise_time(text: str) -> str | None:
    """``"2023-05-14"`` -> ``"2023-05-14"``; ``"2023-05-14T19:09:19.024Z"`` or ``"20230514T190919"``
    -> ``"2023-05-14T19:09:19Z"`` (UTC); ``None`` when no plausible date is found."""
    text = text.strip()
    m = _ISO.search(text)
    if m:
        y, mo, d, hh, mi, ss, tz = m.groups()
    else:
        m = _COMPACT.search(text)
        if not m:
            return None
        y, mo, d, hh, mi, ss = m.groups()
        tz = None
    try:
        day = dt.date(int(y), int(mo), int(d))
    except ValueError:
        return None
    if not 1960 <= day.year <= 2200:
        return None
    if hh is None:
        return day.isoformat()
    t = dt.datetime(day.year, day.month, day.day, int(hh), int(mi), int(ss or 0))
    if tz and tz.upper() not in ("Z", "UTC"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        t -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _places(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items: Iterable[Any] = _PLACE_SPLIT.split(value)
    elif isinstance(value, list | tuple):
        items = value
    else:
        return ()
    return tuple(str(v).strip() for v in items if str(v).strip())


def _sidecar_path(path: Path) -> Path:
    return path / SIDECAR if path.is_dir() else path.with_name(path.stem + "." + SIDECAR)


def read_sidecar(path: Path) -> tuple[str | None, str, tuple[str, ...], str | None]:
    """(time, note, places, kind) from the scene's sidecar; ``(None, "", (), None)`` when there
    is none.  A sidecar that is not valid JSON is an :class:`InputError` (it was written on
    purpose)."""
    side = _sidecar_path(path)
    if not side.is_file():
        return None, "", (), None
    try:
        doc = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{side}: unreadable scene sidecar ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{side}: scene sidecar must be a JSON object")
    places = _places(doc.get("place", doc.get("places")))
    kind = str(doc["kind"]).lower() if isinstance(doc.get("kind"), str) else None
    raw = doc.get("acquired_utc")
    note = str(doc.get("acquired_note", ""))
    if raw is None:
        return None, note, places, kind
    when = normalise_time(str(raw))
    if when is None:
        raise InputError(f"{side}: acquired_utc {raw!r} is not an ISO 8601 date or time")
    return when, note, places, kind


def _tiffs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
    return []


def _from_metadata(files: list[Path]) -> tuple[str | None, str]:
    """(time, source) from GeoTIFF tags or band descriptions."""
    try:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioError
    except ImportError:  # the store also runs on the ground, without rasterio
        return None, ""
    described: tuple[str | None, str] = (None, "")
    for f in files[:32]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(f) as ds:
                    tags: dict[str, str] = {}
                    for ns in (None, "IMAGERY"):
                        try:
                            tags.update({k.upper(): v for k, v in ds.tags(ns=ns).items()})
                        except (RasterioError, UnicodeDecodeError):
                            continue
                    for i in range(1, ds.count + 1):
                        tags.update({k.upper(): v for k, v in ds.tags(i).items()})
                    descriptions = [d for d in ds.descriptions if d]
        except (RasterioError, OSError, UnicodeDecodeError) as exc:
            log.debug("%s: metadata unreadable (%s)", f, exc)
            continue
        for key in TIME_TAGS:
            if key in tags and (when := normalise_time(tags[key])):
                if key == "DATE_ACQUIRED" and "T" not in when and "SCENE_CENTER_TIME" in tags:
                    when = normalise_time(f"{when}T{tags['SCENE_CENTER_TIME']}") or when
                return when, f"GeoTIFF tag {key} ({f.name})"
        if described[0] is None:
            for text in descriptions:
                m = _COMPACT.search(text) or _ISO.search(text)
                if m and (when := normalise_time(m.group(0))):
                    described = (when, f"GeoTIFF band description {text!r} ({f.name})")
                    break
    return described


def _from_labels(path: Path) -> tuple[str | None, str, tuple[str, ...], str | None]:
    """(time, source, places, kind) from a sen2ships ``labels.json`` (a port scene)."""
    labels = (path if path.is_dir() else path.parent) / "labels.json"
    none: tuple[str | None, str, tuple[str, ...], str | None] = (None, "", (), None)
    if not labels.is_file():
        return none
    try:
        doc = json.loads(labels.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return none
    if not isinstance(doc, dict):
        return none
    places = _places(doc.get("port", doc.get("place")))
    raw = doc.get("acquisition_date") or doc.get("acquired_utc")
    when = normalise_time(str(raw)) if raw else None
    kind = "port" if "port" in doc else None
    return when, "labels.json acquisition_date", tuple(p.title() for p in places), kind


def scene_acquisition(path: str | Path, override: str | None = None) -> Acquisition:
    """The acquisition time of the scene at ``path`` (a multi-band GeoTIFF or a folder of
    single-band GeoTIFFs), its source and place names.  ``override`` (``--acquired``) wins.

    Never raises for a scene without a date: the time is then ``None`` and ``source`` says
    what was looked at.  An unreadable sidecar or a bad ``override`` is an :class:`InputError`.
    """
    p = Path(path)
    found = p.exists()
    side_when, side_note, places, kind = read_sidecar(p) if found else (None, "", (), None)
    label_when, label_source, label_places, label_kind = (
        _from_labels(p) if found else (None, "", (), None)
    )
    places, kind = places or label_places, kind or label_kind
    if override is not None:
        when = normalise_time(override)
        if when is None:
            raise InputError(f"--acquired {override!r} is not an ISO 8601 date or time")
        return Acquisition(when, "--acquired", places, kind)
    if not found:
        return Acquisition(None, f"unknown (scene input {p} not found)", places, kind)
    if side_when is not None:
        note = f": {side_note}" if side_note else ""
        return Acquisition(side_when, f"sidecar {_sidecar_path(p).name}{note}", places, kind)
    files = _tiffs(p)
    when, source = _from_metadata(files)
    if when is not None:
        return Acquisition(when, source, places, kind)
    if label_when is not None:
        return Acquisition(label_when, label_source, places, kind)
    for f in [p, *files]:
        m = _COMPACT.search(f.name) or _ISO.search(f.name)
        if m and (when := normalise_time(m.group(0))):
            return Acquisition(when, f"file name {f.name}", places, kind)
    looked = "sidecar, GeoTIFF tags and descriptions, labels.json, file names"
    why = f"; sidecar: {side_note}" if side_note else ""
    return Acquisition(None, f"unknown (looked at: {looked}{why})", places, kind)


__all__ = ["SIDECAR", "Acquisition", "normalise_time", "read_sidecar", "scene_acquisition"]
