"""Ask the satellite: store, question parsing, exact answers, Q/A packets, CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ask.answer import answer_question
from pipeline.ask.parse import Query, SizeBound
from pipeline.ask.query import Question, execute
from pipeline.ask.store import DetectionStore
from pipeline.errors import QuestionError
from pipeline.wire.qa import decode_qa, encode_answers, encode_questions

from .conftest import SAMPLES, run_cli


def feature(cls: str, lon: float, lat: float, score: float = 0.9, **props: float) -> dict:
    d = 0.0005
    ring = [
        [lon - d, lat - d],
        [lon + d, lat - d],
        [lon + d, lat + d],
        [lon - d, lat + d],
        [lon - d, lat - d],
    ]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "class": cls,
            "score": score,
            "centroid_lon": lon,
            "centroid_lat": lat,
            **props,
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> DetectionStore:
    s = DetectionStore(tmp_path / "store.db")
    s.add_scene(
        "morning",
        [
            feature("ship", 10.00, 50.00, length_m=80),
            feature("ship", 10.02, 50.01, length_m=220),
            feature("ship", 11.00, 51.00, length_m=40),
            feature("fire", 10.50, 50.50, area_m2=1200),
        ],
        "2026-11-28T08:00:00Z",
    )
    s.add_scene(
        "noon",
        [
            feature("ship", 10.01, 50.00, length_m=120),
            feature("fire", 12.00, 52.00, area_m2=9000),
            feature("crop_stress", 10.3, 50.3, area_km2=0.5),
            feature("crop_stress", 10.4, 50.4, area_km2=1.25),
        ],
        "2026-11-28T12:00:00Z",
    )
    yield s
    s.close()


ALL = {"ship": "checked", "fire": "checked", "crop_stress": "checked", "cloud": "not checked"}


def test_count_in_box_and_time_window(store: DetectionStore) -> None:
    box = (9.99, 49.99, 10.03, 50.02)
    assert execute(store, Query("count", "ship", bbox=box)).facts()["count"] == 3
    q = Query("count", "ship", bbox=box, since="2026-11-28T10:00:00Z")
    assert execute(store, q).facts()["count"] == 1
    assert execute(store, Query("count", "any")).facts()["count"] == 8


def test_nearest_largest_and_size_bounds(store: DetectionStore) -> None:
    r = execute(store, Query("nearest", "fire", point=(10.4, 50.4)))
    assert r.items[0].scene == "morning" and r.items[0].area_m2 == 1200
    assert 10_000 < r.distances_m[0] < 16_000
    r = execute(store, Query("largest", "crop_stress"))
    assert r.items[0].area_m2 == 1.25e6
    r = execute(store, Query("largest", "ship"))
    assert r.items[0].length_m == 220
    r = execute(store, Query("count", "ship", sizes=(SizeBound("length_m", ">", 100),)))
    assert r.facts()["count"] == 2


def test_question_asks_the_parser_and_restates(store: DetectionStore) -> None:
    a = answer_question(
        store, Question("How many vessels in this box?", bbox=(9.99, 49.99, 10.03, 50.02))
    )
    assert a.understood_by == "parser" and a.facts["count"] == 3
    assert a.text.startswith("3 ships in box 9.99,49.99,10.03,50.02")
    a = answer_question(store, Question("Nearest fire to 50.4N 10.4E?"))
    assert a.facts["items"][0]["area_m2"] == 1200 and "1,200 m²" in a.text
    a = answer_question(store, Question("Which stressed field is the largest?"))
    assert "1.25 km²" in a.text


@pytest.mark.parametrize(
    "bad",
    [
        {"text": "x", "bbox": [1, 2, 3]},
        {"text": "x", "bbox": [10, 0, 5, 1]},
        {"text": "x", "kind": "median"},
        {"text": "x", "cls": "whale"},
        {"text": "x", "wkt": "POLYGON((0 0, 1"},
        {"text": "x", "since": "yesterday"},
        {"text": "x", "colour": "red"},
        {"text": "x", "qid": 1 << 33},
        "not a mapping",
    ],
)
def test_malformed_questions_are_clear_errors(bad: object) -> None:
    with pytest.raises(QuestionError):
        Question.from_value(bad)


def test_a_question_not_understood_runs_no_query(store: DetectionStore) -> None:
    a = answer_question(store, Question("what is the weather like?"))
    assert a.status == "not understood" and a.facts == {} and a.filter is None
    assert a.text.startswith("Not understood:") and "weather" in a.text


def test_store_evicts_oldest_first(tmp_path: Path) -> None:
    with DetectionStore(tmp_path / "s.db", max_scenes=2) as s:
        for i, t in enumerate(
            ["2026-11-28T03:00:00Z", "2026-11-28T01:00:00Z", "2026-11-28T02:00:00Z"]
        ):
            s.add_scene(f"s{i}", [feature("ship", 10, 50)], t)
        assert [n for n, _, _ in s.scenes()] == ["s0", "s2"]
        assert execute(s, Query("count", "any")).facts()["count"] == 2


texts = st.text(min_size=1, max_size=120).filter(lambda t: t.strip() != "")


@settings(max_examples=60, deadline=None)
@given(
    qs=st.lists(
        st.builds(
            lambda t, q, k: Question(t, qid=q, kind=k),
            texts,
            st.integers(0, 0xFFFFFFFF),
            st.sampled_from([None, "count", "nearest", "largest"]),
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda q: q.qid,
    ),
    flip=st.integers(0, 10_000),
)
def test_question_packets_round_trip_and_survive_bit_flips(qs: list[Question], flip: int) -> None:
    data = encode_questions([q.to_value() for q in qs])
    dec = decode_qa(data)
    assert dec.ok
    assert sorted(Question.from_value(b).qid for b in dec.questions) == sorted(q.qid for q in qs)
    assert {b["text"] for b in dec.questions} == {q.text for q in qs}
    broken = bytearray(data)
    broken[flip % len(broken)] ^= 0x10
    dec2 = decode_qa(bytes(broken))  # never raises
    assert len(dec2.questions) >= len(qs) - 1
    assert not dec2.ok  # the CRC failure is reported
    for b in dec2.questions:  # survivors are intact
        assert b in [q.to_value() for q in qs]


def test_answer_packets_round_trip() -> None:
    answers = [{"qid": 7, "text": "3 ships detected in the area.", "facts": {"matches": 3}}]
    assert decode_qa(encode_answers(answers)).answers == tuple(answers)


def test_cli_question_to_decoded_answer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    scenes = [
        SAMPLES / "s2_fire_G90292",
        SAMPLES / "sen2ships_honolulu",
        SAMPLES / "s2_l1c_virginia_crop",
    ]
    assert run_cli("run", *scenes, "--out", out, "--no-llm").returncode in (0, 1)
    db = tmp_path / "store.db"
    proc = run_cli(
        "store",
        "add",
        *(out / s.name for s in scenes),
        "--store",
        db,
        "--acquired",
        "2026-11-28T10:00:00Z",
    )
    assert proc.returncode == 0, proc.stderr
    q = tmp_path / "q.bin"
    for args in (
        ["How many vessels are in this box?", "--bbox", "-158,21.3,-157.9,21.4", "--qid", "1"],
        ["Where is the nearest fire to 58.07N 123.28W?", "--qid", "2"],
        ["Which stressed field is the largest?", "--qid", "3"],
        ["", "--qid", "4"],
    ):
        proc = run_cli("ask", *args, "--out", q)
        if args[0]:
            assert proc.returncode == 0, proc.stderr
        else:  # an empty question without a kind is refused on the ground already
            assert proc.returncode == 2 and "empty question" in proc.stderr
    a = tmp_path / "a.bin"
    proc = run_cli("answer", q, "--store", db, "--out", a, "--no-llm")
    assert proc.returncode == 0, proc.stderr
    answers = {x["qid"]: x for x in decode_qa(a.read_bytes()).answers}
    ships = json.loads((out / "sen2ships_honolulu" / "detections.geojson").read_text())
    n_ships = sum(1 for f in ships["features"] if f["properties"]["class"] == "ship")
    assert answers[1]["facts"]["count"] == n_ships
    assert answers[2]["facts"]["items"][0]["cls"] == "fire"
    assert answers[2]["facts"]["items"][0]["distance_km"] < 5
    assert answers[3]["facts"]["items"][0]["cls"] == "crop_stress"
    # the ground decoder shows each question beside its answer
    proc = run_cli("decode", a, "--out", tmp_path / "dec")
    assert proc.returncode == 0, proc.stderr
    assert "Q2: Where is the nearest fire to 58.07N 123.28W?" in proc.stdout
    assert f"A1: {answers[1]['text']}" in proc.stdout
    assert json.loads((tmp_path / "dec" / "answers.json").read_text())["answers"]
    # a damaged question packet is reported, the others still answered
    broken = bytearray(q.read_bytes())
    broken[10] ^= 0xFF
    q.write_bytes(bytes(broken))
    proc = run_cli("answer", q, "--store", db, "--out", a, "--no-llm")
    assert proc.returncode == 1 and "damaged question packet" in proc.stderr, proc.stderr
    assert len(decode_qa(a.read_bytes()).answers) == 2, proc.stdout + proc.stderr
