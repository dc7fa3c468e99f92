"""Alert packets for streaming triage: one detection -> CCSDS packets, sequence counts kept.

The payload of an alert is the same compact GeoJSON feature that a scene's ``compact.geojson``
holds, so the ground decoder reads alerts and scene products alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.results import Detection


class AlertEncoder:
    """Callable ``(detection, strip_name) -> packet bytes`` for the streaming
    :class:`~pipeline.core.stream.Triage`.

    Keeps the CCSDS sequence count of every APID running across alerts, as a real packet
    source must.
    """

    def __init__(self) -> None:
        self._seq: dict[int, int] = {}
        self.packets = 0
        self.packets_sent = 0  # alerts encoded so far
        self.bytes = 0

    def __call__(self, detection: Detection, strip: str) -> bytes:
        from ..report.compact import compact_collection
        from .plan import encode_scene

        # each alert is its own product unit on the ground: "<strip>#alert<n>"
        name = f"{strip}#alert{self.packets_sent:04d}"
        geojson: Mapping[str, Any] = compact_collection(name, (detection,), max_features=1)
        plan = encode_scene(None, geojson, seq_start=dict(self._seq), scene=name)
        self.packets_sent += 1
        for apid, nxt in plan.next_seq.items():
            self._seq[apid] = nxt
        self.packets += plan.packet_count
        self.bytes += len(plan.packets)
        return plan.packets
