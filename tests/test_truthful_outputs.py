"""Issue 22: never say "nothing here" when the satellite did not look.

One test per defect of the issue, named after the behaviour it pins down, plus a property test
over random mutations of a real scene.  Each test failed before the fix.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import Point, box

from pipeline import Settings, run_scene
from pipeline.core.results import (
    CLASS_STATES,
    FOUND,
    NONE_FOUND,
    NOT_CHECKED,
    Detection,
    SceneResult,
    TileFailure,
)
from pipeline.errors import ConfigError, EotriageError, InputError
from pipeline.report.compact import CLASS_PROPERTIES, SKY_PROPERTIES, compact_geojson
from pipeline.report.factcheck import CLASS_STEMS, check
from pipeline.report.facts import facts_from_result
from pipeline.report.phrases import fact_phrases, template_summary
from pipeline.sensors import PROFILES, detect_sensor, parse_scaling
from pipeline.settings import CropSettings

from .conftest import REPO, SAMPLES, run_cli, write_tif

FIRE_DIR = SAMPLES / "s2_fire_G90292"
FIRE_TIF = FIRE_DIR / "G90292_20230514.tif"
VIRGINIA = SAMPLES / "s2_l1c_virginia_crop"
FIRE_ONLY = ("--detectors", "fire", "--no-llm")


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _truncated(dest: Path, keep: int = 300_000) -> Path:
    """The fire sample cut short: the header survives, the pixel strips do not."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(FIRE_TIF.read_bytes()[:keep])
    return dest


def _rewrite(src: Path, dest: Path, fn: Any, **profile: Any) -> Path:
    """``src`` with its pixels passed through ``fn`` (band descriptions and tags kept)."""
    with rasterio.open(src) as ds:
        prof = ds.profile
        prof.update(**profile)
        data = fn(ds.read())
        with rasterio.open(dest, "w", **prof) as out:
            out.write(data.astype(prof["dtype"]))
            for i, d in enumerate(ds.descriptions, 1):
                if d:
                    out.set_band_description(i, d)
            out.update_tags(**ds.tags())
    return dest


def _float_reflectance(dest: Path) -> Path:
    """G90292 stored as float reflectance, (DN - 1000) / 10000 (values 0.07 .. 1.5)."""
    return _rewrite(FIRE_TIF, dest, lambda a: (a - 1000.0) / 10000.0, dtype="float32")


def _reprojected_3857(dest: Path) -> Path:
    """G90292 (float DN) reprojected to EPSG:3857, as a user's GIS would."""
    with rasterio.open(FIRE_TIF) as ds:
        t, w, h = calculate_default_transform(ds.crs, "EPSG:3857", ds.width, ds.height, *ds.bounds)
        prof = ds.profile
        prof.update(crs="EPSG:3857", transform=t, width=w, height=h, nodata=0)
        with rasterio.open(dest, "w", **prof) as out:
            for i in range(1, ds.count + 1):
                dst = np.zeros((h, w), np.float32)
                reproject(
                    rasterio.band(ds, i),
                    dst,
                    dst_transform=t,
                    dst_crs="EPSG:3857",
                    resampling=Resampling.nearest,
                )
                out.write(dst, i)
                out.set_band_description(i, ds.descriptions[i - 1])
    return dest


# ============================================================ 1. a failed scene is "failed"


def test_truncated_scene_reports_failed_never_a_clear_scene(tmp_path: Path) -> None:
    bad = _truncated(tmp_path / "in" / "G90292_20230514.tif")
    proc = run_cli("run", bad, "--out", tmp_path / "out", "--no-llm", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    d = tmp_path / "out" / "G90292_20230514"
    run = _json(d / "run.json")
    assert run["ok"] is False and run["outcome"] == "failed"
    assert run["classes"]["fire"] == {
        "status": "not checked",
        "count": None,
        "coverage": 0.0,
        "reason": "all 1 tiles failed",
    }
    text = (d / "report.txt").read_text()
    assert text.startswith("Failed scan. ")
    for claim in ("clear", "nothing found", "nothing detected", "no fire", "no ships", "Low"):
        assert claim not in text, text
    assert "fire not checked (all 1 tiles failed)" in text
    compact = _json(d / "compact.geojson")["eotriage"]
    assert compact["outcome"] == "failed" and compact["counts"]["fire"] is None
    assert "G90292_20230514: failed scan: fire not checked (all 1 tiles failed)" in proc.stdout


def test_decode_of_a_failed_scene_says_so_and_exits_nonzero(tmp_path: Path) -> None:
    bad = _truncated(tmp_path / "in" / "G90292_20230514.tif")
    run_cli("run", bad, "--out", tmp_path / "out", *FIRE_ONLY, cwd=tmp_path)
    packets = tmp_path / "out" / "G90292_20230514" / "downlink.bin"
    proc = run_cli("decode", packets, "--out", tmp_path / "ground", "--no-html", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "outcome: failed" in proc.stdout
    assert "fire: not checked (all 1 tiles failed)" in proc.stdout
    assert "scan failed" in proc.stderr and "Traceback" not in proc.stderr
    # what the ground keeps says it too
    damage = _json(tmp_path / "ground" / "damage.json")
    assert damage["outcome"] == "failed"


def test_all_nan_b12_is_fire_not_checked_not_nothing_detected(tmp_path: Path) -> None:
    b11 = np.full((64, 64), 2200.0, np.float32)
    b12 = np.full((64, 64), np.nan, np.float32)
    scene = write_tif(tmp_path / "nanb12.tif", [b11, b12], descriptions=["B11", "B12"])
    result = run_scene(scene, Settings(detectors=("fire",)))
    fire = result.class_status()["fire"]
    assert fire.status == NOT_CHECKED and fire.count is None
    assert fire.reason == "no usable samples in band(s) B12"
    assert result.outcome == "failed"
    summary, _ = template_summary(facts_from_result(result))
    for claim in ("nothing detected", "nothing found", "no fire", "clear"):
        assert claim not in summary, summary
    assert summary.startswith("Failed scan. ")
    assert "fire not checked (no usable samples in B12)" in summary


def test_store_reads_a_failed_scene_as_not_checked(tmp_path: Path) -> None:
    """The store (ask) takes per-class status from run.json: a failed scan is no "0 fires"."""
    from pipeline.ask.store import class_status

    bad = _truncated(tmp_path / "in" / "G90292_20230514.tif")
    run_cli("run", bad, "--out", tmp_path / "out", *FIRE_ONLY, cwd=tmp_path)
    run = _json(tmp_path / "out" / "G90292_20230514" / "run.json")
    assert class_status(run)["fire"].startswith("not checked")
    good = run_scene(FIRE_DIR, Settings(detectors=("fire",)))
    from pipeline.runner import run_summary

    assert class_status(run_summary(good, 0, 0.0))["fire"] == "checked"


def test_failed_rerun_never_replaces_a_good_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    good = run_cli("run", FIRE_DIR, "--out", out, *FIRE_ONLY, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    kept = out / "s2_fire_G90292"
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    # a truncated copy under the same name, into the same folder
    bad = _truncated(tmp_path / "copy" / "s2_fire_G90292.tif")
    proc = run_cli("run", bad, "--out", out, *FIRE_ONLY, cwd=tmp_path)
    assert proc.returncode == 1
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before  # 12 fires kept
    beside = out / "s2_fire_G90292.failed"
    assert _json(beside / "run.json")["outcome"] == "failed"
    assert _json(beside / "run.json")["kept_result"] == str(kept)
    warning = [ln for ln in proc.stderr.splitlines() if "kept" in ln]
    assert len(warning) == 1 and str(kept) in warning[0] and str(beside) in warning[0]


def test_partial_rerun_that_looked_at_less_goes_beside_a_complete_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_cli("run", FIRE_DIR, "--out", out, *FIRE_ONLY, "--tile-size", "128", cwd=tmp_path)
    # cut into the pixel data: the first tiles read, the later ones fail
    bad = _truncated(tmp_path / "copy" / "s2_fire_G90292.tif", keep=1_700_000)
    proc = run_cli("run", bad, "--out", out, *FIRE_ONLY, "--tile-size", "128", cwd=tmp_path)
    assert proc.returncode == 1
    assert _json(out / "s2_fire_G90292" / "run.json")["counts"]["fire"] == 12
    side = _json(out / "s2_fire_G90292.partial" / "run.json")
    assert side["outcome"] == "partial" and 0 < side["classes"]["fire"]["coverage"] < 1


# ===================================================== 2. skipped detectors are "not checked"


def test_skipped_detectors_are_not_checked_in_report_run_json_and_facts(tmp_path: Path) -> None:
    proc = run_cli("run", FIRE_DIR, "--out", tmp_path / "out", "--no-llm", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "out" / "s2_fire_G90292"
    text = (d / "report.txt").read_text()
    assert "no ships" not in text and "no crop-stress" not in text
    # the cloud screen needs the same bands: one phrase for both
    assert "ships and clouds not checked (no B02, B03, B04, B08 bands)" in text
    assert "crop stress not checked (no B04, B08 bands)" in text
    run = _json(d / "run.json")
    assert run["outcome"] == "partial"
    assert run["classes"]["ship"]["status"] == "not checked"
    assert run["classes"]["fire"] == {"status": "found", "count": 12, "coverage": 1.0}
    facts = {c["cls"]: c for c in _json(d / "report.json")["facts"]["classes"]}
    assert facts["ship"]["checked"] is False and facts["ship"]["status"] == "not checked"
    assert facts["crop_stress"]["checked"] is False


def test_compact_count_zero_is_not_the_same_as_not_run(tmp_path: Path) -> None:
    from pipeline.testing.ship_scenes import write_ship_scene

    fire_only = run_scene(FIRE_DIR, Settings())  # ships and crop: no bands
    empty_port = write_ship_scene(tmp_path / "empty", 256, 256, (), land_cols=100, seed=1)
    looked = run_scene(empty_port, Settings(detectors=("fire", "ships")))  # found none
    a = compact_geojson(fire_only)["eotriage"]
    b = compact_geojson(looked)["eotriage"]
    assert a["counts"]["ship"] is None and a["classes"]["ship"]["status"] == NOT_CHECKED
    assert b["counts"]["ship"] == 0 and b["classes"]["ship"]["status"] == NONE_FOUND
    assert b["counts"]["crop_stress"] is None  # not enabled in that run
    assert b["classes"]["crop_stress"]["reason"] == "detector not enabled"


def test_one_status_vocabulary_in_every_product(tmp_path: Path) -> None:
    proc = run_cli("run", FIRE_DIR, "--out", tmp_path / "out", "--no-llm", cwd=tmp_path)
    assert proc.returncode == 0
    d = tmp_path / "out" / "s2_fire_G90292"
    run = _json(d / "run.json")
    report = _json(d / "report.json")
    compact = _json(d / "compact.geojson")["eotriage"]
    facts = {c["cls"]: c for c in report["facts"]["classes"]}
    assert report["outcome"] == report["facts"]["outcome"] == "partial"
    for doc in (run, {"outcome": "partial", "classes": facts}, compact):
        assert doc["outcome"] == "partial"
        assert {c: e["status"] for c, e in doc["classes"].items()} == {
            "fire": FOUND,
            "ship": NOT_CHECKED,
            "crop_stress": NOT_CHECKED,
        }
        assert set(e["status"] for e in doc["classes"].values()) <= set(CLASS_STATES)


# ============================================================ 3. scaling you can trust


def _fires(result: SceneResult) -> int:
    return result.counts()["fire"]


def test_float_reflectance_is_taken_as_reflectance(tmp_path: Path) -> None:
    scene = _float_reflectance(tmp_path / "G90292_refl.tif")
    result = run_scene(scene, Settings(detectors=("fire",)))
    assert _fires(result) == 12
    assert result.info["scaling_spec"] == "reflectance"
    assert "already in reflectance range" in result.info["scaling_reason"]


def test_reprojected_3857_float_scene_is_not_a_sentinel_hub_export(tmp_path: Path) -> None:
    scene = _reprojected_3857(tmp_path / "G90292_3857.tif")
    result = run_scene(scene, Settings(detectors=("fire",)))
    assert result.info["sensor"] == "sentinel2-l1c"
    assert "reprojected" in result.info["sensor_reason"]
    assert result.info["scaling_spec"] == "dn10000-offset"
    assert _fires(result) == 12


def test_13_band_float_reflectance_patch_is_reflectance(tmp_path: Path) -> None:
    """The same 13 bands stored as uint16 DN and as float reflectance give the same result."""
    names = [b.name for b in PROFILES["sentinel2-l1c"].bands]
    with rasterio.open(VIRGINIA / "B05.tif") as ref:
        shape, transform, crs = (ref.height, ref.width), ref.transform, ref.crs.to_string()
    dn = []
    for b in names:
        with rasterio.open(VIRGINIA / f"{b}.tif") as ds:
            dn.append(ds.read(1, out_shape=shape, resampling=Resampling.nearest))
    as_dn = write_tif(
        tmp_path / "patch_dn.tif", dn, crs=crs, transform=transform, descriptions=names
    )
    refl = [(a.astype(np.float32) / 10000.0) for a in dn]
    as_refl = write_tif(
        tmp_path / "patch_refl.tif", refl, crs=crs, transform=transform, descriptions=names
    )
    # crop stress is judged only inside a cropland layer: the sample's hand-drawn parcels
    crop = CropSettings(layers=(str(VIRGINIA / "parcels.geojson"),))
    a = run_scene(as_dn, Settings(detectors=("fire", "crop"), crop=crop))
    b = run_scene(as_refl, Settings(detectors=("fire", "crop"), crop=crop))
    assert a.info["scaling_spec"] == "dn10000" and b.info["scaling_spec"] == "reflectance"
    assert a.counts() == b.counts() and b.counts()["crop_stress"] > 0


def test_implausible_scaling_is_a_clear_error_naming_the_options(tmp_path: Path) -> None:
    scene = _rewrite(FIRE_TIF, tmp_path / "G90292_x100.tif", lambda a: a * 100.0)
    proc = run_cli("run", scene, "--out", tmp_path / "out", *FIRE_ONLY, cwd=tmp_path)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("eotriage: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    for word in ("implausible", "--scaling", "reflectance", "dn10000", "dn65535", "A*DN+B"):
        assert word in errors[0], errors[0]
    assert not (tmp_path / "out" / "G90292_x100").exists()
    # with --scaling the user's word is kept (the check warns), and run.json says so
    ok = run_cli("run", scene, "--out", tmp_path / "out", *FIRE_ONLY, "--scaling", "1e-6*DN-0.1")
    assert ok.returncode == 0, ok.stderr
    run = _json(tmp_path / "out" / "G90292_x100" / "run.json")
    assert run["input"]["scaling_reason"] == "set by user (--scaling)"
    assert run["counts"]["fire"] == 12


def test_scaling_and_sensor_overrides_and_info_say_why(tmp_path: Path) -> None:
    named, linear = parse_scaling("dn10000-offset"), parse_scaling("1e-4*DN-0.1")
    assert (named.scale, named.offset, named.kind) == (1e-4, -1000.0, "dn10000-offset")
    assert math.isclose(linear.scale, 1e-4) and math.isclose(linear.offset, -1000.0)
    assert linear.spec() == "dn10000-offset"
    lin = parse_scaling("2e-5*DN-0.1")
    assert lin.kind == "linear" and math.isclose(lin.apply(10_000), 0.1)
    with pytest.raises(ConfigError, match="A\\*DN\\+B"):
        parse_scaling("dn4096")
    with pytest.raises(ConfigError):
        Settings(scaling="bogus")
    proc = run_cli("info", FIRE_DIR)
    assert proc.returncode == 0
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("scaling"))
    assert "dn10000-offset" in line and "acquisition date 2023-05-14" in line
    assert "samples in DN range" in line
    forced = run_cli("info", FIRE_DIR, "--scaling", "dn10000", "--sensor", "sentinel2-l2a")
    assert "set by user (--scaling)" in forced.stdout and "set by user (--sensor)" in forced.stdout
    for cmd in (["info", FIRE_DIR], ["run", FIRE_DIR, "--out", tmp_path / "o"]):
        bad = run_cli(*cmd, "--scaling", "bogus")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


def test_sensor_is_not_told_from_the_crs_alone() -> None:
    toks = ["B02", "B03", "B04", "B08", "B11"]
    assert detect_sensor(toks, 3857, 10.0).profile.name == "sen2ships"
    assert detect_sensor(toks, 3857, 10.0, floating=True).profile.name == "sentinel2-l1c"
    esa = ["PROCESSING_BASELINE=05.09"]
    assert detect_sensor(toks, 3857, 10.0, esa).profile.name == "sentinel2-l1c"


def test_landsat_pan_band_does_not_set_the_working_grid(tmp_path: Path) -> None:
    from affine import Affine

    scene = tmp_path / "LC08_L1TP_044034_20200101"
    scene.mkdir()
    t30 = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_000.0)
    t15 = Affine(15.0, 0.0, 500_000.0, 0.0, -15.0, 4_000_000.0)
    dn = np.full((40, 40), 12_000, np.uint16)
    for b in ("B4", "B5", "B6", "B7"):
        write_tif(scene / f"LC08_{b}.tif", [dn], crs="EPSG:32610", transform=t30)
    pan = [np.full((80, 80), 12_000, np.uint16)]
    write_tif(scene / "LC08_B8.tif", pan, crs="EPSG:32610", transform=t15)
    from pipeline import open_scene

    s = open_scene(scene)
    assert s.profile.name == "landsat8-oli" and "B8" in s.band_names
    assert s.grid.width == 40 and abs(s.grid.transform.a) == 30.0


# ====================================================== 4. reports an operator reads once


def _port() -> SceneResult:
    """A port: 15 ships (one moored, the longest), 124 crop-stress areas, no fire bands."""
    ships = [
        Detection(
            "ship",
            0.95,
            Point(-7.6, 33.61),
            {"length_m": 310.0, "heading_deg": 128.0, "setting": "moored", "tiles": "r000c000"},
        )
    ] + [
        Detection("ship", 0.5, Point(-7.6 + i * 1e-3, 33.6), {"length_m": 50.0 + i})
        for i in range(14)
    ]
    crops = [
        Detection(
            "crop_stress",
            0.6,
            box(-7.58 + i * 1e-3, 33.60, -7.579 + i * 1e-3, 33.601),
            {"area_km2": 0.01, "severity": "severe", "row_min": 3},
        )
        for i in range(124)
    ]
    return SceneResult(
        "sen2ships_casablanca",
        tuple(ships + crops),
        (),
        (),
        1,
        {},
        {},
        {"fire": "skipped: needs band(s) B12", "ships": "ran", "crop": "ran"},
        {},
    )


def test_headline_names_the_class_that_leads() -> None:
    facts = facts_from_result(_port())
    summary, priority = template_summary(facts)
    assert re.match(r"Partial scan\. Medium priority, vessels detected: 15 ships found; ", summary)
    assert check(summary, priority, facts).ok
    # the report of the issue: a crop headline over a ship-first body
    bad = summary.replace("vessels detected", "crop stress areas")
    assert "names crop_stress" in check(bad, priority, facts).reason
    unnamed = summary.replace("vessels detected", "activity detected")
    assert "does not name ship" in check(unnamed, priority, facts).reason
    swapped = summary.replace(
        "15 ships found; 124 crop-stress areas found",
        "124 crop-stress areas found; 15 ships found",
    )
    assert "first fact" in check(swapped, priority, facts).reason


def test_llm_headlines_fit_the_facts() -> None:
    """The headlines the onboard model may choose are whole phrases of the class that leads,
    singular or plural by its count, and each passes the check in the template's place."""
    import dataclasses

    from pipeline.report.llm import HEADLINE_PHRASES, headline_choices

    port = _port()
    facts = facts_from_result(port)
    summary, priority = template_summary(facts)
    many = headline_choices(facts, "ship", 4)
    assert "vessel traffic" in many and "ships detected" in many
    assert not {"vessel detected", "ship detected"} & set(many)
    for h in many:
        assert check(summary.replace("vessels detected", h), priority, facts).ok, h
    one_ship = dataclasses.replace(port, detections=port.detections[:1])
    assert "vessel detected" in headline_choices(facts_from_result(one_ship), "ship", 4)
    assert "vessel traffic" not in headline_choices(facts_from_result(one_ship), "ship", 4)
    # at most ``headline_words`` words, or the shortest phrase
    assert all(len(h.split()) <= 2 for h in headline_choices(facts, "crop_stress", 2))
    assert headline_choices(facts, "crop_stress", 1) == ["crop stress"]
    # no phrase names another class than its own
    stems = {c: CLASS_STEMS[c] for c in ("fire", "ship", "crop_stress")}
    for cls, phrases in HEADLINE_PHRASES.items():
        for p, _ in phrases:
            for other, st_ in stems.items():
                named = any(w.startswith(s) for w in p.split() for s in st_)
                assert named == (other == cls), (cls, p, other)


def test_every_number_is_bound_to_its_class() -> None:
    facts = facts_from_result(_port())
    summary, priority = template_summary(facts, max_chars=1000)
    assert check(summary, priority, facts, max_chars=1000).ok
    # each phrase with a number names its class
    nouns = {"fire": "fire", "ship": "ship", "crop_stress": "crop"}
    for p in fact_phrases(facts):
        if re.search(r"\d", p.text) and p.cls is not None:
            assert nouns[p.cls] in p.text, p.text
    # Casablanca's "stressed field at ...; longest 310 m": a ship's length moved to a crop phrase
    crop_top = next(p.text for p in fact_phrases(facts) if p.key == "crop_top")
    ship_top = next(p.text for p in fact_phrases(facts) if p.key == "ship_top")
    moved = summary.replace(crop_top, crop_top + " 310 m").replace(ship_top + "; ", "")
    assert not check(moved, priority, facts, max_chars=1000).ok
    glued = summary.replace("15 ships found; ", "15 ships found 310 m; ")
    assert "not one of the fact phrases" in check(glued, priority, facts, 1000).reason


def test_details_follow_their_count_and_clear_needs_a_full_look() -> None:
    facts = facts_from_result(_port())
    summary, priority = template_summary(facts, max_chars=1000)
    crop_top = next(p.text for p in fact_phrases(facts) if p.key == "crop_top")
    parts = summary.removesuffix(".").split("; ")
    parts.remove(crop_top)
    parts.insert(parts.index("124 crop-stress areas found"), crop_top)  # before its count
    early = "; ".join(parts) + "."
    assert "comes before the count" in check(early, priority, facts, 1000).reason
    # "clear" only when every class was looked for over the whole scene
    fire_only = facts_from_result(SceneResult("x", (), (), (), 1, {}, {}, {"fire": "ran"}, {}))
    text, prio = template_summary(fire_only)
    assert fire_only.outcome == "complete" and check(text, prio, fire_only).ok
    clear = text.replace("nothing found", "clear scene")
    assert "claims a clear scene" in check(clear, prio, fire_only).reason
    busy = text.replace("nothing found", "active scene")
    assert "claims activity" in check(busy, prio, fire_only).reason


def test_no_internal_identifiers_in_the_report_text(tmp_path: Path) -> None:
    run_cli("run", FIRE_DIR, VIRGINIA, "--out", tmp_path / "out", "--no-llm", cwd=tmp_path)
    for d in (tmp_path / "out").iterdir():
        text = (d / "report.txt").read_text()
        assert not re.search(r"\btile\b|r\d{3}c\d{3}|\brow\b|\bcol\b|pixel row", text), text
    summary, _ = template_summary(facts_from_result(_port()), max_chars=2000)
    assert "r000c000" not in summary and "tile" not in summary


def test_moored_vessels_have_no_heading() -> None:
    result = _port()
    summary, _ = template_summary(facts_from_result(result), max_chars=1000)
    assert "longest ship 310 m moored at 33.610N 7.600W" in summary
    assert "heading" not in summary
    feats = compact_geojson(result, 200)["features"]
    moored = [f["properties"] for f in feats if f["properties"].get("setting") == "moored"]
    assert moored and all("heading_deg" not in p for p in moored)
    at_sea = [f["properties"] for f in feats if f["properties"]["class"] == "ship"][1:]
    assert all("heading_deg" not in p or p.get("setting") != "moored" for p in at_sea)


def _documented_properties() -> dict[str, str]:
    """property -> its row of the table in docs/outputs.md."""
    rows = {}
    for line in (REPO / "docs" / "outputs.md").read_text().splitlines():
        m = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_geojson_properties_are_documented_and_debug_fields_stay_onboard(tmp_path: Path) -> None:
    rows = _documented_properties()
    out = tmp_path / "out"
    run_cli("run", FIRE_DIR, VIRGINIA, SAMPLES / "sen2ships_honolulu", "--out", out, "--no-llm")
    seen_full: set[str] = set()
    seen_compact: set[str] = set()
    for d in out.iterdir():
        for f in _json(d / "detections.geojson")["features"]:
            seen_full |= set(f["properties"])
        for f in _json(d / "compact.geojson")["features"]:
            seen_compact |= set(f["properties"])
    assert seen_full - set(rows) == set(), "undocumented properties"
    in_compact = {k for props in CLASS_PROPERTIES.values() for k, _ in props} | {"class", "score"}
    in_compact |= {k for k, _ in SKY_PROPERTIES}
    assert seen_compact <= in_compact
    for prop, row in rows.items():
        assert ("| yes |" in row) == (prop in in_compact), row
    for debug in ("row_min", "col_min", "tiles", "one_sample_spill", "mean_score"):
        assert debug not in seen_compact and "debug" in rows[debug]


def test_no_placeholder_values_in_detections() -> None:
    result = run_scene(FIRE_DIR, Settings(detectors=("fire",)))
    for d in result.detections:
        for k, v in d.measures.items():
            assert not (isinstance(v, float) and v >= 99.0 and k.startswith("one_sample")), (k, v)
        if d.measures["native_samples"] >= 1.5:  # the one-sample checks did not apply
            assert not any(k.startswith("one_sample") for k in d.measures)


# ========================================== 5. validation and one-line errors, exit codes


@pytest.mark.parametrize("out", ["afile.txt/sub", "/proc/x"])
def test_run_output_path_problems_are_one_line_errors(tmp_path: Path, out: str) -> None:
    (tmp_path / "afile.txt").write_text("x")
    proc = run_cli("run", FIRE_DIR, "--out", out, *FIRE_ONLY, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("eotriage: error: ")
    assert out in proc.stderr and "Traceback" not in proc.stderr
    if out.startswith("afile"):
        assert "afile.txt is a file" in proc.stderr


def test_decode_output_problem_blames_the_output_not_the_input(tmp_path: Path) -> None:
    run_cli("run", FIRE_DIR, "--out", tmp_path / "out", *FIRE_ONLY)
    packets = tmp_path / "out" / "s2_fire_G90292" / "downlink.bin"
    proc = run_cli("decode", packets, "--out", "/proc/x", "--no-html", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("eotriage: error: /proc/x: cannot write decoded products")
    assert str(packets) not in proc.stderr and "downlink.bin" not in proc.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        ["run", FIRE_DIR, "--out", "o"],
        ["info", FIRE_DIR],
        ["stream", FIRE_DIR, "--rate", "0"],
        ["eval", "fire", FIRE_DIR],
        ["batch", FIRE_DIR, "--out", "o", "--workers", "1", "--in-process"],
    ],
    ids=lambda c: c[0] if isinstance(c, list) else str(c),
)
@pytest.mark.parametrize(
    "toml",
    ['[fire]\nratio_min = "high"\n', "[fire]\nmin_pixels = 2.7\n", 'tile_size = "512"\n'],
)
def test_bad_settings_exit_2_with_one_line_everywhere(
    tmp_path: Path, cmd: list[Any], toml: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    proc = run_cli("--config", cfg, *cmd, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[fire]\nratio_min = "high"', "[fire] ratio_min"),
        ('[fire]\nmin_pixels = "2"', "[fire] min_pixels"),
        ("[fire]\nratio_min = -1.5", "[fire] ratio_min"),
        ("[fire]\nmin_pixels = 2.7", "[fire] min_pixels"),
        ('tile_size = "512"', "tile_size"),
        ('scaling = "dn4096"', "scaling"),
    ],
)
def test_every_settings_value_is_checked_naming_the_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(toml + "\n")
    with pytest.raises(ConfigError) as err:
        Settings.from_toml(cfg)
    assert key in str(err.value) and "\n" not in str(err.value)
    # a plain string names one detector, not four letters
    assert Settings.from_mapping({"detectors": "fire"}).detectors == ("fire",)


@pytest.mark.parametrize(
    "cmd",
    [
        ["run", FIRE_DIR, "--out", "o", "--detectors", "fire,boats"],
        ["run", FIRE_DIR, "--out", "o", "--sensor", "spot7"],
        ["info", FIRE_DIR, "--sensor", "spot7"],
        ["stream", FIRE_DIR, "--detectors", "boats"],
        ["stream", FIRE_DIR, "--sensor", "spot7"],
        ["stream", FIRE_DIR, "--tile-size", "8"],
    ],
)
def test_bad_options_exit_2(tmp_path: Path, cmd: list[Any]) -> None:
    proc = run_cli(*cmd, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_budget_held_back_detections_are_waiting_not_damage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", FIRE_DIR, "--out", out, *FIRE_ONLY, "--downlink-budget", "600")
    assert proc.returncode == 0, proc.stderr
    run = _json(out / "s2_fire_G90292" / "run.json")
    assert "detections[0]" in run["downlink"]["waiting"]
    dec = run_cli(
        "decode", out / "s2_fire_G90292" / "downlink.bin", "--out", tmp_path / "g", "--no-html"
    )
    assert dec.returncode == 0, dec.stdout + dec.stderr
    assert "damage: none" in dec.stdout
    assert "12 detection(s) waiting onboard" in dec.stdout
    damage = _json(tmp_path / "g" / "damage.json")
    assert damage["missing_features"] == [] and len(damage["features_waiting_onboard"]) == 12


def test_budget_cut_inside_the_detections_keeps_lost_and_waiting_apart() -> None:
    from ground_decoder import decode_stream
    from pipeline.downlink import encode_scene

    result = _port()
    compact = compact_geojson(result, 139)
    plan = encode_scene(None, compact, features_per_chunk=20, budget_bytes=800)
    waiting = [p for p in plan.waiting if p.kind.label == "detections"]
    assert waiting  # some chunks wait
    dec = decode_stream(plan.packets)
    assert dec.damage.ok and not dec.damage.missing_features
    assert len(dec.waiting_features) == sum(p.features for p in waiting)
    assert dec.outcome == "partial" and dec.class_status()["fire"]["status"] == NOT_CHECKED
    # a sent chunk lost on the way is damage, and the waiting ones still are not
    from pipeline.wire.ccsds import scan_stream

    pkts, _ = scan_stream(plan.packets)
    lost = next(p for p in pkts if p.packet.kind == 2 and p.packet.item == 1)
    size = len(lost.packet.pack())
    cut = plan.packets[: lost.offset] + plan.packets[lost.offset + size :]
    dec2 = decode_stream(cut)
    assert len(dec2.damage.missing_features) == 20
    assert len(dec2.waiting_features) == len(dec.waiting_features)


def test_stac_items_carry_the_outcome_and_class_status(tmp_path: Path) -> None:
    pytest.importorskip("pystac", reason="pystac not installed (extra 'cluster')")
    from ground_decoder.stac import item_from_dir

    bad = _truncated(tmp_path / "in" / "G90292_20230514.tif")
    run_cli("run", FIRE_DIR, bad, "--out", tmp_path / "out", "--no-llm")
    good = item_from_dir(tmp_path / "out" / "s2_fire_G90292").properties
    failed = item_from_dir(tmp_path / "out" / "G90292_20230514").properties
    assert good["eotriage:outcome"] == "partial" and failed["eotriage:outcome"] == "failed"
    assert good["eotriage:classes"]["ship"]["status"] == "not checked"
    assert failed["eotriage:classes"]["fire"]["reason"] == "all 1 tiles failed"
    # and from what the ground decoded
    run_cli(
        "decode",
        tmp_path / "out" / "G90292_20230514" / "downlink.bin",
        "--out",
        tmp_path / "g",
        "--no-html",
    )
    assert item_from_dir(tmp_path / "g").properties["eotriage:outcome"] == "failed"


def test_old_manifests_still_decode() -> None:
    from pipeline.wire import codec
    from pipeline.wire.products import Manifest

    old = codec.pack({"v": 1, "scene": "x", "sent": [[0, 0, 1]], "waiting": [], "features": 3})
    m = Manifest.unpack(old)
    assert m.outcome is None and m.classes == () and m.features_waiting is None
    new = Manifest("x", ((0, 0, 1),), (), 3, "partial", (("ship", "not checked", None),), 0)
    assert Manifest.unpack(new.pack()) == new


# ============================================================== 6. docs against behaviour


def _sh_examples() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no ```sh example block"
    cmds = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path: Path) -> None:
    import shlex
    import subprocess
    import sys

    (tmp_path / "sample_scenes").symlink_to(SAMPLES)
    for line in _sh_examples():
        args = shlex.split(line)
        assert args[0] == "eotriage", line
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args[1:]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=900,
        )
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"


def test_readme_mentions_out_for_simulate_and_documents_the_products() -> None:
    text = (REPO / "README.md").read_text()
    for line in text.splitlines():
        if line.startswith("eotriage simulate"):
            assert "--out" in line, line
    for field in ("outcome", "classes", "not checked", "--scaling"):
        assert field in text


def test_stream_rate_counts_10_m_lines() -> None:
    proc = run_cli("stream", FIRE_DIR, "--rate", "664000", "--detectors", "fire")
    assert proc.returncode == 0, proc.stderr
    # G90292 is on a 20 m grid: 664 10 m lines/s are 332 of its lines/s
    assert "664000 10 m lines/s = 3.32e+05 lines/s of its 20 m grid" in proc.stdout


def test_run_time_includes_model_load(tmp_path: Path) -> None:
    """The seconds `run` prints cover the report model's load (and the detectors' models)."""
    from pipeline.report.writer import ReportWriter
    from pipeline.runner import SceneRunner
    from pipeline.settings import ReportSettings

    class SlowLoad:
        loaded = False
        model_name, model_sha256 = "slow", "0" * 64

        def load(self) -> None:
            time.sleep(1.0)
            self.loaded = True

        def write(self, facts: Any, timeout_s: float | None = None) -> Any:
            raise EotriageError("no text from this stand-in")

        def close(self) -> None:
            pass

    writer = ReportWriter(ReportSettings(), reporter=SlowLoad())  # type: ignore[arg-type]
    with SceneRunner(tmp_path, Settings(detectors=("fire",)), reports=writer) as runner:
        outcome = runner.run(FIRE_DIR)
    assert outcome.seconds >= 1.0
    run = _json(tmp_path / "s2_fire_G90292" / "run.json")
    assert outcome.seconds >= 1.0 + run["timings_s"]["load_models"]


def test_run_prints_the_whole_wall_time(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    proc = run_cli("run", FIRE_DIR, "--out", tmp_path / "out", *FIRE_ONLY)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    scene_s = float(re.search(r"\((\d+\.\d) s\)", proc.stdout).group(1))  # type: ignore[union-attr]
    m = re.search(
        r"^1 scene in (\d+\.\d) s \(whole run: start-up, model loading", proc.stdout, re.M
    )
    assert m, proc.stdout
    total = float(m.group(1))
    assert scene_s <= total <= wall + 0.1


def _options(cmd: Any, path: list[str]) -> list[tuple[str, Any]]:
    import click

    out = []
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out += _options(sub, [*path, name])
    else:
        out += [(" ".join(path), p) for p in cmd.params if isinstance(p, click.Option)]
    return out


def test_every_option_has_help_text() -> None:
    from pipeline.cli import cli

    missing = [
        f"{where} {'/'.join(o.opts)}"
        for where, o in _options(cli, ["eotriage"])
        if not o.help and not o.hidden
    ]
    assert missing == []


def test_uplink_payload_option_means_the_same_everywhere() -> None:
    from pipeline.cli import cli

    visible = {
        (where, opt)
        for where, o in _options(cli, ["eotriage"])
        for opt in o.opts
        if "uplink" in where and opt in ("--target", "--payload") and not o.hidden
    }
    assert ("eotriage uplink sign", "--payload") in visible
    assert ("eotriage uplink verify", "--payload") in visible
    assert ("eotriage uplink install", "--payload") in visible
    # --target is only the install folder
    assert [w for w, opt in visible if opt == "--target"] == ["eotriage uplink install"]


# ============================================================== 7. the property


def _mutate(src: Path, dest: Path, kind: str, band: int, x: int, y: int, size: int, n: int) -> Path:
    if kind == "truncate":
        data = src.read_bytes()
        dest.write_bytes(data[: 2_000 + n % (len(data) - 2_000)])
        return dest

    def fn(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        win = (band, slice(y, y + size), slice(x, x + size))
        if kind == "nan":
            a[win] = np.nan
        elif kind == "zero":
            a[win] = 0.0
        elif kind == "stuck_rows":
            a[band, y : y + max(3, size // 8), :] = a[band, y, 0]
        elif kind == "bitflips":
            rng = np.random.default_rng(n)
            flat = a[band].view(np.uint32).ravel()
            idx = rng.integers(0, flat.size, size=1 + size)
            flat[idx] ^= np.uint32(1) << rng.integers(20, 31, size=idx.size).astype(np.uint32)
        return a

    return _rewrite(src, dest, fn)


@pytest.fixture(scope="module")
def clean_fires() -> int:
    return _fires(run_scene(FIRE_DIR, Settings(detectors=("fire",), tile_size=128)))


@pytest.mark.slow
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(["nan", "zero", "truncate", "stuck_rows", "bitflips"]),
    band=st.integers(0, 2),
    x=st.integers(0, 399),
    y=st.integers(0, 399),
    size=st.integers(1, 200),
    n=st.integers(0, 2**31),
)
def test_a_mutated_scene_is_never_complete_with_fewer_detections(
    tmp_path_factory: pytest.TempPathFactory,
    clean_fires: int,
    kind: str,
    band: int,
    x: int,
    y: int,
    size: int,
    n: int,
) -> None:
    d = tmp_path_factory.mktemp("mut")
    scene = _mutate(FIRE_TIF, d / "G90292_20230514.tif", kind, band, x, y, size, n)
    try:
        result = run_scene(scene, Settings(detectors=("fire",), tile_size=128))
    except InputError:
        return  # the scene could not be opened: nothing was claimed
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if _fires(result) < clean_fires:
        assert result.outcome in ("partial", "failed"), (kind, result.outcome_reasons)
        assert result.class_status()["fire"].coverage < 1.0


def test_outcome_rules_on_hand_made_results() -> None:
    def res(detectors: dict[str, str], failures: int = 0, total: int = 4) -> SceneResult:
        fails = tuple(TileFailure(f"r000c{i:03d}", (0, 0, 1, 1), "boom") for i in range(failures))
        return SceneResult("x", (), fails, (), total, {}, {}, detectors, {})

    assert res({"fire": "ran"}).outcome == "complete"
    assert res({"fire": "ran", "ships": "skipped: needs band(s) B03"}).outcome == "partial"
    assert res({"fire": "ran"}, failures=1).outcome == "partial"
    assert res({"fire": "ran"}, failures=1).class_status()["fire"].coverage == 0.75
    assert res({"fire": "ran"}, failures=4).outcome == "failed"
    # not enabled is "not checked", but the scan of what was asked for is complete
    r = res({"fire": "ran"})
    assert r.class_status()["ship"].reason == "detector not enabled"
    assert r.class_status()["fire"].status == NONE_FOUND
