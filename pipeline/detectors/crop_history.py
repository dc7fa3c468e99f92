"""The fields' own history: a compact record of recent clear passes per parcel or raster unit.

Each record keeps the last :data:`RING` clear passes of its field (or raster unit), one slot per
pass: the day (days since 1999-12-31, 0 = empty slot) and the field's mean NDVI and NDMI,
quantised to 0.01 (int8; :data:`NO_VALUE` = not measured).  A record also counts the clear
passes ever recorded.  Writing the same day again replaces that day's slot, so running a scene
twice (or resuming it after a crash) never counts a pass twice, and a pass is never its own
reference: :func:`reference` only looks at days before the scene's.

Storage, one file per cropland layer in the history folder (``[crop] history``):

* parcels: ``parcels-<layer name>.npy``, records sorted by ``key`` (a 64-bit hash of the parcel
  id, so a re-uplinked layer with the same ids keeps its history); 42 bytes per parcel, 0.42 MB
  per 10,000 parcels.  Rewritten atomically once per scene.
* raster units: ``raster-<layer name>-<sha256[:12]>.npy``, one record per unit of the layer's
  unit grid (34 bytes each), memory-mapped and updated in place as tiles are processed,
  flushed to disk once per scene (a raster layer's history is tied to its grid, hence the
  hash).  A crash part-way through a scene leaves some units with that pass and others
  without; running the scene again completes it (a day is written once).

Cloudy or shadowed cells never reach a record: the detector writes a field only when enough of
it was seen under clear sky, with the mean of its clear cells.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._fsio import atomic_write
from ..errors import InputError

log = logging.getLogger(__name__)

#: Passes kept per record.
RING = 8
#: Quantisation step of the stored indices.
QUANT = 0.01
#: Stored index value meaning "not measured" (e.g. NDMI on a scene without SWIR).
NO_VALUE = -128
EPOCH = dt.date(1999, 12, 31)

RECORD = np.dtype(
    [
        ("n", "<u2"),
        ("day", "<u2", (RING,)),
        ("ndvi", "i1", (RING,)),
        ("ndmi", "i1", (RING,)),
    ]
)
KEYED = np.dtype([("key", "<u8"), ("rec", RECORD)])


def day_number(date: dt.date) -> int:
    """Days since :data:`EPOCH` (1 = 2000-01-01)."""
    n = (date - EPOCH).days
    if not 1 <= n <= 65535:
        raise InputError(f"acquisition date {date} outside 2000-01-01 .. 2179")
    return n


def parcel_key(pid: str) -> int:
    """64-bit key of a parcel id."""
    return int.from_bytes(hashlib.blake2b(pid.encode(), digest_size=8).digest(), "little")


def _quant(v: np.ndarray) -> np.ndarray:
    q = np.round(np.asarray(v, np.float64) / QUANT)
    q = np.where(np.isfinite(q), np.clip(q, -127, 127), NO_VALUE)
    return q.astype(np.int8)


def _value(q: np.ndarray) -> np.ndarray:
    return np.where(q == NO_VALUE, np.nan, q.astype(np.float64) * QUANT)


@dataclass(frozen=True)
class Reference:
    """What each unit's history says about the pass on ``day`` (arrays, one entry per unit)."""

    #: clear passes within the window before the day
    passes: np.ndarray
    #: highest NDVI among them (the field's recent best: its expected value now)
    best_ndvi: np.ndarray
    #: lowest NDVI among them (the other end of its recent range)
    low_ndvi: np.ndarray
    #: NDMI of the pass that gave the best NDVI (NaN when not measured)
    best_ndmi: np.ndarray
    #: clear passes ever recorded
    total: np.ndarray


def reference(recs: np.ndarray, day: int, window_days: float) -> Reference:
    """The history reference of each record for a pass on ``day``: its passes in
    ``[day - window_days, day)``."""
    # slot by slot over the RING slots (numpy reduces a short last axis slowly): the best pass
    # is the first slot with the highest quantised NDVI among the used ones (-200 where not
    # used), as argmax would pick it; the lowest with 200 where not used
    n = len(recs)
    # slots as rows: contiguous; int16 arithmetic instead of np.where (several times faster)
    days = np.ascontiguousarray(recs["day"].T)
    ndvi_q = np.ascontiguousarray(recs["ndvi"].T).astype(np.int16)
    ndmi_all = np.ascontiguousarray(recs["ndmi"].T).astype(np.int16)
    passes = np.zeros(n, np.int64)
    best_q = np.full(n, -200, np.int16)
    low_q = np.full(n, 200, np.int16)
    ndmi_q = ndmi_all[0].copy() if n else np.zeros(0, np.int16)
    for j in range(RING):
        d = days[j]
        use = (d > 0) & (d < day) & (d >= day - window_days)
        unused = ~use
        q = ndvi_q[j]
        cand = q - (q + 200) * unused  # q where used, else -200
        if j:
            better = cand > best_q
            ndmi_q += (ndmi_all[j] - ndmi_q) * better
        best_q = np.maximum(best_q, cand)
        low_q = np.minimum(low_q, q + (200 - q) * unused)  # q where used, else 200
        passes += use
    has = passes > 0
    return Reference(
        passes,
        np.where(has, best_q * QUANT, np.nan),
        np.where(has, low_q * QUANT, np.nan),
        np.where(has, _value(ndmi_q.astype(np.int8)), np.nan),
        recs["n"].astype(np.int64),
    )


def add_pass(recs: np.ndarray, day: int, ndvi: np.ndarray, ndmi: np.ndarray) -> np.ndarray:
    """``recs`` with the pass of ``day`` recorded (a new slot replaces the oldest one; a slot of
    the same day is overwritten and not counted again).  Returns a new array."""
    out = _copy_records(recs)
    n = len(out)
    days = np.ascontiguousarray(out["day"].T)  # slots as rows
    # the slot to write: the first slot of the same day if present, else the first oldest
    # (empty slots are day 0); slot by slot, as argmax / argmin would pick them (small-integer
    # arithmetic instead of np.where: several times faster)
    same_slot = np.full(n, -1, np.int8)
    old_slot = np.zeros(n, np.int8)
    oldest = days[0]
    for j in range(RING):
        d = days[j]
        same_slot += np.int8(j + 1) * ((d == day) & (same_slot < 0))  # -1 -> j at the first hit
        if j:
            old_slot += (np.int8(j) - old_slot) * (d < oldest)
            oldest = np.minimum(oldest, d)
    has_same = same_slot >= 0
    slot = old_slot + (same_slot - old_slot) * has_same
    idx = np.arange(n)
    out["day"][idx, slot] = day
    out["ndvi"][idx, slot] = _quant(ndvi)
    out["ndmi"][idx, slot] = _quant(ndmi)
    count = out["n"].astype(np.int64)
    out["n"] = count + (~has_same & (count < 65535))  # a new day counts once, up to 65535
    return out


def _rows(recs: np.ndarray) -> np.ndarray:
    """A contiguous 1-D array of records as a (n, itemsize) byte view of the same memory
    (numpy copies fixed-size byte rows much faster than structured records)."""
    return recs.view(np.uint8).reshape(len(recs), recs.dtype.itemsize)


def _copy_records(recs: np.ndarray) -> np.ndarray:
    """A copy of a 1-D array of records, as bytes."""
    return _rows(np.ascontiguousarray(recs)).copy().view(recs.dtype).reshape(-1)


def take_records(recs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``recs[idx]`` (the same bytes), for a 1-D array of records."""
    return _rows(np.ascontiguousarray(recs)).take(idx, axis=0).view(recs.dtype).reshape(-1)


class ParcelHistory:
    """The history of one parcels layer: records by parcel key, loaded whole, saved atomically."""

    def __init__(self, folder: Path, layer_name: str) -> None:
        self.path = Path(folder) / f"parcels-{layer_name}.npy"
        self.table = np.zeros(0, KEYED)
        if self.path.is_file():
            try:
                table = np.load(self.path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path}: crop history unreadable ({exc})") from None
            if table.dtype != KEYED:
                raise InputError(f"{self.path}: not a crop history file (record {table.dtype})")
            self.table = np.sort(table, order="key")

    def records(self, keys: np.ndarray) -> np.ndarray:
        """Records of ``keys`` (uint64), empty records for parcels never seen."""
        out = np.zeros(len(keys), RECORD)
        if len(self.table) and len(keys):
            pos = np.searchsorted(self.table["key"], keys)
            pos = np.minimum(pos, len(self.table) - 1)
            hit = self.table["key"][pos] == keys
            out[hit] = self.table["rec"][pos[hit]]
        return out

    def save(self, keys: np.ndarray, recs: np.ndarray) -> None:
        """Store ``recs`` for ``keys`` (others kept) and write the file atomically."""
        # the stored records, then the new ones; per key the last one wins, sorted by key
        all_keys = np.concatenate([self.table["key"], np.asarray(keys, np.uint64)])
        all_recs = np.concatenate([self.table["rec"], np.asarray(recs, RECORD)])
        order = np.argsort(all_keys, kind="stable")
        sorted_keys = all_keys[order]
        last = np.ones(len(order), bool)
        last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
        pick = order[last]
        table = np.zeros(len(pick), KEYED)
        table["key"] = all_keys[pick]
        table["rec"] = all_recs[pick]
        buf = io.BytesIO()
        np.save(buf, table, allow_pickle=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, buf.getvalue())
        self.table = table

    @property
    def nbytes(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0


class RasterHistory:
    """The history of one cropland raster: a memory-mapped record per unit of its unit grid."""

    def __init__(self, folder: Path, layer_name: str, sha256: str, shape: tuple[int, int]) -> None:
        self.path = Path(folder) / f"raster-{layer_name}-{sha256[:12]}.npy"
        self.shape = shape
        self._mm: np.memmap | None = None

    def _open(self) -> np.memmap:
        if self._mm is None:
            fmt = np.lib.format
            try:
                if not self.path.is_file():
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = self.path.with_name(f".{self.path.name}.new")
                    mm = fmt.open_memmap(tmp, mode="w+", dtype=RECORD, shape=self.shape)
                    mm.flush()
                    del mm
                    tmp.replace(self.path)
                mm = fmt.open_memmap(self.path, mode="r+")
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path}: crop history unusable ({exc})") from None
            if mm.dtype != RECORD or mm.shape != self.shape:
                raise InputError(
                    f"{self.path}: crop history does not match its layer "
                    f"({mm.dtype}, {mm.shape} instead of {self.shape})"
                )
            self._mm = mm
        return self._mm

    def records(self, units: np.ndarray) -> np.ndarray:
        """Records of the 0-based unit indices ``units`` (row-major), read from the mapped file
        as byte rows."""
        return take_records(self._flat(), units)

    def write(self, units: np.ndarray, recs: np.ndarray) -> None:
        """Store ``recs`` for ``units`` in the mapped file (made durable by :meth:`flush`)."""
        _rows(self._flat())[units] = _rows(np.ascontiguousarray(recs, dtype=RECORD))

    def _flat(self) -> np.ndarray:
        """The mapped records as a flat array (a view of the file's memory)."""
        return np.asarray(self._open()).reshape(-1)

    def flush(self) -> None:
        if self._mm is not None:
            self._mm.flush()

    def close(self) -> None:
        if self._mm is not None:
            self._mm.flush()
            self._mm = None
