"""Peak memory does not grow with scene size (streaming ingest, bounded by one tile).

Measured on real subprocess runs of ``eotriage run`` (os.wait4 gives the child's own peak RSS).
A 4x larger scene must not need more memory (within 3 %).  The full-size
10,980 x 10,980 figure is measured by benchmarks/bench_memory.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.testing.synthetic import generate_scene

from .conftest import REPO


def _peak_rss_mib(args: list[str]) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    assert re.search(r"\b\d+ fire\b.* -> ", out), out
    return usage.ru_maxrss / 1024.0


@pytest.mark.slow
def test_peak_memory_flat_with_scene_size(tmp_path: Path) -> None:
    # default 1024 px tiles: 2 x 2 tiles against 4 x 4 tiles.  With more temporaries per tile
    # in ingest, glibc's heap fragmented and this measured 180 -> 218 MiB.
    small = generate_scene(tmp_path / "small", 2000, n_fires=4, seed=1, compress=None)
    large = generate_scene(tmp_path / "large", 4000, n_fires=8, seed=2, compress=None)
    common = ["--no-progress"]
    rss_small = _peak_rss_mib(["run", str(small), "--out", str(tmp_path / "o1"), *common])
    rss_large = _peak_rss_mib(["run", str(large), "--out", str(tmp_path / "o2"), *common])
    # 4x the pixels (and 4x the bytes on disk) for the same peak memory (within 3 %)
    assert rss_large <= rss_small * 1.03, (rss_small, rss_large)
