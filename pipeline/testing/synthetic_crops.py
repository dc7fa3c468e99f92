"""Synthetic Sentinel-2 L1C crop *series*: fields through a season, some stressed from a known
date on, non-crop land, clouds on some dates, with the truth.

The scene is honest about being synthetic.  West (60 %): a farm belt of rectangular field
parcels separated by two-pixel tracks.  East: forest with a lake, scrub and desert (low or high
but stable indices), sea behind a wavy coast.

Every parcel follows a seasonal curve of canopy cover ``fc(t)`` (a double logistic: sowing day,
maximum cover, senescence day), mixed linearly from three spectra: green canopy, dry canopy and
bare soil.  A *stressed* parcel turns a share ``sigma`` of its canopy dry from its stress date
on, once the canopy is closed (by default cover >= 95 % of its maximum; NDVI drops by ~0.1-0.3,
NDMI more); a *recovering* one turns green again
from a later date.  Non-crop surfaces keep their spectra (forest with a slight seasonal swing).
Each date adds a scene-wide haze and gain, a per-parcel NIR jitter (+-1.5 %) and sensor noise
(sigma 0.004 reflectance); 20 m and 60 m bands are the means of the 10 m spectra they cover.

Clouds on some dates: bright, flat opaque blobs and their shadows (the ground darkened to 35 %,
offset along a fixed sun azimuth).  Each date's ``cloud_mask.tif`` is what a cloud screen
delivers: a 60 m grid, a cell CLOUD (1) or SHADOW (2) when any of its 10 m pixels is, CLEAR (0)
otherwise (codes of ``pipeline.core.ingest.SKY_*``).

Files (``out/``)::

    parcels.geojson        the crop parcels (WGS84), id = "P001" ...
    cropland.tif           cropland raster (uint8, 20 m, scene CRS): 1 on parcels
    truth.json             dates, parcels (calendar, stress dates, areas), class codes
    truth_classes.tif      class of every 10 m pixel (CLASSES)
    truth_parcels.tif      parcel number of every 10 m pixel (0: none)
    <date folder>/         one scene per date: B01.tif ... B8A.tif (tag ACQUISITION_DATE),
                           cloud_mask.tif, truth_sky.tif (10 m: 0 clear, 1 cloud, 2 shadow)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

from ..sensors import PROFILES

log = logging.getLogger(__name__)

BANDS = PROFILES["sentinel2-l1c"].band_names
_B = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def _spec(*v: float) -> dict[str, float]:
    return dict(zip(_B, v, strict=True))


#: TOA reflectance spectra (band order B01 ... B12 as in _B)
SPECTRA: dict[str, dict[str, float]] = {
    "canopy": _spec(0.07, 0.04, 0.07, 0.03, 0.08, 0.26, 0.36, 0.42, 0.44, 0.13, 0.002, 0.17, 0.07),
    "dry": _spec(0.08, 0.06, 0.08, 0.11, 0.15, 0.20, 0.24, 0.26, 0.27, 0.08, 0.002, 0.31, 0.21),
    "soil": _spec(0.11, 0.10, 0.13, 0.19, 0.21, 0.22, 0.23, 0.24, 0.25, 0.08, 0.002, 0.32, 0.28),
    "forest": _spec(0.08, 0.05, 0.06, 0.03, 0.06, 0.20, 0.26, 0.30, 0.31, 0.10, 0.002, 0.15, 0.07),
    "scrub": _spec(0.10, 0.08, 0.10, 0.12, 0.15, 0.18, 0.20, 0.21, 0.22, 0.07, 0.002, 0.30, 0.24),
    "desert": _spec(0.15, 0.15, 0.20, 0.28, 0.30, 0.31, 0.32, 0.33, 0.34, 0.11, 0.003, 0.45, 0.40),
    "water": _spec(
        0.11, 0.08, 0.06, 0.04, 0.03, 0.02, 0.02, 0.02, 0.015, 0.005, 0.001, 0.01, 0.007
    ),
    "urban": _spec(0.13, 0.12, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.17, 0.06, 0.003, 0.2, 0.18),
    "cloud": _spec(0.45, 0.45, 0.45, 0.46, 0.47, 0.48, 0.49, 0.50, 0.50, 0.20, 0.05, 0.35, 0.25),
}
#: class code of every 10 m pixel in ``truth_classes.tif``
CLASSES = {"crop": 1, "forest": 2, "scrub": 3, "desert": 4, "water": 5, "urban": 6}
NON_CROP = ("forest", "scrub", "desert")
NOISE = 0.004
TRACK_PX = 2
SHADOW_GAIN = 0.35
#: shadow offset from its cloud (rows, cols of 10 m pixels): sun in the north-west
SHADOW_SHIFT = (18, 24)
CLOUD_CELL_PX = 6  # the cloud mask's 60 m grid
#: by default stress strikes a parcel only once its canopy is closed: cover at this share of
#: its maximum (``generate_crop_series(established=...)`` sets another share)
ESTABLISHED = 0.95


@dataclass(frozen=True)
class SyntheticParcel:
    """A rectangular crop parcel on the 10 m grid with its season and stress."""

    id: str
    row: int
    col: int
    height: int
    width: int
    #: day of year of half cover on the way up / on the way down (senescence)
    sow_doy: float
    senesce_doy: float
    max_cover: float
    #: index of the first stressed date, and of the first date it is green again (None: never)
    stress_from: int | None = None
    stress_until: int | None = None
    #: share of the canopy turned dry while stressed
    sigma: float = 0.0

    def stressed_on(self, k: int) -> bool:
        if self.stress_from is None or k < self.stress_from:
            return False
        return self.stress_until is None or k < self.stress_until

    def cover(self, doy: float) -> float:
        up = 1.0 / (1.0 + math.exp(-(doy - self.sow_doy) / 6.0))
        down = 1.0 / (1.0 + math.exp(-(doy - self.senesce_doy) / 6.0))
        return self.max_cover * max(0.0, up - down)


def _plan_parcels(
    width: int,
    height: int,
    rng: np.random.Generator,
    doys: Sequence[int],
    stressed_share: float,
    ripening_share: float,
    established: float,
) -> list[SyntheticParcel]:
    """Parcels tiling the farm belt (west 60 %), separated by tracks."""
    rects: list[tuple[int, int, int, int]] = []
    x_end = int(0.6 * width)
    r = max(4, height // 40)
    while r < height - 30:
        fh = min(int(rng.integers(30, 71)), height - 8 - r)
        if fh < 20:
            break
        c = max(4, width // 40)
        while c < x_end - 30:
            fw = min(int(rng.integers(30, 91)), x_end - c)
            if fw < 20:
                break
            rects.append((r, c, fh, fw))
            c += fw + TRACK_PX
        r += fh + TRACK_PX
    n = len(rects)
    n_dates = len(doys)
    stressed = set(rng.choice(n, size=max(1, round(stressed_share * n)), replace=False).tolist())
    rest = [i for i in range(n) if i not in stressed]
    ripening = set(
        rng.choice(rest, size=round(ripening_share * n), replace=False).tolist()
        if ripening_share > 0
        else []
    )
    parcels = []
    for i, (r, c, fh, fw) in enumerate(rects):
        p = SyntheticParcel(
            f"P{i + 1:03d}",
            r,
            c,
            fh,
            fw,
            float(rng.uniform(115, 150)),
            float(rng.uniform(190, 205) if i in ripening else rng.uniform(255, 275)),
            float(rng.uniform(0.8, 0.95)),
        )
        if i in stressed:
            # stress strikes an established crop (cover >= ``established`` of its maximum),
            # from the 4th date at the earliest and at least two dates before the end
            ok = [k for k in range(3, n_dates - 2) if p.cover(doys[k]) >= established * p.max_cover]
            if ok:
                frm = int(rng.choice(ok))
                until = None
                if rng.random() < 0.3 and frm + 3 < n_dates:
                    until = frm + int(rng.integers(2, 4))
                sigma = float(rng.uniform(0.5, 0.85))
                p = dataclasses.replace(p, stress_from=frm, stress_until=until, sigma=sigma)
        parcels.append(p)
    return parcels


def _class_map(width: int, height: int, parcels: Sequence[SyntheticParcel]) -> np.ndarray:
    cls = np.full((height, width), CLASSES["forest"], np.uint8)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x_farm = int(0.6 * width)
    cls[:, :x_farm] = CLASSES["urban"]  # tracks and margins of the farm belt
    for p in parcels:
        cls[p.row : p.row + p.height, p.col : p.col + p.width] = CLASSES["crop"]
    east = x >= x_farm
    cls[east & (y >= height / 3)] = CLASSES["scrub"]
    cls[east & (y >= 2 * height / 3)] = CLASSES["desert"]
    cx, cy = 0.7 * width, 0.17 * height
    lake = ((x - cx) / (0.05 * width)) ** 2 + ((y - cy) / (0.08 * height)) ** 2 < 1.0
    coast = x > 0.9 * width + 0.03 * width * np.sin(y / max(height, 1) * 6.0)
    cls[(lake | coast) & east] = CLASSES["water"]
    return cls


def _clouds(shape: tuple[int, int], cover: float, rng: np.random.Generator) -> np.ndarray:
    """Sky of one date at 10 m: 0 clear, 1 cloud, 2 shadow (about ``cover`` of the scene)."""
    h, w = shape
    sky = np.zeros(shape, np.uint8)
    if cover <= 0:
        return sky
    gh, gw = max(2, h // 40), max(2, w // 40)
    field = rng.normal(size=(gh, gw))
    # smooth blobs: upsample a coarse random field, threshold at the wanted quantile
    import cv2

    smooth = cv2.GaussianBlur(field.astype(np.float32), (0, 0), 1.2)
    big = cv2.resize(smooth, (w, h), interpolation=cv2.INTER_CUBIC)
    thr = np.quantile(big, 1.0 - cover)
    cloud = big >= thr
    dy, dx = SHADOW_SHIFT
    shadow = np.zeros(shape, bool)
    shadow[dy:, dx:] = cloud[: h - dy, : w - dx]
    sky[shadow & ~cloud] = 2
    sky[cloud] = 1
    return sky


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape
    hp, wp = math.ceil(h / f) * f, math.ceil(w / f) * f
    pad = np.pad(a, ((0, hp - h), (0, wp - w)), mode="edge")
    return pad.reshape(hp // f, f, wp // f, f).mean(axis=(1, 3))


def _block_any(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape
    hp, wp = math.ceil(h / f) * f, math.ceil(w / f) * f
    pad = np.pad(a, ((0, hp - h), (0, wp - w)), mode="edge")
    return np.asarray(pad.reshape(hp // f, f, wp // f, f).any(axis=(1, 3)), dtype=bool)


def generate_crop_series(
    out_dir: str | Path,
    width: int = 800,
    height: int | None = None,
    seed: int = 0,
    n_dates: int = 12,
    start: dt.date = dt.date(2024, 4, 19),
    step_days: int = 10,
    cloudy: dict[int, float] | None = None,
    stressed_share: float = 0.2,
    ripening_share: float = 0.0,
    established: float = ESTABLISHED,
    bands: tuple[str, ...] | None = None,
    crs: str = "EPSG:32618",
    origin: tuple[float, float] = (440_000.0, 4_180_000.0),
) -> Path:
    """Write a synthetic series of ``n_dates`` Sentinel-2 L1C scenes (see the module docstring).

    ``cloudy`` maps a date index to its cloud cover (default: dates 2, 5 and 9 at 30 %, 55 % and
    95 %).  ``stressed_share`` of the parcels are stressed from a date between the 4th and the
    3rd last (30 % of them recover 2-3 dates later).  ``ripening_share`` of the others ripen
    within the series (senescence around day 190-205): a natural NDVI decline, for measuring
    what it costs (off by default).  Stress strikes a parcel once its canopy cover reached
    ``established`` of its maximum (0.95: a closed canopy; lower values put some stress onsets
    in the green-up).  ``bands`` limits the bands written.
    """
    height = height or width
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cloudy is None:
        cloudy = {k: c for k, c in ((2, 0.3), (5, 0.55), (9, 0.95)) if k < n_dates}
    profile = PROFILES["sentinel2-l1c"]
    names = bands or profile.band_names
    rng = np.random.default_rng(seed)
    dates = [start + dt.timedelta(days=step_days * k) for k in range(n_dates)]
    doys = [d.timetuple().tm_yday for d in dates]
    parcels = _plan_parcels(width, height, rng, doys, stressed_share, ripening_share, established)
    cls = _class_map(width, height, parcels)
    pid = np.zeros(cls.shape, np.int32)
    for i, p in enumerate(parcels, 1):
        pid[p.row : p.row + p.height, p.col : p.col + p.width] = i
    crs_obj = CRS.from_string(crs)
    x0, y0 = origin
    t10 = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    vigour = rng.uniform(0.96, 1.04, len(parcels) + 1)  # NIR plateau per parcel
    date_rows = []
    for k, date in enumerate(dates):
        folder = out / f"s2_syn_{date:%Y%m%d}"
        doy = date.timetuple().tm_yday
        drng = np.random.default_rng([seed, k])
        sky = _clouds(cls.shape, cloudy.get(k, 0.0), drng)
        share = _write_date(
            folder, k, date, doy, parcels, cls, pid, vigour, sky, drng, names, crs_obj, t10
        )
        date_rows.append(
            {
                "index": k,
                "date": date.isoformat(),
                "doy": doy,
                "folder": folder.name,
                "cloud_cover": round(float((sky == 1).mean()), 4),
                "shadow_cover": round(float((sky == 2).mean()), 4),
                #: share of each parcel's pixels under clear sky on this date
                "clear_share": {
                    p.id: round(float(s), 4) for p, s in zip(parcels, share, strict=True)
                },
            }
        )
    _write(out / "truth_classes.tif", cls, crs_obj, t10, "class per 10 m pixel")
    _write(out / "truth_parcels.tif", pid, crs_obj, t10, "parcel number per 10 m pixel")
    crop20 = _block_mean((cls == CLASSES["crop"]).astype(np.float32), 2) >= 0.5
    t20 = Affine(20.0, 0.0, x0, 0.0, -20.0, y0)
    _write(out / "cropland.tif", crop20.astype(np.uint8), crs_obj, t20, "cropland (1) at 20 m")
    feats = []
    for p in parcels:
        g = box(x0 + p.col * 10, y0 - (p.row + p.height) * 10, x0 + (p.col + p.width) * 10,
                y0 - p.row * 10)  # fmt: skip
        feats.append(
            {
                "type": "Feature",
                "id": p.id,
                "properties": {"parcel_id": p.id},
                "geometry": transform_geom(crs_obj, "EPSG:4326", mapping(g), precision=8),
            }
        )
    (out / "parcels.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": feats}) + "\n"
    )
    px_km2 = 100.0 / 1e6
    truth: dict[str, Any] = {
        "synthetic": True,
        "kind": "crop stress series",
        "seed": seed,
        "established": established,
        "ripening_share": ripening_share,
        "width": width,
        "height": height,
        "crs": crs,
        "transform": list(t10)[:6],
        "pixel_m": 10.0,
        "bands": list(names),
        "classes": CLASSES,
        "class_raster": "truth_classes.tif",
        "parcel_raster": "truth_parcels.tif",
        "parcels_file": "parcels.geojson",
        "cropland_raster": "cropland.tif",
        "dates": date_rows,
        "parcels": [
            {
                **asdict(p),
                "number": i,
                "area_km2": round(p.height * p.width * px_km2, 6),
                "ripening": bool(p.senesce_doy < 250),
            }
            for i, p in enumerate(parcels, 1)
        ],
        "class_km2": {k: round(float((cls == v).sum()) * px_km2, 6) for k, v in CLASSES.items()},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    log.info("wrote synthetic crop series %s (%d dates, %d parcels)", out, n_dates, len(parcels))
    return out


def _write_date(
    folder: Path,
    k: int,
    date: dt.date,
    doy: int,
    parcels: Sequence[SyntheticParcel],
    cls: np.ndarray,
    pid: np.ndarray,
    vigour: np.ndarray,
    sky: np.ndarray,
    rng: np.random.Generator,
    names: Sequence[str],
    crs: CRS,
    t10: Affine,
) -> list[float]:
    """One date's scene; returns each parcel's clear share."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(parcels)
    cover = np.zeros(n + 1, np.float32)
    dry = np.zeros(n + 1, np.float32)
    for i, p in enumerate(parcels, 1):
        c = p.cover(doy)
        cover[i] = c
        dry[i] = p.sigma if p.stressed_on(k) else 0.0
    jitter = rng.normal(1.0, 0.015, n + 1).astype(np.float32)  # per-parcel NIR, this date
    gain = float(rng.uniform(0.97, 1.03))
    haze = float(rng.uniform(0.0, 0.01))
    season = 0.5 + 0.5 * math.sin((doy - 100) / 365.0 * 2 * math.pi)  # forest: slight swing
    fc = cover[pid]
    dr = dry[pid]
    crop = pid > 0
    profile = PROFILES["sentinel2-l1c"]
    tags = {
        "PROCESSING_BASELINE": "02.09",
        "SYNTHETIC": "eotriage-crop-series",
        "ACQUISITION_DATE": date.isoformat(),
    }
    for name in names:
        s = {kk: v[name] for kk, v in SPECTRA.items()}
        lut = np.zeros(max(CLASSES.values()) + 1, np.float32)
        for cname, code in CLASSES.items():
            if cname != "crop":
                lut[code] = s[cname]
        refl = lut[cls]
        if name in ("B05", "B06", "B07", "B08", "B8A"):
            refl = np.where(cls == CLASSES["forest"], refl * (0.95 + 0.05 * season), refl)
        mix = fc * ((1 - dr) * s["canopy"] + dr * s["dry"]) + (1 - fc) * s["soil"]
        if name in ("B06", "B07", "B08", "B8A"):
            mix = mix * (vigour[pid] * jitter[pid])
        refl = np.where(crop, mix, refl).astype(np.float32)
        refl = refl * gain + (haze if name in ("B01", "B02", "B03", "B04") else 0.0)
        refl = np.where(sky == 2, refl * SHADOW_GAIN, refl)
        refl = np.where(sky == 1, s["cloud"] * gain, refl)
        spec = profile.band(name)
        factor = int(round(spec.resolution_m / 10.0))
        if factor > 1:
            refl = _block_mean(refl, factor)
        refl = refl + rng.normal(0.0, NOISE, refl.shape)
        dn = np.clip(np.round(np.clip(refl, 0.0005, 1.5) * 10000.0), 1, 65534).astype(np.uint16)
        tr = Affine(spec.resolution_m, 0, t10.c, 0, -spec.resolution_m, t10.f)
        _write(folder / f"{name}.tif", dn, crs, tr, f"{name} synthetic L1C TOA x 10000", tags)
    # the cloud screen's answer: 60 m cells, cloud (or shadow) wherever any pixel is
    cloud60 = _block_any(sky == 1, CLOUD_CELL_PX)
    shadow60 = _block_any(sky == 2, CLOUD_CELL_PX) & ~cloud60
    mask = np.where(cloud60, 1, np.where(shadow60, 2, 0)).astype(np.uint8)
    t60 = Affine(60.0, 0, t10.c, 0, -60.0, t10.f)
    _write(folder / "cloud_mask.tif", mask, crs, t60, "cloud screen: 0 clear 1 cloud 2 shadow")
    _write(folder / "truth_sky.tif", sky, crs, t10, "truth sky: 0 clear 1 cloud 2 shadow")
    clear = np.bincount(pid.ravel(), weights=(sky == 0).ravel(), minlength=n + 1)
    total = np.bincount(pid.ravel(), minlength=n + 1)
    return [float(clear[i] / max(total[i], 1)) for i in range(1, n + 1)]


def _write(
    path: Path,
    arr: np.ndarray,
    crs: CRS,
    transform: Affine,
    desc: str,
    tags: dict[str, str] | None = None,
) -> None:
    h, w = arr.shape
    kwargs: dict[str, Any] = {
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
        if tags:
            dst.update_tags(**tags)
        dst.write(arr, 1)


def series_scenes(series: str | Path) -> list[Path]:
    """The date folders of a series written by :func:`generate_crop_series`, in date order."""
    truth = json.loads((Path(series) / "truth.json").read_text())
    return [Path(series) / d["folder"] for d in truth["dates"]]


def parcels_raster(series: str | Path) -> tuple[np.ndarray, Affine, str]:
    """(parcel number per 10 m pixel, transform, CRS) of a series."""
    with rasterio.open(Path(series) / "truth_parcels.tif") as ds:
        return ds.read(1), ds.transform, ds.crs.to_string()


__all__ = [
    "BANDS",
    "CLASSES",
    "SyntheticParcel",
    "generate_crop_series",
    "parcels_raster",
    "series_scenes",
]
