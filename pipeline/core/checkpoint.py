"""Per-tile checkpoints of a scene run, so ``eotriage run --resume`` continues after a crash.

A checkpoint is an append-only file of records, one per line: ``<crc32 hex> <json>\\n``.  The
first record describes the run (scene, tile layout, detectors and their model hashes and
thresholds); each further record holds one finished tile: its components (geometry as WKB hex,
statistics), the invalid-sample counts and the pixels read.  Every record is flushed and
fsynced before the next tile starts, so a SIGKILL or power cut loses at most the tile in
progress; a torn last record (no newline or a bad checksum) is ignored when resuming.

Resuming checks that the header matches the run being resumed (same scene, layout, models and
thresholds); a checkpoint of another configuration is refused with a clear error instead of
mixing results.  Only tiles that finished are skipped; failed tiles are tried again.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from shapely import wkb

from .._fsio import fsync_dir
from ..errors import CheckpointError
from .vectorise import Component

log = logging.getLogger(__name__)

FORMAT = "eotriage-checkpoint/1"


@dataclass
class TileRecord:
    """One finished tile, as stored."""

    tile: str
    components: dict[str, list[Component]]
    invalid: dict[str, int]
    read_px: int
    repaired: dict[str, int] = field(default_factory=dict)
    #: sky classes counted over the tile core by the cloud screen (``pipeline.core.sky``)
    sky: dict[str, int] = field(default_factory=dict)
    #: the tile's sky classes over its read window (not stored in the checkpoint: a resumed
    #: tile shows as unknown on the quicklook's cloud map)
    sky_classes: Any = None
    #: detector name -> core pixels it looked at (usable samples of its own bands); absent in
    #: records of older checkpoints, which then count every core pixel as looked at
    looked: dict[str, int] = field(default_factory=dict)


@dataclass
class Restored:
    """What a checkpoint gives back to a resumed run."""

    tiles: dict[str, TileRecord] = field(default_factory=dict)
    torn_records: int = 0


def _line(obj: Mapping[str, Any]) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True)
    return f"{zlib.crc32(text.encode()):08x} {text}\n".encode()


def _parse(line: bytes) -> dict[str, Any] | None:
    """The record of a line, or None when it is torn or damaged."""
    if not line.endswith(b"\n"):
        return None
    try:
        crc, _, text = line.decode().rstrip("\n").partition(" ")
        if int(crc, 16) != zlib.crc32(text.encode()):
            return None
        rec = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def component_to_json(c: Component) -> dict[str, Any]:
    return {
        "cls": c.cls,
        "tile_id": c.tile_id,
        "wkb": wkb.dumps(c.geometry, hex=True),
        "stats": {k: float(v) for k, v in c.stats.items()},
        "rules": dict(c.rules),
        "at_edge": bool(c.at_edge),
        "key": c.key,
    }


def component_from_json(d: Mapping[str, Any]) -> Component:
    return Component(
        cls=str(d["cls"]),
        tile_id=str(d["tile_id"]),
        geometry=wkb.loads(d["wkb"], hex=True),
        stats={str(k): float(v) for k, v in d["stats"].items()},
        rules={str(k): str(v) for k, v in d["rules"].items()},
        at_edge=bool(d["at_edge"]),
        key=str(d.get("key", "")),
    )


def read_checkpoint(path: Path, header: Mapping[str, Any]) -> Restored:
    """Finished tiles recorded in ``path`` for a run described by ``header``.

    Raises :class:`CheckpointError` when the file belongs to another run.  A missing file gives
    an empty result (nothing to resume).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Restored()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from None
    lines = raw.splitlines(keepends=True)
    if not lines:
        return Restored()
    first = _parse(lines[0])
    if first is None or first.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an eotriage checkpoint (damaged header)")
    want = {**header, "format": FORMAT}
    diff = sorted(k for k in set(want) | set(first) if want.get(k) != first.get(k))
    if diff:
        raise CheckpointError(
            f"{path}: checkpoint is for another run ({', '.join(diff)} differ); "
            "run without --resume to start the scene again"
        )
    out = Restored()
    for line in lines[1:]:
        rec = _parse(line)
        if rec is None:
            out.torn_records += 1
            continue
        try:
            out.tiles[rec["tile"]] = TileRecord(
                tile=str(rec["tile"]),
                components={
                    name: [component_from_json(c) for c in comps]
                    for name, comps in rec["components"].items()
                },
                invalid={str(k): int(v) for k, v in rec["invalid"].items()},
                read_px=int(rec["read_px"]),
                repaired={str(k): int(v) for k, v in rec.get("repaired", {}).items()},
                sky={str(k): int(v) for k, v in rec.get("sky", {}).items()},
                looked={str(k): int(v) for k, v in rec.get("looked", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path}: malformed tile record ({exc!r})") from None
    if out.torn_records:
        log.warning("%s: %d torn or damaged record(s) ignored", path, out.torn_records)
    return out


class CheckpointWriter:
    """Appends tile records to a checkpoint; each record is on disk when :meth:`add` returns."""

    def __init__(self, path: Path, header: Mapping[str, Any], restored: Restored) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        # rewrite header + the restored good records (drops a torn tail), then append
        with tmp.open("wb") as fh:
            fh.write(_line({**header, "format": FORMAT}))
            for rec in restored.tiles.values():
                fh.write(_line(_tile_json(rec)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
        self._fh: BinaryIO | None = path.open("ab")

    def add(self, rec: TileRecord) -> None:
        if self._fh is None:
            raise ValueError("checkpoint closed")
        self._fh.write(_line(_tile_json(rec)))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _tile_json(rec: TileRecord) -> dict[str, Any]:
    return {
        "tile": rec.tile,
        "components": {n: [component_to_json(c) for c in cs] for n, cs in rec.components.items()},
        "invalid": rec.invalid,
        "read_px": rec.read_px,
        "repaired": rec.repaired,
        "sky": rec.sky,
        "looked": rec.looked,
    }
