"""Downlink: codec and CCSDS framing round-trips, corruption tolerance, budget order, chips."""

from __future__ import annotations

import io
import itertools
import json
import random
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ground_decoder import decode_scenes, decode_stream
from pipeline.downlink import encode_scene, plan_pass
from pipeline.errors import PacketError
from pipeline.wire import codec
from pipeline.wire.ccsds import (
    OVERHEAD,
    SeqFlags,
    SpacePacket,
    crc16_ccitt,
    scan_stream,
)
from pipeline.wire.products import Chip, Extras, Kind, Quicklook

from .conftest import SAMPLES

# ----------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _coord(decimals: int | None) -> st.SearchStrategy[float]:
    if decimals is None:
        return st.floats(-180, 180, allow_nan=False)
    scale = 10**decimals
    return st.integers(-180 * scale, 180 * scale).map(lambda q: q / scale)


def _staircase(start: list[float], steps: list[float], first_axis: int, close: bool) -> list:
    """A pixel-outline-like path: every step moves along one axis, alternating."""
    out = [list(start)]
    axis = first_axis
    for d in steps:
        p = list(out[-1])
        p[axis] = round(p[axis] + d, 5)
        out.append(p)
        axis ^= 1
    return [*out, list(start)] if close else out


def geometries(decimals: int | None) -> st.SearchStrategy[dict[str, Any]]:
    pos = st.lists(_coord(decimals), min_size=2, max_size=2)
    ring = st.lists(pos, min_size=1, max_size=6)
    if decimals == 5:  # rectilinear rings (raster outlines), closed or not, steps maybe zero
        stair = st.builds(
            _staircase,
            pos,
            st.lists(st.integers(-500, 500).map(lambda q: q / 1e5), max_size=12),
            st.integers(0, 1),
            st.booleans(),
        )
        ring = ring | stair
    return st.one_of(
        st.builds(lambda c: {"type": "Point", "coordinates": c}, pos),
        st.builds(lambda c: {"type": "MultiPoint", "coordinates": c}, st.lists(pos, max_size=4)),
        st.builds(lambda c: {"type": "LineString", "coordinates": c}, ring),
        st.builds(
            lambda c: {"type": "MultiLineString", "coordinates": c}, st.lists(ring, max_size=3)
        ),
        st.builds(lambda c: {"type": "Polygon", "coordinates": c}, st.lists(ring, max_size=3)),
        st.builds(
            lambda c: {"type": "MultiPolygon", "coordinates": c},
            st.lists(st.lists(ring, max_size=2), max_size=2),
        ),
        st.builds(
            lambda c: {"type": "Point", "coordinates": c},
            st.lists(_coord(decimals), min_size=3, max_size=3),
        ),
    )


properties = st.fixed_dictionaries(
    {
        "class": st.sampled_from(["fire", "ship", "crop_stress"]),
        "score": st.integers(0, 10000).map(lambda q: q / 10000),
    },
    optional={
        "area_m2": st.floats(0, 1e7, allow_nan=False),
        "length_m": st.integers(0, 400),
        "heading_deg": st.integers(0, 3599).map(lambda q: q / 10),
        "severity": st.sampled_from(["low", "medium", "high"]),
    },
)


def features(decimals: int | None) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda g, p: {"type": "Feature", "geometry": g, "properties": p},
        st.none() | geometries(decimals),
        properties,
    )


odd_features = st.one_of(
    json_values,  # not a feature at all
    st.builds(  # extra members
        lambda g, p, i: {"type": "Feature", "id": i, "geometry": g, "properties": p},
        geometries(5),
        properties,
        st.integers(),
    ),
    st.builds(  # integer coordinates (must stay integers)
        lambda x, y: {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {},
        },
        st.integers(-180, 180),
        st.integers(-90, 90),
    ),
    st.builds(  # a geometry collection
        lambda gs: {
            "type": "Feature",
            "geometry": {"type": "GeometryCollection", "geometries": gs},
            "properties": None,
        },
        st.lists(geometries(5), max_size=2),
    ),
)


def collections(feature_st: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda fs, counts: {
            "type": "FeatureCollection",
            "features": fs,
            "eotriage": {"scene": "S2_TEST", "counts": counts, "omitted": 0},
        },
        st.lists(feature_st, max_size=12),
        st.dictionaries(st.sampled_from(["fire", "ship", "crop_stress"]), st.integers(0, 99)),
    )


def as_json(v: Any) -> str:
    """JSON text: equal texts mean equal values, types and key order."""
    return json.dumps(v, sort_keys=False)


def round5(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: round5(x) for k, x in v.items()}
    if isinstance(v, list):
        return [round5(x) for x in v]
    return round(v, 5) if isinstance(v, float) else v


# ----------------------------------------------------------------------------- framing


def test_crc16_ccitt_check_value() -> None:
    # CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the catalogue check value
    assert crc16_ccitt(b"123456789") == 0x29B1


def test_primary_header_layout() -> None:
    p = SpacePacket(0x123, 77, SeqFlags.UNSEGMENTED, 2, 0xBEEF, 3, 0, 1, b"abc")
    raw = p.pack()
    w0, w1, length = struct.unpack(">HHH", raw[:6])
    assert w0 >> 13 == 0  # version 0
    assert (w0 >> 12) & 1 == 0  # telemetry
    assert (w0 >> 11) & 1 == 1  # secondary header present
    assert w0 & 0x7FF == 0x123
    assert w1 >> 14 == SeqFlags.UNSEGMENTED and w1 & 0x3FFF == 77
    assert length == len(raw) - 7
    assert len(raw) == OVERHEAD + 3
    assert struct.unpack(">H", raw[-2:])[0] == crc16_ccitt(raw[:-2])


@given(
    apid=st.integers(0, 0x7FF),
    seq=st.integers(0, 0x3FFF),
    flags=st.integers(0, 3),
    kind=st.integers(0, 255),
    scene=st.integers(0, 0xFFFF),
    item=st.integers(0, 0xFFFF),
    segs=st.integers(1, 0xFFFF),
    data=st.binary(max_size=300),
    seg_frac=st.floats(0, 1, exclude_max=True),
)
def test_packet_round_trip(
    apid: int,
    seq: int,
    flags: int,
    kind: int,
    scene: int,
    item: int,
    segs: int,
    data: bytes,
    seg_frac: float,
) -> None:
    p = SpacePacket(apid, seq, flags, kind, scene, item, int(seg_frac * segs), segs, data)
    assert SpacePacket.unpack(p.pack()) == p
    pkts, damaged = scan_stream(p.pack() * 2)
    assert [s.packet for s in pkts] == [p, p] and damaged == []


def test_every_single_bit_flip_is_detected() -> None:
    good = SpacePacket(5, 9, SeqFlags.UNSEGMENTED, 1, 1, 0, 0, 1, b"payload!" * 4).pack()
    for pos in range(len(good)):
        for bit in range(8):
            raw = bytearray(good)
            raw[pos] ^= 1 << bit
            with pytest.raises(PacketError):
                SpacePacket.unpack(bytes(raw))
            pkts, damaged = scan_stream(bytes(raw) + good)
            assert [s.packet.pack() for s in pkts] == [good], (pos, bit)
            assert damaged[0].start == 0 and damaged[-1].end == len(good), (pos, bit)


def test_bad_packet_fields_raise_packet_error() -> None:
    with pytest.raises(PacketError, match="APID"):
        SpacePacket(0x800, 0, 3, 0, 0, 0, 0, 1, b"")
    with pytest.raises(PacketError, match="segment"):
        SpacePacket(1, 0, 3, 0, 0, 0, 2, 2, b"")
    with pytest.raises(PacketError, match="shorter"):
        SpacePacket.unpack(b"\x08\x00")


# ----------------------------------------------------------------------------- codec


@given(json_values)
def test_codec_round_trips_any_json_value(v: Any) -> None:
    text = as_json(v)
    assert as_json(codec.unpack(codec.pack(json.loads(text)))) == text


@given(collections(features(5)))
def test_codec_round_trips_compact_geojson_exactly(fc: dict[str, Any]) -> None:
    text = as_json(fc)
    packed = codec.pack(json.loads(text))
    assert as_json(codec.unpack(packed)) == text
    assert len(packed) <= len(text)


@given(collections(features(None) | features(7) | odd_features))
def test_codec_round_trips_any_feature_collection(fc: dict[str, Any]) -> None:
    text = as_json(fc)
    assert as_json(codec.unpack(codec.pack(json.loads(text)))) == text


@given(st.binary(max_size=200))
def test_codec_rejects_garbage_with_packet_error_only(data: bytes) -> None:
    try:
        codec.unpack(data)
    except PacketError:
        pass


@given(json_values, st.data())
def test_codec_damaged_product_raises_packet_error_only(v: Any, data: st.DataObject) -> None:
    packed = bytearray(codec.pack(v))
    i = data.draw(st.integers(0, len(packed) - 1))
    packed[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(packed)))
    try:
        codec.unpack(bytes(packed[:cut]))
    except PacketError:
        pass


def test_codec_errors_name_the_cause() -> None:
    with pytest.raises(PacketError, match="cannot encode"):
        codec.pack({"x": object()})
    with pytest.raises(PacketError, match="unknown product format"):
        codec.unpack(b"\x7f")


@pytest.fixture(scope="module")
def fire_geojson() -> dict[str, Any]:
    """Real detections from the sample fire scene, in the compact (5-decimal) form."""
    from pipeline import run_scene

    result = run_scene(SAMPLES / "s2_fire_G90292")
    gj = round5(result.to_geojson())
    gj["eotriage"] = {"scene": result.scene, "counts": result.counts(), "omitted": 0}
    assert gj["features"], "the sample fire scene must give detections"
    return gj


def test_real_detections_round_trip_and_are_much_smaller(fire_geojson: dict[str, Any]) -> None:
    text = json.dumps(fire_geojson, separators=(",", ":"))
    packed = codec.pack(json.loads(text))
    assert json.dumps(codec.unpack(packed), separators=(",", ":")) == text
    assert len(packed) * 5 < len(text), (len(packed), len(text))


# ----------------------------------------------------------------------------- streams

REPORT = {
    "summary": "12 active fire clusters, largest 0.05 km2, NE of the scene.",
    "priority": "high",
    "writer": "template",
    "model": None,
    "latency_s": 0.0,
}


@settings(max_examples=40, deadline=None)
@given(
    fc=collections(features(5) | odd_features),
    report=st.none() | st.just(REPORT),
    max_data=st.integers(8, 600),
    per_chunk=st.integers(1, 20),
)
def test_encode_decode_round_trip(
    fc: dict[str, Any], report: dict[str, Any] | None, max_data: int, per_chunk: int
) -> None:
    fc = json.loads(json.dumps(fc))
    plan = encode_scene(report, fc, max_packet_data=max_data, features_per_chunk=per_chunk)
    d = decode_stream(plan.packets)
    assert d.ok, d.damage.lines()
    assert as_json(d.geojson) == as_json(fc)
    assert d.report == report
    assert d.scene == "S2_TEST"


def _packets(stream: bytes) -> list[bytes]:
    pkts, damaged = scan_stream(stream)
    assert not damaged
    return [s.packet.pack() for s in pkts]


@pytest.fixture(scope="module")
def base_plan(fire_geojson: dict[str, Any]) -> Any:
    chips = tuple(
        Chip(i, (0.0, 0.0, 1.0, 1.0), bytes([i]) * 300, "png", ("B12", "B11", "B8A"), (8, 8))
        for i in range(3)
    )
    ql = Quicklook((0.0, 0.0, 1.0, 1.0), b"\x89PNG" + b"q" * 500, "png", ("B04",) * 3, (8, 8))
    return encode_scene(
        REPORT,
        fire_geojson,
        extras=Extras(chips, ql),
        max_packet_data=120,
        features_per_chunk=4,
    )


def test_reordered_and_duplicated_packets_decode_intact(
    base_plan: Any, fire_geojson: dict[str, Any]
) -> None:
    pk = _packets(base_plan.packets)
    rng = random.Random(1)
    shuffled = pk + pk[:3]
    rng.shuffle(shuffled)
    d = decode_stream(b"".join(shuffled))
    assert d.ok, d.damage.lines()
    assert d.damage.duplicates == 3
    assert d.geojson == fire_geojson and d.report == REPORT
    assert len(d.chips) == 3 and d.quicklook is not None


def test_crc_failure_is_reported_not_accepted(base_plan: Any) -> None:
    pk = _packets(base_plan.packets)
    victim = SpacePacket.unpack(pk[5])
    bad = bytearray(pk[5])
    bad[20] ^= 0x10  # in the user data
    d = decode_stream(b"".join(pk[:5]) + bytes(bad) + b"".join(pk[6:]))
    assert not d.ok
    (crc,) = d.damage.crc_failures
    assert (crc.apid, crc.seq_count) == (victim.apid, victim.seq_count)
    assert crc.start == sum(map(len, pk[:5])) and crc.end == crc.start + len(pk[5])
    name = f"{Kind(victim.kind).label}[{victim.item}]"
    assert any(s.startswith(name) for s in d.damage.incomplete + d.damage.missing_products)


def test_lost_packet_reported_by_apid_and_sequence_count(base_plan: Any) -> None:
    pk = _packets(base_plan.packets)
    parsed = [SpacePacket.unpack(p) for p in pk]
    # a detections packet with packets of the same APID before and after it
    k = next(
        i
        for i in range(1, len(parsed) - 1)
        if parsed[i - 1].apid == parsed[i].apid == parsed[i + 1].apid
    )
    d = decode_stream(b"".join(pk[:k] + pk[k + 1 :]))
    assert d.damage.lost_seq[parsed[k].apid] == (parsed[k].seq_count,)
    assert d.damage.incomplete and not d.ok


def test_stream_with_nothing_valid() -> None:
    d = decode_stream(b"\x00" * 50)
    assert not d.ok and d.geojson is None and d.report is None
    assert d.damage.garbage[0].start == 0 and d.damage.garbage[0].end == 50
    assert decode_stream(b"").packets == 0


corruptions = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
        st.tuples(st.just("drop"), st.integers(0, 10**6)),
        st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(0, 10**6)),
        st.tuples(st.just("garbage"), st.integers(0, 10**6), st.binary(min_size=1, max_size=40)),
        st.tuples(st.just("cut"), st.integers(0, 10**6), st.integers(1, 60)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=corruptions, truncate=st.integers(0, 200))
@example(ops=[("cut", 116, 1)], truncate=0)  # a lost last byte equal to the next packet's first
def test_random_corruption_never_crashes_nor_corrupts_intact_packets(
    base_plan: Any, fire_geojson: dict[str, Any], ops: list[tuple[Any, ...]], truncate: int
) -> None:
    pk = _packets(base_plan.packets)
    pieces: list[tuple[bytes, bool]] = [(p, True) for p in pk]  # (bytes, still intact)
    tails: dict[bytes, bytes] = {}  # a cut piece -> the bytes it lost
    for op in ops:
        if not pieces:
            break
        i = op[1] % len(pieces)
        if op[0] == "flip":
            raw = bytearray(pieces[i][0])
            if raw:
                raw[op[2] * 131 % len(raw)] ^= 1 << op[2]
                pieces[i] = (bytes(raw), False)
        elif op[0] == "drop":
            pieces.pop(i)
        elif op[0] == "swap":
            j = op[2] % len(pieces)
            pieces[i], pieces[j] = pieces[j], pieces[i]
        elif op[0] == "garbage":
            pieces.insert(i, (op[2], False))
        elif op[0] == "cut":
            raw = pieces[i][0]
            keep = max(0, len(raw) - op[2])
            pieces[i] = (raw[:keep], False)
            tails[raw[:keep]] = raw[keep:]
    stream = b"".join(p for p, _ in pieces)
    if truncate and stream:
        stream = stream[: len(stream) - truncate % len(stream)]
    # A packet cut short whose lost tail equals the start of the next piece leaves a stream
    # that is byte for byte "that packet whole, then the next one cut at its head": the two
    # cannot be told apart, and the scanner rightly takes the first packet whole.
    shadowed = {
        p
        for (q, _), (p, _) in itertools.pairwise(pieces)
        if tails.get(q) and p.startswith(tails[q])
    }
    intact = {p for p, ok in pieces if ok and p in stream and p not in shadowed}
    originals = set(pk)

    scanned, _ = scan_stream(stream)
    accepted = [s.packet.pack() for s in scanned]
    assert intact <= set(accepted)  # every intact packet is recovered ...
    assert set(accepted) <= originals  # ... and nothing accepted is a corrupted packet

    d = decode_stream(stream)  # never raises
    changed = stream != base_plan.packets and set(accepted) != originals
    if changed:
        assert not d.ok
    if d.geojson is not None:  # whatever arrived is exactly what was sent
        sent = fire_geojson["features"]
        for f in d.geojson["features"]:
            assert f in sent
        assert len(d.geojson["features"]) + len(d.damage.missing_features) == len(sent)
    if d.report is not None:
        assert d.report == REPORT


# ----------------------------------------------------------------------------- budget


def test_budget_sends_a_priority_prefix_and_the_rest_later(
    fire_geojson: dict[str, Any],
) -> None:
    chips = tuple(
        Chip(i, (0.0, 0.0, 1.0, 1.0), bytes([i]) * 400, "png", (), (8, 8)) for i in range(4)
    )
    extras = Extras(chips, Quicklook((0.0, 0.0, 1.0, 1.0), b"q" * 3000, "png", (), (8, 8)))
    full = encode_scene(REPORT, fire_geojson, extras=extras, features_per_chunk=3)
    order = [(s.kind, s.item) for s in full.sent]
    assert order[0] == ("manifest", 0) and order[1] == ("report", 0)
    kinds = [k for k, _ in order]
    assert kinds == sorted(
        kinds, key=["manifest", "report", "detections", "chip", "quicklook"].index
    )
    previous = -1
    for budget in range(0, len(full.packets) + 200, 97):
        plan = encode_scene(
            REPORT, fire_geojson, extras=extras, features_per_chunk=3, budget_bytes=budget
        )
        assert len(plan.packets) <= budget
        got = [(s.kind, s.item) for s in plan.sent]
        if got:
            assert got[1:] == order[1 : len(got)]  # a prefix of the full order
        assert len(got) >= previous  # a larger budget never sends less
        previous = len(got)
        assert len(plan.waiting) + max(0, len(got) - 1) == len(order) - 1
        if not plan.waiting:
            continue
        later = plan_pass(plan.scene, plan.waiting, seq_start=plan.next_seq)
        both = decode_stream(plan.packets + later.packets)
        assert both.geojson == fire_geojson and both.report == REPORT
        assert both.ok and both.waiting == (), both.damage.lines()
    assert previous == len(order)


def test_budget_too_small_sends_nothing(fire_geojson: dict[str, Any]) -> None:
    plan = encode_scene(REPORT, fire_geojson, budget_bytes=10)
    assert plan.packets == b"" and plan.sent == () and len(plan.waiting) >= 2


def test_detections_chunks_go_by_score_and_partial_pass_keeps_order(
    fire_geojson: dict[str, Any],
) -> None:
    full = encode_scene(None, fire_geojson, features_per_chunk=2)
    first_two = full.sent[0].packet_bytes + full.sent[1].packet_bytes
    plan = encode_scene(None, fire_geojson, features_per_chunk=2, budget_bytes=first_two + 40)
    d = decode_stream(plan.packets)
    scores = sorted((f["properties"]["score"] for f in fire_geojson["features"]), reverse=True)
    got = sorted((f["properties"]["score"] for f in d.geojson["features"]), reverse=True)
    assert got == scores[: len(got)] and 0 < len(got) < len(scores)
    assert d.waiting and not d.damage.missing_products


def test_bad_inputs_raise_packet_error() -> None:
    with pytest.raises(PacketError, match="FeatureCollection"):
        encode_scene(None, {"type": "Feature"})
    with pytest.raises(PacketError, match="apid_base"):
        encode_scene(None, None, apid_base=0x7FE)


def test_two_scenes_in_one_stream(fire_geojson: dict[str, Any]) -> None:
    other = {**fire_geojson, "eotriage": {"scene": "OTHER", "counts": {}, "omitted": 0}}
    a = encode_scene(REPORT, fire_geojson)
    b = encode_scene(None, other, seq_start=a.next_seq)
    scenes = decode_scenes(a.packets + b.packets)
    assert [s.scene for s in scenes] == [fire_geojson["eotriage"]["scene"], "OTHER"]
    assert all(s.ok for s in scenes) and scenes[1].geojson == other


# ----------------------------------------------------------------------------- extras


def test_chips_and_quicklook_from_a_real_scene(fire_geojson: dict[str, Any]) -> None:
    from PIL import Image

    from pipeline.core.scene import open_scene
    from pipeline.downlink import make_chips, make_quicklook

    scene = open_scene(SAMPLES / "s2_fire_G90292")
    feats = fire_geojson["features"]
    chips = make_chips(scene, feats, size=64)
    assert [c.index for c in chips] == list(range(len(feats)))
    for chip, f in zip(chips, feats, strict=True):
        assert chip.bands == ("B12", "B11", "B09")  # fires in SWIR false colour (no B8A here)
        with Image.open(io.BytesIO(chip.image)) as im:
            assert im.size == (64, 64) and im.format == "JPEG"
        xs = [p[0] for ring in f["geometry"]["coordinates"] for p in ring]
        ys = [p[1] for ring in f["geometry"]["coordinates"] for p in ring]
        w, s, e, n = chip.bbox
        assert w <= (min(xs) + max(xs)) / 2 <= e and s <= (min(ys) + max(ys)) / 2 <= n
        assert len(chip.image) < 4000
    ql = make_quicklook(scene, 128)
    with Image.open(io.BytesIO(ql.image)) as im:
        assert im.size[0] == 128
    plan = encode_scene(REPORT, fire_geojson, extras=Extras(chips, ql))
    assert plan.core_bytes < plan.extras_bytes
    d = decode_stream(plan.packets)
    assert d.ok and d.chips == chips and d.quicklook == ql


def test_chip_for_a_point_feature_as_png(fire_geojson: dict[str, Any]) -> None:
    from pipeline.core.scene import open_scene
    from pipeline.downlink import make_chips

    scene = open_scene(SAMPLES / "s2_fire_G90292")
    f = fire_geojson["features"][0]
    x, y = f["geometry"]["coordinates"][0][0]
    point = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [x, y]},
        "properties": {"class": "ship"},
    }
    (chip,) = make_chips(scene, [point], size=16, fmt="png")
    assert chip.format == "png" and chip.size_px == (16, 16)


def test_public_names_are_exported() -> None:
    import pipeline.downlink as downlink

    assert set(downlink.__all__) == set(downlink._EXPORTS)
    for name in downlink.__all__:
        assert getattr(downlink, name) is not None


def test_pixel_outlines_cost_about_one_byte_per_vertex() -> None:
    rng = random.Random(7)
    steps = [rng.choice([-1, 1]) * rng.randint(1, 60) / 1e5 for _ in range(400)]
    ring = _staircase([12.34567, 45.67891], steps, 0, True)
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"class": "ship", "score": 0.5},
            }
        ],
    }
    packed = codec.pack(fc)
    assert codec.unpack(packed) == fc
    assert len(packed) < 1.3 * len(steps)  # two deltas per vertex would be ~2 bytes


def test_ship_chips_are_true_colour() -> None:
    from PIL import Image

    from pipeline.core.scene import open_scene
    from pipeline.downlink import make_chips

    scene = open_scene(SAMPLES / "sen2ships_honolulu")
    lon, lat = scene.grid.center_lonlat
    ship = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]},
        "properties": {"class": "ship", "score": 0.9},
    }
    (chip,) = make_chips(scene, [ship])
    assert chip.bands == ("B04", "B03", "B02")
    with Image.open(io.BytesIO(chip.image)) as im:
        assert im.size == (64, 64)
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 50  # stretched, not a flat picture
