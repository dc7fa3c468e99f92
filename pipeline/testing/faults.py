"""Fault injection into scene files: single-event upsets, stuck lines, filled windows, truncation.

Used by the tests and by ``benchmarks/bench_faults.py`` to show what the pipeline does with the
input faults of a spacecraft: the scene is copied and its band files are damaged the way memory
upsets or a failing detector would damage them; the original is never touched.

Upsets are modelled as independent bit flips in the stored samples: for ``rate`` upsets per bit,
each band file of ``bits`` bits gets a Poisson(``rate * bits``) number of flips, each at a uniformly
drawn sample and bit (sign, exponent and mantissa bits alike for float data).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..core.scene import open_scene
from ..errors import InputError


@dataclass(frozen=True)
class Upset:
    """One flipped bit: file, band index (1-based), row, column and bit number."""

    path: str
    band: int
    row: int
    col: int
    bit: int
    before: float
    after: float


@dataclass(frozen=True)
class InjectedFaults:
    """What was done to a scene copy."""

    scene: Path
    #: bits of band data exposed to upsets
    bits: int
    upsets: tuple[Upset, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def band_files(scene_path: Path) -> list[Path]:
    """The distinct raster files that hold the scene's bands (as the scene opener sees them)."""
    scene = open_scene(scene_path)
    seen: dict[Path, None] = {}
    for b in scene.bands:
        seen.setdefault(Path(b.path), None)
    return list(seen)


def copy_scene(src: Path, dst: Path) -> Path:
    """Copy a scene (a folder or a single raster) to ``dst``; return the copy's path."""
    src = Path(src)
    if dst.exists():
        raise InputError(f"{dst}: exists; fault injection needs a fresh destination")
    if src.is_dir():
        shutil.copytree(src, dst)
        return dst
    dst.mkdir(parents=True)
    out = dst / src.name
    shutil.copy2(src, out)
    return out


def _rewrite(path: Path, data: np.ndarray) -> None:
    """Write ``data`` (bands, rows, cols) back into ``path`` with its own profile."""
    with rasterio.open(path) as ds:
        profile = ds.profile
        descriptions = ds.descriptions
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
        for i, d in enumerate(descriptions, start=1):
            if d:
                out.set_band_description(i, d)


def flip_bits(
    data: np.ndarray, n: int, rng: np.random.Generator
) -> list[tuple[int, int, int, int, float, float]]:
    """Flip ``n`` random bits of a (bands, rows, cols) integer or float array in place.

    Returns (band index 0-based, row, col, bit, value before, value after) per flip.
    """
    bits_per = data.dtype.itemsize * 8
    view = data.view(np.dtype(f"u{data.dtype.itemsize}"))
    flat = view.reshape(-1)
    out = []
    for _ in range(n):
        i = int(rng.integers(flat.size))
        bit = int(rng.integers(bits_per))
        b, r, c = np.unravel_index(i, data.shape)
        before = float(data[b, r, c])
        flat[i] ^= flat.dtype.type(1 << bit)
        out.append((int(b), int(r), int(c), bit, before, float(data[b, r, c])))
    return out


def inject_upsets(
    src: Path,
    dst: Path,
    rate: float,
    rng: np.random.Generator,
    files: Sequence[Path] | None = None,
) -> InjectedFaults:
    """Copy the scene to ``dst`` and flip Poisson(rate x bits) random bits in each band file."""
    files = list(files) if files is not None else band_files(Path(src))
    copy = copy_scene(Path(src), dst)
    base = Path(src) if Path(src).is_dir() else Path(src).parent
    root = copy if copy.is_dir() else copy.parent
    upsets: list[Upset] = []
    bits = 0
    for f in files:
        target = root / Path(f).relative_to(base)
        with rasterio.open(target) as ds:
            data = ds.read()
        nbits = int(data.size * data.dtype.itemsize * 8)
        bits += nbits
        n = int(rng.poisson(rate * nbits))
        if n == 0:
            continue
        for b, r, c, bit, before, after in flip_bits(data, n, rng):
            upsets.append(Upset(str(target), b + 1, r, c, bit, before, after))
        _rewrite(target, data)
    return InjectedFaults(copy, bits, tuple(upsets))


def stick_line(path: Path, band: int, axis: str, index: int, value: float) -> None:
    """Set row (``axis="row"``) or column ``index`` of ``band`` (1-based) to ``value``."""
    with rasterio.open(path) as ds:
        data = ds.read()
    if axis == "row":
        data[band - 1, index, :] = value
    elif axis == "col":
        data[band - 1, :, index] = value
    else:
        raise ValueError(f"axis must be 'row' or 'col', got {axis!r}")
    _rewrite(path, data)


def fill_window(path: Path, band: int, window: Window, value: float) -> None:
    """Overwrite a window of ``band`` (1-based) with ``value`` (NaN needs float data)."""
    with rasterio.open(path) as ds:
        data = ds.read()
    r0, c0 = int(window.row_off), int(window.col_off)
    data[band - 1, r0 : r0 + int(window.height), c0 : c0 + int(window.width)] = value
    _rewrite(path, data)


def truncate(path: Path, keep_fraction: float) -> int:
    """Cut a file to ``keep_fraction`` of its size (a write interrupted by a power cut)."""
    size = path.stat().st_size
    keep = int(size * keep_fraction)
    with path.open("r+b") as fh:
        fh.truncate(keep)
    return size - keep


@dataclass(frozen=True)
class SoakResult:
    """Outcome of :func:`sigkill_soak`."""

    attempts: int
    kills: int
    exit_code: int
    #: seconds after start at which each killed attempt died
    kill_times_s: tuple[float, ...]


def sigkill_soak(
    args: Sequence[str],
    rng: np.random.Generator,
    typical_s: float,
    max_attempts: int = 40,
    min_kills: int = 3,
    cwd: Path | None = None,
) -> SoakResult:
    """Run ``eotriage ARGS`` again and again, SIGKILLing it at random moments, until it exits.

    Kill times are drawn uniformly in 0.15-0.45 x ``typical_s`` (an uninterrupted run's wall
    time) until ``min_kills`` kills, then in 0.15-1.2 x, so later attempts can finish; the
    last attempt is never killed.  ``ARGS`` should make the run resumable (``--resume``).
    """
    import os
    import signal
    import subprocess
    import sys

    kills: list[float] = []
    code = -1
    attempts = 0
    for attempt in range(max_attempts):
        attempts += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        last = attempt == max_attempts - 1
        hi = 0.45 if len(kills) < min_kills else 1.2
        limit = None if last else float(rng.uniform(0.15, hi)) * typical_s
        try:
            code = proc.wait(timeout=limit)
            break
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills.append(round(float(limit or 0.0), 3))
    return SoakResult(attempts, len(kills), code, tuple(kills))
