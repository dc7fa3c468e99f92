"""Packet stream -> GeoJSON, report, chips and quicklook, with an account of the damage.

Standard library only (plus the shared pure codec in :mod:`pipeline.downlink`).  Nothing in a
stream makes :func:`decode_stream` raise: damaged packets, truncated packets, garbage, lost and
reordered packets are all reported in :class:`Damage`, and everything that arrived intact is
reconstructed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.errors import PacketError
from pipeline.wire.ccsds import SEQ_MODULO, DamagedRange, ScannedPacket, scan_stream
from pipeline.wire.products import (
    CLASS_STATES,
    OUTCOMES,
    Chip,
    DetectionsChunk,
    Kind,
    Manifest,
    Quicklook,
    unpack_detections_chunk,
    unpack_report,
)
from pipeline.wire.qa import QA_KINDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Damage:
    """What was lost or damaged in a stream (empty everywhere when the stream was perfect).

    ``crc_failures``/``truncated``/``garbage`` are byte ranges of the whole stream (with
    several scenes in one stream each scene lists them all); ``lost_seq`` maps an APID to the
    sequence counts missing between the first and last count received; ``incomplete`` names
    products of which some segments arrived, ``missing_products`` products the manifest
    announced of which nothing arrived, ``undecodable`` products that arrived whole but did not
    unpack; ``duplicates`` counts packets received twice (ignored).
    """

    crc_failures: tuple[DamagedRange, ...] = ()
    truncated: tuple[DamagedRange, ...] = ()
    garbage: tuple[DamagedRange, ...] = ()
    lost_seq: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    incomplete: tuple[str, ...] = ()
    missing_products: tuple[str, ...] = ()
    undecodable: tuple[str, ...] = ()
    missing_features: tuple[int, ...] = ()
    duplicates: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.crc_failures
            or self.truncated
            or self.garbage
            or any(self.lost_seq.values())
            or self.incomplete
            or self.missing_products
            or self.undecodable
            or self.missing_features
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "crc_failures": [r.to_dict() for r in self.crc_failures],
            "truncated": [r.to_dict() for r in self.truncated],
            "garbage": [r.to_dict() for r in self.garbage],
            "lost_seq": {str(a): list(v) for a, v in self.lost_seq.items() if v},
            "incomplete": list(self.incomplete),
            "missing_products": list(self.missing_products),
            "undecodable": list(self.undecodable),
            "missing_features": list(self.missing_features),
            "duplicates": self.duplicates,
        }

    def lines(self) -> list[str]:
        """One human-readable line per kind of damage."""
        out: list[str] = []
        if self.crc_failures:
            out.append(
                f"{len(self.crc_failures)} packet(s) failed CRC at bytes "
                + ", ".join(f"{r.start}-{r.end}" for r in self.crc_failures[:8])
                + (" ..." if len(self.crc_failures) > 8 else "")
            )
        if self.truncated:
            out.append(f"{len(self.truncated)} truncated packet(s) at the end of the stream")
        if self.garbage:
            nbytes = sum(r.end - r.start for r in self.garbage)
            out.append(f"{nbytes} byte(s) of garbage in {len(self.garbage)} range(s)")
        for apid, lost in sorted(self.lost_seq.items()):
            if lost:
                shown = ", ".join(map(str, lost[:10])) + (" ..." if len(lost) > 10 else "")
                out.append(f"APID {apid}: {len(lost)} packet(s) lost (sequence counts {shown})")
        if self.incomplete:
            out.append("incomplete: " + "; ".join(self.incomplete))
        if self.missing_products:
            out.append("not received: " + ", ".join(self.missing_products))
        if self.undecodable:
            out.append("undecodable: " + "; ".join(self.undecodable))
        if self.missing_features:
            out.append(f"{len(self.missing_features)} detection(s) missing")
        return out


@dataclass(frozen=True)
class Decoded:
    """Everything reconstructed for one scene from a packet stream."""

    scene: str | None
    scene_tag: int
    #: the FeatureCollection as sent onboard (only the features that arrived), or None
    geojson: dict[str, Any] | None
    report: dict[str, Any] | None
    chips: tuple[Chip, ...]
    quicklook: Quicklook | None
    manifest: Manifest | None
    damage: Damage
    packets: int
    #: products the manifest says are still waiting onboard for a later pass
    waiting: tuple[str, ...] = ()
    #: indices of features held back onboard for a later pass (not lost, not damage)
    waiting_features: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.damage.ok

    def _sources(self) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        member = self.geojson.get("eotriage") if isinstance(self.geojson, dict) else None
        if isinstance(member, dict):
            out.append(member)
        if isinstance(self.report, dict):
            out.append(self.report)
        return out

    @property
    def outcome(self) -> str | None:
        """What the satellite says its scan of the scene was: ``complete``, ``partial`` or
        ``failed`` (``None``: not stated, an older stream, or the manifest and report lost)."""
        if self.manifest is not None and self.manifest.outcome is not None:
            return self.manifest.outcome
        for src in self._sources():
            v = src.get("outcome")
            if isinstance(v, str) and v in OUTCOMES:
                return v
        return None

    @property
    def outcome_reasons(self) -> tuple[str, ...]:
        for src in self._sources():
            v = src.get("outcome_reasons")
            if isinstance(v, list):
                return tuple(str(x)[:300] for x in v if isinstance(x, str))[:20]
        return ()

    @property
    def clouds(self) -> tuple[float, float] | None:
        """(cloud, shadow) fractions the cloud screen saw (manifest first, then compact.geojson);
        ``None`` when it did not look or nothing says."""
        if self.manifest is not None and self.manifest.clouds is not None:
            return self.manifest.clouds
        for src in self._sources():
            c = src.get("clouds")
            if isinstance(c, dict) and c.get("status") == "checked":
                try:
                    return float(c["cloud_fraction"]), float(c["shadow_fraction"])
                except (KeyError, TypeError, ValueError):
                    return None
        return None

    def class_status(self) -> dict[str, dict[str, Any]]:
        """class -> ``{"status", "count", "reason"}`` as the satellite stated it (manifest first,
        then compact.geojson, then the report); {} when nothing states it."""
        out: dict[str, dict[str, Any]] = {}
        if self.manifest is not None:
            for cls, status, count in self.manifest.classes:
                out[cls] = {"status": status, "count": count, "reason": None}
        for src in self._sources():
            classes = src.get("classes")
            if not isinstance(classes, dict):
                continue
            for cls, e in classes.items():
                if not isinstance(cls, str) or not isinstance(e, dict):
                    continue
                if e.get("status") not in CLASS_STATES:
                    continue
                slot = out.setdefault(
                    cls[:40], {"status": e["status"], "count": None, "reason": None}
                )
                n = e.get("count")
                if slot["count"] is None and isinstance(n, int) and not isinstance(n, bool):
                    slot["count"] = n
                if slot["reason"] is None and isinstance(e.get("reason"), str):
                    slot["reason"] = e["reason"][:200]
                cov = e.get("coverage")
                if "coverage" not in slot and isinstance(cov, int | float):
                    slot["coverage"] = float(cov)
        return out

    def counts(self) -> dict[str, int]:
        """Features per ``class`` property."""
        out: dict[str, int] = {}
        for f in (self.geojson or {}).get("features", []):
            props = f.get("properties") if isinstance(f, dict) else None
            cls = props.get("class", "?") if isinstance(props, dict) else "?"
            out[str(cls)] = out.get(str(cls), 0) + 1
        return out

    def summary_lines(self) -> list[str]:
        """A short text summary: scene, features per class, report summary, damage."""
        lines = [f"scene {self.scene or '(unknown: manifest lost)'}: {self.packets} packet(s)"]
        if self.geojson is None:
            lines.append("detections: none received")
        else:
            counts = ", ".join(f"{n} {c}" for c, n in sorted(self.counts().items()))
            lines.append(f"detections: {counts or 'no features'}")
        outcome = self.outcome
        if outcome is not None:
            why = self.outcome_reasons
            lines.append(f"outcome: {outcome}" + (f" ({'; '.join(why[:3])})" if why else ""))
        clouds = self.clouds
        if clouds is not None:
            lines.append(
                f"clouds: {100 * clouds[0]:.1f} % cloud, {100 * clouds[1]:.1f} % cloud shadow"
            )
        for cls, st in self.class_status().items():
            if st["status"] == "found":
                text = f"found {st['count']}" if st["count"] is not None else "found"
            elif st["status"] == "none found":
                text = "looked and found none"
            else:
                text = "not checked" + (f" ({st['reason']})" if st["reason"] else "")
            cov = st.get("coverage")
            if st["status"] != "not checked" and isinstance(cov, float) and 0.0 < cov < 1.0:
                text += f" ({100 * cov:.1f} % of the scene checked)"
            lines.append(f"  {cls}: {text}")
        if self.report is None:
            lines.append("report: not received")
        else:
            prio = self.report.get("priority", "?")
            lines.append(f"report [{prio}]: {self.report.get('summary', '')}")
        if self.chips or self.quicklook:
            lines.append(
                f"extras: {len(self.chips)} chip(s)"
                + (", quicklook" if self.quicklook is not None else "")
            )
        if self.waiting:
            held = (
                f" ({len(self.waiting_features)} detection(s) waiting onboard)"
                if self.waiting_features
                else ""
            )
            lines.append(f"still onboard: {', '.join(self.waiting)}{held}")
        dmg = self.damage.lines()
        lines.append("damage: none" if not dmg else "damage: " + dmg[0])
        lines.extend("        " + d for d in dmg[1:])
        return lines


def _lost_counts(counts: Sequence[int]) -> tuple[int, ...]:
    """Sequence counts missing between the received ones, modulo 2^14.

    The largest circular gap is taken as the stretch outside this stream (before the first
    and after the last packet); every other gap is loss.
    """
    uniq = sorted(set(counts))
    if len(uniq) < 2:
        return ()
    gaps = [
        ((uniq[(i + 1) % len(uniq)] - c) % SEQ_MODULO, c) for i, c in enumerate(uniq)
    ]  # (distance to next, count)
    widest = max(range(len(gaps)), key=lambda i: gaps[i][0])
    lost: list[int] = []
    for i, (dist, c) in enumerate(gaps):
        if i != widest and dist > 1:
            lost.extend((c + k) % SEQ_MODULO for k in range(1, dist))
    return tuple(lost)


def _name(kind: int, item: int) -> str:
    try:
        return f"{Kind(kind).label}[{item}]"
    except ValueError:
        return f"kind{kind}[{item}]"


def _decode_scene(tag: int, pkts: list[ScannedPacket], ranges: Sequence[DamagedRange]) -> Decoded:
    seen: set[tuple[int, int, int, int]] = set()
    duplicates = 0
    by_apid: dict[int, list[int]] = defaultdict(list)
    groups: dict[tuple[int, int], dict[int, bytes]] = defaultdict(dict)
    nseg: dict[tuple[int, int], set[int]] = defaultdict(set)
    for sp in pkts:
        p = sp.packet
        ident = (p.apid, p.seq_count, p.segment, p.item)
        if ident in seen:
            duplicates += 1
            continue
        seen.add(ident)
        by_apid[p.apid].append(p.seq_count)
        groups[(p.kind, p.item)][p.segment] = p.data
        nseg[(p.kind, p.item)].add(p.segments)
    incomplete: list[str] = []
    undecodable: list[str] = []
    payloads: dict[tuple[int, int], bytes] = {}
    for key, segs in groups.items():
        counts = nseg[key]
        n = max(counts)
        if len(counts) > 1:
            undecodable.append(f"{_name(*key)}: inconsistent segment counts {sorted(counts)}")
            continue
        if len(segs) < n:
            incomplete.append(f"{_name(*key)}: {len(segs)} of {n} segments")
            continue
        payloads[key] = b"".join(segs[i] for i in range(n))

    manifests: list[tuple[int, Manifest]] = []  # (first stream offset, manifest)
    first_offset: dict[tuple[int, int], int] = {}
    for sp in pkts:
        first_offset.setdefault((sp.packet.kind, sp.packet.item), sp.offset)
    report: dict[str, Any] | None = None
    chunks: list[DetectionsChunk] = []
    chips: list[Chip] = []
    quicklook: Quicklook | None = None
    for (kind, item), data in sorted(payloads.items()):
        try:
            if kind == Kind.MANIFEST:
                manifests.append((first_offset[(kind, item)], Manifest.unpack(data)))
            elif kind == Kind.REPORT:
                report = unpack_report(data)
            elif kind == Kind.DETECTIONS:
                chunks.append(unpack_detections_chunk(data))
            elif kind == Kind.CHIP:
                chips.append(Chip.from_value(_unpack_value(data)))
            elif kind == Kind.QUICKLOOK:
                quicklook = Quicklook.from_value(_unpack_value(data))
            else:
                undecodable.append(f"{_name(kind, item)}: unknown product kind")
        except PacketError as exc:
            undecodable.append(f"{_name(kind, item)}: {exc}")

    missing_products: list[str] = []
    waiting: tuple[str, ...] = ()
    # several passes of one scene may share a stream: each has its own manifest
    manifests.sort(key=lambda t: t[0])
    manifest = manifests[-1][1] if manifests else None
    for _off, m in manifests:
        for kind, item, _segs in m.sent:
            if (kind, item) not in groups and _name(kind, item) not in missing_products:
                missing_products.append(_name(kind, item))
    if manifest is not None:
        waiting = tuple(_name(k, i) for k, i, _ in manifest.waiting if (k, i) not in groups)
    elif not any(k == Kind.MANIFEST for k, _ in groups):
        missing_products.append("manifest")

    geojson, missing_features = _assemble(chunks, manifest)
    waiting_features = _held_back(missing_features, manifest, payloads)
    if waiting_features:
        held = set(waiting_features)
        missing_features = tuple(i for i in missing_features if i not in held)
    chips.sort(key=lambda c: c.index)
    damage = Damage(
        crc_failures=tuple(r for r in ranges if r.cause == "crc"),
        truncated=tuple(r for r in ranges if r.cause == "truncated"),
        garbage=tuple(r for r in ranges if r.cause == "garbage"),
        lost_seq={a: _lost_counts(c) for a, c in sorted(by_apid.items())},
        incomplete=tuple(incomplete),
        missing_products=tuple(missing_products),
        undecodable=tuple(undecodable),
        missing_features=missing_features,
        duplicates=duplicates,
    )
    return Decoded(
        scene=manifest.scene if manifest else None,
        scene_tag=tag,
        geojson=geojson,
        report=report,
        chips=tuple(chips),
        quicklook=quicklook,
        manifest=manifest,
        damage=damage,
        packets=len(pkts) - duplicates,
        waiting=waiting,
        waiting_features=waiting_features,
    )


def _held_back(
    missing: tuple[int, ...],
    manifest: Manifest | None,
    arrived: Mapping[tuple[int, int], Any],
) -> tuple[int, ...]:
    """The missing features that wait onboard for a later pass (a ``--downlink-budget`` cut),
    as opposed to features lost on the way.

    Detections go down highest score first, so the chunks that wait hold the last features.
    The manifest says how many wait (``features_waiting``); an older manifest only names the
    waiting chunks, and then the missing features count as waiting when every chunk it says
    was sent arrived."""
    if not missing or manifest is None:
        return ()
    waiting_chunks = [i for k, i, _ in manifest.waiting if k == Kind.DETECTIONS]
    if not waiting_chunks:
        return ()
    if manifest.features_waiting is not None:
        n = min(manifest.features_waiting, len(missing))
        return missing[len(missing) - n :] if n else ()
    sent = [(k, i) for k, i, _ in manifest.sent if k == Kind.DETECTIONS]
    return missing if all(key in arrived for key in sent) else ()


def _unpack_value(data: bytes) -> Any:
    from pipeline.wire import codec

    return codec.unpack(data)


def _assemble(
    chunks: Sequence[DetectionsChunk], manifest: Manifest | None
) -> tuple[dict[str, Any] | None, tuple[int, ...]]:
    """The FeatureCollection from its chunks, features in their onboard order."""
    if not chunks:
        total = manifest.features if manifest is not None else 0
        return None, tuple(range(total))
    total = max(c.total for c in chunks)
    feats: dict[int, Any] = {}
    for c in chunks:
        for i, f in zip(c.indices, c.features, strict=True):
            feats.setdefault(i, f)
    head = next((c for c in chunks if c.members is not None), None)
    features = [feats[i] for i in sorted(feats)]
    if head is None or head.order is None or head.members is None:
        out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    else:
        out = {}
        for k in head.order:
            out[k] = features if k == "features" else head.members.get(k)
        out.setdefault("features", features)
    missing = tuple(i for i in range(total) if i not in feats)
    return out, missing


def decode_scenes(data: bytes) -> tuple[Decoded, ...]:
    """Decode every scene in a stream (in order of first appearance); never raises on content."""
    pkts, ranges = scan_stream(data)
    by_scene: dict[int, list[ScannedPacket]] = {}
    qa = 0
    for sp in pkts:
        if sp.packet.kind in QA_KINDS:  # questions/answers: see ground_decoder.qa
            qa += 1
            continue
        by_scene.setdefault(sp.packet.scene, []).append(sp)
    if not by_scene:
        return () if qa else (_decode_scene(0, [], ranges),)
    return tuple(_decode_scene(tag, group, ranges) for tag, group in by_scene.items())


def decode_stream(data: bytes) -> Decoded:
    """Decode a stream holding one scene's packets (e.g. one ``downlink.bin``).

    With packets of several scenes, the first scene is returned and the others are counted
    as damage (use :func:`decode_scenes` for multi-scene streams).
    """
    scenes = decode_scenes(data) or (_decode_scene(0, [], scan_stream(data)[1]),)
    first = scenes[0]
    if len(scenes) > 1:
        others = ", ".join(s.scene or f"tag {s.scene_tag}" for s in scenes[1:])
        log.warning("stream holds %d scenes; decode_stream returns the first", len(scenes))
        dmg = first.damage
        note = f"packets of other scenes: {others}"
        first = replace(first, damage=replace(dmg, undecodable=(*dmg.undecodable, note)))
    return first
