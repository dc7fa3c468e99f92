"""Question uplink and answer downlink packets (CCSDS space packets, like the reports).

A question travels as one product of kind ``QUESTION`` on APID ``QA_APID_BASE + 0``; an answer as
kind ``ANSWER`` on ``QA_APID_BASE + 1``.  Payloads use the downlink codec, framing uses
:mod:`pipeline.wire.ccsds` (CRC-16 per packet, segmentation, sequence counts), so damaged
packets are detected and reported exactly as for reports.  A question id is 32 bits: its high
half rides in the secondary header's scene-tag field, its low half in the item field.  Two
different one-packet products under one id are both returned (the caller renumbers or refuses
the duplicate id); two different multi-packet products under one id are reported undecodable.
Standard library only, so the ground decoder can use it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..errors import PacketError
from . import codec
from .ccsds import DamagedRange, packetise, scan_stream

#: APIDs of questions (uplink) and answers (downlink), apart from the scene products' APIDs
QA_APID_BASE = 0x300


class QaKind(IntEnum):
    """Product kinds of questions and answers (apart from the scene products'
    :class:`~pipeline.wire.products.Kind`; scene decoding leaves these to :func:`decode_qa`)."""

    QUESTION = 0x20
    ANSWER = 0x21


#: the product kinds of questions and answers (scene decoding leaves these to decode_qa)
QA_KINDS = tuple(QaKind)
PAYLOAD_VERSION = 1
MAX_SEGMENT = 1024


def _encode(
    values: Sequence[Mapping[str, Any]], kind: QaKind, apid: int, first_seq: int
) -> tuple[bytes, int]:
    out = bytearray()
    seq = first_seq
    for v in values:
        payload = codec.pack({"v": PAYLOAD_VERSION, "body": dict(v)})
        qid = int(v.get("qid", 0)) & 0xFFFFFFFF
        # a 32-bit question id: high half in the scene-tag field, low half in the item field
        for pkt in packetise(
            payload,
            apid=apid,
            kind=kind,
            scene=qid >> 16,
            item=qid & 0xFFFF,
            first_seq=seq,
            max_segment=MAX_SEGMENT,
        ):
            out += pkt.pack()
            seq += 1
    return bytes(out), seq


def encode_questions(questions: Sequence[Mapping[str, Any]], first_seq: int = 0) -> bytes:
    """Question dicts (``Question.to_value()``) -> uplink packet bytes."""
    data, _ = _encode(questions, QaKind.QUESTION, QA_APID_BASE, first_seq)
    return data


def encode_answers(answers: Sequence[Mapping[str, Any]], first_seq: int = 0) -> bytes:
    """Answer dicts (``Answer.to_value()``) -> downlink packet bytes."""
    data, _ = _encode(answers, QaKind.ANSWER, QA_APID_BASE + 1, first_seq)
    return data


@dataclass(frozen=True)
class DecodedQA:
    """What a Q/A packet stream held: intact bodies and what was damaged or incomplete."""

    questions: tuple[dict[str, Any], ...]
    answers: tuple[dict[str, Any], ...]
    damaged: tuple[DamagedRange, ...]
    incomplete: tuple[int, ...]
    undecodable: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.incomplete or self.undecodable)


def decode_qa(data: bytes) -> DecodedQA:
    """Tolerant decode: damaged packets are skipped and reported, never raised."""
    packets, damaged = scan_stream(data)
    # (kind, 32-bit id) -> segment -> the distinct data seen for it, in order
    groups: dict[tuple[int, int], dict[int, list[bytes]]] = defaultdict(dict)
    # every segment count seen per item: packets of two different products under one id
    # (a question sent twice, in different lengths) must not be mixed into one payload
    nseg: dict[tuple[int, int], set[int]] = defaultdict(set)
    for sp in packets:
        p = sp.packet
        if p.kind not in (QaKind.QUESTION, QaKind.ANSWER):
            continue
        key = (p.kind, (p.scene << 16) | p.item)
        seen = groups[key].setdefault(p.segment, [])
        if p.data not in seen:
            seen.append(p.data)
        nseg[key].add(p.segments)
    questions: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    incomplete: list[int] = []
    undecodable: list[str] = []
    for key in sorted(groups):
        segs = groups[key]
        if len(nseg[key]) > 1:
            undecodable.append(f"item {key[1]}: inconsistent segment counts {sorted(nseg[key])}")
            continue
        (n,) = nseg[key]
        if len(segs) != n:  # segment indices are below n (checked when parsed)
            incomplete.append(key[1])
            continue
        if n == 1:
            # one-packet products sent twice under one id: each is a product of its own
            # (the caller sees the duplicate id and renumbers or refuses it)
            payloads = list(segs[0])
        elif any(len(v) > 1 for v in segs.values()):
            undecodable.append(f"item {key[1]}: two different products under one id")
            continue
        else:
            payloads = [b"".join(segs[i][0] for i in range(n))]
        for payload in payloads:
            try:
                value = codec.unpack(payload)
                if not isinstance(value, dict) or value.get("v") != PAYLOAD_VERSION:
                    raise PacketError(f"unknown payload version {value!r:.40}")
                body = value["body"]
                if not isinstance(body, dict):
                    raise PacketError("payload body is not a mapping")
            except (PacketError, KeyError) as exc:
                undecodable.append(f"item {key[1]}: {exc}")
                continue
            (questions if key[0] == QaKind.QUESTION else answers).append(body)
    return DecodedQA(
        tuple(questions), tuple(answers), tuple(damaged), tuple(incomplete), tuple(undecodable)
    )
