"""Watchdogs: a tile past its time limit is abandoned and recorded, the scene goes on."""

from __future__ import annotations

import time

import pytest

from pipeline import Settings
from pipeline.detectors.fire import FireDetector
from pipeline.engine import run_scene
from pipeline.errors import StageTimeout, TileError
from pipeline.settings import RobustnessSettings
from pipeline.watchdog import Watchdog, current
from tests.conftest import SAMPLES

FIRE = SAMPLES / "s2_fire_G90292"


def test_watchdog_expires_and_terminates_model_runs() -> None:
    with Watchdog(0.05, "unit") as wd:
        assert current() is wd
        ro = wd.run_options()
        assert not ro.terminate
        wd.check()
        time.sleep(0.2)
        assert wd.expired and ro.terminate
        with pytest.raises(
            StageTimeout, match=r"unit: abandoned by the watchdog after .* \(limit 0.05 s\)"
        ):
            wd.check()
        assert wd.run_options().terminate  # a run started after expiry stops at once
    assert current() is None


def test_no_limit_never_expires() -> None:
    with Watchdog(None, "free") as wd:
        time.sleep(0.05)
        wd.check()
    assert not wd.expired
    assert issubclass(StageTimeout, TileError)


def test_slow_tile_is_abandoned_and_the_scene_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(tile_size=128, detectors=("fire",))
    clean = run_scene(FIRE, settings)
    slow_tile = "r000c000"
    original = FireDetector.detect

    def detect(self: FireDetector, data, scene):  # type: ignore[no-untyped-def]
        if data.tile.id == slow_tile:
            time.sleep(1.0)  # a stage that hangs on this tile
        return original(self, data, scene)

    monkeypatch.setattr(FireDetector, "detect", detect)
    limited = settings.replace(robustness=RobustnessSettings(tile_timeout_s=0.3))
    t0 = time.perf_counter()
    result = run_scene(FIRE, limited)
    assert [f.tile_id for f in result.failures] == [slow_tile]
    assert "abandoned by the watchdog" in result.failures[0].cause
    assert "limit 0.3 s" in result.failures[0].cause
    assert result.tiles_total == clean.tiles_total
    # every other tile's fires are kept
    assert 0 < len(result.detections) <= len(clean.detections)
    assert time.perf_counter() - t0 < 30
    # without a limit, the slow tile finishes and nothing is lost
    unlimited = settings.replace(robustness=RobustnessSettings(tile_timeout_s=None))
    assert len(run_scene(FIRE, unlimited).detections) == len(clean.detections)
