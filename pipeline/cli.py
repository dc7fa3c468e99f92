"""``eotriage`` command line: a thin layer over the library.

Errors from the library become one-line messages and non-zero exit codes:
0 all scenes fine, 1 a scene failed or had failed tiles / problems, 2 usage or settings error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .errors import ConfigError, EotriageError
from .settings import KNOWN_DETECTORS, Settings

#: per-scene checkpoint of finished tiles (see pipeline.checkpoint); removed once the scene is done
CHECKPOINT = "checkpoint.jsonl"

log = logging.getLogger("pipeline.cli")

EXIT_SCENE_FAILED = 1
EXIT_USAGE = 2


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level, format="eotriage: %(levelname)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("pipeline").setLevel(level)
    # GDAL's own chatter (CPLE_* notes) only when asked for with -vv
    logging.getLogger("rasterio").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)


def _fail(msg: str, code: int = EXIT_SCENE_FAILED) -> NoReturn:
    click.echo(f"eotriage: error: {msg}", err=True)
    raise SystemExit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="eotriage")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (TOML); command-line options override it.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, config: Path | None) -> None:
    """eotriage: onboard Earth-observation triage.

    Reads multispectral scenes tile by tile, runs ONNX detectors (active fire, ships, crop
    stress), writes GeoJSON, a short text report (small onboard LLM, fact-checked) and
    downlink packets that `eotriage decode` turns back into maps and text on the ground.

    \b
    Examples:
      eotriage run sample_scenes/s2_fire_G90292 --out out/
      eotriage run SCENE_DIR --sensor sentinel2-l1c --tile-size 512 --out out/
      eotriage decode out/s2_fire_G90292/downlink.bin --out ground/
      eotriage eval ships sample_scenes/sen2ships_honolulu
      eotriage stream sample_scenes/s2_fire_G90292 --rate 664
      eotriage ask "How many vessels?" --bbox -158,21.3,-157.9,21.4 --out q.bin
      eotriage scenes generate /tmp/syn --size 2000 --fires 5
      eotriage bench --quick
    """
    _setup_logging(verbose, quiet)
    try:
        ctx.obj = Settings.from_toml(config) if config else Settings()
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)


@cli.command()
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
    "--outbox",
    "outbox_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also queue each scene's downlink.bin in this crash-safe outbox (once per scene name).",
)
@click.pass_obj
def run(
    settings: Settings,
    scenes: tuple[Path, ...],
    out_dir: Path,
    sensor: str | None,
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
    outbox_dir: Path | None,
) -> None:
    """Run the detectors on SCENES and write OUT/<scene>/detections.geojson and run.json,
    with the text report (report.txt, report.json), compact.geojson and downlink.bin (the
    packets for the ground: decode with `eotriage decode`) beside them.

    A SCENE is a multi-band GeoTIFF whose band descriptions name the bands, or a folder of
    single-band GeoTIFFs named after their bands (B02.tif, ..._B8A.tif, B11.tif).  A scene
    that fails is reported on one line and the others still run.  Each finished tile is
    checkpointed, so after a crash `--resume` continues where the run stopped.
    """
    from .engine import run_scene
    from .env import Env
    from .outputs import write_scene
    from .report.writer import ReportWriter
    from .scene import open_scene

    try:
        settings = settings.override(
            sensor=sensor,
            tile_size=tile_size,
            overlap=overlap,
            threads=threads,
            detectors=detectors,
            sections={
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
            },
        )
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    show_bar = sys.stderr.isatty() if progress is None else progress
    failed = 0
    names_seen: set[str] = set()
    with contextlib.ExitStack() as stack:
        reports = stack.enter_context(ReportWriter(settings.report, threads=settings.threads))
        outbox = stack.enter_context(_open_outbox(outbox_dir)) if outbox_dir else None
        for path in scenes:
            try:
                with Env(settings):
                    scene = open_scene(path, sensor=settings.sensor)
                if scene.name in names_seen:  # two inputs with one name: separate output folders
                    scene = dataclasses.replace(scene, name=f"{scene.name}_{len(names_seen)}")
                names_seen.add(scene.name)
                ckpt = out_dir / scene.name / CHECKPOINT
                if resume and not ckpt.exists() and (out_dir / scene.name / "run.json").exists():
                    click.echo(f"{scene.name}: already done (--resume)")
                    continue
                result = _run_with_progress(run_scene, scene, settings, show_bar, ckpt, resume)
                written = write_scene(result, out_dir, reports, settings.downlink)
                if outbox is not None and written.downlink is not None:
                    data = written.downlink.read_bytes()
                    outbox.put(f"{scene.name}/downlink.bin", data, first_wins=True)
                ckpt.unlink(missing_ok=True)  # outputs and outbox entry are durable now
            except EotriageError as exc:
                failed += 1
                click.echo(f"eotriage: error: {exc}", err=True)
                continue
            counts = (
                ", ".join(f"{n} {c}" for c, n in result.counts().items() if n) or "no detections"
            )
            click.echo(
                f"{scene.name}: {counts} -> {written.geojson} ({result.timings_s['total']:.1f} s)"
            )
            if written.report is not None and written.report.report.fallback_reason:
                log.info(
                    "%s: template report (%s)",
                    scene.name,
                    written.report.report.fallback_reason,
                )
            for f in result.failures:
                click.echo(f"eotriage: error: {scene.name} tile {f.tile_id}: {f.cause}", err=True)
            for p in result.problems:
                click.echo(f"eotriage: error: {scene.name}: {p}", err=True)
            if not result.ok:
                failed += 1
    if failed:
        raise SystemExit(EXIT_SCENE_FAILED)


def _run_with_progress(
    run_scene: Callable[..., Any],
    scene: Any,
    settings: Settings,
    show: bool,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> Any:
    if not show:
        return run_scene(scene, settings, checkpoint=checkpoint, resume=resume)
    from tqdm import tqdm

    with tqdm(desc=scene.name, unit="tile", leave=False, file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return run_scene(scene, settings, progress=update, checkpoint=checkpoint, resume=resume)


def _open_outbox(path: Path) -> Any:
    from .outbox import Outbox

    return Outbox(path)


@cli.command()
def sensors() -> None:
    """List the sensor profiles and their DN scaling."""
    from .sensors import PROFILES

    for p in PROFILES.values():
        click.echo(f"{p.name:15s} {p.description}")
        click.echo(f"{'':15s} bands: {' '.join(p.band_names)}")


@cli.command()
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("--sensor", help="Sensor profile; default: detect from files.")
@click.pass_obj
def info(settings: Settings, scene: Path, sensor: str | None) -> None:
    """Show what eotriage makes of a scene: sensor, bands, grid, scaling."""
    from .env import Env
    from .scene import open_scene

    try:
        with Env(settings):
            s = open_scene(scene, sensor=sensor or settings.sensor)
    except EotriageError as exc:
        _fail(str(exc))
    g = s.grid
    click.echo(f"scene    {s.name} ({s.path})")
    click.echo(f"sensor   {s.profile.name} ({s.sensor_reason})")
    click.echo(f"scaling  {s.scaling.describe()} ({s.scaling.reason})")
    click.echo(f"grid     {g.width} x {g.height} px, {g.ground_res_m:.2f} m, {g.crs.to_string()}")
    click.echo(f"centre   lon {g.center_lonlat[0]:.5f} lat {g.center_lonlat[1]:.5f}")
    for b in s.bands:
        click.echo(f"band     {b.name:4s} {b.role:12s} {b.width} x {b.height} {b.dtype} {b.label}")


@cli.group()
def models() -> None:
    """Inspect and verify the ONNX models."""


def _manifest(settings: Settings) -> dict[str, Any]:
    from .onnx_models import load_manifest

    try:
        return dict(load_manifest(settings.models_dir))
    except EotriageError as exc:
        _fail(str(exc))


@models.command("list")
@click.pass_obj
def models_list(settings: Settings) -> None:
    """List the models in the manifest."""
    for m in _manifest(settings).values():
        click.echo(
            f"{m.name} {m.version} {m.path.name} sha256:{m.sha256[:16]} bands: {','.join(m.bands)}"
        )


@models.command("verify")
@click.pass_obj
def models_verify(settings: Settings) -> None:
    """Check every model file and its golden copy against the sha256 and load them."""
    from .onnx_models import OnnxModel, default_models_dir, golden_dir_for

    bad = 0
    golden_dir = golden_dir_for(
        (settings.models_dir or default_models_dir()).resolve(), settings.robustness
    )
    for m in _manifest(settings).values():
        for label, info in (
            ("", m),
            (" golden", dataclasses.replace(m, path=golden_dir / m.path.name)),
        ):
            try:
                model = OnnxModel(info, threads=1, providers=settings.providers)
                click.echo(f"ok   {m.name} {m.version}{label} ({', '.join(model.providers)})")
            except EotriageError as exc:
                bad += 1
                click.echo(f"eotriage: error: {exc}{label and ' (golden copy)'}", err=True)
    if bad:
        raise SystemExit(EXIT_SCENE_FAILED)


@cli.group()
def scenes() -> None:
    """Sample scenes and synthetic scene generation."""


@scenes.command("list")
def scenes_list() -> None:
    """List the sample scenes bundled with the repository."""
    root = Path(__file__).resolve().parent.parent / "sample_scenes"
    index = root / "scenes.json"
    if not index.is_file():
        _fail(f"{index}: sample scene index not found")
    for entry in json.loads(index.read_text())["scenes"]:
        click.echo(f"{entry['name']:28s} {entry['what']}")


@scenes.command("generate")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", type=int, default=1024, show_default=True, help="Edge in 10 m pixels.")
@click.option("--fires", type=int, default=3, show_default=True, help="Number of fire clusters.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--offset-baseline", is_flag=True, help="DNs with the +1000 offset of baseline 04.00."
)
@click.option(
    "--no-compress", is_flag=True, help="Write uncompressed GeoTIFFs (faster for big scenes)."
)
def scenes_generate(
    out: Path, size: int, fires: int, seed: int, offset_baseline: bool, no_compress: bool
) -> None:
    """Write a synthetic 13-band Sentinel-2 L1C scene with known fires (truth.json) to OUT."""
    from .synthetic import generate_scene

    if size < 16:
        _fail("--size must be >= 16", EXIT_USAGE)
    generate_scene(
        out,
        size,
        n_fires=fires,
        seed=seed,
        offset_baseline=offset_baseline,
        compress=None if no_compress else "deflate",
    )
    click.echo(f"wrote {out} ({size} x {size} px, truth in {out / 'truth.json'})")


@scenes.command("generate-crops")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", type=int, default=1000, show_default=True, help="Edge in 10 m pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
def scenes_generate_crops(out: Path, size: int, seed: int) -> None:
    """Write a synthetic Sentinel-2 L1C scene with healthy and stressed fields to OUT.

    truth.json lists each field's state and the stressed area; baseline_ndvi.tif is an
    expected-NDVI baseline for the drop test.  Score a run with `eotriage eval crop OUT`.
    """
    from .synthetic_crops import generate_crop_scene

    if size < 200:
        _fail("--size must be >= 200 for fields to fit", EXIT_USAGE)
    generate_crop_scene(out, width=size, seed=seed)
    click.echo(f"wrote {out} ({size} x {size} px, truth in {out / 'truth.json'})")


# --- subcommands defined in their own modules (each imports its heavy parts lazily) ---
from .cli_ask import answer_cmd, ask_cmd, store_group  # noqa: E402
from .cli_bench import bench_cmd  # noqa: E402
from .cli_decode import decode_cmd  # noqa: E402
from .cli_eval import eval_group  # noqa: E402
from .cli_ground import batch_cmd, simulate_cmd  # noqa: E402
from .cli_stream import stream_cmd  # noqa: E402
from .cli_uplink import uplink_group  # noqa: E402

for _command in (
    eval_group,
    decode_cmd,
    stream_cmd,
    ask_cmd,
    answer_cmd,
    store_group,
    batch_cmd,
    simulate_cmd,
    uplink_group,
    bench_cmd,
):
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(prog_name="eotriage", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("eotriage: interrupted", err=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
