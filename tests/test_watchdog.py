"""Watchdogs: a tile past its time limit is abandoned and recorded, the scene goes on."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipeline import Settings
from pipeline.core.engine import run_scene
from pipeline.core.onnx_models import get_model
from pipeline.core.watchdog import Watchdog, current
from pipeline.detectors.fire import FireDetector
from pipeline.errors import StageTimeout, TileError
from pipeline.settings import RobustnessSettings
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


def _fire_feeds(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    swir22 = rng.uniform(0.05, 0.6, (n, n)).astype(np.float32)
    swir16 = rng.uniform(0.1, 0.3, (n, n)).astype(np.float32)
    det = FireDetector(Settings(detectors=("fire",)))
    return {
        "swir22": swir22[None, None],
        "swir16": swir16[None, None],
        "valid": np.ones((1, 1, n, n), np.float32),
        "radius": np.array([15], np.int64),
        "context": np.array([True]),
        **det._feeds,
    }


@pytest.mark.slow
def test_watchdog_cuts_a_long_model_run_short() -> None:
    model = get_model("fire_swir")
    feeds = _fire_feeds(3000)
    t0 = time.perf_counter()
    model.run(feeds)  # the whole contextual test on 9 Mpx
    full = time.perf_counter() - t0
    limit = full / 10
    with Watchdog(limit, "long run") as wd:
        t0 = time.perf_counter()
        with pytest.raises(StageTimeout, match="long run: abandoned by the watchdog"):
            model.run(feeds)
        cut = time.perf_counter() - t0
    assert wd.expired
    assert cut < full / 2, (cut, full)  # terminated inside onnxruntime, not at the end
    with Watchdog(60, "after") as wd:  # the model still works after a terminated run
        assert len(model.run(feeds)) == 3
