"""``eotriage run``: the detectors, report and packets for each scene, through the runner."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from ..errors import ConfigError, InputError, OutputError
from ..settings import KNOWN_DETECTORS, Settings
from ._common import EXIT_FAILED, EXIT_USAGE, SCALING_OPTION_HELP, fail, process_seconds


@click.command("run")
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; each scene goes to OUT/<scene>/.",
)
@click.option(
    "--sensor", help="Sensor profile (see 'eotriage sensors'); default: detect from files."
)
@click.option("--scaling", metavar="SCALING", help=SCALING_OPTION_HELP)
@click.option("--tile-size", type=int, help="Tile edge in working-grid pixels (default 1024).")
@click.option(
    "--overlap",
    type=int,
    help="Tile overlap in pixels (default 64; raised to the detectors' context if smaller).",
)
@click.option("--threads", type=int, help="CPU threads for the detectors (default: up to 2).")
@click.option(
    "--detectors", help=f"Comma-separated detectors to run ({', '.join(KNOWN_DETECTORS)})."
)
@click.option(
    "--clouds",
    "cloud_model",
    type=click.Choice(["student", "accurate", "off"]),
    help="Cloud screen: the real-time student (default), the ukis-csmask teacher ('accurate', "
    "slow on a CPU; needs the clouds-accurate extra), or off.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
@click.option("--no-llm", is_flag=True, help="Write the text report with the template only.")
@click.option(
    "--max-features",
    type=click.IntRange(min=0),
    help="Features in compact.geojson, highest score first (default 50).",
)
@click.option(
    "--llm-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds the LLM may take per report before the template is used (default 5).",
)
@click.option(
    "--downlink-budget",
    type=int,
    help="Bytes of downlink.bin for this pass (default: no limit); the rest waits, in priority "
    "order (report, detections by score, extras).",
)
@click.option("--chips", is_flag=True, help="Add 64 px image chips around detections (extras).")
@click.option("--quicklook", is_flag=True, help="Add a 256 px quicklook of the scene (extras).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue after a crash: skip scenes already written, and continue a scene from its "
    "last finished tile (OUT/<scene>/checkpoint.jsonl).",
)
@click.option(
    "--crop-mask",
    "crop_masks",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cropland layer for crop stress: field parcels (GeoJSON, WGS84) or a cropland raster "
    "(GeoTIFF, non-zero = cropland); repeat for several.  Crop stress is judged only inside a "
    "layer that covers the scene; without one it is skipped and run.json says why.",
)
@click.option(
    "--crop-layers",
    "crop_layers_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of cropland layers kept on board (e.g. TARGET/current/crop of an uplinked "
    "release); each is used for every scene it overlaps.",
)
@click.option(
    "--crop-history",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the fields' history of clear passes (read and updated; created if "
    "missing).  Without it every pass is a first visit.",
)
@click.option(
    "--outbox",
    "outbox_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also queue each scene's downlink.bin in this crash-safe outbox (once per scene name).",
)
@click.pass_obj
def run_cmd(
    settings: Settings,
    scenes: tuple[Path, ...],
    out_dir: Path,
    sensor: str | None,
    scaling: str | None,
    tile_size: int | None,
    overlap: int | None,
    threads: int | None,
    detectors: str | None,
    progress: bool | None,
    no_llm: bool,
    max_features: int | None,
    llm_timeout: float | None,
    downlink_budget: int | None,
    chips: bool,
    quicklook: bool,
    resume: bool,
    crop_masks: tuple[Path, ...],
    crop_layers_dir: Path | None,
    crop_history: Path | None,
    outbox_dir: Path | None,
    cloud_model: str | None,
) -> None:
    """Run the detectors on SCENES and write OUT/<scene>/detections.geojson and run.json,
    with the text report (report.txt, report.json), compact.geojson and downlink.bin (the
    packets for the ground: decode with `eotriage decode`) beside them.

    A SCENE is a multi-band GeoTIFF whose band descriptions name the bands, or a folder of
    single-band GeoTIFFs named after their bands (B02.tif, ..._B8A.tif, B11.tif).  A scene
    that fails is reported on one line and the others still run.  Each finished tile is
    checkpointed, so after a crash `--resume` continues where the run stopped.
    """
    from ..runner import SceneRunner, check_writable, mkdir_out

    try:
        settings = settings.override(
            sensor=sensor,
            scaling=scaling,
            tile_size=tile_size,
            overlap=overlap,
            threads=threads,
            detectors=detectors,
            sections={
                "clouds": {"model": cloud_model if cloud_model != "off" else None},
                "report": {
                    "use_llm": False if no_llm else None,
                    "max_features": max_features,
                    "timeout_s": llm_timeout,
                },
                "downlink": {
                    "budget_bytes": downlink_budget,
                    "chips": True if chips else None,
                    "quicklook": True if quicklook else None,
                },
                "crop": {
                    "layers": (
                        settings.crop.layers + tuple(str(p) for p in crop_masks)
                        if crop_masks
                        else None
                    ),
                    "layers_dir": crop_layers_dir,
                    "history": crop_history,
                },
            },
        )
        if cloud_model == "off":
            settings = settings.replace(
                detectors=tuple(d for d in settings.detectors if d != "clouds")
            )
        _check_crop_layers(settings)
    except (ConfigError, InputError) as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        mkdir_out(out_dir)
        check_writable(out_dir)
    except OutputError as exc:
        fail(str(exc), EXIT_USAGE)
    show_bar = sys.stderr.isatty() if progress is None else progress
    failed = 0
    with SceneRunner(
        out_dir, settings, outbox_dir=outbox_dir, resume=resume, skip_complete=resume
    ) as runner:
        for path in scenes:
            with _progress(show_bar, path) as update:
                outcome = runner.run(path, progress=update)
            if outcome.status == "failed":
                failed += 1
                click.echo(f"eotriage: error: {outcome.error}", err=True)
                continue
            if outcome.status == "skipped":
                click.echo(f"{outcome.name}: already done (--resume)")
                continue
            click.echo(
                f"{outcome.name}: {outcome.findings()} -> {outcome.geojson} "
                f"({outcome.seconds:.1f} s)"
            )
            if outcome.kept:
                click.echo(
                    f"eotriage: warning: {outcome.name}: this {outcome.scan} scan looked at less "
                    f"than the result in {outcome.kept}, which was kept; it was written to "
                    f"{outcome.directory} instead",
                    err=True,
                )
            for p in outcome.problems:
                click.echo(f"eotriage: error: {outcome.name}: {p}", err=True)
            if not outcome.ok:
                failed += 1
    from . import STARTED

    n = len(scenes)
    click.echo(
        f"{n} scene{'s' if n != 1 else ''} in {process_seconds(STARTED):.1f} s "
        "(whole run: start-up, model loading, detection, reports, writing)"
    )
    if failed:
        raise SystemExit(EXIT_FAILED)


def _check_crop_layers(settings: Settings) -> None:
    """Every cropland layer of the settings loads (one-line usage error otherwise), when the
    crop detector is enabled."""
    if "crop" not in settings.detectors:
        return
    from ..detectors.crop_layers import layer_paths, load_layer

    cs = settings.crop
    for p in layer_paths(cs.layers, cs.layers_dir):
        load_layer(p, cs.unit_m)


@contextlib.contextmanager
def _progress(show: bool, path: Path) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar of the scene's tiles on stderr (or nothing)."""
    if not show:
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc=path.name, unit="tile", leave=False, file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update
