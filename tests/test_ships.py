"""Ship detector: the learned vessel segmenter (models/ship_segmenter.onnx), grouping of touching
hulls, tiling, manifest integrity and settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import pipeline
from pipeline.core.onnx_models import load_manifest
from pipeline.detectors.ships import ShipDetector
from pipeline.detectors.vessel_segmentation import (
    ROLES,
    Calibration,
    fit_calibration,
    group_vessels,
    pad_to_multiple,
)
from pipeline.errors import ConfigError, ModelError
from pipeline.settings import Settings, ShipSettings
from pipeline.testing.ship_scenes import SynShip, write_ship_scene

from .conftest import REPO, SAMPLES
from .test_ship_training import load_training_script

MODELS = REPO / "models"
PORTS = ("algiers", "athens", "busan", "casablanca", "durban", "gdynia", "honolulu", "valencia")
#: Vessels of the synthetic scene; with tile_size 128 several sit on tile edges (row or col
#: 128 / 256) and one on a tile corner.
SYN_SHIPS = (
    SynShip(60, 200, 14, 4, 30),
    SynShip(128, 160, 16, 4, 0),  # across the row-128 edge
    SynShip(200, 256, 18, 5, 90),  # across the col-256 edge
    SynShip(256, 128, 12, 4, 45),  # on the tile corner (256, 128)
    SynShip(300, 330, 22, 5, 120),
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


# ----------------------------------------------------------------------------- grouping


def _hull(shape: tuple[int, int], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Normalised distance map of one axis-aligned hull (rows r0:r1, cols c0:c1)."""
    import cv2

    m = np.zeros(shape, np.uint8)
    m[r0:r1, c0:c1] = 1
    d = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    return d / d.max()


def test_touching_hulls_grouped_apart() -> None:
    """Two hulls rafted side by side (one merged mask) come out as two vessels: the distance
    map dips at the seam between their spines."""
    shape = (40, 40)
    prob = np.zeros(shape, np.float32)
    prob[10:14, 8:30] = 0.9
    prob[14:18, 8:30] = 0.9
    dist = (_hull(shape, 10, 14, 8, 30) + _hull(shape, 14, 18, 8, 30)).astype(np.float32)
    n, lab = group_vessels(prob, dist, 0.5, 0.6)
    assert n == 2
    assert set(np.unique(lab[10:14, 8:30])) == {1} or set(np.unique(lab[10:14, 8:30])) == {2}
    assert lab[12, 20] != lab[16, 20]
    assert (lab > 0).sum() == (prob >= 0.5).sum()  # every mask pixel belongs to a vessel
    # the mask alone (no distance map) would have given one
    n1, _ = group_vessels(prob, np.zeros(shape, np.float32), 0.5, 0.6)
    assert n1 == 1


def test_pad_to_multiple() -> None:
    x = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    p, h, w = pad_to_multiple(x, 4)
    assert p.shape == (2, 8, 8) and (h, w) == (5, 7)
    assert np.array_equal(p[:, :5, :7], x)


def test_calibration_puts_0_5_at_the_precision_target() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.5, 1.0, 400)
    correct = (rng.uniform(size=400) < raw**3).astype(float)
    cal, t = fit_calibration(raw, correct, 0.85)
    s = cal(raw)
    assert np.all(np.diff(cal(np.linspace(0, 1, 101))) >= 0)  # monotone
    kept = s >= 0.5
    assert np.array_equal(kept, raw >= t)
    assert correct[kept].mean() >= 0.85
    assert Calibration.from_manifest(None)(0.3) == pytest.approx(0.3)


# ----------------------------------------------------------------------------- the model


def test_manifest_has_final_and_fold_models() -> None:
    m = load_manifest(MODELS)
    final = m["ship_segmenter"]
    assert final.bands == ROLES
    assert final.path.stat().st_size <= 5 * 1024 * 1024
    raw = final.raw
    assert sorted(raw["training"]["ports"]) == sorted(PORTS)
    assert raw["training"]["git_sha"]
    cv = raw["cross_validation"]
    assert cv["figures_default"]["pooled"]["f1"] > 0.44  # the old detector's LOPO F1
    high = cv["figures_score_ge_0_5"]["pooled"]
    assert high["tp"] == 0 or high["precision"] >= 0.85  # what the calibration promises
    cal = raw["calibration"]
    assert len(cal["raw"]) == len(cal["score"]) >= 2
    for port in PORTS:
        fold = m[f"ship_segmenter_without_{port}"]
        assert port not in fold.raw["training"]["ports"]
        assert fold.path.is_file()
        assert fold.raw["calibration"] == cal


def test_tampered_ship_model_rejected(tmp_path: Path) -> None:
    d = tmp_path / "models"
    shutil.copytree(MODELS, d, ignore=shutil.ignore_patterns("*.py", "__pycache__", "golden"))
    data = bytearray((d / "ship_segmenter.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "ship_segmenter.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        ShipDetector(Settings(detectors=("ships",), models_dir=d))


def test_not_a_segmenter_rejected() -> None:
    with pytest.raises(ModelError, match="not a vessel segmenter"):
        ShipDetector(Settings(detectors=("ships",), ships=ShipSettings(model="fire_swir")))


def test_unknown_setting_and_bad_model_name_rejected() -> None:
    with pytest.raises(ConfigError, match=r"unknown \[ships\] setting\(s\): no_such"):
        Settings.from_mapping({"detectors": ["ships"], "ships": {"no_such": 1.0}})
    with pytest.raises(ConfigError, match="model"):
        ShipSettings(model="../x")
    with pytest.raises(ModelError, match="model 'nope' not in"):
        ShipDetector(Settings(detectors=("ships",), ships=ShipSettings(model="nope")))


@pytest.mark.slow
def test_onnx_export_matches_pytorch_on_a_real_tile() -> None:
    """The training script's network and its ONNX export (``export_onnx``, the code path that
    wrote the committed models) give the same maps on a real port window; then the committed
    model runs on the same window with the same shapes (needs the ``test`` extra's torch)."""
    torch = pytest.importorskip("torch")
    import onnxruntime as ort
    from rasterio.windows import Window

    from pipeline.core.ingest import SceneReader
    from pipeline.core.tiling import Tile

    tss = load_training_script()
    torch.manual_seed(0)
    net = tss.build_net()()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    net.eval()
    scene = pipeline.open_scene(SAMPLES / "sen2ships_honolulu")
    w = Window(0, 0, min(256, scene.grid.width), min(200, scene.grid.height))
    names = [scene.band_for_role(r).name for r in ROLES]
    with SceneReader(scene) as reader:
        data = reader.read(Tile(0, 0, w, w), names)
    x = np.stack([data.bands[n] for n in names])[None].astype(np.float32)
    x, h, wd = pad_to_multiple(x)
    sess = ort.InferenceSession(tss.export_onnx(net, "test"), providers=["CPUExecutionProvider"])
    prob_o, dist_o = sess.run(None, {"bands": x})
    with torch.no_grad():
        prob_t, dist_t = net(torch.from_numpy(x))
    assert np.abs(prob_o - prob_t.numpy()).max() < 1e-4
    assert np.abs(dist_o - dist_t.numpy()).max() < 1e-4
    committed = ort.InferenceSession(
        str(MODELS / "ship_segmenter.onnx"), providers=["CPUExecutionProvider"]
    )
    prob_c, dist_c = committed.run(None, {"bands": x})
    assert prob_c.shape == dist_c.shape == (1, 1, x.shape[2], x.shape[3])
    assert 0.0 <= float(prob_c.min()) and float(prob_c.max()) <= 1.0


def test_strips_give_the_same_maps_as_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tall window runs in overlapping strips (bounded memory); the maps are those of one
    run over the whole window, on a real port."""
    import onnxruntime as ort
    from rasterio.windows import Window

    import pipeline.detectors.vessel_segmentation as vs
    from pipeline.core.ingest import SceneReader
    from pipeline.core.tiling import Tile

    scene = pipeline.open_scene(SAMPLES / "sen2ships_casablanca")
    names = [scene.band_for_role(r).name for r in ROLES]
    w = Window(0, 0, scene.grid.width, scene.grid.height)
    with SceneReader(scene) as reader:
        data = reader.read(Tile(0, 0, w, w), names)
    sess = ort.InferenceSession(
        str(MODELS / "ship_segmenter.onnx"), providers=["CPUExecutionProvider"]
    )

    def run(feed: dict) -> list:
        return sess.run(None, feed)

    bands = [data.bands[n] for n in names]
    monkeypatch.setattr(vs, "STRIP_ROWS", 10**6)
    whole = vs.run_segmenter(run, bands)
    monkeypatch.setattr(vs, "STRIP_ROWS", 64)
    strips = vs.run_segmenter(run, bands)
    assert whole[0].shape == strips[0].shape == (scene.grid.height, scene.grid.width)
    for a, b in zip(whole, strips, strict=True):
        assert np.abs(a - b).max() < 1e-5


# ----------------------------------------------------------------------------- detector


def test_land_only_tile_gives_none_and_skips_the_network(tmp_path: Path) -> None:
    scene = write_ship_scene(tmp_path / "land", 256, 256, (), land_cols=256, seed=1)
    det = ShipDetector(Settings(detectors=("ships",)))
    runs = det.model.runs
    result = run_ships(scene)
    assert result.ok
    assert result.counts()["ship"] == 0
    assert det.model.runs == runs  # the water screen found no water: no network call


def test_no_ships_on_empty_sea(tmp_path: Path) -> None:
    scene = write_ship_scene(tmp_path / "sea", 256, 256, (), land_cols=60, seed=2)
    result = run_ships(scene)
    assert result.ok
    assert result.counts()["ship"] == 0


def test_synthetic_vessels_found_with_measures(ship_scene: Path) -> None:
    from pipeline.evaluation.ships import load_vessel_labels, match_ships

    result = run_ships(ship_scene)
    assert result.ok, (result.failures, result.problems)
    ships = [d for d in result.detections if d.cls == "ship"]
    vessels = load_vessel_labels(ship_scene / "labels.json")
    matches, missed, false = match_ships(ships, vessels, 20.0)
    assert not missed and not false, (missed, [ships[i].measures for i in false])
    min_score = ShipDetector(Settings(detectors=("ships",))).thresholds["min_score"]
    for d in ships:
        m = d.measures
        assert m["setting"] == "at_sea"
        assert float(m["length_m"]) >= float(m["width_m"]) > 0
        assert min_score <= d.score <= 1.0
        assert d.geometry.geom_type in ("Polygon", "MultiPolygon")
    res = pipeline.open_scene(ship_scene).grid.ground_res_m
    by_id = {mt.vessel_id: ships[mt.detection] for mt in matches}
    s = SYN_SHIPS[4]
    m = by_id[5].measures
    assert m["length_m"] == pytest.approx(s.length_px * res, rel=0.35)
    heading = m["heading_deg"]
    assert heading is not None
    assert abs((float(heading) - s.heading_deg + 90) % 180 - 90) < 20


def test_two_hulls_side_by_side_are_two_vessels(tmp_path: Path) -> None:
    """Two 240 m hulls rafted side by side (5 px wide, centres 7 px apart: a seam of about
    two mixed pixels) come out as two vessels, although their footprints touch.  (Measured
    with the committed model: with centres 5-6 px apart they merge or break into fragments;
    docs/ships.md.)"""
    ships = (SynShip(100, 100, 24, 5, 0), SynShip(100, 107, 24, 5, 0))
    scene = write_ship_scene(tmp_path / "pair", 200, 200, ships, land_cols=0, seed=4)
    result = run_ships(scene)
    found = sorted(
        (d for d in result.detections if d.cls == "ship"), key=lambda d: d.measures["col_min"]
    )
    assert len(found) == 2, [d.measures for d in found]
    a, b = (d.measures for d in found)
    assert b["col_min"] <= a["col_max"] + 1  # the footprints touch: one blob, two hulls
    assert (a["col_min"] + a["col_max"]) / 2 < 102 < 105 < (b["col_min"] + b["col_max"]) / 2


def test_tiling_invariance_and_edge_vessels(ship_scene: Path) -> None:
    """Vessels cut by tile edges are reported once, whole, at every tiling."""
    ref = run_ships(ship_scene, tile_size=1024)
    boxes = ship_boxes(ref)
    assert len(boxes) == len(SYN_SHIPS)
    for ts in (128, 160):
        r = run_ships(ship_scene, tile_size=ts)
        assert r.tiles_total > 4
        got = ship_boxes(r)
        assert len(got) == len(boxes), ts
        for a, b in zip(got, boxes, strict=True):
            assert max(abs(x - y) for x, y in zip(a[:4], b[:4], strict=True)) <= 1, (ts, a, b)


def test_min_score_override_drops_everything(ship_scene: Path) -> None:
    s = ShipSettings(min_score=1.0, prob_min=0.99)
    result = pipeline.run_scene(ship_scene, Settings(detectors=("ships",), ships=s))
    assert all(d.score >= 1.0 for d in result.detections)


def test_sample_ports_run_and_features_are_well_formed() -> None:
    min_score = ShipDetector(Settings(detectors=("ships",))).thresholds["min_score"]
    for name in ("sen2ships_honolulu", "sen2ships_casablanca"):
        result = run_ships(SAMPLES / name)
        assert result.ok, (name, result.failures, result.problems)
        assert result.detectors["ships"] == "ran"
        for d in result.detections:
            m = d.measures
            for key in (
                "length_m",
                "width_m",
                "heading_deg",
                "setting",
                "pixel_count",
                "centroid_lon",
                "centroid_lat",
                "row_min",
                "col_max",
            ):
                assert key in m, key
            assert m["setting"] in ("at_sea", "moored")
            assert float(m["length_m"]) >= float(m["width_m"]) > 0
            assert d.score >= min_score


@pytest.mark.slow
def test_shared_port_with_its_fold_model(shared_data: Path) -> None:
    """A held-out port through the real pipeline with the fold model that never saw it (the
    full leave-one-port-out table is benchmarks/bench_ships.py)."""
    from pipeline.evaluation.ships import evaluate_ships

    cv = json.loads((MODELS / "ship_segmenter_cv.json").read_text())
    port = "busan"
    settings = Settings(ships=ShipSettings(model=f"ship_segmenter_without_{port}"))
    score, result = evaluate_ships(shared_data / "sen2ships" / port, None, settings)
    assert result.ok
    expected = cv["figures_default"]["per_port"][port]
    assert score.recall == pytest.approx(expected["recall"], abs=0.15)
    assert score.precision == pytest.approx(expected["precision"], abs=0.15)
