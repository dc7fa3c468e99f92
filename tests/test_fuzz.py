"""Fuzzing (issue 8): the scene reader and the packet decoder under damaged input.

Property tests with a fixed, bounded budget (derandomised, so CI sees the same examples every
run).  Longer runs::

    EOTRIAGE_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz.py -q
    EOTRIAGE_FUZZ_RANDOM=1 ...   # new random examples instead of the fixed derandomised ones

Scene reader: real GeoTIFFs from ``sample_scenes/`` have bytes of one band file truncated,
flipped, overwritten or appended to; opening and reading every tile may only raise
:class:`~pipeline.errors.EotriageError` naming the file, and ``run_scene`` returns a
``SceneResult`` (tile failures recorded) or raises ``InputError``.

Damage confined to the compressed data blocks of one band file: the tiles that do not read the
block keep their detections exactly, and a block GDAL cannot decode shows up as failed tiles.

Packet decoder: real downlink streams (the sample fire scene through ``write_scene`` with chips
and quicklook, the Virginia L1C crop, question/answer packets) are damaged packet by packet
or byte by byte; decoding never raises, every product whose packets all survived decodes to
exactly what was sent, and any loss or damage is reported.  Products damaged *before* framing
(every CRC valid) exercise the product decoders and ``write_decoded``, which must turn bad
content into ``PacketError`` / recorded damage.  The regression tests at the end pin the bugs
these fuzzers found.  Quick mode (the default budgets) takes ~30 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rasterio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ground_decoder
from ground_decoder.decode import Decoded
from pipeline.core.engine import run_scene
from pipeline.core.ingest import SceneReader
from pipeline.core.results import SceneResult
from pipeline.core.scene import open_scene
from pipeline.core.tiling import count_tiles, iter_tiles
from pipeline.errors import EotriageError, InputError
from pipeline.settings import DownlinkSettings, Settings
from pipeline.wire import codec
from pipeline.wire.ccsds import SpacePacket, packetise, scan_stream
from pipeline.wire.products import (
    Chip,
    Kind,
    Manifest,
    Quicklook,
    unpack_detections_chunk,
    unpack_report,
)
from pipeline.wire.qa import DecodedQA, decode_qa, encode_answers, encode_questions

from .conftest import SAMPLES

#: examples per property; 0 keeps each test's quick CI budget
FUZZ_EXAMPLES = int(os.environ.get("EOTRIAGE_FUZZ_EXAMPLES", "0"))
FUZZ_RANDOM = os.environ.get("EOTRIAGE_FUZZ_RANDOM", "") == "1"


def budget(quick: int) -> settings:
    return settings(
        max_examples=FUZZ_EXAMPLES or quick,
        deadline=None,
        derandomize=not FUZZ_RANDOM,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


# ================================================================== byte-level mutations


@dataclass(frozen=True)
class Mutation:
    """One edit of a byte string; ``apply`` never fails, whatever the positions."""

    op: str  # truncate | flip | set | overwrite | insert | delete | append
    pos: int = 0
    value: int = 0
    data: bytes = b""

    def apply(self, buf: bytearray) -> None:
        n = len(buf)
        if self.op == "append":
            buf += self.data
            return
        if n == 0:
            return
        pos = self.pos % n
        if self.op == "truncate":
            del buf[pos:]
        elif self.op == "flip":
            buf[pos] ^= 1 << (self.value % 8)
        elif self.op == "set":
            buf[pos] = self.value % 256
        elif self.op == "overwrite":
            buf[pos : pos + len(self.data)] = self.data[: n - pos]
        elif self.op == "insert":
            buf[pos:pos] = self.data
        elif self.op == "delete":
            del buf[pos : pos + max(1, self.value)]


def mutate(data: bytes, muts: list[Mutation]) -> bytes:
    buf = bytearray(data)
    for m in muts:
        m.apply(buf)
    return bytes(buf)


def _tiff_hot_spots(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges worth aiming at in a TIFF: the header, the first IFD and what it points to
    (tag arrays such as StripOffsets/TileByteCounts, GeoTIFF keys, descriptions)."""
    spots = [(0, 16)]
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return spots
    e = "<" if data[:2] == b"II" else ">"
    (magic,) = struct.unpack_from(e + "H", data, 2)
    if magic != 42:  # BigTIFF: the header is the interesting part
        return spots
    (ifd,) = struct.unpack_from(e + "I", data, 4)
    if ifd + 2 > len(data):
        return spots
    (count,) = struct.unpack_from(e + "H", data, ifd)
    spots.append((ifd, ifd + 2 + 12 * count + 4))
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(data):
            break
        _tag, typ, n, off = struct.unpack_from(e + "HHII", data, at)
        size = sizes.get(typ, 1) * n
        if size > 4 and off < len(data):
            spots.append((off, min(len(data), off + size)))
    return spots


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes, hot: list[tuple[int, int]]) -> list[Mutation]:
    """1-4 edits, positions anywhere or aimed at the ``hot`` ranges (TIFF header and IFD)."""
    n = max(1, len(data))

    def position() -> int:
        if len(hot) > 0 and draw(st.booleans()):
            lo, hi = draw(st.sampled_from(hot))
            return draw(st.integers(lo, max(lo, hi - 1)))
        return draw(st.integers(0, n - 1))

    out = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                ["truncate", "flip", "flip", "set", "overwrite", "insert", "delete", "append"]
            )
        )
        if op == "append":
            out.append(Mutation(op, data=draw(st.binary(min_size=1, max_size=64))))
        elif op in ("overwrite", "insert"):
            run = draw(
                st.binary(min_size=1, max_size=32)
                | st.integers(1, 512).map(lambda k: b"\x00" * k)
                | st.integers(1, 512).map(lambda k: b"\xff" * k)
            )
            out.append(Mutation(op, position(), data=run))
        else:
            out.append(Mutation(op, position(), draw(st.integers(0, 255))))
    return out


# ========================================================================= scene reader

READ_TILE = 128
READ_OVERLAP = 16
#: a damaged header may claim a far larger raster than the file holds; the reader property
#: reads at most this many tiles then (each one must still fail or succeed cleanly)
MAX_TILES_READ = 64


@dataclass(frozen=True)
class SceneCase:
    """A pristine scene and the band file the fuzzer damages."""

    name: str
    files: tuple[Path, ...]  # all files of the scene (one for a multi-band GeoTIFF)
    target: Path  # the file to damage
    directory: bool  # open the folder (True) or the file (False)


def _split_bands(src: Path, out: Path, block: int = 64) -> Path:
    """The real multi-band fire scene as one tiled, deflate-compressed GeoTIFF per band."""
    out.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src) as ds:
        for i, name in enumerate(("B09", "B11", "B12"), 1):
            prof = dict(ds.profile)
            prof.update(
                count=1,
                tiled=True,
                blockxsize=block,
                blockysize=block,
                compress="deflate",
                interleave="band",
            )
            with rasterio.open(out / f"{name}.tif", "w", **prof) as dst:
                dst.write(ds.read(i), 1)
                dst.set_band_description(1, ds.descriptions[i - 1])
                dst.update_tags(**ds.tags())
    return out


@pytest.fixture(scope="module")
def fire_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _split_bands(
        SAMPLES / "s2_fire_G90292" / "G90292_20230514.tif",
        tmp_path_factory.mktemp("fuzz") / "fire_split",
    )


@pytest.fixture(scope="module")
def scene_cases(fire_split: Path) -> list[SceneCase]:
    fire = SAMPLES / "s2_fire_G90292" / "G90292_20230514.tif"
    vir = SAMPLES / "s2_l1c_virginia_crop"
    hon = SAMPLES / "sen2ships_honolulu"
    vir_files = tuple(sorted(vir.glob("*.tif")))
    split = tuple(sorted(fire_split.glob("*.tif")))
    return [
        # single multi-band float32 file, 5-row strips, no compression
        SceneCase("fire_file", (fire,), fire, False),
        # 13 single-band deflate files at 10/20/60 m: damage a 60 m, a 20 m and a 10 m band
        SceneCase("virginia_b01", vir_files, vir / "B01.tif", True),
        SceneCase("virginia_b12", vir_files, vir / "B12.tif", True),
        SceneCase("virginia_b04", vir_files, vir / "B04.tif", True),
        # EPSG:3857 files without band descriptions (band from the file name)
        SceneCase("honolulu_b08", tuple(sorted(hon.glob("*.tif"))), hon / "B08.tif", True),
        # the fire scene split into tiled deflate files
        SceneCase("split_b12", split, fire_split / "B12.tif", True),
        SceneCase("split_b11", split, fire_split / "B11.tif", True),
    ]


@st.composite
def damaged_scenes(
    draw: st.DrawFn, cases: list[SceneCase], aim_at_header: bool = True
) -> tuple[SceneCase, bytes]:
    case = draw(st.sampled_from(cases))
    data = case.target.read_bytes()
    muts = draw(byte_mutations(data, _tiff_hot_spots(data) if aim_at_header else []))
    return case, mutate(data, muts)


def _materialise(case: SceneCase, damaged: bytes, root: Path) -> tuple[Path, Path]:
    """Write the damaged file beside links to the intact ones; (scene path, damaged path)."""
    d = Path(tempfile.mkdtemp(dir=root))
    for f in case.files:
        if f != case.target:
            (d / f.name).symlink_to(f)
    bad = d / case.target.name
    bad.write_bytes(damaged)
    return (d if case.directory else bad), bad


def _names_file(exc: BaseException, path: Path) -> bool:
    return path.name in str(exc)


def _read_everything(scene_path: Path, bad: Path) -> None:
    """open_scene + every tile of every band through SceneReader; assert the error contract."""
    try:
        scene = open_scene(scene_path)
    except EotriageError as exc:
        assert _names_file(exc, bad) or (scene_path == bad.parent and str(scene_path) in str(exc))
        event(f"open: {type(exc).__name__}")
        return
    # anything else (TypeError, rasterio errors, ...) escapes and fails the test
    tiles = iter_tiles(scene.grid.width, scene.grid.height, READ_TILE, READ_OVERLAP)
    with SceneReader(scene) as reader:
        for k, tile in enumerate(tiles):
            if k >= MAX_TILES_READ:
                break
            try:
                data = reader.read(tile, scene.band_names)
            except EotriageError as exc:
                assert _names_file(exc, bad), f"tile {tile.id}: error does not name file: {exc}"
                event("read: a tile failed")
                continue
            assert data.flags.shape == (int(tile.read.height), int(tile.read.width))
            for arr in data.bands.values():
                assert arr.shape == data.flags.shape


@pytest.mark.slow
@budget(400)
@given(data=st.data())
def test_scene_reader_damaged_band_file(
    data: st.DataObject, scene_cases: list[SceneCase], tmp_path: Path
) -> None:
    case, damaged = data.draw(damaged_scenes(scene_cases))
    scene_path, bad = _materialise(case, damaged, tmp_path)
    try:
        _read_everything(scene_path, bad)
    finally:
        shutil.rmtree(scene_path if case.directory else scene_path.parent)


def _fire_settings() -> Settings:
    return Settings(tile_size=64, detectors=("fire",), prefetch=False)


@pytest.mark.slow
@budget(150)
@given(data=st.data())
def test_run_scene_damaged_band_file(
    data: st.DataObject, scene_cases: list[SceneCase], tmp_path: Path
) -> None:
    """run_scene raises InputError naming the file, or returns with tile failures recorded."""
    fire_cases = [c for c in scene_cases if c.name.startswith(("split", "fire_file", "virginia"))]
    # positions anywhere (mostly pixel data): most header damage already fails at open
    case, damaged = data.draw(damaged_scenes(fire_cases, aim_at_header=False))
    scene_path, bad = _materialise(case, damaged, tmp_path)
    try:
        try:
            scene = open_scene(scene_path)
        except InputError as exc:
            assert _names_file(exc, bad) or str(scene_path) in str(exc)
            return
        if count_tiles(scene.grid.width, scene.grid.height, 64) > 400:
            return  # a header claiming a huge raster: covered (bounded) by the reader test
        try:
            result = run_scene(scene, _fire_settings())
        except InputError as exc:
            assert _names_file(exc, bad) or str(scene_path) in str(exc)
            return
        assert isinstance(result, SceneResult)
        event(f"run_scene: {'tile failures' if result.failures else 'no tile failure'}")
        for f in result.failures:
            assert "internal error" not in f.cause, f.cause
            assert bad.name in f.cause, f.cause
    finally:
        shutil.rmtree(scene_path if case.directory else scene_path.parent)


# ------------------------------------------------- data blocks only: other tiles are kept


def _block_spans(path: Path) -> list[tuple[int, int, int, int]]:
    """(block row, block col, byte offset, byte size) of every data block of band 1."""
    out = []
    with rasterio.open(path) as ds:
        bh, bw = ds.block_shapes[0]
        for r in range(-(-ds.height // bh)):
            for c in range(-(-ds.width // bw)):
                off = ds.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1)
                size = ds.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1)
                out.append((r, c, int(off), int(size)))
    return out


@pytest.fixture(scope="module")
def split_clean(fire_split: Path) -> SceneResult:
    res = run_scene(open_scene(fire_split), _fire_settings())
    assert res.ok and len(res.detections) >= 10, "the sample fire scene lost its fires"
    return res


def _detection_key(d: Any) -> tuple[str, float, str]:
    return d.cls, round(d.score, 6), d.geometry.wkb_hex


@pytest.mark.slow
@budget(70)
@given(data=st.data())
def test_corrupt_data_block_keeps_other_tiles(
    data: st.DataObject, fire_split: Path, split_clean: SceneResult, tmp_path: Path
) -> None:
    band = data.draw(st.sampled_from(["B11.tif", "B12.tif"]))
    path = fire_split / band
    raw = path.read_bytes()
    blocks = _block_spans(path)
    r, c, off, size = data.draw(st.sampled_from(blocks))
    # damage inside the block only: flips, or a run overwritten
    muts: list[Mutation] = []
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(off, off + size - 1))
        if data.draw(st.booleans()):
            muts.append(Mutation("flip", pos, data.draw(st.integers(0, 7))))
        else:
            run = data.draw(st.binary(min_size=1, max_size=min(64, off + size - pos)))
            muts.append(Mutation("overwrite", pos, data=run))
    damaged = mutate(raw, muts)
    case = SceneCase("split", tuple(sorted(fire_split.glob("*.tif"))), path, True)
    scene_path, bad = _materialise(case, damaged, tmp_path)
    try:
        scene = open_scene(scene_path)  # metadata untouched: must open
        result = run_scene(scene, _fire_settings())
        with rasterio.open(bad) as ds:
            bh, bw = ds.block_shapes[0]
        # the block's footprint on the working grid (the split bands share one grid)
        x0, y0, x1, y1 = c * bw, r * bh, (c + 1) * bw, (r + 1) * bh
        tiles = list(iter_tiles(scene.grid.width, scene.grid.height, 64, result.info["overlap"]))
        touched = {
            t.id
            for t in tiles
            if t.read.col_off < x1
            and x0 < t.read.col_off + t.read.width
            and t.read.row_off < y1
            and y0 < t.read.row_off + t.read.height
        }
        failed = {f.tile_id for f in result.failures}
        assert failed <= touched, (failed - touched, touched)
        for f in result.failures:
            assert bad.name in f.cause and "internal error" not in f.cause, f.cause
        got = {_detection_key(d) for d in result.detections}
        for d in split_clean.detections:
            if not set(str(d.measures["tiles"]).split(",")) & touched:
                assert _detection_key(d) in got, f"lost a detection of tiles {d.measures['tiles']}"
        # a block GDAL cannot decode is reported as failed tiles, never silently dropped
        with rasterio.open(bad) as ds:
            try:
                ds.read(1, window=((y0, min(y1, ds.height)), (x0, min(x1, ds.width))))
                undecodable = False
            except rasterio.errors.RasterioError:
                undecodable = True
        if undecodable:
            assert failed, "an undecodable block was not reported"
        event(f"block undecodable: {undecodable}, tiles failed: {bool(failed)}")
    finally:
        shutil.rmtree(scene_path)


# ======================================================================= packet decoder


@dataclass(frozen=True)
class RefPacket:
    raw: bytes
    packet: SpacePacket

    @property
    def product(self) -> tuple[int, int, int]:
        return self.packet.scene, self.packet.kind, self.packet.item


@dataclass(frozen=True)
class Reference:
    stream: bytes = field(repr=False)
    packets: tuple[RefPacket, ...] = field(repr=False)
    decoded: tuple[Decoded, ...] = field(repr=False)
    qa: DecodedQA = field(repr=False)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # keeps hypothesis reports short
        p.text(f"Reference({len(self.stream)} bytes, {len(self.packets)} packets)")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """Real downlink bytes: two scenes through run_scene + write_scene (the fire scene with
    chips and quicklook; the Virginia crop, no fire: an empty FeatureCollection), then question
    and answer packets.  Only the fire detector runs, so the fixture does not depend on the
    other detectors' models."""
    out = tmp_path_factory.mktemp("fuzz_dl")
    streams = []
    for name, dl in (
        ("s2_fire_G90292", DownlinkSettings(chips=True, quicklook=True, max_chips=4)),
        ("s2_l1c_virginia_crop", DownlinkSettings()),
    ):
        from pipeline.runner import write_scene

        res = run_scene(SAMPLES / name, Settings(detectors=("fire",)))
        written = write_scene(res, out, downlink=dl).downlink
        assert written is not None
        streams.append(written.read_bytes())
    questions = [
        {"qid": 1, "text": "how many fires in the scene?", "kind": "count", "cls": "fire"},
        {"qid": 2, "text": "largest ship near the port", "bbox": [-157.9, 21.3, -157.8, 21.4]},
    ]
    answers = [
        {
            "qid": 1,
            "question": "how many fires in the scene?",
            "filter": {"kind": "count", "cls": "fire"},
            "understood_by": "given",
            "facts": {"kind": "count", "cls": "fire", "matches": 12},
            "text": "12 fire clusters detected.",
            "writer": "template",
            "fallback_reason": None,
            "latency_s": 0.012,
            "error": None,
        }
    ]
    streams.append(encode_questions(questions))
    streams.append(encode_answers(answers))
    stream = b"".join(streams)
    scanned, damaged = scan_stream(stream)
    assert not damaged
    pkts = tuple(RefPacket(stream[s.offset : s.offset + s.packet.size], s.packet) for s in scanned)
    decoded = ground_decoder.decode_scenes(stream)
    assert len(decoded) == 2 and all(d.ok for d in decoded)
    qa = decode_qa(stream)
    assert qa.ok and len(qa.questions) == 2 and len(qa.answers) == 1
    return Reference(stream, pkts, decoded, qa)


@dataclass(frozen=True)
class Piece:
    data: bytes
    source: int | None  # index of the reference packet it started from (None: garbage)


@dataclass(frozen=True)
class PacketOp:
    op: str  # flip | truncate | overwrite | splice | duplicate | drop | swap | garbage | cut
    i: int
    j: int = 0
    k: int = 0
    data: bytes = b""

    def apply(self, pieces: list[Piece]) -> None:
        if not pieces and self.op != "garbage":
            return
        n = len(pieces)
        i = self.i % max(n, 1)
        if self.op == "garbage":
            pieces.insert(self.i % (n + 1), Piece(self.data, None))
            return
        p = pieces[i]
        if self.op == "flip":
            if not p.data:
                return
            b = bytearray(p.data)
            b[self.k % len(b)] ^= 1 << (self.j % 8)
            pieces[i] = Piece(bytes(b), p.source)
        elif self.op == "truncate":
            pieces[i] = Piece(p.data[: self.k % max(len(p.data), 1)], p.source)
        elif self.op == "overwrite":
            b = bytearray(p.data)
            at = self.k % max(len(b), 1)
            b[at : at + len(self.data)] = self.data[: max(len(b) - at, 0)]
            pieces[i] = Piece(bytes(b), p.source)
        elif self.op == "splice":  # head of one packet + tail of another
            q = pieces[self.j % n]
            cut = self.k % max(len(p.data), 1)
            pieces[i] = Piece(p.data[:cut] + q.data[cut:], p.source)
        elif self.op == "duplicate":
            pieces.insert(self.j % (n + 1), p)
        elif self.op == "drop":
            del pieces[i]
        elif self.op == "swap":
            j = self.j % n
            pieces[i], pieces[j] = pieces[j], pieces[i]
        elif self.op == "cut":  # the pass ends early: stream truncated inside packet i
            del pieces[i + 1 :]
            pieces[i] = Piece(p.data[: self.k % max(len(p.data), 1)], p.source)


packet_ops = st.builds(
    PacketOp,
    op=st.sampled_from(
        [
            "flip",
            "flip",
            "truncate",
            "overwrite",
            "splice",
            "duplicate",
            "drop",
            "swap",
            "garbage",
            "cut",
        ]
    ),
    i=st.integers(0, 10_000),
    j=st.integers(0, 10_000),
    k=st.integers(0, 70_000),
    data=st.binary(min_size=1, max_size=48) | st.sampled_from([b"\x00" * 40, b"\xff" * 40]),
)


def _intact(ref: Reference, stream: bytes) -> set[int]:
    """Reference packets present, byte for byte, somewhere in ``stream``."""
    return {i for i, p in enumerate(ref.packets) if p.raw in stream}


def _products(ref: Reference) -> dict[tuple[int, int, int], list[int]]:
    out: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for i, p in enumerate(ref.packets):
        out[p.product].append(i)
    return out


def _check_scene(ref: Reference, dec: Decoded, present: set[int], clean: bool) -> None:
    """``dec`` against the reference decode of the same scene."""
    exp = next(d for d in ref.decoded if d.scene_tag == dec.scene_tag)
    prods = {k: v for k, v in _products(ref).items() if k[0] == dec.scene_tag}
    whole = {k for k, idx in prods.items() if all(i in present for i in idx)}
    # untouched products decode to exactly what was sent
    if (dec.scene_tag, Kind.REPORT, 0) in whole:
        assert dec.report == exp.report
    else:
        assert dec.report is None
    if any(k[1] == Kind.MANIFEST for k in whole):
        assert dec.manifest == exp.manifest and dec.scene == exp.scene
    if (dec.scene_tag, Kind.QUICKLOOK, 0) in whole:
        assert dec.quicklook == exp.quicklook
    else:
        assert dec.quicklook is None
    chips_whole = {k[2] for k in whole if k[1] == Kind.CHIP}
    assert len(dec.chips) == len(chips_whole)
    exp_chips = {c.index: c for c in exp.chips}
    for chip in dec.chips:
        assert chip == exp_chips[chip.index]
    # detections: the features of the chunks that arrived, in their onboard order
    assert exp.geojson is not None
    chunks = {
        k[2]: unpack_detections_chunk(_payload(ref, prods[k]))
        for k in prods
        if k[1] == Kind.DETECTIONS
    }
    arrived = sorted(
        i
        for item, ch in chunks.items()
        if (dec.scene_tag, Kind.DETECTIONS, item) in whole
        for i in ch.indices
    )
    feats = exp.geojson["features"]
    if any((dec.scene_tag, Kind.DETECTIONS, item) in whole for item in chunks):
        assert dec.geojson is not None
        assert dec.geojson["features"] == [feats[i] for i in arrived]
        if (dec.scene_tag, Kind.DETECTIONS, 0) in whole:
            assert dec.geojson == {**exp.geojson, "features": dec.geojson["features"]}
    else:
        assert dec.geojson is None
    # damage is reported: a perfect stream decodes ok, anything lost or damaged does not
    if clean and whole == set(prods):
        assert dec.ok, dec.damage.lines()
    else:
        assert not dec.ok, "damage not reported"
    assert isinstance(json.dumps(dec.damage.to_dict()), str)
    assert dec.summary_lines()


def _payload(ref: Reference, idx: list[int]) -> bytes:
    segs = sorted((ref.packets[i].packet.segment, ref.packets[i].packet.data) for i in idx)
    return b"".join(d for _, d in segs)


def _reframed(
    ref: Reference,
    groups: dict[tuple[int, int, int], list[int]],
    target: tuple[int, int, int],
    payload: bytes,
) -> bytes:
    """The reference stream with product ``target`` carrying ``payload``, framed afresh like
    its first packet (so every CRC verifies); the other products keep their packets."""
    first = ref.packets[groups[target][0]].packet
    out = bytearray()
    for key in sorted(groups):
        if key != target:
            out += b"".join(ref.packets[i].raw for i in groups[key])
            continue
        for p in packetise(
            payload,
            apid=first.apid,
            kind=first.kind,
            scene=first.scene,
            item=first.item,
            first_seq=first.seq_count,
            max_segment=1024,
        ):
            out += p.pack()
    return bytes(out)


def _damaged_stream(ref: Reference, ops: list[PacketOp]) -> bytes:
    pieces = [Piece(p.raw, i) for i, p in enumerate(ref.packets)]
    for op in ops:
        op.apply(pieces)
    return b"".join(p.data for p in pieces)


@pytest.mark.slow
@budget(300)
@given(ops=st.lists(packet_ops, min_size=1, max_size=6))
def test_decoder_damaged_packets(reference: Reference, ops: list[PacketOp]) -> None:
    stream = _damaged_stream(reference, ops)
    present = _intact(reference, stream)
    _, damaged = scan_stream(stream)
    clean = not damaged
    event("stream: " + ("damaged bytes" if damaged else "whole packets only"))
    event("all packets intact" if len(present) == len(reference.packets) else "packets lost")
    scenes = ground_decoder.decode_scenes(stream)  # must not raise
    tags = {d.scene_tag for d in reference.decoded}
    for dec in scenes:
        if dec.scene_tag in tags:
            _check_scene(reference, dec, present, clean)
        else:  # only possible when nothing of any scene arrived
            assert not dec.ok
            assert dec.scene_tag == 0 and dec.packets == 0
    first = ground_decoder.decode_stream(stream)
    assert isinstance(first, Decoded)
    _check_qa(reference, stream, present, clean)


def _check_qa(ref: Reference, stream: bytes, present: set[int], clean: bool) -> None:
    qa = decode_qa(stream)
    prods = {k: v for k, v in _products(ref).items() if k[1] in (0x20, 0x21)}
    whole = {k for k, idx in prods.items() if all(i in present for i in idx)}
    for kind, exp_items, got_items in (
        (0x20, ref.qa.questions, qa.questions),
        (0x21, ref.qa.answers, qa.answers),
    ):
        want = [v for v in exp_items if any(k[1] == kind and k[2] == v["qid"] for k in whole)]
        for v in want:
            assert v in got_items
        for v in got_items:
            assert v in exp_items
    if not clean:
        assert not qa.ok, "damaged bytes not reported"


@budget(300)
@given(
    muts=st.lists(
        st.builds(
            Mutation,
            op=st.sampled_from(["truncate", "flip", "set", "overwrite", "insert", "delete"]),
            pos=st.integers(0, 200_000),
            value=st.integers(0, 255),
            data=st.binary(min_size=1, max_size=64),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_decoder_raw_byte_damage(reference: Reference, muts: list[Mutation]) -> None:
    """Unstructured damage anywhere in the stream: never raises, intact products survive."""
    stream = mutate(reference.stream, muts)
    present = _intact(reference, stream)
    clean = not scan_stream(stream)[1]
    tags = {d.scene_tag for d in reference.decoded}
    for dec in ground_decoder.decode_scenes(stream):
        if dec.scene_tag in tags:
            _check_scene(reference, dec, present, clean)
    _check_qa(reference, stream, present, clean)


# ------------------------------------------- valid CRC, damaged content (product decoders)


@st.composite
def reframed_streams(draw: st.DrawFn, ref: Reference) -> bytes:
    """Products whose payload is damaged *before* framing: every packet's CRC verifies, so
    only the product decoders stand between the damage and the output."""
    groups: dict[tuple[int, int, int], list[int]] = _products(ref)
    keys = sorted(groups)
    target = draw(st.sampled_from(keys))
    payload = _payload(ref, groups[target])
    mode = draw(st.sampled_from(["bytes", "body", "value"]))
    if mode == "bytes":
        new = mutate(payload, draw(byte_mutations(payload, [(0, min(16, len(payload)))])))
    elif mode == "body":  # damage the codec body after inflating, then re-pack the format
        body = _raw_body(payload)
        new = b"\x01" + mutate(body, draw(byte_mutations(body, [(0, min(32, len(body)))])))
    else:  # a well-formed codec value with hostile contents
        new = codec.pack(draw(_hostile_values(codec.unpack(payload))))
    return _reframed(ref, groups, target, new)


def _raw_body(payload: bytes) -> bytes:
    import zlib

    if payload[0] == codec.FORMAT_RAW:
        return payload[1:]
    d = zlib.decompressobj(-15, zdict=codec.PRESET_DICTIONARY)
    return d.decompress(payload[1:])


hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([2**62, -1, 0, 10**18]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.binary(max_size=6),
)


@st.composite
def _hostile_values(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with 1-3 members (at any depth) replaced by hostile scalars or containers."""
    paths = list(_paths(value))
    out = json.loads(json.dumps(value, default=lambda b: b.hex()))  # deep copy, bytes as hex
    out = _restore_bytes(value, out)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        new = draw(
            hostile_scalars
            | st.lists(hostile_scalars, max_size=4)
            | st.dictionaries(st.text(max_size=4), hostile_scalars, max_size=3)
        )
        out = _replace(out, path, new)
    return out


def _paths(v: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _paths(x, (*prefix, k))
    elif isinstance(v, list):
        for i, x in enumerate(v[:8]):
            yield from _paths(x, (*prefix, i))


def _restore_bytes(orig: Any, copy: Any) -> Any:
    if isinstance(orig, bytes):
        return orig
    if isinstance(orig, dict):
        return {k: _restore_bytes(orig[k], copy[k]) for k in orig}
    if isinstance(orig, list):
        return [_restore_bytes(a, b) for a, b in zip(orig, copy, strict=True)]
    return copy


def _replace(v: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(v, dict) and head in v:
        return {**v, head: _replace(v[head], rest, new)}
    if isinstance(v, list) and isinstance(head, int) and head < len(v):
        return [*v[:head], _replace(v[head], rest, new), *v[head + 1 :]]
    return v


def _exercise(dec: Decoded) -> None:
    """What ``eotriage decode`` does with a decoded scene, short of writing files."""
    json.dumps(dec.damage.to_dict())
    dec.summary_lines()
    dec.counts()


@pytest.mark.slow
@budget(400)
@given(data=st.data())
def test_decoder_valid_crc_damaged_products(reference: Reference, data: st.DataObject) -> None:
    stream = data.draw(reframed_streams(reference))
    for dec in ground_decoder.decode_scenes(stream):  # must not raise
        _exercise(dec)
    ground_decoder.decode_stream(stream)
    qa = decode_qa(stream)
    for kind_values in (qa.questions, qa.answers):
        for v in kind_values:
            assert isinstance(v, dict)


@st.composite
def damaged_pictures(draw: st.DrawFn, ref: Reference) -> bytes:
    """The reference stream with the picture bytes of one chip or of the quicklook damaged
    (payload re-framed, so every CRC verifies and the damage reaches Pillow)."""
    groups = _products(ref)
    key = draw(st.sampled_from(sorted(k for k in groups if k[1] in (Kind.CHIP, Kind.QUICKLOOK))))
    value = codec.unpack(_payload(ref, groups[key]))
    img: bytes = value["img"]
    value["img"] = mutate(img, draw(byte_mutations(img, [(0, min(64, len(img)))])))
    return _reframed(ref, groups, key, codec.pack(value))


@pytest.mark.slow
@budget(8)  # ~1 s each: render_map saves an optimised 900 px PNG
@given(data=st.data())
def test_write_decoded_survives_damaged_pictures_and_values(
    reference: Reference, data: st.DataObject, tmp_path: Path
) -> None:
    """What ``eotriage decode`` writes (GeoJSON, report, chips, quicklook, map, damage.json)
    from CRC-valid but damaged products: never raises; bad pictures are listed as damage."""
    if data.draw(st.booleans()):
        stream = data.draw(damaged_pictures(reference))
    else:
        stream = data.draw(reframed_streams(reference))
    out = Path(tempfile.mkdtemp(dir=tmp_path))
    for i, dec in enumerate(ground_decoder.decode_scenes(stream)):
        written = ground_decoder.write_decoded(dec, out / str(i))
        damage = json.loads(written.damage_json.read_text())
        bad_chips = [m for m in damage["images_undecodable"] if m.startswith("chip ")]
        assert len(written.chips) + len(bad_chips) == len(dec.chips)
    shutil.rmtree(out)


@budget(1000)
@given(data=st.binary(max_size=300) | st.binary(min_size=1, max_size=40).map(lambda b: b"\x01" + b))
def test_codec_unpack_raises_packet_error_only(data: bytes) -> None:
    from pipeline.errors import PacketError

    try:
        codec.unpack(data)
    except PacketError:
        pass


@pytest.mark.slow
@budget(500)
@given(data=st.data())
def test_product_decoders_raise_packet_error_only(
    reference: Reference, data: st.DataObject
) -> None:
    """Each product decoder on hostile but well-formed codec values: PacketError or a value."""
    from pipeline.errors import PacketError

    groups = _products(reference)
    decoders: dict[int, Callable[[bytes], Any]] = {
        Kind.MANIFEST: Manifest.unpack,
        Kind.REPORT: unpack_report,
        Kind.DETECTIONS: unpack_detections_chunk,
        Kind.CHIP: lambda b: Chip.from_value(codec.unpack(b)),
        Kind.QUICKLOOK: lambda b: Quicklook.from_value(codec.unpack(b)),
    }
    key = data.draw(st.sampled_from(sorted(k for k in groups if k[1] in decoders)))
    value = codec.unpack(_payload(reference, groups[key]))
    hostile = data.draw(_hostile_values(value))
    try:
        decoders[key[1]](codec.pack(hostile))
    except PacketError:
        pass


# ================================================== regression tests for bugs the fuzzers found


def _stream_with(products: list[tuple[Kind, int, bytes]], features: int = 0) -> bytes:
    """A one-pass stream (manifest first) of hand-made product payloads, all CRCs valid."""
    from pipeline.downlink.plan import plan_pass
    from pipeline.wire.products import Product

    prods = [Product(k, item, payload, (int(k), item)) for k, item, payload in products]
    return plan_pass("regress", prods, features=features).packets


def _report_payload() -> bytes:
    from pipeline.wire.products import pack_report

    return pack_report({"summary": "2 fire clusters", "priority": "high"})


def test_chip_with_integer_image_is_reported_not_allocated() -> None:
    """Found by test_product_decoders_raise_packet_error_only: ``"img": 2**40`` made
    ``Chip.from_value`` call ``bytes(2**40)``, a terabyte allocation (the OOM killer ended the
    test run).  Now the chip is undecodable and the rest of the stream decodes."""
    chip = {"i": 0, "bbox": [1.0, 2.0, 3.0, 4.0], "fmt": "png", "bands": [], "px": [8, 8]}
    stream = _stream_with(
        [
            (Kind.REPORT, 0, _report_payload()),
            (Kind.CHIP, 0, codec.pack({**chip, "img": 2**40})),
            (Kind.QUICKLOOK, 0, codec.pack({**chip, "img": -1})),
        ]
    )
    dec = ground_decoder.decode_stream(stream)
    assert dec.report == {"summary": "2 fire clusters", "priority": "high"}
    assert dec.chips == () and dec.quicklook is None
    assert not dec.ok
    assert any("chip[0]" in u and "image is not bytes" in u for u in dec.damage.undecodable)
    assert any("quicklook[0]" in u for u in dec.damage.undecodable)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (Kind.MANIFEST, {"v": 1, "scene": "s", "sent": [], "waiting": [], "features": 1e999}),
        (
            Kind.DETECTIONS,
            {"v": 1, "n": -1e999, "idx": [], "members": None, "order": None, "features": []},
        ),
        (
            Kind.CHIP,
            {"i": 0, "bbox": [0, 0, 1, 1], "fmt": "png", "bands": [], "px": [1e999, 1], "img": b""},
        ),
    ],
)
def test_infinite_numbers_raise_packet_error(kind: Kind, value: dict[str, Any]) -> None:
    """Found by the product-decoder fuzzer: ``int(inf)`` raised OverflowError through
    ``Manifest.unpack``, ``unpack_detections_chunk`` and ``Chip.from_value``."""
    from pipeline.errors import PacketError

    decoders: dict[Kind, Callable[[bytes], Any]] = {
        Kind.MANIFEST: Manifest.unpack,
        Kind.DETECTIONS: unpack_detections_chunk,
        Kind.CHIP: lambda b: Chip.from_value(codec.unpack(b)),
    }
    with pytest.raises(PacketError, match="malformed"):
        decoders[kind](codec.pack(value))
    # and through the decoder: reported as undecodable, never raised
    dec = ground_decoder.decode_stream(_stream_with([(kind, 1, codec.pack(value))]))
    assert any(u.startswith(kind.label) for u in dec.damage.undecodable), dec.damage.lines()


def test_huge_feature_count_is_bounded() -> None:
    """A manifest or chunk claiming 2**40 features made the ground build a 2**40-entry
    ``missing_features`` tuple (memory exhaustion).  Counts are bounded by MAX_FEATURES."""
    from pipeline.wire.products import MAX_FEATURES, pack_detections_chunk

    chunk = pack_detections_chunk({"type": "FeatureCollection", "features": []}, [], True)
    value = codec.unpack(chunk)
    stream = _stream_with([(Kind.DETECTIONS, 0, codec.pack({**value, "n": 2**40}))], 2**40)
    dec = ground_decoder.decode_stream(stream)  # the manifest says 2**40 features as well
    assert dec.manifest is None and dec.geojson is None
    assert len(dec.damage.missing_features) <= MAX_FEATURES
    assert any("feature count" in u for u in dec.damage.undecodable)


def test_string_bbox_is_not_read_as_four_numbers() -> None:
    """``_bbox("1234")`` used to return (1.0, 2.0, 3.0, 4.0): damage accepted as data."""
    from pipeline.errors import PacketError

    v = {"i": 0, "bbox": "1234", "fmt": "png", "bands": [], "px": [1, 1], "img": b""}
    with pytest.raises(PacketError, match="bbox"):
        Chip.from_value(v)


def test_qa_same_id_with_different_segment_counts() -> None:
    """Found while fuzzing decode_qa: two answers under one qid (a question asked twice)
    with 3 and 2 segments, each missing segment 0, left ``{1, 2}`` and a segment count of 2,
    and ``b"".join(segs[i] for i in range(2))`` raised KeyError out of ``decode_qa``."""
    import random

    rnd = random.Random(1)
    a = encode_answers([{"qid": 7, "text": rnd.randbytes(2500).hex()}])
    b = encode_answers([{"qid": 7, "text": rnd.randbytes(1200).hex()}], first_seq=10)
    pa, _ = scan_stream(a)
    pb, _ = scan_stream(b)
    assert (len(pa), len(pb)) == (3, 2)
    stream = b"".join(p.packet.pack() for p in pa[1:]) + b"".join(p.packet.pack() for p in pb[1:])
    qa = decode_qa(stream)
    assert qa.answers == () and not qa.ok
    assert any("inconsistent segment counts [2, 3]" in u for u in qa.undecodable)


def test_codec_encodes_geometry_with_unhashable_type() -> None:
    """Found by the re-framing fuzzer: a feature whose geometry ``type`` is a list made
    ``codec.pack`` raise TypeError (``[] in dict``); it now takes the generic, lossless path."""
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": [], "coordinates": [1.5, 2.5]},
                "properties": {"class": "fire"},
            },
            {
                "type": "Feature",
                "geometry": {"type": {"a": 1}, "coordinates": []},
                "properties": None,
            },
        ],
    }
    assert codec.unpack(codec.pack(fc)) == fc


def test_band_description_not_utf8_is_input_error(tmp_path: Path) -> None:
    """Found by test_scene_reader_damaged_band_file (virginia B01.tif, bytes set inside the
    GDAL metadata tag): rasterio raises UnicodeDecodeError from ``ds.descriptions``, which
    escaped ``open_scene``.  Now it is an InputError naming the file."""
    import numpy as np

    from .conftest import write_tif

    for f in (SAMPLES / "s2_l1c_virginia_crop").glob("*.tif"):
        if f.name != "B01.tif":
            (tmp_path / f.name).symlink_to(f)
    with rasterio.open(SAMPLES / "s2_l1c_virginia_crop" / "B01.tif") as ds:
        shape, transform = ds.shape, ds.transform
    bad = write_tif(
        tmp_path / "B01.tif",
        [np.full(shape, 1200, np.uint16)],
        crs="EPSG:32618",
        transform=transform,
        descriptions=["B01 xxxx"],
    )
    raw = bad.read_bytes()
    assert raw.count(b"B01 xxxx") == 1
    bad.write_bytes(raw.replace(b"B01 xxxx", b"B01 \xff\xfe\xd3\x8f"))
    with rasterio.open(bad) as ds, pytest.raises(UnicodeDecodeError):
        _ = ds.descriptions  # the library behaviour the fix guards against
    # one broken band file costs its band only (the other bands' detectors still run)
    scene = open_scene(tmp_path)
    assert "B01" not in scene.band_names
    assert re.search(r"B01\.tif: metadata unreadable", scene.unreadable["B01"])


def test_crs_without_transformation_to_wgs84_is_input_error(tmp_path: Path) -> None:
    """Found by the reader fuzzer: one bit flipped in the GeoKey directory of the sample fire
    scene turns its CRS into a LOCAL_CS (engineering CRS); ``open_scene`` then raised
    rasterio's CPLE_NotSupportedError from the WGS84 transform of the scene centre."""
    src = SAMPLES / "s2_fire_G90292" / "G90292_20230514.tif"
    bad = tmp_path / src.name
    bad.write_bytes(mutate(src.read_bytes(), [Mutation("flip", 2214, 6)]))
    with rasterio.open(bad) as ds:
        assert ds.crs is not None and "LOCAL_CS" in ds.crs.to_wkt()
    with pytest.raises(InputError, match=r"G90292_20230514\.tif: CRS .* cannot be transformed"):
        open_scene(bad)


@pytest.mark.parametrize(
    "transform",
    [
        # what the fuzzer produced for virginia B04.tif: finite, but a 1e179 m pixel that
        # "covered" any extent (the tolerance scaled with it) and was read as one constant
        (9.49781026540484e179, 0.0, -7.7e-140, 0.0, -2.4699107836661018e-259, 0.0),
        (10.0, 0.0, float("nan"), 0.0, -10.0, 4174380.0),
        (10.0, 0.0, 443340.0, 0.0, 0.0, 4174380.0),
    ],
)
def test_damaged_geotransform_is_input_error(tmp_path: Path, transform: tuple[float, ...]) -> None:
    """Before the fix the scene opened and SceneReader's index map cast NaN/inf to int64
    ("invalid value encountered in cast"): wrong samples, silently."""
    from affine import Affine

    vir = SAMPLES / "s2_l1c_virginia_crop"
    for f in vir.glob("*.tif"):
        if f.name != "B04.tif":
            (tmp_path / f.name).symlink_to(f)
    raw = (vir / "B04.tif").read_bytes()
    (tmp_path / "B04.tif").write_bytes(raw)
    with rasterio.open(tmp_path / "B04.tif", "r+") as ds:
        ds.transform = Affine(*transform)
    with pytest.raises(InputError, match=r"B04\.tif"):
        open_scene(tmp_path)


def test_implausible_pixel_size_single_file(tmp_path: Path) -> None:
    """A single-file scene has no other band to check against, so a damaged pixel size
    (here 1 µm) was accepted: pixel areas of 1e-12 m² and a fire-context window of 60 million
    pixels, nonsense taken as data.  The finest band's ground resolution must be plausible."""
    import numpy as np
    from affine import Affine

    from .conftest import write_tif

    path = write_tif(
        tmp_path / "scene.tif",
        [np.full((32, 32), 0.1, np.float32)] * 2,
        transform=Affine(1e-6, 0.0, 500_000.0, 0.0, -1e-6, 5_000_000.0),
        descriptions=["B11", "B12"],
    )
    with pytest.raises(InputError, match=r"scene\.tif: pixel size of .* implausible"):
        open_scene(path)


@pytest.mark.parametrize(
    "coords", [[1e20, 1e20], [float("nan"), 1.0], [float("inf"), 1.0], [-1e308, 1e308]]
)
def test_write_decoded_with_absurd_coordinates(coords: list[float], tmp_path: Path) -> None:
    """Found while fuzzing ``write_decoded`` with CRC-valid hostile values: a point at
    (1e20, 1e20) raised ZeroDivisionError in the map projection, NaN/inf raised ValueError in
    the frame, (-1e308, 1e308) a math domain error; and ``x += step`` in the tick loop cannot
    move at 1e20.  Such positions are now left off the map; the GeoJSON keeps them."""
    from pipeline.wire.products import pack_detections_chunk

    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": coords},
                "properties": {"class": "fire", "score": 1.0},
            }
        ],
    }
    stream = _stream_with([(Kind.DETECTIONS, 0, pack_detections_chunk(fc, [0], True))], 1)
    dec = ground_decoder.decode_stream(stream)
    written = ground_decoder.write_decoded(dec, tmp_path)
    assert written.map_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.dumps(dec.geojson) == json.dumps(fc)


def test_write_decoded_with_picture_claiming_huge_size(tmp_path: Path) -> None:
    """A chip/quicklook whose PNG header claims 50,000 x 50,000 px made Pillow raise
    DecompressionBombError (not an OSError) out of ``write_decoded``; between 16 Mpx and
    Pillow's limit it would allocate hundreds of MB.  Now listed as an undecodable image."""
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    for w, h in ((50_000, 50_000), (5_000, 5_000)):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
        chip = {"bbox": [1.0, 2.0, 1.1, 2.1], "fmt": "png", "bands": [], "px": [8, 8], "img": png}
        stream = _stream_with(
            [(Kind.CHIP, 0, codec.pack({"i": 0, **chip})), (Kind.QUICKLOOK, 0, codec.pack(chip))]
        )
        dec = ground_decoder.decode_stream(stream)
        assert len(dec.chips) == 1 and dec.quicklook is not None
        written = ground_decoder.write_decoded(dec, tmp_path / str(w))
        damage = json.loads(written.damage_json.read_text())
        assert written.chips == () and written.quicklook is None
        assert len(damage["images_undecodable"]) == 2, damage["images_undecodable"]


def test_report_holding_bytes_is_undecodable(tmp_path: Path) -> None:
    """Found by the ``write_decoded`` fuzzer: a CRC-valid report whose values include
    ``bytes`` (the codec carries them; JSON cannot) decoded as a report, then ``json.dumps``
    raised TypeError in ``write_decoded``.  Reports and GeoJSON must be plain JSON."""
    from pipeline.wire.products import pack_detections_chunk

    fc = {"type": "FeatureCollection", "features": [], "eotriage": {"blob": b"\x00\x01"}}
    stream = _stream_with(
        [
            (Kind.REPORT, 0, codec.pack({"v": 1, "report": {"summary": b"\xff"}})),
            (Kind.DETECTIONS, 0, pack_detections_chunk(fc, [], True)),
        ]
    )
    dec = ground_decoder.decode_stream(stream)
    assert dec.report is None and dec.geojson is None and not dec.ok
    assert any("report" in u and "bytes" in u for u in dec.damage.undecodable)
    assert any("detections" in u and "bytes" in u for u in dec.damage.undecodable)
    ground_decoder.write_decoded(dec, tmp_path)  # must not raise


def test_deeply_nested_payload_is_packet_error() -> None:
    """``codec.unpack`` recursed once per nesting level: 10 kB of ``[[[[...`` (214 bytes
    deflated) raised RecursionError instead of PacketError."""
    from pipeline.errors import PacketError

    with pytest.raises(PacketError, match="nested deeper"):
        codec.unpack(b"\x01" + b"\x08\x01" * 5000 + b"\x00")
    deep: Any = None
    for _ in range(codec.MAX_DEPTH):  # MAX_DEPTH lists around a null: one level too deep
        deep = [deep]
    with pytest.raises(PacketError, match="nested deeper"):
        codec.pack(deep)
    assert codec.unpack(codec.pack(deep[0])) == deep[0]  # the deepest value allowed


def test_file_without_geotransform_is_input_error(tmp_path: Path) -> None:
    """Found by the long reader run (NotGeoreferencedWarning from a damaged sample file): a
    file that keeps its CRS but loses its geotransform got rasterio's identity matrix, i.e.
    1-unit pixels at (0, 0), south-up, and was processed: detections put in the wrong place."""
    src = SAMPLES / "s2_fire_G90292" / "G90292_20230514.tif"
    bad = tmp_path / src.name
    shutil.copy(src, bad)
    with rasterio.open(bad, "r+") as ds:  # drop the geotransform, keep the CRS
        ds.transform = rasterio.Affine.identity()
    with rasterio.open(bad) as ds:
        assert ds.crs is not None and ds.transform.is_identity
    with pytest.raises(InputError, match=r"G90292_20230514\.tif: no geotransform"):
        open_scene(bad)


def test_infinite_samples_are_invalid(tmp_path: Path) -> None:
    """Pointed to by overflow warnings in the long run_scene run (float32 sample file, exponent
    bits flipped): +inf samples counted as valid, became a score-1.0 fire with
    ``max_swir22_reflectance: inf``, and detections.geojson held ``Infinity`` (not JSON).
    Now they are flagged invalid like NaN."""
    import numpy as np

    from .conftest import write_tif

    a11 = np.full((128, 128), 0.1, np.float32)
    a12 = a11.copy()
    a12[60:62, 60:62] = np.inf
    path = write_tif(tmp_path / "s.tif", [a11, a12], descriptions=["B11", "B12"])
    result = run_scene(path, Settings(tile_size=64, detectors=("fire",), prefetch=False))
    assert result.detections == ()
    assert result.info["invalid_samples"]["B12"] == 4
