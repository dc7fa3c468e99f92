"""Products as STAC: one Item per scene, gathered in a Collection (``pystac``).

A *product folder* is either what the ground decoder wrote (:func:`ground_decoder.write_decoded`:
``detections.geojson``, ``report.json``/``report.txt``, ``chips/*.png``, ``quicklook.png``,
``map.png``, ``damage.json``) or what ``eotriage run``/``eotriage batch`` wrote for a scene
(``detections.geojson``, ``compact.geojson``, ``report.*``, ``run.json``).  Each file becomes an
asset with a media type and a role; the Item's geometry is the bounding box of the detections
(else of the quicklook or chips), its datetime the acquisition time when the report knows it,
else the processing time (``eotriage:datetime_source`` says which).  Counts per class, the
report priority and summary, the scan's outcome (``eotriage:outcome``: complete, partial,
failed, with ``eotriage:outcome_reasons``) and per class what was found, looked for in vain or
not checked (``eotriage:classes``), and whether the downlink arrived intact are Item
properties.

The Collection is written *self-contained* (relative links), so it can be copied anywhere and
opened by stac-browser, QGIS' STAC plugin or ``pystac``.  No STAC extension is used, so pystac's
own core schemas validate it offline (``item.validate()``, needs ``jsonschema``).

pystac is imported inside the functions: ``ground_decoder`` imports without it.

Typical use::

    from ground_decoder.stac import write_collection

    collection = write_collection(["ground_out/sceneA", "out/sceneB"], "stac/")
    # stac/collection.json; every Item beside its assets (sceneA/sceneA.json, ...)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pystac

    from .decode import Decoded
    from .render import WrittenDecoded

log = logging.getLogger(__name__)

#: file name -> (media type, roles, title)
KNOWN_ASSETS: dict[str, tuple[str, list[str], str]] = {
    "detections.geojson": ("application/geo+json", ["data"], "Detections (GeoJSON)"),
    "compact.geojson": ("application/geo+json", ["data"], "Compact detections as downlinked"),
    "report.json": ("application/json", ["metadata"], "Report with its facts"),
    "report.txt": ("text/plain", ["metadata"], "Text report"),
    "run.json": ("application/json", ["metadata"], "Run summary"),
    "damage.json": ("application/json", ["metadata"], "Downlink damage account"),
    "quicklook.png": ("image/png", ["overview"], "Quicklook of the scene"),
    "map.png": ("image/png", ["thumbnail"], "Detections map"),
    "downlink.bin": ("application/octet-stream", ["data"], "CCSDS space packets"),
}
DEFAULT_COLLECTION_ID = "eotriage-products"


def _pystac() -> Any:
    try:
        import pystac
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "STAC output needs pystac (pip install 'eotriage[cluster]' or 'pystac')"
        ) from exc
    return pystac


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _positions(coords: Any) -> Iterator[tuple[float, float]]:
    if isinstance(coords, list | tuple):
        if len(coords) >= 2 and all(isinstance(c, int | float) for c in coords[:2]):
            yield float(coords[0]), float(coords[1])
        else:
            for c in coords:
                yield from _positions(c)


def _geometry_positions(geom: Any) -> Iterator[tuple[float, float]]:
    if not isinstance(geom, dict):
        return
    if geom.get("type") == "GeometryCollection":
        for g in geom.get("geometries", []):
            yield from _geometry_positions(g)
    else:
        yield from _positions(geom.get("coordinates"))


def _bbox_of(points: Iterable[tuple[float, float]]) -> list[float] | None:
    pts = list(points)
    if not pts:
        return None
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return [min(xs), min(ys), max(xs), max(ys)]


def _footprint(geojson: Any) -> list[float] | None:
    """Bounding box (W, S, E, N) of the detections."""
    feats = geojson.get("features", []) if isinstance(geojson, dict) else []
    return _bbox_of(
        p for f in feats if isinstance(f, dict) for p in _geometry_positions(f.get("geometry"))
    )


def _polygon(b: Sequence[float]) -> dict[str, Any]:
    w, s, e, n = b
    if w == e or s == n:  # a single point: pad a little so the polygon is not degenerate
        w, s, e, n = w - 1e-5, s - 1e-5, e + 1e-5, n + 1e-5
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _item_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "scene"


#: scene outcomes and per-class states the products may state
_OUTCOMES = ("complete", "partial", "failed")
_CLASS_STATES = ("found", "none found", "not checked")


def _scan_status(
    docs: Sequence[Any],
) -> tuple[str | None, list[str], dict[str, dict[str, Any]]]:
    """``(outcome, reasons, classes)`` from the first product that states them: run.json and
    report.json hold them at the top level, a compact GeoJSON in its ``eotriage`` member,
    damage.json its ``outcome``."""
    outcome: str | None = None
    reasons: list[str] = []
    classes: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        member = doc.get("eotriage")
        src: dict[str, Any] = member if isinstance(member, dict) else doc
        if outcome is None and src.get("outcome") in _OUTCOMES:
            outcome = str(src["outcome"])
            r = src.get("outcome_reasons")
            reasons = [str(x) for x in r if isinstance(x, str)] if isinstance(r, list) else []
        per = src.get("classes")
        if not classes and isinstance(per, dict):
            for cls, e in per.items():
                if isinstance(e, dict) and e.get("status") in _CLASS_STATES:
                    classes[str(cls)] = {
                        k: e[k] for k in ("status", "count", "coverage", "reason") if k in e
                    }
    return outcome, reasons, classes


def item_from_dir(
    product_dir: str | Path,
    *,
    datetime: dt.datetime | None = None,
    item_id: str | None = None,
    bbox: Sequence[float] | None = None,
) -> pystac.Item:
    """A STAC Item for one product folder (decoded or ``eotriage run`` output), its assets being
    the files found there.  ``bbox`` (W, S, E, N) is used when there are no detections to
    bound.  Raises ``FileNotFoundError`` when the folder holds no product."""
    pystac = _pystac()
    d = Path(product_dir)
    files = {p.name: p for p in sorted(d.iterdir())} if d.is_dir() else {}
    if not any(name in files for name in KNOWN_ASSETS):
        raise FileNotFoundError(f"{d}: no eotriage product files found")
    geojson = _read_json(files["detections.geojson"]) if "detections.geojson" in files else None
    report = _read_json(files["report.json"]) if "report.json" in files else None
    run = _read_json(files["run.json"]) if "run.json" in files else None
    damage = _read_json(files["damage.json"]) if "damage.json" in files else None

    facts = report.get("facts") if isinstance(report, dict) else None
    name = (
        item_id
        or (facts.get("scene") if isinstance(facts, dict) else None)
        or (run.get("scene") if isinstance(run, dict) else None)
        or d.name
    )
    source = "given"
    when = datetime
    if when is None and isinstance(facts, dict):
        when = _parse_time(facts.get("time_utc"))
        source = "acquisition"
    if when is None and isinstance(run, dict):
        when = _parse_time(run.get("finished_utc"))
        source = "processing"
    if when is None:
        when = dt.datetime.fromtimestamp(d.stat().st_mtime, tz=dt.UTC)
        source = "processing"

    counts: dict[str, int] = {}
    for f in geojson.get("features", []) if isinstance(geojson, dict) else []:
        fprops = f.get("properties") if isinstance(f, dict) else None
        cls = str(fprops.get("class", "?")) if isinstance(fprops, dict) else "?"
        counts[cls] = counts.get(cls, 0) + 1
    props: dict[str, Any] = {
        "eotriage:datetime_source": source,
        "eotriage:counts": counts,
        "eotriage:product": "decoded" if "damage.json" in files else "onboard-run",
    }
    if isinstance(report, dict):
        props["eotriage:priority"] = report.get("priority")
        props["eotriage:summary"] = report.get("summary")
        props["description"] = str(report.get("summary") or "")
    if isinstance(damage, dict):
        props["eotriage:downlink_intact"] = not any(
            damage.get(k)
            for k in ("crc_failures", "truncated", "garbage", "incomplete", "missing_products")
        )
        props["eotriage:waiting_onboard"] = list(damage.get("waiting_onboard", []))
    compact = _read_json(files["compact.geojson"]) if "compact.geojson" in files else None
    outcome, reasons, classes = _scan_status([run, compact, geojson, report, damage])
    if outcome is not None:
        props["eotriage:outcome"] = outcome
        props["eotriage:outcome_reasons"] = reasons
    if classes:
        props["eotriage:classes"] = classes
    if isinstance(run, dict):
        props["eotriage:ok"] = bool(run.get("ok"))
        if isinstance(run.get("input"), dict) and run["input"].get("sensor"):
            props["eotriage:sensor"] = run["input"]["sensor"]

    box = _footprint(geojson) or ([float(x) for x in bbox] if bbox else None)
    item = pystac.Item(
        id=_item_id(str(name)),
        geometry=_polygon(box) if box else None,
        bbox=box,
        datetime=when,
        properties=props,
    )
    for fname, path in files.items():
        if fname in KNOWN_ASSETS:
            media, roles, title = KNOWN_ASSETS[fname]
            key = fname.rsplit(".", 1)[0].replace(".", "_")
            if fname == "downlink.bin":
                key = "packets"
            item.add_asset(
                key,
                pystac.Asset(str(path.resolve()), title=title, media_type=media, roles=roles),
            )
    chips = d / "chips"
    if chips.is_dir():
        for i, chip in enumerate(sorted(chips.glob("*.png"))):
            item.add_asset(
                f"chip_{i:04d}",
                pystac.Asset(
                    str(chip.resolve()),
                    title=f"Image chip {chip.stem}",
                    media_type="image/png",
                    roles=["visual"],
                ),
            )
    return item


def item_from_decoded(decoded: Decoded, written: WrittenDecoded) -> pystac.Item:
    """The Item of a decoded stream written by :func:`ground_decoder.write_decoded`; without
    detections its footprint is the quicklook's (else the chips') bounding box."""
    boxes = [decoded.quicklook.bbox] if decoded.quicklook is not None else []
    boxes += [c.bbox for c in decoded.chips]
    bbox = (
        [
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        ]
        if boxes
        else None
    )
    return item_from_dir(
        written.directory,
        item_id=decoded.scene or f"scene_{decoded.scene_tag:04x}",
        bbox=bbox,
    )


def build_collection(
    items: Sequence[pystac.Item],
    collection_id: str = DEFAULT_COLLECTION_ID,
    description: str = "eotriage onboard triage products (detections, reports, chips, quicklooks)",
    license: str = "other",
) -> pystac.Collection:
    """A Collection whose extent covers ``items`` (which are added to it)."""
    pystac = _pystac()
    boxes = [i.bbox for i in items if i.bbox]
    spatial = (
        [
            [
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            ]
        ]
        if boxes
        else [[-180.0, -90.0, 180.0, 90.0]]
    )
    times = [i.datetime for i in items if i.datetime is not None]
    temporal = [[min(times), max(times)]] if times else [[None, None]]
    collection = pystac.Collection(
        id=collection_id,
        description=description,
        extent=pystac.Extent(pystac.SpatialExtent(spatial), pystac.TemporalExtent(temporal)),
        license=license,
        title="eotriage products",
    )
    collection.add_items(items)
    return collection


def write_collection(
    product_dirs: Iterable[str | Path],
    root: str | Path,
    collection_id: str = DEFAULT_COLLECTION_ID,
    description: str = "eotriage onboard triage products (detections, reports, chips, quicklooks)",
) -> pystac.Collection:
    """Write ``root/collection.json`` and one Item JSON per product folder, *beside its assets*
    (``<folder>/<item id>.json``), all links and asset hrefs relative (self-contained).

    Folders without product files are skipped with a log message.
    """
    stac = _pystac()
    items: list[pystac.Item] = []
    dirs: list[Path] = []
    for d in product_dirs:
        try:
            items.append(item_from_dir(d))
            dirs.append(Path(d))
        except FileNotFoundError as exc:
            log.info("%s", exc)
    seen: dict[str, int] = {}
    for item in items:  # two folders of one scene: keep both, ids must be unique
        n = seen.get(item.id, 0)
        seen[item.id] = n + 1
        if n:
            item.id = f"{item.id}_{n}"
    collection = build_collection(items, collection_id, description)
    root_p = Path(root).resolve()
    root_p.mkdir(parents=True, exist_ok=True)
    collection.set_self_href(str(root_p / "collection.json"))
    for item, d in zip(items, dirs, strict=True):
        item.set_self_href(str(d.resolve() / f"{item.id}.json"))
        item.make_asset_hrefs_relative()
    collection.save(catalog_type=stac.CatalogType.SELF_CONTAINED)
    return collection


def scene_dirs(root: str | Path) -> list[Path]:
    """The product folders under ``root`` (sub-folders holding a detections.geojson or
    report.json), or ``root`` itself when it is one."""
    r = Path(root)
    if (r / "detections.geojson").is_file() or (r / "report.json").is_file():
        return [r]
    return sorted(
        p
        for p in r.iterdir()
        if p.is_dir() and ((p / "detections.geojson").is_file() or (p / "report.json").is_file())
    )
