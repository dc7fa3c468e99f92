"""The CLI on the bundled sample scenes: outputs, RFC 7946 GeoJSON and run.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shapely.geometry import shape

from .conftest import SAMPLES, run_cli


def _ccw(ring: list[list[float]]) -> bool:
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False))
    return area > 0


@pytest.mark.slow
def test_run_writes_geojson_and_run_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "run", SAMPLES / "s2_fire_G90292", SAMPLES / "s2_l1c_virginia_crop", "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    assert "s2_fire_G90292: partial scan: 12 fire; ship not checked (" in proc.stdout
    assert str(out / "s2_fire_G90292" / "detections.geojson") in proc.stdout
    assert proc.stderr == ""  # quiet by default
    gj = json.loads((out / "s2_fire_G90292" / "detections.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 12
    for f in gj["features"]:
        props = f["properties"]
        assert props["class"] == "fire" and 0 <= props["score"] <= 1
        assert props["pixel_count"] >= 1 and props["area_m2"] > 0
        geom = shape(f["geometry"])
        assert geom.is_valid
        lon, lat = geom.centroid.x, geom.centroid.y
        assert -123.4 < lon < -123.2 and 58.0 < lat < 58.1  # WGS84 lon/lat order
        polys = (
            f["geometry"]["coordinates"]
            if f["geometry"]["type"] == "MultiPolygon"
            else [f["geometry"]["coordinates"]]
        )
        for poly in polys:
            assert _ccw(poly[0])  # RFC 7946: exterior rings counter-clockwise
    run = json.loads((out / "s2_fire_G90292" / "run.json").read_text())
    assert run["ok"] and run["counts"]["fire"] == 12
    assert run["input_bytes"] > 1_000_000
    assert (
        run["output_bytes"]["detections.geojson"]
        == (out / "s2_fire_G90292" / "detections.geojson").stat().st_size
    )
    assert set(run["timings_s"]) >= {"ingest", "detect", "vectorise", "write", "total"}
    assert len(run["models"]["fire_swir"]["sha256"]) == 64
    assert run["tiles"] == {"total": 1, "failed": 0, "resumed": 0, "failures": []}
    assert "acquisition date 2023-05-14" in run["input"]["scaling_reason"]
    virginia = json.loads((out / "s2_l1c_virginia_crop" / "detections.geojson").read_text())
    assert [f for f in virginia["features"] if f["properties"]["class"] == "fire"] == []
    assert json.loads((out / "s2_l1c_virginia_crop" / "run.json").read_text())["detectors"] == {
        "clouds": "ran",
        "fire": "ran",
        "ships": "ran",
        "crop": "skipped: no cropland layer covers this scene",
    }


def test_help_texts() -> None:
    for args in (
        ["--help"],
        ["run", "--help"],
        ["info", "--help"],
        ["models", "--help"],
        ["scenes", "generate", "--help"],
    ):
        proc = run_cli(*args)
        assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_info_and_sensors() -> None:
    proc = run_cli("info", SAMPLES / "sen2ships_honolulu")
    assert proc.returncode == 0
    assert "sen2ships" in proc.stdout and "EPSG:3857" in proc.stdout
    proc = run_cli("sensors")
    assert all(n in proc.stdout for n in ("sentinel2-l1c", "sen2ships", "landsat8-oli"))


@pytest.mark.slow
def test_scene_needing_missing_bands_fails_alone(tmp_path: Path) -> None:
    """Asked for fire only, a port scene without B12 fails alone: one line, exit 1."""
    proc = run_cli(
        "run",
        SAMPLES / "sen2ships_honolulu",
        SAMPLES / "s2_fire_G90292",
        "--out",
        tmp_path,
        "--detectors",
        "fire",
    )
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("eotriage: error:")]
    assert len(errors) == 1 and "B12" in errors[0] and "sen2ships_honolulu" in errors[0]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "s2_fire_G90292" / "detections.geojson").is_file()


@pytest.mark.slow
def test_generate_then_run(tmp_path: Path) -> None:
    scene = tmp_path / "gen"
    proc = run_cli("scenes", "generate", scene, "--size", "300", "--fires", "2", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((scene / "truth.json").read_text())
    proc = run_cli("run", scene, "--out", tmp_path / "out", "--tile-size", "128")
    assert proc.returncode == 0, proc.stderr
    gj = json.loads((tmp_path / "out" / "gen" / "detections.geojson").read_text())
    fires = [f for f in gj["features"] if f["properties"]["class"] == "fire"]
    assert len(fires) == len(truth["fires"]) == 2


def test_run_writes_downlink_within_budget_and_decode_restores_it(tmp_path: Path) -> None:
    """downlink.bin per scene: with a budget the lower-priority products wait (listed in
    run.json); without one, decode gives back compact.geojson byte for byte and the report."""
    out = tmp_path / "out"
    scene = SAMPLES / "sen2ships_honolulu"
    proc = run_cli("run", scene, "--out", out, "--no-llm")
    assert proc.returncode == 0, proc.stderr
    d = out / scene.name
    run = json.loads((d / "run.json").read_text())
    assert run["downlink"]["waiting"] == []
    assert run["output_bytes"]["downlink.bin"] == (d / "downlink.bin").stat().st_size
    proc = run_cli("decode", d / "downlink.bin", "--out", tmp_path / "ground")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ground" / "detections.geojson").read_bytes() == (
        d / "compact.geojson"
    ).read_bytes()
    report = json.loads((d / "report.json").read_text())
    assert report["summary"] in proc.stdout
    assert (tmp_path / "ground" / "map.png").read_bytes()[:4] == b"\x89PNG"
    full = run["output_bytes"]["downlink.bin"]

    budget = full - 1  # one byte short: the lowest-priority product must wait
    proc = run_cli("run", scene, "--out", tmp_path / "b", "--no-llm", "--downlink-budget", budget)
    assert proc.returncode == 0, proc.stderr
    run_b = json.loads((tmp_path / "b" / scene.name / "run.json").read_text())
    assert 0 < run_b["output_bytes"]["downlink.bin"] <= budget
    assert run_b["downlink"]["waiting"], "something must wait for the next pass"
    # what was sent first is the manifest and the report (alerts before detections)
    assert run_b["downlink"]["bytes_by_kind"]["report"] > 0
