"""Downlink products: what each kind carries and how its payload is packed (standard library).

A *product* is one self-contained unit of the downlink: the manifest, the report, one chunk of
detections, one image chip, the quicklook.  Each is packed with :mod:`.codec` and travels in
one or more space packets on its own APID (``apid_base + kind``).  The ground decoder unpacks
them with the same functions, so onboard and ground can never disagree on a layout.
"""

from __future__ import annotations

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
                index=int(v["i"]),
                bbox=_bbox(v["bbox"]),
                image=bytes(v["img"]),
                format=str(v["fmt"]),
                bands=tuple(str(b) for b in v["bands"]),
                size_px=(int(v["px"][0]), int(v["px"][1])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PacketError(f"chip product malformed ({exc!r})") from None


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
                image=bytes(v["img"]),
                format=str(v["fmt"]),
                bands=tuple(str(b) for b in v["bands"]),
                size_px=(int(v["px"][0]), int(v["px"][1])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PacketError(f"quicklook product malformed ({exc!r})") from None


def _bbox(v: Any) -> tuple[float, float, float, float]:
    w, s, e, n = (float(x) for x in v)
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
        idx = tuple(int(i) for i in v["idx"])
        if len(idx) != len(feats) or any(not 0 <= i < int(v["n"]) for i in idx):
            raise ValueError("feature indices do not match the features")
        members = v["members"]
        order = v["order"]
        return DetectionsChunk(
            total=int(v["n"]),
            indices=idx,
            features=tuple(feats),
            members=dict(members) if members is not None else None,
            order=tuple(str(k) for k in order) if order is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PacketError(f"detections product malformed ({exc!r})") from None


def pack_report(report: Mapping[str, Any]) -> bytes:
    return codec.pack({"v": PAYLOAD_VERSION, "report": dict(report)})


def unpack_report(data: bytes) -> dict[str, Any]:
    v = codec.unpack(data)
    if not isinstance(v, dict) or not isinstance(v.get("report"), dict):
        raise PacketError("report product malformed (no report object)")
    return dict(v["report"])


@dataclass(frozen=True)
class Manifest:
    """What one pass sends: the scene, the products with their segment counts, what waits."""

    scene: str
    sent: tuple[tuple[int, int, int], ...]  # (kind, item, segments)
    waiting: tuple[tuple[int, int, int], ...]  # (kind, item, payload bytes)
    features: int

    def pack(self) -> bytes:
        return codec.pack(
            {
                "v": PAYLOAD_VERSION,
                "scene": self.scene,
                "sent": [list(t) for t in self.sent],
                "waiting": [list(t) for t in self.waiting],
                "features": self.features,
            }
        )

    @classmethod
    def unpack(cls, data: bytes) -> Manifest:
        v = codec.unpack(data)
        try:
            return cls(
                scene=str(v["scene"]),
                sent=tuple((int(a), int(b), int(c)) for a, b, c in v["sent"]),
                waiting=tuple((int(a), int(b), int(c)) for a, b, c in v["waiting"]),
                features=int(v["features"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PacketError(f"manifest product malformed ({exc!r})") from None


def pack_chip(chip: Chip) -> bytes:
    return codec.pack(chip.to_value())


def pack_quicklook(q: Quicklook) -> bytes:
    return codec.pack(q.to_value())
