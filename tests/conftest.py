"""Shared fixtures: sample scenes, ../shared/data (skipped when absent), synthetic scenes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline.testing.synthetic import generate_scene

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_scenes"
SHARED = Path(os.environ.get("EOTRIAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED} (set EOTRIAGE_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def fire_scene() -> Path:
    return SAMPLES / "s2_fire_G90292"


@pytest.fixture(scope="session")
def synthetic_fires(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 600 x 600 px 13-band L1C scene with 5 fires and the baseline-04.00 offset."""
    out = generate_scene(
        tmp_path_factory.mktemp("syn") / "syn600", 600, n_fires=5, seed=3, offset_baseline=True
    )
    return out, json.loads((out / "truth.json").read_text())


def run_cli(
    *args: str | Path, cwd: Path = REPO, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``eotriage ARGS`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


T20 = Affine(20.0, 0.0, 500_000.0, 0.0, -20.0, 5_000_000.0)


def write_tif(
    path: Path,
    arrays: list[np.ndarray],
    *,
    crs: str = "EPSG:32633",
    transform: Affine = T20,
    descriptions: list[str] | None = None,
    nodata: float | None = None,
) -> Path:
    """A GeoTIFF with one band per array (dtype of the first array)."""
    h, w = arrays[0].shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=len(arrays),
        dtype=arrays[0].dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        for i, a in enumerate(arrays, 1):
            dst.write(a, i)
            if descriptions:
                dst.set_band_description(i, descriptions[i - 1])
    return path
