"""Ask v2: acquisition times in the store, "not checked" vs "none found", restated answers,
unique question ids, and one-line errors for bad paths."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pipeline.ask.answer import answer_question
from pipeline.ask.query import Question
from pipeline.ask.store import DetectionStore, StoreError, class_status
from pipeline.core.acquisition import normalise_time, scene_acquisition
from pipeline.wire.qa import decode_qa, encode_questions

from .conftest import SAMPLES, run_cli, write_tif
from .test_ask import feature

FIRE = SAMPLES / "s2_fire_G90292"
HONOLULU = SAMPLES / "sen2ships_honolulu"
VIRGINIA = SAMPLES / "s2_l1c_virginia_crop"


# ---------------------------------------------------------------- acquisition times


def test_acquisition_of_the_sample_scenes() -> None:
    a = scene_acquisition(FIRE)
    assert a.utc == "2023-05-14" and "scene.json" in a.source
    # the GeoTIFF alone: its band descriptions carry the date
    a = scene_acquisition(FIRE / "G90292_20230514.tif")
    assert a.utc == "2023-05-14" and "band description" in a.source
    assert scene_acquisition(HONOLULU).utc == "2023-01-08"
    assert scene_acquisition(HONOLULU).kind == "port" and scene_acquisition(FIRE).kind is None
    v = scene_acquisition(VIRGINIA)
    assert v.utc is None and v.source.startswith("unknown") and "Virginia" in v.places


def test_acquisition_of_a_shared_sen2ships_port(shared_data: Path) -> None:
    a = scene_acquisition(shared_data / "sen2ships" / "busan")
    assert (a.utc, a.source, a.places) == ("2022-05-14", "labels.json acquisition_date", ("Busan",))
    assert a.kind == "port"
    assert scene_acquisition(shared_data / "s2_l1c_virginia").utc is None


def test_acquisition_sources_in_order(tmp_path: Path) -> None:
    band = np.ones((8, 8), dtype=np.uint16)
    # TIFFTAG_DATETIME is the file's write time: never taken as the acquisition time
    f = write_tif(tmp_path / "B02.tif", [band], descriptions=["B02"])
    import rasterio

    with rasterio.open(f, "r+") as ds:
        ds.update_tags(TIFFTAG_DATETIME="2026:12:01 10:00:00")
    assert scene_acquisition(tmp_path).utc is None
    with rasterio.open(f, "r+") as ds:
        ds.update_tags(ACQUISITION_DATE="2024-03-02T10:31:07.5Z")
    a = scene_acquisition(tmp_path)
    assert (a.utc, a.source) == ("2024-03-02T10:31:07Z", "GeoTIFF tag ACQUISITION_DATE (B02.tif)")
    (tmp_path / "scene.json").write_text(json.dumps({"acquired_utc": "2024-03-01"}))
    assert scene_acquisition(tmp_path).utc == "2024-03-01"  # the sidecar wins
    assert scene_acquisition(tmp_path, "2025-01-01T12:00").utc == "2025-01-01T12:00:00Z"
    named = write_tif(tmp_path / "S2B_20220514T021551_B12.tif", [band], descriptions=["B12"])
    assert scene_acquisition(named).utc == "2022-05-14T02:15:51Z"


def test_normalise_time() -> None:
    assert normalise_time("2023-05-14") == "2023-05-14"
    assert normalise_time("2023-05-14T19:09:19+02:00") == "2023-05-14T17:09:19Z"
    assert normalise_time("20230514") == "2023-05-14"
    assert normalise_time("2023-02-30") is None
    assert normalise_time("no date here") is None


# ---------------------------------------------------------------- the store through the CLI


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    proc = run_cli("run", FIRE, HONOLULU, VIRGINIA, "--out", out, "--no-llm")
    assert proc.returncode in (0, 1), proc.stderr
    return out


def _store_times(db: Path) -> dict[str, tuple[str | None, str]]:
    with DetectionStore(db, create=False) as s:
        return {r.name: (r.acquired_utc, r.acquired_source) for r in s.scene_records()}


def test_store_keeps_real_acquisition_times(runs: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    proc = run_cli("store", "add", *(runs / s.name for s in (FIRE, HONOLULU, VIRGINIA)),
                   "--store", db)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    times = _store_times(db)
    assert times["s2_fire_G90292"][0] == "2023-05-14"
    assert times["sen2ships_honolulu"][0] == "2023-01-08"
    assert times["s2_l1c_virginia_crop"][0] is None  # unknown stays unknown
    assert "acquisition time unknown" in proc.stdout
    # a time window leaves the unknown scene out, and says so
    with DetectionStore(db) as store:
        a = answer_question(
            store, Question("How many stressed fields since 2020-01-01?", asked_utc="2026-12-06")
        )
    assert a.facts["unknown_time"] == ["s2_l1c_virginia_crop"]
    assert "acquisition time unknown: s2_l1c_virginia_crop" in a.text
    # --acquired overrides; adding a scene again replaces it
    proc = run_cli("store", "add", runs / VIRGINIA.name, "--store", db, "--acquired", "2016-06-01")
    assert proc.returncode == 0 and "replaced" in proc.stderr, proc.stderr
    assert _store_times(db)["s2_l1c_virginia_crop"] == ("2016-06-01", "--acquired")


def test_store_keeps_a_shared_port_time(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    port = shared_data / "sen2ships" / "busan"
    assert run_cli("run", port, "--out", out, "--no-llm").returncode in (0, 1)
    proc = run_cli("store", "add", out / "busan", "--store", tmp_path / "s.db")
    assert proc.returncode == 0, proc.stderr
    assert _store_times(tmp_path / "s.db")["busan"] == (
        "2022-05-14",
        "labels.json acquisition_date",
    )


def test_not_checked_is_not_none_found(runs: Path, tmp_path: Path) -> None:
    fire_run = json.loads((runs / FIRE.name / "run.json").read_text())
    status = class_status(fire_run)
    assert status["fire"] == "checked" and status["ship"].startswith("not checked")
    assert status["cloud"].startswith("not checked")
    db = tmp_path / "s.db"
    assert (
        run_cli("store", "add", runs / FIRE.name, runs / VIRGINIA.name, "--store", db).returncode
        == 0
    )
    with DetectionStore(db) as store:
        a = answer_question(store, Question("Any ships in G90292?"))
        assert a.facts["count"] == 0 and a.facts["not_checked"]
        assert a.text.startswith("No answer for ships") and "not checked" in a.text
        a = answer_question(store, Question("Any fires in Virginia?"))
        assert a.text.startswith("No: no fires") and "not checked" not in a.text
        a = answer_question(store, Question("Any clouds?"))
        # the cloud screen looked at the Virginia crop (clear), not at G90292 (no visible bands)
        assert "Clouds not checked in s2_fire_G90292" in a.text
        assert a.facts["searched"] == ["s2_l1c_virginia_crop"]


def test_cloud_questions_are_answered_from_the_cloud_fraction(runs: Path, tmp_path: Path) -> None:
    """Cloud is what the screen measured per scene: a cloudy scene gives "yes" with its share,
    a clear one "0 % cloud", and "most cloudy" names the scene with the largest share."""
    db = tmp_path / "s.db"
    assert run_cli("store", "add", runs / VIRGINIA.name, runs / HONOLULU.name,
                   "--store", db).returncode == 0  # fmt: skip
    clear = {"status": "checked", "cloud_fraction": 0.0, "shadow_fraction": 0.0}
    cloudy = {"status": "checked", "cloud_fraction": 0.62, "shadow_fraction": 0.08}
    with DetectionStore(db) as store:
        fractions = {r.name: r.cloud_fraction for r in store.scene_records()}
        assert fractions == {"s2_l1c_virginia_crop": 0.0, "sen2ships_honolulu": 0.0}
        store.add_scene("clear_pass", [], "2023-06-01", classes={"cloud": "checked"}, clouds=clear)
        store.add_scene("cloudy_pass", [], "2023-06-02", classes={"cloud": "checked"},
                        clouds=cloudy)  # fmt: skip
        a = answer_question(store, Question("Any clouds in cloudy_pass?"))
        assert a.text.startswith("Yes") and "62 % cloud, 8 % shadow" in a.text, a.text
        assert a.facts["cloud_cover"]["cloudy_pass"]["cloud_fraction"] == 0.62
        a = answer_question(store, Question("Any clouds in clear_pass?"))
        assert a.text.startswith("No") and "0 % cloud" in a.text, a.text
        a = answer_question(store, Question("Which scene had the most clouds?"))
        assert "Cloudiest" in a.text and "cloudy_pass" in a.text, a.text
        assert a.facts["best_scenes"] == ["cloudy_pass"]
        # a scene the screen did not look at is "not checked", never "0 % cloud"
        store.add_scene("unscreened", [], "2023-06-03", classes={"cloud": "not checked: off"})
        a = answer_question(store, Question("Any clouds in unscreened?"))
        assert "not checked" in a.text.lower() and "0 %" not in a.text, a.text


def test_version_1_store_is_migrated_with_unknown_times(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE scenes (id INTEGER PRIMARY KEY, name TEXT NOT NULL, acquired_utc TEXT NOT "
        "NULL, added_utc TEXT NOT NULL, counts TEXT NOT NULL, report TEXT);"
        "CREATE TABLE detections (id INTEGER PRIMARY KEY, scene_id INTEGER NOT NULL, cls TEXT NOT "
        "NULL, score REAL NOT NULL, lon REAL NOT NULL, lat REAL NOT NULL, size REAL, props TEXT "
        "NOT NULL, geom BLOB NOT NULL);"
        "INSERT INTO scenes VALUES (1, 'old', '2026-11-28T10:00:00Z', '2026-11-28T10:00:00Z', "
        "'{}', NULL);"
    )
    con.commit()
    con.close()
    with DetectionStore(db) as s:
        (rec,) = s.scene_records()
        assert rec.acquired_utc is None and "version-1" in rec.acquired_source


# ---------------------------------------------------------------- the answer restates the query


def test_answer_restates_the_query(tmp_path: Path) -> None:
    with DetectionStore(tmp_path / "s.db") as store:
        store.add_scene(
            "hedland",
            [
                feature("ship", 118.58, -20.32, length_m=307),
                feature("ship", 118.59, -20.31, length_m=250),
                feature("ship", 118.60, -20.30, length_m=210),
                feature("ship", 118.61, -20.29, length_m=90),
            ],
            "2023-07-30",
        )
        a = answer_question(store, Question("How many ships longer than 200 m in Hedland?"))
    assert a.text == (
        "3 ships longer than 200 m in hedland (acquired 2023-07-30): longest 307 m at "
        "20.320S 118.580E."
    )


# ---------------------------------------------------------------- question ids and bad paths


def test_question_ids_are_unique_and_duplicates_renumbered(tmp_path: Path) -> None:
    q = tmp_path / "q.bin"
    for text in ("How many ships?", "Any fires?", "Largest fire?", "How many clouds?"):
        assert run_cli("ask", text, "--out", q).returncode == 0
    ids = [b["qid"] for b in decode_qa(q.read_bytes()).questions]
    assert len(ids) == 4 == len(set(ids)) and all(0 < i < 2**32 for i in ids)
    proc = run_cli("ask", "Any ships?", "--out", q, "--qid", str(ids[0]))
    assert proc.returncode == 2 and "already in" in proc.stderr
    # two different questions under one id (from two ground tools): both answered
    dup = tmp_path / "dup.bin"
    dup.write_bytes(
        encode_questions([{"text": "Any fires?", "qid": 7}, {"text": "Any ships?", "qid": 7}])
    )
    db = tmp_path / "s.db"
    with DetectionStore(db) as s:
        s.add_scene("a", [feature("fire", 10, 50, area_m2=400)], "2023-05-14")
    proc = run_cli("answer", dup, "--store", db, "--out", tmp_path / "a.bin", "--no-llm")
    assert proc.returncode == 0, proc.stderr
    assert "used twice" in proc.stderr
    answers = decode_qa((tmp_path / "a.bin").read_bytes()).answers
    assert len(answers) == 2 and len({a["qid"] for a in answers}) == 2
    assert any(a.get("renumbered_from") == 7 for a in answers)


def test_answer_refuses_a_missing_store(tmp_path: Path) -> None:
    q = tmp_path / "q.bin"
    assert run_cli("ask", "How many ships?", "--out", q).returncode == 0
    missing = tmp_path / "typo.db"
    proc = run_cli("answer", q, "--store", missing, "--out", tmp_path / "a.bin", "--no-llm")
    assert proc.returncode == 2 and "no detection store" in proc.stderr
    assert not missing.exists()
    proc = run_cli(
        "answer", q, "--store", missing, "--out", tmp_path / "a.bin", "--no-llm", "--create"
    )
    assert proc.returncode == 0 and missing.exists()
    with pytest.raises(StoreError, match="no detection store"):
        DetectionStore(tmp_path / "other.db", create=False)


def test_bad_paths_are_one_line_errors(runs: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    for args in (
        ("ask", "How many ships?", "--out", afile / "q.bin"),
        ("store", "add", runs / FIRE.name, "--store", afile / "x.db"),
        ("store", "add", tmp_path, "--store", tmp_path / "x.db"),  # not a run output
    ):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    q = tmp_path / "q.bin"
    run_cli("ask", "How many ships?", "--out", q)
    proc = run_cli("answer", q, "--store", tmp_path / "s.db", "--create", "--no-llm",
                   "--out", afile / "a.bin")  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_store_add_finds_a_relative_input_from_elsewhere(tmp_path: Path) -> None:
    """A scene given by a relative path: run.json records it absolute, with its acquisition
    time; `store add` run from another folder dates the scene."""
    import shutil

    proj = tmp_path / "proj"
    shutil.copytree(HONOLULU, proj / "honolulu")
    proc = run_cli("run", "honolulu", "--out", "out", "--no-llm", cwd=proj)
    assert proc.returncode in (0, 1), proc.stderr
    run = json.loads((proj / "out" / "honolulu" / "run.json").read_text())
    assert run["input"]["path"] == str((proj / "honolulu").resolve())
    assert run["acquired_utc"].startswith("2023-01-08") and "sidecar" in run["acquired_source"]
    proc = run_cli("store", "add", proj / "out" / "honolulu", "--store", "s.db", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _store_times(tmp_path / "s.db")["honolulu"][0] == "2023-01-08"
