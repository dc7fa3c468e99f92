"""Synthetic Sentinel-2 L1C crop scenes with known stressed fields.

The scene is honest about being synthetic: a farm belt of rectangular fields separated by
two-pixel tracks (west), woodland with a lake (centre) and sea behind a wavy coast (east), plus
a built-up block.  Each field has a state with its own TOA reflectance spectrum:

============  =====  =====================================================================
state         class  spectrum (NDVI / NDRE / NDMI of the noise-free spectrum)
============  =====  =====================================================================
healthy       2      dense green crop (0.81 / 0.63 / 0.33)
stressed      3      moderate stress: low chlorophyll and water (0.41 / 0.28 / -0.08)
severe        4      severe stress (0.29 / 0.18 / -0.2)
declining     5      NDVI 0.59: not low, but 0.22 below its baseline (found by the drop test)
bare          6      bare soil (0.12)
============  =====  =====================================================================

Other classes: 1 woodland, 7 water, 8 built-up / tracks.  Some healthy fields carry a stressed
patch (a corner rectangle).  Bands are written at native resolution (10/20/60 m); 20 m and 60 m
samples are the mean of the 10 m spectra they cover (mixed pixels at field edges), plus
Gaussian noise (sigma 0.004 reflectance).

Written files: one GeoTIFF per band (DN = reflectance x 10000), ``truth_classes.tif`` (the
class of every 10 m pixel), optionally ``baseline_ndvi.tif`` (expected NDVI: the healthy value
on every crop field, by default in EPSG:4326 to exercise reprojection) and ``truth.json``
(fields with their states, stressed areas per field and totals).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.warp import transform as warp_transform

from ..sensors import PROFILES

log = logging.getLogger(__name__)

BANDS = PROFILES["sentinel2-l1c"].band_names
# band order: B01 B02 B03 B04 B05 B06 B07 B08 B09 B10 B11 B12 B8A (profile order, see below)
_SPECTRA: dict[str, dict[str, float]] = {
    "woodland": dict(
        B01=0.08,
        B02=0.05,
        B03=0.06,
        B04=0.03,
        B05=0.06,
        B06=0.2,
        B07=0.26,
        B08=0.30,
        B8A=0.31,
        B09=0.1,
        B10=0.002,
        B11=0.15,
        B12=0.07,
    ),
    "healthy": dict(
        B01=0.08,
        B02=0.05,
        B03=0.07,
        B04=0.04,
        B05=0.09,
        B06=0.25,
        B07=0.33,
        B08=0.38,
        B8A=0.40,
        B09=0.12,
        B10=0.002,
        B11=0.19,
        B12=0.09,
    ),
    "stressed": dict(
        B01=0.09,
        B02=0.07,
        B03=0.09,
        B04=0.10,
        B05=0.14,
        B06=0.19,
        B07=0.23,
        B08=0.24,
        B8A=0.25,
        B09=0.08,
        B10=0.002,
        B11=0.28,
        B12=0.19,
    ),
    "severe": dict(
        B01=0.1,
        B02=0.08,
        B03=0.1,
        B04=0.12,
        B05=0.16,
        B06=0.19,
        B07=0.21,
        B08=0.22,
        B8A=0.23,
        B09=0.07,
        B10=0.002,
        B11=0.33,
        B12=0.25,
    ),
    "declining": dict(
        B01=0.08,
        B02=0.06,
        B03=0.08,
        B04=0.07,
        B05=0.12,
        B06=0.22,
        B07=0.26,
        B08=0.27,
        B8A=0.28,
        B09=0.09,
        B10=0.002,
        B11=0.22,
        B12=0.13,
    ),
    "bare": dict(
        B01=0.11,
        B02=0.1,
        B03=0.13,
        B04=0.19,
        B05=0.21,
        B06=0.22,
        B07=0.23,
        B08=0.24,
        B8A=0.25,
        B09=0.08,
        B10=0.002,
        B11=0.32,
        B12=0.28,
    ),
    "water": dict(
        B01=0.11,
        B02=0.08,
        B03=0.06,
        B04=0.04,
        B05=0.03,
        B06=0.02,
        B07=0.02,
        B08=0.02,
        B8A=0.015,
        B09=0.005,
        B10=0.001,
        B11=0.01,
        B12=0.007,
    ),
    "urban": dict(
        B01=0.13,
        B02=0.12,
        B03=0.12,
        B04=0.13,
        B05=0.14,
        B06=0.15,
        B07=0.16,
        B08=0.17,
        B8A=0.17,
        B09=0.06,
        B10=0.003,
        B11=0.2,
        B12=0.18,
    ),
}
#: class code of each state / surface in ``truth_classes.tif``
CLASSES = {
    "woodland": 1,
    "healthy": 2,
    "stressed": 3,
    "severe": 4,
    "declining": 5,
    "bare": 6,
    "water": 7,
    "urban": 8,
}
#: classes stressed by the low-value test, and by the drop test against the baseline
STRESSED_LOW = ("stressed", "severe")
STRESSED_DROP = ("stressed", "severe", "declining")
NOISE = 0.004
TRACK_PX = 2


@dataclass(frozen=True)
class SyntheticField:
    """A rectangular field on the 10 m grid, with an optional stressed corner patch."""

    id: int
    state: str
    row: int
    col: int
    height: int
    width: int
    #: stressed patch (rows, cols from the field's top-left corner), 0 when none
    patch_height: int = 0
    patch_width: int = 0
    patch_state: str = ""

    def pixels(self) -> int:
        return self.height * self.width

    def patch_pixels(self) -> int:
        return self.patch_height * self.patch_width


def _ndvi(s: dict[str, float]) -> float:
    return (s["B08"] - s["B04"]) / (s["B08"] + s["B04"])


def _plan_fields(width: int, height: int, rng: np.random.Generator) -> list[SyntheticField]:
    """Fields tiling the farm belt (west 60 %), separated by tracks."""
    states = ["healthy", "stressed", "severe", "declining", "bare", "urban"]
    probs = [0.42, 0.18, 0.1, 0.12, 0.14, 0.04]
    fields: list[SyntheticField] = []
    x_end = int(0.6 * width)
    r = max(4, height // 40)
    while r < height - 30:
        fh = int(rng.integers(30, 71))
        fh = min(fh, height - 8 - r)
        if fh < 20:
            break
        c = max(4, width // 40)
        while c < x_end - 30:
            fw = min(int(rng.integers(30, 91)), x_end - c)
            if fw < 20:
                break
            state = str(rng.choice(states, p=probs))
            ph = pw = 0
            pstate = ""
            if state == "healthy" and rng.random() < 0.35:
                ph = int(fh * rng.uniform(0.35, 0.7))
                pw = int(fw * rng.uniform(0.35, 0.7))
                pstate = "stressed" if rng.random() < 0.7 else "severe"
            fields.append(SyntheticField(len(fields) + 1, state, r, c, fh, fw, ph, pw, pstate))
            c += fw + TRACK_PX
        r += fh + TRACK_PX
    return fields


def _class_map(width: int, height: int, fields: list[SyntheticField]) -> np.ndarray:
    cls = np.full((height, width), CLASSES["woodland"], np.uint8)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x_farm = int(0.6 * width)
    # tracks and margins of the farm belt are built-up surface
    cls[:, :x_farm] = CLASSES["urban"]
    for f in fields:
        cls[f.row : f.row + f.height, f.col : f.col + f.width] = CLASSES[f.state]
        if f.patch_height and f.patch_width:
            cls[f.row : f.row + f.patch_height, f.col : f.col + f.patch_width] = CLASSES[
                f.patch_state
            ]
    # lake in the woodland, sea behind a wavy coast
    cx, cy = 0.7 * width, 0.3 * height
    lake = ((x - cx) / (0.06 * width)) ** 2 + ((y - cy) / (0.1 * height)) ** 2 < 1.0
    coast = x > 0.82 * width + 0.03 * width * np.sin(y / max(height, 1) * 6.0)
    cls[(lake | coast) & (x >= x_farm)] = CLASSES["water"]
    return cls


def _band(
    name: str, cls: np.ndarray, gain: np.ndarray, rng: np.random.Generator, factor: int
) -> np.ndarray:
    """Reflectance of one band at 10 m x ``factor``: class spectra, block-averaged, noisy."""
    lut = np.zeros(len(CLASSES) + 1, np.float32)
    for state, code in CLASSES.items():
        lut[code] = _SPECTRA[state][name]
    refl = lut[cls]
    if name in ("B05", "B06", "B07", "B08", "B8A"):  # vigour varies from field to field
        refl = refl * gain
    h, w = cls.shape
    if factor > 1:
        hp, wp = math.ceil(h / factor) * factor, math.ceil(w / factor) * factor
        pad = np.pad(refl, ((0, hp - h), (0, wp - w)), mode="edge")
        refl = pad.reshape(hp // factor, factor, wp // factor, factor).mean(axis=(1, 3))
    refl = refl + rng.normal(0.0, NOISE, refl.shape)
    return np.clip(refl, 0.0005, 1.5).astype(np.float32)


def generate_crop_scene(
    out_dir: str | Path,
    width: int = 1000,
    height: int | None = None,
    seed: int = 0,
    bands: tuple[str, ...] | None = None,
    baseline: bool = True,
    baseline_crs: str = "EPSG:4326",
    crs: str = "EPSG:32618",
    origin: tuple[float, float] = (440_000.0, 4_180_000.0),
) -> Path:
    """Write a synthetic Sentinel-2 L1C crop scene (one GeoTIFF per band) with its truth.

    ``width``/``height`` are in 10 m pixels.  ``bands`` limits the bands written (e.g. without
    B05/B8A to mimic a sensor without red-edge).  With ``baseline`` an expected-NDVI raster is
    written in ``baseline_crs`` (~20 m pixels).
    """
    height = height or width
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    profile = PROFILES["sentinel2-l1c"]
    names = bands or profile.band_names
    rng = np.random.default_rng(seed)
    fields = _plan_fields(width, height, rng)
    cls = _class_map(width, height, fields)
    # per-field vigour (+-4 % on the NIR plateau), 1 elsewhere
    gain = np.ones(cls.shape, np.float32)
    for f in fields:
        gain[f.row : f.row + f.height, f.col : f.col + f.width] = float(rng.uniform(0.96, 1.04))
    x0, y0 = origin
    crs_obj = CRS.from_string(crs)
    tags = {"PROCESSING_BASELINE": "02.09", "SYNTHETIC": "eotriage-crops"}
    for name in names:
        spec = profile.band(name)
        factor = int(round(spec.resolution_m / 10.0))
        band_rng = np.random.default_rng([seed, 1000 + profile.band_names.index(name)])
        refl = _band(name, cls, gain, band_rng, factor)
        dn = np.clip(np.round(refl * 10000.0), 1, 65534).astype(np.uint16)
        _write(
            out / f"{name}.tif",
            dn,
            crs_obj,
            Affine(spec.resolution_m, 0, x0, 0, -spec.resolution_m, y0),
            tags,
            f"{name} synthetic L1C TOA reflectance x 10000",
        )
    t10 = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    _write(
        out / "truth_classes.tif",
        cls,
        crs_obj,
        t10,
        {"CLASSES": json.dumps(CLASSES)},
        "truth class per 10 m pixel",
    )
    if baseline:
        _write_baseline(out / "baseline_ndvi.tif", cls, crs_obj, t10, baseline_crs)
    px_km2 = 100.0 / 1e6
    counts = {k: int(np.count_nonzero(cls == v)) for k, v in CLASSES.items()}
    rows = []
    for fd in fields:
        sub = cls[fd.row : fd.row + fd.height, fd.col : fd.col + fd.width]
        low = int(np.isin(sub, [CLASSES[s] for s in STRESSED_LOW]).sum())
        drop = int(np.isin(sub, [CLASSES[s] for s in STRESSED_DROP]).sum())
        cx = x0 + (fd.col + fd.width / 2) * 10.0
        cy = y0 - (fd.row + fd.height / 2) * 10.0
        (lon,), (lat,) = warp_transform(crs_obj, "EPSG:4326", [cx], [cy])
        rows.append(
            {
                **asdict(fd),
                "area_km2": round(fd.pixels() * px_km2, 6),
                "stressed_px": low,
                "stressed_km2": round(low * px_km2, 6),
                "stressed_px_baseline": drop,
                "stressed_km2_baseline": round(drop * px_km2, 6),
                "lon": lon,
                "lat": lat,
            }
        )
    truth = {
        "synthetic": True,
        "kind": "crop stress",
        "seed": seed,
        "width": width,
        "height": height,
        "crs": crs,
        "transform": list(t10)[:6],
        "pixel_m": 10.0,
        "bands": list(names),
        "classes": CLASSES,
        "class_raster": "truth_classes.tif",
        "baseline_raster": "baseline_ndvi.tif" if baseline else None,
        "stressed_low_classes": list(STRESSED_LOW),
        "stressed_drop_classes": list(STRESSED_DROP),
        "stressed_km2": round(sum(counts[s] for s in STRESSED_LOW) * px_km2, 6),
        "stressed_km2_baseline": round(sum(counts[s] for s in STRESSED_DROP) * px_km2, 6),
        "class_km2": {k: round(v * px_km2, 6) for k, v in counts.items()},
        "fields": rows,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    log.info(
        "wrote synthetic crop scene %s (%d x %d px, %d fields)", out, width, height, len(fields)
    )
    return out


def _write(
    path: Path, arr: np.ndarray, crs: CRS, transform: Affine, tags: dict[str, str], desc: str
) -> None:
    h, w = arr.shape
    kwargs = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 1,
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
    }
    if w >= 256 and h >= 256:
        kwargs.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **kwargs) as dst:
        dst.set_band_description(1, desc)
        dst.update_tags(**tags)
        dst.write(arr, 1)


def _write_baseline(path: Path, cls: np.ndarray, crs: CRS, t10: Affine, baseline_crs: str) -> None:
    """Expected NDVI: the healthy value on every crop field (whatever its state now)."""
    lut = np.zeros(len(CLASSES) + 1, np.float32)
    for state, code in CLASSES.items():
        s = "healthy" if state in ("healthy", *STRESSED_DROP) else state
        lut[code] = _ndvi(_SPECTRA[s])
    ndvi10 = lut[cls]
    h, w = cls.shape
    dst_crs = CRS.from_string(baseline_crs)
    left, top = t10 @ (0, 0)
    right, bottom = t10 @ (w, h)
    tr, dw, dh = calculate_default_transform(crs, dst_crs, w // 2, h // 2, left, bottom, right, top)
    assert dw is not None and dh is not None
    dst = np.full((dh, dw), np.nan, np.float32)
    reproject(
        ndvi10,
        dst,
        src_transform=t10,
        src_crs=crs,
        dst_transform=tr,
        dst_crs=dst_crs,
        dst_nodata=np.nan,
        resampling=Resampling.nearest,
    )
    kwargs = {
        "driver": "GTiff",
        "width": dw,
        "height": dh,
        "count": 1,
        "dtype": "float32",
        "crs": dst_crs,
        "transform": tr,
        "nodata": float("nan"),
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **kwargs) as ds:
        ds.set_band_description(1, "expected NDVI (baseline), synthetic")
        ds.write(dst, 1)
