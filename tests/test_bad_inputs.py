"""Bad inputs through the real ``eotriage run`` CLI (subprocess, real rasters in tmp_path).

Every bad scene is passed in the same command as a small good synthetic scene, placed *after*
the bad one: the bad scene must fail on one ``eotriage: error:`` line without a traceback, and
the good scene must still be processed and written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.sensors import PROFILES
from pipeline.testing.synthetic import generate_scene

from .conftest import run_cli, write_tif

ERROR_PREFIX = "eotriage: error:"
GOOD_NAME = "goodscene_ref"  # unique: no bad path or message contains it
SMALL_TILES = ("--tile-size", "64", "--overlap", "16")


# --------------------------------------------------------------------------- helpers


def run_with_good(
    bad: Path, good: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``eotriage run BAD GOOD --out OUT [EXTRA]``: the bad scene first, the good one after it."""
    return run_cli("run", bad, good, "--out", out, *extra, cwd=out.parent)


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream, proc.stderr
        assert 'File "' not in stream, proc.stderr


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``eotriage: error:`` lines, after checking each error message is exactly one line."""
    lines = proc.stderr.splitlines()
    errors = []
    for i, line in enumerate(lines):
        if not line.startswith(ERROR_PREFIX):
            continue
        errors.append(line)
        # a message that spilled onto further lines would leave a non-"eotriage:" line after it
        if i + 1 < len(lines):
            assert lines[i + 1].startswith("eotriage:"), f"multi-line error:\n{proc.stderr}"
    return errors


def bad_scene_errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """Error lines of the bad scene: every error line, none of which may concern the good scene."""
    assert_no_traceback(proc)
    errors = error_lines(proc)
    assert not [e for e in errors if GOOD_NAME in e], proc.stderr
    return errors


def single_scene_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exactly one error line for the bad scene, containing every one of ``words``."""
    assert proc.returncode != 0, proc.stderr
    errors = bad_scene_errors(proc)
    assert len(errors) == 1, proc.stderr
    for w in words:
        assert w in errors[0], f"{w!r} not in {errors[0]!r}"
    return errors[0]


def fire_features(geojson: Path) -> list[dict]:
    fc = json.loads(geojson.read_text())
    assert fc["type"] == "FeatureCollection"
    return [f for f in fc["features"] if f["properties"]["class"] == "fire"]


def assert_fires_found(features: list[dict], truth: list[dict]) -> None:
    """Every truth fire has a detected feature whose centroid is within ~10 m of it."""
    for fire in truth:
        near = [
            f
            for f in features
            if abs(f["properties"]["centroid_lon"] - fire["lon"]) < 1.5e-4
            and abs(f["properties"]["centroid_lat"] - fire["lat"]) < 1e-4
        ]
        assert len(near) == 1, f"fire {fire['id']} at {fire['lon']}, {fire['lat']}: {features}"


def assert_good_completed(
    proc: subprocess.CompletedProcess[str], out: Path, good: tuple[Path, list[dict]]
) -> None:
    """The good scene still ran: its stdout line, its detections.geojson with all truth fires."""
    path, truth = good
    geojson = out / path.name / "detections.geojson"
    line = [s for s in proc.stdout.splitlines() if s.startswith(f"{path.name}:")]
    assert len(line) == 1, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert f"{len(truth)} fire" in line[0] and str(geojson) in line[0], line[0]
    assert geojson.is_file()
    features = fire_features(geojson)
    assert len(features) == len(truth)
    assert_fires_found(features, truth)
    summary = json.loads((out / path.name / "run.json").read_text())
    assert summary["ok"] is True and summary["problems"] == [] and summary["tiles"]["failed"] == 0


def synthetic(dest: Path, size: int, **kwargs: object) -> tuple[Path, list[dict]]:
    out = generate_scene(dest, size, **kwargs)  # type: ignore[arg-type]
    return out, json.loads((out / "truth.json").read_text())["fires"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """128 x 128 px 13-band L1C scene with 2 known fires."""
    scene, truth = synthetic(tmp_path_factory.mktemp("good") / GOOD_NAME, 128, n_fires=2, seed=1)
    assert len(truth) == 2
    return scene, truth


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


# --------------------------------------------------------------------------- missing band


@pytest.mark.parametrize(
    "bands",
    [
        pytest.param(None, id="13-band"),
        pytest.param(
            ("B11", "B12"),
            id="swir-only",
        ),
    ],
)
@pytest.mark.slow
def test_missing_band(
    tmp_path: Path, out: Path, good: tuple[Path, list[dict]], bands: tuple[str, ...] | None
) -> None:
    """Asked for the fire detector only, a scene without B12 is a one-line error."""
    bad, _ = synthetic(tmp_path / "nob12", 128, n_fires=1, seed=5, bands=bands)
    (bad / "B12.tif").unlink()
    proc = run_with_good(bad, good[0], out, "--detectors", "fire")
    single_scene_error(proc, str(bad), "B12", "missing")
    assert not (out / "nob12").exists()
    assert_good_completed(proc, out, good)


@pytest.mark.slow
def test_missing_band_skips_only_that_detector(tmp_path: Path, out: Path) -> None:
    """With every detector enabled (the default), a 13-band scene without B12 still gets the
    ship detector; run.json says why fire was skipped (and crop: no cropland layer)."""
    bad, _ = synthetic(tmp_path / "nob12", 128, n_fires=1, seed=5)
    (bad / "B12.tif").unlink()
    proc = run_cli("run", bad, "--out", out, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "nob12" / "run.json").read_text())
    assert summary["detectors"]["fire"] == "skipped: needs band(s) B12"
    assert summary["detectors"]["ships"] == "ran"
    assert summary["detectors"]["crop"] == "skipped: no cropland layer covers this scene"


# --------------------------------------------------------------------------- truncated band


@pytest.fixture
def truncated(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Uncompressed B11/B12 scene, 300 x 300 px at 20 m (2 x 2 blocks of 256), B12.tif cut to 60 %:
    its first row of blocks is intact, the second is not."""
    scene, truth = synthetic(
        tmp_path / "trunc", 600, n_fires=2, seed=2, compress=None, bands=("B11", "B12")
    )
    b12 = scene / "B12.tif"
    os.truncate(b12, int(b12.stat().st_size * 0.6))
    return scene, truth


def _in_window(fire: dict, window: list[int]) -> bool:
    col, row, w, h = window
    return col <= fire["col20"] < col + w and row <= fire["row20"] < row + h


@pytest.mark.slow
def test_truncated_band(
    truncated: tuple[Path, list[dict]], out: Path, good: tuple[Path, list[dict]]
) -> None:
    bad, truth = truncated
    proc = run_with_good(bad, good[0], out, *SMALL_TILES)
    assert proc.returncode == 1, proc.stderr
    errors = bad_scene_errors(proc)
    summary = json.loads((out / "trunc" / "run.json").read_text())
    tiles = summary["tiles"]
    assert summary["ok"] is False
    assert 0 < tiles["failed"] < tiles["total"], tiles  # some tiles failed, some were read
    assert len(tiles["failures"]) == tiles["failed"]
    for f in tiles["failures"]:
        assert "B12.tif" in f["cause"] and "cannot read" in f["cause"], f
    assert len(errors) == tiles["failed"]  # one line per failed tile
    for e in errors:
        assert "trunc" in e and "B12.tif" in e and "cannot read" in e, e
    # the readable tiles still produced output: fires in them are found, fires in failed tiles not
    features = fire_features(out / "trunc" / "detections.geojson")
    failed_windows = [f["window"] for f in tiles["failures"]]
    readable = [f for f in truth if not any(_in_window(f, w) for w in failed_windows)]
    assert readable and len(readable) < len(truth)  # the fixture has fires on both sides
    assert len(features) == len(readable)
    assert_fires_found(features, readable)
    assert any(s.startswith("trunc:") for s in proc.stdout.splitlines())
    assert_good_completed(proc, out, good)


@pytest.mark.slow
def test_truncated_band_cause_is_reported(
    truncated: tuple[Path, list[dict]], out: Path, good: tuple[Path, list[dict]]
) -> None:
    bad, _ = truncated
    proc = run_with_good(bad, good[0], out, *SMALL_TILES)
    errors = bad_scene_errors(proc)
    assert errors
    for e in errors:
        assert "previous exception" not in e, e  # refers to an exception the user never sees
        assert re.search(r"truncat|read error|got \d+ bytes|IReadBlock|TIFFRead", e, re.I), e


# --------------------------------------------------------------------------- not a GeoTIFF


def _png(tmp_path: Path) -> Path:
    p = tmp_path / "picture.png"
    assert cv2.imwrite(str(p), np.full((32, 32, 3), 127, np.uint8))
    return p


def _text_tif(tmp_path: Path) -> Path:
    p = tmp_path / "x.tif"
    p.write_text("this is not a TIFF file\n")
    return p


@pytest.mark.slow
@pytest.mark.parametrize("make", [_png, _text_tif], ids=["png", "text-as-tif"])
def test_not_a_geotiff(tmp_path: Path, out: Path, good: tuple[Path, list[dict]], make) -> None:
    bad = make(tmp_path)
    proc = run_with_good(bad, good[0], out)
    line = single_scene_error(proc, str(bad))
    assert re.search(r"not a (readable )?GeoTIFF", line), line
    assert_good_completed(proc, out, good)


# --------------------------------------------------------------------------- unknown sensor


def test_unknown_sensor(out: Path, good: tuple[Path, list[dict]]) -> None:
    # a usage error: no scene runs at all, the good one included
    proc = run_cli("run", good[0], "--sensor", "foo", "--out", out, cwd=out.parent)
    assert proc.returncode == 2, proc.stderr
    line = single_scene_error(proc, "foo", "known", *PROFILES)
    assert line.startswith(ERROR_PREFIX)
    assert proc.stdout == ""
    assert not out.exists()


# --------------------------------------------------------------------------- empty scene


def _empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "emptyscene"
    d.mkdir()
    return d


def _non_band_tif(tmp_path: Path) -> Path:
    d = _empty_dir(tmp_path)
    write_tif(d / "mask.tif", [np.ones((64, 64), np.uint8)])  # no band name anywhere
    (d / "notes.txt").write_text("B12 notes, not a raster\n")
    return d


@pytest.mark.slow
@pytest.mark.parametrize("make", [_empty_dir, _non_band_tif], ids=["empty-dir", "non-band-tif"])
def test_empty_scene(tmp_path: Path, out: Path, good: tuple[Path, list[dict]], make) -> None:
    bad = make(tmp_path)
    proc = run_with_good(bad, good[0], out)
    single_scene_error(proc, str(bad), "no band files")
    assert not (out / bad.name).exists()
    assert_good_completed(proc, out, good)


# --------------------------------------------------------------------------- NaN band


@pytest.mark.slow
@pytest.mark.parametrize("nodata", [None, float("nan")], ids=["no-nodata", "nodata-nan"])
@pytest.mark.parametrize("tiles", [(), SMALL_TILES], ids=["one-tile", "4-tiles"])
def test_nan_band(
    tmp_path: Path,
    out: Path,
    good: tuple[Path, list[dict]],
    nodata: float | None,
    tiles: tuple[str, ...],
) -> None:
    b11 = np.full((128, 128), 2200.0, np.float32)
    b12 = np.full((128, 128), np.nan, np.float32)
    bad = write_tif(
        tmp_path / "nanscene.tif", [b11, b12], descriptions=["B11", "B12"], nodata=nodata
    )
    proc = run_with_good(bad, good[0], out, *tiles)
    line = single_scene_error(proc, "nanscene", "B12", "no valid samples")
    assert "B11" not in line
    summary = json.loads((out / "nanscene" / "run.json").read_text())
    assert summary["ok"] is False
    assert summary["problems"] and all("B12" in p for p in summary["problems"])
    assert summary["tiles"]["failed"] == 0
    assert_good_completed(proc, out, good)


# --------------------------------------------------------------------------- wrong CRS


@pytest.mark.slow
def test_wrong_crs(tmp_path: Path, out: Path, good: tuple[Path, list[dict]]) -> None:
    bad = tmp_path / "crsmix"
    bad.mkdir()
    dn = np.full((64, 64), 2000, np.uint16)
    write_tif(bad / "B11.tif", [dn], crs="EPSG:32633")
    write_tif(bad / "B12.tif", [dn], crs="EPSG:32632")
    proc = run_with_good(bad, good[0], out)
    single_scene_error(proc, str(bad / "B12.tif"), "CRS", "32632")
    assert not (out / "crsmix").exists()
    assert_good_completed(proc, out, good)


# --------------------------------------------------------------------------- sanity


@pytest.mark.slow
def test_good_scene_alone(out: Path, good: tuple[Path, list[dict]]) -> None:
    """The reference scene alone: exit 0, silent stderr (so the checks above mean something)."""
    proc = run_cli("run", good[0], "--out", out, *SMALL_TILES, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    assert proc.stderr == ""
    assert_good_completed(proc, out, good)
