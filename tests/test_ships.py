"""Ship detector: real ONNX sessions on real rasters (sample ports, shared ports) and on a
synthetic sea scene with known vessels, including vessels cut by tile edges."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

import pipeline
from pipeline.core.onnx_models import OnnxModel, load_manifest
from pipeline.detectors.ships import FEATURES, ShipDetector, ShipScreen, chip_thresholds
from pipeline.errors import ConfigError, ModelError
from pipeline.settings import Settings, ShipSettings
from pipeline.testing.ship_scenes import HULL, WATER, SynShip, write_ship_scene

from .conftest import REPO, SAMPLES

MODELS = REPO / "models"
#: Vessels of the synthetic scene; with tile_size 128 several sit on tile edges (row or col
#: 128 / 256) and one on a tile corner.
SYN_SHIPS = (
    SynShip(60, 200, 14, 4, 30),
    SynShip(128, 160, 16, 4, 0),  # across the row-128 edge
    SynShip(200, 256, 18, 5, 90),  # across the col-256 edge
    SynShip(256, 128, 12, 4, 45),  # on the tile corner (256, 128)
    SynShip(300, 330, 22, 5, 120),
    SynShip(90, 300, 9, 3, 70),
)


@pytest.fixture(scope="module")
def ship_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ship_scene(
        tmp_path_factory.mktemp("ships") / "syn_ships", 400, 360, SYN_SHIPS, land_cols=40, seed=5
    )


def ship_boxes(result: pipeline.SceneResult) -> list[tuple[int, ...]]:
    return sorted(
        (
            int(d.measures["row_min"]),
            int(d.measures["col_min"]),
            int(d.measures["row_max"]),
            int(d.measures["col_max"]),
            int(d.measures["pixel_count"]),
        )
        for d in result.detections
        if d.cls == "ship"
    )


def run_ships(path: Path, **kw: object) -> pipeline.SceneResult:
    return pipeline.run_scene(path, Settings(detectors=("ships",), **kw))  # type: ignore[arg-type]


def test_synthetic_vessels_found_with_measures(ship_scene: Path) -> None:
    from pipeline.evaluation.ships import load_vessel_labels, match_ships

    result = run_ships(ship_scene)
    assert result.ok, (result.failures, result.problems)
    ships = [d for d in result.detections if d.cls == "ship"]
    vessels = load_vessel_labels(ship_scene / "labels.json")
    matches, missed, false = match_ships(ships, vessels, 20.0)
    assert not missed and not false, (missed, [ships[i].measures for i in false])
    res = pipeline.open_scene(ship_scene).grid.ground_res_m
    by_id = {m.vessel_id: ships[m.detection] for m in matches}
    for i, s in enumerate(SYN_SHIPS, 1):
        m = by_id[i].measures
        assert m["length_m"] == pytest.approx(s.length_px * res, rel=0.3)
        assert float(m["width_m"]) < float(m["length_m"])
        heading = m["heading_deg"]
        assert heading is not None
        diff = abs((float(heading) - s.heading_deg + 90) % 180 - 90)
        assert diff < 15, (i, heading, s.heading_deg)
        assert 0.0 < by_id[i].score <= 1.0
        assert m["classifier_score"] == pytest.approx(by_id[i].score, abs=1e-3)
        assert by_id[i].geometry.geom_type in ("Polygon", "MultiPolygon")


def test_tiling_invariance_and_edge_merge(ship_scene: Path) -> None:
    """Vessels cut by tile edges merge into one feature each; same result at every tiling."""
    ref = run_ships(ship_scene, tile_size=1024)
    boxes = ship_boxes(ref)
    assert len(boxes) == len(SYN_SHIPS)
    for ts in (128, 160):
        r = run_ships(ship_scene, tile_size=ts)
        assert r.tiles_total > 4
        assert ship_boxes(r) == boxes, ts
        multi = [d for d in r.detections if "," in str(d.measures["tiles"])]
        assert multi, "expected vessels merged across tiles"
        lengths = sorted(float(d.measures["length_m"]) for d in r.detections)
        assert lengths == pytest.approx(
            sorted(float(d.measures["length_m"]) for d in ref.detections), abs=0.2
        )


def test_no_ships_on_empty_sea_and_land(tmp_path: Path) -> None:
    scene = write_ship_scene(tmp_path / "empty", 256, 256, (), land_cols=100, seed=1)
    result = run_ships(scene)
    assert result.ok
    assert result.counts()["ship"] == 0


def test_screen_candidates_independent_of_window_origin(ship_scene: Path) -> None:
    """The block grid is aligned to the scene: a window shifted by a few pixels gives the same
    candidate pixels where both windows have full context."""
    from pipeline.core.ingest import SceneReader
    from pipeline.core.onnx_models import get_model
    from pipeline.core.tiling import Tile

    scene = pipeline.open_scene(ship_scene)
    model = get_model("ship_screen", threads=1)
    screen = ShipScreen(model, chip_thresholds(model.info.thresholds))
    names = [scene.band_for_role(r).name for r in ("green", "nir")]
    w = rasterio.windows.Window
    masks = {}
    with SceneReader(scene) as reader:
        for off in (0, 3, 5):
            win = w(off, off, 300, 300)
            data = reader.read(Tile(0, 0, win, win), names)
            g, n = (data.bands[k] for k in names)
            masks[off] = screen.run(g, n, data.valid, (off, off)).candidate
    a = masks[0][60:260, 60:260]
    for off in (3, 5):
        b = masks[off][60 - off : 260 - off, 60 - off : 260 - off]
        assert np.array_equal(a, b), off
    assert a.any()


def test_sample_ports_run_and_features_are_well_formed() -> None:
    for name in ("sen2ships_honolulu", "sen2ships_casablanca"):
        result = run_ships(SAMPLES / name)
        assert result.ok, (name, result.failures, result.problems)
        assert result.detectors["ships"] == "ran"
        for d in result.detections:
            m = d.measures
            for key in (
                "length_m",
                "width_m",
                "pixel_count",
                "centroid_lon",
                "centroid_lat",
                "mean_contrast",
                "classifier_score",
                "row_min",
                "col_max",
            ):
                assert key in m, key
            assert float(m["length_m"]) >= float(m["width_m"]) > 0


def test_shared_busan_tuned_port(shared_data: Path) -> None:
    """Regression guard on the port the classifier was trained on (measured 2026-11-28 with
    classifier 2.0.0: recall 0.33, precision 0.51, 17 false alarms; far from the issue's
    targets, see benchmarks/RESULTS.md).  The held-out ports are reported by
    benchmarks/bench_ships.py."""
    from pipeline.evaluation.ships import evaluate_ships

    score, result = evaluate_ships(shared_data / "sen2ships" / "busan")
    assert result.ok
    assert score.recall is not None and score.recall >= 0.3
    assert score.precision is not None and score.precision >= 0.45
    kinds = {d.measures.get("kind") for d in result.detections}
    assert kinds == {"free", "shore"}, kinds


def test_tampered_ship_model_rejected(tmp_path: Path) -> None:
    d = tmp_path / "models"
    shutil.copytree(MODELS, d, ignore=shutil.ignore_patterns("*.py", "__pycache__", "golden"))
    data = bytearray((d / "ship_classifier.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "ship_classifier.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        ShipDetector(Settings(detectors=("ships",), models_dir=d))


def test_classifier_features_must_match(tmp_path: Path) -> None:
    manifest = load_manifest(MODELS)
    screen = OnnxModel(manifest["ship_screen"])
    info = manifest["ship_classifier"]
    raw = dict(info.raw)
    raw["features"] = list(FEATURES[:-1])
    bad = OnnxModel(type(info)(**{**info.__dict__, "raw": raw}))
    with pytest.raises(ModelError, match="retrain"):
        ShipDetector(Settings(detectors=("ships",)), screen, bad)


def test_unknown_threshold_override_rejected() -> None:
    with pytest.raises(ConfigError, match=r"unknown \[ships\] setting\(s\): no_such"):
        Settings.from_mapping({"detectors": ["ships"], "ships": {"no_such": 1.0}})


def test_threshold_override_applies(ship_scene: Path) -> None:
    """min_score above every classifier score drops everything."""
    s = ShipSettings(min_score=1.01)
    result = pipeline.run_scene(ship_scene, Settings(detectors=("ships",), ships=s))
    assert result.counts()["ship"] == 0
    assert result.info["thresholds"]["ships"]["min_score"] == pytest.approx(1.01)


def test_screen_model_rebuild_is_identical() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bsm", MODELS / "build_ship_model.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.serialise() == (MODELS / "ship_screen.onnx").read_bytes()


def test_classifier_retrain_reproduces_committed_model(shared_data: Path, tmp_path: Path) -> None:
    """Quick retrain check: training on busan again gives the committed ONNX file."""
    pytest.importorskip("sklearn", reason="training extra (scikit-learn) not installed")
    pytest.importorskip("skl2onnx", reason="training extra (skl2onnx) not installed")
    import importlib.util
    import sys

    sys.path.insert(0, str(MODELS))
    try:
        spec = importlib.util.spec_from_file_location("tsc", MODELS / "train_ship_classifier.py")
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules["tsc"] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        data, entry = mod.train(("busan",), shared_data, MODELS)
    finally:
        sys.path.remove(str(MODELS))
        sys.modules.pop("tsc", None)
    assert data == (MODELS / "ship_classifier.onnx").read_bytes()
    assert entry["features"] == list(FEATURES)


def test_shared_port_tiling_invariance(shared_data: Path) -> None:
    """On a real port, tiles of 256 px give the same vessels as one 1024 px tile."""
    port = shared_data / "sen2ships" / "busan"
    ref = run_ships(port, tile_size=1024)
    small = run_ships(port, tile_size=256)
    assert small.tiles_total > ref.tiles_total
    assert ship_boxes(small) == ship_boxes(ref)
    assert sorted(d.score for d in small.detections) == pytest.approx(
        sorted(d.score for d in ref.detections), abs=1e-3
    )


def test_pixel_features_exact_inside_margin() -> None:
    """A pixel's features depend on PIXEL_MARGIN pixels around it only: computed on a small
    box or on the whole scene, they agree wherever the small box has that margin."""
    from pipeline.core.ingest import SceneReader
    from pipeline.core.tiling import tile_grid
    from pipeline.detectors.ships import PIXEL_MARGIN, ROLES, pixel_features

    scene = pipeline.open_scene(SAMPLES / "sen2ships_honolulu")
    g = scene.grid
    tile = tile_grid(g.width, g.height, max(g.width, g.height), 0)[0]
    with SceneReader(scene) as reader:
        data = reader.read(tile, [scene.band_for_role(r).name for r in ROLES])
    bands = {r: data.bands[scene.band_for_role(r).name] for r in ROLES}
    full, water_full = pixel_features(bands, data.valid, 0.05)
    y0, x0, y1, x1 = 100, 120, 260, 300
    sub = {k: v[y0:y1, x0:x1] for k, v in bands.items()}
    part, water_part = pixel_features(sub, data.valid[y0:y1, x0:x1], 0.05)
    m = PIXEL_MARGIN
    inner = (slice(m, y1 - y0 - m), slice(m, x1 - x0 - m))
    outer = (slice(y0 + m, y1 - m), slice(x0 + m, x1 - m))
    assert np.array_equal(water_part[inner], water_full[outer])
    assert water_full[outer].any() and not water_full[outer].all()
    for name in FEATURES:
        np.testing.assert_allclose(part[name][inner], full[name][outer], atol=1e-5, err_msg=name)


def test_held_out_sample_port_finds_docked_vessels() -> None:
    """casablanca is held out (the committed classifier was trained on busan).  Measured
    2026-11-28: 7 of 15 vessels, some of them docked (found by the pixel classifier), 2 false
    alarms; with classifier 1.0.0 it was 6 of 15 with 11 false alarms."""
    from pipeline.evaluation.ships import evaluate_ships

    score, result = evaluate_ships(SAMPLES / "sen2ships_casablanca")
    assert result.ok
    ships = [d for d in result.detections if d.cls == "ship"]
    assert score.recall is not None and score.recall >= 0.33
    assert score.precision is not None and score.precision >= 0.7
    shore_hits = [m for m in score.matches if ships[m.detection].measures["kind"] == "shore"]
    assert shore_hits, "no docked vessel found by the pixel classifier"


def test_virginia_lagoon_and_marsh_few_false_ships() -> None:
    """The Virginia crop (lagoon, salt marsh, barrier beach, inlet surf, ocean; no labelled
    vessels) gave 76 ships with classifier 1.0.0, nearly all faint marsh and shoal patches;
    7 with 2.0.0 (breakers and marsh islands); none since the SWIR and blue ratio tests.  With
    those tests off, the same patches come back."""
    result = run_ships(SAMPLES / "s2_l1c_virginia_crop")
    assert result.ok
    assert result.counts()["ship"] == 0
    off = ShipSettings(free_swir_ratio_min=-9.0, free_blue_ratio_min=-9.0)
    assert run_ships(SAMPLES / "s2_l1c_virginia_crop", ships=off).counts()["ship"] >= 5


def test_shared_virginia_tile_surf_rejected(shared_data: Path) -> None:
    """The whole Virginia L1C tile: 39 ships before the ratio tests (surf on the inlet's shoals,
    marsh islands), at most 3 now (0.5 per 10 km2 of its 57 km2 of water)."""
    result = run_ships(shared_data / "s2_l1c_virginia")
    assert result.ok
    assert result.counts()["ship"] <= 3


def test_foam_like_object_rejected_hull_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same bright NIR footprint: with a hull's SWIR it is a vessel; with water's SWIR (foam:
    the 1.6 um band is absorbed) it is not; with water's blue (a mud or sand patch) neither."""
    ships = (SynShip(80, 100, 10, 3, 45),)
    found = run_ships(write_ship_scene(tmp_path / "hull", 200, 160, ships))
    assert found.counts()["ship"] == 1
    monkeypatch.setitem(HULL, "B11", WATER["B11"] + 0.005)
    foam_scene = write_ship_scene(tmp_path / "foam", 200, 160, ships)
    foam = run_ships(foam_scene)
    assert foam.ok and foam.counts()["ship"] == 0
    no_swir_test = ShipSettings(free_swir_ratio_min=-9.0)
    assert run_ships(foam_scene, ships=no_swir_test).counts()["ship"] == 1
    monkeypatch.setitem(HULL, "B11", 0.2)
    monkeypatch.setitem(HULL, "B02", WATER["B02"])
    mud_scene = write_ship_scene(tmp_path / "mud", 200, 160, ships)
    mud = run_ships(mud_scene)
    assert mud.ok and mud.counts()["ship"] == 0
    no_blue_test = ShipSettings(free_blue_ratio_min=-9.0)
    assert run_ships(mud_scene, ships=no_blue_test).counts()["ship"] == 1


def test_small_craft_below_min_length_not_reported(tmp_path: Path) -> None:
    """A 3 x 2 px boat (about 25 m at busan's latitude) is below min_length_m (35 m) and is
    dropped, the 10 px vessel beside it is kept; with min_length_m 0 both are reported."""
    scene = write_ship_scene(
        tmp_path / "small", 200, 160, (SynShip(60, 60, 3, 2, 0), SynShip(100, 140, 10, 3, 90))
    )
    default = run_ships(scene)
    assert default.ok, (default.failures, default.problems)
    lengths = [float(d.measures["length_m"]) for d in default.detections if d.cls == "ship"]
    assert len(lengths) == 1 and lengths[0] > 60.0, lengths
    assert default.info["thresholds"]["ships"]["min_length_m"] == pytest.approx(35.0)
    every = run_ships(scene, ships=ShipSettings(min_length_m=0.0))
    small = sorted(float(d.measures["length_m"]) for d in every.detections if d.cls == "ship")
    assert len(small) == 2 and small[0] < 35.0, small
