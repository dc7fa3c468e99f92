"""CCSDS space packets (CCSDS 133.0-B-2): primary header, secondary header, CRC-16, stream scan.

Standard library only: the ground decoder imports this module.

Layout of one packet (all big-endian)::

    primary header (6 bytes)
      version (3 bits) = 0 | type (1) = 0 telemetry | sec. header flag (1) = 1 | APID (11)
      sequence flags (2) | sequence count (14)
      packet data length (16) = bytes in the data field - 1
    data field
      secondary header (10 bytes): magic 0xE7 | product kind | scene tag (2)
                                   | item (2) | segment index (2) | segment count (2)
      user data (a segment of one product's payload)
      CRC-16-CCITT (2 bytes; poly 0x1021, init 0xFFFF) over everything before it

A product (report, a chunk of detections, a chip, the quicklook) larger than one packet is
split into segments; the sequence flags say first / continuation / last / unsegmented as
CCSDS prescribes, and the secondary header says which segment of how many, so the ground can
reassemble products even when packets arrive out of order.

:func:`scan_stream` reads a byte stream tolerantly: every packet whose CRC verifies is
returned; damaged packets, truncated packets and garbage between packets are returned as
:class:`DamagedRange` records, and scanning resynchronises on the next packet that verifies.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from enum import IntEnum

from ..errors import PacketError

PRIMARY_HEADER_LEN = 6
SECONDARY_HEADER_LEN = 10
CRC_LEN = 2
OVERHEAD = PRIMARY_HEADER_LEN + SECONDARY_HEADER_LEN + CRC_LEN
MAX_DATA_FIELD = 65536
MAX_SEGMENT = MAX_DATA_FIELD - SECONDARY_HEADER_LEN - CRC_LEN
MAX_APID = 0x7FF
IDLE_APID = 0x7FF
SEQ_MODULO = 1 << 14
MAGIC = 0xE7


class SeqFlags(IntEnum):
    """CCSDS sequence flags (2 bits): where a packet's segment sits in its product."""

    CONTINUATION = 0b00
    FIRST = 0b01
    LAST = 0b10
    UNSEGMENTED = 0b11


_PRIMARY = struct.Struct(">HHH")
_SECONDARY = struct.Struct(">BBHHHH")


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16-CCITT (poly 0x1021, init 0xFFFF, no reflection), as in CCSDS/ECSS packets."""
    return binascii.crc_hqx(data, crc)


def scene_tag(scene: str) -> int:
    """16-bit tag naming a scene in every packet's secondary header."""
    return binascii.crc32(scene.encode()) & 0xFFFF


@dataclass(frozen=True)
class SpacePacket:
    """One space packet: header fields and one segment of a product."""

    apid: int
    seq_count: int
    seq_flags: SeqFlags
    #: the product-kind byte of the secondary header: a :class:`~pipeline.wire.products.Kind`
    #: for scene products, a :class:`~pipeline.wire.qa.QaKind` for questions and answers.
    #: Framing treats it as opaque, and keeps values it does not know, so that a decoder can
    #: report a packet of an unknown kind instead of losing it.
    kind: int
    scene: int
    item: int
    segment: int
    segments: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.apid <= MAX_APID:
            raise PacketError(f"APID {self.apid} outside 0..{MAX_APID}")
        if not 0 <= self.seq_count < SEQ_MODULO:
            raise PacketError(f"sequence count {self.seq_count} outside 0..{SEQ_MODULO - 1}")
        if not 0 <= self.seq_flags <= 3:
            raise PacketError(f"sequence flags {self.seq_flags} outside 0..3")
        if not isinstance(self.seq_flags, SeqFlags):
            object.__setattr__(self, "seq_flags", SeqFlags(self.seq_flags))
        for name in ("kind",):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise PacketError(f"{name} {getattr(self, name)} outside 0..255")
        for name in ("scene", "item", "segment", "segments"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise PacketError(f"{name} {getattr(self, name)} outside 0..65535")
        if not 0 <= self.segment < max(self.segments, 1):
            raise PacketError(f"segment {self.segment} not below segment count {self.segments}")
        if len(self.data) > MAX_SEGMENT:
            raise PacketError(f"segment of {len(self.data)} bytes exceeds {MAX_SEGMENT}")

    @property
    def size(self) -> int:
        return OVERHEAD + len(self.data)

    def pack(self) -> bytes:
        """The packet's bytes, CRC included."""
        data_len = SECONDARY_HEADER_LEN + len(self.data) + CRC_LEN
        head = _PRIMARY.pack(
            (0 << 13) | (0 << 12) | (1 << 11) | self.apid,
            (self.seq_flags << 14) | self.seq_count,
            data_len - 1,
        )
        sec = _SECONDARY.pack(MAGIC, self.kind, self.scene, self.item, self.segment, self.segments)
        body = head + sec + self.data
        return body + struct.pack(">H", crc16_ccitt(body))

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> SpacePacket:
        """Parse exactly one packet; raises :class:`PacketError` naming the cause."""
        buf = bytes(buf)
        if len(buf) < OVERHEAD:
            raise PacketError(f"packet of {len(buf)} bytes is shorter than {OVERHEAD}")
        w0, w1, length = _PRIMARY.unpack_from(buf)
        total = PRIMARY_HEADER_LEN + length + 1
        if total != len(buf):
            raise PacketError(f"header says {total} bytes, got {len(buf)}")
        if w0 >> 13 != 0 or not (w0 >> 11) & 1:
            raise PacketError("not a version-0 packet with a secondary header")
        (crc,) = struct.unpack_from(">H", buf, total - CRC_LEN)
        if crc16_ccitt(buf[: total - CRC_LEN]) != crc:
            raise PacketError(f"CRC mismatch (APID {w0 & MAX_APID}, count {w1 & 0x3FFF})")
        magic, kind, scene, item, segment, segments = _SECONDARY.unpack_from(
            buf, PRIMARY_HEADER_LEN
        )
        if magic != MAGIC:
            raise PacketError(f"bad secondary-header magic 0x{magic:02x}")
        return cls(
            apid=w0 & MAX_APID,
            seq_count=w1 & 0x3FFF,
            seq_flags=SeqFlags(w1 >> 14),
            kind=kind,
            scene=scene,
            item=item,
            segment=segment,
            segments=segments,
            data=buf[PRIMARY_HEADER_LEN + SECONDARY_HEADER_LEN : total - CRC_LEN],
        )


def segment_flags(index: int, count: int) -> SeqFlags:
    if count == 1:
        return SeqFlags.UNSEGMENTED
    if index == 0:
        return SeqFlags.FIRST
    return SeqFlags.LAST if index == count - 1 else SeqFlags.CONTINUATION


def packetise(
    payload: bytes,
    *,
    apid: int,
    kind: int,
    scene: int,
    item: int,
    first_seq: int,
    max_segment: int,
) -> list[SpacePacket]:
    """Split one product's payload into packets with consecutive sequence counts.

    ``kind`` is the product's kind (:class:`~pipeline.wire.products.Kind` or
    :class:`~pipeline.wire.qa.QaKind`), written as the secondary header's kind byte."""
    if not 1 <= max_segment <= MAX_SEGMENT:
        raise PacketError(f"max segment size {max_segment} outside 1..{MAX_SEGMENT}")
    chunks = [payload[i : i + max_segment] for i in range(0, len(payload), max_segment)] or [b""]
    if len(chunks) > 0xFFFF:
        raise PacketError(f"product of {len(payload)} bytes needs more than 65535 packets")
    n = len(chunks)
    return [
        SpacePacket(
            apid=apid,
            seq_count=(first_seq + i) % SEQ_MODULO,
            seq_flags=segment_flags(i, n),
            kind=kind,
            scene=scene,
            item=item,
            segment=i,
            segments=n,
            data=chunk,
        )
        for i, chunk in enumerate(chunks)
    ]


@dataclass(frozen=True)
class DamagedRange:
    """Bytes ``start:end`` of a stream that did not form a valid packet.

    ``cause`` is ``"crc"`` (a header with a plausible length whose CRC failed; ``apid`` and
    ``seq_count`` are as read and may themselves be damaged), ``"truncated"`` (a header
    whose packet runs past the end of the stream) or ``"garbage"`` (no packet header).
    """

    start: int
    end: int
    cause: str
    apid: int | None = None
    seq_count: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"start": self.start, "end": self.end, "cause": self.cause}
        if self.apid is not None:
            out["apid"] = self.apid
            out["seq_count"] = self.seq_count
        return out


@dataclass(frozen=True)
class ScannedPacket:
    offset: int
    packet: SpacePacket


def _header_at(buf: bytes, pos: int) -> tuple[int, int, int] | None:
    """(apid, seq count, total length) when a plausible primary + secondary header starts here."""
    if pos + PRIMARY_HEADER_LEN + SECONDARY_HEADER_LEN > len(buf):
        return None
    w0, w1, length = _PRIMARY.unpack_from(buf, pos)
    if w0 >> 13 != 0 or not (w0 >> 11) & 1 or (w0 >> 12) & 1:
        return None
    if buf[pos + PRIMARY_HEADER_LEN] != MAGIC:
        return None
    total = PRIMARY_HEADER_LEN + length + 1
    if total < OVERHEAD:
        return None
    return w0 & MAX_APID, w1 & 0x3FFF, total


def _packet_at(buf: bytes, pos: int) -> SpacePacket | None:
    head = _header_at(buf, pos)
    if head is None or pos + head[2] > len(buf):
        return None
    try:
        return SpacePacket.unpack(buf[pos : pos + head[2]])
    except PacketError:
        return None


def scan_stream(data: bytes) -> tuple[list[ScannedPacket], list[DamagedRange]]:
    """Every packet in ``data`` whose CRC verifies, and the byte ranges that were damaged.

    Never raises on content: a damaged packet is recorded and skipped, and scanning resumes at
    the next offset where a whole packet verifies, so damage never spreads to intact packets.
    """
    buf = bytes(data)
    packets: list[ScannedPacket] = []
    damaged: list[DamagedRange] = []
    pos = 0
    n = len(buf)
    while pos < n:
        pkt = _packet_at(buf, pos)
        if pkt is not None:
            packets.append(ScannedPacket(pos, pkt))
            pos += pkt.size
            continue
        # damaged here: classify by what the header claims, then resynchronise
        head = _header_at(buf, pos)
        nxt = pos + 1
        while nxt < n and _packet_at(buf, nxt) is None:
            nxt += 1
        if head is not None and pos + head[2] > n:
            damaged.append(DamagedRange(pos, nxt, "truncated", head[0], head[1]))
        elif head is not None:
            damaged.append(DamagedRange(pos, nxt, "crc", head[0], head[1]))
        else:
            damaged.append(DamagedRange(pos, nxt, "garbage"))
        pos = nxt
    return packets, damaged
