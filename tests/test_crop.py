"""Crop stress: only inside a cropland layer, judged against the field's own history and the
other fields of the scene; synthetic series with truth, real Virginia data, uplinked layers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline import Settings, open_scene, run_scene
from pipeline.core.results import SceneResult
from pipeline.detectors.crop import CropDetector, judge
from pipeline.detectors.crop_history import (
    RECORD,
    ParcelHistory,
    add_pass,
    parcel_key,
    reference,
)
from pipeline.detectors.crop_layers import LabelCache, ParcelLayer, RasterLayer, load_layer
from pipeline.errors import ConfigError, InputError, ModelError
from pipeline.evaluation.crop import (
    evaluate_scene,
    evaluate_series,
    layer_mask,
    run_series,
    series_settings,
)
from pipeline.settings import CropSettings
from pipeline.testing.synthetic_crops import generate_crop_series, series_scenes

from .conftest import REPO, SAMPLES, run_cli

CROP = ("crop",)
VIRGINIA = SAMPLES / "s2_l1c_virginia_crop"
PARCELS = VIRGINIA / "parcels.geojson"
TH = {
    "drop_min": 0.15,
    "drop_severe": 0.3,
    "ndmi_drop_min": 0.15,
    "confirm_min": 0.05,
    "z_min": 2.0,
    "scene_drop_min": 0.1,
    "growth_min": 0.05,
}


def _settings(**crop: Any) -> Settings:
    tile = crop.pop("tile_size", 1024)
    return Settings(detectors=CROP, tile_size=tile, crop=CropSettings(**crop))


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """480 x 480 px, 10 dates 10 days apart; clouds: 35 % on date 2, all of date 6."""
    return generate_crop_series(
        tmp_path_factory.mktemp("crops") / "series",
        480,
        seed=4,
        n_dates=10,
        cloudy={2: 0.35, 6: 1.0},
        stressed_share=0.25,
    )


@pytest.fixture(scope="module")
def truth(series: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((series / "truth.json").read_text())
    return data


@pytest.fixture(scope="module")
def history_run(
    series: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[SceneResult], Path]:
    """Every date of the series run in order with one history folder (parcels layer)."""
    hist = tmp_path_factory.mktemp("history")
    return run_series(series, Settings(), "parcels", hist), hist


def _by_date(results: list[SceneResult], k: int) -> dict[str, dict[str, Any]]:
    return {str(d.measures["parcel_id"]): dict(d.measures) for d in results[k].detections}


# --------------------------------------------------------------------------- no layer


@pytest.mark.parametrize(
    "name", ["s2_l1c_virginia_crop", "sen2ships_honolulu", "sen2ships_casablanca"]
)
def test_no_layer_skipped_with_reason(name: str) -> None:
    result = run_scene(SAMPLES / name, Settings(detectors=CROP))
    assert result.detectors == {"crop": "skipped: no cropland layer covers this scene"}
    assert result.detections == () and result.ok


def test_layer_elsewhere_is_no_layer() -> None:
    """The Virginia parcels do not cover Honolulu: crop is skipped there, runs on Virginia."""
    s = _settings(layers=(str(PARCELS),))
    assert (
        run_scene(SAMPLES / "sen2ships_honolulu", s)
        .detectors["crop"]
        .startswith("skipped: no cropland layer")
    )
    assert run_scene(VIRGINIA, s).detectors["crop"] == "ran"


def test_other_detectors_still_run_without_layer() -> None:
    result = run_scene(VIRGINIA, Settings(detectors=("fire", "crop")))
    assert result.detectors["fire"] == "ran"
    assert result.detectors["crop"].startswith("skipped: ")


# --------------------------------------------------------------------------- references


def _ref(best: list[float], low: list[float] | None = None, passes: int = 3) -> Any:
    recs = np.zeros(len(best), RECORD)
    for i, (b, lo) in enumerate(zip(best, low or best, strict=True)):
        recs[i] = add_pass(recs[i : i + 1], 100, np.array([lo]), np.array([0.3]))[0]
        recs[i] = add_pass(recs[i : i + 1], 110, np.array([b]), np.array([0.3]))[0]
    return reference(recs, 120, 60)


def test_first_visit_only_the_scene_reference() -> None:
    ndvi = np.array([0.8, 0.79, 0.81, 0.8, 0.78, 0.82, 0.8, 0.8, 0.45, 0.8])
    v = judge(ndvi, np.full(10, 0.3), None, TH, 1, 8)
    assert v.stressed.tolist() == [False] * 8 + [True, False]
    assert not v.by_history.any() and v.by_scene[8]
    assert v.passes.tolist() == [0] * 10 and np.isnan(v.expected).all()


def test_history_reference_sees_a_regional_drop() -> None:
    """Every field drops 0.25 below its own best: no field stands out from the others, but
    each is worse than it was (a regional drought): the history reference fires alone."""
    best = [0.8, 0.79, 0.81, 0.8, 0.78, 0.82, 0.8, 0.77, 0.8, 0.8]
    ndvi = np.array(best) - 0.25
    v = judge(ndvi, np.full(10, 0.1), _ref(best), TH, 1, 8)
    assert v.by_history.all() and not v.by_scene.any()
    assert np.allclose(v.drop_history, 0.25, atol=0.011)


def test_permanently_sparse_field_is_not_stressed_by_its_history() -> None:
    """A field always at NDVI 0.25 (scrub-like) has no drop against its own history."""
    best = [0.25] + [0.8] * 9
    ndvi = np.array([0.25] + [0.8] * 9)
    v = judge(ndvi, np.full(10, 0.3), _ref(best), TH, 1, 8)
    assert not v.by_history[0] and v.vci[0] == pytest.approx(0.5)  # its usual value


def test_late_sown_field_is_growing_not_stressed() -> None:
    """Far below the others but rising fast against its own history: no stress."""
    best = [0.2] + [0.6] * 9
    ndvi = np.array([0.4] + [0.75] * 9)
    v = judge(ndvi, np.full(10, 0.3), _ref(best), TH, 1, 8)
    assert not v.stressed[0]
    assert not judge(ndvi, np.full(10, 0.3), None, TH, 1, 8).stressed[1:].any()


def test_each_index_confirms_the_other() -> None:
    """An NDVI drop needs an NDMI drop to confirm it; an NDMI drop (water stress shows there
    first) raises stress with a smaller NDVI drop."""
    best = [0.8] * 10
    ndvi = np.array([0.6] + [0.8] * 9)
    wet = judge(ndvi, np.array([0.3] + [0.3] * 9), _ref(best), TH, 1, 8)
    dry = judge(ndvi, np.array([0.1] + [0.3] * 9), _ref(best), TH, 1, 8)
    assert not wet.by_history[0] and dry.by_history[0]
    slight = np.array([0.72] + [0.8] * 9)  # NDVI only 0.08 down, NDMI 0.2 down
    assert judge(slight, np.array([0.1] + [0.3] * 9), _ref(best), TH, 1, 8).by_history[0]
    assert not judge(slight, np.array([0.3] + [0.3] * 9), _ref(best), TH, 1, 8).stressed[0]


# --------------------------------------------------------------------------- history store


def test_history_replaces_a_day_and_keeps_the_last_passes() -> None:
    recs = np.zeros(1, RECORD)
    for day in range(1, 13):
        recs = add_pass(recs, day * 10, np.array([day / 20]), np.array([0.1]))
    recs = add_pass(recs, 120, np.array([0.9]), np.array([0.1]))  # the same day again
    assert int(recs["n"][0]) == 12
    assert sorted(recs["day"][0].tolist()) == list(range(50, 121, 10))
    ref = reference(recs, 121, 1000)
    assert ref.best_ndvi[0] == pytest.approx(0.9) and ref.passes[0] == 8
    assert reference(recs, 120, 1000).passes[0] == 7  # a pass is never its own reference


def _reference_by_argmax(recs: np.ndarray, day: int, window: float) -> tuple[np.ndarray, ...]:
    """The history reference written with argmax over the slots (the slot-by-slot code must
    pick the same pass)."""
    days = recs["day"]
    use = (days > 0) & (days < day) & (days >= day - window)
    q = recs["ndvi"].astype(np.int16)
    best_i = np.argmax(np.where(use, q, -200), axis=-1)[..., None]
    best = np.take_along_axis(q, best_i, -1)[..., 0]
    low = np.where(use, q, 200).min(axis=-1)
    ndmi = np.take_along_axis(recs["ndmi"], best_i, -1)[..., 0]
    has = use.sum(axis=-1) > 0
    ndmi_v = np.where(ndmi == -128, np.nan, ndmi * 0.01)
    return (
        use.sum(axis=-1),
        np.where(has, best * 0.01, np.nan),
        np.where(has, low * 0.01, np.nan),
        np.where(has, ndmi_v, np.nan),
    )


def _slot_by_argmax(recs: np.ndarray, day: int) -> np.ndarray:
    days = recs["day"].astype(np.int64)
    same = days == day
    return np.where(same.any(axis=-1), np.argmax(same, axis=-1), np.argmin(days, axis=-1))


def test_history_slots_as_argmax_picks_them() -> None:
    """Random records with ties, empty slots and repeated days: the reference (best, lowest,
    NDMI of the best pass, passes) and the slot a pass is written to are the ones argmax and
    argmin over the slots give (first of equals)."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(0, 300))
        recs = np.zeros(n, RECORD)
        recs["day"] = rng.choice([0, 0, 9000, 9010, 9020, 9030, 9050, 65535], (n, 8))
        recs["ndvi"] = rng.integers(-128, 128, (n, 8))
        recs["ndmi"] = rng.integers(-128, 128, (n, 8))
        recs["n"] = rng.integers(0, 65535, n)
        day = int(rng.choice([9000, 9030, 9060]))
        window = float(rng.choice([20, 60, 60.5]))
        ref = reference(recs, day, window)
        got = (ref.passes, ref.best_ndvi, ref.low_ndvi, ref.best_ndmi)
        for a, b in zip(got, _reference_by_argmax(recs, day, window), strict=True):
            np.testing.assert_array_equal(a, b)
        out = add_pass(recs, day, rng.uniform(-1, 1, n), rng.uniform(-1, 1, n))
        slot = _slot_by_argmax(recs, day)
        assert (out["day"][np.arange(n), slot] == day).all()
        others = np.ones((n, 8), bool)
        others[np.arange(n), slot] = False
        assert (out["day"][others] == recs["day"][others]).all()


def test_history_costs_under_1_mb_per_10000_parcels(tmp_path: Path) -> None:
    ids = [f"FR-2024-{i:08d}" for i in range(10_000)]
    keys = np.array([parcel_key(p) for p in ids], np.uint64)
    recs = np.zeros(len(ids), RECORD)
    rng = np.random.default_rng(0)
    for day in range(100, 190, 10):
        recs = add_pass(recs, day, rng.uniform(0, 1, len(ids)), rng.uniform(-0.5, 0.5, len(ids)))
    hist = ParcelHistory(tmp_path, "lpis")
    hist.save(keys, recs)
    assert hist.nbytes <= 1_000_000, hist.nbytes
    back = ParcelHistory(tmp_path, "lpis").records(keys[::-1])
    assert (back == recs[::-1]).all()


# --------------------------------------------------------------------------- series


def test_first_visit_has_no_history(series: Path, truth: dict[str, Any], tmp_path: Path) -> None:
    """A date with stressed parcels run on an empty history: the scene reference finds them,
    the history reference is silent and every feature says 0 passes."""
    k = max(d["index"] for d in truth["dates"] if d["cloud_cover"] == 0)
    s = series_settings(series, Settings(), "parcels", tmp_path / "h")
    result = run_scene(series_scenes(series)[k], s)
    assert result.detections
    for d in result.detections:
        assert d.measures["reference"] == "scene" and d.measures["history_passes"] == 0
        assert "expected_ndvi" not in d.measures


def test_tenth_visit_uses_the_history(
    truth: dict[str, Any], history_run: tuple[list[SceneResult], Path]
) -> None:
    results, hist = history_run
    tenth = results[9]
    stressed = {p["id"] for p in truth["parcels"] if p["stress_from"] is not None}
    assert tenth.detections
    assert {str(d.measures["parcel_id"]) for d in tenth.detections} <= stressed
    for d in tenth.detections:
        # clear passes within the 60 days before the tenth date (dates 3-8, one all cloud)
        assert 4 <= int(d.measures["history_passes"]) <= 5
        assert "history" in str(d.measures["reference"])
        assert float(d.measures["expected_ndvi"]) > float(d.measures["mean_ndvi"])
    recs = ParcelHistory(hist, "parcels").records(
        np.array([parcel_key(p["id"]) for p in truth["parcels"]], np.uint64)
    )
    # 10 dates, one of them all cloud: 9 clear passes for parcels clear on date 2
    assert int(recs["n"].max()) == 9


def test_cloudy_visits(
    series: Path, truth: dict[str, Any], history_run: tuple[list[SceneResult], Path]
) -> None:
    """All cloud: no feature and no history written; partly cloudy: nothing on hidden
    parcels."""
    results, _ = history_run
    assert results[6].detections == ()
    hidden = {p for p, c in truth["dates"][2]["clear_share"].items() if c < 0.5}
    assert hidden
    assert not hidden & set(_by_date(results, 2))
    ev = evaluate_series(series, results)
    assert ev.cloudy_false == 0 and ev.to_dict()["on_hidden"] == 0


def test_parcel_that_recovers(
    truth: dict[str, Any], history_run: tuple[list[SceneResult], Path]
) -> None:
    results, _ = history_run
    rec = [p for p in truth["parcels"] if p["stress_until"] is not None]
    assert rec, "the series should hold a recovering parcel"
    for p in rec:
        clear = [d["index"] for d in truth["dates"] if d["clear_share"][p["id"]] >= 0.5]
        during = [k for k in clear if p["stress_from"] <= k < p["stress_until"]]
        after = [k for k in clear if k >= p["stress_until"]]
        assert during and after
        assert all(p["id"] in _by_date(results, k) for k in during)
        assert not any(p["id"] in _by_date(results, k) for k in after)


def test_series_targets(series: Path, history_run: tuple[list[SceneResult], Path]) -> None:
    results, _ = history_run
    ev = evaluate_series(series, results)
    d = ev.to_dict()
    assert ev.parcel_recall >= 0.95 and ev.precision >= 0.95, d
    assert d["noncrop_px"] == 0 and d["cloudy_false"] == 0 and d["on_hidden"] == 0
    assert abs(ev.area_error) < 0.10, d
    refs = set(d["by_reference"])
    assert any("history" in r for r in refs) and any("scene" in r for r in refs)


def test_feature_measures(history_run: tuple[list[SceneResult], Path]) -> None:
    results, _ = history_run
    feats = [d for r in results for d in r.detections]
    assert feats
    for d in feats:
        m = d.measures
        assert d.cls == "crop_stress" and 0.5 <= d.score <= 1.0
        for k in ("parcel_id", "area_km2", "mean_ndvi", "mean_ndmi", "reference", "drop"):
            assert k in m, k
        assert m["severity"] in ("moderate", "severe")
        assert int(m["history_passes"]) >= 0 and float(m["drop"]) >= 0.1
        assert float(m["area_km2"]) == pytest.approx(float(m["parcel_area_km2"]), rel=0.15)
        json.dumps(m)  # plain JSON values
    assert {d.measures["severity"] for d in feats} == {"moderate", "severe"}


@pytest.mark.slow
def test_raster_layer_series(series: Path, tmp_path: Path) -> None:
    """The series' cropland raster instead of its parcels: stressed connected areas, per-unit
    history in a memory-mapped file."""
    results = run_series(series, Settings(), "raster", tmp_path)
    ev = evaluate_series(series, results, "raster")
    d = ev.to_dict()
    assert ev.parcel_recall >= 0.9 and ev.precision >= 0.9, d
    assert d["noncrop_px"] == 0 and d["cloudy_false"] == 0
    assert abs(ev.measure_error) < 0.15, d
    assert [p.name for p in tmp_path.iterdir()][0].startswith("raster-cropland-")
    ids = {str(x.measures["parcel_id"]) for r in results for x in r.detections}
    assert ids and all(i.startswith("cropland:unit") for i in ids)


@pytest.mark.parametrize(("tile_size", "overlap"), [(128, 0), (300, 16)])
def test_parcels_same_at_every_tiling(
    series: Path, tmp_path: Path, tile_size: int, overlap: int
) -> None:
    scene = series_scenes(series)[7]
    base = series_settings(series, Settings(), "parcels", tmp_path / "a")
    ref = run_scene(scene, base.replace(crop=dataclasses.replace(base.crop, history=None)))
    tiled = run_scene(
        scene,
        base.replace(
            tile_size=tile_size,
            overlap=overlap,
            crop=dataclasses.replace(base.crop, history=None),
        ),
    )

    def key(r: SceneResult) -> list[tuple[Any, ...]]:
        return sorted(
            (d.measures["parcel_id"], d.measures["cell_count"], d.measures["mean_ndvi"])
            for d in r.detections
        )

    assert ref.detections and key(tiled) == key(ref)


def test_stream_matches_file_path(series: Path) -> None:
    from .test_stream import signature, stream_scene

    scene = series_scenes(series)[7]
    s = series_settings(series, Settings(tile_size=128, overlap=32), "parcels", Path("/nonexist"))
    s = s.replace(crop=dataclasses.replace(s.crop, history=None))
    ref = run_scene(scene, s)
    got, _, _ = stream_scene(scene, s, 37)
    assert ref.detections and signature(got) == signature(ref)


def test_same_pass_twice_is_counted_once(series: Path, tmp_path: Path) -> None:
    s = series_settings(series, Settings(), "parcels", tmp_path)
    scene = series_scenes(series)[3]
    a = run_scene(scene, s)
    b = run_scene(scene, s)
    assert [d.to_feature() for d in a.detections] == [d.to_feature() for d in b.detections]
    recs = ParcelHistory(tmp_path, "parcels").table["rec"]
    assert int(recs["n"].max()) == 1


# --------------------------------------------------------------------------- real data


def test_virginia_sample_parcels() -> None:
    """The hand-drawn parcels: stress only on them, every feature is one of them."""
    layer = load_layer(PARCELS)
    assert len(layer) >= 15
    result = run_scene(VIRGINIA, _settings(layers=(str(PARCELS),)))
    assert result.detectors["crop"] == "ran" and result.detections
    scene = open_scene(VIRGINIA)
    g = scene.grid
    mask = layer_mask(PARCELS, g)
    ev = evaluate_scene(result, ((g.height, g.width), g.transform, g.crs.to_string()), mask)
    assert ev.outside_layer_px == 0 and ev.features == len(result.detections)
    assert {str(d.measures["parcel_id"]) for d in result.detections} <= set(layer.ids)
    for d in result.detections:
        assert d.measures["reference"] == "scene"  # one date: no history


def test_virginia_full_tile_no_layer(shared_data: Path) -> None:
    result = run_scene(shared_data / "s2_l1c_virginia", Settings(detectors=CROP))
    assert result.detections == ()
    assert result.detectors["crop"].startswith("skipped: no cropland layer")


# --------------------------------------------------------------------------- uplink


def test_uplinked_layer_used_for_a_later_overlapping_scene(tmp_path: Path) -> None:
    from pipeline.uplink import generate_keypair, install_bundle, sign_bundle

    key, pub = generate_keypair(tmp_path / "keys")
    bundle = sign_bundle([PARCELS], key, 1, tmp_path / "v1.eub")
    rel = install_bundle(bundle, pub, tmp_path / "payload", base_models=REPO / "models")
    crop_dir = tmp_path / "payload" / "current" / "crop"
    assert (crop_dir / "parcels.geojson").read_bytes() == PARCELS.read_bytes()
    assert rel.crop_dir is not None
    # a later release (settings only) keeps the layer
    toml = tmp_path / "s.toml"
    toml.write_text("tile_size = 512\n")
    install_bundle(sign_bundle([toml], key, 2, tmp_path / "v2.eub"), pub, tmp_path / "payload")
    assert (crop_dir / "parcels.geojson").is_file()
    s = Settings(detectors=CROP, crop=CropSettings(layers_dir=crop_dir))
    later = run_scene(VIRGINIA, s)
    assert later.detectors["crop"] == "ran" and later.detections
    assert run_scene(SAMPLES / "sen2ships_honolulu", s).detectors["crop"].startswith("skipped")


def test_bad_layer_rejected_by_uplink_and_run(tmp_path: Path) -> None:
    from pipeline.errors import UplinkError
    from pipeline.uplink import generate_keypair, sign_bundle

    bad = tmp_path / "fields.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                   '"geometry": {"type": "Point", "coordinates": [1, 2]}}]}')  # fmt: skip
    with pytest.raises(InputError, match="not a polygon"):
        load_layer(bad)
    key, _ = generate_keypair(tmp_path / "k")
    with pytest.raises(UplinkError, match="crop/fields.geojson rejected"):
        sign_bundle([bad], key, 1, tmp_path / "b.eub")
    proc = run_cli("run", VIRGINIA, "--out", tmp_path / "o", "--crop-mask", bad, "--no-llm")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a polygon" in proc.stderr


def test_cli_run_with_parcels_and_history(tmp_path: Path) -> None:
    out, hist = tmp_path / "out", tmp_path / "hist"
    proc = run_cli(
        "run", VIRGINIA, SAMPLES / "sen2ships_honolulu", "--out", out, "--no-llm",
        "--detectors", "crop", "--crop-mask", PARCELS, "--crop-history", hist,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    vir = json.loads((out / "s2_l1c_virginia_crop" / "run.json").read_text())
    hon = json.loads((out / "sen2ships_honolulu" / "run.json").read_text())
    assert vir["detectors"]["crop"] == "ran" and vir["counts"]["crop_stress"] >= 1
    assert hon["detectors"]["crop"] == "skipped: no cropland layer covers this scene"
    assert hon["counts"]["crop_stress"] == 0
    # no acquisition date in the Virginia files: the history is left alone (and said so)
    assert not hist.exists() or not any(hist.iterdir())
    assert "no acquisition date" in proc.stderr


# --------------------------------------------------------------------------- bands, settings


def test_red_and_nir_only(series: Path, tmp_path: Path) -> None:
    """Only red and NIR: NDVI alone; NDRE, NDMI and MSI skipped and listed."""
    src = series_scenes(series)[7]
    dst = tmp_path / src.name
    dst.mkdir()
    for b in ("B04.tif", "B08.tif", "cloud_mask.tif"):
        shutil.copy(src / b, dst / b)
    s = series_settings(series, Settings(), "parcels", tmp_path / "h")
    result = run_scene(dst, s.replace(crop=dataclasses.replace(s.crop, history=None)))
    assert result.detections
    for d in result.detections:
        assert d.measures["indices_skipped"] == "ndre,ndmi,msi"
        assert "mean_ndmi" not in d.measures


def test_crop_needs_red_and_nir(series: Path, tmp_path: Path) -> None:
    dst = tmp_path / "nonir"
    dst.mkdir()
    shutil.copy(series_scenes(series)[0] / "B04.tif", dst / "B04.tif")
    shutil.copy(series_scenes(series)[0] / "B11.tif", dst / "B11.tif")
    with pytest.raises(InputError, match=r"crop needs band\(s\) B08"):
        run_scene(dst, Settings(detectors=CROP))


def test_cloud_stage_input_is_used(series: Path) -> None:
    """TileData.sky (the cloud screen's answer) wins over the scene's cloud mask file."""
    from rasterio.windows import Window

    from pipeline.core.ingest import SceneReader
    from pipeline.core.sky import CLOUD as SKY_CLOUD
    from pipeline.core.tiling import Tile

    scene_dir = series_scenes(series)[7]
    det = CropDetector(series_settings(series, Settings(), "parcels", Path("/nonexist")))
    scene = open_scene(scene_dir)
    win = Window(0, 0, scene.grid.width, scene.grid.height)
    with SceneReader(scene) as reader:
        data = reader.read(Tile(0, 0, win, win), det.band_names(scene))
    assert det.analyse(data, scene)["seen"].all()
    cloudy = dataclasses.replace(data, sky=np.full(data.shape, SKY_CLOUD, np.uint8))
    a = det.analyse(cloudy, scene)
    assert not a["seen"].any() and not a["usable"].any()
    comps = det.detect(cloudy, scene)
    assert det.finalise_scene(comps, scene) == []


def test_settings_are_typed() -> None:
    assert CropSettings(layers="a.geojson").layers == ("a.geojson",)  # type: ignore[arg-type]
    assert CropSettings(layers=[Path("a.tif")]).layers == ("a.tif",)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\[crop\] unit_m"):
        CropSettings(unit_m=10)
    with pytest.raises(ConfigError, match="ndvi_typo"):
        Settings.from_mapping({"detectors": list(CROP), "crop": {"ndvi_typo": 1.0}})
    s = Settings.from_mapping({"crop": {"layers": ["p.geojson"], "history": "/tmp/h"}})
    assert s.crop.history == Path("/tmp/h") and s.crop.layers == ("p.geojson",)


def test_landcover_counts_features_off_cropland(tmp_path: Path) -> None:
    """A land-cover raster whose cropland class misses the Virginia parcels: every feature
    pixel is counted as off cropland."""
    scene = open_scene(VIRGINIA)
    g = scene.grid
    lc = tmp_path / "lc.tif"
    with rasterio.open(
        lc, "w", driver="GTiff", width=g.width // 2, height=g.height // 2, count=1,
        dtype="uint8", crs=g.crs, transform=g.transform @ Affine.scale(2),
    ) as ds:  # fmt: skip
        ds.write(np.full((g.height // 2, g.width // 2), 10, np.uint8), 1)
    result = run_scene(VIRGINIA, _settings(layers=(str(PARCELS),)))
    grid = ((g.height, g.width), g.transform, g.crs.to_string())
    ev = evaluate_scene(result, grid, layer_mask(PARCELS, g), lc, (40,))
    assert ev.on_noncrop_px and ev.on_noncrop_px > 0 and ev.outside_layer_px == 0


# --------------------------------------------------------------------------- model file


def test_tampered_model_is_refused(tmp_path: Path) -> None:
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
    assert built == (REPO / "models" / "golden" / "crop_stress.onnx").read_bytes()
    entry = json.loads((out / "manifest.json").read_text())["models"]["crop_stress"]
    repo_entry = json.loads((REPO / "models" / "manifest.json").read_text())["models"][
        "crop_stress"
    ]
    assert entry == repo_entry
    assert set(entry["thresholds"]) == set(TH) | {"water_ndwi_min", "water_ndvi_max"}


@pytest.mark.slow
def test_cli_generate_and_eval_crop(tmp_path: Path) -> None:
    series = tmp_path / "ser"
    proc = run_cli("scenes", "generate-crops", series, "--size", "300", "--dates", "8")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("eval", "crop", series, "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["dates"] == 8 and d["noncrop_px"] == 0 and d["precision"] >= 0.9
    proc = run_cli("eval", "crop", VIRGINIA, "--layer", PARCELS)
    assert proc.returncode == 0, proc.stderr
    assert "skipped: no cropland layer covers this scene" in proc.stdout
    proc = run_cli("eval", "crop", VIRGINIA)
    assert proc.returncode == 2 and "--layer" in proc.stderr


def test_layer_labels_cached_per_grid_and_renewed_with_the_layer(
    series: Path, tmp_path: Path
) -> None:
    """The label rasters of a layer are made once per cell window and grid (the next pass over
    the same tiling reuses them), read-only, equal to a fresh rasterisation; a changed layer
    file is a new layer with its own labels."""
    grid = open_scene(series_scenes(series)[0]).grid
    parcels = tmp_path / "parcels.geojson"
    doc = json.loads((series / "parcels.geojson").read_text())
    parcels.write_text(json.dumps(doc))
    layer = load_layer(parcels)
    assert isinstance(layer, ParcelLayer)
    sp = layer.for_scene(grid)
    a = sp.cells(0, 0, (240, 240), 2)
    assert sp.cells(0, 0, (240, 240), 2) is a and len(sp.label_cache) == 1
    assert not a.flags.writeable
    np.testing.assert_array_equal(a, sp._rasterise(0, 0, (240, 240), 2))
    assert layer.for_scene(grid).cells(0, 0, (240, 240), 2) is a  # another pass, same grid
    # the layer changes (its first parcel dropped): new labels, none of the old parcel's cells
    doc["features"] = doc["features"][1:]
    parcels.write_text(json.dumps(doc))
    os.utime(parcels, ns=(parcels.stat().st_mtime_ns + 10**9,) * 2)
    changed = load_layer(parcels)
    assert changed is not layer
    assert isinstance(changed, ParcelLayer)
    b = changed.for_scene(grid).cells(0, 0, (240, 240), 2)
    assert (b > 0).sum() < (a > 0).sum()
    np.testing.assert_array_equal(b, changed.for_scene(grid)._rasterise(0, 0, (240, 240), 2))
    # the cropland raster: the same, and a rewritten raster is a new layer
    tif = tmp_path / "cropland.tif"
    shutil.copy(series / "cropland.tif", tif)
    rl = load_layer(tif)
    assert isinstance(rl, RasterLayer)
    tr = grid.transform * Affine.scale(2)
    u = rl.units((240, 240), tr, grid.crs)
    assert rl.units((240, 240), tr, grid.crs) is u and not u.flags.writeable
    np.testing.assert_array_equal(u, rl._units((240, 240), tr, grid.crs))
    rl.close()
    with rasterio.open(tif, "r+") as ds:
        arr = ds.read(1)
        arr[:, : arr.shape[1] // 2] = 0
        ds.write(arr, 1)
    os.utime(tif, ns=(tif.stat().st_mtime_ns + 10**9,) * 2)
    rl2 = load_layer(tif)
    assert isinstance(rl2, RasterLayer) and rl2 is not rl
    u2 = rl2.units((240, 240), tr, grid.crs)
    assert (u2 > 0).sum() < (u > 0).sum()
    np.testing.assert_array_equal(u2, rl2._units((240, 240), tr, grid.crs))
    rl2.close()


def test_label_cache_keeps_to_its_budget() -> None:
    cache = LabelCache(budget=1000)
    kept = cache.put(("a",), np.zeros(200, np.int32))  # 800 bytes: kept
    assert cache.get(("a",)) is kept and not kept.flags.writeable
    cache.put(("b",), np.zeros(100, np.int32))  # 400 more: over budget, not kept
    assert cache.get(("b",)) is None and cache.nbytes == 800 and len(cache) == 1


def test_parcel_history_save_keeps_others_and_the_last_record_of_a_key(tmp_path: Path) -> None:
    hist = ParcelHistory(tmp_path, "lpis")
    recs = np.zeros(3, RECORD)
    recs["n"] = [1, 2, 3]
    hist.save(np.array([30, 10, 20], np.uint64), recs)
    new = np.zeros(3, RECORD)
    new["n"] = [7, 8, 9]
    hist.save(np.array([20, 40, 20], np.uint64), new)  # key 20 twice: the later record wins
    again = ParcelHistory(tmp_path, "lpis")
    assert again.table["key"].tolist() == [10, 20, 30, 40]
    assert again.table["rec"]["n"].tolist() == [2, 9, 1, 8]
    got = again.records(np.array([40, 5, 10], np.uint64))
    assert got["n"].tolist() == [8, 0, 2]
