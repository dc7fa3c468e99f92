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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely import wkb
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..errors import StoreError

log = logging.getLogger(__name__)


#: version 2: acquisition time may be unknown (NULL) and has a source; per-class status
#: (checked or not, and why); place names; the run's input; measures as columns
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS scenes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    acquired_utc TEXT,
    acquired_source TEXT NOT NULL DEFAULT 'unknown',
    added_utc TEXT NOT NULL,
    counts TEXT NOT NULL,
    classes TEXT NOT NULL DEFAULT '{}',
    places TEXT NOT NULL DEFAULT '[]',
    kind TEXT,
    input TEXT,
    report TEXT,
    cloud_fraction REAL,
    shadow_fraction REAL
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
    geom BLOB NOT NULL,
    length_m REAL,
    area_m2 REAL
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
#: every class a store may hold; ``cloud`` has no detector yet, so it is "not checked" until
#: a run says otherwise
KNOWN_CLASSES = ("ship", "fire", "crop_stress", "cloud")
#: detector name in run.json ``detectors`` -> detection class
CLASS_OF_DETECTOR = {
    "fire": "fire",
    "ships": "ship",
    "ship": "ship",
    "crop": "crop_stress",
    "cloud": "cloud",
    "clouds": "cloud",
}
CHECKED = "checked"


def class_status(run: dict[str, Any]) -> dict[str, str]:
    """Per class, what a run said: ``"checked"``, ``"partly checked: ..."`` or ``"not checked:
    ..."``, from run.json (``classes`` when a run records it, else ``detectors`` and failed tiles).
    Classes whose detector is not named at all are ``"not checked: no detector in this run"``."""
    out = {c: "not checked: no detector in this run" for c in KNOWN_CLASSES}
    clouds = str((run.get("detectors") or {}).get("clouds", ""))
    if clouds:  # the cloud screen is no detection class: its own status
        out["cloud"] = CHECKED if clouds == "ran" else f"not checked: {clouds}"
    per_class = run.get("classes")
    if isinstance(per_class, dict):
        for cls, v in per_class.items():
            status = v.get("status") if isinstance(v, dict) else v
            if cls in out and isinstance(status, str):
                low = status.lower()
                if low.startswith("not checked") or low.startswith("partly"):
                    out[cls] = status
                else:
                    out[cls] = CHECKED
        return out
    tiles = run.get("tiles") or {}
    failed, total = int(tiles.get("failed", 0) or 0), int(tiles.get("total", 0) or 0)
    for det, status in (run.get("detectors") or {}).items():
        cls = CLASS_OF_DETECTOR.get(det)
        if cls is None:
            continue
        text = str(status)
        if text == "ran" or text.startswith("ran"):
            if total and failed >= total:
                out[cls] = f"not checked: all {total} tiles failed"
            elif failed:
                out[cls] = f"partly checked: {failed} of {total} tiles failed"
            else:
                out[cls] = CHECKED
        else:
            out[cls] = f"not checked: {text}"
    return out


def scene_interval(acquired_utc: str | None) -> tuple[str, str] | None:
    """The UTC interval a stored acquisition time stands for: a date is the whole day."""
    if acquired_utc is None:
        return None
    if len(acquired_utc) == 10:
        return acquired_utc + "T00:00:00Z", acquired_utc + "T23:59:59Z"
    return acquired_utc, acquired_utc


@dataclass(frozen=True)
class StoredScene:
    id: int
    name: str
    #: ISO 8601 UTC time or date; None when unknown
    acquired_utc: str | None
    acquired_source: str
    counts: dict[str, int]
    #: class -> "checked" / "partly checked: ..." / "not checked: ..."
    classes: dict[str, str]
    places: tuple[str, ...]
    #: what the scene shows when its metadata says ("port"), else None
    kind: str | None = None
    #: shares of the scene the cloud screen saw under cloud and under cloud shadow; None when
    #: the scene was not screened
    cloud_fraction: float | None = None
    shadow_fraction: float | None = None

    def checked(self, cls: str) -> bool:
        """True when the class was looked for in this scene (fully or partly)."""
        status = self.classes.get(cls, "not checked")
        return not status.startswith("not checked")


@dataclass(frozen=True)
class StoredDetection:
    id: int
    scene: str
    acquired_utc: str | None
    cls: str
    score: float
    lon: float
    lat: float
    #: the class's size measure (fire area m2, ship length m, stressed area km2), if known
    size: float | None
    props: dict[str, Any]
    geometry: BaseGeometry
    #: ship length in metres (None for other classes or when unknown)
    length_m: float | None = None
    #: area in m² (every class that has one; stressed areas converted from km²)
    area_m2: float | None = None


def _measures(cls: str, props: dict[str, Any]) -> tuple[float | None, float | None]:
    def num(key: str) -> float | None:
        v = props.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    length = num("length_m") if cls == "ship" else None
    area = num("area_m2")
    if area is None and (km2 := num("area_km2")) is not None:
        area = km2 * 1e6
    return length, area


def _cloud_fractions(clouds: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(cloud, shadow) fractions from run.json's ``clouds`` member; (None, None) when the
    cloud screen did not look."""
    if not isinstance(clouds, Mapping) or clouds.get("status") != CHECKED:
        return None, None
    try:
        return float(clouds["cloud_fraction"]), float(clouds["shadow_fraction"])
    except (KeyError, TypeError, ValueError):
        return None, None


class DetectionStore:
    """``with DetectionStore(path) as store: store.add_scene(name, features, acquired_utc)``.

    ``create=False`` refuses a path where no store exists yet (a mistyped ``--store``)."""

    def __init__(
        self,
        path: str | Path,
        max_scenes: int = 10_000,
        max_bytes: int = 256 << 20,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        self.max_scenes = max_scenes
        self.max_bytes = max_bytes
        if not create and not self.path.is_file():
            raise StoreError(
                f"{self.path}: no detection store there (check the path; --create makes a new one)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot create the store's folder ({exc.strerror or exc})"
            ) from None
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: not a file")
        try:
            self.db = sqlite3.connect(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open detection store ({exc})") from None
        try:
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self.db.close()
            raise StoreError(f"{self.path}: cannot open detection store ({exc})") from None

    def _migrate(self) -> None:
        """Bring a version-1 store (acquisition time NOT NULL, no class status) up to date.
        Its times were the processing time when the run had no date, so they become unknown
        unless they were given with --acquired (which version 1 did not record): all unknown."""
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(scenes)")]
        if "classes" in cols and "kind" not in cols:
            self.db.execute("ALTER TABLE scenes ADD COLUMN kind TEXT")
        if "classes" in cols and "cloud_fraction" not in cols:
            for col in ("cloud_fraction", "shadow_fraction"):
                self.db.execute(f"ALTER TABLE scenes ADD COLUMN {col} REAL")
        if not cols or "classes" in cols:
            return
        log.warning(
            "%s: version-1 store; acquisition times set to unknown (v1 stored the processing "
            "time); re-add scenes or use --acquired to date them",
            self.path,
        )
        with self.db:
            self.db.execute("ALTER TABLE scenes RENAME TO scenes_v1")
            self.db.executescript(SCHEMA)
            self.db.execute(
                "INSERT INTO scenes(id, name, acquired_utc, acquired_source, added_utc, counts, "
                "classes, places, input, report) SELECT id, name, NULL, 'unknown (version-1 "
                "store)', added_utc, counts, '{}', '[]', NULL, report FROM scenes_v1"
            )
            self.db.execute("DROP TABLE scenes_v1")
            dcols = [r[1] for r in self.db.execute("PRAGMA table_info(detections)")]
            for col in ("length_m", "area_m2"):
                if col not in dcols:
                    self.db.execute(f"ALTER TABLE detections ADD COLUMN {col} REAL")
            rows = self.db.execute("SELECT id, cls, props FROM detections").fetchall()
            for did, cls, props in rows:
                length, area = _measures(cls, json.loads(props))
                self.db.execute(
                    "UPDATE detections SET length_m = ?, area_m2 = ? WHERE id = ?",
                    (length, area, did),
                )

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
        acquired_utc: str | None,
        report: dict[str, Any] | None = None,
        *,
        acquired_source: str | None = None,
        classes: dict[str, str] | None = None,
        places: Sequence[str] = (),
        input_path: str | None = None,
        kind: str | None = None,
        clouds: Mapping[str, Any] | None = None,
    ) -> int:
        """Store one scene's GeoJSON features (WGS84) and its report; returns the scene id.

        ``acquired_utc`` is ISO 8601 UTC (a date when the time of day is unknown) or None when
        unknown; never the processing time.  ``classes`` says per class whether it was looked
        for (:func:`class_status`); by default every class with a feature counts as checked and
        the others as "not checked: not recorded".  ``clouds`` is run.json's ``clouds``
        member (the cloud screen's fractions, when it ran)."""
        counts: dict[str, int] = {}
        added = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if acquired_utc is not None and scene_interval(acquired_utc) is None:
            raise StoreError(f"{self.path}: bad acquisition time {acquired_utc!r}")
        if acquired_source is None:
            acquired_source = "given" if acquired_utc else "unknown"
        try:
            with self.db:
                cur = self.db.execute(
                    "INSERT INTO scenes(name, acquired_utc, acquired_source, added_utc, counts, "
                    "classes, places, kind, input, report, cloud_fraction, shadow_fraction) "
                    "VALUES (?, ?, ?, ?, '{}', '{}', ?, ?, ?, ?, ?, ?)",
                    (
                        scene,
                        acquired_utc,
                        acquired_source,
                        added,
                        json.dumps(list(places)),
                        kind,
                        input_path,
                        json.dumps(report) if report else None,
                        *_cloud_fractions(clouds),
                    ),
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
                    length, area = _measures(cls, props)
                    d = self.db.execute(
                        "INSERT INTO detections(scene_id, cls, score, lon, lat, size, props, geom,"
                        " length_m, area_m2) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            sid,
                            cls,
                            score,
                            lon,
                            lat,
                            size,
                            json.dumps(props),
                            wkb.dumps(geom),
                            length,
                            area,
                        ),
                    )
                    minx, miny, maxx, maxy = geom.bounds
                    self.db.execute(
                        "INSERT INTO detections_rtree VALUES (?, ?, ?, ?, ?)",
                        (d.lastrowid, minx, maxx, miny, maxy),
                    )
                    counts[cls] = counts.get(cls, 0) + 1
                if classes is None:
                    classes = {
                        c: CHECKED if c in counts else "not checked: not recorded"
                        for c in KNOWN_CLASSES
                    }
                self.db.execute(
                    "UPDATE scenes SET counts = ?, classes = ? WHERE id = ?",
                    (json.dumps(counts), json.dumps(classes), sid),
                )
            self._evict()
        except (sqlite3.Error, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"{self.path}: cannot store scene {scene} ({exc})") from None
        log.info("stored %s (%s, acquired %s) in %s", scene, counts, acquired_utc, self.path)
        return sid

    def remove_scene(self, name: str) -> bool:
        """Remove every stored scene called ``name`` with its detections; True if any was."""
        try:
            ids = [r[0] for r in self.db.execute("SELECT id FROM scenes WHERE name = ?", (name,))]
            with self.db:
                for sid in ids:
                    self._delete(sid)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot remove scene {name} ({exc})") from None
        return bool(ids)

    def _delete(self, sid: int) -> None:
        self.db.execute(
            "DELETE FROM detections_rtree WHERE id IN "
            "(SELECT id FROM detections WHERE scene_id = ?)",
            (sid,),
        )
        self.db.execute("DELETE FROM detections WHERE scene_id = ?", (sid,))
        self.db.execute("DELETE FROM scenes WHERE id = ?", (sid,))

    def _evict(self) -> None:
        """Drop the oldest scenes (by acquisition time; unknown times first) beyond the scene or
        byte budget."""
        while self.scene_count() > self.max_scenes or (
            self.size_bytes() > self.max_bytes and self.scene_count() > 1
        ):
            row = self.db.execute(
                "SELECT id, name FROM scenes ORDER BY acquired_utc IS NOT NULL, acquired_utc, id "
                "LIMIT 1"
            ).fetchone()
            with self.db:
                self._delete(row[0])
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

    def scenes(self) -> list[tuple[str, str | None, dict[str, int]]]:
        rows = self.db.execute("SELECT name, acquired_utc, counts FROM scenes ORDER BY id")
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def scene_records(self) -> list[StoredScene]:
        """Every stored scene with its acquisition time, class status and place names."""
        try:
            rows = self.db.execute(
                "SELECT id, name, acquired_utc, acquired_source, counts, classes, places, kind, "
                "cloud_fraction, shadow_fraction FROM scenes ORDER BY id"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read scenes ({exc})") from None
        return [
            StoredScene(
                int(r[0]),
                r[1],
                r[2],
                r[3],
                json.loads(r[4]),
                json.loads(r[5]),
                tuple(json.loads(r[6])),
                r[7],
                r[8],
                r[9],
            )
            for r in rows
        ]

    def candidates(
        self,
        cls: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        since: str | None = None,
        until: str | None = None,
        scene_ids: Sequence[int] | None = None,
    ) -> Iterator[StoredDetection]:
        """Detections whose bounding box intersects ``bbox`` (R-tree), of ``cls``, in the scenes
        ``scene_ids``, acquired in [since, until] (ISO-8601 UTC strings compare in time order; a
        scene dated by day only counts when its day overlaps the window; scenes of unknown time
        never match a time window)."""
        sql = (
            "SELECT d.id, s.name, s.acquired_utc, d.cls, d.score, d.lon, d.lat, d.size, d.props,"
            " d.geom, d.length_m, d.area_m2 FROM detections d JOIN scenes s ON s.id = d.scene_id"
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
        if since is not None or until is not None:
            where.append("s.acquired_utc IS NOT NULL")
        if since is not None:
            # a date-only time stands for its whole day: compare its end with `since`
            where.append(
                "(CASE WHEN length(s.acquired_utc) = 10 THEN s.acquired_utc || 'T23:59:59Z' "
                "ELSE s.acquired_utc END) >= ?"
            )
            args.append(since)
        if until is not None:
            where.append(
                "(CASE WHEN length(s.acquired_utc) = 10 THEN s.acquired_utc || 'T00:00:00Z' "
                "ELSE s.acquired_utc END) <= ?"
            )
            args.append(until)
        if scene_ids is not None:
            where.append(f"d.scene_id IN ({','.join('?' * len(scene_ids)) or 'NULL'})")
            args += list(scene_ids)
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
                None if r[10] is None else float(r[10]),
                None if r[11] is None else float(r[11]),
            )
