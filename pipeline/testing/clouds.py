"""Synthetic clouds painted into a scene's band files: for tests of the cloud screen and of what
it does to the other detectors (a cloud hiding a ship, a fully overcast frame).

A cloud is a soft-edged disc of bright, flat reflectance (thick cumulus is white from the blue
to the NIR and a little darker in the SWIR); its shadow, optionally, is the same disc displaced
and darkened.  Reflectances are converted to the band file's DN with the scene's scaling.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio

#: Top-of-atmosphere reflectance of thick cloud per role (bright and flat in the visible/NIR,
#: lower in the SWIR: ice and water droplets absorb at 1.6 and 2.2 um).
CLOUD_REFLECTANCE = {
    "coastal": 0.62,
    "blue": 0.60,
    "green": 0.59,
    "red": 0.60,
    "rededge1": 0.61,
    "rededge2": 0.62,
    "rededge3": 0.62,
    "nir": 0.63,
    "nir08": 0.63,
    "watervapour": 0.35,
    "cirrus": 0.08,
    "swir16": 0.42,
    "swir22": 0.30,
}


def paint_cloud(
    scene_dir: Path,
    roles: Mapping[str, str],
    scale: float,
    centre: tuple[float, float],
    radius_px: float,
    *,
    opacity: float = 1.0,
    shadow_offset: tuple[float, float] | None = None,
    shadow_darkening: float = 0.35,
    offset: float = 0.0,
) -> None:
    """Paint a cloud into every band file ``scene_dir/<band>.tif`` named in ``roles`` (band ->
    role).  ``centre`` (row, col) and ``radius_px`` are on the 10 m grid; coarser bands are
    scaled.  ``scale`` and ``offset`` give reflectance = (DN + offset) * scale.  With
    ``shadow_offset`` (rows, cols) the disc displaced by it is darkened first (its cloud-free
    part becomes shadow).  ``radius_px`` = inf covers the whole frame (overcast)."""
    for band, role in roles.items():
        path = scene_dir / f"{band}.tif"
        with rasterio.open(path) as ds:
            profile = ds.profile
            dn = ds.read(1).astype(np.float64)
            res = abs(ds.transform.a)
        f = 10.0 / res if res > 0 else 1.0
        refl = dn * scale + offset * scale
        h, w = refl.shape
        rr, cc = np.mgrid[0:h, 0:w]
        if shadow_offset is not None:
            sd = _disc(
                rr,
                cc,
                (centre[0] + shadow_offset[0]) * f,
                (centre[1] + shadow_offset[1]) * f,
                radius_px * f,
            )
            refl = refl * (1.0 - (1.0 - shadow_darkening) * sd * opacity)
        cd = _disc(rr, cc, centre[0] * f, centre[1] * f, radius_px * f) * opacity
        refl = refl * (1.0 - cd) + CLOUD_REFLECTANCE.get(role, 0.5) * cd
        out = np.clip(np.round(refl / scale - offset), 1, np.iinfo(profile["dtype"]).max)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(out.astype(profile["dtype"]), 1)


def _disc(rr: np.ndarray, cc: np.ndarray, r0: float, c0: float, radius: float) -> np.ndarray:
    """1 inside the disc, a 0.15-radius soft edge, 0 outside (inf radius: all ones)."""
    if not np.isfinite(radius):
        return np.ones(rr.shape)
    d = np.hypot(rr + 0.5 - r0, cc + 0.5 - c0)
    edge = max(1.0, 0.15 * radius)
    return np.clip((radius - d) / edge, 0.0, 1.0)
