"""One context object for native settings (threads, GDAL options), like ``rasterio.Env``."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from contextlib import ExitStack
from functools import cache
from types import TracebackType

import cv2
import rasterio

from .settings import Settings

log = logging.getLogger(__name__)
_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>


@cache
def pin_mmap_threshold(nbytes: int) -> bool:
    """Fix glibc's mmap threshold so big per-tile arrays are returned to the OS when freed.

    glibc raises its threshold dynamically after large frees; per-tile arrays then come from
    the heap, which fragments, and peak RSS creeps up with the number of tiles (measured here:
    184 -> 207 MiB from a 2,000 to a 10,980 px scene; pinned: 172 -> 173 MiB).  Process-wide
    and done once; a no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(nbytes)))
    except (OSError, AttributeError):
        ok = False
    log.debug("glibc mmap threshold pinned at %d bytes: %s", nbytes, ok)
    return ok


class Env:
    """Apply a run's native settings while inside the ``with`` block.

    * GDAL options (a small ``GDAL_CACHEMAX`` keeps memory flat on big scenes),
    * OpenCV's thread count (onnxruntime threads are set per session from the same settings),
    * glibc's mmap threshold (``malloc_mmap_threshold``), which keeps peak memory flat.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = ExitStack()
        self._cv_threads = cv2.getNumThreads()

    def __enter__(self) -> Env:
        options = {k: int(v) if v.isdigit() else v for k, v in self.settings.gdal.items()}
        self._stack.enter_context(rasterio.Env(**options))
        cv2.setNumThreads(self.settings.threads)
        if self.settings.malloc_mmap_threshold:
            pin_mmap_threshold(self.settings.malloc_mmap_threshold)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cv2.setNumThreads(self._cv_threads)
        self._stack.close()
