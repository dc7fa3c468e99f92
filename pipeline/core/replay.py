"""Sensor simulator: replay a GeoTIFF scene as a timed push-broom line stream.

Each band is cut into blocks of ``block_lines`` of its own lines.  A block is *due* when the
imager would have finished acquiring it: the working-grid line rate is ``rate`` lines per second
(Sentinel-2: ~664 lines/s of 10 m pixels), a band with pixels ``f`` times larger delivers a line
every ``f`` working lines, and a band can lag by ``band_offsets[band]`` working lines (Sentinel-2's
detectors see the bands at slightly different times).  Blocks come out in due-time order; with a
``rate`` the generator sleeps until each block is due, so the consumer sees a live stream.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import InputError, cause_text
from .scene import Scene, open_scene
from .stream import StripLayout

#: Sentinel-2 MSI: ~6.64 km/s ground speed / 10 m pixels
S2_LINES_PER_S = 664.0


@dataclass(frozen=True)
class LineBlock:
    """One block of lines of one band, as the sensor would hand it over."""

    band: str
    #: first line index in the band's own line numbering
    first_line: int
    data: np.ndarray
    #: seconds after the start of the acquisition at which the block is complete
    due_s: float


def replay(
    scene: Scene | str | Path,
    rate: float | None = S2_LINES_PER_S,
    block_lines: int = 64,
    band_offsets: Mapping[str, int] | None = None,
    bands: list[str] | None = None,
) -> Iterator[LineBlock]:
    """Yield the scene's bands as line blocks in acquisition order (sleeping when ``rate``;
    without a rate, blocks come as fast as they are read, still in acquisition order)."""
    if block_lines < 1:
        raise InputError(f"block_lines must be >= 1, got {block_lines}")
    if rate is not None and rate <= 0:
        raise InputError(f"rate must be > 0 lines/s, got {rate}")
    if not isinstance(scene, Scene):
        scene = open_scene(scene)
    layout = StripLayout.from_scene(scene)
    offsets = dict(band_offsets or {})
    unknown = sorted(set(offsets) - set(layout.bands))
    if unknown:
        raise InputError(f"{scene.path}: band offset for unknown band(s) {', '.join(unknown)}")
    chosen = [b.name for b in scene.bands if bands is None or b.name in bands]
    queue: list[tuple[int, int, str, int]] = []  # (due working line, band order, band, first)
    for order, name in enumerate(chosen):
        src = scene.band(name)
        f = layout.bands[name]
        for first in range(0, src.height, block_lines):
            end = min(src.height, first + block_lines)
            queue.append((end * f + offsets.get(name, 0), order, name, first))
    heapq.heapify(queue)
    t0 = time.perf_counter()
    handles: dict[str, rasterio.DatasetReader] = {}
    try:
        while queue:
            due_line, _, name, first = heapq.heappop(queue)
            due = due_line / rate if rate else 0.0
            src = scene.band(name)
            if rate:
                wait = t0 + due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            key = str(src.path)
            if key not in handles:
                try:
                    handles[key] = rasterio.open(src.path)
                except rasterio.errors.RasterioIOError as exc:
                    raise InputError(f"{src.path}: cannot open ({cause_text(exc)})") from None
            n = min(block_lines, src.height - first)
            data = handles[key].read(src.index, window=Window(0, first, src.width, n))
            yield LineBlock(name, first, data, due)
    finally:
        for ds in handles.values():
            ds.close()
