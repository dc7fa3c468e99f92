"""Priority order and downlink budget: which packets leave in this pass and what waits.

Order (strict: nothing of lower priority overtakes):

1. the manifest (scene name, the products of this pass, what waits onboard);
2. the report (the alert text and its priority);
3. the detections, in chunks of ``features_per_chunk`` features, highest score first;
4. the optional extras: image chips (in the same order as the detections), then the quicklook.

With a ``budget_bytes`` the pass takes the longest prefix of that order whose packets fit
(manifest included); everything after it waits, packed, in :attr:`DownlinkPlan.waiting`, and
:func:`plan_pass` sends it in a later pass with the sequence counts carried on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PacketError
from ..wire import ccsds
from ..wire.products import (
    CLASS_STATES,
    OUTCOMES,
    Extras,
    Kind,
    Manifest,
    Product,
    pack_chip,
    pack_detections_chunk,
    pack_quicklook,
    pack_report,
)

log = logging.getLogger(__name__)

DEFAULT_APID_BASE = 0x100
DEFAULT_MAX_PACKET_DATA = 1024
DEFAULT_FEATURES_PER_CHUNK = 64


@dataclass(frozen=True)
class SentProduct:
    """A product in this pass: where it went and what it cost in packet bytes."""

    kind: str
    item: int
    apid: int
    packets: int
    payload_bytes: int
    packet_bytes: int
    first_seq: int


@dataclass(frozen=True)
class DownlinkPlan:
    """The outcome of planning one pass for one scene."""

    scene: str
    #: the framed packets to send now, in priority order (write them to ``downlink.bin``)
    packets: bytes
    packet_count: int
    sent: tuple[SentProduct, ...]
    #: products that did not fit the budget, packed, in priority order
    waiting: tuple[Product, ...]
    budget_bytes: int | None
    apid_base: int
    max_packet_data: int
    #: sequence count to continue with per APID in the next pass
    next_seq: Mapping[int, int]
    features: int

    def bytes_by_kind(self) -> dict[str, int]:
        """Packet bytes sent now per kind (manifest, report, detections, chip, quicklook)."""
        out = {k.label: 0 for k in Kind}
        for s in self.sent:
            out[s.kind] += s.packet_bytes
        return out

    def waiting_payload_bytes(self) -> dict[str, int]:
        out = {k.label: 0 for k in Kind}
        for p in self.waiting:
            out[p.kind.label] += len(p.payload)
        return out

    @property
    def core_bytes(self) -> int:
        """Packet bytes of manifest + report + detections sent now (extras excluded)."""
        by = self.bytes_by_kind()
        return by["manifest"] + by["report"] + by["detections"]

    @property
    def extras_bytes(self) -> int:
        by = self.bytes_by_kind()
        return by["chip"] + by["quicklook"]

    @property
    def complete(self) -> bool:
        """True when nothing waits."""
        return not self.waiting

    def summary(self) -> dict[str, Any]:
        """A JSON-ready account of the pass (for run.json)."""
        return {
            "scene": self.scene,
            "bytes": len(self.packets),
            "packets": self.packet_count,
            "bytes_by_kind": self.bytes_by_kind(),
            "budget_bytes": self.budget_bytes,
            "waiting": [p.name for p in self.waiting],
            "waiting_payload_bytes": sum(len(p.payload) for p in self.waiting),
            "apid_base": self.apid_base,
        }


def _score(feature: Any) -> float:
    try:
        s = feature["properties"]["score"]
        return float(s) if isinstance(s, int | float) and not isinstance(s, bool) else 0.0
    except (KeyError, TypeError):
        return 0.0


def build_products(
    report: Mapping[str, Any] | None,
    geojson: Mapping[str, Any] | None,
    *,
    extras: Extras | None = None,
    features_per_chunk: int = DEFAULT_FEATURES_PER_CHUNK,
) -> list[Product]:
    """Pack report, detections and extras into products, in priority order (no manifest)."""
    if features_per_chunk < 1:
        raise PacketError(f"features_per_chunk must be >= 1, got {features_per_chunk}")
    products: list[Product] = []
    if report is not None:
        products.append(Product(Kind.REPORT, 0, pack_report(report), (1,)))
    if geojson is not None:
        if geojson.get("type") != "FeatureCollection":
            raise PacketError("geojson is not a FeatureCollection")
        feats = geojson.get("features", [])
        if not isinstance(feats, list | tuple):
            raise PacketError("geojson 'features' is not a list")
        order = sorted(range(len(feats)), key=lambda i: -_score(feats[i]))
        chunks = [
            order[i : i + features_per_chunk] for i in range(0, len(order), features_per_chunk)
        ]
        for n, idx in enumerate(chunks or [[]]):
            payload = pack_detections_chunk(geojson, idx, with_members=n == 0)
            products.append(Product(Kind.DETECTIONS, n, payload, (2, n), len(idx)))
    if extras is not None:
        rank_of = {}
        if geojson is not None:
            feats = geojson.get("features", [])
            for r, i in enumerate(sorted(range(len(feats)), key=lambda i: -_score(feats[i]))):
                rank_of[i] = r
        for n, chip in enumerate(extras.chips):
            rank = (3, rank_of.get(chip.index, len(rank_of) + n))
            products.append(Product(Kind.CHIP, n, pack_chip(chip), rank))
        if extras.quicklook is not None:
            products.append(Product(Kind.QUICKLOOK, 0, pack_quicklook(extras.quicklook), (4,)))
    products.sort(key=lambda p: p.rank)
    return products


def _packet_bytes(payload_len: int, max_data: int) -> int:
    n = max(1, -(-payload_len // max_data))
    return payload_len + n * ccsds.OVERHEAD


def plan_pass(
    scene: str,
    products: Sequence[Product],
    *,
    budget_bytes: int | None = None,
    apid_base: int = DEFAULT_APID_BASE,
    max_packet_data: int = DEFAULT_MAX_PACKET_DATA,
    seq_start: Mapping[int, int] | None = None,
    features: int = 0,
    status: Mapping[str, Any] | None = None,
) -> DownlinkPlan:
    """Packetise the longest priority-order prefix of ``products`` that fits the budget.

    ``products`` must already be in priority order (as :func:`build_products` returns them or
    :attr:`DownlinkPlan.waiting` holds them).  A manifest product leads the pass; ``status``
    (``outcome`` and ``classes`` as in compact.geojson's ``eotriage`` member) goes into it.
    With a budget too small even for the manifest nothing is sent.
    """
    outcome, classes = manifest_status(status)
    clouds = manifest_clouds(status)
    if not 0 <= apid_base or apid_base + len(Kind) - 1 >= ccsds.IDLE_APID:
        raise PacketError(f"apid_base {apid_base} leaves no room for {len(Kind)} APIDs")
    if not 1 <= max_packet_data <= ccsds.MAX_SEGMENT:
        raise PacketError(f"max_packet_data {max_packet_data} outside 1..{ccsds.MAX_SEGMENT}")
    if budget_bytes is not None and budget_bytes < 0:
        raise PacketError(f"budget_bytes must be >= 0, got {budget_bytes}")
    if len(products) > 0xFFFF:
        raise PacketError(f"{len(products)} products exceed the 65535 a pass can name")

    def segments(p: Product) -> int:
        return max(1, -(-len(p.payload) // max_packet_data))

    def manifest_for(k: int) -> Manifest:
        return Manifest(
            scene=scene,
            sent=tuple((int(p.kind), p.item, segments(p)) for p in products[:k]),
            waiting=tuple((int(p.kind), p.item, len(p.payload)) for p in products[k:]),
            features=features,
            outcome=outcome,
            classes=classes,
            clouds=clouds,
            features_waiting=sum(p.features for p in products[k:] if p.kind == Kind.DETECTIONS),
        )

    costs = [_packet_bytes(len(p.payload), max_packet_data) for p in products]
    take = len(products)
    if budget_bytes is not None:
        take = -1
        running = 0
        for k in range(len(products) + 1):
            man = len(manifest_for(k).pack())
            if running + _packet_bytes(man, max_packet_data) > budget_bytes:
                break
            take = k
            if k < len(products):
                running += costs[k]
    seq = dict(seq_start or {})
    tag = ccsds.scene_tag(scene)
    out = bytearray()
    sent: list[SentProduct] = []
    count = 0
    if take < 0:
        log.warning(
            "%s: downlink budget of %s bytes is too small for the manifest; nothing sent",
            scene,
            budget_bytes,
        )
        waiting = tuple(products)
    else:
        # one manifest per pass: its item is the pass's first manifest sequence count, so the
        # manifests of several passes in one stream stay apart
        pass_id = seq.get(apid_base + int(Kind.MANIFEST), 0) % ccsds.SEQ_MODULO
        manifest = Product(Kind.MANIFEST, pass_id, manifest_for(take).pack(), (0,))
        for p in [manifest, *products[:take]]:
            apid = apid_base + int(p.kind)
            first = seq.get(apid, 0) % ccsds.SEQ_MODULO
            pkts = ccsds.packetise(
                p.payload,
                apid=apid,
                kind=int(p.kind),
                scene=tag,
                item=p.item,
                first_seq=first,
                max_segment=max_packet_data,
            )
            raw = b"".join(pk.pack() for pk in pkts)
            out += raw
            count += len(pkts)
            seq[apid] = (first + len(pkts)) % ccsds.SEQ_MODULO
            sent.append(
                SentProduct(p.kind.label, p.item, apid, len(pkts), len(p.payload), len(raw), first)
            )
        waiting = tuple(products[take:])
        if waiting:
            log.info(
                "%s: %d product(s) wait for a later pass (budget %s bytes)",
                scene,
                len(waiting),
                budget_bytes,
            )
    return DownlinkPlan(
        scene=scene,
        packets=bytes(out),
        packet_count=count,
        sent=tuple(sent),
        waiting=waiting,
        budget_bytes=budget_bytes,
        apid_base=apid_base,
        max_packet_data=max_packet_data,
        next_seq=seq,
        features=features,
    )


def manifest_status(
    status: Mapping[str, Any] | None,
) -> tuple[str | None, tuple[tuple[str, str, int | None], ...]]:
    """``(outcome, ((class, status, count), ...))`` for the manifest from the ``eotriage``
    member of compact.geojson (``outcome``, ``classes``); ``(None, ())`` when absent."""
    if not isinstance(status, Mapping):
        return None, ()
    outcome = status.get("outcome")
    outcome = outcome if isinstance(outcome, str) and outcome in OUTCOMES else None
    classes = []
    per_class = status.get("classes")
    if isinstance(per_class, Mapping):
        for cls, entry in per_class.items():
            if not isinstance(entry, Mapping) or entry.get("status") not in CLASS_STATES:
                continue
            n = entry.get("count")
            count = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None
            classes.append((str(cls), str(entry["status"]), count))
    return outcome, tuple(classes)


def manifest_clouds(status: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """(cloud, shadow) fractions for the manifest from the ``eotriage`` member's ``clouds``
    (None when the cloud screen did not look)."""
    c = status.get("clouds") if isinstance(status, Mapping) else None
    if not isinstance(c, Mapping) or c.get("status") != "checked":
        return None
    try:
        cf, sf = float(c["cloud_fraction"]), float(c["shadow_fraction"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (0.0 <= cf <= 1.0 and 0.0 <= sf <= 1.0):
        return None
    return cf, sf


def scene_name(report: Mapping[str, Any] | None, geojson: Mapping[str, Any] | None) -> str:
    """The scene name from ``geojson["eotriage"]["scene"]`` or ``report["scene"]``."""
    for src in (geojson.get("eotriage") if geojson else None, report):
        if isinstance(src, Mapping) and isinstance(src.get("scene"), str) and src["scene"]:
            return str(src["scene"])
    return "scene"


def encode_scene(
    report: Mapping[str, Any] | None,
    geojson: Mapping[str, Any] | None,
    *,
    extras: Extras | None = None,
    budget_bytes: int | None = None,
    apid_base: int = DEFAULT_APID_BASE,
    max_packet_data: int = DEFAULT_MAX_PACKET_DATA,
    features_per_chunk: int = DEFAULT_FEATURES_PER_CHUNK,
    seq_start: Mapping[int, int] | None = None,
    scene: str | None = None,
    status: Mapping[str, Any] | None = None,
) -> DownlinkPlan:
    """Encode one scene's report, GeoJSON and optional extras into a downlink pass.

    ``report`` is the report.json dict (or None), ``geojson`` the compact FeatureCollection
    (or None).  ``extras`` (chips, quicklook) are off by default.  ``budget_bytes`` caps the
    packet bytes of this pass (None: send everything).  ``status`` (outcome, classes, clouds)
    goes into the manifest; by default the GeoJSON's ``eotriage`` member.  Raises
    :class:`PacketError` when the inputs cannot be encoded.
    """
    name = scene or scene_name(report, geojson)
    products = build_products(report, geojson, extras=extras, features_per_chunk=features_per_chunk)
    n_features = len(geojson.get("features", [])) if geojson is not None else 0
    return plan_pass(
        name,
        products,
        budget_bytes=budget_bytes,
        apid_base=apid_base,
        max_packet_data=max_packet_data,
        seq_start=seq_start,
        features=n_features,
        status=status if status is not None else (geojson or {}).get("eotriage"),
    )
