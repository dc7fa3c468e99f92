"""``eotriage stream``: replay a scene as a live line stream and print alerts as they appear."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError, EotriageError
from ..settings import KNOWN_DETECTORS, Settings
from ._common import EXIT_USAGE, SCALING_OPTION_HELP, fail, fail_on

if TYPE_CHECKING:
    from ..core.stream import Triage

#: the ground line of --rate: Sentinel-2's 10 m lines (664 of them per second)
S2_LINE_M = 10.0


def _parse_offsets(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        band, _, lines = part.partition("=")
        try:
            out[band.strip()] = int(lines)
        except ValueError:
            raise click.BadParameter(f"expected BAND=LINES, got {part!r}") from None
    return out


@click.command("stream")
@click.argument("scene", type=click.Path(path_type=Path))
@click.option(
    "--rate",
    type=float,
    default=664.0,
    show_default=True,
    help="Line rate of the simulated imager in 10 m ground lines per second (Sentinel-2: "
    "664); a scene on a 20 m grid then delivers 332 of its lines per second.  0 = as fast as "
    "possible.",
)
@click.option("--block-lines", type=int, default=64, show_default=True, help="Lines per block.")
@click.option(
    "--band-offsets",
    help="Per-band lag in working-grid lines, e.g. 'B12=20,B11=10' (bands seen later).",
)
@click.option("--detectors", help=f"Comma-separated detectors ({', '.join(KNOWN_DETECTORS)}).")
@click.option("--tile-size", type=int, help="Tile edge in working-grid pixels (default 1024).")
@click.option("--sensor", help="Sensor profile; default: detect from files.")
@click.option("--scaling", metavar="SCALING", help=SCALING_OPTION_HELP)
@click.option(
    "--packets",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every alert's packets to this file (decode with 'eotriage decode').",
)
@click.option(
    "--outbox",
    "outbox_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also queue every alert's packets in this crash-safe outbox (SCENE/alertNNNN).",
)
@click.pass_obj
def stream_cmd(
    settings: Settings,
    scene: Path,
    rate: float,
    block_lines: int,
    band_offsets: str | None,
    detectors: str | None,
    tile_size: int | None,
    sensor: str | None,
    scaling: str | None,
    packets: Path | None,
    outbox_dir: Path | None,
) -> None:
    """Replay SCENE as a push-broom line stream and print alerts live, with their latency.

    Latency = time from the block completing a detection's evidence entering the streaming
    API to its alert packet being ready.  Exit 1 when a tile failed.
    """
    from ..core.replay import replay
    from ..core.stream import StripLayout, Triage
    from ..downlink.alerts import AlertEncoder

    offsets = _parse_offsets(band_offsets)
    if rate < 0:
        fail(f"--rate must be >= 0 lines/s, got {rate:g}", EXIT_USAGE)
    try:
        settings = settings.override(
            detectors=detectors, tile_size=tile_size or None, sensor=sensor, scaling=scaling
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        from ..core.scene import open_scene

        opened = open_scene(scene, sensor=settings.sensor, scaling=settings.scaling)
        encoder = AlertEncoder()
        triage = Triage(StripLayout.from_scene(opened), settings, alert_encoder=encoder)
        # --rate counts 10 m ground lines; the replay counts lines of the working grid
        grid_rate = rate * S2_LINE_M / opened.grid.ground_res_m if rate else 0.0
        click.echo(
            f"streaming {opened.name}: {opened.grid.width} x {opened.grid.height} px at "
            f"{rate:g} 10 m lines/s = {grid_rate:.4g} lines/s of its "
            f"{opened.grid.ground_res_m:.3g} m grid "
            f"({', '.join(k for k, v in triage.status.items() if v == 'ran')})"
        )
        out = packets.open("wb") if packets else None
        latencies: dict[str, list[float]] = {}
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            if out:
                stack.callback(out.close)
            sinks: list[Callable[[bytes], object]] = [out.write] if out else []
            if outbox_dir:
                from ..downlink.outbox import Outbox

                box = stack.enter_context(Outbox(outbox_dir))
                names = (f"{opened.name}/alert{i:04d}" for i in itertools.count(1))
                sinks.append(lambda data: box.put(next(names), data, first_wins=True))
            blocks = replay(opened, grid_rate or None, block_lines, offsets, triage.band_names)
            shown_cloud: float | None = None
            for blk in blocks:
                _show(triage.feed(blk.band, blk.first_line, blk.data), t0, latencies, sinks)
                shown_cloud = _show_cloud(triage, blk.first_line, t0, shown_cloud)
            _show(triage.finish(opened.grid.height), t0, latencies, sinks)
    except EotriageError as exc:
        fail_on(exc)
    except OSError as exc:  # --packets or --outbox cannot be written
        where = exc.filename if isinstance(exc.filename, str) else packets or outbox_dir
        fail(f"{where}: cannot write: {exc.strerror or exc}", EXIT_USAGE)
    result = triage.result()
    sky = triage.sky_summary()
    cloud = ""
    if sky is not None and sky.get("cloud_fraction") is not None:
        cloud = (
            f", {sky['cloud_fraction'] * 100:.0f} % cloud, "
            f"{sky['shadow_fraction'] * 100:.0f} % shadow"
        )
    elif sky is not None:
        cloud = ", cloud not checked (no pixel the screen could classify)"
    click.echo(
        f"done in {time.perf_counter() - t0:.2f} s: {len(result.detections)} alerts, "
        f"{encoder.bytes} packet bytes{cloud}"
    )
    for cls, vals in sorted(latencies.items()):
        vals.sort()
        p95 = vals[min(len(vals) - 1, int(round(0.95 * (len(vals) - 1))))]
        click.echo(
            f"  {cls}: {len(vals)} alerts, latency median {statistics.median(vals) * 1000:.1f} "
            f"ms, p95 {p95 * 1000:.1f} ms, max {vals[-1] * 1000:.1f} ms"
        )
    if result.failures:
        for f in result.failures:
            click.echo(f"eotriage: tile {f.tile_id} failed: {f.cause}", err=True)
        raise SystemExit(1)


#: a new cloud-fraction line is printed when the strip's fraction moved by this much
CLOUD_STEP = 0.05


def _show_cloud(triage: Triage, line: int, t0: float, shown: float | None) -> float | None:
    """Print the strip's cloud fraction so far when it first exists or has moved by
    :data:`CLOUD_STEP`; returns the value last printed."""
    now = triage.cloud_fraction
    if now is None or (shown is not None and abs(now - shown) < CLOUD_STEP):
        return shown
    click.echo(f"[{time.perf_counter() - t0:7.2f} s] cloud {now * 100:.0f} % so far (line {line})")
    return now


def _show(
    events: list,
    t0: float,
    latencies: dict[str, list[float]],
    sinks: list[Callable[[bytes], object]],
) -> None:
    for ev in events:
        d = ev.detection
        lon, lat = d.measures.get("centroid_lon"), d.measures.get("centroid_lat")
        size = ""
        if "area_m2" in d.measures:
            size = f" {float(d.measures['area_m2']) / 1e6:.4f} km2"
        elif "length_m" in d.measures:
            size = f" {d.measures['length_m']} m"
        elif "area_km2" in d.measures:
            size = f" {d.measures['area_km2']} km2"
        click.echo(
            f"[{ev.emitted_s - t0:7.2f} s] {d.cls:<11} {lat}, {lon}{size} score {d.score:.2f} "
            f"(line {ev.last_line}, latency {ev.latency_s * 1000:.1f} ms, "
            f"{len(ev.packet or b'')} B)"
        )
        latencies.setdefault(d.cls, []).append(ev.latency_s)
        if ev.packet:
            for sink in sinks:
                sink(ev.packet)
    sys.stdout.flush()
