"""Synthetic sen2ships-style port scenes with known vessels: for tests and benchmarks of the
ship detector (vessels at any position, size and heading, optional land strip)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
import rasterio.warp
from affine import Affine

SHIP_BANDS = ("B02", "B03", "B04", "B08", "B11")
#: sen2ships-like reflectances: (harbour water, land, hull)
WATER = {"B02": 0.07, "B03": 0.063, "B04": 0.05, "B08": 0.045, "B11": 0.03}
LAND = {"B02": 0.09, "B03": 0.08, "B04": 0.07, "B08": 0.27, "B11": 0.22}
HULL = {"B02": 0.17, "B03": 0.18, "B04": 0.19, "B08": 0.24, "B11": 0.2}


@dataclass(frozen=True)
class SynShip:
    row: float  # centre, pixels
    col: float
    length_px: float
    width_px: float
    heading_deg: float  # axis, clockwise from north


def ship_polygon(s: SynShip) -> np.ndarray:
    """Corners (x=col, y=row) of the hull rectangle."""
    t = math.radians(s.heading_deg)
    ax = np.array([math.sin(t), -math.cos(t)])  # along the axis: east, south components
    px = np.array([math.cos(t), math.sin(t)])
    c = np.array([s.col, s.row])
    hl, hw = s.length_px / 2, s.width_px / 2
    return np.array(
        [c + a * hl * ax + b * hw * px for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1))]
    )


def write_ship_scene(
    out: Path,
    width: int,
    height: int,
    ships: Sequence[SynShip],
    land_cols: int = 0,
    seed: int = 0,
) -> Path:
    """A 5-band sen2ships-style scene (EPSG:3857, uint16 DN/65535) with known vessels and
    ``labels.json``; land (if any) is the western ``land_cols`` columns."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    transform = Affine(10.0, 0.0, 14_362_150.0, 0.0, -10.0, 4_181_750.0)
    hull = np.zeros((height, width), np.uint8)
    inst = np.zeros((height, width), np.uint16)
    for i, s in enumerate(ships, 1):
        poly = np.round(ship_polygon(s) * 16).astype(np.int32)
        one = np.zeros_like(hull)
        cv2.fillPoly(one, [poly], 1, lineType=cv2.LINE_8, shift=4)
        hull |= one
        inst[one > 0] = i
    for band in SHIP_BANDS:
        refl = np.full((height, width), WATER[band], np.float64)
        refl += rng.normal(0.0, 0.002, refl.shape)
        if land_cols:
            refl[:, :land_cols] = LAND[band] + rng.normal(0.0, 0.01, (height, land_cols))
        refl[hull > 0] = HULL[band] + rng.normal(0.0, 0.01, int(hull.sum()))
        dn = np.clip(np.round(refl * 65535.0), 1, 65535).astype(np.uint16)
        with rasterio.open(
            out / f"{band}.tif",
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype="uint16",
            crs="EPSG:3857",
            transform=transform,
        ) as dst:
            dst.write(dn, 1)
    vessels = []
    for i in range(1, len(ships) + 1):
        r, c = np.nonzero(inst == i)
        x0, y0 = transform @ (float(c.min()), float(r.max() + 1))
        x1, y1 = transform @ (float(c.max() + 1), float(r.min()))
        cx, cy = transform @ (float(c.mean() + 0.5), float(r.mean() + 0.5))
        lon, lat = (v[0] for v in rasterio.warp.transform("EPSG:3857", "EPSG:4326", [cx], [cy]))
        vessels.append(
            {
                "instance_id": i,
                "centroid_lonlat": [lon, lat],
                "bbox_crs_xyxy": [x0, y0, x1, y1],
                "area_px": int(r.size),
            }
        )
    labels = {"image": {"crs": "EPSG:3857", "width": width, "height": height}, "vessels": vessels}
    (out / "labels.json").write_text(json.dumps(labels, indent=2))
    return out
