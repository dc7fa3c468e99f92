"""What the cloud screen saw: per-pixel sky classes, their counts and what lies under them.

The cloud screen (``pipeline.detectors.clouds``) runs first on every tile and hands the other
detectors a ``sky`` array over the tile's read window (:attr:`TileData.sky
<pipeline.core.ingest.TileData.sky>`): :data:`CLEAR`, :data:`CLOUD`, :data:`SHADOW`, or
:data:`UNKNOWN` where the input was not usable.  The engine then

* counts the classes over each tile's core (:func:`core_counts`) into per-tile and per-scene
  fractions (:class:`SkyTally`), and keeps a coarse scene mask for the quicklook;
* measures how much of each detected object lies under cloud or shadow
  (:func:`component_sky`), so that each detector's policy can drop or flag it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

CLEAR, CLOUD, SHADOW, UNKNOWN = 0, 1, 2, 255
NAMES = {CLEAR: "clear", CLOUD: "cloud", SHADOW: "shadow", UNKNOWN: "unknown"}
#: Component statistics the engine adds (summed when pieces of an object merge).
STAT_PX = "sky_checked_px"
STAT_OBSCURED = "sky_obscured_px"


def core_counts(sky: np.ndarray, core: tuple[slice, slice]) -> dict[str, int]:
    """Pixels of each class over the tile core (``sky`` covers the read window)."""
    part = sky[core]
    hist = np.bincount(part.ravel(), minlength=256)
    return {name: int(hist[code]) for code, name in NAMES.items()}


def component_sky(geometry: BaseGeometry, sky: np.ndarray, read: Window) -> tuple[int, int]:
    """(checked pixels, obscured pixels) of an object whose ``geometry`` is in scene pixel
    coordinates, against the ``sky`` classes of a tile's read window ``read``.

    The object's pixels are those whose centres lie inside its polygon (objects are unions of
    pixel squares, so that is exactly their pixels); pixels outside the read window count as
    not checked."""
    minx, miny, maxx, maxy = geometry.bounds
    c0 = max(int(np.floor(minx)) - int(read.col_off), 0)
    r0 = max(int(np.floor(miny)) - int(read.row_off), 0)
    c1 = min(int(np.ceil(maxx)) - int(read.col_off), sky.shape[1])
    r1 = min(int(np.ceil(maxy)) - int(read.row_off), sky.shape[0])
    if c1 <= c0 or r1 <= r0:
        return 0, 0
    transform = Affine.translation(int(read.col_off) + c0, int(read.row_off) + r0)
    inside = rasterize(
        [(geometry, 1)], out_shape=(r1 - r0, c1 - c0), transform=transform, dtype="uint8"
    ).astype(bool)
    part = sky[r0:r1, c0:c1][inside]
    checked = int(np.count_nonzero(part != UNKNOWN))
    obscured = int(np.count_nonzero((part == CLOUD) | (part == SHADOW)))
    return checked, obscured


@dataclass
class SkyTally:
    """Sky classes counted over tile cores: per tile and for the whole scene."""

    model: str = ""
    tiles: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, tile_id: str, counts: Mapping[str, int]) -> None:
        self.tiles[tile_id] = {k: int(v) for k, v in counts.items()}

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(NAMES.values(), 0)
        for counts in self.tiles.values():
            for k, v in counts.items():
                out[k] = out.get(k, 0) + v
        return out

    def summary(self) -> dict[str, Any]:
        """Scene fractions over the pixels the screen could classify, and per tile."""
        tot = self.totals()
        return {
            "model": self.model,
            **fractions(tot),
            "pixels": tot,
            "tiles": {t: _rounded(fractions(c)) for t, c in sorted(self.tiles.items())},
        }


def fractions(counts: Mapping[str, int]) -> dict[str, float | None]:
    """Cloud, shadow and clear fractions of the classified pixels (None when none were), and
    the share of all pixels that could be classified."""
    checked = sum(int(counts.get(k, 0)) for k in ("clear", "cloud", "shadow"))
    total = checked + int(counts.get("unknown", 0))
    if checked == 0:
        return {
            "cloud_fraction": None,
            "shadow_fraction": None,
            "clear_fraction": None,
            "checked_fraction": 0.0 if total else None,
        }
    return {
        "cloud_fraction": counts.get("cloud", 0) / checked,
        "shadow_fraction": counts.get("shadow", 0) / checked,
        "clear_fraction": counts.get("clear", 0) / checked,
        "checked_fraction": checked / total,
    }


def _rounded(d: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else round(v, 4)) for k, v in d.items()}


#: The coarse scene sky map is at most this many pixels on its long side.
MAP_MAX_PX = 2048


@dataclass
class SkyMap:
    """Sky classes of the whole scene on a coarse grid (``factor`` working pixels per map
    pixel, aligned to the scene grid), assembled from tile cores: for the quicklook."""

    classes: np.ndarray
    factor: int

    @classmethod
    def for_grid(cls, width: int, height: int) -> SkyMap:
        factor = max(1, -(-max(width, height) // MAP_MAX_PX))
        shape = (-(-height // factor), -(-width // factor))
        return cls(np.full(shape, UNKNOWN, np.uint8), factor)

    def add(self, sky: np.ndarray, read: Window, core: Window) -> None:
        """Write a tile's core (``sky`` covers its read window) into the map."""
        f = self.factor
        r0, c0 = int(core.row_off), int(core.col_off)
        first_r, first_c = -(-r0 // f) * f, -(-c0 // f) * f  # first map-aligned row, column
        rr = slice(first_r - int(read.row_off), r0 + int(core.height) - int(read.row_off), f)
        cc = slice(first_c - int(read.col_off), c0 + int(core.width) - int(read.col_off), f)
        part = sky[rr, cc]
        mr, mc = first_r // f, first_c // f
        self.classes[mr : mr + part.shape[0], mc : mc + part.shape[1]] = part
