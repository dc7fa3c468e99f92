"""Report writer without the LLM: facts, template, fact check, compact GeoJSON, run outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from pipeline.core.results import Detection, SceneResult
from pipeline.errors import ConfigError, ModelError
from pipeline.report.compact import COMPACT_DECIMALS, compact_geojson
from pipeline.report.factcheck import check
from pipeline.report.facts import facts_from_result
from pipeline.report.gguf import resolve_model
from pipeline.report.phrases import fact_phrases, fmt_area, fmt_lonlat, template_summary
from pipeline.report.writer import ReportWriter
from pipeline.settings import ReportSettings, Settings
from pipeline.testing.samples import PLACES, random_result

from .conftest import run_cli

SEEDS = st.integers(min_value=0, max_value=10_000)


def _result(dets: list[Detection], detectors: tuple[str, ...], **info: object) -> SceneResult:
    return SceneResult(
        scene="hand_made",
        detections=tuple(dets),
        failures=(),
        problems=(),
        tiles_total=1,
        timings_s={},
        models={},
        detectors=dict.fromkeys(detectors, "ok"),
        info=info,
    )


def _ships_and_crop() -> SceneResult:
    ships = [
        Detection("ship", 0.9, Point(-157.87, 21.30), {"length_m": 182.4, "heading_deg": 241.0}),
        Detection("ship", 0.8, Point(-157.86, 21.31), {"length_m": 35.0}),
        Detection("ship", 0.7, Point(-157.85, 21.32), {}),  # no measures at all
    ]
    crop = [
        Detection("crop_stress", 0.6, box(-157.9, 21.4, -157.8, 21.5), {"area_km2": 2.5}),
        Detection(
            "crop_stress",
            0.5,
            box(-157.7, 21.4, -157.6, 21.5),
            {"area_km2": 0.75, "severity": "high", "centroid_lon": -157.65, "centroid_lat": 21.45},
        ),
    ]
    return _result(
        ships + crop, ("ships", "crop"), place="Honolulu", datetime="2024-05-01T22:15:07Z"
    )


@pytest.fixture(scope="module")
def fire_result(fire_scene: Path) -> SceneResult:
    from pipeline import Settings, run_scene

    return run_scene(fire_scene, Settings(detectors=("fire",)))


# --- facts ---


def test_facts_of_real_fire_scene(fire_result: SceneResult) -> None:
    facts = facts_from_result(fire_result)
    fire = facts.of("fire")
    fires = [d for d in fire_result.detections if d.cls == "fire"]
    assert fire.count == len(fires) == 12
    assert fire.total_pixels == sum(int(d.measures["pixel_count"]) for d in fires) == 105
    assert fire.total_area_m2 == pytest.approx(sum(float(d.measures["area_m2"]) for d in fires))
    biggest = max(fires, key=lambda d: float(d.measures["area_m2"]))
    assert fire.top is not None and fire.top.area_m2 == biggest.measures["area_m2"]
    # the ship and crop detectors did not run: the report must not claim "no ships"
    assert not facts.of("ship").checked and not facts.of("crop_stress").checked


def test_facts_of_ships_and_crop_tolerate_missing_measures() -> None:
    facts = facts_from_result(_ships_and_crop())
    ship, crop, fire = facts.of("ship"), facts.of("crop_stress"), facts.of("fire")
    assert (ship.count, crop.count, fire.count) == (3, 2, 0)
    assert not fire.checked
    assert ship.longest_m == 182.4 and ship.top is not None and ship.top.heading_deg == 241.0
    assert crop.total_area_m2 == pytest.approx(3.25e6)
    assert crop.worst_severity == "high"
    assert facts.place == "Honolulu" and facts.time_utc == "2024-05-01 22:15 UTC"
    text = " ".join(p.text for p in fact_phrases(facts))
    assert "3 ships found" in text and "2 crop-stress areas found" in text
    # the fire detector was not enabled: the report says so, and never "no fire clusters"
    assert "fire not checked (not enabled)" in text and "no fire" not in text
    assert "longest ship 182 m at 21.300N 157.870W, heading 241°" in text
    assert "crop stress on 3.25 km², worst severity high" in text


def test_renderers() -> None:
    assert fmt_area(400) == "400 m²" and fmt_area(42_000) == "4.2 ha"
    assert fmt_area(3_250_000) == "3.25 km²"
    assert fmt_lonlat(-123.2618, 58.0883) == "58.088N 123.262W"
    assert fmt_lonlat(18.6, -33.9) == "33.900S 18.600E"


# --- template and fact check ---


def test_template_of_real_fire_scene(fire_result: SceneResult) -> None:
    facts = facts_from_result(fire_result)
    summary, priority = template_summary(facts)
    assert priority == "high"
    assert summary.startswith("Complete scan. High priority, active fire: 12 fire clusters found; ")
    assert "; largest fire cluster 1.5 ha at 58.088N 123.262W;" in summary
    assert "; fire area 4.2 ha in total (105 hot pixels)" in summary
    assert "no ships" not in summary and "ships and crop stress not checked" in summary
    assert check(summary, priority, facts).ok


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, max_chars=st.integers(min_value=120, max_value=400))
def test_template_always_passes_the_check(seed: int, max_chars: int) -> None:
    facts = facts_from_result(random_result(seed))
    summary, priority = template_summary(facts, max_chars)
    verdict = check(summary, priority, facts, max_chars)
    assert verdict.ok, (summary, verdict.problems)
    assert len(summary) <= max_chars
    for c in facts.classes:
        if c.count:
            assert re.search(rf"(?<!\d){c.count} ", summary), (c.cls, summary)


@settings(max_examples=150, deadline=None)
@given(seed=SEEDS, delta=st.integers(min_value=1, max_value=9), data=st.data())
def test_an_injected_wrong_number_fails(seed: int, delta: int, data: st.DataObject) -> None:
    facts = facts_from_result(random_result(seed))
    summary, priority = template_summary(facts)
    numbers = list(re.finditer(r"\d+", summary))
    assume_numbers = [m for m in numbers if not summary[: m.start()].endswith("gen_")]
    if not assume_numbers:
        return
    m = data.draw(st.sampled_from(assume_numbers))
    wrong = str(int(m.group()) + delta)
    bad = summary[: m.start()] + wrong + summary[m.end() :]
    verdict = check(bad, priority, facts)
    assert not verdict.ok, (bad, summary)


@settings(max_examples=150, deadline=None)
@given(seed=SEEDS)
def test_swapped_class_counts_fail(seed: int) -> None:
    facts = facts_from_result(random_result(seed))
    counts = facts.counts()
    present = [c for c in ("fire", "ship", "crop_stress") if facts.of(c).checked]
    pairs = [(a, b) for a in present for b in present if a < b and counts[a] != counts[b]]
    if not pairs:
        return
    a, b = pairs[0]
    summary, priority = template_summary(facts)
    words = {"fire": r"fire clusters?", "ship": r"ships?", "crop_stress": r"crop-stress areas?"}
    # swap the two counts in the text, keep everything else
    sa = re.search(rf"(?<![\w.])(\d+|no) ({words[a]})", summary)
    sb = re.search(rf"(?<![\w.])(\d+|no) ({words[b]})", summary)
    assert sa and sb
    swapped = summary.replace(sa.group(0), "\0A").replace(sb.group(0), "\0B")
    swapped = swapped.replace("\0A", f"{sb.group(1)} {sa.group(2)}")
    swapped = swapped.replace("\0B", f"{sa.group(1)} {sb.group(2)}")
    verdict = check(swapped, priority, facts)
    assert not verdict.ok, swapped


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, place=st.sampled_from(["Lisbon", "Port Moresby", "Nuuk", *PLACES]))
def test_an_invented_place_fails(seed: int, place: str) -> None:
    facts = facts_from_result(random_result(seed))
    summary, priority = template_summary(facts)
    if facts.place == place:
        return
    bad = summary[:-1] + f"; near {place}."
    assert not check(bad, priority, facts, max_chars=1000).ok


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("3 ships", "three ships"),
        lambda s: s.replace("3 ships", "3 ships; wildfire spotted"),
        lambda s: s.replace("active", "busy harbour, no fire") if "active" in s else s + " no fire",
        lambda s: s.replace("Medium priority", "Low priority"),
        lambda s: s.replace("3 ships", "3 ships; 7 boats"),
        lambda s: s.replace("3 ships", "3 ships" + " and more" * 40),
        lambda s: s.replace("3 ships found; ", ""),
    ],
)
def test_check_rejects_other_lies(edit: object) -> None:
    facts = facts_from_result(_ships_and_crop())
    summary, priority = template_summary(facts)
    assert check(summary, priority, facts).ok
    bad = edit(summary)  # type: ignore[operator]
    assert bad != summary
    assert not check(bad, priority, facts).ok


def test_check_rejects_a_priority_the_facts_do_not_allow(fire_result: SceneResult) -> None:
    facts = facts_from_result(fire_result)
    summary, _ = template_summary(facts)
    verdict = check(summary.replace("High", "Low", 1), "low", facts)
    assert not verdict.ok and "priority" in verdict.reason


# --- compact GeoJSON ---


def test_compact_geojson_budget_and_omitted(fire_result: SceneResult) -> None:
    full = compact_geojson(fire_result, 50)
    small = compact_geojson(fire_result, 5)
    assert len(full["features"]) == 12 and len(small["features"]) == 5
    assert small["eotriage"] == {
        "scene": "s2_fire_G90292",
        # ships and crop stress were not looked for: null, never 0
        "counts": {"ship": None, "fire": 12, "crop_stress": None},
        "omitted": {"ship": 0, "fire": 7, "crop_stress": 0},
        "outcome": "complete",
        "outcome_reasons": [],
        "classes": {
            "fire": {"status": "found", "count": 12, "coverage": 1.0},
            "ship": {
                "status": "not checked",
                "count": None,
                "coverage": 0.0,
                "reason": "detector not enabled",
            },
            "crop_stress": {
                "status": "not checked",
                "count": None,
                "coverage": 0.0,
                "reason": "detector not enabled",
            },
        },
    }
    scores = [f["properties"]["score"] for f in full["features"]]
    assert scores == sorted(scores, reverse=True)
    assert small["features"] == full["features"][:5]
    props = full["features"][0]["properties"]
    assert set(props) == {"class", "score", "area_m2", "pixel_count", "max_swir22_reflectance"}
    for f in full["features"]:
        for ring in f["geometry"]["coordinates"]:
            assert len(ring) >= 4 and ring[0] == ring[-1]
            for x, y in ring:
                assert round(x, COMPACT_DECIMALS) == x and round(y, COMPACT_DECIMALS) == y
    # deterministic and JSON round-trips to the same value
    assert json.loads(json.dumps(full)) == full == compact_geojson(fire_result, 50)
    assert len(json.dumps(full)) < len(fire_result.geojson_bytes())


def test_compact_geojson_ships_and_crop() -> None:
    result = _ships_and_crop()
    doc = compact_geojson(result, 2)
    assert [f["properties"]["class"] for f in doc["features"]] == ["ship", "ship"]
    assert doc["features"][0]["properties"] == {
        "class": "ship",
        "score": 0.9,
        "length_m": 182,
        "heading_deg": 241,
    }
    assert doc["features"][0]["geometry"] == {"type": "Point", "coordinates": [-157.87, 21.3]}
    assert doc["eotriage"]["omitted"] == {"ship": 1, "fire": 0, "crop_stress": 2}
    crop = compact_geojson(result, 10)["features"][-1]["properties"]
    assert crop == {"class": "crop_stress", "score": 0.5, "area_km2": 0.75, "severity": "high"}
    assert compact_geojson(result, 0)["features"] == []
    with pytest.raises(ValueError):
        compact_geojson(result, -1)


# --- settings, model file ---


def test_report_settings_from_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "e.toml"
    cfg.write_text('[report]\nuse_llm = false\nmax_features = 7\nmodel_path = "/x/m.gguf"\n')
    s = Settings.from_toml(cfg)
    assert s.report == ReportSettings(use_llm=False, max_features=7, model_path=Path("/x/m.gguf"))
    cfg.write_text("[report]\ntimeout_s = 0\n")
    with pytest.raises(ConfigError, match="timeout_s"):
        Settings.from_toml(cfg)
    cfg.write_text("[report]\nbogus = 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        Settings.from_toml(cfg)


def test_model_file_is_verified(tmp_path: Path) -> None:
    fake = tmp_path / "other.gguf"
    fake.write_bytes(b"GGUF not really a model")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        resolve_model(ReportSettings(model_path=fake, model_sha256="0" * 64))
    with pytest.raises(ModelError, match="not found"):
        resolve_model(ReportSettings(model_path=tmp_path / "missing.gguf"))


def test_unloadable_model_falls_back_to_the_template(tmp_path: Path) -> None:
    fake = tmp_path / "other.gguf"
    fake.write_bytes(b"x")
    settings = ReportSettings(model_path=fake, model_sha256="f" * 64)
    with ReportWriter(settings) as w:
        r1 = w.report(_ships_and_crop())
        r2 = w.report(_ships_and_crop())
    assert r1.writer == r2.writer == "template"
    assert r1.fallback_reason is not None and "sha256 mismatch" in r1.fallback_reason
    assert check(r1.summary, r1.priority, r1.facts).ok


# --- run outputs ---


def _report_matches_geojson(scene_dir: Path) -> None:
    """report.txt passes the fact check against facts rebuilt from detections.geojson."""
    features = json.loads((scene_dir / "detections.geojson").read_text())["features"]
    run = json.loads((scene_dir / "run.json").read_text())
    rebuilt = SceneResult(
        scene=run["scene"],
        detections=tuple(Detection.from_feature(f) for f in features),
        failures=(),
        problems=(),
        tiles_total=1,
        timings_s={},
        models={},
        detectors=run["detectors"],
        info=run["input"],
    )
    facts = facts_from_result(rebuilt)
    report = json.loads((scene_dir / "report.json").read_text())
    text = (scene_dir / "report.txt").read_text().strip()
    assert text == report["summary"]
    verdict = check(text, report["priority"], facts)
    assert verdict.ok, (text, verdict.problems)


def _numbers_match_geojson(scene_dir: Path) -> None:
    _report_matches_geojson(scene_dir)
    features = json.loads((scene_dir / "detections.geojson").read_text())["features"]
    text = (scene_dir / "report.txt").read_text().strip()
    fires = [f["properties"] for f in features if f["properties"]["class"] == "fire"]
    assert f"{len(fires)} fire clusters" in text
    assert f"{sum(p['pixel_count'] for p in fires)} hot pixels" in text
    assert "fire area " + fmt_area(sum(p["area_m2"] for p in fires)) + " in total" in text
    big = max(fires, key=lambda p: p["area_m2"])
    pos = fmt_lonlat(big["centroid_lon"], big["centroid_lat"])
    if "largest" in text:
        assert f"largest fire cluster {fmt_area(big['area_m2'])} at {pos}" in text
    # every number but the scene name's, the acquisition time's and the band names of what was
    # not checked is a fact of the detections
    bare = re.sub(r"acquired [^;]*?UTC", "", text.replace("s2_fire_G90292", ""))
    bare = re.sub(r"not checked \([^)]*\)", "", bare)
    for num in re.findall(r"\d+(?:\.\d+)?", bare):
        assert num in json.dumps(features) or num in (
            str(len(fires)),
            fmt_area(sum(p["area_m2"] for p in fires)).split()[0],
            fmt_area(big["area_m2"]).split()[0],
            *re.findall(r"\d+\.\d+", pos),
        ), num


def test_run_no_llm_writes_report_files(tmp_path: Path, fire_scene: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", fire_scene, "--out", out, "--no-llm", "--max-features", "4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    d = out / "s2_fire_G90292"
    report = json.loads((d / "report.json").read_text())
    assert report["writer"] == "template" and report["fallback_reason"] is None
    assert (
        report["priority"] == "high" and report["summary"] == (d / "report.txt").read_text().strip()
    )
    assert report["facts"]["classes"][0]["count"] == 12
    compact = json.loads((d / "compact.geojson").read_text())
    assert len(compact["features"]) == 4 and compact["eotriage"]["omitted"]["fire"] == 8
    run = json.loads((d / "run.json").read_text())
    assert run["report"]["writer"] == "template"
    assert run["output_bytes"]["report.txt"] == (d / "report.txt").stat().st_size
    _numbers_match_geojson(d)


def test_run_rejects_bad_report_options(tmp_path: Path, fire_scene: Path) -> None:
    for opts in (["--max-features", "-1"], ["--llm-timeout", "0"]):
        proc = run_cli("run", fire_scene, "--out", tmp_path, *opts)
        assert proc.returncode == 2, proc.stderr
