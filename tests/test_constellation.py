"""Constellation simulation: measured pool products, pass schedule, queues, Dask tasks, plot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed", reason="dask.distributed not installed (extra 'cluster')")

from distributed import Client  # noqa: E402

import ground_decoder  # noqa: E402
from pipeline.downlink import encode_scene  # noqa: E402
from pipeline.errors import ConfigError  # noqa: E402
from pipeline.ground.batch import dask_client  # noqa: E402
from pipeline.ground.constellation import (  # noqa: E402
    ConstellationModel,
    Pass,
    PoolScene,
    _run_queue,
    acquisitions,
    measure_pool,
    plot_simulation,
    schedule_passes,
    simulate,
    simulate_satellite,
)
from pipeline.settings import ReportSettings, Settings  # noqa: E402

from .conftest import SAMPLES, run_cli  # noqa: E402

SETTINGS = Settings(threads=1, report=ReportSettings(use_llm=False))
POOL = (
    PoolScene("fire", "x", 900, "high", {"fire": 3}),
    PoolScene("ships", "y", 3000, "medium", {"ship": 20}),
    PoolScene("none", "z", 400, "low", {}),
)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client(n_workers=2, processes=False) as c:
        yield c


@pytest.fixture(scope="module")
def pool(client: Client, tmp_path_factory: pytest.TempPathFactory) -> tuple[PoolScene, ...]:
    scenes = [SAMPLES / "s2_fire_G90292", SAMPLES / "sen2ships_casablanca"]
    return measure_pool(client, scenes, tmp_path_factory.mktemp("pool"), SETTINGS)


def test_pool_bytes_are_the_real_packets(pool: tuple[PoolScene, ...], tmp_path: Path) -> None:
    fire = next(p for p in pool if p.name == "s2_fire_G90292")
    assert fire.priority == "high" and fire.counts["fire"] == 12
    ships = next(p for p in pool if p.name == "sen2ships_casablanca")
    assert ships.priority == "medium"
    # recompute independently from the pipeline's own files and decode on the "ground"
    out = tmp_path / "run"
    proc = run_cli("run", SAMPLES / "s2_fire_G90292", "--out", out, "--no-llm", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    d = out / "s2_fire_G90292"
    plan = encode_scene(
        json.loads((d / "report.json").read_text()),
        json.loads((d / "compact.geojson").read_text()),
    )
    # the same products but for the report's latency digits (timing differs between runs, and
    # with it a byte or two after compression)
    assert abs(len(plan.packets) - fire.triage_bytes) <= 8, (len(plan.packets), fire.triage_bytes)
    decoded = ground_decoder.decode_stream(plan.packets)
    assert decoded.ok and decoded.counts() == {"fire": 12}


def test_pool_scene_that_fails_is_left_out(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    pool = measure_pool(client, [bad, SAMPLES / "s2_fire_G90292"], tmp_path / "w", SETTINGS)
    assert [p.name for p in pool] == ["s2_fire_G90292"]


def test_model_rejects_impossible_numbers() -> None:
    with pytest.raises(ConfigError, match="satellites"):
        ConstellationModel(satellites=0)
    with pytest.raises(ConfigError, match="pass_min"):
        ConstellationModel(pass_min=200)
    with pytest.raises(ConfigError, match="imaging"):
        ConstellationModel(scenes_per_orbit=2000)


def test_passes_never_overlap_on_a_station() -> None:
    model = ConstellationModel(satellites=40, stations=2, duration_h=12)
    passes, wanted, lost = schedule_passes(model)
    flat = [p for ps in passes for p in ps]
    assert len(flat) + sum(lost) == wanted
    assert sum(lost) > 0  # 40 satellites, 2 antennas: contention
    for station in range(model.stations):
        ps = sorted((p for p in flat if p.station == station), key=lambda p: p.start_s)
        for a, b in zip(ps, ps[1:], strict=False):
            assert b.start_s >= a.end_s
    assert all(0 <= p.start_s and p.end_s <= model.duration_s for p in flat)
    single, _, lost1 = schedule_passes(ConstellationModel(satellites=1, contact_prob=1.0))
    assert sum(lost1) == 0 and len(single[0]) in (15, 16)  # one per 95 min orbit in 24 h


def test_acquisitions_follow_the_model() -> None:
    model = ConstellationModel(duration_h=6, scenes_per_orbit=10)
    t = acquisitions(model, 3)
    orbits = int(np.ceil(model.duration_s / (model.orbit_min * 60)))
    assert len(t) <= orbits * 10 and len(t) >= (orbits - 1) * 10
    assert t == sorted(t) and t[-1] < model.duration_s
    assert acquisitions(model, 3) == t  # seeded
    assert acquisitions(model, 4) != t


def test_queue_conserves_bytes_and_respects_budget() -> None:
    model = ConstellationModel(satellites=1, duration_h=24, downlink_mbps=50)
    passes, _, _ = schedule_passes(model)
    res = simulate_satellite(0, model, POOL, passes[0])
    for mode, r in res.modes.items():
        assert r.bytes_downlinked + r.backlog_end_bytes == r.bytes_produced, mode
        assert r.bytes_downlinked <= len(passes[0]) * model.pass_budget_bytes
        assert len(r.backlog) == int(model.duration_s // (model.sample_min * 60)) + 1
        assert min(r.backlog) >= 0
        assert all(lat >= 0 for _, lat in r.alert_latency)
    raw, comp, tri = res.modes["raw"], res.modes["compressed"], res.modes["triage"]
    assert raw.bytes_produced == pytest.approx(comp.bytes_produced * model.compression_ratio, 1e-6)
    assert tri.backlog_end_bytes < comp.backlog_end_bytes < raw.backlog_end_bytes
    assert tri.alerts_delivered >= comp.alerts_delivered >= raw.alerts_delivered
    assert np.median([x for _, x in tri.alert_latency]) < np.median(
        [x for _, x in raw.alert_latency]
    )


def test_triage_sends_alerts_first_raw_sends_oldest_first() -> None:
    model = ConstellationModel(satellites=1, downlink_mbps=8e-6 * 1000 / 60)  # 1000 B per min
    budget = model.pass_budget_bytes  # 8 min -> 8000 B
    acq = [10.0, 20.0, 30.0]
    sizes = [5000, 5000, 3000]
    alerts = [False, False, True]
    ranks = [1, 1, 0]
    passes = [Pass(0, 100.0, 580.0, 0)]
    times = np.array([0.0, 600.0])
    tri = _run_queue("triage", acq, sizes, alerts, ranks, passes, model, times)
    raw = _run_queue("raw", acq, sizes, alerts, ranks, passes, model, times)
    assert budget == 8000
    assert tri.alerts_delivered == 1 and raw.alerts_delivered == 0
    assert tri.alert_latency[0][1] == pytest.approx(100 - 30 + 3000 / (1000 / 60))
    assert tri.bytes_downlinked == raw.bytes_downlinked == 8000
    assert raw.backlog[-1] == sum(sizes) - 8000


def test_simulation_on_dask_and_plot(
    client: Client, pool: tuple[PoolScene, ...], tmp_path: Path
) -> None:
    model = ConstellationModel(satellites=12, duration_h=6)
    result = simulate(client, model, pool)
    assert len(result.satellites) == 12
    for mode, r in result.overall.items():
        assert r.bytes_produced == sum(s.modes[mode].bytes_produced for s in result.satellites)
        assert r.alerts_delivered == sum(s.modes[mode].alerts_delivered for s in result.satellites)
        total = np.sum([s.modes[mode].backlog for s in result.satellites], axis=0)
        assert np.allclose(r.backlog, total)
    s = result.summary()
    assert s["measured_pool"][0]["triage_bytes"] == pool[0].triage_bytes
    assert len(s["per_satellite"]) == 12
    lines = result.lines()
    assert lines[2].startswith("triage") and lines[4].startswith("raw")
    png = plot_simulation(result, tmp_path / "sim.png")
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (800, 700)
        assert len(im.getcolors(1 << 16) or []) > 10  # more than an empty canvas


@pytest.mark.slow
def test_cli_simulate(tmp_path: Path) -> None:
    proc = run_cli(
        "simulate",
        SAMPLES / "s2_fire_G90292",
        "--out",
        tmp_path,
        "--hours",
        "4",
        "--satellites",
        "5",
        "--in-process",
    )
    assert proc.returncode == 0, proc.stderr
    assert "pool (measured): s2_fire_G90292" in proc.stdout
    assert "5 satellites, 4 h" in proc.stdout
    doc = json.loads((tmp_path / "simulation.json").read_text())
    assert doc["model"]["satellites"] == 5
    assert set(doc["overall"]) == {"triage", "compressed", "raw"}
    assert (tmp_path / "simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Traceback" not in proc.stderr
