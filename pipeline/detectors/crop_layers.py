"""Cropland layers: where crop stress may be judged at all.

A layer is either

* **field parcels**, a GeoJSON FeatureCollection of Polygons / MultiPolygons in WGS84
  (RFC 7946; a legacy ``crs`` member naming another CRS is honoured).  Each feature is one
  parcel; its id is the feature's ``id``, else its ``parcel_id`` or ``id`` property, else its
  1-based position.  Ids must be unique.  Stress is judged per parcel.
* a **cropland raster**, a single-band GeoTIFF in any CRS: non-zero = cropland.  Its pixels are
  grouped into square *units* of about ``unit_m`` (20-60 m) on the raster's own grid; stress is
  judged per unit, and stressed units that touch form one stressed area.

A layer is used for a scene when it overlaps it: a parcel intersects the scene's footprint, or
the raster has a non-zero sample inside it.  Layers come from the run's settings
(``[crop] layers``, ``eotriage run --crop-mask``) and from the folder of layers kept on board
(``[crop] layers_dir``; uplinked layers are installed in ``TARGET/current/crop``).

Parsed layers are cached per process by (path, size, modification time), and so are the label
rasters of a layer on a tile's cell grid (:class:`LabelCache`): a layer seen again on the same
grid (the next pass over a fixed tiling such as Sentinel-2's) is not rasterised again.  A
changed layer file is a new layer object with an empty cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.features import rasterize
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window, from_bounds
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..core.scene import Grid
from ..errors import InputError, TileError, cause_text

log = logging.getLogger(__name__)

PARCEL_SUFFIXES = (".geojson", ".json")
RASTER_SUFFIXES = (".tif", ".tiff")
#: Largest parcels file read (a 10,000-parcel layer with detailed outlines is a few MB).
MAX_PARCELS_BYTES = 256 * 1024 * 1024
WGS84 = CRS.from_epsg(4326)
#: Bytes of label rasters kept per layer (int32 cells: 64 MiB is 16 Mcells, e.g. about half of a
#: full Sentinel-2 tile at 20 m cells); once full, further tiles are rasterised each time.
LABEL_CACHE_BYTES = 64 * 1024 * 1024


class LabelCache:
    """Label rasters (read-only arrays) by grid key, up to ``budget`` bytes: entries are kept
    while they fit and never evicted (tiles come in the same order every pass, so an LRU policy
    would miss every time once the scene is larger than the budget)."""

    def __init__(self, budget: int = LABEL_CACHE_BYTES) -> None:
        self.budget = budget
        self.nbytes = 0
        self._arrays: dict[tuple[Any, ...], np.ndarray] = {}

    def get(self, key: tuple[Any, ...]) -> np.ndarray | None:
        return self._arrays.get(key)

    def put(self, key: tuple[Any, ...], arr: np.ndarray) -> np.ndarray:
        """``arr``, made read-only and kept when it fits in the budget."""
        arr.flags.writeable = False
        if self.nbytes + arr.nbytes <= self.budget:
            self._arrays[key] = arr
            self.nbytes += arr.nbytes
        return arr

    def clear(self) -> None:
        self._arrays.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._arrays)


def take_rows_cols(arr: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``arr[rows, cols]`` for rows (h, 1) and cols (1, w) index arrays, as two 1-D takes (much
    faster than the broadcast fancy index, same values)."""
    return arr.take(rows[:, 0], axis=0).take(cols[0], axis=1)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _transform_coords(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Shapely geometries with every vertex reprojected (one vectorised call)."""
    if src == dst:
        return geoms
    coords = shapely.get_coordinates(geoms)
    if coords.size == 0:
        return geoms
    xs, ys = warp_transform(src, dst, coords[:, 0].tolist(), coords[:, 1].tolist())
    return shapely.set_coordinates(geoms.copy(), np.column_stack([xs, ys]))


def scene_footprint(grid: Grid, crs: CRS = WGS84) -> BaseGeometry:
    """The scene's outline (densified along its edges) in ``crs``."""
    t = grid.transform
    outline = shapely.segmentize(box(0, 0, grid.width, grid.height), max(grid.width, 1) / 16)
    in_crs = _affine_transform(np.array([outline], dtype=object), t)
    return _transform_coords(in_crs, grid.crs, crs)[0]


# --------------------------------------------------------------------------- parcels


@dataclass(frozen=True)
class SceneParcels:
    """The parcels of one layer that a scene sees, in scene pixel coordinates."""

    #: positions of these parcels in the layer
    index: np.ndarray
    #: their outlines in scene pixel coordinates (col, row)
    geoms_px: np.ndarray
    tree: shapely.STRtree
    #: the outlines as GeoJSON-like mappings (made once: rasterize takes them as they are)
    shapes: tuple[dict[str, Any], ...]
    #: cell rasters already made, by (kr0, kc0, shape, step)
    label_cache: LabelCache = field(default_factory=LabelCache, compare=False, repr=False)

    def cells(self, kr0: int, kc0: int, shape: tuple[int, int], step: int) -> np.ndarray:
        """int32 cell raster (read-only): 1 + position (in :attr:`index`) of the parcel holding
        each cell's centre, 0 outside every parcel.  Cell (i, j) covers scene pixels
        ``[step*(kr0+i), step*(kr0+i+1)) x [step*(kc0+j), ...)``.  Where drawn parcels overlap,
        the later one wins.  Made once per cell window (:attr:`label_cache`)."""
        key = (kr0, kc0, tuple(shape), step)
        cached = self.label_cache.get(key)
        if cached is not None:
            return cached
        return self.label_cache.put(key, self._rasterise(kr0, kc0, shape, step))

    def _rasterise(self, kr0: int, kc0: int, shape: tuple[int, int], step: int) -> np.ndarray:
        h, w = shape
        out = np.zeros(shape, np.int32)
        if h == 0 or w == 0 or len(self.index) == 0:
            return out
        area = box(kc0 * step, kr0 * step, (kc0 + w) * step, (kr0 + h) * step)
        hits = self.tree.query(area, predicate="intersects")
        if hits.size == 0:
            return out
        tr = Affine(step, 0, kc0 * step, 0, step, kr0 * step)
        return rasterize(
            ((self.shapes[i], i + 1) for i in np.sort(hits).tolist()),
            out_shape=shape,
            transform=tr,
            fill=0,
            dtype="int32",
        )


class ParcelLayer:
    """Field parcels from a GeoJSON file (see the module docstring)."""

    kind = "parcels"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.stem
        try:
            size = path.stat().st_size
            if size > MAX_PARCELS_BYTES:
                raise InputError(f"{path}: parcels file of {size} bytes is too large")
            doc = json.loads(path.read_bytes())
        except OSError as exc:
            raise InputError(f"{path}: cannot read parcels ({exc.strerror or exc})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: parcels file is not JSON ({exc})") from None
        ids, geoms = _parse_parcels(doc, path)
        self.sha256 = _sha256(path)
        self.ids: tuple[str, ...] = tuple(ids)
        # WGS84, exteriors counter-clockwise as RFC 7946 wants them in a feature
        self.geoms = shapely.orient_polygons(np.array(geoms, dtype=object), exterior_cw=False)
        self.tree = shapely.STRtree(self.geoms)
        self.areas_m2 = _geodesic_areas(self.geoms)
        self._scene_cache: dict[tuple[Any, ...], SceneParcels] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def label_cache(self) -> LabelCache:
        """The cell rasters of the scene grid in use (empty before any scene)."""
        for sp in self._scene_cache.values():
            return sp.label_cache
        return LabelCache(0)

    def overlaps(self, grid: Grid) -> bool:
        foot = scene_footprint(grid)
        return bool(self.tree.query(foot, predicate="intersects").size)

    def for_scene(self, grid: Grid) -> SceneParcels:
        """The parcels intersecting the scene, projected to its pixel coordinates."""
        key = (grid.width, grid.height, tuple(grid.transform)[:6], grid.crs.to_wkt())
        cached = self._scene_cache.get(key)
        if cached is not None:
            return cached
        foot = scene_footprint(grid)
        idx = np.sort(self.tree.query(foot, predicate="intersects"))
        geoms = _transform_coords(self.geoms[idx], WGS84, grid.crs)
        inv = ~grid.transform
        geoms_px = _affine_transform(geoms, inv)
        shapes = tuple(mapping(g) for g in geoms_px)
        out = SceneParcels(idx, geoms_px, shapely.STRtree(geoms_px), shapes)
        self._scene_cache = {key: out}  # one scene at a time
        return out


def _affine_transform(geoms: np.ndarray, t: Affine) -> np.ndarray:
    """Every vertex of ``geoms`` mapped by ``t`` (one vectorised call)."""
    coords = shapely.get_coordinates(geoms)
    if coords.size == 0:
        return geoms
    x = t.a * coords[:, 0] + t.b * coords[:, 1] + t.c
    y = t.d * coords[:, 0] + t.e * coords[:, 1] + t.f
    return shapely.set_coordinates(geoms.copy(), np.column_stack([x, y]))


def _geodesic_areas(geoms: np.ndarray) -> np.ndarray:
    """Approximate areas (m²) of WGS84 polygons: planar area scaled at each one's latitude."""
    out = np.zeros(len(geoms))
    for i, g in enumerate(geoms):
        lat = g.centroid.y
        out[i] = g.area * (111_320.0**2) * math.cos(math.radians(lat))
    return out


def _parse_parcels(doc: Any, path: Path) -> tuple[list[str], list[BaseGeometry]]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InputError(f"{path}: parcels must be a GeoJSON FeatureCollection")
    feats = doc.get("features")
    if not isinstance(feats, list) or not feats:
        raise InputError(f"{path}: parcels file has no features")
    src = WGS84
    crs_member = doc.get("crs")
    if isinstance(crs_member, dict):
        name = str((crs_member.get("properties") or {}).get("name", ""))
        if name and "CRS84" not in name:
            try:
                src = CRS.from_user_input(name)
            except CRSError as exc:
                raise InputError(f"{path}: unknown crs {name!r} ({exc})") from None
    ids: list[str] = []
    geoms: list[BaseGeometry] = []
    for i, f in enumerate(feats):
        if not isinstance(f, dict):
            raise InputError(f"{path}: feature {i + 1} is not an object")
        props = f.get("properties") or {}
        pid = f.get("id")
        if pid is None and isinstance(props, dict):
            pid = props.get("parcel_id", props.get("id"))
        pid = str(pid) if pid is not None else str(i + 1)
        try:
            g = shape(f.get("geometry"))
        except (AttributeError, TypeError, ValueError, shapely.errors.GEOSException) as exc:
            raise InputError(f"{path}: parcel {pid}: bad geometry ({exc})") from None
        if g.geom_type not in ("Polygon", "MultiPolygon") or g.is_empty:
            raise InputError(f"{path}: parcel {pid}: a {g.geom_type}, not a polygon")
        if not g.is_valid:
            g = shapely.make_valid(g)
            g = shapely.union_all([p for p in getattr(g, "geoms", [g]) if p.area > 0])
        ids.append(pid)
        geoms.append(g)
    dup = sorted({x for x in ids if ids.count(x) > 1}) if len(set(ids)) != len(ids) else []
    if dup:
        raise InputError(f"{path}: parcel ids used twice: {', '.join(dup[:5])}")
    if src != WGS84:
        geoms = list(_transform_coords(np.array(geoms, dtype=object), src, WGS84))
    lon = np.array([g.bounds[0] for g in geoms] + [g.bounds[2] for g in geoms])
    lat = np.array([g.bounds[1] for g in geoms] + [g.bounds[3] for g in geoms])
    if lon.min() < -180 or lon.max() > 180 or lat.min() < -90 or lat.max() > 90:
        raise InputError(f"{path}: parcel coordinates are not longitude/latitude (RFC 7946)")
    return ids, geoms


# --------------------------------------------------------------------------- raster


def aligned_index(
    src: Affine,
    src_shape: tuple[int, ...],
    dst: Affine,
    dst_shape: tuple[int, int],
    same_crs: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Nearest-neighbour sampling without a warp when both grids share a CRS and are north-up:
    (source rows (h, 1), source cols (1, w), inside mask (h, w)) of every destination cell
    centre; None when a warp is needed."""
    if not same_crs or src.b or src.d or dst.b or dst.d:
        return None
    h, w = dst_shape
    x = dst.c + dst.a * (np.arange(w) + 0.5)
    y = dst.f + dst.e * (np.arange(h) + 0.5)
    cols = np.floor((x - src.c) / src.a).astype(np.int64)
    rows = np.floor((y - src.f) / src.e).astype(np.int64)
    ok_c = (cols >= 0) & (cols < src_shape[1])
    ok_r = (rows >= 0) & (rows < src_shape[0])
    inside = ok_r[:, None] & ok_c[None, :]
    return (
        np.clip(rows, 0, src_shape[0] - 1)[:, None],
        np.clip(cols, 0, src_shape[1] - 1)[None, :],
        inside,
    )


class RasterLayer:
    """A cropland raster (see the module docstring), grouped into units of ~``unit_m``."""

    kind = "raster"

    def __init__(self, path: Path, unit_m: float) -> None:
        self.path = path
        self.name = path.stem
        try:
            self.ds = rasterio.open(path)
        except RasterioError as exc:
            raise InputError(f"{path}: cannot open cropland raster ({cause_text(exc)})") from None
        if self.ds.crs is None:
            self.ds.close()
            raise InputError(f"{path}: cropland raster has no CRS")
        self.sha256 = _sha256(path)
        t = self.ds.transform
        res = math.sqrt(abs(t.a * t.e))
        if self.ds.crs.is_geographic:
            lat = (self.ds.bounds.top + self.ds.bounds.bottom) / 2
            res *= 111_320.0 * math.sqrt(math.cos(math.radians(lat)))
        #: layer pixels per unit side
        self.k = max(1, int(round(unit_m / res)))
        self.unit_m = self.k * res
        self.units_shape = (-(-self.ds.height // self.k), -(-self.ds.width // self.k))
        self.bounds_wgs84 = transform_bounds(self.ds.crs, WGS84, *self.ds.bounds, densify_pts=21)
        #: unit rasters already made, by grid
        self.label_cache = LabelCache()

    def close(self) -> None:
        self.ds.close()

    def _window(self, bounds: tuple[float, float, float, float], crs: CRS) -> Window | None:
        b = transform_bounds(crs, self.ds.crs, *bounds, densify_pts=21)
        win = from_bounds(*b, transform=self.ds.transform)
        c0 = max(0, int(np.floor(win.col_off)) - 2)
        r0 = max(0, int(np.floor(win.row_off)) - 2)
        c1 = min(self.ds.width, int(np.ceil(win.col_off + win.width)) + 2)
        r1 = min(self.ds.height, int(np.ceil(win.row_off + win.height)) + 2)
        if c1 <= c0 or r1 <= r0:
            return None
        return Window(c0, r0, c1 - c0, r1 - r0)

    def overlaps(self, grid: Grid) -> bool:
        foot = scene_footprint(grid)
        if not foot.intersects(box(*self.bounds_wgs84)):
            return False
        left, top = grid.transform @ (0, 0)
        right, bottom = grid.transform @ (grid.width, grid.height)
        bounds = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
        try:
            win = self._window(bounds, grid.crs)
            if win is None:
                return False
            scale = max(1, int(max(win.width, win.height) // 512))
            arr = self.ds.read(
                1,
                window=win,
                out_shape=(max(1, int(win.height) // scale), max(1, int(win.width) // scale)),
                resampling=Resampling.average,
            )
        except (RasterioError, ValueError) as exc:
            raise InputError(
                f"{self.path}: cannot read cropland raster ({cause_text(exc)})"
            ) from None
        nodata = self.ds.nodata
        valid = arr != nodata if nodata is not None else np.ones(arr.shape, bool)
        return bool(np.any((arr != 0) & valid))

    def units(self, shape: tuple[int, int], transform: Affine, crs: CRS) -> np.ndarray:
        """int32 array (read-only) of ``shape`` on the grid (``transform``, ``crs``): 1 + the
        unit index (row-major over :attr:`units_shape`) of the cropland unit holding each cell,
        0 where the raster says no cropland or does not reach.  Made once per grid
        (:attr:`label_cache`)."""
        key = (tuple(shape), tuple(transform)[:6], crs.to_wkt())
        cached = self.label_cache.get(key)
        if cached is not None:
            return cached
        return self.label_cache.put(key, self._units(shape, transform, crs))

    def _units(self, shape: tuple[int, int], transform: Affine, crs: CRS) -> np.ndarray:
        h, w = shape
        out = np.zeros(shape, np.int32)
        left, top = transform @ (0, 0)
        right, bottom = transform @ (w, h)
        bounds = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
        try:
            win = self._window(bounds, crs)
            if win is None:
                return out
            src = self.ds.read(1, window=win)
            nodata = self.ds.nodata
            crop = src != 0
            if nodata is not None:
                crop &= src != nodata
            r0, c0 = int(win.row_off), int(win.col_off)
            rows = (np.arange(r0, r0 + src.shape[0]) // self.k)[:, None]
            cols = (np.arange(c0, c0 + src.shape[1]) // self.k)[None, :]
            uid = (rows * self.units_shape[1] + cols + 1).astype(np.int32)
            uid[~crop] = 0
            src_tr = self.ds.window_transform(win)
            fast = aligned_index(src_tr, src.shape, transform, shape, crs == self.ds.crs)
            if fast is not None:
                rr, cc, inside = fast
                return np.where(inside, take_rows_cols(uid, rr, cc), 0).astype(np.int32)
            reproject(
                uid,
                out,
                src_transform=src_tr,
                src_crs=self.ds.crs,
                src_nodata=0,
                dst_transform=transform,
                dst_crs=crs,
                dst_nodata=0,
                resampling=Resampling.nearest,
            )
        except (RasterioError, ValueError) as exc:
            raise TileError(
                f"{self.path}: cannot read cropland raster ({cause_text(exc)})"
            ) from None
        return out


CropLayer = ParcelLayer | RasterLayer

_CACHE: dict[tuple[str, int, int, float], CropLayer] = {}


def load_layer(path: str | Path, unit_m: float = 40.0) -> CropLayer:
    """A parcels file (``.geojson``/``.json``) or cropland raster (``.tif``/``.tiff``); cached
    per process.  Raises :class:`InputError` for a file that is not a usable layer."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in PARCEL_SUFFIXES + RASTER_SUFFIXES:
        raise InputError(
            f"{p}: not a cropland layer (expected GeoJSON parcels .geojson/.json or a GeoTIFF "
            "cropland raster .tif)"
        )
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"{p}: cannot read cropland layer ({exc.strerror or exc})") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, float(unit_m))
    layer = _CACHE.get(key)
    if layer is None:
        layer = ParcelLayer(p) if suffix in PARCEL_SUFFIXES else RasterLayer(p, unit_m)
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = layer
    return layer


def layer_paths(layers: Sequence[str], layers_dir: Path | None) -> list[Path]:
    """The given layer files, then every layer file in ``layers_dir`` (sorted), once each."""
    out: list[Path] = [Path(p) for p in layers]
    if layers_dir is not None:
        d = Path(layers_dir)
        if not d.is_dir():
            raise InputError(f"{d}: cropland layers folder not found")
        out += sorted(
            p
            for p in d.iterdir()
            if p.is_file() and p.suffix.lower() in PARCEL_SUFFIXES + RASTER_SUFFIXES
        )
    seen: set[str] = set()
    unique = []
    for p in out:
        k = str(p.resolve())
        if k not in seen:
            seen.add(k)
            unique.append(p)
    return unique


def load_layers(paths: Iterable[Path], unit_m: float) -> list[CropLayer]:
    return [load_layer(p, unit_m) for p in paths]


def check_layer_bytes(data: bytes, name: str) -> None:
    """Raise :class:`InputError` unless ``data`` is a usable layer file named ``name`` (used on
    uplink bundles before they are installed)."""
    import tempfile

    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / Path(name).name
        p.write_bytes(data)
        layer = load_layer(p)
        if isinstance(layer, RasterLayer):
            layer.close()
        _CACHE.clear()
