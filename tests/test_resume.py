"""Crash safety of a scene run: per-tile checkpoints, `eotriage run --resume`, the outbox.

The SIGKILL loop kills a real `eotriage run` subprocess at random moments until it finishes and
checks that nothing finished is lost and no packet is queued twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ground_decoder.decode import decode_stream
from pipeline import Settings
from pipeline.core.checkpoint import read_checkpoint
from pipeline.core.engine import checkpoint_header, run_scene
from pipeline.downlink.outbox import Outbox
from pipeline.errors import CheckpointError
from pipeline.settings import FireSettings
from pipeline.testing.faults import sigkill_soak
from tests.conftest import REPO, SAMPLES, run_cli

FIRE = SAMPLES / "s2_fire_G90292"
SMALL = Settings(tile_size=64, overlap=32, detectors=("fire",))


class Crash(Exception):
    """Stands in for the process dying after some tiles."""


def _key(result: object) -> list[tuple[str, float, float, int]]:
    return sorted(
        (
            d.cls,
            d.measures["centroid_lon"],
            d.measures["centroid_lat"],
            int(d.measures.get("pixel_count", 0)),
        )
        for d in result.detections  # type: ignore[attr-defined]
    )


def _crash_after(n: int):  # type: ignore[no-untyped-def]
    def progress(done: int, total: int) -> None:
        if done >= n:
            raise Crash

    return progress


def test_resume_after_crash_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    clean = run_scene(FIRE, SMALL)
    ckpt = tmp_path / "checkpoint.jsonl"
    with pytest.raises(Crash):
        run_scene(FIRE, SMALL, progress=_crash_after(20), checkpoint=ckpt)
    recorded = len(ckpt.read_text().splitlines()) - 1
    assert recorded == 20
    resumed = run_scene(FIRE, SMALL, checkpoint=ckpt, resume=True)
    assert resumed.info["resumed_tiles"] == 20
    assert resumed.tiles_total == clean.tiles_total
    assert _key(resumed) == _key(clean)
    assert len(resumed.detections) == 12


def test_without_resume_the_checkpoint_starts_again(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint.jsonl"
    with pytest.raises(Crash):
        run_scene(FIRE, SMALL, progress=_crash_after(5), checkpoint=ckpt)
    result = run_scene(FIRE, SMALL, checkpoint=ckpt)
    assert result.info["resumed_tiles"] == 0
    assert len(ckpt.read_text().splitlines()) - 1 == result.tiles_total


def test_torn_last_record_is_ignored(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint.jsonl"
    with pytest.raises(Crash):
        run_scene(FIRE, SMALL, progress=_crash_after(10), checkpoint=ckpt)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) - 7])  # power cut in the middle of the 10th record
    resumed = run_scene(FIRE, SMALL, checkpoint=ckpt, resume=True)
    assert resumed.info["resumed_tiles"] == 9
    assert _key(resumed) == _key(run_scene(FIRE, SMALL))


def test_checkpoint_of_other_settings_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint.jsonl"
    with pytest.raises(Crash):
        run_scene(FIRE, SMALL, progress=_crash_after(3), checkpoint=ckpt)
    other = SMALL.replace(fire=FireSettings(swir22_min=0.5))
    with pytest.raises(CheckpointError, match="another run.*settings"):
        run_scene(FIRE, other, checkpoint=ckpt, resume=True)
    ckpt.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not an eotriage checkpoint"):
        run_scene(FIRE, SMALL, checkpoint=ckpt, resume=True)


def test_missing_checkpoint_resumes_nothing(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path / "none.jsonl", {"x": 1}).tiles == {}
    result = run_scene(FIRE, SMALL, checkpoint=tmp_path / "c.jsonl", resume=True)
    assert result.info["resumed_tiles"] == 0


def test_header_names_models_and_layout() -> None:
    from pipeline.core.engine import Stages
    from pipeline.core.scene import open_scene

    scene = open_scene(FIRE)
    h = checkpoint_header(scene, SMALL, Stages.build(scene, SMALL), 32)
    assert h["tile_size"] == 64 and h["detectors"] == ["fire"]
    assert len(h["models"]["fire_swir"]) == 64


def _eotriage(*args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_sigkill_loop_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """Kill `eotriage run --resume --outbox` at random moments until it completes."""
    scenes = [FIRE, SAMPLES / "s2_l1c_virginia_crop"]
    common = ("--no-llm", "--tile-size", "64", "--overlap", "32", "--no-progress")
    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    proc = _eotriage("run", *scenes, "--out", ref, *common)
    assert proc.wait(timeout=300) in (0, 3), "reference run failed"
    ref_s = time.perf_counter() - t0  # kill times scale with this machine's speed
    out, box = tmp_path / "out", tmp_path / "outbox"
    args = ["run", *map(str, scenes), "--out", str(out), "--outbox", str(box), "--resume", *common]
    soak = sigkill_soak(args, np.random.default_rng(8), ref_s, cwd=REPO)
    assert soak.exit_code in (0, 3)  # 3: a scene with problems (none expected here)
    assert soak.kills >= 3, "the loop should have interrupted the run a few times"
    for scene in scenes:
        name = scene.name
        got = json.loads((out / name / "detections.geojson").read_text())
        want = json.loads((ref / name / "detections.geojson").read_text())
        assert got == want, name
        assert not (out / name / "checkpoint.jsonl").exists()
    with Outbox(box) as ob:
        items = ob.items()
        names = [i.name for i in items]
        assert sorted(names) == sorted(f"{s.name}/downlink.bin" for s in scenes)
        for item in items:
            decoded = decode_stream(ob.read(item.id))
            assert decoded.damage.ok and decoded.geojson is not None
            assert f"{decoded.scene}/downlink.bin" == item.name


def test_stream_queues_each_alert_once_in_the_outbox(tmp_path: Path) -> None:
    box = tmp_path / "box"
    for _ in range(2):  # a replayed stream (e.g. after a restart) queues nothing twice
        proc = run_cli("stream", FIRE, "--rate", "0", "--outbox", box)
        assert proc.returncode == 0, proc.stderr
    with Outbox(box) as ob:
        names = [i.name for i in ob.items()]
        assert len(names) == 12 == len(set(names))
        assert names[0] == "s2_fire_G90292/alert0001"
        assert all(decode_stream(ob.read(i.id)).geojson for i in ob.items())


def test_outbox_first_wins_keeps_the_first_packet(tmp_path: Path) -> None:
    with Outbox(tmp_path / "box") as ob:
        first = ob.put("scene/downlink.bin", b"first")
        assert ob.put("scene/downlink.bin", b"redone", first_wins=True) == first
        assert ob.read(first) == b"first" and len(ob.items()) == 1
