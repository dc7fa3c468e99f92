"""The question parser, slot by slot, and every example of issue 21 (no LLM, no store)."""

from __future__ import annotations

import pytest

from pipeline.ask.parse import Parse, Parser, Query, SizeBound, parse_date
from pipeline.ask.store import StoredScene

CHECKED = {"ship": "checked", "fire": "checked", "crop_stress": "checked", "cloud": "not checked"}
SCENES = [
    StoredScene(1, "hedland", "2023-07-30", "sidecar", {}, CHECKED, ("Port Hedland",), "port"),
    StoredScene(
        2, "sen2ships_genoa", "2023-06-01", "labels", {}, CHECKED, ("Genoa", "Italy"), "port"
    ),
    StoredScene(3, "klang", "2023-03-02", "labels", {}, CHECKED, (), "port"),
    StoredScene(4, "s2_fire_G90292", "2023-05-14", "file name", {}, CHECKED, ("British Columbia",)),
    StoredScene(5, "s2_l1c_virginia_crop", None, "unknown", {}, CHECKED, ("Virginia",)),
]
NOW = "2026-12-06T12:00:00Z"


def parse(text: str, **kw: object) -> Parse:
    return Parser(SCENES).parse(text, asked_utc=NOW, **kw)  # type: ignore[arg-type]


def q(text: str, **kw: object) -> Query:
    p = parse(text, **kw)
    assert p.query is not None, f"{text!r}: {p.not_understood}"
    return p.query


def not_understood(text: str, **kw: object) -> Parse:
    p = parse(text, **kw)
    assert p.query is None, f"{text!r} was understood as {p.query}"
    assert p.not_understood
    return p


# ---------------------------------------------------------------- the examples of issue 21


def test_issue_examples() -> None:
    assert (q("Any fires?").op, q("Any fires?").cls) == ("any", "fire")
    g = q("How many ships in Genoa?")
    assert (g.op, g.cls, g.scenes) == ("count", "ship", ("sen2ships_genoa",))
    c = q("Count the ships longer than 200 m")
    assert (c.op, c.cls, c.scenes, c.sizes) == (
        "count",
        "ship",
        None,
        (SizeBound("length_m", ">", 200.0),),
    )
    h = q("Largest vessel in Hedland?")
    assert (h.op, h.cls, h.scenes) == ("largest", "ship", ("hedland",))
    n = q("Which fire is closest to 58.08N 123.28W?")
    assert (n.op, n.cls, n.point) == ("nearest", "fire", (-123.28, 58.08))
    m = q("Which scene had the most ships?")
    assert (m.op, m.cls) == ("most", "ship")
    s = q("How many stressed fields?")
    assert (s.op, s.cls) == ("count", "crop_stress")
    k = q("How many ships in the Klang scene?")
    assert k.scenes == ("klang",)


def test_a_place_not_in_the_store_is_not_understood() -> None:
    p = not_understood("How many ships in Rotterdam?")
    assert "Rotterdam" in p.not_understood[0] and "class ships" in p.understood
    assert "Genoa" in p.not_understood[0]  # the known places are listed


# ---------------------------------------------------------------- class


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("how many vessels", "ship"),
        ("how many boats", "ship"),
        ("count the tankers", "ship"),
        ("how many cargo ships", "ship"),
        ("any hot spots", "fire"),
        ("any blaze", "fire"),
        ("anything burning", "fire"),
        ("total burn area", "fire"),
        ("how many stressed fields", "crop_stress"),
        ("any drought", "crop_stress"),
        ("how much crop stress", "crop_stress"),
        ("any clouds", "cloud"),
        ("how many detections", "any"),
    ],
)
def test_class_synonyms(text: str, cls: str) -> None:
    assert q(text).cls == cls


def test_class_conflicts_and_unknown_classes() -> None:
    not_understood("How many ships and fires?")
    not_understood("How many aircraft?")
    not_understood("How many fields?")  # a field is not a stressed field
    not_understood("How many fires?", cls="ship")  # the structured class disagrees
    assert q("How many ships?", cls="ship").cls == "ship"


# ---------------------------------------------------------------- operation


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("how many ships", "count"),
        ("number of ships", "count"),
        ("ships in hedland?", "count"),  # a bare question asks how many
        ("are there any ships", "any"),
        ("is there a fire in klang", "any"),
        ("largest ship", "largest"),
        ("longest vessel", "largest"),
        ("biggest fire", "largest"),
        ("smallest ship", "smallest"),
        ("shortest boat", "smallest"),
        ("list the fires", "list"),
        ("where are the ships in klang", "list"),
        ("which ships are longer than 300 m", "list"),
        ("top 3 longest ships", "list"),
        ("which scene has the fewest ships", "least"),
        ("which port had the most vessels", "most"),
        ("total fire area", "total_area"),
        ("how many hectares of crop stress", "total_area"),
        ("ships per scene", "per_scene"),
    ],
)
def test_operations(text: str, op: str) -> None:
    assert q(text).op == op


def test_top_n_and_order() -> None:
    t = q("top 3 longest ships")
    assert (t.n, t.order) == (3, "largest")
    t = q("the five smallest fires")
    assert (t.n, t.order) == (5, "smallest")
    t = q("top 2 nearest ships to 35.10N 129.07E")
    assert (t.n, t.order, t.point) == (2, "nearest", (129.07, 35.1))


def test_operation_conflicts_and_missing_parts() -> None:
    not_understood("largest and smallest ship")
    not_understood("nearest ship")  # nearest to what?
    not_understood("most ships")  # most of what: which scene?
    not_understood("how big is the fire")  # largest? total?
    not_understood("what did you see")  # no class


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("ships longer than 200 m", [("length_m", ">", 200)]),
        ("ships over 200 metres", [("length_m", ">", 200)]),
        ("ships at least 150 meters long", [("length_m", ">=", 150)]),
        ("ships shorter than 80 m", [("length_m", "<", 80)]),
        ("ships under 0.1 km", [("length_m", "<", 100)]),
        ("ships 300 m or longer", [("length_m", ">=", 300)]),
        ("ships between 100 and 200 m", [("length_m", ">=", 100), ("length_m", "<=", 200)]),
        ("fires larger than 1 ha", [("area_m2", ">", 10_000)]),
        ("fires over 5000 m2", [("area_m2", ">", 5000)]),
        ("stressed fields bigger than 0.5 km²", [("area_m2", ">", 500_000)]),
        ("stressed fields of at least 2 hectares", [("area_m2", ">=", 20_000)]),
        ("ships >= 1,000 ft", [("length_m", ">=", 304.8)]),
    ],
)
def test_size_filters_with_units(text: str, bounds: list[tuple[str, str, float]]) -> None:
    got = [(b.measure, b.op, b.value) for b in q(text).sizes]
    assert [(m, o) for m, o, _ in got] == [(m, o) for m, o, _ in bounds]
    assert all(abs(g[2] - b[2]) < 1e-6 for g, b in zip(got, bounds, strict=True))


def test_size_conflicts() -> None:
    not_understood("ships longer than 300 m and shorter than 100 m")
    not_understood("fires longer than 100 m")  # fires have areas
    not_understood("ships longer than 200")  # no unit
    not_understood("any big ships")  # vague
    not_understood("ships about 200 m long")


# ---------------------------------------------------------------- places


def test_places_from_names_and_metadata() -> None:
    assert q("ships in genoa").scenes == ("sen2ships_genoa",)
    assert q("ships in Italy").scenes == ("sen2ships_genoa",)  # metadata place name
    assert q("fires in British Columbia").scenes == ("s2_fire_G90292",)
    assert q("fires in the G90292 scene").scenes == ("s2_fire_G90292",)
    assert q("ships in the klang scene").scenes == ("klang",)
    assert q("ships in s2_l1c_virginia_crop").scenes == ("s2_l1c_virginia_crop",)
    assert q("ships in the virginia crop scene").scenes == ("s2_l1c_virginia_crop",)
    assert set(q("ships in hedland and klang").scenes or ()) == {"hedland", "klang"}
    assert q("ships in Hedlnad").scenes == ("hedland",)  # a typo
    assert q("ships in the latest scene").scenes == ("hedland",)
    assert q("ships in the fire scene").scenes == ("s2_fire_G90292",)  # its name says fire
    not_understood("fires in the ship scene")  # no scene is named so
    # "port" means the scenes whose metadata says port, unless a place is named
    assert set(q("which port had the fewest ships").scenes or ()) == {
        "hedland",
        "sen2ships_genoa",
        "klang",
    }
    assert q("ships in the port of klang").scenes == ("klang",)
    assert q("which scene had the fewest ships").scenes is None


# ---------------------------------------------------------------- points and boxes


def test_points_and_boxes_in_text() -> None:
    assert q("nearest ship to 58.08N 123.28W").point == (-123.28, 58.08)
    assert q("nearest ship to 44.41, 8.85").point == (8.85, 44.41)  # lat, lon
    assert q("nearest ship to 20.32S 118.58E").point == (118.58, -20.32)
    r = q("ships within 5 km of 44.41N 8.85E")
    assert (r.point, r.radius_km) == ((8.85, 44.41), 5.0)
    assert q("ships in bbox(-158, 21.3, -157.9, 21.4)").bbox == (-158.0, 21.3, -157.9, 21.4)
    assert q("ships in box -158 21.3 -157.9 21.4").bbox == (-158.0, 21.3, -157.9, 21.4)
    # beside --point / --bbox
    assert q("nearest fire to this point", point=(-123.3, 58.1)).point == (-123.3, 58.1)
    assert q("ships in this box", bbox=(1.0, 2.0, 3.0, 4.0)).bbox == (1.0, 2.0, 3.0, 4.0)
    not_understood("ships in this box")  # no box given
    not_understood("nearest ship to 58.08N 123.28W", point=(1.0, 2.0))  # two points
    not_understood("any ships near 44.41, 8.85")  # how near?


# ---------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("text", "since", "until"),
    [
        ("ships today", "2026-12-06T00:00:00Z", NOW),
        ("ships yesterday", "2026-12-05T00:00:00Z", "2026-12-05T23:59:59Z"),
        ("ships since yesterday", "2026-12-05T00:00:00Z", NOW),
        ("ships in the last 3 days", "2026-12-03T12:00:00Z", NOW),
        ("ships in the past 24 hours", "2026-12-05T12:00:00Z", NOW),
        ("ships on 2023-05-14", "2023-05-14T00:00:00Z", "2023-05-14T23:59:59Z"),
        ("ships since 2023-05-01", "2023-05-01T00:00:00Z", None),
        ("ships after 2023-05-01", "2023-05-02T00:00:00Z", None),
        ("ships until 2023-05-01", None, "2023-05-01T23:59:59Z"),
        ("ships before 2023-05-01", None, "2023-04-30T23:59:59Z"),
        ("ships in May 2023", "2023-05-01T00:00:00Z", "2023-05-31T23:59:59Z"),
        ("ships on 14 May 2023", "2023-05-14T00:00:00Z", "2023-05-14T23:59:59Z"),
        ("ships between 2023-01-01 and 2023-03-31", "2023-01-01T00:00:00Z", "2023-03-31T23:59:59Z"),
        ("ships in 2022", "2022-01-01T00:00:00Z", "2022-12-31T23:59:59Z"),
    ],
)
def test_time_windows(text: str, since: str | None, until: str | None) -> None:
    r = q(text)
    assert (r.since, r.until) == (since, until)


def test_time_problems() -> None:
    not_understood("ships in May")  # which year?
    not_understood("ships recently")
    not_understood("ships since 2023-06-01 until 2023-05-01")  # empty window
    assert parse_date("2023-02-30") is None


# ---------------------------------------------------------------- not understood, never guessed


@pytest.mark.parametrize(
    "text",
    [
        "How many moored ships in Hedland?",
        "ships except in Hedland",
        "How many ships are not in Klang?",
        "average ship length",
        "what is the weather like?",
        "hello",
        "how many cars in the car park",
        "Any oil spills off Genoa?",
        "Are all the ships in Hedland longer than 100 m?",
        "fires in the top 3 scenes",
        "ships longer than 200 m or shorter than 50 m",
    ],
)
def test_modifiers_it_cannot_apply_are_not_understood(text: str) -> None:
    not_understood(text)


def test_typos_are_read_and_reported() -> None:
    p = parse("how mnay vesels in genoa")
    assert p.query is not None and p.query.cls == "ship" and p.query.op == "count"
    assert "vesels -> vessels" in p.corrections
    not_understood("how many shops in genoa")  # a real word, not a typo of ships


def test_resolver_only_for_open_slots() -> None:
    calls: list[tuple[str, dict[str, object]]] = []

    def resolver(question: str, word: str, slots: dict[str, object]) -> tuple[str, str, float]:
        calls.append((word, dict(slots)))
        return ("cls", "ship", 5.0) if "cls" in slots else ("op", "count", 5.0)

    p = Parser(SCENES).parse("how many zorblats in genoa", asked_utc=NOW, resolver=resolver)
    assert p.query is not None and p.query.cls == "ship" and p.llm
    assert list(calls[0][1]) == ["cls"]  # the operation was already known
    calls.clear()
    p = Parser(SCENES).parse("how many moored ships", asked_utc=NOW, resolver=resolver)
    assert p.query is None and not calls  # no slot open: the LLM is not asked
