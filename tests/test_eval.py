"""pipeline.evaluation.ships and ``eotriage eval``: matching, sea area, fire clusters, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shapely.geometry import Point

from pipeline.core.results import Detection
from pipeline.errors import InputError
from pipeline.evaluation.fire import evaluate_fire, read_fire_reference
from pipeline.evaluation.ships import (
    ShipScore,
    Vessel,
    evaluate_ships,
    load_vessel_labels,
    match_ships,
    sea_area_km2,
)
from pipeline.testing.ship_scenes import write_ship_scene

from .conftest import SAMPLES, run_cli
from .test_ships import SYN_SHIPS

LON0, LAT0 = 10.0, 45.0
M_LON = 111_320.0 * 0.7071067811865476  # metres per degree of longitude at 45 degrees
M_LAT = 110_574.0


def at(dx_m: float, dy_m: float) -> tuple[float, float]:
    return LON0 + dx_m / M_LON, LAT0 + dy_m / M_LAT


def det(dx_m: float, dy_m: float) -> Detection:
    lon, lat = at(dx_m, dy_m)
    return Detection("ship", 0.9, Point(lon, lat), {"centroid_lon": lon, "centroid_lat": lat})


def vessel(i: int, dx_m: float, dy_m: float, half_m: float | None = None) -> Vessel:
    lon, lat = at(dx_m, dy_m)
    box = None
    if half_m is not None:
        (x0, y0), (x1, y1) = at(dx_m - half_m, dy_m - half_m), at(dx_m + half_m, dy_m + half_m)
        box = (x0, y0, x1, y1)
    return Vessel(i, lon, lat, box)


def test_match_greedy_one_to_one() -> None:
    vessels = [vessel(1, 0, 0), vessel(2, 500, 0), vessel(3, 2000, 0)]
    dets = [det(5, 0), det(20, 0), det(505, 3), det(900, 0)]
    matches, missed, false = match_ships(dets, vessels, 30.0)
    assert {(m.vessel_id, m.detection) for m in matches} == {(1, 0), (2, 2)}
    assert missed == [3]
    assert false == [1, 3]  # the second piece near vessel 1 and the far detection
    assert matches[0].distance_m == pytest.approx(5.0, abs=0.5)


def test_match_uses_vessel_box() -> None:
    """A long hull: a centroid 60 m from the label centroid but inside its box matches."""
    vessels = [vessel(1, 0, 0, half_m=80.0)]
    matches, missed, false = match_ships([det(60, 0)], vessels, 10.0)
    assert len(matches) == 1 and not missed and not false
    matches, missed, false = match_ships([det(100, 0)], vessels, 10.0)
    assert not matches and missed == [1] and false == [0]


def test_ship_score_figures() -> None:
    s = ShipScore("x", labels=10, detections=8, tp=6, fp=2, fn=4, sea_km2=4.0, tolerance_m=30)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.6)
    assert s.f1 == pytest.approx(2 * 6 / (12 + 2 + 4))
    assert s.false_alarms_per_10km2 == pytest.approx(5.0)
    empty = ShipScore("y", 0, 0, 0, 0, 0, 0.0, 30)
    assert empty.precision is None and empty.recall is None and empty.false_alarms_per_10km2 is None


def test_load_sample_labels() -> None:
    vs = load_vessel_labels(SAMPLES / "sen2ships_casablanca" / "labels.json")
    assert len(vs) == 15
    for v in vs:
        assert v.box is not None
        assert v.box[0] <= v.lon <= v.box[2] and v.box[1] <= v.lat <= v.box[3]


def test_bad_labels(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_vessel_labels(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"vessels": [{"lon": "x"}]}')
    with pytest.raises(InputError, match="vessel 0"):
        load_vessel_labels(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="no 'vessels'"):
        load_vessel_labels(bad)


def test_synthetic_scene_scores_and_sea_area(tmp_path: Path) -> None:
    scene = write_ship_scene(tmp_path / "syn", 400, 360, SYN_SHIPS, land_cols=40, seed=5)
    score, result = evaluate_ships(scene)
    assert result.ok
    assert (score.tp, score.fp, score.fn) == (len(SYN_SHIPS), 0, 0)
    assert score.precision == 1.0 and score.recall == 1.0 and score.f1 == 1.0
    import pipeline

    res = pipeline.open_scene(scene).grid.ground_res_m
    hull_px = sum(round(s.length_px * s.width_px) for s in SYN_SHIPS)
    water_px = 360 * (400 - 40) - hull_px
    assert sea_area_km2(scene) == pytest.approx(water_px * res**2 / 1e6, rel=0.01)
    assert score.sea_km2 == pytest.approx(sea_area_km2(scene))


def test_vessel_settings_at_sea_and_moored(tmp_path: Path) -> None:
    """A hull in open water is at sea; one touching the land strip is moored; an instance raster
    of the wrong size is an InputError naming both sizes."""
    import numpy as np
    import rasterio

    from pipeline.evaluation.ships import vessel_settings

    scene = write_ship_scene(tmp_path / "syn", 200, 160, (), land_cols=40, seed=1)
    inst = np.zeros((160, 200), np.uint8)
    inst[70:74, 100:112] = 1  # open water
    inst[30:42, 40:44] = 2  # alongside the land (columns 0-39)
    with rasterio.open(scene / "B03.tif") as ref:
        profile = {**ref.profile, "dtype": "uint8"}
    with rasterio.open(tmp_path / "inst.tif", "w", **profile) as dst:
        dst.write(inst, 1)
    assert vessel_settings(scene, tmp_path / "inst.tif") == {1: "at_sea", 2: "moored"}
    with rasterio.open(tmp_path / "small.tif", "w", **{**profile, "width": 20}) as dst:
        dst.write(inst[:, :20], 1)
    with pytest.raises(InputError, match="20 x 160 px.*200 x 160"):
        vessel_settings(scene, tmp_path / "small.tif")


def test_fire_reference_and_scores() -> None:
    scene = SAMPLES / "s2_fire_G90292"
    ref = read_fire_reference(scene / "fire_pixels_swir_test.csv")
    assert len(ref) == 12 and sum(map(len, ref.values())) == 105
    score, result = evaluate_fire(scene, scene / "fire_pixels_swir_test.csv")
    assert result.ok
    assert score.found == 12 and score.false_clusters == 0 and not score.missed
    assert score.recall == 1.0 and score.precision == 1.0


def test_fire_reference_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_fire_reference(tmp_path / "none.csv")
    p = tmp_path / "bad.csv"
    p.write_text("row,col,cluster\n1,2,x\n")
    with pytest.raises(InputError, match="line 2"):
        read_fire_reference(p)


def test_cli_eval_ships_json() -> None:
    scene = SAMPLES / "sen2ships_honolulu"
    proc = run_cli("eval", "ships", scene, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (row,) = doc["scenes"]
    assert row["labels"] == 12
    assert row["tp"] + row["fn"] == 12
    assert row["tp"] + row["fp"] == row["detections"]
    assert row["sea_km2"] > 1.0
    assert doc["total"]["labels"] == 12
    # vessel_instances.tif beside the labels: recall split by at sea / moored, detections by kind
    split = row["by_setting"]
    assert split["at_sea"][0] + split["moored"][0] == 12
    assert split["at_sea"][1] + split["moored"][1] == row["tp"]
    kinds = [split.get(k, [0, 0]) for k in ("free", "shore")]
    assert sum(n for n, _ in kinds) == row["detections"]
    assert sum(c for _, c in kinds) == row["tp"]


def test_cli_eval_ships_table_two_scenes() -> None:
    proc = run_cli(
        "eval", "ships", SAMPLES / "sen2ships_honolulu", SAMPLES / "sen2ships_casablanca"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["scene", "vessels", "detections"]
    assert any(ln.startswith("sen2ships_casablanca") for ln in lines)
    assert lines[-1].startswith("all")
    assert lines[-1].split()[1] == "27"
    assert lines[0].split()[-5:] == ["at", "sea", "found", "moored", "found"]
    at_sea, moored = lines[-1].split()[-2:]
    assert int(at_sea.split("/")[1]) + int(moored.split("/")[1]) == 27


def test_cli_eval_usage_and_input_errors(tmp_path: Path) -> None:
    a, b = SAMPLES / "sen2ships_honolulu", SAMPLES / "sen2ships_casablanca"
    proc = run_cli("eval", "ships", a, b, "--labels", a / "labels.json")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("eotriage: error:")
    proc = run_cli("eval", "ships", a, "--labels", tmp_path / "missing.json")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing.json" in proc.stderr
    proc = run_cli("eval", "ships", tmp_path / "no_such_dir")
    assert proc.returncode == 2


def test_cli_eval_fire() -> None:
    proc = run_cli("eval", "fire", SAMPLES / "s2_fire_G90292", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["found"] == 12 and doc["false_clusters"] == 0 and doc["reference_clusters"] == 12


def test_shared_ports_eval_consistent(shared_data: Path) -> None:
    for port in ("busan", "casablanca", "honolulu"):
        d = shared_data / "sen2ships" / port
        score, result = evaluate_ships(d)
        assert result.ok
        n = len(json.loads((d / "labels.json").read_text())["vessels"])
        assert score.labels == n
        assert score.tp + score.fn == n and score.tp + score.fp == score.detections
        assert score.sea_km2 > 1.0
