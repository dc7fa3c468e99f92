"""Active-fire detector: the SWIR test of ``models/fire_swir.onnx`` run by onnxruntime per tile,
then 8-connected hot-pixel clusters with their measures."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import cv2
import numpy as np

from ..core.ingest import TileData
from ..core.onnx_models import OnnxModel, detector_model
from ..core.results import Detection
from ..core.scene import Grid, Scene
from ..core.vectorise import (
    MAX,
    SUM,
    Component,
    centroid_lonlat,
    components_from_mask,
    pixel_to_wgs84,
)
from ..settings import Settings, manifest_thresholds

log = logging.getLogger(__name__)

MODEL_NAME = "fire_swir"
#: second-check value of pixels that belong to clusters too large to need the check
NOT_CHECKED = 99.0
ROLES = ("swir22", "swir16")


class FireDetector:
    """Per tile: ONNX SWIR test -> hot-pixel mask -> clusters (components in pixel space)."""

    name = "fire"
    cls = "fire"
    roles = ROLES
    #: under cloud or shadow (fires burn through thin cloud and smoke is not cloud: kept, flagged)
    under_cloud = "flag"

    def __init__(self, settings: Settings, model: OnnxModel | None = None) -> None:
        self.settings = settings
        self.model = model or detector_model(MODEL_NAME, settings)
        th = manifest_thresholds(settings.fire, self.model.info.thresholds)
        self.thresholds = th
        self._feeds = {k: np.array([v], np.float32) for k, v in th.items()}

    @property
    def models(self) -> tuple[OnnxModel, ...]:
        return (self.model,)

    def band_names(self, scene: Scene) -> list[str]:
        return [scene.band_for_role(r).name for r in self.roles]

    def context_px(self, grid: Grid) -> int:
        return max(1, math.ceil(self.settings.fire.context_m / grid.ground_res_m))

    def fire_mask(
        self,
        swir22: np.ndarray,
        swir16: np.ndarray,
        valid: np.ndarray,
        radius: int,
        region: tuple[slice, slice] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fire mask and score over 2-D reflectance arrays, in two passes of the ONNX model.

        1. The whole array with ``context=false``: the per-pixel screen (a few element-wise
           ops per pixel) gives the candidates.
        2. The full test (``context=true``) only on crops around candidates inside ``region``
           (default: everywhere): each crop is a candidate group grown by ``radius``, so every
           candidate sees exactly the background window it would see in a whole-array run.
        """
        screen = self._run(swir22, swir16, valid, radius, context=False)
        cand = screen[2][0, 0].astype(bool)
        if region is not None:
            if not cand[region].any():
                return np.zeros(cand.shape, bool), np.zeros(cand.shape, np.float32)
            inside = np.zeros_like(cand)
            inside[region] = cand[region]
            cand = inside
        fire = np.zeros(cand.shape, bool)
        score = np.zeros(cand.shape, np.float32)
        if not cand.any():
            return fire, score
        k = 2 * radius + 1
        grown = cv2.dilate(cand.astype(np.uint8), np.ones((k, k), np.uint8))
        n, labels, boxes, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        for i in range(1, n):
            x, y, w, h = (int(v) for v in boxes[i, :4])
            sl = (slice(y, y + h), slice(x, x + w))
            f, sc, _ = self._run(swir22[sl], swir16[sl], valid[sl], radius, context=True)
            own = labels[sl] == i
            fire[sl][own] = f[0, 0][own].astype(bool)
            score[sl][own] = sc[0, 0][own]
        return fire, score

    def _run(
        self,
        swir22: np.ndarray,
        swir16: np.ndarray,
        valid: np.ndarray,
        radius: int,
        context: bool,
    ) -> list[np.ndarray]:
        feeds: dict[str, np.ndarray] = {
            "swir22": np.ascontiguousarray(swir22)[None, None],
            "swir16": np.ascontiguousarray(swir16)[None, None],
            "valid": np.ascontiguousarray(valid)[None, None],
            "radius": np.array([radius], np.int64),
            "context": np.array([context]),
            **self._feeds,
        }
        return self.model.run(feeds)

    def detect(self, data: TileData, scene: Scene) -> list[Component]:
        swir22 = data.bands[scene.band_for_role("swir22").name]
        swir16 = data.bands[scene.band_for_role("swir16").name]
        rs, cs = data.tile.core_in_read
        fire, score_full = self.fire_mask(
            swir22, swir16, data.valid.astype(np.float32), self.context_px(scene.grid), (rs, cs)
        )
        mask = fire[rs, cs]
        if not mask.any():
            return []
        score = score_full[rs, cs]
        core22 = swir22[rs, cs]
        ratio = np.where(mask, core22 / np.maximum(swir16[rs, cs], 1e-6), 0.0)
        spill, rise, tint = one_sample_checks(
            swir22, swir16, data.valid, fire, (rs, cs), self.context_px(scene.grid), scene
        )
        values = {
            "max_spill": spill,
            "max_rise": rise,
            "max_tint": tint,
            "sum_score": np.where(mask, score, 0.0),
            "max_score": np.where(mask, score, 0.0),
            "max_swir22": np.where(mask, core22, 0.0),
            "sum_ratio": ratio,
            "max_ratio": ratio,
        }
        reducers = {
            "max_spill": MAX,
            "max_rise": MAX,
            "max_tint": MAX,
            "sum_score": SUM,
            "max_score": MAX,
            "max_swir22": MAX,
            "sum_ratio": SUM,
            "max_ratio": MAX,
        }
        core = data.tile.core
        return components_from_mask(
            self.cls, data.tile.id, mask, int(core.col_off), int(core.row_off), values, reducers
        )

    def finalise(self, comp: Component, scene: Scene) -> Detection | None:
        """Merged component -> WGS84 detection with its measures (None if too small)."""
        n = int(comp.stats["n_pixels"])
        if n < self.settings.fire.min_pixels:
            return None
        samples = n * native_samples_per_pixel(scene)
        fs = self.settings.fire
        spill, rise = comp.stats["max_spill"], comp.stats["max_rise"]
        tint = comp.stats["max_tint"]
        weak_spill = 0 < fs.one_sample_spill_min and spill < fs.one_sample_spill_min
        weak_rise = 0 < fs.one_sample_rise_min and rise < fs.one_sample_rise_min
        weak_tint = 0 < fs.one_sample_tint_min and tint < fs.one_sample_tint_min
        if samples < 1.5 and (weak_spill or weak_rise or weak_tint):
            # one native SWIR sample, hot in B12 without the neighbours or B11 agreeing: what a
            # single flipped bit looks like
            log.info(
                "%s: one-sample hot spot at pixel %s dropped by the second check "
                "(spill %.2f, need %.2f; SWIR 1.6 rise %.2f, need %.2f; spill tint %.2f, "
                "need %.2f)",
                scene.name,
                tuple(int(v) for v in comp.geometry.bounds[:2]),
                spill,
                fs.one_sample_spill_min,
                rise,
                fs.one_sample_rise_min,
                tint,
                fs.one_sample_tint_min,
            )
            return None
        geom = pixel_to_wgs84(comp.geometry, scene.grid)
        lon, lat = centroid_lonlat(geom)
        minx, miny, maxx, maxy = comp.geometry.bounds
        measures: Mapping[str, float | int | str] = {
            "pixel_count": n,
            "area_m2": round(n * scene.grid.pixel_area_m2, 1),
            "max_swir22_reflectance": round(comp.stats["max_swir22"], 4),
            "mean_swir_ratio": round(comp.stats["sum_ratio"] / n, 3),
            "max_swir_ratio": round(comp.stats["max_ratio"], 3),
            "mean_score": round(comp.stats["sum_score"] / n, 4),
            "native_samples": round(samples, 2),
            "centroid_lon": round(lon, 6),
            "centroid_lat": round(lat, 6),
            "row_min": int(miny),
            "col_min": int(minx),
            "row_max": int(maxy) - 1,
            "col_max": int(maxx) - 1,
            "tiles": comp.tile_id,
        }
        if samples < 1.5:
            # the second-check measures exist only for one-sample clusters (the others are not
            # checked, and a placeholder value would read as a measurement)
            checked = {"one_sample_spill": spill, "one_sample_rise": rise, "one_sample_tint": tint}
            measures = {
                **measures,
                **{k: round(v, 3) for k, v in checked.items() if v < NOT_CHECKED},
            }
        score = min(1.0, max(0.0, comp.stats["max_score"]))
        return Detection(self.cls, score, geom, measures)


def one_sample_checks(
    swir22: np.ndarray,
    swir16: np.ndarray,
    valid: np.ndarray,
    fire: np.ndarray,
    core: tuple[slice, slice],
    radius: int,
    scene: Scene,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Core-sized arrays of the second-check measures at hot pixels of one-sample clusters.

    ``spill``: (brightest neighbour sample - background) / (hot sample - background) in SWIR
    2.2 um, neighbours one native sample away; ``rise``: SWIR 1.6 excess / SWIR 2.2 excess;
    ``tint``: the brightest neighbour's B12/B11 ratio over the background's (a fire's spill
    carries its spectrum: 1.67-1.89 in G90292; the neighbours of a flipped bit are just land,
    0.99-1.37 on the Virginia tile).
    Background: median of the valid samples in the (2 radius + 1)^2 context window.  Pixels of
    larger clusters get ``NOT_CHECKED`` (only one-sample clusters are checked; few pixels are).
    """
    rs, cs = core
    mask = fire[rs, cs]
    spill = np.where(mask, NOT_CHECKED, 0.0).astype(np.float32)
    rise = spill.copy()
    tint = spill.copy()
    per_sample = native_samples_per_pixel(scene)
    max_px = math.ceil(1.0 / per_sample)
    step = max(1, round(1.0 / math.sqrt(per_sample)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fire.astype(np.uint8), connectivity=8)
    h, w = swir22.shape
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] > max_px:
            continue
        ys, xs = np.nonzero(labels == i) if max_px > 1 else ([stats[i, 1]], [stats[i, 0]])
        for y, x in zip(ys, xs, strict=True):
            y, x = int(y), int(x)
            cy, cx = y - rs.start, x - cs.start
            if not (0 <= cy < mask.shape[0] and 0 <= cx < mask.shape[1]):
                continue
            win = (
                slice(max(y - radius, 0), y + radius + 1),
                slice(max(x - radius, 0), x + radius + 1),
            )
            ok = valid[win]
            if not ok.any():
                continue
            bg22 = float(np.median(swir22[win][ok]))
            bg16 = float(np.median(swir16[win][ok]))
            d22 = float(swir22[y, x]) - bg22
            if d22 <= 0:
                continue
            nb = [
                (float(swir22[y + dy, x + dx]), float(swir16[y + dy, x + dx]))
                for dy in (-step, 0, step)
                for dx in (-step, 0, step)
                if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w and valid[y + dy, x + dx]
            ]
            rise[cy, cx] = (float(swir16[y, x]) - bg16) / d22
            if nb:
                top22, top16 = max(nb)
                spill[cy, cx] = (top22 - bg22) / d22
                tint[cy, cx] = (top22 / max(top16, 1e-4)) / max(bg22 / max(bg16, 1e-4), 1e-4)
            else:
                spill[cy, cx] = tint[cy, cx] = 0.0
    return spill, rise, tint


def native_samples_per_pixel(scene: Scene) -> float:
    """Native SWIR 2.2 um samples per working-grid pixel (1 on a 20 m grid, 1/4 on 10 m)."""
    g = scene.grid.transform
    b = scene.band_for_role("swir22").transform
    return float(abs(g.a * g.e) / abs(b.a * b.e))
