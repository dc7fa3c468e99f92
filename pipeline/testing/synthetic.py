"""Synthetic Sentinel-2 L1C scenes with known ground truth, written block by block.

Used by the tests (known fires, injected faults) and the benchmarks (a full-size
10,980 x 10,980 13-band scene in bounded memory).  The scene is honest about being synthetic:
smooth land/water background with noise, plus square-ish fire clusters on the 20 m grid whose
SWIR values pass the fire test by a margin.  ``truth.json`` lists every fire.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from ..sensors import PROFILES

log = logging.getLogger(__name__)

# Typical TOA reflectances (land, water) per band.
_LAND = {
    "B01": 0.12,
    "B02": 0.09,
    "B03": 0.08,
    "B04": 0.07,
    "B05": 0.11,
    "B06": 0.2,
    "B07": 0.24,
    "B08": 0.27,
    "B8A": 0.28,
    "B09": 0.09,
    "B10": 0.002,
    "B11": 0.22,
    "B12": 0.13,
}
_WATER = {
    "B01": 0.11,
    "B02": 0.08,
    "B03": 0.06,
    "B04": 0.04,
    "B05": 0.03,
    "B06": 0.02,
    "B07": 0.02,
    "B08": 0.02,
    "B8A": 0.015,
    "B09": 0.005,
    "B10": 0.001,
    "B11": 0.01,
    "B12": 0.007,
}
BLOCK_ROWS = 256
#: Bumped whenever the generated pixels change, so cached scenes of an older generator are
#: not reused (2: fires heat B11 too and spill into their neighbours).
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class SyntheticFire:
    """A fire cluster: a rectangle of hot pixels on the 20 m grid.

    Like a real fire seen by the sensor: SWIR 1.6 um rises by ``rise`` times the SWIR 2.2 um
    rise (0.12-0.25; 0.13-0.23 in G90292), and the point spread spills ``SPILL`` of the rise into
    the ring of samples around the rectangle, which stay below the fire test (B12/B11 1.15).
    """

    id: int
    row20: int
    col20: int
    height20: int
    width20: int
    swir22: float
    rise: float
    lon: float = 0.0
    lat: float = 0.0

    @property
    def pixels_20m(self) -> int:
        return self.height20 * self.width20

    @property
    def pixels_10m(self) -> int:
        return 4 * self.pixels_20m


def _plan_fires(n: int, h20: int, w20: int, rng: np.random.Generator) -> list[SyntheticFire]:
    fires: list[SyntheticFire] = []
    margin = 8
    tries = 0
    while len(fires) < n and tries < 100 * max(n, 1):
        tries += 1
        fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        if h20 - fh - 2 * margin <= 0 or w20 - fw - 2 * margin <= 0:
            break
        r = int(rng.integers(margin, h20 - fh - margin))
        c = int(rng.integers(margin, w20 - fw - margin))
        # keep clusters apart (>= 40 px at 20 m) so each is one object and has background
        if any(abs(r - f.row20) < 40 and abs(c - f.col20) < 40 for f in fires):
            continue
        fires.append(
            SyntheticFire(
                len(fires) + 1,
                r,
                c,
                fh,
                fw,
                swir22=float(rng.uniform(0.45, 1.2)),
                rise=float(rng.uniform(0.12, 0.25)),
            )
        )
    return fires


#: fraction of a fire's SWIR 2.2 um rise seen in the ring of samples around it (point spread)
SPILL = 0.5


def _burn(refl: np.ndarray, r0: int, r1: int, fire: SyntheticFire, band: str) -> None:
    """Paint ``fire`` (and its point-spread ring) into rows r0:r1 of a B11/B12 block."""
    d22 = fire.swir22 - _LAND["B12"]
    ring22 = _LAND["B12"] + SPILL * d22
    if band == "B12":
        core, ring = fire.swir22, ring22
    else:
        core, ring = _LAND["B11"] + fire.rise * d22, max(_LAND["B11"], ring22 / 1.15)
    for (top, left, h, w), val in (
        ((fire.row20 - 1, fire.col20 - 1, fire.height20 + 2, fire.width20 + 2), ring),
        ((fire.row20, fire.col20, fire.height20, fire.width20), core),
    ):
        fr0, fr1 = max(r0, top), min(r1, top + h)
        if fr0 < fr1:
            refl[fr0 - r0 : fr1 - r0, left : left + w] = val


def _background(
    band: str,
    rows: np.ndarray,
    cols: np.ndarray,
    res: float,
    rng: np.random.Generator,
    water_mask: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    y, x = np.meshgrid(rows * res, cols * res, indexing="ij")
    water = water_mask(x, y)
    land_v = _LAND[band] * (1.0 + 0.15 * np.sin(x / 1700.0) * np.cos(y / 2300.0))
    v = np.where(water, _WATER[band], land_v)
    v = v + rng.normal(0.0, 0.004, size=v.shape)
    return np.clip(v, 0.0005, 1.5)


def generate_scene(
    out_dir: str | Path,
    width: int,
    height: int | None = None,
    n_fires: int = 3,
    seed: int = 0,
    bands: tuple[str, ...] | None = None,
    offset_baseline: bool = False,
    compress: str | None = "deflate",
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (500_000.0, 5_000_000.0),
) -> Path:
    """Write a synthetic Sentinel-2 L1C scene (one GeoTIFF per band) and ``truth.json``.

    ``width``/``height`` are in 10 m pixels.  Bands are written at native resolution (10, 20,
    60 m).  With ``offset_baseline`` the DNs carry the +1000 offset of processing baseline 04.00
    and the files say so (``PROCESSING_BASELINE=04.00``).  Memory use is bounded by one block of
    rows, whatever the size.
    """
    height = height or width
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    profile = PROFILES["sentinel2-l1c"]
    names = bands or profile.band_names
    rng = np.random.default_rng(seed)
    h20, w20 = math.ceil(height / 2), math.ceil(width / 2)
    fires = _plan_fires(n_fires, h20, w20, rng)
    x0, y0 = origin
    crs_obj = CRS.from_string(crs)

    def water_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # a coastline: water on the east side, wavy
        return x > (0.75 * width * 10.0 + 400.0 * np.sin(y / 900.0))

    dn_offset = 1000.0 if offset_baseline else 0.0
    tags = {"PROCESSING_BASELINE": "04.00" if offset_baseline else "02.09", "SYNTHETIC": "eotriage"}
    for name in names:
        spec = profile.band(name)
        f = int(round(spec.resolution_m / 10.0))
        bw, bh = math.ceil(width / f), math.ceil(height / f)
        transform = Affine(spec.resolution_m, 0.0, x0, 0.0, -spec.resolution_m, y0)
        kwargs = {
            "driver": "GTiff",
            "width": bw,
            "height": bh,
            "count": 1,
            "dtype": "uint16",
            "crs": crs_obj,
            "transform": transform,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "BIGTIFF": "IF_SAFER",
        }
        if compress:
            kwargs["compress"] = compress
        band_rng = np.random.default_rng([seed, profile.band_names.index(name)])
        with rasterio.open(out / f"{name}.tif", "w", **kwargs) as dst:
            dst.set_band_description(1, f"{name} synthetic L1C TOA reflectance x 10000")
            dst.update_tags(**tags)
            cols = np.arange(bw)
            for r0 in range(0, bh, BLOCK_ROWS):
                r1 = min(bh, r0 + BLOCK_ROWS)
                refl = _background(
                    name, np.arange(r0, r1), cols, spec.resolution_m, band_rng, water_mask
                )
                if name in ("B11", "B12") and f == 2:
                    for fire in fires:
                        _burn(refl, r0, r1, fire, name)
                dn = np.clip(np.round(refl * 10000.0 + dn_offset), 1, 65534).astype(np.uint16)
                dst.write(dn, 1, window=Window(0, r0, bw, r1 - r0))
    # truth: fire centroids in lon/lat
    xs = [x0 + (f.col20 + f.width20 / 2) * 20.0 for f in fires]
    ys = [y0 - (f.row20 + f.height20 / 2) * 20.0 for f in fires]
    if fires:
        lons, lats = warp_transform(crs_obj, "EPSG:4326", xs, ys)
        fires = [
            SyntheticFire(**{**asdict(f), "lon": lo, "lat": la})
            for f, lo, la in zip(fires, lons, lats, strict=True)
        ]
    truth = {
        "synthetic": True,
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "width": width,
        "height": height,
        "crs": crs,
        "offset_baseline": offset_baseline,
        "bands": list(names),
        "fires": [
            {
                **asdict(f),
                "pixels_20m": f.pixels_20m,
                "pixels_10m": f.pixels_10m,
                "area_m2": f.pixels_20m * 400.0,
            }
            for f in fires
        ],
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    log.info("wrote synthetic scene %s (%d x %d px, %d fires)", out, width, height, len(fires))
    return out
