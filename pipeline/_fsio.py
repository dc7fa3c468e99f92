"""File-system helpers shared by every room of the package: crash-safe writes and hashes.

Standard library only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HASHED: dict[tuple[str, int, int], str] = {}


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    Write a temporary file (in ``tmp_dir``, same file system; default: beside ``path``), fsync
    it, rename it over ``path``, fsync the folder(s).
    """
    tmp_dir = tmp_dir or path.parent
    tmp = tmp_dir / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if tmp_dir != path.parent:
        fsync_dir(tmp_dir)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, *, cache: bool = False) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    ``cache=True`` remembers the digest per process by (path, size, mtime): for large files
    checked again and again (the GGUF model).  Integrity checks against silent corruption
    (onboard models) must not use the cache, since a flipped bit changes neither.
    """
    key = None
    if cache:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _HASHED:
            return _HASHED[key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if key is not None:
        _HASHED[key] = digest
    return digest
