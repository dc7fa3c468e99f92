"""Read the next tile while the detectors work on the current one.

One background thread reads (GDAL and numpy release the GIL), so on a 2-core payload ingest and
detection overlap.  At most one tile is read ahead: memory grows by one tile's bands, not with
the scene.  The reader is only ever used from the worker thread, one read at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .ingest import SceneReader, TileData
from .tiling import Tile


@dataclass(frozen=True)
class TileRead:
    """One tile's read: ``data()`` returns the TileData or raises what the read raised."""

    tile: Tile
    future: Future[tuple[TileData, float]]

    def data(self) -> tuple[TileData, float]:
        """(tile data, seconds the read took in the worker)."""
        return self.future.result()


def timed_read(reader: SceneReader, tile: Tile, bands: Sequence[str]) -> tuple[TileData, float]:
    """Read one tile: (its data, seconds the read took)."""
    t0 = time.perf_counter()
    data = reader.read(tile, bands)
    return data, time.perf_counter() - t0


def read_tiles(
    reader: SceneReader, tiles: Sequence[Tile], bands: Sequence[str], ahead: bool = True
) -> Iterator[TileRead]:
    """Yield the tiles' reads in order, reading one tile ahead in a thread when ``ahead``."""
    if not ahead:
        for tile in tiles:
            fut: Future[tuple[TileData, float]] = Future()
            try:
                fut.set_result(timed_read(reader, tile, bands))
            except Exception as exc:  # handed to the caller through the future
                fut.set_exception(exc)
            yield TileRead(tile, fut)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eotriage-read") as pool:
        pending: Future[tuple[TileData, float]] | None = None
        for i, tile in enumerate(tiles):
            current = pending or pool.submit(timed_read, reader, tile, bands)
            pending = (
                pool.submit(timed_read, reader, tiles[i + 1], bands) if i + 1 < len(tiles) else None
            )
            yield TileRead(tile, current)
