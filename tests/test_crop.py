"""The crop-stress detector: synthetic truth, real Virginia L1C data, missing bands, model files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline import Settings, open_scene, run_scene
from pipeline.core.results import SceneResult
from pipeline.errors import ConfigError, InputError, ModelError
from pipeline.evaluation.crop import detection_mask, evaluate_crop
from pipeline.settings import CropSettings
from pipeline.testing.synthetic_crops import BANDS, generate_crop_scene

from .conftest import REPO, SAMPLES

CROP = ("crop",)


def _run(path: Path, **crop: Any) -> SceneResult:
    tile = crop.pop("tile_size", 1024)
    overlap = crop.pop("overlap", 64)
    settings = Settings(detectors=CROP, tile_size=tile, overlap=overlap, crop=CropSettings(**crop))
    result = run_scene(path, settings)
    assert result.ok, (result.failures, result.problems)
    return result


@pytest.fixture(scope="module")
def crop_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 x 800 px (8 x 8 km) synthetic L1C crop scene with a baseline in EPSG:4326."""
    return generate_crop_scene(tmp_path_factory.mktemp("crops") / "syn800", 800, seed=5)


@pytest.fixture(scope="module")
def crop_result(crop_scene: Path) -> SceneResult:
    return _run(crop_scene)


def test_truth_file_is_consistent(crop_scene: Path) -> None:
    truth = json.loads((crop_scene / "truth.json").read_text())
    states = {f["state"] for f in truth["fields"]}
    assert {"healthy", "stressed", "severe", "declining", "bare"} <= states
    assert truth["stressed_km2"] == pytest.approx(
        sum(f["stressed_km2"] for f in truth["fields"]), abs=1e-4
    )
    assert truth["stressed_km2_baseline"] > truth["stressed_km2"] > 1.0
    assert truth["class_km2"]["water"] > 1.0 and truth["class_km2"]["bare"] > 0.5


def test_synthetic_area_within_10_percent(crop_scene: Path, crop_result: SceneResult) -> None:
    ev = evaluate_crop(crop_result, crop_scene)
    assert abs(ev.relative_error) < 0.10, ev.to_dict()
    assert ev.fields_hit == ev.fields_stressed, [f for f in ev.fields if f.truth_km2 and not f.hit]
    assert ev.pixel_recall > 0.9 and ev.pixel_precision > 0.9, ev.to_dict()
    assert ev.stress_px_on_water == 0 and ev.stress_px_on_bare == 0, ev.to_dict()
    # declining fields are not low-valued: without a baseline they are not flagged
    declining = [f for f in ev.fields if f.state == "declining"]
    assert declining and all(f.truth_km2 == 0 for f in declining)


def test_feature_measures(crop_result: SceneResult) -> None:
    assert crop_result.detections
    for d in crop_result.detections:
        m = d.measures
        assert d.cls == "crop_stress" and 0.5 <= d.score <= 1.0
        assert m["area_km2"] == pytest.approx(int(m["pixel_count"]) * 100 / 1e6, rel=1e-3)
        assert float(m["area_km2"]) * 1e6 >= CropSettings().min_area_m2
        assert m["severity"] in ("moderate", "severe")
        assert "ndvi_low" in str(m["tests"]).split(",")
        assert float(m["mean_ndvi"]) < 0.5
        for k in ("mean_ndre", "mean_ndmi", "mean_msi", "centroid_lon", "centroid_lat"):
            assert isinstance(m[k], float)
        assert int(m["row_min"]) <= int(m["row_max"]) and int(m["col_min"]) <= int(m["col_max"])
        assert "indices_skipped" not in m
    severities = {d.measures["severity"] for d in crop_result.detections}
    assert severities == {"moderate", "severe"}


def test_baseline_drop_test(crop_scene: Path, crop_result: SceneResult) -> None:
    """With the baseline raster (EPSG:4326, reprojected per tile) declining fields are found."""
    result = _run(crop_scene, baseline_ndvi=str(crop_scene / "baseline_ndvi.tif"))
    ev = evaluate_crop(result, crop_scene, with_baseline=True)
    assert abs(ev.relative_error) < 0.10, ev.to_dict()
    declining = [f for f in ev.fields if f.state == "declining"]
    assert declining and all(f.hit for f in declining)
    assert ev.stress_px_on_water == 0 and ev.stress_px_on_bare == 0
    assert ev.detected_km2 > evaluate_crop(crop_result, crop_scene).detected_km2 + 0.5
    assert any("ndvi_drop" in str(d.measures["tests"]) for d in result.detections)
    assert all("mean_ndvi_drop" in d.measures for d in result.detections)


@pytest.mark.parametrize(("tile_size", "overlap"), [(128, 0), (300, 16), (127, 0)])
def test_tiling_invariance_and_merge(
    crop_scene: Path, crop_result: SceneResult, tile_size: int, overlap: int
) -> None:
    """Same polygons at every tile size: pieces cut by tile edges merge, nothing doubles."""
    result = _run(crop_scene, tile_size=tile_size, overlap=overlap)
    assert result.info["overlap"] >= 10  # raised to the detector's context

    def key(r: SceneResult) -> list[tuple[Any, ...]]:
        return sorted(
            (d.measures["row_min"], d.measures["col_min"], d.measures["pixel_count"])
            for d in r.detections
        )

    assert key(result) == key(crop_result)
    multi = [d for d in result.detections if "," in str(d.measures["tiles"])]
    assert multi, "expected polygons spanning several tiles"
    for d in multi:
        twin = next(
            e
            for e in crop_result.detections
            if e.measures["row_min"] == d.measures["row_min"]
            and e.measures["col_min"] == d.measures["col_min"]
        )
        # same pixels; extra collinear vertices on the old tile edge move by < 1 mm in WGS84
        assert d.geometry.symmetric_difference(twin.geometry).area < 1e-4 * twin.geometry.area
        assert d.measures["mean_ndvi"] == pytest.approx(twin.measures["mean_ndvi"], abs=1e-3)


def test_missing_red_edge_is_skipped_not_an_error(tmp_path: Path) -> None:
    """Landsat-like band set (no B05/B8A): NDRE is skipped and recorded, the rest works."""
    bands = tuple(b for b in BANDS if b not in ("B05", "B06", "B07", "B8A"))
    scene = generate_crop_scene(tmp_path / "nore", 600, seed=2, bands=bands, baseline=False)
    result = _run(scene)
    assert result.detectors["crop"] == "ran"
    ev = evaluate_crop(result, scene)
    assert abs(ev.relative_error) < 0.10, ev.to_dict()
    assert result.detections
    for d in result.detections:
        assert d.measures["indices_skipped"] == "ndre"
        assert "mean_ndre" not in d.measures and "mean_ndmi" in d.measures


def test_landsat8_profile(tmp_path: Path) -> None:
    """A Landsat 8 OLI scene (30 m, B3 B4 B5 B6, DN * 2e-5 - 0.1; no red-edge): one cell per
    pixel, NDRE skipped, areas still within 10 %."""
    src = generate_crop_scene(
        tmp_path / "s2", 900, seed=3, bands=("B03", "B04", "B08", "B11"), baseline=False
    )
    out = tmp_path / "landsat"
    out.mkdir()
    for s2, l8 in (("B03", "B3"), ("B04", "B4"), ("B08", "B5"), ("B11", "B6")):
        with rasterio.open(src / f"{s2}.tif") as ds:
            refl = ds.read(1).astype(np.float32) / 10000.0
            t, crs = ds.transform, ds.crs
        if t.a == 20.0:
            refl = np.repeat(np.repeat(refl, 2, axis=0), 2, axis=1)
        refl = refl[:900, :900].reshape(300, 3, 300, 3).mean(axis=(1, 3))
        dn = np.clip(np.round((refl + 0.1) / 2e-5), 1, 65534).astype(np.uint16)
        with rasterio.open(
            out / f"LC08_{l8}.tif", "w", driver="GTiff", width=300, height=300, count=1,
            dtype="uint16", crs=crs, transform=Affine(30.0, 0, t.c, 0, -30.0, t.f),
        ) as dst:  # fmt: skip
            dst.write(dn, 1)
    for name in ("truth.json", "truth_classes.tif"):
        shutil.copy(src / name, out / name)
    result = run_scene(out, Settings(detectors=CROP, sensor="landsat8-oli"))
    assert result.ok and result.info["grid"]["ground_res_m"] == 30.0
    ev = evaluate_crop(result, out)
    assert abs(ev.relative_error) < 0.10, ev.to_dict()
    assert ev.stress_px_on_water == 0 and ev.stress_px_on_bare == 0
    assert ev.fields_hit == ev.fields_stressed
    assert {d.measures["indices_skipped"] for d in result.detections} == {"ndre"}
    assert {d.measures["cell_m"] for d in result.detections} == {30.0}


def test_red_and_nir_only(tmp_path: Path) -> None:
    """Only red and NIR: NDVI alone decides; NDRE, NDMI and MSI are skipped."""
    scene = generate_crop_scene(tmp_path / "rn", 400, seed=4, bands=("B04", "B08"), baseline=False)
    result = _run(scene)
    assert result.detections
    assert {d.measures["indices_skipped"] for d in result.detections} == {"ndre,ndmi,msi"}
    assert abs(evaluate_crop(result, scene).relative_error) < 0.10


def test_crop_needs_red_and_nir(tmp_path: Path) -> None:
    scene = generate_crop_scene(
        tmp_path / "nonir", 200, seed=1, bands=("B04", "B11"), baseline=False
    )
    with pytest.raises(InputError, match="crop needs band"):
        run_scene(scene, Settings(detectors=CROP))


def test_uplinked_cropland_mask(crop_scene: Path, tmp_path: Path) -> None:
    """An uplinked mask (30 m grid) restricts detections to its cropland."""
    truth = json.loads((crop_scene / "truth.json").read_text())
    x0, y0 = truth["transform"][2], truth["transform"][5]
    mask = np.zeros((267, 267), np.uint8)
    mask[:, :100] = 1  # west 3 km only
    path = tmp_path / "cropland.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=267, height=267, count=1, dtype="uint8",
        crs=truth["crs"], transform=Affine(30.0, 0, x0, 0, -30.0, y0),
    ) as ds:  # fmt: skip
        ds.write(mask, 1)
    result = _run(crop_scene, cropland_mask=str(path))
    assert result.detections
    assert max(int(d.measures["col_max"]) for d in result.detections) < 300
    full = evaluate_crop(_run(crop_scene), crop_scene).detected_km2
    assert evaluate_crop(result, crop_scene).detected_km2 < 0.6 * full


def test_unknown_threshold_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ndvi_typo"):
        Settings.from_mapping({"detectors": list(CROP), "crop": {"ndvi_typo": 1.0}})


# --------------------------------------------------------------------------- real data


def _water_and_bare(scene_dir: Path) -> tuple[np.ndarray, np.ndarray, Affine, str]:
    """Reference masks at 10 m, independent of the detector's 20 m cells: water where
    NDWI(B03, B08) > 0.1 or B08 < 0.04; bare soil where NDVI(B08, B04) < 0.12."""
    arrs = {}
    for b in ("B03", "B04", "B08"):
        with rasterio.open(scene_dir / f"{b}.tif") as ds:
            arrs[b] = ds.read(1).astype(np.float32) / 10000.0
            transform, crs = ds.transform, ds.crs.to_string()
    g, r, n = arrs["B03"], arrs["B04"], arrs["B08"]
    water = ((g - n) / (g + n) > 0.1) | (n < 0.04)
    bare = ((n - r) / (n + r) < 0.12) & ~water
    return water, bare, transform, crs


def _check_virginia(scene_dir: Path) -> tuple[SceneResult, dict[str, float]]:
    result = _run(scene_dir)
    water, bare, transform, crs = _water_and_bare(scene_dir)
    det = detection_mask(result, water.shape, transform, crs)
    n = int(det.sum())
    # more than one 20 m cell (2 px) inside a polygon's edge
    inner = cv2.erode(det.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    facts = {
        "stressed_px": n,
        "on_water_px": int((det & water).sum()),
        "on_water_inner_px": int((inner & water).sum()),
        "on_bare_px": int((det & bare).sum()),
        "water_share": float(water.mean()),
    }
    return result, facts


def test_virginia_sample_is_plausible() -> None:
    scene_dir = SAMPLES / "s2_l1c_virginia_crop"
    result, f = _check_virginia(scene_dir)
    assert open_scene(scene_dir).profile.name == "sentinel2-l1c"
    assert result.detections, "fields in the west of the crop: some stress expected"
    assert f["water_share"] > 0.3  # lagoon and channels
    total_km2 = 5.12 * 5.12
    km2 = sum(float(d.measures["area_km2"]) for d in result.detections)
    assert 0.1 < km2 < 0.3 * total_km2
    # 20 m cells: mixed 10 m pixels on a polygon's edge may be water, none inside it
    assert f["on_water_inner_px"] == 0, f
    assert f["on_water_px"] <= 0.005 * f["stressed_px"], f
    assert f["on_bare_px"] <= 0.01 * f["stressed_px"], f


def test_virginia_full_tile(shared_data: Path) -> None:
    scene_dir = shared_data / "s2_l1c_virginia"
    result, f = _check_virginia(scene_dir)
    assert result.detections
    # 20 m cells: mixed 10 m pixels on a polygon's edge may be water, none inside it
    assert f["on_water_inner_px"] == 0, f
    assert f["on_water_px"] <= 0.005 * f["stressed_px"], f
    assert f["on_bare_px"] <= 0.01 * f["stressed_px"], f


# --------------------------------------------------------------------------- model file


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    from pipeline.detectors.crop import CropDetector

    models = tmp_path / "models"
    skip = shutil.ignore_patterns("*.py", "__pycache__", "golden")  # no golden copy to fall back on
    shutil.copytree(REPO / "models", models, ignore=skip)
    data = bytearray((models / "crop_stress.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (models / "crop_stress.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        CropDetector(Settings(detectors=CROP, models_dir=models))


def test_model_build_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "built"
    for _ in range(2):
        subprocess.run(
            [sys.executable, str(REPO / "models" / "build_crop_model.py"), str(out)],
            check=True,
            capture_output=True,
        )
    built = (out / "crop_stress.onnx").read_bytes()
    assert built == (REPO / "models" / "crop_stress.onnx").read_bytes()
    entry = json.loads((out / "manifest.json").read_text())["models"]["crop_stress"]
    repo_entry = json.loads((REPO / "models" / "manifest.json").read_text())["models"][
        "crop_stress"
    ]
    assert entry == repo_entry
    assert set(entry["thresholds"]) >= {"ndvi_stress", "ndre_stress", "ndmi_stress", "drop_min"}
