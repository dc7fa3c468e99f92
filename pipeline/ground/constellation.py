"""Constellation simulation: what N satellites produce, downlink, keep onboard, and how long an
alert takes to reach the ground — triage reports against raw or compressed bands.

What is **measured** and what is **modelled**:

* measured — the triage product of each scene in the *pool*: the pool scenes (generated or from a
  folder) run through the real pipeline (:func:`pipeline.ground.batch.process_scene`, one Dask
  task per scene) and their ``report.json`` + ``compact.geojson`` are framed by
  :func:`pipeline.downlink.encode_scene`; the packet bytes and the report priority are used.
  ``compact.geojson`` keeps at most ``max_features`` (50) features, which bounds a full tile's
  product by the same figure;
* modelled — everything else (:class:`ConstellationModel`): the orbit, how many 100 km tiles each
  satellite images per orbit and when, raw bytes per tile (10,980² px, 13 bands as uint16,
  ~1.35 GB, DESIGN §3), the lossless compression ratio (2.7, DESIGN §5), the ground-station pass
  schedule (one contact opportunity per orbit with probability ``contact_prob``, ``stations``
  antennas shared by the constellation, first come first served), the pass length and the
  downlink rate.  Each acquired tile draws a pool scene at random (seeded) for its triage product.

Queues onboard: raw and compressed bands go first-in first-out (nothing onboard knows which tile
holds a fire); triage reports go by priority (``high`` first, then ``medium``, ``low``), then
age.  A product is on the ground when its last byte is; the alert latency of a ``high`` scene is
that moment minus its acquisition time (plus ``ground_processing_s`` for the band modes, 0 by
default: the time to find the fire in the bands on the ground is not counted).

Each satellite's queue simulation is one Dask task.  :func:`plot_simulation` draws backlog and
alert latency over time (PNG, matplotlib).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, EotriageError, InputError
from ..settings import Settings

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

MODES = ("triage", "compressed", "raw")
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
#: DESIGN §3: a 10,980² px Sentinel-2 tile, 13 bands at 10/20/60 m as uint16
S2_TILE_RAW_BYTES = 4 * 10980**2 * 2 + 6 * 5490**2 * 2 + 3 * 1830**2 * 2


@dataclass(frozen=True)
class ConstellationModel:
    """The modelled numbers of a simulation (every one of them is an assumption)."""

    satellites: int = 12
    duration_h: float = 24.0
    #: LEO at ~500-800 km
    orbit_min: float = 95.0
    #: full 100 km tiles imaged per orbit (Sentinel-2 images far more: ~230 at a 5.2 s cadence
    #: over ~20 min per orbit)
    scenes_per_orbit: int = 40
    #: seconds between consecutive tiles while imaging (DESIGN §3: ~5.2 s)
    scene_interval_s: float = 5.2
    raw_scene_bytes: int = S2_TILE_RAW_BYTES
    #: lossless compression of the bands (DESIGN §5: 2-3x)
    compression_ratio: float = 2.7
    #: ground-station antennas shared by the whole constellation
    stations: int = 3
    #: chance that an orbit passes over a station (one opportunity per orbit at most)
    contact_prob: float = 0.7
    pass_min: float = 8.0
    downlink_mbps: float = 300.0
    #: seconds of ground processing before a band product becomes an alert (not measured)
    ground_processing_s: float = 0.0
    sample_min: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "satellites": self.satellites >= 1,
            "duration_h": self.duration_h > 0,
            "orbit_min": self.orbit_min > 0,
            "scenes_per_orbit": self.scenes_per_orbit >= 0,
            "scene_interval_s": self.scene_interval_s > 0,
            "raw_scene_bytes": self.raw_scene_bytes > 0,
            "compression_ratio": self.compression_ratio >= 1,
            "stations": self.stations >= 1,
            "contact_prob": 0 <= self.contact_prob <= 1,
            "pass_min": 0 < self.pass_min < self.orbit_min,
            "downlink_mbps": self.downlink_mbps > 0,
            "ground_processing_s": self.ground_processing_s >= 0,
            "sample_min": self.sample_min > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"constellation model: invalid {', '.join(bad)} ({self})")
        if self.scenes_per_orbit * self.scene_interval_s > self.orbit_min * 60:
            raise ConfigError("constellation model: more imaging per orbit than the orbit lasts")

    @property
    def pass_budget_bytes(self) -> int:
        """Bytes one pass can carry: rate x pass length."""
        return int(self.downlink_mbps * 1e6 / 8 * self.pass_min * 60)

    @property
    def duration_s(self) -> float:
        return self.duration_h * 3600.0

    def bytes_per_scene(self, mode: str) -> int:
        if mode == "raw":
            return self.raw_scene_bytes
        if mode == "compressed":
            return int(self.raw_scene_bytes / self.compression_ratio)
        raise ValueError(mode)


@dataclass(frozen=True)
class PoolScene:
    """A scene run through the real pipeline: its measured downlink product."""

    name: str
    path: str
    #: packet bytes of the core product (manifest + report + detections), no budget
    triage_bytes: int
    priority: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    satellite: int
    start_s: float
    end_s: float
    station: int


@dataclass(frozen=True)
class ModeResult:
    """One satellite (or the constellation) in one mode."""

    mode: str
    scenes: int
    bytes_produced: int
    bytes_downlinked: int
    backlog_end_bytes: int
    backlog_max_bytes: int
    alerts: int
    alerts_delivered: int
    #: (acquisition time s, latency s) of each delivered alert
    alert_latency: tuple[tuple[float, float], ...]
    #: bytes waiting onboard at each sample time
    backlog: tuple[float, ...]

    def summary(self) -> dict[str, Any]:
        lat = np.array([x[1] for x in self.alert_latency], dtype=float)
        return {
            "mode": self.mode,
            "scenes": self.scenes,
            "bytes_produced": self.bytes_produced,
            "bytes_downlinked": self.bytes_downlinked,
            "backlog_end_bytes": self.backlog_end_bytes,
            "backlog_max_bytes": self.backlog_max_bytes,
            "alerts": self.alerts,
            "alerts_delivered": self.alerts_delivered,
            "alert_latency_median_min": round(float(np.median(lat)) / 60, 2) if lat.size else None,
            "alert_latency_p95_min": round(float(np.percentile(lat, 95)) / 60, 2)
            if lat.size
            else None,
        }


@dataclass(frozen=True)
class SatelliteResult:
    satellite: int
    passes: int
    passes_lost: int
    modes: dict[str, ModeResult]


@dataclass(frozen=True)
class SimulationResult:
    model: ConstellationModel
    pool: tuple[PoolScene, ...]
    satellites: tuple[SatelliteResult, ...]
    overall: dict[str, ModeResult]
    sample_times_s: tuple[float, ...]
    passes_total: int
    passes_lost: int

    def summary(self) -> dict[str, Any]:
        return {
            "model": asdict(self.model),
            "pass_budget_bytes": self.model.pass_budget_bytes,
            "measured_pool": [asdict(p) for p in self.pool],
            "passes_scheduled": self.passes_total,
            "passes_lost_to_station_contention": self.passes_lost,
            "overall": {m: r.summary() for m, r in self.overall.items()},
            "per_satellite": [
                {
                    "satellite": s.satellite,
                    "passes": s.passes,
                    "passes_lost": s.passes_lost,
                    **{m: r.summary() for m, r in s.modes.items()},
                }
                for s in self.satellites
            ],
        }

    def lines(self) -> list[str]:
        """A printable table: overall figures per mode."""
        m = self.model
        out = [
            f"{m.satellites} satellites, {m.duration_h:g} h, {m.scenes_per_orbit} tiles/orbit, "
            f"{m.stations} station(s), {m.downlink_mbps:g} Mbit/s x {m.pass_min:g} min "
            f"= {m.pass_budget_bytes / 1e9:.2f} GB per pass; passes {self.passes_total} "
            f"({self.passes_lost} lost to busy stations)",
            f"{'mode':10s} {'produced GB':>12s} {'downlinked GB':>14s} {'backlog GB':>11s} "
            f"{'alerts on ground':>17s} {'latency median':>15s} {'p95':>9s}",
        ]
        for mode, r in self.overall.items():
            s = r.summary()
            med = s["alert_latency_median_min"]
            p95 = s["alert_latency_p95_min"]
            out.append(
                f"{mode:10s} {r.bytes_produced / 1e9:12.3f} {r.bytes_downlinked / 1e9:14.3f} "
                f"{r.backlog_end_bytes / 1e9:11.3f} "
                f"{f'{r.alerts_delivered}/{r.alerts}':>17s} "
                f"{'-' if med is None else f'{med:.1f} min':>15s} "
                f"{'-' if p95 is None else f'{p95:.1f} min':>9s}"
            )
        return out


# ------------------------------------------------------------------------ measured pool


def measure_scene(
    path: str, work_dir: str, settings: Settings, max_packet_data: int = 1024
) -> PoolScene:
    """Run one scene through the pipeline (as ``eotriage run``) and frame its core product into
    packets; a Dask task.  Raises :class:`InputError` when the scene fails."""
    from ..downlink import encode_scene
    from .batch import process_scene

    outcome = process_scene(path, work_dir, settings, skip_complete=False)
    if outcome.status == "failed" or outcome.name is None:
        raise InputError(f"pool scene {path} failed: {outcome.error}")
    d = Path(work_dir) / outcome.name
    report = json.loads((d / "report.json").read_text())
    compact = json.loads((d / "compact.geojson").read_text())
    plan = encode_scene(report, compact, max_packet_data=max_packet_data)
    return PoolScene(
        outcome.name, path, len(plan.packets), str(report.get("priority", "low")), outcome.counts
    )


def generate_pool(dest: str | Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """``count`` synthetic L1C scenes of ``size``² px; fire clusters vary (0, 1, 3, 5, ...) so
    some scenes are alerts and some are not."""
    from ..testing.synthetic import generate_scene

    fires = (0, 1, 3, 5, 0, 2)
    return [
        generate_scene(
            Path(dest) / f"sim_{i:03d}", size, n_fires=fires[i % len(fires)], seed=seed + i
        )
        for i in range(count)
    ]


def measure_pool(
    client: Client, scenes: Sequence[str | Path], work_dir: str | Path, settings: Settings
) -> tuple[PoolScene, ...]:
    """Measure every pool scene as a Dask task; scenes that fail are logged and left out."""
    futures = [
        client.submit(measure_scene, str(p), str(Path(work_dir).resolve()), settings, pure=False)
        for p in scenes
    ]
    pool: list[PoolScene] = []
    for p, fut in zip(scenes, futures, strict=True):
        try:
            pool.append(fut.result())
        except EotriageError as exc:
            log.warning("%s", exc)
        except Exception as exc:  # noqa: BLE001 - a lost worker must not end the simulation
            log.warning("pool scene %s failed on the cluster: %s", p, exc)
    if not pool:
        raise InputError("no pool scene could be measured; nothing to simulate")
    return tuple(pool)


# ------------------------------------------------------------------------ schedule


def schedule_passes(model: ConstellationModel) -> tuple[list[list[Pass]], int, list[int]]:
    """Contact opportunities (one per orbit with probability ``contact_prob``, phase spread
    over the constellation, jittered by up to 10 % of an orbit from one orbit to the next),
    given to free station antennas first come first served.
    Returns the passes per satellite, the number of opportunities and, per satellite, how many
    were lost to busy stations."""
    rng = random.Random(model.seed)
    orbit_s = model.orbit_min * 60
    pass_s = model.pass_min * 60
    wanted: list[tuple[float, int]] = []
    for sat in range(model.satellites):
        phase = orbit_s * sat / model.satellites
        k = 0
        while True:
            # the station is seen a little earlier or later each orbit (Earth turns under it)
            t = phase + k * orbit_s + rng.uniform(0, orbit_s * 0.1)
            if t + pass_s > model.duration_s:
                break
            if rng.random() < model.contact_prob:
                wanted.append((t, sat))
            k += 1
    wanted.sort()
    free_at = [0.0] * model.stations
    passes: list[list[Pass]] = [[] for _ in range(model.satellites)]
    lost = [0] * model.satellites
    for t, sat in wanted:
        station = min(range(model.stations), key=lambda k: free_at[k])
        if free_at[station] > t:
            lost[sat] += 1
            continue
        free_at[station] = t + pass_s
        passes[sat].append(Pass(sat, t, t + pass_s, station))
    return passes, len(wanted), lost


def acquisitions(model: ConstellationModel, satellite: int) -> list[float]:
    """Acquisition times (s) of one satellite: each orbit a run of ``scenes_per_orbit`` tiles
    ``scene_interval_s`` apart, starting at a random point of the orbit."""
    rng = random.Random(model.seed * 1_000_003 + satellite + 1)
    orbit_s = model.orbit_min * 60
    imaging = model.scenes_per_orbit * model.scene_interval_s
    times: list[float] = []
    start = 0.0
    while start < model.duration_s:
        t0 = start + rng.uniform(0, max(0.0, orbit_s - imaging))
        for k in range(model.scenes_per_orbit):
            t = t0 + (k + 1) * model.scene_interval_s  # a tile is complete at its end
            if t < model.duration_s:
                times.append(t)
        start += orbit_s
    return times


# ------------------------------------------------------------------------ one satellite (a task)


def _run_queue(
    mode: str,
    acq: list[float],
    sizes: list[int],
    alerts: list[bool],
    ranks: list[int],
    passes: list[Pass],
    model: ConstellationModel,
    sample_times: np.ndarray,
) -> ModeResult:
    rate = model.downlink_mbps * 1e6 / 8  # bytes per second
    extra = model.ground_processing_s if mode != "triage" else 0.0
    waiting: list[tuple[int, float, int]] = []  # (rank, acq time, index) sorted
    remaining = list(sizes)
    nxt = 0
    sent_t: list[float] = [0.0]
    sent_cum: list[float] = [0.0]
    total_sent = 0
    latencies: list[tuple[float, float]] = []
    for p in passes:
        while nxt < len(acq) and acq[nxt] <= p.start_s:
            rank = ranks[nxt] if mode == "triage" else 0
            waiting.append((rank, acq[nxt], nxt))
            nxt += 1
        waiting.sort()
        budget = float(model.pass_budget_bytes)
        t = p.start_s
        sent_t.append(t)
        sent_cum.append(total_sent)
        while waiting and budget > 0:
            _, a, i = waiting[0]
            take = min(budget, remaining[i])
            budget -= take
            remaining[i] -= int(take)
            total_sent += int(take)
            t += take / rate
            if remaining[i] <= 0:
                waiting.pop(0)
                if alerts[i]:
                    latencies.append((a, t - a + extra))
        sent_t.append(t)
        sent_cum.append(total_sent)
    acq_arr = np.asarray(acq, dtype=float)
    cum_acq = np.concatenate([[0.0], np.cumsum(np.asarray(sizes, dtype=float))])
    produced = cum_acq[np.searchsorted(acq_arr, sample_times, side="right")]
    sent = np.interp(sample_times, sent_t, sent_cum)
    backlog = produced - sent
    bytes_produced = int(cum_acq[-1])
    return ModeResult(
        mode,
        len(acq),
        bytes_produced,
        total_sent,
        bytes_produced - total_sent,
        int(max(backlog.max(initial=0.0), bytes_produced - total_sent)),
        sum(alerts),
        len(latencies),
        tuple(latencies),
        tuple(float(x) for x in backlog),
    )


def simulate_satellite(
    satellite: int,
    model: ConstellationModel,
    pool: Sequence[PoolScene],
    passes: Sequence[Pass],
    passes_lost: int = 0,
) -> SatelliteResult:
    """One satellite over the whole run, in every mode (a Dask task)."""
    acq = acquisitions(model, satellite)
    rng = random.Random(model.seed * 7_919 + satellite)
    drawn = [pool[rng.randrange(len(pool))] for _ in acq]
    alerts = [d.priority == "high" for d in drawn]
    ranks = [PRIORITY_RANK.get(d.priority, len(PRIORITY_RANK)) for d in drawn]
    sample_times = _sample_times(model)
    modes: dict[str, ModeResult] = {}
    for mode in MODES:
        if mode == "triage":
            sizes = [d.triage_bytes for d in drawn]
        else:
            sizes = [model.bytes_per_scene(mode)] * len(acq)
        modes[mode] = _run_queue(mode, acq, sizes, alerts, ranks, list(passes), model, sample_times)
    return SatelliteResult(satellite, len(passes), passes_lost, modes)


def _sample_times(model: ConstellationModel) -> np.ndarray:
    step = model.sample_min * 60
    n = int(math.floor(model.duration_s / step))
    return np.arange(0, n + 1, dtype=float) * step


def _combine(mode: str, parts: Sequence[ModeResult]) -> ModeResult:
    backlog = np.sum([np.asarray(p.backlog) for p in parts], axis=0)
    lat = tuple(sorted(x for p in parts for x in p.alert_latency))
    end = sum(p.backlog_end_bytes for p in parts)
    return ModeResult(
        mode,
        sum(p.scenes for p in parts),
        sum(p.bytes_produced for p in parts),
        sum(p.bytes_downlinked for p in parts),
        end,
        int(max(float(backlog.max(initial=0.0)), end)),
        sum(p.alerts for p in parts),
        sum(p.alerts_delivered for p in parts),
        lat,
        tuple(float(x) for x in backlog),
    )


def simulate(
    client: Client, model: ConstellationModel, pool: Sequence[PoolScene]
) -> SimulationResult:
    """Schedule passes, then simulate every satellite as a Dask task and add them up."""
    if not pool:
        raise InputError("simulation needs at least one measured pool scene")
    passes, total, lost = schedule_passes(model)
    pool_f = client.scatter(list(pool), broadcast=True, hash=False)
    futures = [
        client.submit(simulate_satellite, s, model, pool_f, passes[s], lost[s], pure=False)
        for s in range(model.satellites)
    ]
    sats = tuple(client.gather(futures))
    overall = {m: _combine(m, [s.modes[m] for s in sats]) for m in MODES}
    return SimulationResult(
        model,
        tuple(pool),
        sats,
        overall,
        tuple(float(x) for x in _sample_times(model)),
        total,
        sum(lost),
    )


# ------------------------------------------------------------------------ plot


def plot_simulation(result: SimulationResult, path: str | Path) -> Path:
    """PNG: total backlog onboard (GB, log scale) and alert latency (min) over time, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"triage": "tab:green", "compressed": "tab:orange", "raw": "tab:red"}
    hours = np.asarray(result.sample_times_s) / 3600
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for mode, r in result.overall.items():
        ax1.plot(hours, np.maximum(np.asarray(r.backlog) / 1e9, 1e-6), label=mode, c=colours[mode])
        if r.alert_latency:
            a = np.array(r.alert_latency)
            ax2.scatter(a[:, 0] / 3600, a[:, 1] / 60, s=4, c=colours[mode], label=mode, alpha=0.5)
    m = result.model
    ax1.set_yscale("log")
    ax1.set_ylabel("backlog onboard, all satellites (GB)")
    ax1.set_title(
        f"{m.satellites} satellites, {m.stations} stations, {m.downlink_mbps:g} Mbit/s x "
        f"{m.pass_min:g} min passes (modelled); triage bytes measured"
    )
    ax1.legend()
    ax1.grid(True, which="both", alpha=0.3)
    ax2.set_yscale("log")
    ax2.set_xlabel("acquisition time (h)")
    ax2.set_ylabel("alert latency to ground (min)")
    ax2.grid(True, which="both", alpha=0.3)
    if any(r.alert_latency for r in result.overall.values()):
        ax2.legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
