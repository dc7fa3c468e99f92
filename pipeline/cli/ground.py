"""``eotriage batch`` and ``eotriage simulate``: the ground segment at scale, on Dask.

Both need the ``cluster`` extra (``dask[distributed]``; ``simulate`` also matplotlib for its
plot).  Without ``--scheduler`` a LocalCluster is started on this machine; with an address the
existing cluster is used as it is (its workers must see the same paths).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, EotriageError, OutputError
from ..settings import KNOWN_DETECTORS, Settings
from ._common import EXIT_FAILED, EXIT_USAGE, SCALING_OPTION_HELP, fail


def _quiet_dask() -> None:
    """Dask logs every task error and cluster event; keep that for ``-vv``.  (Importing
    ``distributed`` applies its own logging config, so it is imported first.)"""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return
    level = logging.DEBUG if logging.getLogger("pipeline").level <= logging.DEBUG else logging.ERROR
    for name in ("distributed", "dask", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(level)


def _settings(
    settings: Settings,
    sensor: str | None,
    scaling: str | None,
    tile_size: int | None,
    threads: int | None,
    detectors: str | None,
    no_llm: bool,
    llm_timeout: float | None,
) -> Settings:
    return settings.override(
        sensor=sensor,
        scaling=scaling,
        tile_size=tile_size,
        threads=threads,
        detectors=detectors,
        sections={"report": {"use_llm": False if no_llm else None, "timeout_s": llm_timeout}},
    )


def _local_threads(scheduler: str | None, workers: int | None, threads: int | None) -> int | None:
    """Detector threads per scene on a local cluster: the CPUs shared by the workers."""
    if threads is not None or scheduler:
        return threads
    n = workers or max(1, min(2, os.cpu_count() or 1))
    return max(1, (os.cpu_count() or 1) // n)


_cluster_options = [
    click.option(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler (tcp://host:8786); default: start a LocalCluster here.",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        help="LocalCluster workers (default: one per CPU, at most 2).",
    ),
    click.option(
        "--processes/--in-process",
        default=True,
        show_default=True,
        help="LocalCluster workers as separate processes or as threads of this one.",
    ),
]


def _with_cluster_options(f: Any) -> Any:
    for opt in reversed(_cluster_options):
        f = opt(f)
    return f


@click.command("batch")
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; each scene goes to OUT/<scene>/ as with 'eotriage run'.",
)
@_with_cluster_options
@click.option("--sensor", help="Sensor profile; default: detect from files.")
@click.option("--scaling", metavar="SCALING", help=SCALING_OPTION_HELP)
@click.option("--tile-size", type=int, help="Tile edge in working-grid pixels (default 1024).")
@click.option("--threads", type=int, help="Detector threads per scene (default: CPUs / workers).")
@click.option("--detectors", help=f"Comma-separated detectors ({', '.join(KNOWN_DETECTORS)}).")
@click.option("--no-llm", is_flag=True, help="Write the text report with the template only.")
@click.option(
    "--llm-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds the LLM may take per report before the template is used (default 5).",
)
@click.option("--force", is_flag=True, help="Process scenes whose outputs are already complete.")
@click.option(
    "--stac",
    "stac_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write a STAC Collection of the scenes' products here (needs pystac).",
)
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the batch summary (outcome per scene, scenes/min) as JSON here.",
)
@click.pass_obj
def batch_cmd(
    settings: Settings,
    scenes: tuple[Path, ...],
    out_dir: Path,
    scheduler: str | None,
    workers: int | None,
    processes: bool,
    sensor: str | None,
    scaling: str | None,
    tile_size: int | None,
    threads: int | None,
    detectors: str | None,
    no_llm: bool,
    llm_timeout: float | None,
    force: bool,
    stac_dir: Path | None,
    summary_path: Path | None,
) -> None:
    """Run 'eotriage run' on many SCENES as Dask tasks, one task per scene.

    The products are the same files 'eotriage run' writes (OUT/<scene>/detections.geojson,
    report.txt, report.json, compact.geojson, run.json).  A scene that fails is reported on
    one line and the batch goes on; scenes whose outputs are complete are skipped, so an
    interrupted batch is resumed by running it again (--force redoes them).

    \b
    Examples:
      eotriage batch sample_scenes/s2_* sample_scenes/sen2ships_* --out out/ --no-llm
      eotriage batch /archive/*/ --out out/ --scheduler tcp://10.0.0.5:8786

    Exit code: 0 all scenes fine, 1 a scene failed or had problems, 2 usage or cluster error.
    """
    from ..ground.batch import run_batch
    from ..runner import check_writable, mkdir_out

    _quiet_dask()
    try:
        st = _settings(
            settings,
            sensor,
            scaling,
            tile_size,
            _local_threads(scheduler, workers, threads),
            detectors,
            no_llm,
            llm_timeout,
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        mkdir_out(out_dir)
        check_writable(out_dir)
    except OutputError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        result = run_batch(
            scenes,
            out_dir,
            st,
            scheduler=scheduler,
            n_workers=workers,
            processes=processes,
            skip_complete=not force,
            on_outcome=lambda o: click.echo(o.line(), err=o.status == "failed"),
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    c = result.counts_by_status()
    click.echo(
        f"batch: {c['done']} done, {c['skipped']} skipped, {c['failed']} failed in "
        f"{result.elapsed_s:.1f} s on {result.workers} worker(s) "
        f"({result.scenes_per_minute:.1f} scenes/min) -> {out_dir}"
    )
    if summary_path is not None:
        try:
            mkdir_out(summary_path.parent)
            summary_path.write_text(json.dumps(result.summary(), indent=2) + "\n")
        except (OutputError, OSError) as exc:
            fail(f"--summary {summary_path}: {exc.strerror or exc}", EXIT_USAGE)
    if stac_dir is not None:
        try:
            from ground_decoder.stac import write_collection
        except ImportError as exc:
            fail(str(exc), EXIT_USAGE)
        dirs = [
            Path(o.directory) if o.directory else out_dir / o.name
            for o in result.outcomes
            if o.status != "failed" and o.name
        ]
        try:
            collection = write_collection(dirs, stac_dir)
        except OSError as exc:
            fail(f"--stac {stac_dir}: cannot write: {exc.strerror or exc}", EXIT_USAGE)
        n = len(list(collection.get_items()))
        click.echo(f"stac: {n} item(s) in {stac_dir / 'collection.json'}")
    if not result.ok:
        raise SystemExit(EXIT_FAILED)


@click.command("simulate")
@click.argument("scenes", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes simulation.json, simulation.png, the pool scenes' products in OUT/pool/.",
)
@click.option(
    "--generate",
    type=click.IntRange(min=1),
    help="Generate this many synthetic pool scenes (default 4 when no SCENES are given).",
)
@click.option(
    "--size",
    type=click.IntRange(min=64),
    default=512,
    show_default=True,
    help="Edge of the generated pool scenes in 10 m pixels.",
)
@click.option(
    "--satellites",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="Satellites in the constellation.",
)
@click.option(
    "--hours",
    type=click.FloatRange(min=0, min_open=True),
    default=24.0,
    show_default=True,
    help="Simulated time span.",
)
@click.option(
    "--scenes-per-orbit",
    type=click.IntRange(min=0),
    default=40,
    show_default=True,
    help="Full tiles acquired per 95 min orbit and satellite.",
)
@click.option(
    "--stations",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Ground-station antennas shared by the constellation.",
)
@click.option(
    "--contact-prob",
    type=click.FloatRange(0, 1),
    default=0.7,
    show_default=True,
    help="Chance that an orbit passes over a ground station.",
)
@click.option(
    "--pass-min", type=float, default=8.0, show_default=True, help="Pass length in minutes."
)
@click.option("--mbps", type=float, default=300.0, show_default=True, help="Downlink Mbit/s.")
@click.option(
    "--compression",
    type=float,
    default=2.7,
    show_default=True,
    help="Lossless compression ratio of the bands.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed of the contacts and the generated scenes.",
)
@_with_cluster_options
@click.option(
    "--llm/--no-llm",
    default=False,
    show_default=True,
    help="Write the pool reports with the onboard LLM (template otherwise).",
)
@click.pass_obj
def simulate_cmd(
    settings: Settings,
    scenes: tuple[Path, ...],
    out_dir: Path,
    generate: int | None,
    size: int,
    satellites: int,
    hours: float,
    scenes_per_orbit: int,
    stations: int,
    contact_prob: float,
    pass_min: float,
    mbps: float,
    compression: float,
    seed: int,
    scheduler: str | None,
    workers: int | None,
    processes: bool,
    llm: bool,
) -> None:
    """Simulate a constellation: bytes produced and downlinked, backlog onboard and the latency
    from acquisition to alert on the ground, triage reports against raw or compressed bands.

    The triage product of each pool scene (SCENES, or generated ones) is measured: the scene runs
    through the pipeline as a Dask task and its report + compact GeoJSON are framed into
    downlink packets.  Everything else (orbit, tiles per orbit, pass schedule, rate) is modelled
    by the options.  Prints the figures and plots backlog and alert latency to
    OUT/simulation.png.

    \b
    Examples:
      eotriage simulate --out sim/ --satellites 12
      eotriage simulate sample_scenes/s2_fire_G90292 sample_scenes/sen2ships_* --out sim/
    """
    from ..ground.batch import dask_client
    from ..ground.constellation import (
        ConstellationModel,
        generate_pool,
        measure_pool,
        plot_simulation,
        simulate,
    )

    _quiet_dask()
    try:
        model = ConstellationModel(
            satellites=satellites,
            duration_h=hours,
            scenes_per_orbit=scenes_per_orbit,
            stations=stations,
            contact_prob=contact_prob,
            pass_min=pass_min,
            downlink_mbps=mbps,
            compression_ratio=compression,
            seed=seed,
        )
        st = _settings(
            settings,
            None,
            None,
            None,
            _local_threads(scheduler, workers, None),
            None,
            not llm,
            None,
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    from ..runner import check_writable, mkdir_out

    try:
        mkdir_out(out_dir)
        check_writable(out_dir)
    except OutputError as exc:
        fail(str(exc), EXIT_USAGE)
    paths: list[Path] = list(scenes)
    if generate or not paths:
        paths += generate_pool(out_dir / "scenes", generate or 4, size, seed=seed)
    try:
        with dask_client(scheduler, workers, processes) as client:
            pool = measure_pool(client, paths, out_dir / "pool", st)
            result = simulate(client, model, pool)
    except EotriageError as exc:
        fail(str(exc), EXIT_FAILED if not isinstance(exc, ConfigError) else EXIT_USAGE)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "simulation.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    png = plot_simulation(result, out_dir / "simulation.png")
    click.echo(
        "pool (measured): "
        + ", ".join(f"{p.name} {p.triage_bytes} B [{p.priority}]" for p in result.pool)
    )
    for line in result.lines():
        click.echo(line)
    click.echo(f"wrote {out_dir / 'simulation.json'} and {png}")
