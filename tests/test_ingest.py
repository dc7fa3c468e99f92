from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline.core.ingest import FLAG_NAN, FLAG_NODATA, FLAG_SATURATED, FLAG_ZERO, SceneReader
from pipeline.core.scene import open_scene
from pipeline.core.tiling import tile_grid

from .conftest import SAMPLES, write_tif


def test_coarse_bands_resampled_nearest_on_real_scene() -> None:
    scene = open_scene(SAMPLES / "s2_l1c_virginia_crop")
    assert (scene.grid.width, scene.grid.height, scene.grid.ground_res_m) == (512, 512, 10.0)
    tile = tile_grid(512, 512, 256, 32)[3]  # bottom-right tile
    with SceneReader(scene) as reader:
        data = reader.read(tile, ["B02", "B11", "B01"])
    r0, c0 = int(tile.read.row_off), int(tile.read.col_off)
    h, w = data.shape
    rows, cols = np.arange(r0, r0 + h), np.arange(c0, c0 + w)
    with rasterio.open(SAMPLES / "s2_l1c_virginia_crop" / "B11.tif") as ds:
        b11 = ds.read(1).astype(np.float32) * 1e-4
    with rasterio.open(SAMPLES / "s2_l1c_virginia_crop" / "B01.tif") as ds:
        b01 = ds.read(1).astype(np.float32) * 1e-4
    with rasterio.open(SAMPLES / "s2_l1c_virginia_crop" / "B02.tif") as ds:
        b02 = ds.read(1).astype(np.float32) * 1e-4
    np.testing.assert_allclose(data.bands["B11"], b11[np.ix_(rows // 2, cols // 2)], rtol=1e-6)
    np.testing.assert_allclose(data.bands["B01"], b01[np.ix_(rows // 6, cols // 6)], rtol=1e-6)
    np.testing.assert_allclose(data.bands["B02"], b02[r0 : r0 + h, c0 : c0 + w], rtol=1e-6)
    assert data.valid.all()


def test_validity_flags(tmp_path: Path) -> None:
    scene_dir = tmp_path / "flags"
    scene_dir.mkdir()
    b12 = np.full((8, 8), 0.2, np.float32) * 1e4
    b12[0, 0] = np.nan
    b12[1, 1] = 0.0
    b12[2, 2] = 65535.0
    b11 = np.full((8, 8), 2000, np.uint16)
    b11[3, 3] = 9999  # declared nodata
    write_tif(scene_dir / "B12.tif", [b12])
    write_tif(scene_dir / "B11.tif", [b11], nodata=9999)
    scene = open_scene(scene_dir, sensor="sentinel2-l1c")
    [tile] = tile_grid(8, 8, 64, 0)
    with SceneReader(scene) as reader:
        data = reader.read(tile, ["B11", "B12"])
    f = data.flags
    assert f[0, 0] & FLAG_NAN and f[1, 1] & FLAG_ZERO and f[3, 3] & FLAG_NODATA
    assert f[2, 2] & FLAG_SATURATED and data.valid[2, 2]  # saturated: flagged, still usable
    assert not data.valid[0, 0] and not data.valid[1, 1] and not data.valid[3, 3]
    assert data.bands["B12"][0, 0] == 0.0 and np.isfinite(data.bands["B12"]).all()
    assert data.bands["B12"][4, 4] == pytest.approx(0.2)
    assert data.invalid_in_core == {"B11": 1, "B12": 2}


def test_zero_fill_all_bands_for_sen2ships(tmp_path: Path) -> None:
    d = tmp_path / "s2s"
    d.mkdir()
    b02 = np.full((4, 4), 3000, np.uint16)
    b03 = b02.copy()
    b02[0, 0] = 0  # clamped dark sample in one band: usable
    b02[1, 1] = b03[1, 1] = 0  # zero in every band: fill
    t10 = Affine(10, 0, 0, 0, -10, 0)
    write_tif(d / "B02.tif", [b02], crs="EPSG:3857", transform=t10)
    write_tif(d / "B03.tif", [b03], crs="EPSG:3857", transform=t10)
    scene = open_scene(d)
    assert scene.profile.name == "sen2ships"
    [tile] = tile_grid(4, 4, 64, 0)
    with SceneReader(scene) as reader:
        data = reader.read(tile, ["B02", "B03"])
    assert data.valid[0, 0] and not data.valid[1, 1]
    assert data.bands["B03"][2, 2] == pytest.approx(3000 / 65535)
