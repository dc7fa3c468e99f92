"""Crop-stress detector: vegetation indices inside cropland, run by ``models/crop_stress.onnx``.

Per tile:

1. The tile's bands are sampled on a coarser *cell* grid (``CropSettings.grid_m``, 20 m: every
   2nd pixel of a 10 m tile, the native grid of the red-edge and SWIR bands).  Cells are aligned
   to the scene's pixel (0, 0), so every tiling sees the same cells.
2. The ONNX graph computes NDVI, NDRE, NDMI, MSI, the land class (water / bare soil or built-up /
   other vegetation / cropland) and the stress and severity masks.  The cropland mask comes from
   an uplinked raster (``CropSettings.cropland_mask``) when given, else from the spectral rule;
   an optional baseline raster of expected NDVI turns stress into a drop test.
3. A morphological opening (3 x 3 cells) removes isolated noisy cells, a closing (restricted to
   cropland) fills one-cell holes; stressed cells of the tile core become components, their
   polygons drawn in scene pixel coordinates (a cell covers step x step pixels).

Pieces cut by tile edges merge in the engine (sums); :meth:`CropDetector.finalise` then clips
the merged polygon to the scene, drops areas below ``CropSettings.min_area_m2`` and reports
area, index means, tests that fired and severity.

Bands missing for an index (no red-edge on Landsat, no SWIR on a 4-band product) only skip that
index; the skipped indices are logged and listed in each feature (``indices_skipped``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import cv2
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.features import shapes
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window, from_bounds
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from ..core.ingest import TileData
from ..core.onnx_models import OnnxModel, detector_model
from ..core.results import Detection
from ..core.scene import Grid, Scene
from ..core.vectorise import (
    SUM,
    Component,
    centroid_lonlat,
    label_components,
    pixel_to_wgs84,
    stats_by_label,
)
from ..errors import InputError, TileError, cause_text
from ..settings import Settings, manifest_thresholds

log = logging.getLogger(__name__)

MODEL_NAME = "crop_stress"
#: Roles the detector cannot run without.
ROLES = ("red", "nir")
#: Roles used when present: water mask (green), NDRE (rededge1 + nir08), NDMI/MSI (swir16).
OPTIONAL_ROLES = ("green", "rededge1", "nir08", "swir16")
#: Index -> roles it needs.
INDEX_ROLES: Mapping[str, tuple[str, ...]] = {
    "ndvi": ("nir", "red"),
    "ndre": ("nir08", "rededge1"),
    "ndmi": ("nir", "swir16"),
    "msi": ("swir16", "nir"),
}
#: A test is reported as fired for a polygon when it fired on at least this share of its cells.
TEST_SHARE = 0.5
#: Baseline value fed where there is none (the graph treats < -1 as "no baseline").
NO_BASELINE = -9.0
_K3 = np.ones((3, 3), np.uint8)
_ONE = np.ones((1, 1, 1, 1), np.float32)
_ZERO = np.zeros((1, 1, 1, 1), np.float32)
_NONE = np.full((1, 1, 1, 1), NO_BASELINE, np.float32)


def _polygons(labels: np.ndarray, transform: Affine) -> dict[int, BaseGeometry]:
    """Label image -> {label: polygon or multipolygon}, vertices mapped by ``transform``.

    Same geometry as :func:`pipeline.core.vectorise.component_polygons` (GDAL polygonize), but the
    shapely objects are built from coordinate arrays and corner-touching parts form a
    MultiPolygon without a union: about 1.5x faster on field-edge polygons.
    """
    parts: dict[int, list[BaseGeometry]] = {}
    for geom, value in shapes(labels, mask=labels > 0, connectivity=4, transform=transform):
        rings = geom["coordinates"]
        shell = np.asarray(rings[0], dtype=np.float64)
        if len(rings) == 1:
            poly = shapely.polygons(shell)
        else:
            poly = Polygon(shell, [np.asarray(r, dtype=np.float64) for r in rings[1:]])
        parts.setdefault(int(value), []).append(poly)
    # the 4-connected parts of one 8-connected component touch only at corners: a valid
    # MultiPolygon as they are (no union needed)
    return {k: (v[0] if len(v) == 1 else MultiPolygon(v)) for k, v in parts.items()}


class RasterSampler:
    """An uplinked raster (any CRS / grid) sampled nearest-neighbour onto a tile's cell grid.

    Only the window covering the tile's bounds is read.
    """

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what
        try:
            self.ds = rasterio.open(path)
        except RasterioError as exc:
            raise InputError(f"{path}: cannot open {what} ({cause_text(exc)})") from None
        if self.ds.crs is None:
            self.ds.close()
            raise InputError(f"{path}: {what} has no CRS")

    def close(self) -> None:
        self.ds.close()

    def sample(
        self, shape: tuple[int, int], transform: Affine, crs: CRS, fill: float
    ) -> np.ndarray:
        """float32 array of ``shape`` on the grid (``transform``, ``crs``); ``fill`` where the
        raster has no data or does not reach."""
        h, w = shape
        out = np.full(shape, fill, np.float32)
        left, top = transform @ (0, 0)
        right, bottom = transform @ (w, h)
        try:
            b = transform_bounds(
                crs,
                self.ds.crs,
                min(left, right),
                min(top, bottom),
                max(left, right),
                max(top, bottom),
                densify_pts=21,
            )
            win = from_bounds(*b, transform=self.ds.transform)
            c0 = max(0, int(np.floor(win.col_off)) - 2)
            r0 = max(0, int(np.floor(win.row_off)) - 2)
            c1 = min(self.ds.width, int(np.ceil(win.col_off + win.width)) + 2)
            r1 = min(self.ds.height, int(np.ceil(win.row_off + win.height)) + 2)
            if c1 <= c0 or r1 <= r0:
                return out
            src_win = Window(c0, r0, c1 - c0, r1 - r0)
            src = self.ds.read(1, window=src_win).astype(np.float32)
            reproject(
                src,
                out,
                src_transform=self.ds.window_transform(src_win),
                src_crs=self.ds.crs,
                src_nodata=self.ds.nodata,
                dst_transform=transform,
                dst_crs=crs,
                dst_nodata=fill,
                resampling=Resampling.nearest,
            )
        except (RasterioError, ValueError) as exc:
            raise TileError(f"{self.path}: cannot read {self.what} ({cause_text(exc)})") from None
        np.nan_to_num(out, copy=False, nan=fill)
        return out


class CropDetector:
    """Per tile: cell-grid sampling -> ONNX index tests -> clean-up -> stressed components."""

    name = "crop"
    cls = "crop_stress"
    roles = ROLES
    #: under cloud or shadow (low indices under cloud or shadow are not stress: dropped)
    under_cloud = "drop"

    def __init__(self, settings: Settings, model: OnnxModel | None = None) -> None:
        self.settings = settings
        self.model = model or detector_model(MODEL_NAME, settings)
        th = manifest_thresholds(settings.crop, self.model.info.thresholds)
        self.thresholds = th
        self._feeds = {k: np.array([v], np.float32) for k, v in th.items()}
        self.cropland = (
            RasterSampler(settings.crop.cropland_mask, "cropland mask")
            if settings.crop.cropland_mask
            else None
        )
        self.baseline = (
            RasterSampler(settings.crop.baseline_ndvi, "baseline NDVI raster")
            if settings.crop.baseline_ndvi
            else None
        )
        self._logged: set[str] = set()

    @property
    def models(self) -> tuple[OnnxModel, ...]:
        return (self.model,)

    # ------------------------------------------------------------------ scene facts

    def step(self, grid: Grid) -> int:
        """Working-grid pixels per cell side (2 for 10 m pixels and 20 m cells)."""
        return max(1, int(round(self.settings.crop.grid_m / grid.ground_res_m)))

    def band_names(self, scene: Scene) -> list[str]:
        return [
            scene.band_for_role(r).name for r in (*ROLES, *OPTIONAL_ROLES) if scene.has_roles(r)
        ]

    def context_px(self, grid: Grid) -> int:
        # opening + closing with 3 x 3 cells reach 4 cells; one more for safety
        return 5 * self.step(grid)

    def skipped_indices(self, scene: Scene) -> list[str]:
        """Indices that cannot be computed from the scene's bands."""
        return [k for k, roles in INDEX_ROLES.items() if not scene.has_roles(*roles)]

    # ------------------------------------------------------------------ per tile

    def analyse(self, data: TileData, scene: Scene) -> dict[str, np.ndarray]:
        """Run the model on the tile's cell grid.

        Returns the model outputs as 2-D cell arrays (``stress``, ``severe``, ``landclass``,
        ``ndvi``, ``ndre``, ``ndmi``, ``msi``; a skipped index is a 1 x 1 array), the cleaned
        stress mask ``clean``, the ``baseline`` cells (``NO_BASELINE`` where none) and the cell
        grid's ``origin`` (first cell row, column) and ``step``.
        """
        step = self.step(scene.grid)
        read = data.tile.read
        ro, co = int(read.row_off), int(read.col_off)
        h, w = data.shape
        kr0, kc0 = -(-ro // step), -(-co // step)
        sl = (slice(kr0 * step - ro, h, step), slice(kc0 * step - co, w, step))

        def cells(role: str) -> np.ndarray | None:
            if not scene.has_roles(role):
                return None
            arr = data.bands[scene.band_for_role(role).name]
            return np.ascontiguousarray(arr[sl])[None, None]

        red, nir = cells("red"), cells("nir")
        assert red is not None and nir is not None  # required roles, checked by the engine
        shape = red.shape[2:]
        # all-valid tiles (the usual case) feed a broadcast 1 instead of a full array
        valid = _ONE if data.valid.all() else data.valid[sl].astype(np.float32)[None, None]
        green, re1, n8, sw = (cells(r) for r in OPTIONAL_ROLES)
        use_ndre = re1 is not None and n8 is not None
        use_swir = sw is not None
        cell_tr = (
            scene.grid.transform @ Affine.translation(kc0 * step, kr0 * step) @ Affine.scale(step)
        )
        if self.cropland is not None:
            m = self.cropland.sample(shape, cell_tr, scene.grid.crs, 0.0)
            cropland = (m != 0).astype(np.float32)[None, None]
        else:
            cropland = _ONE
        if self.baseline is not None:
            baseline = self.baseline.sample(shape, cell_tr, scene.grid.crs, NO_BASELINE)[None, None]
        else:
            baseline = _NONE
        feeds = {
            "red": red,
            "nir": nir,
            "valid": valid,
            "green": green if green is not None else _ZERO,
            "rededge1": re1 if use_ndre and re1 is not None else _ZERO,
            "nir08": n8 if use_ndre and n8 is not None else _ZERO,
            "swir16": sw if sw is not None else _ZERO,
            "cropland": cropland,
            "baseline": baseline,
            "use_ndre": np.array([float(use_ndre)], np.float32),
            "use_swir": np.array([float(use_swir)], np.float32),
            **self._feeds,
        }
        names = ("stress", "severe", "landclass", "ndvi", "ndre", "ndmi", "msi")
        out = {k: v[0, 0] for k, v in zip(names, self.model.run(feeds), strict=True)}
        crop = out["landclass"] == 4
        clean = cv2.morphologyEx(out["stress"], cv2.MORPH_OPEN, _K3)
        clean = cv2.morphologyEx(clean, cv2.MORPH_CLOSE, _K3)
        clean = np.logical_and(clean, crop)
        out["clean"] = clean.view(np.uint8)
        out["baseline"] = baseline[0, 0]
        out["origin"] = np.array([kr0, kc0])
        out["step"] = np.array(step)
        return out

    def detect(self, data: TileData, scene: Scene) -> list[Component]:
        skipped = self.skipped_indices(scene)
        if skipped and str(scene.path) not in self._logged:
            self._logged.add(str(scene.path))
            log.info("%s: crop-stress index(es) %s skipped (bands missing)", scene.name, skipped)
        a = self.analyse(data, scene)
        step = int(a["step"])
        kr0, kc0 = (int(v) for v in a["origin"])
        core = data.tile.core
        cr0 = -(-int(core.row_off) // step)
        cc0 = -(-int(core.col_off) // step)
        cr1 = -(-int(core.row_off + core.height) // step)
        cc1 = -(-int(core.col_off + core.width) // step)
        core_sl = (slice(cr0 - kr0, cr1 - kr0), slice(cc0 - kc0, cc1 - kc0))
        mask = a["clean"][core_sl]
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return []
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        sub = (
            slice(core_sl[0].start + r0, core_sl[0].start + r1),
            slice(core_sl[1].start + c0, core_sl[1].start + c1),
        )
        th = self.thresholds
        ndvi = a["ndvi"][sub]
        values: dict[str, np.ndarray] = {
            "sum_ndvi": ndvi,
            "n_severe": a["severe"][sub].astype(np.float32),
            "n_ndvi_low": (ndvi < th["ndvi_stress"]).astype(np.float32),
        }
        if a["ndre"].shape == a["ndvi"].shape and "ndre" not in skipped:
            ndre = a["ndre"][sub]
            values["sum_ndre"] = ndre
            values["n_ndre_low"] = (ndre < th["ndre_stress"]).astype(np.float32)
        if a["ndmi"].shape == a["ndvi"].shape and "ndmi" not in skipped:
            ndmi, msi = a["ndmi"][sub], a["msi"][sub]
            values["sum_ndmi"] = ndmi
            values["sum_msi"] = msi
            values["n_ndmi_low"] = (ndmi < th["ndmi_stress"]).astype(np.float32)
            values["n_msi_high"] = (msi > th["msi_severe"]).astype(np.float32)
        base = a["baseline"]
        if base.shape == a["ndvi"].shape:
            b = base[sub]
            has = (b > -1.0) & (b >= th["bare_ndvi_max"])
            drop = np.where(has, b - ndvi, 0.0).astype(np.float32)
            values["n_baseline"] = has.astype(np.float32)
            values["sum_drop"] = drop
            values["n_ndvi_drop"] = (has & (drop > th["drop_min"])).astype(np.float32)
        reducers = dict.fromkeys(values, SUM)
        # components of the mask's bounding box; those that cannot continue in a neighbour
        # tile (not touching the core's edge) and are below the minimum area are dropped
        # before polygonising (the costly step)
        n, labels, cc = label_components(mask[r0:r1, c0:c1])
        x, y = cc[1:, 0] + c0, cc[1:, 1] + r0
        w, h = cc[1:, 2], cc[1:, 3]
        at_edge = (x == 0) | (y == 0) | (x + w == mask.shape[1]) | (y + h == mask.shape[0])
        cell_m2 = (step * scene.grid.ground_res_m) ** 2
        keep = at_edge | (cc[1:, 4] * cell_m2 >= self.settings.crop.min_area_m2)
        if not keep.any():
            return []
        if not keep.all():
            lut = np.zeros(n + 1, np.int32)
            lut[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
            labels = lut[labels]
            at_edge = at_edge[keep]
            n = int(keep.sum())
        vals = {**values, "n_pixels": np.ones(labels.shape, np.float32)}
        red = {**reducers, "n_pixels": SUM}
        per = stats_by_label(labels, n, vals, red)
        # cell (i, j) covers scene pixels [step*i, step*(i+1)) x [step*j, step*(j+1))
        to_px = Affine(step, 0, (cc0 + c0) * step, 0, step, (cr0 + r0) * step)
        polys = _polygons(labels, to_px)
        return [
            Component(
                self.cls,
                data.tile.id,
                polys[i + 1],
                {k: float(v[i]) for k, v in per.items()},
                red,
                bool(at_edge[i]),
            )
            for i in range(n)
        ]

    # ------------------------------------------------------------------ per object

    def finalise(self, comp: Component, scene: Scene) -> Detection | None:
        """Merged component -> WGS84 detection (None when smaller than ``min_area_m2``)."""
        grid = scene.grid
        step = self.step(grid)
        geom = comp.geometry
        minx, miny, maxx, maxy = geom.bounds
        if maxx > grid.width or maxy > grid.height:
            geom = geom.intersection(box(0, 0, grid.width, grid.height))
        area_px = float(geom.area)
        area_m2 = area_px * grid.pixel_area_m2
        if area_m2 < self.settings.crop.min_area_m2 or area_px <= 0:
            return None
        st = comp.stats
        n = st["n_pixels"]
        severe_share = st["n_severe"] / n
        tests = [
            t
            for t in ("ndvi_low", "ndre_low", "ndmi_low", "msi_high", "ndvi_drop")
            if st.get(f"n_{t}", 0.0) >= TEST_SHARE * n and st.get(f"n_{t}", 0.0) > 0
        ]
        wgs = pixel_to_wgs84(geom, grid)
        lon, lat = centroid_lonlat(wgs)
        minx, miny, maxx, maxy = geom.bounds
        measures: dict[str, float | int | str] = {
            "area_km2": round(area_m2 / 1e6, 5),
            "pixel_count": int(round(area_px)),
            "cell_count": int(n),
            "cell_m": round(step * grid.ground_res_m, 2),
            "mean_ndvi": round(st["sum_ndvi"] / n, 4),
        }
        for k in ("ndre", "ndmi", "msi"):
            if f"sum_{k}" in st:
                measures[f"mean_{k}"] = round(st[f"sum_{k}"] / n, 4)
        if st.get("n_baseline", 0.0) > 0:
            measures["mean_ndvi_drop"] = round(st["sum_drop"] / st["n_baseline"], 4)
            measures["baseline_share"] = round(st["n_baseline"] / n, 3)
        skipped = self.skipped_indices(scene)
        measures.update(
            {
                "tests": ",".join(tests),
                "severity": "severe" if severe_share >= 0.5 else "moderate",
                "severe_share": round(severe_share, 3),
                "centroid_lon": round(lon, 6),
                "centroid_lat": round(lat, 6),
                "row_min": int(miny),
                "col_min": int(minx),
                "row_max": int(maxy) - 1,
                "col_max": int(maxx) - 1,
                "tiles": comp.tile_id,
            }
        )
        if skipped:
            measures["indices_skipped"] = ",".join(skipped)
        score = min(1.0, max(0.0, 0.5 + 0.5 * severe_share))
        return Detection(self.cls, score, wgs, measures)
