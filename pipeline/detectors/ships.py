"""Ship detector: a learned vessel segmenter, grouped into one feature per hull.

1. **Water screen.**  An NDWI test (``ndwi_min``) over the tile's read window.  A tile with
   fewer than ``min_water_px`` water pixels skips the network (inland tiles cost one array
   pass).  Inside a tile the network runs only on cells near water that hold something
   (:func:`~pipeline.detectors.vessel_segmentation.gated_maps`: ``gate_ndwi``,
   ``gate_nir_contrast``, ``gate_cells``); empty open water and land far from water are not
   seen by the network.
2. **Segmenter** (``models/ship_segmenter.onnx``, trained by
   ``models/train_ship_segmenter.py`` on the 8 sen2ships ports): a small U-Net-like FCN on the
   five bands B02 B03 B04 B08 B11 (reflectance).  It gives a vessel probability and a hull
   distance map per pixel (:mod:`pipeline.detectors.vessel_segmentation`).
3. **Grouping.**  Pixels above ``prob_min`` form the vessel mask; hull cores (distance map at
   least ``core_min``) seed one vessel each and the rest of the mask joins the nearest seed,
   so hulls rafted side by side are separate vessels.
4. **Tile edges.**  The network sees the tile's core plus :meth:`ShipDetector.context_px` of
   context (more than half the longest vessel plus the network's reach), so every vessel whose
   centre lies in the core is seen whole; a tile reports exactly the vessels whose centre lies
   in its core, so a vessel cut by a tile edge is reported once, by one tile, with all its
   pixels.
5. **Vegetation.**  A segment whose median NDVI is above ``max_ndvi`` is dropped: hulls are
   not green (the labelled vessels reach 0.29), the forest and marsh on tidal creek banks
   that the segmenter can take for moored hulls are.
6. **Score.**  A logistic rescoring of the vessel (eleven features: pixel probabilities, size,
   shape, water ring and spectral contrast; ``rescore`` in the manifest entry), mapped through
   the calibration in the manifest entry.  Both were fitted on the out-of-fold vessels of the
   leave-one-port-out cross-validation; score >= 0.5 is where the cross-validated precision
   reaches 0.85.
   Vessels below ``min_score``, shorter than ``min_length_m`` or longer than ``max_length_m``
   are dropped.

One feature per vessel: the footprint polygon, length and width from the pixel moments, the
axis heading, ``setting`` (``at_sea`` when at least 90 % of the 3-pixel ring around the hull is
water, else ``moored``) and the calibrated score.  Measured quality (leave-one-port-out on
sen2ships) is in benchmarks/RESULTS.md and docs/ships.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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
    component_polygons,
    pixel_to_wgs84,
)
from ..errors import ModelError
from ..settings import Settings, manifest_thresholds
from .vessel_segmentation import (
    MULTIPLE,
    RESCORE_FEATURES,
    ROLES,
    Calibration,
    Rescorer,
    gated_maps,
    group_vessels,
    instance_measures,
    median_ndvi,
    ring_water_share,
    run_segmenter,
    vessel_features,
)

MODEL = "ship_segmenter"
#: A vessel is "at sea" when at least this share of its 3-pixel ring is water.
AT_SEA_RING_WATER = 0.9

#: Thresholds used by this module; defaults, overridden by the segmenter's manifest entry and
#: then by the fields of ``ShipSettings``.
DEFAULTS = {
    "ndwi_min": 0.05,
    "min_water_px": 16.0,
    #: the network gate (vessel_segmentation.gated_maps): loose water test, NIR contrast of
    #: a bright pixel in open water, cells of context around busy cells
    "gate_ndwi": -0.1,
    "gate_nir_contrast": 0.02,
    "gate_cells": 2.0,
    "prob_min": 0.5,
    "core_min": 0.45,
    "min_score": 0.5,
    "max_length_m": 400.0,
    #: vessels shorter than this are not reported: at 10 m a boat under ~35 m is 2-5 pixels,
    #: as bright as a buoy, a wave crest or a flipped bit, and the sen2ships labels (the only
    #: truth we have) leave such small craft out
    "min_length_m": 35.0,
    #: segments greener than this are vegetation, not hulls (vessel_segmentation.median_ndvi:
    #: the labelled vessels of the 8 ports reach 0.29 at most)
    "max_ndvi": 0.35,
}


def water_mask(
    green: np.ndarray, nir: np.ndarray, valid: np.ndarray, ndwi_min: float
) -> np.ndarray:
    """NDWI water test: green - nir > ndwi_min * (green + nir), on valid pixels."""
    return ((green - nir) > np.float32(ndwi_min) * (green + nir)) & valid


def role_bands(data: TileData, scene: Scene) -> dict[str, np.ndarray]:
    """Role -> reflectance array of the tile's read window."""
    return {role: data.bands[scene.band_for_role(role).name] for role in ROLES}


def _moments(r: np.ndarray, c: np.ndarray) -> dict[str, float]:
    rr = r.astype(np.float64) + 0.5
    cc = c.astype(np.float64) + 0.5
    return {
        "sum_r": float(rr.sum()),
        "sum_c": float(cc.sum()),
        "sum_rr": float((rr * rr).sum()),
        "sum_cc": float((cc * cc).sum()),
        "sum_rc": float((rr * cc).sum()),
    }


def _axes_px(r: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Major and minor axis lengths (pixels) of a pixel set from its second moments."""
    if r.size < 2:
        return 1.0, 1.0
    ev = np.linalg.eigvalsh(np.cov(np.vstack([r, c]).astype(np.float64), bias=True))
    return math.sqrt(12.0 * max(float(ev[1]), 0.0) + 1.0), math.sqrt(
        12.0 * max(float(ev[0]), 0.0) + 1.0
    )


class ShipDetector:
    """Per tile: water screen -> ONNX vessel segmenter -> one component per hull."""

    name = "ships"
    cls = "ship"
    roles = ROLES
    #: under cloud or shadow (a bright cloud fragment over water looks like a hull: dropped)
    under_cloud = "drop"

    def __init__(self, settings: Settings, model: OnnxModel | None = None) -> None:
        self.settings = settings
        self.model = model or detector_model(settings.ships.model, settings)
        raw = self.model.info.raw
        if tuple(raw.get("bands", ())) != ROLES or not {"prob", "dist"} <= set(
            self.model.output_names
        ):
            raise ModelError(
                f"{self.model.info.path}: not a vessel segmenter (bands {raw.get('bands')}, "
                f"outputs {self.model.output_names}); expected bands {list(ROLES)} and outputs "
                "prob, dist (models/train_ship_segmenter.py)"
            )
        th = {**DEFAULTS, **{k: float(v) for k, v in self.model.info.thresholds.items()}}
        self.thresholds = manifest_thresholds(settings.ships, th)
        rescore = raw.get("rescore")
        if rescore and tuple(rescore.get("features", ())) != RESCORE_FEATURES:
            raise ModelError(
                f"{self.model.info.path}: rescoring features {rescore.get('features')} differ "
                f"from this code's {list(RESCORE_FEATURES)}; re-run "
                "models/train_ship_segmenter.py --cv --final --evaluate-only"
            )
        self.rescorer = Rescorer.from_manifest(rescore)
        self.calibration = Calibration.from_manifest(raw.get("calibration"))

    @property
    def models(self) -> tuple[OnnxModel, ...]:
        return (self.model,)

    def band_names(self, scene: Scene) -> list[str]:
        return [scene.band_for_role(r).name for r in self.roles]

    def context_px(self, grid: Grid) -> int:
        # half the longest vessel, plus the network's receptive field, in whole blocks
        half = self.thresholds["max_length_m"] / 2.0 / max(grid.ground_res_m, 1.0)
        return int(math.ceil((half + 16) / MULTIPLE) * MULTIPLE)

    def maps(self, bands: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The segmenter's (prob, dist) over a whole window of role bands."""
        return run_segmenter(self.model.run, [bands[r] for r in ROLES])

    def detect(self, data: TileData, scene: Scene) -> list[Component]:
        tile = data.tile
        th = self.thresholds
        bands = role_bands(data, scene)
        valid = data.valid
        water = water_mask(bands["green"], bands["nir"], valid, th["ndwi_min"])
        if int(np.count_nonzero(water)) < th["min_water_px"]:
            return []  # no water: nothing to run the network on
        planes = [bands[r] for r in ROLES]
        prob, dist = gated_maps(
            self.model.run,
            planes,
            valid,
            th["ndwi_min"],
            th["gate_ndwi"],
            th["gate_nir_contrast"],
            int(th["gate_cells"]),
        )
        n, labels = group_vessels(prob, dist, th["prob_min"], th["core_min"], valid)
        if n == 0:
            return []
        rs, cs = tile.core_in_read
        origin = (int(tile.read.row_off), int(tile.read.col_off))
        occupied = labels > 0
        res = scene.grid.ground_res_m
        out: list[Component] = []
        for m in instance_measures(labels, n, prob):
            r, c = m["rows"], m["cols"]
            assert isinstance(r, np.ndarray) and isinstance(c, np.ndarray)
            # the tile whose core holds the vessel's centre reports it, whole
            cr, cc = float(r.mean()), float(c.mean())
            if not (rs.start <= cr < rs.stop and cs.start <= cc < cs.stop):
                continue
            # size first (cheap): most segments are small craft, buoys or clutter
            length_m = _axes_px(r, c)[0] * res
            if length_m < th["min_length_m"] or length_m > th["max_length_m"]:
                continue
            if median_ndvi(r, c, bands["red"], bands["nir"]) > th["max_ndvi"]:
                continue  # vegetation: forest or marsh on a creek bank
            feats = vessel_features(
                r, c, prob, dist, planes, occupied, scene.grid.pixel_area_m2, th["gate_ndwi"]
            )
            score = float(self.calibration(self.rescorer(feats)))
            if score < th["min_score"]:
                continue
            y0, x0 = int(r.min()), int(c.min())
            box = np.zeros((int(r.max()) - y0 + 1, int(c.max()) - x0 + 1), np.int32)
            box[r - y0, c - x0] = 1
            polys = component_polygons(box, x0 + origin[1], y0 + origin[0])
            share = ring_water_share(r, c, water, occupied)
            stats = {
                "n_pixels": float(r.size),
                "max_raw": float(m["raw"]),
                "max_score": score,
                "ring_water": share,
                **_moments(r + origin[0], c + origin[1]),
            }
            rules = {k: (MAX if k.startswith("max_") else SUM) for k in stats}
            out.append(Component(self.cls, tile.id, polys[1], stats, rules, False))
        return out

    def finalise(self, comp: Component, scene: Scene) -> Detection | None:
        """A vessel -> WGS84 feature with length, width, heading, setting and score."""
        st = comp.stats
        th = self.thresholds
        n = int(st["n_pixels"])
        res = scene.grid.ground_res_m
        mr, mc = st["sum_r"] / n, st["sum_c"] / n
        vrr = max(st["sum_rr"] / n - mr * mr, 0.0)
        vcc = max(st["sum_cc"] / n - mc * mc, 0.0)
        vrc = st["sum_rc"] / n - mr * mc
        half_tr = (vrr + vcc) / 2.0
        disc = math.sqrt(max(((vrr - vcc) / 2.0) ** 2 + vrc * vrc, 0.0))
        lam_big, lam_small = half_tr + disc, max(half_tr - disc, 0.0)
        length_px = math.sqrt(12.0 * lam_big + 1.0)
        width_px = math.sqrt(12.0 * lam_small + 1.0)
        if length_px * res < th["min_length_m"] or length_px * res > th["max_length_m"]:
            return None
        area = n * scene.grid.pixel_area_m2
        score = float(st["max_score"])
        if score < th["min_score"]:
            return None
        heading: float | None = None
        if length_px >= 3.0 and length_px / width_px >= 1.3:
            # major axis direction: rows grow southwards, columns eastwards
            theta = 0.5 * math.atan2(2.0 * vrc, vcc - vrr)  # angle from +col towards +row
            east, north = math.cos(theta), -math.sin(theta)
            heading = round(math.degrees(math.atan2(east, north)) % 180.0, 1)
        geom = pixel_to_wgs84(comp.geometry, scene.grid)
        lon, lat = centroid_lonlat(geom)
        minx, miny, maxx, maxy = comp.geometry.bounds
        setting = "at_sea" if st["ring_water"] >= AT_SEA_RING_WATER else "moored"
        measures: dict[str, Any] = {
            "length_m": round(length_px * res, 1),
            "width_m": round(width_px * res, 1),
            "heading_deg": heading,
            "setting": setting,
            "pixel_count": n,
            "area_m2": round(area, 1),
            "segmenter_prob": round(st["max_raw"], 4),
            "centroid_lon": round(lon, 6),
            "centroid_lat": round(lat, 6),
            "row_min": int(miny),
            "col_min": int(minx),
            "row_max": int(maxy) - 1,
            "col_max": int(maxx) - 1,
            "tiles": comp.tile_id,
            # the evaluation's precision split (free: at sea, shore: moored)
            "kind": "free" if setting == "at_sea" else "shore",
        }
        return Detection(self.cls, round(min(1.0, max(0.0, score)), 4), geom, measures)
