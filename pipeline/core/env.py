"""One context object for native settings (threads, GDAL options), like ``rasterio.Env``."""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType

import cv2
import rasterio

from ..settings import Settings
from .allocator import keep_tile_buffers


class Env:
    """Apply a run's native settings while inside the ``with`` block.

    * GDAL options (a small ``GDAL_CACHEMAX``, in MB below 100,000 as in GDAL, keeps memory
      flat on big scenes),
    * OpenCV's thread count (onnxruntime threads are set per session from the same settings),
    * glibc malloc keeps tile-sized buffers for reuse (``Settings.reuse_buffers``; see
      :mod:`pipeline.core.allocator`; process-wide and left in place on exit).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = ExitStack()
        self._cv_threads = cv2.getNumThreads()

    def __enter__(self) -> Env:
        options = {k: int(v) if v.isdigit() else v for k, v in self.settings.gdal.items()}
        cache = options.get("GDAL_CACHEMAX")
        if isinstance(cache, int) and cache < 100_000:
            # GDAL reads a number below 100,000 as megabytes, but rasterio hands an integer to
            # GDALSetCacheMax64 as bytes: "64" would be a 64-byte block cache (every GDAL read
            # and rasterize then works one scanline at a time)
            options["GDAL_CACHEMAX"] = cache * 1024 * 1024
        self._stack.enter_context(rasterio.Env(**options))
        cv2.setNumThreads(self.settings.threads)
        if self.settings.reuse_buffers:
            keep_tile_buffers()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cv2.setNumThreads(self._cv_threads)
        self._stack.close()
