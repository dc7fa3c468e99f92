"""Input faults of a spacecraft: bit flips, impossible values, stuck lines, NaN windows.

A flipped bit must not raise a fire or ship alert by itself; impossible and stuck samples are
flagged (and rebuilt when isolated); a fault in one band does not blind detectors that do not
read it; real scenes get no fault flags at all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from pipeline import Settings
from pipeline.core.engine import run_scene
from pipeline.core.ingest import (
    FLAG_IMPOSSIBLE,
    FLAG_REPAIRED,
    FLAG_STUCK,
    SceneReader,
    repair_thin,
    stuck_lines,
)
from pipeline.core.scene import open_scene
from pipeline.core.tiling import iter_tiles
from pipeline.errors import InputError
from pipeline.settings import FireSettings, RobustnessSettings
from pipeline.testing.faults import copy_scene, fill_window, flip_bits, inject_upsets, stick_line
from tests.conftest import SAMPLES

CROP = SAMPLES / "s2_l1c_virginia_crop"
FIRE = SAMPLES / "s2_fire_G90292"
CHECKS_OFF = Settings(
    robustness=RobustnessSettings(max_reflectance=1e9, stuck_line_px=0),
    fire=FireSettings(one_sample_spill_min=0, one_sample_rise_min=0, one_sample_tint_min=0),
)


def _set_sample(path: Path, row: int, col: int, value: float, band: int = 1) -> None:
    with rasterio.open(path) as ds:
        profile, data = ds.profile, ds.read()
    data[band - 1, row, col] = value
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)


def _fires(path: Path, settings: Settings) -> int:
    r = run_scene(path, settings.replace(detectors=("fire",)))
    return sum(1 for d in r.detections if d.cls == "fire")


@pytest.fixture()
def crop_copy(tmp_path: Path) -> Path:
    return copy_scene(CROP, tmp_path / "crop")


def test_low_bit_flip_in_a_bright_area_raises_no_fire(tmp_path: Path, shared_data: Path) -> None:
    """The one flip of the 100x-rate benchmark run that passed the spill and rise checks (B12
    bit 11, +0.2 in a bright field: natural neighbours looked like spill); the spill's tint
    (B12/B11 of the neighbours) tells it from a fire."""
    copy = copy_scene(shared_data / "s2_l1c_virginia", tmp_path / "v")
    with rasterio.open(copy / "B12.tif") as ds:
        v = int(ds.read(1)[100, 256])
    _set_sample(copy / "B12.tif", 100, 256, v ^ (1 << 11))
    assert _fires(copy, Settings()) == 0
    no_tint = Settings(fire=FireSettings(one_sample_tint_min=0))
    assert _fires(copy, no_tint) == 1


@pytest.mark.parametrize("bit", [11, 12, 13, 14, 15])
def test_one_flipped_b12_bit_raises_no_fire(crop_copy: Path, bit: int) -> None:
    assert _fires(CROP, Settings()) == 0
    with rasterio.open(crop_copy / "B12.tif") as ds:
        v = int(ds.read(1)[100, 120])
    _set_sample(crop_copy / "B12.tif", 100, 120, v ^ (1 << bit))
    assert _fires(crop_copy, Settings()) == 0
    if bit >= 12:  # the same flip with the checks off is a fire alert: the test can fail
        assert _fires(crop_copy, CHECKS_OFF) == 1


def test_real_one_sample_fires_pass_the_second_check() -> None:
    result = run_scene(FIRE, Settings(detectors=("fire",)))
    singles = [d for d in result.detections if d.measures["native_samples"] == 1]
    assert len(result.detections) == 12 and len(singles) == 4
    for d in singles:
        assert d.measures["one_sample_spill"] >= 0.3
        assert d.measures["one_sample_rise"] >= 0.08
        assert d.measures["one_sample_tint"] >= 1.5


def test_impossible_sample_is_flagged_and_rebuilt(crop_copy: Path) -> None:
    _set_sample(crop_copy / "B08.tif", 200, 200, 60000)  # reflectance 6.0
    scene = open_scene(crop_copy)
    tile = next(iter(iter_tiles(scene.grid.width, scene.grid.height, 1024, 0)))
    with SceneReader(scene) as reader:
        data = reader.read(tile, ["B08", "B04"])
    assert data.flags[200, 200] & FLAG_IMPOSSIBLE and data.flags[200, 200] & FLAG_REPAIRED
    assert data.valid[200, 200]
    neighbours = data.bands["B08"][199:202, 199:202].copy()
    neighbours[1, 1] = np.nan
    assert data.bands["B08"][200, 200] == pytest.approx(np.nanmean(neighbours), rel=1e-5)
    assert data.repaired_in_core["B08"] == 1 and data.invalid_in_core["B08"] == 0


def test_large_impossible_area_stays_invalid(crop_copy: Path) -> None:
    fill_window(crop_copy / "B08.tif", 1, Window(10, 10, 20, 20), 60000)
    result = run_scene(crop_copy, Settings(detectors=("ships",)))
    # a 20 x 20 block survives the 3 x 3 opening: none of it is "thin", all of it stays invalid
    assert result.info["invalid_samples"]["B08"] == 20 * 20
    assert result.info["repaired_samples"]["B08"] == 0


def test_stuck_lines_found_and_natural_data_untouched(crop_copy: Path) -> None:
    with rasterio.open(crop_copy / "B04.tif") as ds:
        dn = ds.read(1)
    assert stuck_lines(dn, 64, None, 65535) is None
    col, row = dn.copy(), dn.copy()
    col[:, 77] = 1234
    row[300, :] = 999
    for arr, line in ((col, (slice(None), 77)), (row, (300, slice(None)))):
        mask = stuck_lines(arr, 64, None, 65535)
        assert mask is not None and mask[line].all() and mask.sum() == 512
    row[301, :] = 65535  # saturated: not a fault
    assert stuck_lines(row, 64, None, 65535).sum() == 512  # type: ignore[union-attr]
    assert stuck_lines(np.full((100, 100), 5, np.uint16), 64, None, 65535) is None  # a fill
    assert stuck_lines(dn, 0, None, 65535) is None  # off


def test_stuck_b12_row_is_repaired_and_raises_no_fire(crop_copy: Path) -> None:
    stick_line(crop_copy / "B12.tif", 1, "row", 90, 6000)  # 0.6: looks hot all along
    assert _fires(crop_copy, CHECKS_OFF) >= 1
    result = run_scene(crop_copy, Settings())
    assert result.counts()["fire"] == 0
    assert result.info["repaired_samples"]["B12"] > 0
    with SceneReader(open_scene(crop_copy)) as reader:
        data = reader.read(next(iter(iter_tiles(512, 512, 1024, 0))), ["B12"])
    assert (data.flags[180:182] & FLAG_STUCK).all()


def test_fault_in_one_band_does_not_blind_other_detectors(crop_copy: Path) -> None:
    clean = run_scene(CROP, Settings(detectors=("ships",)))
    fill_window(crop_copy / "B12.tif", 1, Window(0, 0, 256, 256), 60000)  # all of B12 bad
    faulty = run_scene(crop_copy, Settings(detectors=("fire", "ships")))
    ships = [d for d in faulty.detections if d.cls == "ship"]
    assert [d.to_feature() for d in ships] == [d.to_feature() for d in clean.detections]
    assert faulty.info["invalid_samples"]["B12"] > 0


def test_nan_window_keeps_the_other_fires(tmp_path: Path) -> None:
    copy = copy_scene(FIRE, tmp_path / "fire")
    tif = next(copy.glob("*.tif"))
    fill_window(tif, 3, Window(0, 0, 400, 100), np.nan)  # B12 of the top quarter
    clean = run_scene(FIRE, Settings(detectors=("fire",)))
    result = run_scene(copy, Settings(detectors=("fire",)))
    # fires whose 300 m context window (15 px) does not reach the NaN rows are untouched
    kept = [d for d in clean.detections if d.measures["row_min"] >= 100 + 16]
    assert kept and all(
        any(d.to_feature() == k.to_feature() for d in result.detections) for k in kept
    )
    assert result.info["invalid_samples"]["B12"] == 400 * 100
    assert not result.failures


def test_repair_thin_leaves_blocks_alone() -> None:
    refl = np.ones((20, 20), np.float32)
    fault = np.zeros((20, 20), bool)
    fault[5, 5] = True
    fault[10:15, 10:15] = True
    refl[fault] = 9.0
    bad = fault.copy()
    fixed = repair_thin(refl, fault, bad)
    assert fixed is not None and fixed[5, 5] and not fixed[12, 12]
    assert refl[5, 5] == 1.0 and bad[12, 12] and not bad[5, 5]


def test_upset_injection_is_reproducible_and_counted(tmp_path: Path) -> None:
    a = inject_upsets(FIRE, tmp_path / "a", 1e-5, np.random.default_rng(1))
    b = inject_upsets(FIRE, tmp_path / "b", 1e-5, np.random.default_rng(1))
    assert a.upsets == tuple(
        type(u)(u.path.replace("/b/", "/a/"), u.band, u.row, u.col, u.bit, u.before, u.after)
        for u in b.upsets
    )
    assert a.bits == 400 * 400 * 3 * 32 and 50 < len(a.upsets) < 250
    arr = np.zeros((1, 4, 4), np.uint16)
    flips = flip_bits(arr, 3, np.random.default_rng(0))
    assert len(flips) == 3 and int(np.count_nonzero(arr)) >= 1
    shutil.rmtree(tmp_path / "a")


def test_unreadable_band_file_costs_only_its_detectors(crop_copy: Path) -> None:
    from pipeline.settings import CropSettings

    parcels = CropSettings(layers=(str(CROP / "parcels.geojson"),))
    clean = run_scene(CROP, Settings(detectors=("fire", "crop"), crop=parcels))
    assert any(d.cls == "crop_stress" for d in clean.detections)
    b12 = crop_copy / "B12.tif"
    b12.write_bytes(b12.read_bytes()[: b12.stat().st_size * 6 // 10])  # header cut off
    scene = open_scene(crop_copy)
    assert "B12" not in scene.band_names and "B12.tif" in scene.unreadable["B12"]
    result = run_scene(scene, Settings(detectors=("fire", "crop"), crop=parcels))
    assert result.detectors["fire"].startswith("skipped: needs band(s) B12 (unreadable: ")
    assert result.detectors["crop"] == "ran"
    assert not result.ok and result.problems[0].startswith("band B12 left out: ")
    crop = [d.to_feature() for d in result.detections]
    assert crop == [d.to_feature() for d in clean.detections if d.cls == "crop_stress"]
    # a scene whose every band file is broken is still one clear error
    for f in crop_copy.glob("*.tif"):
        f.write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match=r"\.tif: not a readable GeoTIFF"):
        open_scene(crop_copy)


@pytest.mark.slow
def test_one_flipped_nir_bit_on_water_raises_no_ship(crop_copy: Path) -> None:
    from pipeline.settings import ShipSettings

    ships = Settings(detectors=("ships",))
    # one bright pixel is one pixel long: below min_length_m whatever the segmenter makes of
    # it; with the length rule off it is still no vessel-shaped object
    no_length = ships.replace(ships=ShipSettings(min_length_m=0))
    with rasterio.open(crop_copy / "B08.tif") as ds:
        v = int(ds.read(1)[454, 191])
    _set_sample(crop_copy / "B08.tif", 454, 191, v ^ (1 << 12))  # +0.41 NIR on open water
    for settings in (ships, no_length):
        clean = run_scene(CROP, settings).counts()["ship"]
        assert run_scene(crop_copy, settings).counts()["ship"] == clean
