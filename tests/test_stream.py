"""Streaming triage: line blocks in, the file path's detections out, in bounded memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pipeline
from pipeline.core.replay import replay
from pipeline.core.stream import StripLayout, Triage
from pipeline.errors import InputError
from pipeline.settings import KNOWN_DETECTORS

from .conftest import SAMPLES, run_cli


def signature(result: pipeline.SceneResult) -> list[tuple[object, ...]]:
    return sorted(
        (
            d.cls,
            round(d.geometry.centroid.x, 6),
            round(d.geometry.centroid.y, 6),
            round(d.geometry.area, 12),
            round(d.score, 4),
            tuple(sorted((k, str(v)) for k, v in d.measures.items() if k != "tiles")),
        )
        for d in result.detections
    )


def stream_scene(
    path: Path,
    settings: pipeline.Settings,
    block_lines: int,
    offsets: dict[str, int] | None = None,
) -> tuple[pipeline.SceneResult, Triage, int]:
    scene = pipeline.open_scene(path)
    triage = Triage(StripLayout.from_scene(scene), settings)
    max_rows = 0
    for blk in replay(scene, rate=None, block_lines=block_lines, band_offsets=offsets):
        triage.feed(blk.band, blk.first_line, blk.data)
        max_rows = max(max_rows, *(b.rows.shape[0] for b in triage._buffers.values()))
    triage.finish(scene.grid.height)
    return triage.result(), triage, max_rows


SAMPLE_SCENES = [
    "s2_fire_G90292",
    "s2_l1c_virginia_crop",
    "sen2ships_honolulu",
    "sen2ships_casablanca",
]


@pytest.mark.parametrize("name", SAMPLE_SCENES)
@pytest.mark.parametrize("block_lines", [1, 37, 1024])
def test_stream_matches_file_path(name: str, block_lines: int) -> None:
    settings = pipeline.Settings(detectors=KNOWN_DETECTORS, tile_size=128, overlap=32)
    ref = pipeline.run_scene(SAMPLES / name, settings)
    assert ref.ok
    got, triage, _ = stream_scene(SAMPLES / name, settings, block_lines)
    assert got.ok, got.failures
    assert signature(got) == signature(ref)
    assert dict(got.detectors) == dict(ref.detectors)


def test_stream_matches_with_band_lag_and_default_tiles() -> None:
    """Bands arriving late (B12 20 lines behind) and coarse bands change nothing."""
    path = SAMPLES / "s2_fire_G90292"
    settings = pipeline.Settings()
    ref = pipeline.run_scene(path, settings)
    got, _, _ = stream_scene(path, settings, 16, offsets={"B12": 20, "B11": 5})
    assert signature(got) == signature(ref)
    assert len(ref.detections) == 12


def test_stream_memory_is_bounded_by_the_tile_row() -> None:
    path = SAMPLES / "s2_l1c_virginia_crop"
    settings = pipeline.Settings(detectors=KNOWN_DETECTORS, tile_size=64, overlap=16)
    _, triage, max_rows = stream_scene(path, settings, 8)
    # the tile row's read window plus one block of the coarsest band used (20 m: 2 x 8 lines)
    coarsest = max(triage.layout.bands[b] for b in triage.band_names)
    bound = settings.tile_size + 2 * triage.overlap + 8 * coarsest
    assert max_rows <= bound, (max_rows, bound)
    # and far below the scene height (512 lines)
    assert max_rows < 512 // 2


def test_alerts_come_before_the_end_of_the_strip() -> None:
    """On a strip several tile rows long, fires are emitted while lines still arrive."""
    path = SAMPLES / "s2_fire_G90292"
    scene = pipeline.open_scene(path)
    triage = Triage(StripLayout.from_scene(scene), pipeline.Settings(tile_size=64, overlap=16))
    early = []
    for blk in replay(scene, rate=None, block_lines=10):
        for ev in triage.feed(blk.band, blk.first_line, blk.data):
            early.append(ev)
    late = triage.finish(scene.grid.height)
    assert early, "no alert before finish()"
    assert len(early) + len(late) == 12
    for ev in early:
        assert ev.last_line < scene.grid.height
        assert ev.latency_s >= 0


def test_alert_packets_decode_on_the_ground(tmp_path: Path) -> None:
    from ground_decoder import decode_scenes
    from pipeline.downlink.alerts import AlertEncoder

    path = SAMPLES / "s2_fire_G90292"
    scene = pipeline.open_scene(path)
    enc = AlertEncoder()
    triage = Triage(StripLayout.from_scene(scene), pipeline.Settings(), alert_encoder=enc)
    packets = b""
    for blk in replay(scene, rate=None, block_lines=50):
        packets += b"".join(
            ev.packet or b"" for ev in triage.feed(blk.band, blk.first_line, blk.data)
        )
    packets += b"".join(ev.packet or b"" for ev in triage.finish())
    assert len(packets) == enc.bytes > 0
    alerts = decode_scenes(packets)
    assert len(alerts) == 12
    assert all(a.damage.ok for a in alerts)
    assert sum(len(a.geojson["features"]) for a in alerts if a.geojson) == 12


def test_bad_feeds_are_clear_errors() -> None:
    scene = pipeline.open_scene(SAMPLES / "s2_fire_G90292")
    triage = Triage(StripLayout.from_scene(scene), pipeline.Settings())
    width = scene.band("B12").width
    with pytest.raises(InputError, match="unknown band"):
        triage.feed("B99", 0, np.zeros((4, width), np.float32))
    with pytest.raises(InputError, match="expected line 0"):
        triage.feed("B12", 5, np.zeros((4, width), np.float32))
    with pytest.raises(InputError, match="does not match the strip width"):
        triage.feed("B12", 0, np.zeros((4, width + 1), np.float32))
    with pytest.raises(InputError, match="no complete lines"):
        triage.finish()


def test_stream_cli_prints_alerts_with_latency(tmp_path: Path) -> None:
    out = tmp_path / "alerts.bin"
    proc = run_cli(
        "stream",
        SAMPLES / "s2_fire_G90292",
        "--rate",
        "4000",
        "--block-lines",
        "32",
        "--tile-size",
        "128",
        "--packets",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    alerts = [ln for ln in proc.stdout.splitlines() if "latency" in ln and "] fire" in ln]
    assert len(alerts) == 12
    assert "fire: 12 alerts, latency median" in proc.stdout
    assert out.stat().st_size > 0


def test_stream_cli_bad_scene_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("stream", tmp_path / "nope")
    assert proc.returncode == 1
    assert proc.stderr.startswith("eotriage: error:") and "Traceback" not in proc.stderr
