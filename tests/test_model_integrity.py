"""Model integrity (issue 8): golden copies of the models and dual execution of the detectors.

Real ONNX sessions on real sample scenes; corruption is a flipped byte in a copied models dir,
compute faults are injected through ``OnnxModel.fault_hook`` (the documented test seam).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline._fsio import sha256_file
from pipeline.core.engine import run_scene
from pipeline.core.onnx_models import OnnxModel, get_model, load_manifest
from pipeline.core.results import SceneResult
from pipeline.detectors.crop import GRAPH_THRESHOLDS
from pipeline.errors import ComputeFaultError, ModelError, TileError
from pipeline.settings import CropSettings, RobustnessSettings, Settings

from .conftest import REPO, SAMPLES

MODELS = REPO / "models"
CROP_SCENE = SAMPLES / "s2_l1c_virginia_crop"
SHIP_SCENE = SAMPLES / "sen2ships_casablanca"
FIRE_SCENE = SAMPLES / "s2_fire_G90292"
#: (scene, detector, model the detector loads first, tile size giving several tiles)
CASES = [
    (FIRE_SCENE, "fire", "fire_swir", 256),
    (CROP_SCENE, "crop", "crop_stress", 256),
    (SHIP_SCENE, "ships", "ship_segmenter", 256),
]
DUAL = RobustnessSettings(dual_execution=True)
#: crop stress needs a cropland layer: the hand-drawn parcels of the Virginia sample
PARCELS = CropSettings(layers=(str(CROP_SCENE / "parcels.geojson"),))


def _models_copy(tmp_path: Path) -> Path:
    """A private models dir (own cache entries, so fault hooks never leak into other tests)."""
    d = tmp_path / "models"
    shutil.copytree(MODELS, d, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return d


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _features(result: SceneResult) -> list[dict[str, Any]]:
    return [d.to_feature() for d in result.detections]


def _dual_settings(tmp_path: Path, detector: str, tile_size: int) -> Settings:
    """One detector with dual execution, on a private copy of the models (fault hooks stay in
    this test's model cache)."""
    return Settings(
        detectors=(detector,),
        tile_size=tile_size,
        models_dir=_models_copy(tmp_path),
        robustness=DUAL,
        crop=PARCELS,
    )


def _model_of(settings: Settings, name: str) -> OnnxModel:
    """The cached model object a detector built from ``settings`` uses."""
    return get_model(
        name, settings.models_dir, settings.threads, settings.providers, settings.robustness
    )


# --------------------------------------------------------------------------- golden copies


def test_every_manifest_model_has_a_golden_copy() -> None:
    """Every model this project builds; the cloud teacher comes from its PyPI package, whose
    files are checked against the manifest's sha256 when loaded."""
    for info in load_manifest(MODELS).values():
        if "package" in info.raw:
            continue
        golden = MODELS / "golden" / info.path.relative_to(MODELS)
        assert golden.is_file(), f"{golden} missing: rebuild the model with its models/ script"
        assert sha256_file(golden) == info.sha256, golden
        assert golden.read_bytes() == info.path.read_bytes()


def test_write_model_writes_the_golden_copy(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("model_io", MODELS / "model_io.py")
    assert spec is not None and spec.loader is not None
    model_io = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_io)
    data = (MODELS / "fire_swir.onnx").read_bytes()
    onnx_path, manifest_path = model_io.write_model(
        tmp_path, "m", data, {"file": "m.onnx", "version": "1"}
    )
    assert onnx_path.read_bytes() == data == (tmp_path / "golden" / "m.onnx").read_bytes()
    assert load_manifest(tmp_path)["m"].sha256 == sha256_file(tmp_path / "golden" / "m.onnx")


@pytest.mark.parametrize(("scene", "detector", "model", "tile_size"), CASES)
def test_corrupt_primary_falls_back_to_golden(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    scene: Path,
    detector: str,
    model: str,
    tile_size: int,
) -> None:
    clean = run_scene(scene, Settings(detectors=(detector,), tile_size=tile_size, crop=PARCELS))
    d = _models_copy(tmp_path)
    primary = load_manifest(d)[model].path
    _flip_byte(primary)
    settings = Settings(detectors=(detector,), tile_size=tile_size, models_dir=d, crop=PARCELS)
    with caplog.at_level(logging.WARNING, logger="pipeline.core.onnx_models"):
        result = run_scene(scene, settings)
    assert result.ok and not result.failures
    assert clean.detections and _features(result) == _features(clean)
    m = _model_of(settings, model)
    assert m.path == d.resolve() / "golden" / primary.name
    assert m.events == [
        {
            "event": "golden_fallback",
            "model": model,
            "version": m.info.version,
            "cause": m.events[0]["cause"],
            "primary": str(d.resolve() / primary.name),
            "path": str(m.path),
        }
    ]
    assert "sha256 mismatch" in m.events[0]["cause"]
    assert any("golden copy" in r.getMessage() for r in caplog.records)
    assert (d / primary.name).read_bytes() != (d / "golden" / primary.name).read_bytes()


def test_missing_primary_falls_back_and_custom_golden_dir(tmp_path: Path) -> None:
    d = _models_copy(tmp_path)
    elsewhere = tmp_path / "spare"
    shutil.move(d / "golden", elsewhere)
    (d / "fire_swir.onnx").unlink()
    m = get_model("fire_swir", d, robustness=RobustnessSettings(golden_dir=elsewhere))
    assert m.path == elsewhere.resolve() / "fire_swir.onnx"
    assert "not found" in m.events[0]["cause"]
    # and the model runs: the screen pass of a 2-pixel image with one hot pixel
    out = m.run(_fire_feeds(m, np.array([[0.9, 0.05]], np.float32)))
    assert out[0].ravel().tolist() == [1, 0]


def test_corrupt_primary_and_golden_is_refused_naming_both(tmp_path: Path) -> None:
    d = _models_copy(tmp_path)
    _flip_byte(d / "crop_stress.onnx")
    _flip_byte(d / "golden" / "crop_stress.onnx")
    with pytest.raises(ModelError) as err:
        run_scene(CROP_SCENE, Settings(detectors=("crop",), models_dir=d))
    msg = str(err.value)
    assert str(d / "crop_stress.onnx") in msg and str(d / "golden" / "crop_stress.onnx") in msg
    assert msg.count("sha256 mismatch") == 2


def test_unloadable_primary_and_absent_golden(tmp_path: Path) -> None:
    """A file that matches the manifest but onnxruntime cannot load, and no golden copy."""
    d = _models_copy(tmp_path)
    shutil.rmtree(d / "golden")
    (d / "fire_swir.onnx").write_bytes(b"not an onnx graph")
    info = load_manifest(d)["fire_swir"]
    info = type(info)(**{**info.__dict__, "sha256": sha256_file(info.path)})
    with pytest.raises(ModelError, match="onnxruntime cannot load model.*golden copy.*not found"):
        OnnxModel(info, golden_path=d / "golden" / "fire_swir.onnx")


def test_golden_fallback_off_refuses(tmp_path: Path) -> None:
    d = _models_copy(tmp_path)
    _flip_byte(d / "crop_stress.onnx")
    off = RobustnessSettings(golden_fallback=False)
    with pytest.raises(ModelError, match="sha256 mismatch") as err:
        run_scene(CROP_SCENE, Settings(detectors=("crop",), models_dir=d, robustness=off))
    assert "golden copy" not in str(err.value) and "refusing" in str(err.value)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        get_model("crop_stress", d)  # no robustness settings: strict, as before


def test_cache_key_includes_robustness(tmp_path: Path) -> None:
    d = _models_copy(tmp_path)
    plain = get_model("fire_swir", d)
    assert get_model("fire_swir", d, robustness=RobustnessSettings()) is get_model(
        "fire_swir", d, robustness=RobustnessSettings(max_reflectance=3.0)
    )
    dual = get_model("fire_swir", d, robustness=DUAL)
    assert dual is not plain and dual.dual_execution and not plain.dual_execution
    assert dual is get_model("fire_swir", d, robustness=DUAL)


# --------------------------------------------------------------------------- dual execution


def _fire_feeds(model: OnnxModel, swir22: np.ndarray) -> dict[str, np.ndarray]:
    img = swir22[None, None]
    feeds = {
        "swir22": img,
        "swir16": np.full_like(img, 0.1),
        "valid": np.ones_like(img),
        "radius": np.array([1], np.int64),
        "context": np.array([False]),
    }
    feeds.update({k: np.array([v], np.float32) for k, v in model.info.thresholds.items()})
    return feeds


def _flip(outputs: list[np.ndarray], delta: int) -> list[np.ndarray]:
    """A silent fault: the first element of the first output changed by ``delta``."""
    out = [o.copy() for o in outputs]
    flat = out[0].reshape(-1)
    flat[0] = flat[0] + delta
    return out


@pytest.mark.parametrize(("scene", "detector", "model", "tile_size"), CASES)
def test_dual_execution_gives_the_same_detections(
    tmp_path: Path, scene: Path, detector: str, model: str, tile_size: int
) -> None:
    single = run_scene(scene, Settings(detectors=(detector,), tile_size=tile_size, crop=PARCELS))
    settings = _dual_settings(tmp_path, detector, tile_size)
    dual = run_scene(scene, settings)
    assert single.detections and _features(dual) == _features(single)
    m = _model_of(settings, model)
    assert m.runs >= single.tiles_total > 1
    assert m.dual_mismatches == 0 and m.events == []


@pytest.mark.parametrize(("scene", "detector", "model", "tile_size"), CASES)
def test_one_off_fault_is_corrected(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    scene: Path,
    detector: str,
    model: str,
    tile_size: int,
) -> None:
    clean = run_scene(scene, Settings(detectors=(detector,), tile_size=tile_size, crop=PARCELS))
    settings = _dual_settings(tmp_path, detector, tile_size)
    m = _model_of(settings, model)
    # the second execution of the first call returns a wrong value
    m.fault_hook = lambda call, attempt, out: _flip(out, 1) if (call, attempt) == (0, 1) else out
    with caplog.at_level(logging.WARNING, logger="pipeline.core.onnx_models"):
        result = run_scene(scene, settings)
    assert not result.failures and _features(result) == _features(clean)
    assert m.dual_mismatches == 1
    assert m.events == [
        {
            "event": "compute_fault_corrected",
            "model": model,
            "call": 0,
            "faulty_execution": 1,
            "outputs": [m.output_names[0]],
        }
    ]
    assert any("corrected" in r.getMessage() for r in caplog.records)


def test_persistent_divergent_fault_fails_the_tile_only(tmp_path: Path) -> None:
    """Every execution of the first tile's model call differs: that tile is recorded as failed
    (ComputeFaultError), and every detection that does not touch it is kept."""
    clean = run_scene(SHIP_SCENE, Settings(detectors=("ships",), tile_size=256))
    settings = _dual_settings(tmp_path, "ships", 256)
    m = _model_of(settings, "ship_segmenter")
    m.fault_hook = lambda call, attempt, out: _flip(out, attempt + 1) if call == 0 else out
    result = run_scene(SHIP_SCENE, settings)
    assert [f.tile_id for f in result.failures] == ["r000c000"]
    assert "silent compute fault" in result.failures[0].cause
    assert m.compute_faults == 1 and m.events[0]["event"] == "compute_fault_unresolved"
    kept = _features(result)
    others = [f for f in _features(clean) if "r000c000" not in f["properties"]["tiles"]]
    assert others and all(f in kept for f in others)
    assert len(kept) < len(_features(clean))


def test_compute_fault_error_is_a_tile_error(tmp_path: Path) -> None:
    m = get_model("fire_swir", _models_copy(tmp_path), robustness=DUAL)
    feeds = _fire_feeds(m, np.array([[0.9, 0.05]], np.float32))
    m.fault_hook = lambda call, attempt, out: _flip(out, attempt + 1)
    with pytest.raises(ComputeFaultError, match="'fire_swir'.*three different") as err:
        m.run(feeds)
    assert isinstance(err.value, TileError)
    m.fault_hook = None
    assert m.run(feeds)[0].ravel().tolist() == [1, 0]
    assert (m.runs, m.dual_mismatches, m.compute_faults) == (2, 1, 1)


def test_single_execution_lets_a_silent_fault_through(tmp_path: Path) -> None:
    """Why dual execution exists: without it the injected fault reaches the output unseen."""
    m = get_model("fire_swir", _models_copy(tmp_path), robustness=RobustnessSettings())
    m.fault_hook = lambda call, attempt, out: _flip(out, 1)
    out = m.run(_fire_feeds(m, np.array([[0.9, 0.05]], np.float32)))
    assert out[0].ravel().tolist() == [2, 0] and m.events == [] and m.dual_mismatches == 0


def test_nan_outputs_compare_equal(tmp_path: Path) -> None:
    """Outputs holding NaN (e.g. indices over invalid pixels) must not count as a mismatch."""
    m = get_model("crop_stress", _models_copy(tmp_path), robustness=DUAL)
    one = np.ones((1, 1, 1, 1), np.float32)
    feeds = {
        "red": np.array([[[[np.nan, 0.05], [0.05, 0.05]]]], np.float32),
        "nir": np.array([[[[0.3, np.nan], [0.3, 0.3]]]], np.float32),
        "valid": one,
        "clear": one,
        "green": np.zeros((1, 1, 1, 1), np.float32),
        "rededge1": np.zeros((1, 1, 1, 1), np.float32),
        "nir08": np.zeros((1, 1, 1, 1), np.float32),
        "swir16": np.zeros((1, 1, 1, 1), np.float32),
        "use_ndre": np.array([0.0], np.float32),
        "use_swir": np.array([0.0], np.float32),
    }
    feeds.update({k: np.array([m.info.thresholds[k]], np.float32) for k in GRAPH_THRESHOLDS})
    out = m.run(feeds)
    assert any(np.isnan(o).any() for o in out if o.dtype.kind == "f")
    assert m.dual_mismatches == 0 and m.events == []


def test_events_per_scene_and_bounded(tmp_path: Path) -> None:
    """A cached model serves many scenes: events_since(mark) gives one scene's share (plus the
    load event), and run-time events stay bounded while the golden fallback is never dropped."""
    from pipeline.core.onnx_models import MAX_EVENTS

    d = _models_copy(tmp_path)
    _flip_byte(d / "fire_swir.onnx")
    m = get_model("fire_swir", d, robustness=DUAL)
    feeds = _fire_feeds(m, np.array([[0.9, 0.05]], np.float32))
    m.fault_hook = lambda call, attempt, out: _flip(out, 1) if attempt == 1 else out
    for _ in range(3):
        m.run(feeds)
    mark = m.event_mark()
    m.run(feeds)
    since = m.events_since(mark)
    assert [e["event"] for e in since] == ["golden_fallback", "compute_fault_corrected"]
    assert since[1]["call"] == 3
    assert [e["event"] for e in m.events_since(m.event_mark())] == ["golden_fallback"]
    for _ in range(MAX_EVENTS + 6):
        m.run(feeds)
    assert len(m.events) == MAX_EVENTS + 1 and m.events[0]["event"] == "golden_fallback"
    assert m.events_dropped == 10 and m.events[-1]["call"] == m.runs - 1
    assert len(m.events_since(0)) == MAX_EVENTS + 1


def test_output_comparison_rules() -> None:
    """Bit-identical or equal by value (NaN payloads, signed zero) is the same result; any other
    value, dtype or shape difference is a mismatch."""
    from pipeline.core.onnx_models import _same_outputs

    nan_a = np.array([1.0, np.nan], np.float32)
    nan_b = nan_a.copy()
    nan_b.view(np.uint32)[1] ^= 1  # another NaN payload
    assert np.isnan(nan_b[1]) and nan_a.tobytes() != nan_b.tobytes()
    assert _same_outputs([nan_a], [nan_b])
    assert _same_outputs([np.zeros(2, np.float32)], [-np.zeros(2, np.float32)])
    grid = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert _same_outputs([grid.T], [grid.T.copy()])
    assert not _same_outputs([np.array([1.0, 2.0])], [np.array([1.0, 2.0000001])])
    assert not _same_outputs([grid], [grid.astype(np.int64)])
    assert not _same_outputs([grid], [grid.reshape(3, 2)])
    assert not _same_outputs([grid], [grid, grid])
