"""The active-fire detector end to end on real Sentinel-2 data and on synthetic truth."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from pipeline import Settings, open_scene, run_scene
from pipeline.core.results import SceneResult

from .conftest import SAMPLES, write_tif


def _reference_clusters(csv_path: Path) -> dict[int, set[tuple[int, int]]]:
    clusters: dict[int, set[tuple[int, int]]] = {}
    with csv_path.open() as fh:
        for row in csv.DictReader(fh):
            clusters.setdefault(int(row["cluster"]), set()).add((int(row["row"]), int(row["col"])))
    return clusters


def _found_boxes(result: SceneResult) -> list[tuple[int, int, int, int, int]]:
    return sorted(
        (
            int(d.measures["row_min"]),
            int(d.measures["col_min"]),
            int(d.measures["row_max"]),
            int(d.measures["col_max"]),
            int(d.measures["pixel_count"]),
        )
        for d in result.detections
    )


def _reference_boxes(
    clusters: dict[int, set[tuple[int, int]]],
) -> list[tuple[int, int, int, int, int]]:
    return sorted(
        (
            min(r for r, _ in px),
            min(c for _, c in px),
            max(r for r, _ in px),
            max(c for _, c in px),
            len(px),
        )
        for px in clusters.values()
    )


def test_g90292_sample_finds_every_reference_cluster() -> None:
    """The 12 clusters / 105 hot pixels of the scene's README, found exactly."""
    scene = open_scene(SAMPLES / "s2_fire_G90292")
    assert scene.scaling.offset == -1000, scene.scaling.reason  # 2023 product, baseline >= 04.00
    result = run_scene(scene)
    assert result.ok
    ref = _reference_clusters(SAMPLES / "s2_fire_G90292" / "fire_pixels_swir_test.csv")
    assert len(ref) == 12 and sum(map(len, ref.values())) == 105
    assert _found_boxes(result) == _reference_boxes(ref)
    biggest = max(result.detections, key=lambda d: d.measures["pixel_count"])
    assert biggest.measures["pixel_count"] == 38
    assert biggest.measures["area_m2"] == pytest.approx(38 * 400.0)
    assert biggest.measures["max_swir22_reflectance"] == pytest.approx(1.5112, abs=1e-3)
    # README centroid of cluster 1: lon -123.26184, lat 58.08834
    assert biggest.measures["centroid_lon"] == pytest.approx(-123.26184, abs=2e-4)
    assert biggest.measures["centroid_lat"] == pytest.approx(58.08834, abs=2e-4)
    assert all(0.5 <= d.score <= 1.0 for d in result.detections)


def test_real_shared_scene_directory(shared_data: Path) -> None:
    """`eotriage run ../shared/data/s2_fire/G90292`: the folder also holds an ENVI copy and
    derived masks, which must be ignored, not double-counted."""
    result = run_scene(shared_data / "s2_fire" / "G90292")
    assert result.counts()["fire"] == 12
    assert sum(int(d.measures["pixel_count"]) for d in result.detections) == 105


@pytest.mark.parametrize(("tile_size", "overlap"), [(70, 16), (110, 40), (280, 0)])
def test_tiling_does_not_change_results(tile_size: int, overlap: int) -> None:
    """Clusters cut by tile edges are merged into one feature, counted once."""
    base = run_scene(SAMPLES / "s2_fire_G90292")
    tiled = run_scene(SAMPLES / "s2_fire_G90292", Settings(tile_size=tile_size, overlap=overlap))
    assert tiled.tiles_total > 1
    assert _found_boxes(tiled) == _found_boxes(base)
    assert any("," in str(d.measures["tiles"]) for d in tiled.detections)  # some were merged


def test_no_fire_on_virginia_l1c() -> None:
    result = run_scene(SAMPLES / "s2_l1c_virginia_crop")
    assert result.ok and result.counts()["fire"] == 0


def test_no_fire_on_full_virginia_tile(shared_data: Path) -> None:
    result = run_scene(shared_data / "s2_l1c_virginia", Settings(tile_size=512))
    assert result.ok and result.counts()["fire"] == 0


def test_synthetic_truth_recovered(synthetic_fires: tuple[Path, dict]) -> None:
    path, truth = synthetic_fires
    result = run_scene(path, Settings(tile_size=256, overlap=32))
    assert result.ok
    assert result.info["scaling_reason"].startswith("processing baseline 04.00")
    assert len(result.detections) == len(truth["fires"]) == 5
    for fire in truth["fires"]:
        near = [
            d
            for d in result.detections
            if _dist_m(
                d.measures["centroid_lon"], d.measures["centroid_lat"], fire["lon"], fire["lat"]
            )
            < 15.0
        ]
        assert len(near) == 1, fire
        assert near[0].measures["pixel_count"] == fire["pixels_10m"]
        assert near[0].measures["area_m2"] == pytest.approx(fire["area_m2"], rel=1e-6)


def test_thresholds_from_settings_change_the_result() -> None:
    strict = Settings().replace(fire=Settings().fire.__class__(swir22_min=0.5))
    result = run_scene(SAMPLES / "s2_fire_G90292", strict)
    assert 0 < sum(int(d.measures["pixel_count"]) for d in result.detections) < 105
    assert result.info["thresholds"]["fire"]["swir22_min"] == 0.5


def _dist_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    dy = (lat1 - lat2) * 111_320.0
    dx = (lon1 - lon2) * 111_320.0 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def test_landsat8_scene_detected_and_scaled(tmp_path: Path) -> None:
    """A Landsat 8 OLI folder (LC08_..._B6/B7.TIF, 30 m) runs with C2 L1 scaling."""
    import numpy as np
    from affine import Affine

    d = tmp_path / "LC08_L1TP_044034_20230801"
    d.mkdir()
    rng = np.random.default_rng(0)
    swir1 = 0.25 + rng.normal(0, 0.005, (120, 120))
    swir2 = 0.15 + rng.normal(0, 0.005, (120, 120))
    swir2[60:62, 40:43], swir1[60:62, 40:43] = 0.8, 0.3  # a 6-pixel fire
    t30 = Affine(30, 0, 400000, 0, -30, 4100000)
    for name, refl in (("B6", swir1), ("B7", swir2)):
        dn = np.round((refl + 0.1) / 2e-5).astype(np.uint16)  # C2 L1: refl = 2e-5 DN - 0.1
        write_tif(d / f"{d.name}_{name}.TIF", [dn], crs="EPSG:32610", transform=t30)
    scene = open_scene(d)
    assert scene.profile.name == "landsat8-oli"
    result = run_scene(scene)
    assert [int(det.measures["pixel_count"]) for det in result.detections] == [6]
    assert result.detections[0].measures["area_m2"] == pytest.approx(6 * 900.0)
    assert result.detections[0].measures["max_swir22_reflectance"] == pytest.approx(0.8, abs=1e-3)


def test_crop_pass_equals_whole_array_pass(synthetic_fires: tuple[Path, dict]) -> None:
    """The contextual test on crops around candidates gives the whole-array result."""
    import numpy as np

    from pipeline.core.ingest import SceneReader
    from pipeline.core.tiling import tile_grid
    from pipeline.detectors.fire import FireDetector

    det = FireDetector(Settings())
    for path in (SAMPLES / "s2_fire_G90292", synthetic_fires[0]):
        scene = open_scene(path)
        [tile] = tile_grid(scene.grid.width, scene.grid.height, 1024, 0)
        with SceneReader(scene) as reader:
            data = reader.read(tile, det.band_names(scene))
        b22, b16 = (data.bands[n] for n in det.band_names(scene))
        valid = data.valid.astype(np.float32)
        radius = det.context_px(scene.grid)
        fire, score = det.fire_mask(b22, b16, valid, radius)
        whole_fire, whole_score, _ = det._run(b22, b16, valid, radius, context=True)
        assert fire.any()
        np.testing.assert_array_equal(fire, whole_fire[0, 0].astype(bool))
        np.testing.assert_allclose(score, whole_score[0, 0], atol=1e-6)
