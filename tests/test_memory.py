"""Peak memory does not grow with scene size (streaming ingest, bounded by one tile).

Measured on real subprocess runs of ``eotriage run`` (os.wait4 gives the child's own peak RSS).
A 9x larger scene must not need more than a few percent more memory.  The full-size
10,980 x 10,980 figure is measured by benchmarks/bench_memory.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.synthetic import generate_scene

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
    assert "fire ->" in out
    return usage.ru_maxrss / 1024.0


@pytest.mark.slow
def test_peak_memory_flat_with_scene_size(tmp_path: Path) -> None:
    small = generate_scene(tmp_path / "small", 768, n_fires=2, seed=1, compress=None)
    large = generate_scene(tmp_path / "large", 2304, n_fires=6, seed=2, compress=None)
    # tile 256: both scenes have full interior tiles (the largest read window, 384 x 384 px)
    common = ["--tile-size", "256", "--no-progress"]
    rss_small = _peak_rss_mib(["run", str(small), "--out", str(tmp_path / "o1"), *common])
    rss_large = _peak_rss_mib(["run", str(large), "--out", str(tmp_path / "o2"), *common])
    # 9x the pixels (and 9x the bytes on disk) for at most ~10 % more memory
    assert rss_large <= rss_small * 1.10 + 20.0, (rss_small, rss_large)
