"""Keep freed tile buffers in the process heap instead of returning them to the kernel.

Every tile allocates the same few-megabyte arrays (one per band, mask and model output).  With
glibc's defaults, blocks of that size are served by fresh ``mmap`` calls and unmapped when freed,
so each tile pays page faults on every array again: measured here, that doubled the time of
reading seven bands of a 1,088² tile (16.8 -> 7.6 ms).  Raising ``M_MMAP_THRESHOLD`` and
``M_TRIM_THRESHOLD`` lets the heap reuse those blocks.  Peak memory is unchanged (the same arrays
exist at the peak); the heap simply does not shrink between tiles.

Only glibc (Linux) is tuned; elsewhere this is a no-op that reports ``False``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (glibc caps the mmap threshold at 32 MiB on 64-bit)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: free heap memory above this is returned to the kernel
TRIM_THRESHOLD = 256 * 1024 * 1024

_done: bool | None = None


def keep_tile_buffers() -> bool:
    """Tune glibc malloc once per process; True when the tuning is in effect."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError) as exc:
        log.debug("malloc tuning unavailable: %s", exc)
        return False
    _done = ok
    log.debug("glibc malloc tuned for tile buffers: %s", ok)
    return ok
