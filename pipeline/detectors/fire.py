"""Active-fire detector: the SWIR test of ``models/fire_swir.onnx`` run by onnxruntime per tile,
then 8-connected hot-pixel clusters with their measures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict

import numpy as np

from ..ingest import TileData
from ..onnx_models import OnnxModel, get_model
from ..results import Detection
from ..scene import Grid, Scene
from ..settings import Settings
from ..vectorise import MAX, SUM, Component, centroid_lonlat, components_from_mask, pixel_to_wgs84

MODEL_NAME = "fire_swir"
ROLES = ("swir22", "swir16")


class FireDetector:
    """Per tile: ONNX SWIR test -> hot-pixel mask -> clusters (components in pixel space)."""

    name = "fire"
    cls = "fire"
    roles = ROLES

    def __init__(self, settings: Settings, model: OnnxModel | None = None) -> None:
        self.settings = settings
        self.model = model or get_model(
            MODEL_NAME, settings.models_dir, settings.threads, settings.providers
        )
        th = dict(self.model.info.thresholds)
        for key, value in asdict(settings.fire).items():
            if key in th and value is not None:
                th[key] = float(value)
        self.thresholds = th
        self._feeds = {k: np.array([v], np.float32) for k, v in th.items()}

    def band_names(self, scene: Scene) -> list[str]:
        return [scene.band_for_role(r).name for r in self.roles]

    def context_px(self, grid: Grid) -> int:
        return max(1, math.ceil(self.settings.fire.context_m / grid.ground_res_m))

    def detect(self, data: TileData, scene: Scene) -> list[Component]:
        swir22 = data.bands[scene.band_for_role("swir22").name]
        swir16 = data.bands[scene.band_for_role("swir16").name]
        valid = data.valid.astype(np.float32)
        feeds: dict[str, np.ndarray] = {
            "swir22": swir22[None, None],
            "swir16": swir16[None, None],
            "valid": valid[None, None],
            "radius": np.array([self.context_px(scene.grid)], np.int64),
            **self._feeds,
        }
        fire, score = self.model.run(feeds)
        rs, cs = data.tile.core_in_read
        mask = fire[0, 0][rs, cs].astype(bool)
        if not mask.any():
            return []
        core22 = swir22[rs, cs]
        ratio = np.where(mask, core22 / np.maximum(swir16[rs, cs], 1e-6), 0.0)
        values = {
            "sum_score": np.where(mask, score[0, 0][rs, cs], 0.0),
            "max_score": np.where(mask, score[0, 0][rs, cs], 0.0),
            "max_swir22": np.where(mask, core22, 0.0),
            "sum_ratio": ratio,
            "max_ratio": ratio,
        }
        reducers = {
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
            "centroid_lon": round(lon, 6),
            "centroid_lat": round(lat, 6),
            "row_min": int(miny),
            "col_min": int(minx),
            "row_max": int(maxy) - 1,
            "col_max": int(maxx) - 1,
            "tiles": comp.tile_id,
        }
        score = min(1.0, max(0.0, comp.stats["max_score"]))
        return Detection(self.cls, score, geom, measures)
