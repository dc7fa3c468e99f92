"""Crop-stress detector: fields worse than they should be, only inside a cropland layer.

Crop stress is judged only where a cropland layer (field parcels or a cropland raster, see
:mod:`pipeline.detectors.crop_layers`) covers the scene; without one the detector is skipped
(``skip_reason``: "no cropland layer covers this scene") and reports nothing.  Inside the
layer, a field is stressed when it is worse than expected, against two references:

* **its own history** (:mod:`pipeline.detectors.crop_history`): the NDVI and NDMI of its recent
  clear passes.  The expected value is the field's recent best (the pass with the highest NDVI
  within ``history_days``); stress is an NDVI drop of at least ``drop_min`` below it confirmed by
  an NDMI drop of ``confirm_min`` (where the scene has SWIR), or an NDMI drop of
  ``ndmi_drop_min`` (water stress shows there first) confirmed by an NDVI drop of
  ``confirm_min``.  In the spirit of the Vegetation Condition Index: the current value against
  the range seen for that place, so a field always sparse has a low best and never drops.  A
  first visit has no history, so this reference is silent.
* **the other fields of the scene**: a robust z-score (median and 1.4826 x MAD) of the field's
  NDVI among the layer's fields seen in the scene; stress is ``z <= -z_min`` and at least
  ``scene_drop_min`` below the median.  This works on a first visit too.  A field whose own
  history shows it rising by ``growth_min`` or more is growing late (sown later), not
  stressed, and is left out by this reference.

Per tile, :meth:`CropDetector.detect` computes the indices on 20 m cells (ONNX graph
``models/crop_stress.onnx``: NDVI, NDRE, NDMI, MSI, and which cells are seen under clear sky and
not water).  Cells under cloud or cloud shadow (``TileData.sky``, or the scene's
``cloud_mask.tif``) are not seen: they never enter the history and never raise stress; a field
needs ``min_clear_share`` of its cells seen to be judged at all.

* **Parcels**: every parcel piece in the tile core becomes a component keyed by the parcel (sums
  of its cells' indices); the engine merges the pieces of a parcel across tiles and
  :meth:`CropDetector.finalise_scene` judges all parcels of the scene at once, writes their
  history and reports one feature per stressed parcel (its outline from the layer).
* **Raster**: cells are grouped into the layer's units (~``unit_m``); each unit seen in the tile's
  read window is judged against its history and against the other units of the window, its
  history is updated, and connected stressed cells of the tile core become components that merge
  across tiles like any area.

Bands missing for an index only skip that index (NDRE on Landsat 8, NDMI/MSI without SWIR);
the feature lists them in ``indices_skipped``.  Red and NIR are required.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window, from_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from ..core.acquisition import scene_acquisition
from ..core.ingest import TileData
from ..core.onnx_models import OnnxModel, detector_model
from ..core.results import Detection
from ..core.scene import Grid, Scene
from ..core.sky import CLEAR as SKY_CLEAR
from ..core.vectorise import (
    MAX,
    SUM,
    Component,
    centroid_lonlat,
    component_polygons,
    label_components,
    orient_rfc7946,
    pixel_to_wgs84,
    reduce_by_index,
)
from ..errors import EotriageError, InputError, TileError, cause_text
from ..settings import Settings, manifest_thresholds
from .crop_history import (
    ParcelHistory,
    RasterHistory,
    Reference,
    add_pass,
    day_number,
    parcel_key,
    reference,
)
from .crop_layers import (
    WGS84,
    CropLayer,
    ParcelLayer,
    RasterLayer,
    SceneParcels,
    aligned_index,
    layer_paths,
    load_layers,
    take_rows_cols,
)

log = logging.getLogger(__name__)

MODEL_NAME = "crop_stress"
#: Roles the detector cannot run without.
ROLES = ("red", "nir")
#: Roles used when present: water test (green), NDRE (rededge1 + nir08), NDMI/MSI (swir16).
OPTIONAL_ROLES = ("green", "rededge1", "nir08", "swir16")
#: Index -> roles it needs.
INDEX_ROLES: Mapping[str, tuple[str, ...]] = {
    "ndvi": ("nir", "red"),
    "ndre": ("nir08", "rededge1"),
    "ndmi": ("nir", "swir16"),
    "msi": ("swir16", "nir"),
}
#: Thresholds the ONNX graph takes as inputs (the others apply to per-field means).
GRAPH_THRESHOLDS = ("water_ndwi_min", "water_ndvi_max")
#: Floor of the scene's robust spread (1.4826 x MAD) of NDVI: fields this alike are not told
#: apart by their z-score alone (about the NDVI noise of a field mean between passes).
MIN_SPREAD = 0.02
#: Floor of a field's recent NDVI range in the VCI reported with each feature.
MIN_RANGE = 0.05
#: Scene cloud mask read when no cloud stage filled ``TileData.sky``: a GeoTIFF beside the
#: bands (any grid; codes as :mod:`pipeline.core.sky`; anything else is not clear).
CLOUD_MASK_NAMES = ("cloud_mask.tif", "CLOUD_MASK.tif", "cloud_mask.tiff")
#: Band-file tags that may hold the acquisition date or time.
DATE_TAGS = (
    "ACQUISITION_DATE",
    "ACQUISITION_TIME",
    "DATATAKE_1_DATATAKE_SENSING_START",
    "PRODUCT_START_TIME",
    "SENSING_TIME",
    "DATETIME_ACQUIRED",
)
#: rasters up to this many samples (a cloud mask) are read whole, once per scene
WHOLE_MAX_PX = 4_000_000
_DATE_RE = re.compile(r"(?<!\d)((?:19|20)\d\d)-?(\d\d)-?(\d\d)(?!\d)")
_K3 = np.ones((3, 3), np.uint8)
_ONE = np.ones((1, 1, 1, 1), np.float32)
_ZERO = np.zeros((1, 1, 1, 1), np.float32)
SUM_KEYS = ("n_cells", "n_seen", "n_usable", "s_ndvi", "s_ndmi", "n_ndmi", "s_ndre", "s_msi")


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Verdict:
    """Per field (unit): whether and why it is stressed.  Arrays, one entry per field."""

    stressed: np.ndarray
    by_history: np.ndarray
    by_scene: np.ndarray
    #: expected NDVI from the field's own history (its recent best), NaN without history
    expected: np.ndarray
    #: drop below it, NaN without history
    drop_history: np.ndarray
    #: NDVI gap below the median field of the scene
    drop_scene: np.ndarray
    #: robust z-score among the scene's fields (NaN when too few fields)
    z: np.ndarray
    #: clear passes behind the history reference
    passes: np.ndarray
    #: VCI = (NDVI - recent low) / (recent best - recent low) (range at least MIN_RANGE), NaN
    #: without history
    vci: np.ndarray
    #: the larger drop of the references that fired (0 when not stressed)
    drop: np.ndarray
    severe: np.ndarray


def _robust_z(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z-scores, gap below the median) of ``x`` with median and 1.4826 x MAD."""
    med = float(np.median(x))
    spread = max(1.4826 * float(np.median(np.abs(x - med))), MIN_SPREAD)
    return (x - med) / spread, med - x


def judge(
    ndvi: np.ndarray,
    ndmi: np.ndarray,
    ref: Reference | None,
    th: Mapping[str, float],
    min_passes: int,
    min_units: int,
) -> Verdict:
    """Judge fields seen in one pass against their history (``ref``, None for none) and
    against each other.  ``ndvi``/``ndmi`` are the fields' means over their clear cells."""
    n = len(ndvi)
    nan = np.full(n, np.nan)
    if ref is not None:
        passes = ref.passes.astype(np.int64)
        expected = np.where(passes >= min_passes, ref.best_ndvi, np.nan)
        low = ref.low_ndvi
        best_ndmi = ref.best_ndmi
    else:
        passes = np.zeros(n, np.int64)
        expected = low = best_ndmi = nan
    has = np.isfinite(expected)
    drop_h = expected - ndvi
    ndmi_drop = best_ndmi - ndmi
    no_ndmi = ~np.isfinite(ndmi_drop)
    with np.errstate(invalid="ignore"):
        # greenness fell (NDVI), confirmed by canopy water where measured; or canopy water
        # fell (NDMI: water stress shows there first), confirmed by greenness
        green_drop = (drop_h >= th["drop_min"]) & (no_ndmi | (ndmi_drop >= th["confirm_min"]))
        water_drop = (ndmi_drop >= th["ndmi_drop_min"]) & (drop_h >= th["confirm_min"])
        by_h = has & (green_drop | water_drop)
    z = nan.copy()
    drop_s = nan.copy()
    if n >= min_units:
        z, drop_s = _robust_z(ndvi)
    # a field far below the others that rose by growth_min or more above its own recent best is
    # growing late (sown later), not stressed: the scene reference stays silent for it
    growing = has & (drop_h <= -th["growth_min"])
    with np.errstate(invalid="ignore"):
        by_s = (z <= -th["z_min"]) & (drop_s >= th["scene_drop_min"]) & ~growing
    stressed = by_h | by_s
    drop = np.maximum(np.where(by_h, drop_h, 0.0), np.where(by_s, drop_s, 0.0))
    # VCI over the field's recent range, widened about its middle to MIN_RANGE (a field that
    # never changed reads 0.5 at its usual value, not 0 or 1)
    half = np.maximum(expected - low, MIN_RANGE) / 2
    mid = (expected + low) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        vci = np.where(has, (ndvi - (mid - half)) / (2 * half), np.nan)
    return Verdict(
        stressed=stressed,
        by_history=by_h,
        by_scene=by_s,
        expected=expected,
        drop_history=np.where(has, drop_h, np.nan),
        drop_scene=drop_s,
        z=z,
        passes=passes,
        vci=vci,
        drop=drop,
        severe=stressed & (drop >= th["drop_severe"]),
    )


def reference_label(by_history: bool, by_scene: bool) -> str:
    return "+".join(k for k, on in (("history", by_history), ("scene", by_scene)) if on)


# --------------------------------------------------------------------------- scene facts


def acquisition_date(scene: Scene) -> dt.date | None:
    """The scene's acquisition date: the one the pipeline records for the scene
    (:func:`pipeline.core.acquisition.scene_acquisition`: sidecar, metadata, labels, file
    name), else from its band files' date tags, else a date (YYYYMMDD or YYYY-MM-DD) in the
    scene or band file name; None when nothing says."""
    try:
        acq = scene_acquisition(scene.path)
    except EotriageError:
        acq = None
    if acq is not None and acq.utc:
        try:
            return dt.date.fromisoformat(acq.utc[:10])
        except ValueError:
            pass
    paths = sorted({b.path for b in scene.bands})
    for p in paths[:1]:
        try:
            with rasterio.open(p) as ds:
                tags = {k.upper(): v for k, v in ds.tags().items()}
        except RasterioError:
            continue
        for key in DATE_TAGS:
            m = _DATE_RE.search(tags.get(key, ""))
            if m:
                return _date(m)
    for text in (scene.name, *(p.stem for p in paths)):
        m = _DATE_RE.search(text)
        if m and (d := _date(m)) is not None:
            return d
    return None


def _date(m: re.Match[str]) -> dt.date | None:
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


class RasterSampler:
    """A raster (any CRS / grid) sampled nearest-neighbour onto a tile's cell grid; only the
    window covering the tile is read."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        try:
            self.ds = rasterio.open(path)
        except RasterioError as exc:
            raise InputError(f"{path}: cannot open {what} ({cause_text(exc)})") from None
        if self.ds.crs is None:
            self.ds.close()
            raise InputError(f"{path}: {what} has no CRS")
        #: a small raster (a cloud mask on its coarse grid) is read once, whole
        self._whole: np.ndarray | None = None
        self._equal: dict[float, np.ndarray] = {}
        if self.ds.width * self.ds.height <= WHOLE_MAX_PX:
            try:
                arr = self.ds.read(1).astype(np.float32)
            except RasterioError as exc:
                raise InputError(f"{path}: cannot read {what} ({cause_text(exc)})") from None
            if self.ds.nodata is not None:
                arr[arr == self.ds.nodata] = np.nan
            self._whole = arr

    def close(self) -> None:
        self.ds.close()

    def equals(
        self, shape: tuple[int, int], transform: Affine, crs: CRS, value: float
    ) -> np.ndarray:
        """bool array of ``shape``: where the raster holds ``value`` (False where it has no
        data or does not reach)."""
        if self._whole is not None:
            fast = aligned_index(
                self.ds.transform, self._whole.shape, transform, shape, crs == self.ds.crs
            )
            if fast is not None:
                if value not in self._equal:
                    self._equal[value] = self._whole == value
                rr, cc, inside = fast
                return np.asarray(take_rows_cols(self._equal[value], rr, cc) & inside)
        return np.asarray(self.sample(shape, transform, crs, np.nan) == value)

    def sample(
        self, shape: tuple[int, int], transform: Affine, crs: CRS, fill: float
    ) -> np.ndarray:
        """float32 array of ``shape`` on the grid (``transform``, ``crs``); ``fill`` where the
        raster has no data or does not reach."""
        h, w = shape
        if self._whole is not None:
            fast = aligned_index(
                self.ds.transform, self._whole.shape, transform, shape, crs == self.ds.crs
            )
            if fast is not None:
                rr, cc, inside = fast
                vals = np.where(inside, take_rows_cols(self._whole, rr, cc), fill)
                return np.nan_to_num(vals, nan=fill).astype(np.float32)
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


@dataclass
class _ActiveLayer:
    """A cropland layer that covers the scene, with what the scene needs of it."""

    index: int
    layer: CropLayer
    parcels: SceneParcels | None = None
    raster_history: RasterHistory | None = None


@dataclass
class _SceneState:
    key: tuple[Any, ...]
    layers: list[_ActiveLayer]
    day: int | None
    clouds: RasterSampler | None


# --------------------------------------------------------------------------- detector


class CropDetector:
    """Per tile: cell indices (ONNX) -> parcel pieces or stressed raster areas; per scene:
    parcels judged together (``finalise_scene``)."""

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
        self._feeds = {k: np.array([th[k]], np.float32) for k in GRAPH_THRESHOLDS}
        cs = settings.crop
        self.layers: list[CropLayer] = load_layers(layer_paths(cs.layers, cs.layers_dir), cs.unit_m)
        self._state: _SceneState | None = None
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
        # raster units are judged from the read window: one unit of context around the core
        units = [
            int(np.ceil(layer.unit_m / grid.ground_res_m))
            for layer in self.layers
            if isinstance(layer, RasterLayer)
        ]
        # (and the 3 x 3 cell opening of stressed raster areas: one cell)
        return max([2 * self.step(grid), *[u + self.step(grid) for u in units]])

    def skipped_indices(self, scene: Scene) -> list[str]:
        """Indices that cannot be computed from the scene's bands."""
        return [k for k, roles in INDEX_ROLES.items() if not scene.has_roles(*roles)]

    def skip_reason(self, scene: Scene) -> str | None:
        """Why crop stress is not judged on this scene (no cropland layer covers it), or None."""
        if not self._scene(scene).layers:
            return "no cropland layer covers this scene"
        return None

    def _scene(self, scene: Scene) -> _SceneState:
        g = scene.grid
        key = (str(scene.path), scene.name, g.width, g.height, tuple(g.transform)[:6])
        if self._state is not None and self._state.key == key:
            return self._state
        cs = self.settings.crop
        active = [
            _ActiveLayer(i, layer) for i, layer in enumerate(self.layers) if layer.overlaps(g)
        ]
        date = acquisition_date(scene) if active else None
        day = day_number(date) if date is not None else None
        if active and cs.history is not None and day is None:
            log.warning(
                "%s: no acquisition date in the band files' tags or names: crop history "
                "neither used nor updated for this scene",
                scene.name,
            )
        for a in active:
            if isinstance(a.layer, ParcelLayer):
                a.parcels = a.layer.for_scene(g)
            elif cs.history is not None and day is not None:
                a.raster_history = RasterHistory(
                    cs.history, a.layer.name, a.layer.sha256, a.layer.units_shape
                )
        clouds = None
        if active and scene.path.is_dir():
            for n in CLOUD_MASK_NAMES:
                if (scene.path / n).is_file():
                    clouds = RasterSampler(scene.path / n, "cloud mask")
                    break
        if self._state is not None:
            self._close_state(self._state)
        self._state = _SceneState(key, active, day, clouds)
        return self._state

    def forget_labels(self) -> None:
        """Drop the label rasters the layers keep per grid (so the next tile is rasterised
        again: a cold start, for benchmarks)."""
        for layer in self.layers:
            layer.label_cache.clear()

    @staticmethod
    def _close_state(state: _SceneState) -> None:
        if state.clouds is not None:
            state.clouds.close()
        for a in state.layers:
            if a.raster_history is not None:
                a.raster_history.close()

    # ------------------------------------------------------------------ per tile

    def cell_grid(self, data: TileData, scene: Scene) -> tuple[int, int, int, int, int]:
        """(step, first cell row, first cell column (scene cells), rows, columns) of the cells
        whose top-left pixel lies in the tile's read window."""
        step = self.step(scene.grid)
        read = data.tile.read
        ro, co = int(read.row_off), int(read.col_off)
        h, w = data.shape
        kr0, kc0 = -(-ro // step), -(-co // step)
        nr = max(0, -(-(h - (kr0 * step - ro)) // step))
        nc = max(0, -(-(w - (kc0 * step - co)) // step))
        return step, kr0, kc0, nr, nc

    def analyse(
        self,
        data: TileData,
        scene: Scene,
        window: tuple[int, int, int, int] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the model on the tile's cell grid, or on ``window`` (first row, end row, first
        column, end column) of it.

        Returns the model outputs as 2-D cell arrays (``seen``, ``usable`` as bool; ``ndvi``,
        ``ndre``, ``ndmi``, ``msi`` as float32, NaN where not computed) and the cells'
        ``origin`` (first cell row, column in scene cells) and ``step``.
        """
        step, kr0, kc0, nr, nc = self.cell_grid(data, scene)
        r0, r1, c0, c1 = window if window is not None else (0, nr, 0, nc)
        read = data.tile.read
        y0 = kr0 * step - int(read.row_off)
        x0 = kc0 * step - int(read.col_off)
        sl = (
            slice(y0 + r0 * step, y0 + r1 * step, step),
            slice(x0 + c0 * step, x0 + c1 * step, step),
        )
        kr0, kc0 = kr0 + r0, kc0 + c0

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
        clear = self._clear(data, scene, sl, shape, kr0, kc0, step)
        green, re1, n8, sw = (cells(r) for r in OPTIONAL_ROLES)
        use_ndre = re1 is not None and n8 is not None
        feeds = {
            "red": red,
            "nir": nir,
            "valid": valid,
            "clear": clear,
            "green": green if green is not None else _ZERO,
            "rededge1": re1 if use_ndre and re1 is not None else _ZERO,
            "nir08": n8 if use_ndre and n8 is not None else _ZERO,
            "swir16": sw if sw is not None else _ZERO,
            "use_ndre": np.array([float(use_ndre)], np.float32),
            "use_swir": np.array([float(sw is not None)], np.float32),
            **self._feeds,
        }
        names = ("seen", "usable", "ndvi", "ndre", "ndmi", "msi")
        out = {k: v[0, 0] for k, v in zip(names, self.model.run(feeds), strict=True)}
        for k in ("seen", "usable"):
            m = out[k].astype(bool)
            out[k] = np.broadcast_to(m, shape) if m.shape != shape else m
        for k in ("ndre", "ndmi", "msi"):
            if out[k].shape != shape:
                out[k] = np.broadcast_to(out[k], shape)
        out["origin"] = np.array([kr0, kc0])
        out["step"] = np.array(step)
        return out

    def _clear(
        self,
        data: TileData,
        scene: Scene,
        sl: tuple[slice, slice],
        shape: tuple[int, int],
        kr0: int,
        kc0: int,
        step: int,
    ) -> np.ndarray:
        """1 where a cell is under clear sky, 0 under cloud, shadow or unknown (cloud stage's
        ``TileData.sky``, else the scene's cloud mask file, else all clear)."""
        if data.sky is not None:
            return (data.sky[sl] == SKY_CLEAR).astype(np.float32)[None, None]
        state = self._scene(scene)
        if state.clouds is None:
            return _ONE
        tr = scene.grid.transform @ Affine.translation(kc0 * step, kr0 * step) @ Affine.scale(step)
        clear = state.clouds.equals(shape, tr, scene.grid.crs, float(SKY_CLEAR))
        return clear.astype(np.float32)[None, None]

    def detect(self, data: TileData, scene: Scene) -> list[Component]:
        state = self._scene(scene)
        if not state.layers:
            return []
        skipped = self.skipped_indices(scene)
        if skipped and str(scene.path) not in self._logged:
            self._logged.add(str(scene.path))
            log.info("%s: crop-stress index(es) %s skipped (bands missing)", scene.name, skipped)
        step, kr0, kc0, nr, nc = self.cell_grid(data, scene)
        # which cells each layer covers (parcel or unit labels, 0: none); the indices are
        # computed on the bounding box of those cells only
        tr = scene.grid.transform @ Affine.translation(kc0 * step, kr0 * step) @ Affine.scale(step)
        labels: list[np.ndarray] = []
        for act in state.layers:
            if act.parcels is not None:
                labels.append(act.parcels.cells(kr0, kc0, (nr, nc), step))
            else:
                assert isinstance(act.layer, RasterLayer)
                labels.append(act.layer.units((nr, nc), tr, scene.grid.crs))
        covered = np.zeros((nr, nc), bool)
        for lab in labels:
            covered |= lab > 0
        rows = np.flatnonzero(covered.any(axis=1))
        if rows.size == 0:
            return []
        cols = np.flatnonzero(covered.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        a = self.analyse(data, scene, (r0, r1, c0, c1))
        ar0, ac0 = kr0 + r0, kc0 + c0  # scene cell of the analysed window's first cell
        core = data.tile.core
        cr0 = -(-int(core.row_off) // step)
        cc0 = -(-int(core.col_off) // step)
        cr1 = -(-int(core.row_off + core.height) // step)
        cc1 = -(-int(core.col_off + core.width) // step)
        core_sl = (
            slice(max(0, cr0 - ar0), max(0, min(r1 - r0, cr1 - ar0))),
            slice(max(0, cc0 - ac0), max(0, min(c1 - c0, cc1 - ac0))),
        )
        core_origin = (ar0 + core_sl[0].start, ac0 + core_sl[1].start)
        out: list[Component] = []
        for act, lab in zip(state.layers, labels, strict=True):
            sub = lab[r0:r1, c0:c1]
            if act.parcels is not None:
                out += self._parcel_pieces(act, a, sub, core_sl, data, scene)
            else:
                out += self._raster_areas(act, a, sub, core_sl, core_origin, step, data, scene)
        return out

    def _parcel_pieces(
        self,
        act: _ActiveLayer,
        a: Mapping[str, np.ndarray],
        labels: np.ndarray,
        core_sl: tuple[slice, slice],
        data: TileData,
        scene: Scene,
    ) -> list[Component]:
        """One component per parcel with cells in the tile core: sums over its cells
        (``labels``: 1 + the parcel of each analysed cell, 0: none)."""
        assert act.parcels is not None
        pid = labels[core_sl]
        inside = pid > 0
        if not inside.any():
            return []
        # only the cells inside a parcel, in raster order (the sums come out the same)
        keys = ("seen", "usable", "ndvi", "ndmi", "ndre", "msi")
        skipped = self.skipped_indices(scene)
        sub = {k: a[k][core_sl][inside] for k in keys if k not in skipped}
        n_sp = len(act.parcels.index)
        all_sums = _unit_sums(pid[inside], n_sp, sub, skipped)
        local = np.flatnonzero(all_sums["n_cells"])
        sums = {k: v[local] for k, v in all_sums.items()}
        b = shapely.bounds(act.parcels.geoms_px[local])
        core = data.tile.core
        x0, y0 = int(core.col_off), int(core.row_off)
        x1, y1 = x0 + int(core.width), y0 + int(core.height)
        # a piece's geometry only says where it lies (pieces merge by their parcel key)
        geoms = shapely.box(
            np.maximum(b[:, 0], x0),
            np.maximum(b[:, 1], y0),
            np.minimum(b[:, 2], x1),
            np.minimum(b[:, 3], y1),
        )
        rules = dict.fromkeys(SUM_KEYS, SUM)
        names = tuple(sums)
        rows = zip(*(v.tolist() for v in sums.values()), strict=True)
        tile_id = data.tile.id
        prefix = f"{act.index}:"
        return [
            Component(
                self.cls,
                tile_id,
                g,
                dict(zip(names, row, strict=True)),
                rules,
                True,
                prefix + str(p),
            )
            for g, row, p in zip(
                geoms.tolist(), rows, act.parcels.index[local].tolist(), strict=True
            )
        ]

    def _raster_areas(
        self,
        act: _ActiveLayer,
        a: Mapping[str, np.ndarray],
        uid: np.ndarray,
        core_sl: tuple[slice, slice],
        core_origin: tuple[int, int],
        step: int,
        data: TileData,
        scene: Scene,
    ) -> list[Component]:
        """Units of a cropland raster seen in the read window (``uid``: 1 + the unit of each
        analysed cell, 0: none), judged and recorded; connected stressed cells of the core
        become components."""
        cs = self.settings.crop
        skipped = self.skipped_indices(scene)
        shape = a["ndvi"].shape
        sel = uid > 0
        if not sel.any():
            return []
        units, inv = _relabel(uid[sel] - 1)
        keys = ("seen", "usable", "ndvi", "ndmi", "ndre", "msi")
        sums = _unit_sums(
            inv + 1, len(units), {k: a[k][sel] for k in keys if k not in skipped}, skipped
        )
        seen = _observed(sums, cs.min_clear_share)
        if not seen.any():
            return []
        ndvi, ndmi = _means(sums)
        state = self._scene(scene)
        hist = act.raster_history
        day = state.day
        recs = hist.records(units[seen]) if hist is not None and day is not None else None
        ref = reference(recs, day, cs.history_days) if recs is not None and day else None
        v = judge(
            ndvi[seen], ndmi[seen], ref, self.thresholds, cs.history_min_passes, cs.scene_min_units
        )
        if hist is not None and recs is not None and day is not None:
            hist.write(units[seen], add_pass(recs, day, ndvi[seen], ndmi[seen]))
        # per-unit verdict -> per-cell arrays (unseen units: not stressed)
        n_units = len(units)
        per_unit: dict[str, np.ndarray] = {}
        for name, arr in (
            ("stressed", v.stressed),
            ("by_history", v.by_history),
            ("by_scene", v.by_scene),
            ("severe", v.severe),
            ("drop", v.drop),
            ("passes", v.passes),
            ("drop_history", np.nan_to_num(v.drop_history)),
            ("z", np.nan_to_num(v.z)),
        ):
            full = np.zeros(n_units, np.float64)
            full[seen] = arr
            per_unit[name] = full
        cell_unit = np.full(shape, -1, np.int32)
        cell_unit[sel] = inv
        # a unit straddling a stressed and a healthy field is judged on its mean: of its cells,
        # only those below the midpoint between that mean and the reference it fell short of
        # (its own best, else the scene's median field) are stressed
        ref_level = np.where(v.by_history, v.expected, float(np.median(ndvi[seen])))
        cut = np.full(n_units, -np.inf)
        cut[seen] = np.where(v.stressed, (ref_level + ndvi[seen]) / 2, -np.inf)
        stressed = np.zeros(shape, np.uint8)
        stressed[sel] = a["usable"][sel] & (a["ndvi"][sel] <= cut[inv])
        # units mixing a field's edge with a track or a hedge read low: a 3 x 3 cell opening
        # keeps stressed areas at least 3 cells (60 m) wide, as whole fields are
        mask = cv2.morphologyEx(stressed, cv2.MORPH_OPEN, _K3)[core_sl].astype(bool)
        if not mask.any():
            return []
        core = {k: a[k][core_sl] for k in ("usable", "ndvi", "ndmi")}
        cu_core = cell_unit[core_sl]
        neg_units = -units.astype(np.float64)

        def values(win: tuple[slice, slice], at: np.ndarray) -> dict[str, np.ndarray]:
            """Cell values summed per stressed area, at the cells ``at`` of the core's ``win``
            only (the same values, in the same order, as over the whole core)."""
            usable = core["usable"][win][at]
            ndvi_c = core["ndvi"][win][at]
            ndmi_c = core["ndmi"][win][at]
            cu = cu_core[win][at]
            out: dict[str, np.ndarray] = {
                "n_cells": np.ones(usable.shape, np.float32),
                "n_usable": usable.astype(np.float32),
                "s_ndvi": np.where(usable, np.nan_to_num(ndvi_c), 0.0),
                "s_ndmi": np.where(usable, np.nan_to_num(ndmi_c), 0.0),
                "n_ndmi": (usable & np.isfinite(ndmi_c)).astype(np.float32),
            }
            known = cu >= 0
            ci = np.maximum(cu, 0)
            for name in ("by_history", "by_scene", "severe", "drop", "passes", "drop_history", "z"):
                out[f"u_{name}"] = np.where(known, per_unit[name][ci], 0.0)
            # unit ids of the area (for a stable feature id): the smallest one, via MAX of -id
            out["neg_unit"] = np.where(known, neg_units[ci], 0.0)
            return out

        return _areas(self.cls, data.tile.id, mask, core_origin, step, values, act.index)

    # ------------------------------------------------------------------ per scene

    def finalise(self, comp: Component, scene: Scene) -> Detection | None:
        """One merged object on its own (the engine calls :meth:`finalise_scene` instead)."""
        dets = self.finalise_scene([comp], scene)
        return dets[0] if dets else None

    def finalise_scene(self, merged: Sequence[Component], scene: Scene) -> list[Detection]:
        """All merged objects of the scene -> detections: parcels judged together (and their
        history written), stressed raster areas measured."""
        state = self._scene(scene)
        for a in state.layers:  # raster units were recorded tile by tile: make them durable
            if a.raster_history is not None:
                a.raster_history.flush()
        by_layer: dict[int, list[Component]] = {}
        areas: list[tuple[Component, BaseGeometry]] = []
        grid = scene.grid
        for c in merged:
            if c.key:
                by_layer.setdefault(int(c.key.split(":", 1)[0]), []).append(c)
                continue
            geom = c.geometry
            if geom.bounds[2] > grid.width or geom.bounds[3] > grid.height:
                geom = geom.intersection(box(0, 0, grid.width, grid.height))
            area_px = float(geom.area)
            if area_px * grid.pixel_area_m2 >= self.settings.crop.min_area_m2 and area_px > 0:
                areas.append((c, geom))
        wgs = pixels_to_wgs84([g for _, g in areas], grid)
        out = [self._area_detection(c, g, w, scene) for (c, g), w in zip(areas, wgs, strict=True)]
        acts = {a.index: a for a in state.layers}
        for li, comps in sorted(by_layer.items()):
            out += self._judge_parcels(acts[li], comps, scene, state)
        return out

    def _judge_parcels(
        self, act: _ActiveLayer, comps: Sequence[Component], scene: Scene, state: _SceneState
    ) -> list[Detection]:
        layer = act.layer
        assert isinstance(layer, ParcelLayer)
        cs = self.settings.crop
        grid = scene.grid
        step = self.step(grid)
        cell_m2 = (step * grid.ground_res_m) ** 2
        idx = np.array([int(c.key.split(":", 1)[1]) for c in comps], np.int64)
        sums = {k: np.array([c.stats.get(k, 0.0) for c in comps]) for k in SUM_KEYS}
        seen = _observed(sums, cs.min_clear_share) & (sums["n_cells"] * cell_m2 >= cs.min_area_m2)
        if not seen.any():
            return []
        ndvi, ndmi = _means(sums)
        ids = [layer.ids[i] for i in idx[seen]]
        keys = np.array([parcel_key(p) for p in ids], np.uint64)
        hist = ParcelHistory(cs.history, layer.name) if cs.history is not None else None
        day = state.day
        recs = hist.records(keys) if hist is not None and day is not None else None
        ref = reference(recs, day, cs.history_days) if recs is not None and day else None
        v = judge(
            ndvi[seen], ndmi[seen], ref, self.thresholds, cs.history_min_passes, cs.scene_min_units
        )
        if hist is not None and recs is not None and day is not None:
            hist.save(keys, add_pass(recs, day, ndvi[seen], ndmi[seen]))
        med = float(np.median(ndvi[seen]))
        skipped = self.skipped_indices(scene)
        foot = box(0, 0, grid.width, grid.height)
        parcels = act.parcels
        assert parcels is not None
        pos = {int(p): i for i, p in enumerate(parcels.index)}
        out = []
        s_idx = np.flatnonzero(seen)
        for j in np.flatnonzero(v.stressed):
            i = int(s_idx[j])
            li = int(idx[i])
            g_px = parcels.geoms_px[pos[li]]
            if foot.contains(g_px):  # the parcel as drawn (WGS84, counter-clockwise)
                wgs = layer.geoms[li]
            else:  # cut by the scene's edge
                part = g_px.intersection(foot)
                if part.is_empty:
                    continue
                wgs = pixel_to_wgs84(part, grid)
            lon, lat = centroid_lonlat(wgs)
            n = float(sums["n_cells"][i])
            measures: dict[str, float | int | str] = {
                "parcel_id": layer.ids[li],
                "layer": layer.name,
                "area_km2": round(n * cell_m2 / 1e6, 5),
                "parcel_area_km2": round(float(layer.areas_m2[li]) / 1e6, 5),
                "cell_count": int(n),
                "cell_m": round(step * grid.ground_res_m, 2),
                "clear_share": round(float(sums["n_seen"][i]) / n, 3),
            }
            measures.update(_index_means(sums, i, skipped))
            measures.update(_verdict_measures(v, int(j), med))
            measures.update(
                {
                    "centroid_lon": round(lon, 6),
                    "centroid_lat": round(lat, 6),
                    "tiles": comps[i].tile_id,
                }
            )
            if skipped:
                measures["indices_skipped"] = ",".join(skipped)
            out.append(Detection(self.cls, _score(float(v.drop[j])), wgs, measures))
        return out

    def _area_detection(
        self, comp: Component, geom: BaseGeometry, wgs: BaseGeometry, scene: Scene
    ) -> Detection:
        """A merged stressed area of a cropland raster (``geom``: its outline within the scene,
        in pixels; ``wgs``: the same in WGS84) -> detection."""
        grid = scene.grid
        area_m2 = float(geom.area) * grid.pixel_area_m2
        st = comp.stats
        n = st["n_cells"]
        step = self.step(grid)
        layer = self.layers[int(st["layer"])]
        skipped = self.skipped_indices(scene)
        lon, lat = centroid_lonlat(wgs)
        by_h = st["u_by_history"] >= 0.5 * n
        by_s = st["u_by_scene"] >= 0.5 * n
        drop = st["u_drop"] / n
        measures: dict[str, float | int | str] = {
            "parcel_id": f"{layer.name}:unit{int(-st['neg_unit'])}",
            "layer": layer.name,
            "area_km2": round(area_m2 / 1e6, 5),
            "cell_count": int(n),
            "cell_m": round(step * grid.ground_res_m, 2),
        }
        nu = max(st["n_usable"], 1.0)
        measures["mean_ndvi"] = round(st["s_ndvi"] / nu, 4)
        if "ndmi" not in skipped and st["n_ndmi"] > 0:
            measures["mean_ndmi"] = round(st["s_ndmi"] / st["n_ndmi"], 4)
        measures.update(
            {
                "reference": reference_label(bool(by_h), bool(by_s))
                or reference_label(st["u_by_history"] > 0, st["u_by_scene"] > 0),
                "drop": round(drop, 4),
                "history_passes": int(round(st["u_passes"] / n)),
                "severity": "severe" if st["u_severe"] >= 0.5 * n else "moderate",
                "severe_share": round(st["u_severe"] / n, 3),
                "centroid_lon": round(lon, 6),
                "centroid_lat": round(lat, 6),
                "tiles": comp.tile_id,
            }
        )
        if st["u_by_history"] > 0:
            measures["drop_history"] = round(st["u_drop_history"] / st["u_by_history"], 4)
        if skipped:
            measures["indices_skipped"] = ",".join(skipped)
        return Detection(self.cls, _score(drop), wgs, measures)


# --------------------------------------------------------------------------- helpers


def _unit_sums(
    labels: np.ndarray, n: int, cells: Mapping[str, np.ndarray], skipped: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-unit sums of cell values: ``labels`` holds 1 + the unit of every cell (0: none), the
    result one entry per unit 0..n-1.  Indices are summed over usable cells; ``skipped`` ones
    (not computed for lack of bands) are 0 and need not be in ``cells``."""
    lab = labels.ravel()

    def total(w: np.ndarray | None = None) -> np.ndarray:
        weights = None if w is None else w.ravel()
        return np.bincount(lab, weights=weights, minlength=n + 1)[1:].astype(np.float64)

    def count(m: np.ndarray) -> np.ndarray:  # the sum of a 0/1 weight, exactly
        return np.bincount(lab[m.ravel()], minlength=n + 1)[1:].astype(np.float64)

    usable = cells["usable"].astype(np.float32)
    zero = np.zeros(n)
    out = {
        "n_cells": total(),
        "n_seen": count(cells["seen"]),
        "n_usable": count(cells["usable"]),
        # the indices are finite wherever they are computed (ratios with a floored denominator)
        "s_ndvi": total(cells["ndvi"] * usable),
    }
    for k in ("ndmi", "ndre", "msi"):
        out[f"s_{k}"] = zero if k in skipped else total(cells[k] * usable)
    out["n_ndmi"] = zero if "ndmi" in skipped else out["n_usable"]
    return out


def _relabel(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)`` for non-negative ids, by counting when their
    range is small (the units of one tile: a few rows of the layer's unit grid)."""
    lo, hi = int(ids.min()), int(ids.max())
    if hi - lo > 8 * ids.size + 1_000_000:
        u, inv = np.unique(ids, return_inverse=True)
        return u, inv.ravel()
    present = np.bincount(ids - lo, minlength=hi - lo + 1) > 0
    units = np.flatnonzero(present) + lo
    lut = np.cumsum(present) - 1
    return units, lut[ids - lo]


def _observed(sums: Mapping[str, np.ndarray], min_clear: float) -> np.ndarray:
    """Units seen under clear sky on at least ``min_clear`` of their cells, with land cells."""
    n = np.maximum(sums["n_cells"], 1.0)
    return (sums["n_seen"] / n >= min_clear) & (sums["n_usable"] > 0)


def _means(sums: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = sums["s_ndvi"] / sums["n_usable"]
        ndmi = np.where(sums["n_ndmi"] > 0, sums["s_ndmi"] / sums["n_ndmi"], np.nan)
    return ndvi, ndmi


def _index_means(
    sums: Mapping[str, np.ndarray], i: int, skipped: Sequence[str]
) -> dict[str, float]:
    nu = max(float(sums["n_usable"][i]), 1.0)
    out = {"mean_ndvi": round(float(sums["s_ndvi"][i]) / nu, 4)}
    if "ndre" not in skipped:
        out["mean_ndre"] = round(float(sums["s_ndre"][i]) / nu, 4)
    if "ndmi" not in skipped and sums["n_ndmi"][i] > 0:
        out["mean_ndmi"] = round(float(sums["s_ndmi"][i] / sums["n_ndmi"][i]), 4)
        out["mean_msi"] = round(float(sums["s_msi"][i] / sums["n_ndmi"][i]), 4)
    return out


def _verdict_measures(v: Verdict, j: int, scene_median: float) -> dict[str, float | int | str]:
    out: dict[str, float | int | str] = {
        "reference": reference_label(bool(v.by_history[j]), bool(v.by_scene[j])),
        "drop": round(float(v.drop[j]), 4),
        "history_passes": int(v.passes[j]),
        "scene_median_ndvi": round(scene_median, 4),
        "severity": "severe" if v.severe[j] else "moderate",
    }
    if np.isfinite(v.expected[j]):
        out["expected_ndvi"] = round(float(v.expected[j]), 4)
        out["drop_history"] = round(float(v.drop_history[j]), 4)
        out["vci"] = round(float(v.vci[j]), 3)
    if np.isfinite(v.z[j]):
        out["z_scene"] = round(float(v.z[j]), 2)
        out["drop_scene"] = round(float(v.drop_scene[j]), 4)
    return out


def pixels_to_wgs84(geoms: Sequence[BaseGeometry], grid: Grid) -> list[BaseGeometry]:
    """:func:`pipeline.core.vectorise.pixel_to_wgs84` of many geometries at once: one
    reprojection call for all their vertices (the same coordinates).  A geometry that would
    cross the antimeridian goes through ``pixel_to_wgs84`` (it cuts it there)."""
    if not geoms:
        return []
    t = grid.transform
    arr = np.array(geoms, dtype=object)
    in_crs = shapely.transform(arr, lambda c: _affine_coords(c, t))
    coords = shapely.get_coordinates(in_crs)
    xs, ys = warp_transform(grid.crs, WGS84, coords[:, 0].tolist(), coords[:, 1].tolist())
    lonlat = shapely.set_coordinates(in_crs.copy(), np.column_stack([xs, ys]))
    out = []
    for g, ll in zip(geoms, lonlat.tolist(), strict=True):
        b = ll.bounds
        if not all(np.isfinite(b)) or b[2] - b[0] > 180:
            out.append(pixel_to_wgs84(g, grid))
        else:
            out.append(orient_rfc7946(ll))
    return out


def _affine_coords(coords: np.ndarray, t: Affine) -> np.ndarray:
    """As ``shapely.affinity.affine_transform`` computes it (so the same floats)."""
    x, y = coords.T
    return np.stack([t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f]).T


def _score(drop: float) -> float:
    """0.5 + the NDVI drop, within 0.5..1 (a heuristic ordering, not a probability)."""
    return float(min(1.0, max(0.5, 0.5 + drop)))


def _areas(
    cls: str,
    tile_id: str,
    mask: np.ndarray,
    origin: tuple[int, int],
    step: int,
    values: Callable[[tuple[slice, slice], np.ndarray], Mapping[str, np.ndarray]],
    layer_index: int,
) -> list[Component]:
    """Connected stressed cells of the core (``mask``, its first cell at scene cell
    ``origin``) -> components in scene pixel coordinates.  ``values(window, cells)`` gives the
    cell values to sum (``neg_unit``: to take the maximum of) at the ``cells`` (bool) of the
    mask's ``window``, in raster order."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    n, labels, cc = label_components(mask[r0:r1, c0:c1])
    at = labels > 0
    lab = labels[at] - 1
    vals = values((slice(r0, r1), slice(c0, c1)), at)
    reducers = {k: (MAX if k == "neg_unit" else SUM) for k in vals}
    per = reduce_by_index(lab, n, vals, reducers)  # values are of the labelled cells only
    at_edge = (
        (cc[1:, 0] + c0 == 0)
        | (cc[1:, 1] + r0 == 0)
        | (cc[1:, 0] + c0 + cc[1:, 2] == mask.shape[1])
        | (cc[1:, 1] + r0 + cc[1:, 3] == mask.shape[0])
    )
    # cell (i, j) of the mask covers scene pixels [step*(cr0+i), ...) x [step*(cc0+j), ...)
    cr0, cc0 = origin
    polys = component_polygons(labels, 0, 0)
    to_px = Affine(step, 0, (cc0 + c0) * step, 0, step, (cr0 + r0) * step)
    # all outlines to scene pixels in one call (as shapely.affinity.affine_transform would)
    geoms = shapely.transform(
        np.array([polys[i + 1] for i in range(n)], dtype=object),
        lambda c: _affine_coords(c, to_px),
    ).tolist()
    out = []
    for i, geom in enumerate(geoms):
        stats = {k: float(v[i]) for k, v in per.items()}
        stats["layer"] = float(layer_index)
        rules = {**reducers, "layer": MAX}
        out.append(Component(cls, tile_id, geom, stats, rules, bool(at_edge[i])))
    return out
