"""Ship detector: an ONNX screen over the whole tile, then two kinds of vessel objects.

1. ``models/ship_screen.onnx`` (per pixel, a few cheap passes): water mask from NDWI, NIR mean
   and spread of the water pixels in a ~0.5 km window (block statistics aligned to the scene
   grid, so the result does not depend on the tiling), and a CFAR-style contrast test ->
   candidate pixels, grouped on the block grid.
2. **Free vessels** (on chips around the candidates): land is removed (the morphological
   opening of the non-water mask by a square wider than any hull), each remaining candidate
   grows into a footprint (hysteresis on the contrast), and a footprint is a vessel when it is
   surrounded by water: at least ``free_water_min`` of its 3-pixel ring is water (score = that
   fraction) and not water-coloured (NDVI of its mean red and NIR at least ``free_ndvi_min``:
   bright turbid or shallow water patches in marsh channels have NDVI near -0.3, hulls near 0)
   and its brightest pixel is at least ``free_contrast_min`` (NIR reflectance) above the sea
   background (faint marsh and shoal patches are 0.02-0.05 above it, the ports' free vessels
   0.07 and more), in at least ``free_support_px`` pixels (spatial support: a flipped bit
   brightens one pixel), and it is not foam or mud: its SWIR contrast is at least
   ``free_swir_ratio_min`` of its NIR contrast (breaking waves are water, which absorbs at
   1.6 um) and its blue contrast at least ``free_blue_ratio_min`` of it (marsh, mud and sand
   are no brighter than water in blue), both against the water of its ring.
   Footprints smaller than ``min_pixels`` or longer than ``max_length_m`` are dropped.
3. **Vessels at quays and along the shore** (docked hulls merge with the quay in the water mask,
   so the contrast test cannot separate them): in the same chips, every non-water pixel within
   7 px of water gets :data:`FEATURES` (band values and ratios, water fractions at 3-61 px,
   distances to water and to solid land, local contrast; :func:`pixel_features`) and
   ``models/ship_classifier.onnx`` (gradient-boosted trees trained by
   ``models/train_ship_classifier.py`` on labelled vessel pixels) gives a vessel probability.
   Objects are pixels above ``grow_prob`` connected to a seed above ``seed_prob``, with at least
   ``shore_min_pixels`` pixels, an elongation of at least ``min_elongation`` and a length up to
   ``max_length_m`` (score = the highest pixel probability).
4. Every object below ``min_score`` is dropped, and so is every vessel shorter than
   ``min_length_m`` (35 m; measured after objects cut by tile edges are merged): small craft
   are not detected reliably at 10 m and are not in the labels we measure against.

One feature per vessel: the footprint polygon, length and width from the pixel moments (which
sum across tile edges, so a vessel cut by a tile edge is measured after merging), the axis
heading when the footprint is elongated enough, contrast and score.  Measured quality
(leave-one-port-out on sen2ships) is in benchmarks/RESULTS.md; it is far from the issue's
targets, chiefly because docked vessels and quay edges look alike at 10 m.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
from ..errors import ModelError
from ..settings import Settings, manifest_thresholds

log = logging.getLogger(__name__)

SCREEN_MODEL = "ship_screen"
CLASSIFIER_MODEL = "ship_classifier"
ROLES = ("blue", "green", "red", "nir", "swir16")
#: Screen block edge in pixels; must match models/build_ship_model.py (checked against the
#: manifest at load time).
BLOCK = 8
#: Context of the screen's window on each side, in blocks (7 x 7 blocks centred on a block).
CONTEXT_BLOCKS = 3
#: Ring around a footprint used for its surroundings features, in pixels.
RING_PX = 3
#: Candidates are grown into footprints within this margin, in pixels.
GROW_PX = 6
#: Floor of the background spread in the contrast z-score (reflectance).
STD_FLOOR = 0.002

#: Pixel classifier input, in this order (models/train_ship_classifier.py trains on exactly
#: these, computed by :func:`pixel_features`).
FEATURES = (
    "b_g",
    "bl_r",
    "dt_land",
    "dt_water",
    "is_land",
    "mndwi",
    "ndvi",
    "ndwi",
    "nir",
    "nir_c",
    "nir_m7",
    "nsd3",
    "nsd7",
    "r_g",
    "s_n",
    "swir",
    "vis",
    "vis_c",
    "vis_lc",
    "wf15",
    "wf3",
    "wf31",
    "wf61",
    "wf7",
)
#: Context the pixel features need on each side (the widest box is 61 px), in pixels.
PIXEL_MARGIN = 32
#: Shore pixels: non-water pixels within this distance of water, in pixels.
SHORE_PX = 7
#: Distances to water and to solid land are capped here, in pixels.
DIST_CAP = 20.0

#: Thresholds used by this module (not graph inputs); defaults, overridden by the classifier's
#: manifest entry and then by the fields of ``ShipSettings``.
CHIP_DEFAULTS = {
    "min_score": 0.5,
    "free_water_min": 0.9,
    "free_ndvi_min": -0.15,
    "free_contrast_min": 0.05,
    #: pixels of a free footprint that reach free_contrast_min on their own: one flipped bit
    #: (single-event upset) makes one bright pixel, a hull spreads over several
    "free_support_px": 2.0,
    #: SWIR and blue contrast of a free footprint relative to its NIR contrast (against the
    #: water of its ring): surf and whitecaps are low in SWIR, marsh and sand in blue
    #: (ShipScreen._spectral_ratios)
    "free_swir_ratio_min": 0.2,
    "free_blue_ratio_min": 0.2,
    "seed_prob": 0.98,
    "grow_prob": 0.8,
    "shore_min_pixels": 8.0,
    "min_elongation": 1.5,
    "grow_k": 1.5,
    "grow_delta": 0.01,
    "min_pixels": 4.0,
    "land_open_px": 15.0,
    "land_grow_px": 0.0,
    "land_close_px": 1.0,
    "max_length_m": 400.0,
    #: vessels shorter than this are not reported: at 10 m a boat under ~35 m is 2-5 pixels,
    #: as bright as a buoy, a wave crest or a flipped bit, and the sen2ships labels (the
    #: only truth we have) leave such small craft out (busan's smallest labelled vessel
    #: covers 34 px, about 2,300 m2; its smallest detected vessel is 35.7 m long)
    "min_length_m": 35.0,
}


def chip_thresholds(*layers: Mapping[str, float]) -> dict[str, float]:
    """:data:`CHIP_DEFAULTS` updated by each mapping in turn (manifest entries, settings)."""
    th: dict[str, float] = {**CHIP_DEFAULTS}
    for layer in layers:
        th.update({k: float(v) for k, v in layer.items()})
    return th


@dataclass(frozen=True)
class ShipCandidate:
    """One grown candidate footprint in a tile's read window (before the classifier)."""

    rows: np.ndarray  # int64 read-window rows of its pixels
    cols: np.ndarray  # int64 read-window columns
    contrast: np.ndarray  # float32 NIR minus local sea background, per pixel
    strong: int  # pixels that passed the screen
    length_px: float  # major-axis length from the pixel moments
    #: every computed chip measure by name
    measures: Mapping[str, float]
    #: "free" (surrounded by water, from the contrast screen) or "shore" (pixel classifier)
    kind: str = "free"
    #: free: water fraction of the ring; shore: highest pixel probability
    score: float = 0.0


@dataclass(frozen=True)
class ScreenMaps:
    """Screen outputs for one read window (padding removed from ``candidate``)."""

    candidate: np.ndarray  # bool, read-window shape
    bg_mean: np.ndarray  # block grid (padded origin: see ``pad``)
    bg_std: np.ndarray
    sea_frac: np.ndarray
    pad: tuple[int, int]  # (top, left) pixels of padding before the read window

    def block_values(self, arr: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Block-grid values at read-window pixels."""
        return arr[(rows + self.pad[0]) // BLOCK, (cols + self.pad[1]) // BLOCK]

    def block_box(self, arr: np.ndarray, y: int, x: int, bh: int, bw: int) -> np.ndarray:
        """Block-grid values over the read-window box (y, x, bh, bw), by repetition."""
        py, px = y + self.pad[0], x + self.pad[1]
        by0, bx0 = py // BLOCK, px // BLOCK
        by1, bx1 = (py + bh - 1) // BLOCK + 1, (px + bw - 1) // BLOCK + 1
        a = np.repeat(np.repeat(arr[by0:by1, bx0:bx1], BLOCK, axis=0), BLOCK, axis=1)
        oy, ox = py - by0 * BLOCK, px - bx0 * BLOCK
        return a[oy : oy + bh, ox : ox + bw]


def water_mask(
    green: np.ndarray, nir: np.ndarray, valid: np.ndarray, ndwi_min: float
) -> np.ndarray:
    """NDWI water test as in the screen graph: green - nir > ndwi_min * (green + nir)."""
    return ((green - nir) > np.float32(ndwi_min) * (green + nir)) & valid


def _box(a: np.ndarray, k: int) -> np.ndarray:
    out: np.ndarray = cv2.boxFilter(a, -1, (k, k), borderType=cv2.BORDER_REFLECT)
    return out


def pixel_features(
    bands: Mapping[str, np.ndarray], valid: np.ndarray, ndwi_min: float
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-pixel feature planes (:data:`FEATURES`) and the water mask of a box.

    A pixel's features depend on its neighbourhood up to :data:`PIXEL_MARGIN` pixels away
    only, so they are exact wherever the box extends that far around the pixel."""
    bl, g, r, n, s = (
        np.asarray(bands[k], np.float32) for k in ("blue", "green", "red", "nir", "swir16")
    )
    e = np.float32(1e-4)
    water_b = water_mask(g, n, valid, ndwi_min)
    water = water_b.astype(np.float32)
    vis = (bl + g + r) / np.float32(3.0)
    f: dict[str, np.ndarray] = {
        "ndwi": (g - n) / (g + n + e),
        "mndwi": (g - s) / (g + s + e),
        "ndvi": (n - r) / (n + r + e),
        "vis": vis,
        "nir": n,
        "swir": s,
        "bl_r": bl / (r + e),
        "b_g": bl - g,
        "r_g": r - g,
        "s_n": s - n,
    }
    for k in (3, 7, 15, 31, 61):
        f[f"wf{k}"] = _box(water, k)
    wc = np.maximum(f["wf31"], np.float32(1e-3))
    f["nir_c"] = n - _box(water * n, 31) / wc
    f["vis_c"] = vis - _box(water * vis, 31) / wc
    for k in (3, 7):
        m = _box(n, k)
        f[f"nsd{k}"] = np.sqrt(np.maximum(_box(n * n, k) - m * m, 0.0))
    f["nir_m7"] = _box(n, 7) - n
    nonwater = (~water_b).astype(np.uint8)
    cap = np.float32(DIST_CAP)
    f["dt_water"] = np.minimum(cv2.distanceTransform(nonwater, cv2.DIST_L2, 3), cap)
    land = cv2.morphologyEx(nonwater, cv2.MORPH_OPEN, np.ones((15, 15), np.uint8))
    f["dt_land"] = np.minimum(cv2.distanceTransform(1 - land, cv2.DIST_L2, 3), cap)
    f["is_land"] = land.astype(np.float32)
    nw = nonwater.astype(np.float32)
    f["vis_lc"] = vis - _box(nw * vis, 15) / np.maximum(_box(nw, 15), np.float32(1e-3))
    return f, water_b


def _pixels_of(lab: np.ndarray, stats: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of label ``j`` (searched in its bounding box only)."""
    x, y, w, h = (int(v) for v in stats[j, :4])
    r, c = np.nonzero(lab[y : y + h, x : x + w] == j)
    return r + y, c + x


def _axes(r: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Major and minor axis lengths (pixels) of a pixel set from its second moments."""
    if r.size < 2:
        return 1.0, 1.0
    ev = np.linalg.eigvalsh(np.cov(np.vstack([r, c]).astype(np.float64), bias=True))
    lam_small, lam_big = max(float(ev[0]), 0.0), max(float(ev[1]), 0.0)
    return math.sqrt(12.0 * lam_big + 1.0), math.sqrt(12.0 * lam_small + 1.0)


def shore_zone(
    planes: Mapping[str, np.ndarray], water: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Pixels the pixel classifier scores: valid non-water within :data:`SHORE_PX` of water."""
    return valid & ~water & (planes["dt_water"] <= SHORE_PX)


class ShipScreen:
    """The ONNX screen, footprint growth and chip measures of free vessels, and (with a
    ``shore_model``) the pixel classifier's objects along the shore."""

    def __init__(
        self,
        model: OnnxModel,
        thresholds: Mapping[str, float],
        shore_model: OnnxModel | None = None,
    ) -> None:
        self.model = model
        self.shore_model = shore_model
        block = int(model.info.raw.get("block_px", BLOCK))
        ctx = int(model.info.raw.get("context_blocks", 2 * CONTEXT_BLOCKS + 1))
        if block != BLOCK or ctx != 2 * CONTEXT_BLOCKS + 1:
            raise ModelError(
                f"{model.info.path}: screen block {block} px / context {ctx} blocks, this code "
                f"expects {BLOCK} / {2 * CONTEXT_BLOCKS + 1}; rebuild the screen "
                "(models/build_ship_model.py)"
            )
        self.thresholds = dict(thresholds)
        self._feeds = {
            k: np.array([v], np.float32)
            for k, v in self.thresholds.items()
            if k in model.input_names
        }

    def run(
        self, green: np.ndarray, nir: np.ndarray, valid: np.ndarray, origin: tuple[int, int]
    ) -> ScreenMaps:
        """Screen a read window whose top-left pixel is ``origin`` (row, col) in the scene.

        The window is padded so that its blocks line up with the scene's block grid.
        """
        h, w = nir.shape
        top, left = origin[0] % BLOCK, origin[1] % BLOCK
        bottom = -(h + top) % BLOCK
        right = -(w + left) % BLOCK
        validf = valid.astype(np.float32)
        if top or left or bottom or right:
            pads = ((top, bottom), (left, right))
            green, nir, validf = (np.pad(a, pads) for a in (green, nir, validf))
        feeds = {
            "green": np.ascontiguousarray(green, np.float32)[None, None],
            "nir": np.ascontiguousarray(nir, np.float32)[None, None],
            "valid": validf[None, None],
            **self._feeds,
        }
        cand, mean, std, sea, _ = self.model.run(feeds)
        return ScreenMaps(
            cand[0, 0, top : top + h, left : left + w].astype(bool),
            mean[0, 0],
            std[0, 0],
            sea[0, 0],
            (top, left),
        )

    def candidates(
        self,
        bands: Mapping[str, np.ndarray],
        valid: np.ndarray,
        origin: tuple[int, int],
        core: tuple[slice, slice] | None = None,
    ) -> list[ShipCandidate]:
        """Footprints grown from the screen's candidates, with their features.

        ``bands`` maps roles (:data:`ROLES`) to reflectance arrays of the read window.  Only
        footprints with a pixel inside ``core`` (default: everywhere) are returned.
        """
        nir, green = bands["nir"], bands["green"]
        maps = self.run(green, nir, valid, origin)
        cand = maps.candidate
        if not cand.any():
            return []
        th = self.thresholds
        h, w = cand.shape
        # Group candidates on the block grid (64x fewer cells; aligned to the scene, so the
        # groups do not depend on the tiling): blocks with a candidate, grown by one block.
        pt, pl = maps.pad
        nby, nbx = maps.bg_mean.shape
        padded = np.zeros((nby * BLOCK, nbx * BLOCK), bool)
        padded[pt : pt + h, pl : pl + w] = cand
        blk = np.asarray(padded.reshape(nby, BLOCK, nbx, BLOCK).any(axis=(1, 3)), np.uint8)
        blk_grown: np.ndarray = cv2.dilate(blk, np.ones((3, 3), np.uint8))
        n, blabels, bboxes, _ = cv2.connectedComponentsWithStats(blk_grown, connectivity=8)
        in_core = np.zeros((h, w), bool)
        if core is None:
            in_core[:] = True
        else:
            in_core[core] = True
        out: list[ShipCandidate] = []
        for i in range(1, n):
            bx, by, bbw, bbh = (int(v) for v in bboxes[i, :4])
            py0, px0 = by * BLOCK - pt, bx * BLOCK - pl  # block box in read-window pixels
            y, x = max(0, py0), max(0, px0)
            y_end, x_end = min(h, py0 + bbh * BLOCK), min(w, px0 + bbw * BLOCK)
            if y >= y_end or x >= x_end:
                continue
            bh, bw = y_end - y, x_end - x
            gb = blabels[by : by + bbh, bx : bx + bbw] == i
            group = np.repeat(np.repeat(gb, BLOCK, axis=0), BLOCK, axis=1)[
                y - py0 : y - py0 + bh, x - px0 : x - px0 + bw
            ]
            sl = (slice(y, y + bh), slice(x, x + bw))
            mu = maps.block_box(maps.bg_mean, y, x, bh, bw)
            sd = maps.block_box(maps.bg_std, y, x, bh, bw)
            thr = mu + np.maximum(th["grow_k"] * sd, th["grow_delta"])
            ly, lx = max(0, y - RING_PX), max(0, x - RING_PX)
            lbox = (ly, lx, min(h, y + bh + RING_PX) - ly, min(w, x + bw + RING_PX) - lx)
            land_box = self._land(bands, valid, lbox, h, w)
            land = land_box[y - ly : y - ly + bh, x - lx : x - lx + bw]
            strong = cand[sl] & group & ~land
            taken = np.zeros((bh, bw), bool)
            if strong.any():
                weak = ((nir[sl] > thr) & valid[sl] & group & ~land) | strong
                _, lab, stats, _ = cv2.connectedComponentsWithStats(
                    weak.astype(np.uint8), connectivity=8
                )
                keep = np.unique(lab[strong])
                for j in keep[keep > 0]:
                    r, c = _pixels_of(lab, stats, int(j))
                    one = self._candidate(
                        bands, valid, maps, cand, r + y, c + x, (land_box, ly, lx)
                    )
                    if one.score >= th["free_water_min"]:
                        taken[r, c] = True  # a free vessel: not scored again as shore
                    if in_core[r + y, c + x].any():
                        out.append(one)
            if self.shore_model is not None:
                out.extend(self._shore(bands, valid, maps, (y, x, bh, bw), group & ~taken, in_core))
        return out

    def _shore(
        self,
        bands: Mapping[str, np.ndarray],
        valid: np.ndarray,
        maps: ScreenMaps,
        box: tuple[int, int, int, int],
        allowed: np.ndarray,
        in_core: np.ndarray,
    ) -> list[ShipCandidate]:
        """Pixel-classifier objects in ``box`` (y, x, height, width) of the read window, on the
        ``allowed`` pixels of the box only."""
        assert self.shore_model is not None
        th = self.thresholds
        y, x, bh, bw = box
        h, w = valid.shape
        sl = (slice(y, y + bh), slice(x, x + bw))
        if not (
            allowed & ~water_mask(bands["green"][sl], bands["nir"][sl], valid[sl], th["ndwi_min"])
        ).any():
            return []  # no non-water pixel left to score (e.g. only free vessels at sea)
        mg = PIXEL_MARGIN
        y0, x0 = max(0, y - mg), max(0, x - mg)
        y1, x1 = min(h, y + bh + mg), min(w, x + bw + mg)
        sub = {k: bands[k][y0:y1, x0:x1] for k in ROLES}
        vsub = valid[y0:y1, x0:x1]
        planes, water = pixel_features(sub, vsub, th["ndwi_min"])
        inner = (slice(y - y0, y - y0 + bh), slice(x - x0, x - x0 + bw))
        zone = shore_zone(planes, water, vsub)[inner] & allowed
        if not zone.any():
            return []
        feats = np.stack([planes[f][inner][zone] for f in FEATURES], axis=1)
        out_p = self.shore_model.run({"features": np.ascontiguousarray(feats, np.float32)})
        p = np.asarray(out_p[1], np.float32)
        prob = np.zeros((bh, bw), np.float32)
        prob[zone] = p[:, 1] if p.ndim == 2 else p
        seeds = prob >= th["seed_prob"]
        if not seeds.any():
            return []
        _, lab, stats, _ = cv2.connectedComponentsWithStats(
            (prob >= th["grow_prob"]).astype(np.uint8), connectivity=8
        )
        nir = bands["nir"]
        out: list[ShipCandidate] = []
        for j in np.unique(lab[seeds]):
            if j == 0:
                continue
            r, c = _pixels_of(lab, stats, int(j))
            pr = prob[r, c]
            r = r + y
            c = c + x
            if not in_core[r, c].any():
                continue
            length, width = _axes(r, c)
            mu = maps.block_values(maps.bg_mean, r, c)
            measures = {
                "pixels": float(r.size),
                "length_px": length,
                "width_px": width,
                "elongation": length / width,
                "max_prob": float(pr.max()),
                "mean_prob": float(pr.mean()),
            }
            out.append(
                ShipCandidate(
                    r.astype(np.int64),
                    c.astype(np.int64),
                    (nir[r, c] - mu).astype(np.float32),
                    int(maps.candidate[r, c].sum()),
                    length,
                    measures,
                    "shore",
                    float(pr.max()),
                )
            )
        return out

    def _land(
        self,
        bands: Mapping[str, np.ndarray],
        valid: np.ndarray,
        box: tuple[int, int, int, int],
        h: int,
        w: int,
    ) -> np.ndarray:
        """Land over ``box`` (y, x, height, width): the opening of the non-water mask by a
        square wider than any hull, so land masses, quays and piers wider than the square stay
        and free-floating objects go.  Computed on the box plus a margin of twice the square
        (the opening of the box's pixels is then exact)."""
        k = int(self.thresholds["land_open_px"])
        y, x, bh, bw = box
        m = 2 * k
        y0, y1, x0, x1 = max(0, y - m), min(h, y + bh + m), max(0, x - m), min(w, x + bw + m)
        wm = water_mask(
            bands["green"][y0:y1, x0:x1],
            bands["nir"][y0:y1, x0:x1],
            valid[y0:y1, x0:x1],
            self.thresholds["ndwi_min"],
        )
        nonwater: np.ndarray = (~wm).astype(np.uint8)
        c = int(self.thresholds["land_close_px"])
        if c > 1:  # fill speckle of water-like pixels inside land and shallows
            nonwater = cv2.morphologyEx(nonwater, cv2.MORPH_CLOSE, np.ones((c, c), np.uint8))
        opened: np.ndarray = cv2.morphologyEx(nonwater, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
        g = int(self.thresholds["land_grow_px"])
        if g > 0:  # the jagged non-water fringe along the coast belongs to the land too
            opened = cv2.dilate(opened, np.ones((2 * g + 1, 2 * g + 1), np.uint8)) & nonwater
        return opened[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw] > 0

    def _candidate(
        self,
        bands: Mapping[str, np.ndarray],
        valid: np.ndarray,
        maps: ScreenMaps,
        cand: np.ndarray,
        r: np.ndarray,
        c: np.ndarray,
        land: tuple[np.ndarray, int, int],
    ) -> ShipCandidate:
        nir = bands["nir"]
        h, w = nir.shape
        r0, r1 = max(0, int(r.min()) - RING_PX), min(h, int(r.max()) + RING_PX + 1)
        c0, c1 = max(0, int(c.min()) - RING_PX), min(w, int(c.max()) + RING_PX + 1)
        obj = np.zeros((r1 - r0, c1 - c0), np.uint8)
        obj[r - r0, c - c0] = 1
        k = 2 * RING_PX + 1
        ring = (cv2.dilate(obj, np.ones((k, k), np.uint8)) > 0) & (obj == 0)
        ring &= valid[r0:r1, c0:c1]
        mu = maps.block_values(maps.bg_mean, r, c).astype(np.float64)
        sd = maps.block_values(maps.bg_std, r, c).astype(np.float64)
        sea = maps.block_values(maps.sea_frac, r, c).astype(np.float64)
        contrast = nir[r, c].astype(np.float64) - mu
        n = r.size
        strong = int(cand[r, c].sum())
        # shape from second moments
        if n > 1:
            cov = np.cov(np.vstack([r, c]).astype(np.float64), bias=True)
            ev = np.linalg.eigvalsh(cov)
            lam_small, lam_big = max(float(ev[0]), 0.0), max(float(ev[1]), 0.0)
        else:
            lam_small = lam_big = 0.0
        length = math.sqrt(12.0 * lam_big + 1.0)
        width = math.sqrt(12.0 * lam_small + 1.0)

        def ring_mean(role: str) -> float:
            a = bands[role][r0:r1, c0:c1][ring]
            return float(a.mean()) if a.size else 0.0

        gr, nr = bands["green"][r0:r1, c0:c1], nir[r0:r1, c0:c1]
        ring_w = water_mask(gr, nr, valid[r0:r1, c0:c1], self.thresholds["ndwi_min"])[ring]
        ring_water = float(ring_w.mean()) if ring_w.size else 0.0
        land_box, ly, lx = land
        ring_l = land_box[r0 - ly : r1 - ly, c0 - lx : c1 - lx][ring]
        ring_land = float(ring_l.mean()) if ring_l.size else 0.0
        mu_bar = float(mu.mean())
        sd_bar = float(sd.mean())
        z = float(contrast.max()) / max(sd_bar, STD_FLOOR)
        feats = {
            "log_max_z": math.log1p(max(z, 0.0)),
            "ring_water": ring_water,
            "ring_land": ring_land,
            "ring_contrast": ring_mean("nir") - mu_bar,
            "sea_frac": float(sea.mean()),
            "log_pixels": math.log(n),
            "width_px": width,
            "length_px": length,
            "elongation": length / width,
            "fill": n
            / float((int(r.max()) - int(r.min()) + 1) * (int(c.max()) - int(c.min()) + 1)),
            "strong_frac": strong / n,
            "log_contrast": math.log(max(float(contrast.max()), 1e-4)),
            "mean_z": float(contrast.mean()) / max(sd_bar, STD_FLOOR),
        }
        if "red" in bands:  # hulls are not water-coloured (water: NDVI about -0.3)
            red, ni = float(bands["red"][r, c].mean()), float(nir[r, c].mean())
            feats["ndvi"] = (ni - red) / max(ni + red, 1e-4)
        feats.update(self._spectral_ratios(bands, r, c, (r0, r1, c0, c1), ring, ring_w))
        return ShipCandidate(
            r.astype(np.int64),
            c.astype(np.int64),
            contrast.astype(np.float32),
            strong,
            length,
            feats,
            "free",
            ring_water,
        )

    @staticmethod
    def _spectral_ratios(
        bands: Mapping[str, np.ndarray],
        r: np.ndarray,
        c: np.ndarray,
        box: tuple[int, int, int, int],
        ring: np.ndarray,
        ring_water: np.ndarray,
    ) -> dict[str, float]:
        """SWIR and blue contrast of a footprint relative to its NIR contrast, each against
        the mean of the water pixels of its ring (``swir_nir``, ``blue_nir``).

        Whitecaps and surf are water: the 1.6 um band is absorbed, so their SWIR contrast is
        a small fraction of their NIR contrast (0.05-0.23 on the Virginia inlet's breakers),
        while hulls of paint and steel keep a good part of it (0.23-0.9 on the ports'
        vessels, less for small hulls because B11 is 20 m).  Marsh, mud and sand patches
        are no brighter than water in blue (ratio -0.15-0.1), hulls are (0.3 and more)."""
        out = {"swir_nir": 1.0, "blue_nir": 1.0}  # no usable ring: no evidence either way
        r0, r1, c0, c1 = box
        sel = np.zeros(ring.shape, bool)
        sel[ring] = ring_water
        if not sel.any():
            return out
        obj = {}
        for role in ("nir", "swir16", "blue"):
            if role not in bands:
                return out
            a = bands[role]
            obj[role] = float(a[r, c].mean()) - float(a[r0:r1, c0:c1][sel].mean())
        if obj["nir"] <= 1e-4:
            return out
        out["swir_nir"] = obj["swir16"] / obj["nir"]
        out["blue_nir"] = obj["blue"] / obj["nir"]
        return out


def role_bands(data: TileData, scene: Scene) -> dict[str, np.ndarray]:
    """Role -> reflectance array of the tile's read window."""
    return {role: data.bands[scene.band_for_role(role).name] for role in ROLES}


class ShipDetector:
    """Per tile: ONNX screen -> free footprints + ONNX pixel-classifier shore objects -> vessel
    components."""

    name = "ships"
    cls = "ship"
    roles = ROLES
    #: under cloud or shadow (a bright cloud fragment over water looks like a hull: dropped)
    under_cloud = "drop"

    def __init__(
        self,
        settings: Settings,
        screen_model: OnnxModel | None = None,
        classifier_model: OnnxModel | None = None,
    ) -> None:
        self.settings = settings
        self.screen_model = screen_model or detector_model(SCREEN_MODEL, settings)
        self.classifier_model = classifier_model or detector_model(CLASSIFIER_MODEL, settings)
        feats = tuple(self.classifier_model.info.raw.get("features", ()))
        if feats != FEATURES:
            raise ModelError(
                f"{self.classifier_model.info.path}: classifier features {list(feats)} differ "
                f"from this code's {list(FEATURES)}; retrain with models/train_ship_classifier.py"
            )
        th = chip_thresholds(
            self.screen_model.info.thresholds, self.classifier_model.info.thresholds
        )
        self.thresholds = manifest_thresholds(settings.ships, th)
        self.screen = ShipScreen(self.screen_model, self.thresholds, self.classifier_model)

    @property
    def models(self) -> tuple[OnnxModel, ...]:
        return (self.screen_model, self.classifier_model)

    def band_names(self, scene: Scene) -> list[str]:
        return [scene.band_for_role(r).name for r in self.roles]

    def context_px(self, grid: Grid) -> int:
        # screen window (block-aligned) + growth margin + footprint ring
        return BLOCK * (CONTEXT_BLOCKS + 1) + GROW_PX + RING_PX + PIXEL_MARGIN + 7

    def accept(self, c: ShipCandidate, max_len_px: float) -> bool:
        """The size, shape and surroundings tests of one candidate (see the module doc)."""
        th = self.thresholds
        if c.length_px > max_len_px or c.score < th["min_score"]:
            return False
        if c.kind == "free":
            return (
                c.rows.size >= th["min_pixels"]
                and c.score >= th["free_water_min"]
                and c.measures.get("ndvi", 0.0) >= th["free_ndvi_min"]
                and float(c.contrast.max()) >= th["free_contrast_min"]
                and int((c.contrast >= th["free_contrast_min"]).sum()) >= th["free_support_px"]
                and c.measures.get("swir_nir", 1.0) >= th["free_swir_ratio_min"]
                and c.measures.get("blue_nir", 1.0) >= th["free_blue_ratio_min"]
            )
        return (
            c.rows.size >= th["shore_min_pixels"]
            and c.measures["elongation"] >= th["min_elongation"]
        )

    def detect(self, data: TileData, scene: Scene) -> list[Component]:
        tile = data.tile
        rs, cs = tile.core_in_read
        origin = (int(tile.read.row_off), int(tile.read.col_off))
        cands = self.screen.candidates(role_bands(data, scene), data.valid, origin, (rs, cs))
        if not cands:
            return []
        # longer than max_length_m: breakwaters, bridges, piers
        max_len = self.thresholds["max_length_m"] / scene.grid.ground_res_m
        keep = [(c, c.score) for c in cands if self.accept(c, max_len)]
        if not keep:
            return []
        core = tile.core
        r_lo, c_lo = rs.start, cs.start
        r_hi, c_hi = rs.stop, cs.stop
        out: list[Component] = []
        for c, s in keep:
            inside = (c.rows >= r_lo) & (c.rows < r_hi) & (c.cols >= c_lo) & (c.cols < c_hi)
            if not inside.any():
                continue
            r, q = c.rows[inside], c.cols[inside]
            # the object's own box inside the core (objects never touch each other)
            y0, x0 = int(r.min()), int(q.min())
            bh, bw = int(r.max()) - y0 + 1, int(q.max()) - x0 + 1
            mask = np.zeros((bh, bw), bool)
            mask[r - y0, q - x0] = True
            contrast = np.zeros((bh, bw), np.float32)
            contrast[r - y0, q - x0] = c.contrast[inside]
            rr, cc = np.mgrid[y0 : y0 + bh, x0 : x0 + bw].astype(np.float64)
            rr += origin[0] + 0.5  # scene pixel-centre coordinates
            cc += origin[1] + 0.5
            values = {
                "max_score": np.full((bh, bw), s, np.float32),
                "max_shore": np.full((bh, bw), float(c.kind == "shore"), np.float32),
                "sum_contrast": contrast,
                "max_contrast": contrast,
                "sum_r": rr,
                "sum_c": cc,
                "sum_rr": rr * rr,
                "sum_cc": cc * cc,
                "sum_rc": rr * cc,
            }
            reducers = {k: (MAX if k.startswith("max_") else SUM) for k in values}
            pieces = components_from_mask(
                self.cls,
                tile.id,
                mask,
                x0 - c_lo + int(core.col_off),
                y0 - r_lo + int(core.row_off),
                values,
                reducers,
            )
            # at_edge must refer to the tile core, not to the object's box
            for p in pieces:
                edge = y0 == r_lo or x0 == c_lo or y0 + bh == r_hi or x0 + bw == c_hi
                out.append(dataclasses.replace(p, at_edge=edge))
        return out

    def finalise(self, comp: Component, scene: Scene) -> Detection | None:
        """Merged component -> WGS84 vessel with length, width, heading and score."""
        st = comp.stats
        n = int(st["n_pixels"])
        if n < self.thresholds["min_pixels"]:
            return None
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
        if length_px * res < self.thresholds["min_length_m"]:
            return None  # small craft (see CHIP_DEFAULTS)
        heading: float | None = None
        if length_px >= 3.0 and length_px / width_px >= 1.5:
            # major axis direction: rows grow southwards, columns eastwards
            theta = 0.5 * math.atan2(2.0 * vrc, vcc - vrr)  # angle from +col towards +row
            east, north = math.cos(theta), -math.sin(theta)
            heading = round(math.degrees(math.atan2(east, north)) % 180.0, 1)
        geom = pixel_to_wgs84(comp.geometry, scene.grid)
        lon, lat = centroid_lonlat(geom)
        minx, miny, maxx, maxy = comp.geometry.bounds
        measures: dict[str, Any] = {
            "length_m": round(length_px * res, 1),
            "width_m": round(width_px * res, 1),
            "heading_deg": heading,
            "pixel_count": n,
            "area_m2": round(n * scene.grid.pixel_area_m2, 1),
            "mean_contrast": round(st["sum_contrast"] / n, 4),
            "max_contrast": round(st["max_contrast"], 4),
            "classifier_score": round(st["max_score"], 4),
            "centroid_lon": round(lon, 6),
            "centroid_lat": round(lat, 6),
            "row_min": int(miny),
            "col_min": int(minx),
            "row_max": int(maxy) - 1,
            "col_max": int(maxx) - 1,
            "tiles": comp.tile_id,
            "kind": "shore" if st.get("max_shore", 0.0) > 0.5 else "free",
        }
        score = min(1.0, max(0.0, float(st["max_score"])))
        return Detection(self.cls, score, geom, measures)
