"""The onboard detection store: every scene's detections and report in one SQLite file.

Detections are indexed spatially with SQLite's R-tree module (bounding boxes in lon/lat), so
"vessels inside this box" is an index lookup, refined exactly with shapely.  The store is
bounded: beyond ``max_scenes`` (or ``max_bytes`` of database file), the oldest scenes (by
acquisition time) are evicted with their detections.

Uses only the standard library and shapely, so it can also be opened on the ground.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely import wkb
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..errors import StoreError

log = logging.getLogger(__name__)


SCHEMA = """
CREATE TABLE IF NOT EXISTS scenes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    acquired_utc TEXT NOT NULL,
    added_utc TEXT NOT NULL,
    counts TEXT NOT NULL,
    report TEXT
);
CREATE INDEX IF NOT EXISTS scenes_acquired ON scenes(acquired_utc);
CREATE TABLE IF NOT EXISTS detections (
    id INTEGER PRIMARY KEY,
    scene_id INTEGER NOT NULL REFERENCES scenes(id) ON DELETE CASCADE,
    cls TEXT NOT NULL,
    score REAL NOT NULL,
    lon REAL NOT NULL,
    lat REAL NOT NULL,
    size REAL,
    props TEXT NOT NULL,
    geom BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS detections_scene ON detections(scene_id);
CREATE VIRTUAL TABLE IF NOT EXISTS detections_rtree USING rtree(id, minx, maxx, miny, maxy);
"""

#: per class, the measure that answers "how large" (and its unit)
SIZE_MEASURE = {
    "fire": ("area_m2", "m2"),
    "ship": ("length_m", "m"),
    "crop_stress": ("area_km2", "km2"),
}


@dataclass(frozen=True)
class StoredDetection:
    id: int
    scene: str
    acquired_utc: str
    cls: str
    score: float
    lon: float
    lat: float
    #: the class's size measure (fire area m2, ship length m, stressed area km2), if known
    size: float | None
    props: dict[str, Any]
    geometry: BaseGeometry


class DetectionStore:
    """``with DetectionStore(path) as store: store.add_scene(result, acquired_utc)``."""

    def __init__(
        self, path: str | Path, max_scenes: int = 10_000, max_bytes: int = 256 << 20
    ) -> None:
        self.path = Path(path)
        self.max_scenes = max_scenes
        self.max_bytes = max_bytes
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open detection store ({exc})") from None

    def __enter__(self) -> DetectionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writing

    def add_scene(
        self,
        scene: str,
        features: Sequence[dict[str, Any]],
        acquired_utc: str,
        report: dict[str, Any] | None = None,
    ) -> int:
        """Store one scene's GeoJSON features (WGS84) and its report; returns the scene id."""
        counts: dict[str, int] = {}
        added = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            with self.db:
                cur = self.db.execute(
                    "INSERT INTO scenes(name, acquired_utc, added_utc, counts, report) "
                    "VALUES (?, ?, ?, '{}', ?)",
                    (scene, acquired_utc, added, json.dumps(report) if report else None),
                )
                sid = int(cur.lastrowid or 0)
                for f in features:
                    props = dict(f.get("properties", {}))
                    cls = str(props.pop("class"))
                    score = float(props.pop("score", 0.0))
                    geom = shape(f["geometry"])
                    c = geom.centroid
                    lon = float(props.get("centroid_lon", c.x))
                    lat = float(props.get("centroid_lat", c.y))
                    key = SIZE_MEASURE.get(cls, ("", ""))[0]
                    size = props.get(key)
                    d = self.db.execute(
                        "INSERT INTO detections(scene_id, cls, score, lon, lat, size, props, geom)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (sid, cls, score, lon, lat, size, json.dumps(props), wkb.dumps(geom)),
                    )
                    minx, miny, maxx, maxy = geom.bounds
                    self.db.execute(
                        "INSERT INTO detections_rtree VALUES (?, ?, ?, ?, ?)",
                        (d.lastrowid, minx, maxx, miny, maxy),
                    )
                    counts[cls] = counts.get(cls, 0) + 1
                self.db.execute(
                    "UPDATE scenes SET counts = ? WHERE id = ?", (json.dumps(counts), sid)
                )
            self._evict()
        except (sqlite3.Error, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot store scene {scene} ({exc})") from None
        log.info("stored %s (%s) in %s", scene, counts, self.path)
        return sid

    def _evict(self) -> None:
        """Drop the oldest scenes (by acquisition time) beyond the scene or byte budget."""
        while self.scene_count() > self.max_scenes or (
            self.size_bytes() > self.max_bytes and self.scene_count() > 1
        ):
            row = self.db.execute(
                "SELECT id, name FROM scenes ORDER BY acquired_utc, id LIMIT 1"
            ).fetchone()
            with self.db:
                self.db.execute(
                    "DELETE FROM detections_rtree WHERE id IN "
                    "(SELECT id FROM detections WHERE scene_id = ?)",
                    (row[0],),
                )
                self.db.execute("DELETE FROM detections WHERE scene_id = ?", (row[0],))
                self.db.execute("DELETE FROM scenes WHERE id = ?", (row[0],))
            log.info("store full: evicted oldest scene %s", row[1])

    # ------------------------------------------------------------------ reading

    def scene_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM scenes").fetchone()[0])

    def size_bytes(self) -> int:
        """Bytes of the database in use (pages minus free pages)."""
        page = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.db.execute("PRAGMA page_size").fetchone()[0]
        return (int(page) - int(free)) * int(size)

    def scenes(self) -> list[tuple[str, str, dict[str, int]]]:
        rows = self.db.execute("SELECT name, acquired_utc, counts FROM scenes ORDER BY id")
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def candidates(
        self,
        cls: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[StoredDetection]:
        """Detections whose bounding box intersects ``bbox`` (R-tree), of ``cls``, acquired in
        [since, until] (ISO-8601 UTC strings compare in time order)."""
        sql = (
            "SELECT d.id, s.name, s.acquired_utc, d.cls, d.score, d.lon, d.lat, d.size, d.props,"
            " d.geom FROM detections d JOIN scenes s ON s.id = d.scene_id"
        )
        where: list[str] = []
        args: list[Any] = []
        if bbox is not None:
            sql += " JOIN detections_rtree r ON r.id = d.id"
            where += ["r.maxx >= ?", "r.minx <= ?", "r.maxy >= ?", "r.miny <= ?"]
            args += [bbox[0], bbox[2], bbox[1], bbox[3]]
        if cls is not None:
            where.append("d.cls = ?")
            args.append(cls)
        if since is not None:
            where.append("s.acquired_utc >= ?")
            args.append(since)
        if until is not None:
            where.append("s.acquired_utc <= ?")
            args.append(until)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY d.id"
        try:
            rows = self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed ({exc})") from None
        for r in rows:
            yield StoredDetection(
                int(r[0]),
                r[1],
                r[2],
                r[3],
                float(r[4]),
                float(r[5]),
                float(r[6]),
                None if r[7] is None else float(r[7]),
                json.loads(r[8]),
                wkb.loads(r[9]),
            )
