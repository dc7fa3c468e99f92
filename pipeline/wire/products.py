"""Downlink products: what each kind carries and how its payload is packed (standard library).

A *product* is one self-contained unit of the downlink: the manifest, the report, one chunk of
detections, one image chip, the quicklook.  Each is packed with :mod:`.codec` and travels in
one or more space packets on its own APID (``apid_base + kind``).  The ground decoder unpacks
them with the same functions, so onboard and ground can never disagree on a layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ..errors import PacketError
from . import codec

PAYLOAD_VERSION = 1


class Kind(IntEnum):
    """Product kinds; the APID of a kind is ``apid_base + kind``."""

    MANIFEST = 0
    REPORT = 1
    DETECTIONS = 2
    CHIP = 3
    QUICKLOOK = 4

    @property
    def label(self) -> str:
        return self.name.lower()


#: Kinds that make up the core product (always sent first); the rest are optional extras.
CORE_KINDS = (Kind.MANIFEST, Kind.REPORT, Kind.DETECTIONS)


@dataclass(frozen=True)
class Chip:
    """A small image around one detection.

    ``index`` is the detection's index in the GeoJSON ``features`` list; ``bbox`` is the
    chip's footprint in lon/lat (west, south, east, north); ``image`` the encoded picture
    (``format`` "jpeg" or "png"); ``bands`` the bands shown as red, green, blue.
    """

    index: int
    bbox: tuple[float, float, float, float]
    image: bytes
    format: str = "jpeg"
    bands: tuple[str, ...] = ()
    size_px: tuple[int, int] = (0, 0)

    def to_value(self) -> dict[str, Any]:
        return {
            "i": self.index,
            "bbox": list(self.bbox),
            "fmt": self.format,
            "bands": list(self.bands),
            "px": list(self.size_px),
            "img": self.image,
        }

    @classmethod
    def from_value(cls, v: Any) -> Chip:
        try:
            return cls(
                index=_int(v["i"], "index", MAX_FEATURES - 1),
                bbox=_bbox(v["bbox"]),
                image=_bytes(v["img"]),
                format=_str(v["fmt"], "format"),
                bands=_strs(v["bands"], "bands"),
                size_px=_size(v["px"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PacketError(f"chip product malformed ({exc})") from None


@dataclass(frozen=True)
class Quicklook:
    """A low-resolution picture of the whole scene; ``bbox`` in lon/lat (W, S, E, N)."""

    bbox: tuple[float, float, float, float]
    image: bytes
    format: str = "jpeg"
    bands: tuple[str, ...] = ()
    size_px: tuple[int, int] = (0, 0)

    def to_value(self) -> dict[str, Any]:
        return {
            "bbox": list(self.bbox),
            "fmt": self.format,
            "bands": list(self.bands),
            "px": list(self.size_px),
            "img": self.image,
        }

    @classmethod
    def from_value(cls, v: Any) -> Quicklook:
        try:
            return cls(
                bbox=_bbox(v["bbox"]),
                image=_bytes(v["img"]),
                format=_str(v["fmt"], "format"),
                bands=_strs(v["bands"], "bands"),
                size_px=_size(v["px"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PacketError(f"quicklook product malformed ({exc})") from None


# Strict readers for decoded payload fields.  A damaged (or hostile) payload can hold any codec
# value where a number or a list is expected: ``bytes(2**40)`` would allocate a terabyte,
# ``int(inf)`` raises OverflowError, ``float(x) for x in "1234"`` silently accepts a string.
# So every field is checked for its type and range, and anything else is a ValueError that the
# callers turn into PacketError.

#: most features one FeatureCollection may claim; far beyond any scene's detections, and it
#: keeps a damaged count from making the ground build gigabyte-sized "missing" lists
MAX_FEATURES = 1 << 20
#: largest image dimension a chip or quicklook may claim, in pixels
MAX_IMAGE_PX = 1 << 16


def _int(v: Any, what: str, hi: int, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} is not an integer: {v!r:.40}")
    if not lo <= v <= hi:
        raise ValueError(f"{what} {v} outside {lo}..{hi}")
    return v


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{what} is not a finite number: {v!r:.40}")
    return float(v)


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{what} is not a string: {v!r:.40}")
    return v


def _strs(v: Any, what: str) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ValueError(f"{what} is not a list: {v!r:.40}")
    return tuple(_str(x, what) for x in v)


def _bytes(v: Any) -> bytes:
    if not isinstance(v, bytes):
        raise ValueError(f"image is not bytes: {type(v).__name__}")
    return v


def _size(v: Any) -> tuple[int, int]:
    if not isinstance(v, list) or len(v) != 2:
        raise ValueError(f"size is not [width, height]: {v!r:.40}")
    return _int(v[0], "width", MAX_IMAGE_PX), _int(v[1], "height", MAX_IMAGE_PX)


def _bbox(v: Any) -> tuple[float, float, float, float]:
    if not isinstance(v, list) or len(v) != 4:
        raise ValueError(f"bbox is not [west, south, east, north]: {v!r:.40}")
    w, s, e, n = (_number(x, "bbox") for x in v)
    return w, s, e, n


@dataclass(frozen=True)
class Extras:
    """Optional products, off by default and counted separately from the core product."""

    chips: Sequence[Chip] = ()
    quicklook: Quicklook | None = None


@dataclass(frozen=True)
class Product:
    """One product ready to be packetised: kind, item number, packed payload, priority rank."""

    kind: Kind
    item: int
    payload: bytes
    #: lower goes first; ties keep creation order
    rank: tuple[int, ...] = field(default=(0,))
    #: features a detections chunk carries (0 for other kinds)
    features: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind.label}[{self.item}]"


# ----------------------------------------------------------------------- payloads per kind


def pack_detections_chunk(
    geojson: Mapping[str, Any], indices: Sequence[int], with_members: bool
) -> bytes:
    """A chunk of the FeatureCollection: the features at ``indices`` (with their indices) and,
    in the first chunk, every other top-level member (``type``, ``eotriage``, ...)."""
    feats = geojson.get("features", [])
    members = {k: v for k, v in geojson.items() if k != "features"} if with_members else None
    return codec.pack(
        {
            "v": PAYLOAD_VERSION,
            "n": len(feats),
            "idx": list(indices),
            "members": members,
            "order": list(geojson) if with_members else None,
            "features": [feats[i] for i in indices],
        }
    )


@dataclass(frozen=True)
class DetectionsChunk:
    total: int
    indices: tuple[int, ...]
    features: tuple[Any, ...]
    members: Mapping[str, Any] | None
    order: tuple[str, ...] | None


def unpack_detections_chunk(data: bytes) -> DetectionsChunk:
    v = codec.unpack(data)
    try:
        feats = v["features"]
        total = _int(v["n"], "feature count", MAX_FEATURES)
        if not isinstance(feats, list) or not isinstance(v["idx"], list):
            raise ValueError("features or indices are not lists")
        idx = tuple(_int(i, "feature index", total - 1) for i in v["idx"])
        if len(idx) != len(feats):
            raise ValueError(f"{len(idx)} feature indices for {len(feats)} features")
        members = v["members"]
        if members is not None and not isinstance(members, dict):
            raise ValueError(f"members is not a mapping: {members!r:.40}")
        _json_only([feats, members], "FeatureCollection")
        order = v["order"]
        return DetectionsChunk(
            total=total,
            indices=idx,
            features=tuple(feats),
            members=dict(members) if members is not None else None,
            order=_strs(order, "member order") if order is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PacketError(f"detections product malformed ({exc})") from None


def pack_report(report: Mapping[str, Any]) -> bytes:
    return codec.pack({"v": PAYLOAD_VERSION, "report": dict(report)})


def unpack_report(data: bytes) -> dict[str, Any]:
    v = codec.unpack(data)
    if not isinstance(v, dict) or not isinstance(v.get("report"), dict):
        raise PacketError("report product malformed (no report object)")
    try:
        _json_only(v["report"], "report")
    except ValueError as exc:
        raise PacketError(f"report product malformed ({exc})") from None
    return dict(v["report"])


def _json_only(v: Any, what: str) -> None:
    """Raise ValueError unless ``v`` is plain JSON.  Reports and GeoJSON are JSON onboard, so a
    ``bytes`` value (which the codec can carry) means a damaged product, and it would break
    ``json.dumps`` on the ground."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
        elif not (x is None or isinstance(x, bool | int | float | str)):
            raise ValueError(f"{what} holds a {type(x).__name__} value, not JSON")


#: scene outcomes a manifest may state (see pipeline.core.results.OUTCOMES)
OUTCOMES = ("complete", "partial", "failed")
#: per-class states a manifest may state (see pipeline.core.results.CLASS_STATES)
CLASS_STATES = ("found", "none found", "not checked")


@dataclass(frozen=True)
class Manifest:
    """What one pass sends: the scene, the products with their segment counts, what waits,
    and what the scan looked at.

    ``outcome`` (``complete`` / ``partial`` / ``failed``) and ``classes`` (``(class, status,
    count)``, status ``found`` / ``none found`` / ``not checked``, count ``None`` when not
    checked) travel in the manifest, which leads every pass, so even a pass cut short says
    whether the satellite looked.  ``features_waiting`` counts the detections held back for a
    later pass (they are not lost).  Manifests of older streams lack these members; they
    unpack with ``None`` / ``()``.
    """

    scene: str
    sent: tuple[tuple[int, int, int], ...]  # (kind, item, segments)
    waiting: tuple[tuple[int, int, int], ...]  # (kind, item, payload bytes)
    features: int
    outcome: str | None = None
    classes: tuple[tuple[str, str, int | None], ...] = ()
    features_waiting: int | None = None
    #: what the cloud screen saw: (cloud fraction, shadow fraction) of the pixels it could
    #: classify; ``None`` when it did not look (or an older stream)
    clouds: tuple[float, float] | None = None

    def pack(self) -> bytes:
        v: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "scene": self.scene,
            "sent": [list(t) for t in self.sent],
            "waiting": [list(t) for t in self.waiting],
            "features": self.features,
        }
        if self.outcome is not None:
            v["outcome"] = self.outcome
        if self.classes:
            v["classes"] = [list(t) for t in self.classes]
        if self.features_waiting is not None:
            v["features_waiting"] = self.features_waiting
        if self.clouds is not None:
            v["clouds"] = [round(float(x), 3) for x in self.clouds]
        return codec.pack(v)

    @classmethod
    def unpack(cls, data: bytes) -> Manifest:
        v = codec.unpack(data)
        try:
            outcome = v.get("outcome")
            if outcome is not None and _str(outcome, "outcome") not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r:.40}")
            waiting_n = v.get("features_waiting")
            return cls(
                scene=_str(v["scene"], "scene"),
                sent=_triples(v["sent"], "sent", 0xFFFF),
                waiting=_triples(v["waiting"], "waiting", 1 << 40),
                features=_int(v["features"], "feature count", MAX_FEATURES),
                outcome=outcome,
                classes=_class_entries(v.get("classes", [])),
                features_waiting=(
                    None
                    if waiting_n is None
                    else _int(waiting_n, "waiting feature count", MAX_FEATURES)
                ),
                clouds=_fractions(v.get("clouds")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PacketError(f"manifest product malformed ({exc})") from None

    def class_status(self) -> dict[str, tuple[str, int | None]]:
        """class -> (status, count)."""
        return {c: (st, n) for c, st, n in self.classes}


def _fractions(v: Any) -> tuple[float, float] | None:
    """The manifest's (cloud, shadow) fractions, or None."""
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 2:
        raise ValueError(f"clouds is not a pair: {v!r:.40}")
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, int | float) or not 0.0 <= x <= 1.0:
            raise ValueError(f"cloud fraction out of range: {x!r:.40}")
        out.append(float(x))
    return out[0], out[1]


def _class_entries(v: Any) -> tuple[tuple[str, str, int | None], ...]:
    if not isinstance(v, list) or len(v) > 64:
        raise ValueError(f"classes is not a short list: {v!r:.40}")
    out = []
    for t in v:
        if not isinstance(t, list) or len(t) != 3:
            raise ValueError(f"class entry is not [class, status, count]: {t!r:.40}")
        cls, status = _str(t[0], "class")[:40], _str(t[1], "class status")
        if status not in CLASS_STATES:
            raise ValueError(f"unknown class status {status!r:.40}")
        count = None if t[2] is None else _int(t[2], "class count", MAX_FEATURES)
        out.append((cls, status, count))
    return tuple(out)


def _triples(v: Any, what: str, third_max: int) -> tuple[tuple[int, int, int], ...]:
    """(kind, item, segments or bytes) entries of a manifest list."""
    if not isinstance(v, list):
        raise ValueError(f"{what} is not a list: {v!r:.40}")
    out = []
    for t in v:
        if not isinstance(t, list) or len(t) != 3:
            raise ValueError(f"{what} entry is not [kind, item, n]: {t!r:.40}")
        out.append(
            (_int(t[0], "kind", 0xFF), _int(t[1], "item", 0xFFFF), _int(t[2], what, third_max))
        )
    return tuple(out)


def pack_chip(chip: Chip) -> bytes:
    return codec.pack(chip.to_value())


def pack_quicklook(q: Quicklook) -> bytes:
    return codec.pack(q.to_value())
