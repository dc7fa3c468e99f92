"""Cut the working grid into tiles with overlap."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window


@dataclass(frozen=True)
class Tile:
    """One tile: a *core* window that it owns and a larger *read* window with context.

    Core windows partition the grid exactly; read windows add at least ``overlap`` pixels on
    each side (less only at the grid edge) and all have the same size, so memory per tile does
    not depend on where the tile lies or how big the scene is.  Detections are kept only for
    core pixels, so nothing is counted twice, and the overlap gives contextual tests their
    background.
    """

    row: int
    col: int
    core: Window
    read: Window

    @property
    def id(self) -> str:
        return f"r{self.row:03d}c{self.col:03d}"

    @property
    def core_in_read(self) -> tuple[slice, slice]:
        """Slices selecting the core from an array covering the read window."""
        r0 = int(self.core.row_off - self.read.row_off)
        c0 = int(self.core.col_off - self.read.col_off)
        return slice(r0, r0 + int(self.core.height)), slice(c0, c0 + int(self.core.width))


def tile_grid(width: int, height: int, tile_size: int, overlap: int) -> list[Tile]:
    """All tiles of a ``width`` x ``height`` grid, row-major."""
    return list(iter_tiles(width, height, tile_size, overlap))


def read_span(start: int, length: int, tile_size: int, overlap: int, limit: int) -> tuple[int, int]:
    """Read span for a core span: ``overlap`` on each side, and always the same length
    (``tile_size + 2 * overlap`` or the whole axis): at the scene edge the window extends
    further inwards instead of shrinking, so every tile has the same working-set size."""
    want = min(limit, tile_size + 2 * overlap)
    lo = max(0, start - overlap)
    hi = min(limit, start + length + overlap)
    extra = want - (hi - lo)
    if extra > 0:
        grow = min(extra, limit - hi)
        hi += grow
        lo = max(0, lo - (extra - grow))
    return lo, hi


def iter_tiles(width: int, height: int, tile_size: int, overlap: int) -> Iterator[Tile]:
    for ti, r0 in enumerate(range(0, height, tile_size)):
        h = min(tile_size, height - r0)
        rr0, rr1 = read_span(r0, h, tile_size, overlap, height)
        for tj, c0 in enumerate(range(0, width, tile_size)):
            w = min(tile_size, width - c0)
            cc0, cc1 = read_span(c0, w, tile_size, overlap, width)
            yield Tile(ti, tj, Window(c0, r0, w, h), Window(cc0, rr0, cc1 - cc0, rr1 - rr0))


def count_tiles(width: int, height: int, tile_size: int) -> int:
    return -(-width // tile_size) * -(-height // tile_size)
