"""A crash-safe on-disk outbox for downlink packets, with an append-only journal.

Layout of an outbox folder::

    DIR/journal.log     append-only records, one per line: "<crc32 hex> <json>\\n"
    DIR/data/<id>.pkt   one file per queued packet (written atomically)
    DIR/tmp/            staging area for data files being written
    DIR/lock            flock'ed while an Outbox is open (one writer at a time)

Guarantees (power loss or SIGKILL at any instant):

* a packet whose :meth:`Outbox.put` returned is on disk, complete, and listed exactly once: its
  data file is written to ``tmp/``, fsynced, renamed into ``data/`` and the folder fsynced, and
  only then is its ``put`` record appended to the journal and fsynced; ``put`` returns after that.
* ``put`` is idempotent per name: re-putting a name that is already in the journal (queued, sent
  or acknowledged) returns the existing id and writes nothing, so a process that restarts and
  redoes its work never duplicates a packet.
* a torn last journal record (no newline, bad checksum) is detected at open, logged and cut off;
  data files with no ``put`` record (a put that never returned) and staging leftovers are
  deleted, so no partial file is ever visible through the API.

State of a packet: ``queued`` -> ``sent`` (possibly several times: retransmission) -> ``acked``.
Acknowledged packets have their data file deleted; the name stays in the journal so that a late
re-put is still recognised.  :meth:`Outbox.compact` rewrites the journal atomically without the
history of acknowledged packets' intermediate states.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._fsio import atomic_write, fsync_dir, sha256_bytes
from ..errors import OutboxError

log = logging.getLogger(__name__)

JOURNAL = "journal.log"
State = Literal["queued", "sent", "acked"]


@dataclass(frozen=True)
class OutboxItem:
    """One packet known to the outbox."""

    id: str
    name: str
    size: int
    sha256: str
    state: State
    sent_count: int


@dataclass(frozen=True)
class Recovery:
    """What :meth:`Outbox.recover` found and repaired when the outbox was opened."""

    records: int
    torn_tail_bytes: int
    bad_records: int
    orphans_removed: int
    temp_removed: int
    #: ids of packet files whose journal record was lost (mid-journal damage), moved to
    #: ``quarantine/`` instead of being deleted
    quarantined: tuple[str, ...]
    missing: tuple[str, ...]
    corrupt: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (
            self.torn_tail_bytes
            or self.bad_records
            or self.orphans_removed
            or self.temp_removed
            or self.quarantined
            or self.missing
            or self.corrupt
        )


def encode_record(record: dict[str, Any]) -> bytes:
    """One journal line: CRC-32 (hex) of the compact JSON, a space, the JSON, a newline."""
    body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_record(line: bytes) -> dict[str, Any] | None:
    """The record in one journal line (without its newline), or None when it fails its CRC."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        rec = json.loads(body)
    except ValueError:
        return None
    if not isinstance(rec, dict) or rec.get("op") not in ("put", "sent", "ack", "done"):
        return None
    return rec


class Outbox:
    """A durable packet queue in folder ``directory`` (created if needed).

    Use as a context manager, or call :meth:`close`.  Opening runs :meth:`recover`; its report
    is in :attr:`recovery`.  One process at a time: a second open raises :class:`OutboxError`.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.data_dir = self.dir / "data"
        self.tmp_dir = self.dir / "tmp"
        self.journal_path = self.dir / JOURNAL
        try:
            for d in (self.dir, self.data_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutboxError(f"{self.dir}: cannot open outbox: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise OutboxError(f"{self.dir}: outbox is open in another process") from None
        self._items: dict[str, OutboxItem] = {}
        self._by_name: dict[str, str] = {}
        self._next_seq = 1
        self._journal_fd = -1
        try:
            self.recovery = self.recover()
        except BaseException:
            self.close()
            raise

    # --- context manager -------------------------------------------------------------------
    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- recovery --------------------------------------------------------------------------
    def _read_journal(self) -> tuple[list[dict[str, Any]], int, int]:
        """Good records, the offset after the last good record, the number of bad records."""
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return [], 0, 0
        except OSError as exc:
            raise OutboxError(f"{self.journal_path}: unreadable: {exc.strerror or exc}") from None
        records: list[dict[str, Any]] = []
        good_end = 0
        bad_at: list[int] = []
        pos = 0
        while pos < len(raw):
            nl = raw.find(b"\n", pos)
            if nl < 0:  # no newline: a torn last write
                break
            rec = decode_record(raw[pos:nl])
            if rec is None:
                bad_at.append(pos)
            else:
                records.append(rec)
                good_end = nl + 1
            pos = nl + 1
        # bad records after the last good one belong to the torn tail; before it they are damage
        bad = 0
        for at in bad_at:
            if at < good_end:
                bad += 1
                log.warning("%s: bad journal record at byte %d skipped", self.journal_path, at)
        return records, good_end, bad

    def _apply(self, rec: dict[str, Any]) -> None:
        op = rec["op"]
        item_id = str(rec.get("id", ""))
        if op in ("put", "done"):
            state: State = "acked"
            if op == "put":
                given = rec.get("state", "queued")
                if given not in ("queued", "sent"):
                    raise ValueError(f"bad state {given!r}")
                state = "sent" if given == "sent" else "queued"
            item = OutboxItem(
                id=item_id,
                name=str(rec["name"]),
                size=int(rec.get("size", 0)),
                sha256=str(rec.get("sha256", "")),
                state=state,
                sent_count=int(rec.get("sent", 0)),
            )
            self._items[item_id] = item
            self._by_name[item.name] = item_id
            self._next_seq = max(self._next_seq, int(item_id) + 1)
            return
        old = self._items.get(item_id)
        if old is None:
            log.warning("%s: %s record for unknown id %s ignored", self.journal_path, op, item_id)
            return
        if op == "sent" and old.state != "acked":
            self._items[item_id] = _replace(old, state="sent", sent_count=old.sent_count + 1)
        elif op == "ack":
            self._items[item_id] = _replace(old, state="acked")

    def recover(self) -> Recovery:
        """Replay the journal, cut a torn tail, delete orphans and leftovers, check packets."""
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1
        self._items.clear()
        self._by_name.clear()
        self._next_seq = 1
        records, good_end, bad = self._read_journal()
        for rec in records:
            try:
                self._apply(rec)
            except (KeyError, TypeError, ValueError):
                bad += 1
                log.warning("%s: malformed journal record %r skipped", self.journal_path, rec)
        size = self.journal_path.stat().st_size if self.journal_path.exists() else 0
        torn = size - good_end
        if torn:
            log.warning(
                "%s: torn journal tail of %d byte(s) cut off (an interrupted write)",
                self.journal_path,
                torn,
            )
            with self.journal_path.open("r+b") as fh:
                fh.truncate(good_end)
                os.fsync(fh.fileno())
        temp_removed = 0
        for p in self.tmp_dir.iterdir():
            p.unlink()
            temp_removed += 1
        orphans = 0
        quarantined: list[str] = []
        for p in self.data_dir.iterdir():
            item = self._items.get(p.stem)
            if item is not None and p.suffix == ".pkt":
                if item.state == "acked":  # ack journalled, file not yet deleted
                    p.unlink()
                continue
            if p.suffix == ".pkt" and p.stem.isdigit() and int(p.stem) < self._next_seq:
                # a later put is journalled, so this one returned too: its record was lost to
                # journal damage.  Keep the bytes for the ground, out of the queue.
                qdir = self.dir / "quarantine"
                qdir.mkdir(exist_ok=True)
                os.replace(p, qdir / p.name)
                quarantined.append(p.stem)
                log.error("%s: packet file %s has no journal record; quarantined", self.dir, p)
                continue
            p.unlink()  # the file of a put that never returned (or a stray file)
            orphans += 1
        missing: list[str] = []
        corrupt: list[str] = []
        for item in self._items.values():
            if item.state == "acked":
                continue
            path = self._data_path(item.id)
            if not path.exists():
                missing.append(item.id)
            elif sha256_bytes(path.read_bytes()) != item.sha256:
                corrupt.append(item.id)
        for item_id in missing + corrupt:
            log.error(
                "%s: packet %s (%s) is missing or corrupt on disk",
                self.dir,
                item_id,
                self._items[item_id].name,
            )
        if quarantined:
            fsync_dir(self.dir / "quarantine")
        if temp_removed or orphans or quarantined:
            fsync_dir(self.data_dir)
            fsync_dir(self.tmp_dir)
        self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_dir(self.dir)
        return Recovery(
            records=len(records),
            torn_tail_bytes=torn,
            bad_records=bad,
            orphans_removed=orphans,
            temp_removed=temp_removed,
            quarantined=tuple(quarantined),
            missing=tuple(missing),
            corrupt=tuple(corrupt),
        )

    # --- journal ---------------------------------------------------------------------------
    def _append(self, record: dict[str, Any]) -> None:
        line = encode_record(record)
        try:
            n = os.write(self._journal_fd, line)
            if n != len(line):
                raise OSError(f"short write ({n} of {len(line)} bytes)")
            os.fsync(self._journal_fd)
        except OSError as exc:
            raise OutboxError(f"{self.journal_path}: cannot append: {exc}") from None

    def _data_path(self, item_id: str) -> Path:
        return self.data_dir / f"{item_id}.pkt"

    # --- public API ------------------------------------------------------------------------
    def put(self, name: str, data: bytes, first_wins: bool = False) -> str:
        """Queue ``data`` under ``name``; return its id once it is durably on disk.

        Idempotent: if ``name`` is already known the existing id is returned (the content must
        be the same, else :class:`OutboxError`: a name identifies one finished result).  With
        ``first_wins`` the packet queued first stands whatever ``data`` is now (a result redone
        after a crash may differ in details such as an LLM report that timed out this time).
        """
        digest = sha256_bytes(data)
        known = self._by_name.get(name)
        if known is not None:
            item = self._items[known]
            if item.sha256 != digest and first_wins:
                log.info("%s: %r already queued as %s; kept", self.dir, name, known)
            elif item.sha256 != digest:
                raise OutboxError(
                    f"{self.dir}: {name!r} is already queued as {known} with different content"
                )
            return known
        item_id = f"{self._next_seq:010d}"
        try:
            atomic_write(self._data_path(item_id), data, self.tmp_dir)
        except OSError as exc:
            raise OutboxError(
                f"{self.dir}: cannot write packet {name!r}: {exc.strerror or exc}"
            ) from None
        self._append(
            {"op": "put", "id": item_id, "name": name, "size": len(data), "sha256": digest}
        )
        self._next_seq += 1
        item = OutboxItem(item_id, name, len(data), digest, "queued", 0)
        self._items[item_id] = item
        self._by_name[name] = item_id
        return item_id

    def _get(self, item_id: str) -> OutboxItem:
        try:
            return self._items[item_id]
        except KeyError:
            raise OutboxError(f"{self.dir}: no packet with id {item_id!r}") from None

    def get(self, item_id: str) -> OutboxItem:
        """The state of one packet."""
        return self._get(item_id)

    def find(self, name: str) -> OutboxItem | None:
        """The packet queued under ``name``, or None."""
        item_id = self._by_name.get(name)
        return None if item_id is None else self._items[item_id]

    def read(self, item_id: str) -> bytes:
        """The bytes of a queued or sent packet, checked against the sha256 in the journal."""
        item = self._get(item_id)
        if item.state == "acked":
            raise OutboxError(f"{self.dir}: packet {item_id} ({item.name}) was acknowledged")
        path = self._data_path(item_id)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise OutboxError(f"{path}: packet {item.name!r}: {exc.strerror or exc}") from None
        if sha256_bytes(data) != item.sha256:
            raise OutboxError(f"{path}: packet {item.name!r} is corrupt (sha256 mismatch)")
        return data

    def pending(self) -> list[OutboxItem]:
        """Packets not yet acknowledged (queued or sent), oldest first."""
        return [i for i in self._sorted() if i.state != "acked"]

    def items(self) -> list[OutboxItem]:
        """Every packet the journal knows, acknowledged ones included, oldest first."""
        return list(self._sorted())

    def _sorted(self) -> Iterator[OutboxItem]:
        return iter(sorted(self._items.values(), key=lambda i: i.id))

    def mark_sent(self, item_id: str) -> None:
        """Record that the packet went out (again); it stays pending until acknowledged."""
        item = self._get(item_id)
        if item.state == "acked":
            return
        self._append({"op": "sent", "id": item_id})
        self._items[item_id] = _replace(item, state="sent", sent_count=item.sent_count + 1)

    def ack(self, item_id: str) -> None:
        """Record the ground's acknowledgement and delete the packet's data file."""
        item = self._get(item_id)
        if item.state == "acked":
            return
        self._append({"op": "ack", "id": item_id})
        self._items[item_id] = _replace(item, state="acked")
        with contextlib.suppress(FileNotFoundError):
            self._data_path(item_id).unlink()

    def compact(self) -> None:
        """Rewrite the journal atomically with one record per packet (current state)."""
        lines: list[bytes] = []
        for item in self._sorted():
            base = {"id": item.id, "name": item.name, "size": item.size, "sha256": item.sha256}
            if item.state == "acked":
                lines.append(encode_record({"op": "done", "sent": item.sent_count, **base}))
                continue
            rec = {"op": "put", "sent": item.sent_count, "state": item.state, **base}
            lines.append(encode_record(rec))
        os.close(self._journal_fd)
        self._journal_fd = -1
        try:
            atomic_write(self.journal_path, b"".join(lines), self.tmp_dir)
        finally:
            self._journal_fd = os.open(
                self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
            )


def _replace(item: OutboxItem, **changes: Any) -> OutboxItem:
    return dataclasses.replace(item, **changes)
