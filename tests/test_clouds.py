"""The cloud screen in the pipeline: real ONNX sessions on real and synthetic rasters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import pipeline
from pipeline.errors import ModelError
from pipeline.sensors import PROFILES
from pipeline.settings import RobustnessSettings, Settings
from pipeline.testing.clouds import paint_cloud
from pipeline.testing.ship_scenes import SHIP_BANDS, SynShip, write_ship_scene
from pipeline.testing.synthetic import generate_scene

from .conftest import REPO, SAMPLES

S2 = PROFILES["sentinel2-l1c"]
L1C_ROLES = {b.name: b.role for b in S2.bands}
SHIP_ROLES = {b: L1C_ROLES[b] for b in SHIP_BANDS}


def clouds(result: pipeline.SceneResult) -> dict:
    info = result.info.get("clouds")
    assert info is not None, result.detectors
    return info


@pytest.mark.parametrize("name", ["s2_l1c_virginia_crop", "sen2ships_honolulu"])
def test_sample_scenes_are_clear(name: str) -> None:
    result = pipeline.run_scene(SAMPLES / name, Settings(detectors=("clouds",)))
    c = clouds(result)
    assert result.detectors["clouds"] == "ran"
    assert c["cloud_fraction"] is not None and c["cloud_fraction"] <= 0.05
    assert c["checked_fraction"] == pytest.approx(1.0)
    assert set(c["tiles"]) == {"r000c000"}


def test_fire_scene_without_visible_bands_keeps_its_12_fires() -> None:
    """G90292 has only B09, B11, B12: clouds are not checked there (said so), fires stay."""
    result = pipeline.run_scene(SAMPLES / "s2_fire_G90292", Settings())
    assert result.detectors["clouds"].startswith("skipped: needs band(s) B02")
    assert "clouds" not in result.info
    assert result.counts()["fire"] == 12


def _overcast(tmp: Path, kind: str) -> Path:
    if kind == "6-band L1C":
        scene = generate_scene(tmp / "l1c", 384, n_fires=0, seed=3)
        roles = {b: r for b, r in L1C_ROLES.items() if (scene / f"{b}.tif").exists()}
        paint_cloud(scene, roles, 1e-4, (192, 192), float("inf"))
        return scene
    scene = write_ship_scene(tmp / "port", 256, 256, [SynShip(100, 100, 14, 4, 30)], 60)
    paint_cloud(scene, SHIP_ROLES, 1 / 65535, (128, 128), float("inf"))
    return scene


@pytest.mark.parametrize("kind", ["6-band L1C", "4-band sen2ships"])
def test_overcast_frame_is_cloud(tmp_path: Path, kind: str) -> None:
    scene = _overcast(tmp_path, kind)
    result = pipeline.run_scene(scene, Settings(tile_size=128))
    c = clouds(result)
    assert c["cloud_fraction"] >= 0.9, c
    assert result.counts()["ship"] == 0


def test_six_band_path_reads_swir_and_four_band_path_does_not() -> None:
    from pipeline.detectors.clouds import CloudScreen

    screen = CloudScreen(Settings())
    l1c = pipeline.open_scene(SAMPLES / "s2_l1c_virginia_crop")
    port = pipeline.open_scene(SAMPLES / "sen2ships_honolulu")
    assert screen.band_names(l1c) == ["B02", "B03", "B04", "B08", "B11", "B12"]
    assert screen.band_names(port) == ["B02", "B03", "B04", "B08"]


def test_cloud_over_a_ship_raises_no_ship_alarm(tmp_path: Path) -> None:
    ships = [SynShip(60, 200, 16, 4, 30), SynShip(190, 150, 16, 4, 100)]
    clear = write_ship_scene(tmp_path / "clear", 256, 256, ships, 40, seed=2)
    cloudy = write_ship_scene(tmp_path / "cloudy", 256, 256, ships, 40, seed=2)
    paint_cloud(cloudy, SHIP_ROLES, 1 / 65535, (190, 150), 30, shadow_offset=(0, 40))
    settings = Settings(detectors=("clouds", "ships"), tile_size=128)
    base = pipeline.run_scene(clear, settings)
    got = pipeline.run_scene(cloudy, settings)
    assert clouds(got)["cloud_fraction"] > 0.02

    def near(result: pipeline.SceneResult, row: float, col: float) -> list[float]:
        out = []
        for d in result.detections:
            c = d.geometry.centroid
            # scene pixel of the centroid (EPSG:3857 transform of write_ship_scene, 10 m)
            x, y = ~pipeline.open_scene(clear).grid.transform @ _merc(c.x, c.y)
            if abs(y - row) < 45 and abs(x - col) < 45:
                out.append(d.measures.get("cloud_fraction", -1.0))
        return out

    assert near(base, 190, 150), "the clear scene's vessel must be found"
    assert near(got, 190, 150) == [], "no ship alarm under the cloud"
    assert near(got, 60, 200), "the vessel in the clear part is still found"
    assert all(d.measures["cloud_fraction"] < 0.5 for d in got.detections)


def _merc(lon: float, lat: float) -> tuple[float, float]:
    from rasterio.warp import transform

    xs, ys = transform("EPSG:4326", "EPSG:3857", [lon], [lat])
    return xs[0], ys[0]


def test_tampered_cloud_model_is_rejected(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models, ignore=shutil.ignore_patterns("*.py"))
    target = models / "cloud_student.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    strict = Settings(models_dir=models, robustness=RobustnessSettings(golden_fallback=False))
    with pytest.raises(ModelError, match="sha256"):
        pipeline.run_scene(SAMPLES / "sen2ships_honolulu", strict)
    # with the golden copy, the run goes on and says so
    result = pipeline.run_scene(SAMPLES / "sen2ships_honolulu", Settings(models_dir=models))
    events = [e["event"] for e in result.info["model_events"]]
    assert "golden_fallback" in events


def test_cloud_classes_hardly_depend_on_the_tiling() -> None:
    """Blocks are aligned to the scene grid; only the network's far context differs between
    tilings (the default context keeps that under 0.1 % of the pixels; 960 m removes it)."""
    scene = SAMPLES / "s2_l1c_virginia_crop"
    whole = pipeline.run_scene(scene, Settings(detectors=("clouds",), tile_size=512))
    small = pipeline.run_scene(scene, Settings(detectors=("clouds",), tile_size=128))
    wide = pipeline.run_scene(scene, Settings(detectors=("clouds",), tile_size=128, overlap=96))
    differ = np.count_nonzero(small.sky_map.classes != whole.sky_map.classes)
    assert differ <= 0.001 * whole.sky_map.classes.size
    assert np.array_equal(wide.sky_map.classes, whole.sky_map.classes)


def test_cloudy_scene_downlinks_only_its_manifest_and_a_one_line_report(tmp_path: Path) -> None:
    from ground_decoder import decode_stream

    from .conftest import run_cli

    scene = _overcast(tmp_path, "6-band L1C")
    out = tmp_path / "out"
    proc = run_cli("run", scene, "--out", out, "--no-llm", "--quicklook", "--chips")
    assert proc.returncode == 0, proc.stderr
    d = out / scene.name
    run = json.loads((d / "run.json").read_text())
    by_kind = run["downlink"]["bytes_by_kind"]
    assert by_kind["manifest"] > 0 and by_kind["report"] > 0
    assert by_kind["detections"] == by_kind["chip"] == by_kind["quicklook"] == 0
    assert run["classes"]["fire"]["status"] == "not checked"
    assert run["classes"]["fire"]["reason"] == "under cloud" and run["outcome"] == "complete"
    assert run["clouds"]["cloud_fraction"] >= 0.9
    text = (d / "report.txt").read_text()
    assert "% cloud" in text and "no fire clusters found" not in text and "\n" not in text.strip()
    decoded = decode_stream((d / "downlink.bin").read_bytes())
    assert decoded.ok and decoded.clouds is not None and decoded.clouds[0] >= 0.9
    assert decoded.geojson is None and decoded.quicklook is None


def test_cloud_fraction_travels_into_every_product(tmp_path: Path) -> None:
    """A partly cloudy scene: run.json, the report, compact.geojson and the manifest all give
    the cloud fraction, and "none found" says it holds for the clear part."""
    from ground_decoder import decode_stream

    from .conftest import run_cli

    scene = generate_scene(tmp_path / "l1c", 384, n_fires=0, seed=4)
    roles = {b: r for b, r in L1C_ROLES.items() if (scene / f"{b}.tif").exists()}
    paint_cloud(scene, roles, 1e-4, (150, 150), 110)
    out = tmp_path / "out"
    proc = run_cli("run", scene, "--out", out, "--no-llm")
    assert proc.returncode == 0, proc.stderr
    d = out / scene.name
    run = json.loads((d / "run.json").read_text())
    cf = run["clouds"]["cloud_fraction"]
    assert 0.05 < cf < 0.9
    compact = json.loads((d / "compact.geojson").read_text())
    assert compact["eotriage"]["clouds"]["cloud_fraction"] == cf
    text = (d / "report.txt").read_text()
    assert f"{round(cf * 100)} % cloud" in text or f"{cf * 100:.1f} % cloud" in text, text
    # "none found" holds for the clear part only (the fire detector found none; the ship
    # segmenter may find a false vessel on the synthetic coast, so its phrase is not used)
    assert "no fire clusters found in the clear part" in text, text
    decoded = decode_stream((d / "downlink.bin").read_bytes())
    assert decoded.clouds is not None and decoded.clouds[0] == pytest.approx(cf, abs=1e-3)


LANDSAT_CLEAR = {"B2": 0.06, "B3": 0.08, "B4": 0.06, "B5": 0.32, "B6": 0.17, "B7": 0.09}


def _landsat_scene(path: Path, seed: int) -> Path:
    """A 192 x 192 px Landsat 8 Collection 2 L1 scene at 30 m (B2-B7, DN = (TOA + 0.1) / 2e-5):
    vegetated land with texture."""
    from affine import Affine

    from .conftest import write_tif

    path.mkdir()
    rng = np.random.default_rng(seed)
    texture = rng.normal(1.0, 0.15, (192, 192))
    for band, refl in LANDSAT_CLEAR.items():
        dn = ((refl * texture).clip(0.01, 1.0) + 0.1) / 2e-5
        write_tif(path / f"LC08_L1TP_014034_20230601_20230607_02_T1_{band}.tif",
                  [dn.astype(np.uint16)],
                  transform=Affine(30.0, 0, 600_000.0, 0, -30.0, 4_000_000.0))  # fmt: skip
    return path


def test_landsat_scene_is_screened_with_the_six_band_model(tmp_path: Path) -> None:
    """The landsat8-oli profile: B2-B7 feed the 6-band path; a clear scene is clear and the
    same scene under overcast is cloud."""
    clear = _landsat_scene(tmp_path / "clear", 1)
    scene = pipeline.open_scene(clear)
    assert scene.profile.name == "landsat8-oli", scene.sensor_reason
    from pipeline.detectors.clouds import CloudScreen

    assert CloudScreen(Settings()).band_names(scene) == ["B2", "B3", "B4", "B5", "B6", "B7"]
    result = pipeline.run_scene(clear, Settings(detectors=("clouds",)))
    assert result.detectors["clouds"] == "ran"
    assert clouds(result)["cloud_fraction"] <= 0.05
    overcast = shutil.copytree(clear, tmp_path / "overcast")
    roles = {b.name: b.role for b in PROFILES["landsat8-oli"].bands if b.name in LANDSAT_CLEAR}
    for band in LANDSAT_CLEAR:  # paint_cloud names files <band>.tif
        (overcast / f"LC08_L1TP_014034_20230601_20230607_02_T1_{band}.tif").rename(
            overcast / f"{band}.tif"
        )
    paint_cloud(overcast, roles, 2e-5, (0, 0), float("inf"), offset=-5000.0)
    for band in LANDSAT_CLEAR:
        (overcast / f"{band}.tif").rename(
            overcast / f"LC08_L1TP_014034_20230601_20230607_02_T1_{band}.tif"
        )
    result = pipeline.run_scene(overcast, Settings(detectors=("clouds",)))
    assert clouds(result)["cloud_fraction"] >= 0.9, clouds(result)
