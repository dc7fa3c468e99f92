"""``eotriage`` command line: a thin layer over the library.

Errors from the library become one-line messages and non-zero exit codes:
0 all scenes fine, 1 a scene failed or had failed tiles / problems, 2 usage or settings error.
"""

from __future__ import annotations

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

    Reads multispectral scenes tile by tile, runs ONNX detectors (active fire today; ships and
    crop stress to come) and writes compact GeoJSON products with a run summary.

    \b
    Examples:
      eotriage run sample_scenes/s2_fire_G90292 --out out/
      eotriage run SCENE_DIR --sensor sentinel2-l1c --tile-size 512 --out out/
      eotriage sensors
      eotriage models verify
      eotriage scenes generate /tmp/syn --size 2000 --fires 5
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
) -> None:
    """Run the detectors on SCENES and write OUT/<scene>/detections.geojson and run.json.

    A SCENE is a multi-band GeoTIFF whose band descriptions name the bands, or a folder of
    single-band GeoTIFFs named after their bands (B02.tif, ..._B8A.tif, B11.tif).  A scene
    that fails is reported on one line and the others still run.
    """
    from .engine import run_scene
    from .env import Env
    from .outputs import write_scene
    from .scene import open_scene
    from .sensors import get_profile

    changes: dict[str, Any] = {}
    for key, value in (
        ("sensor", sensor),
        ("tile_size", tile_size),
        ("overlap", overlap),
        ("threads", threads),
    ):
        if value is not None:
            changes[key] = value
    if detectors:
        changes["detectors"] = tuple(d.strip() for d in detectors.split(",") if d.strip())
    try:
        settings = settings.replace(**changes)
        if settings.sensor:
            get_profile(settings.sensor)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    show_bar = sys.stderr.isatty() if progress is None else progress
    failed = 0
    names_seen: set[str] = set()
    for path in scenes:
        try:
            with Env(settings):
                scene = open_scene(path, sensor=settings.sensor)
            if scene.name in names_seen:  # two inputs with one name must not share an output folder
                scene = dataclasses.replace(scene, name=f"{scene.name}_{len(names_seen)}")
            names_seen.add(scene.name)
            result = _run_with_progress(run_scene, scene, settings, show_bar)
            written = write_scene(result, out_dir)
        except EotriageError as exc:
            failed += 1
            click.echo(f"eotriage: error: {exc}", err=True)
            continue
        counts = ", ".join(f"{n} {c}" for c, n in result.counts().items() if n) or "no detections"
        click.echo(
            f"{scene.name}: {counts} -> {written.geojson} ({result.timings_s['total']:.1f} s)"
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
    run_scene: Callable[..., Any], scene: Any, settings: Settings, show: bool
) -> Any:
    if not show:
        return run_scene(scene, settings)
    from tqdm import tqdm

    with tqdm(desc=scene.name, unit="tile", leave=False, file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return run_scene(scene, settings, progress=update)


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
    """Check every model file against its sha256 and load it in onnxruntime."""
    from .onnx_models import OnnxModel

    bad = 0
    for m in _manifest(settings).values():
        try:
            model = OnnxModel(m, threads=1, providers=settings.providers)
            click.echo(f"ok   {m.name} {m.version} ({', '.join(model.providers)})")
        except EotriageError as exc:
            bad += 1
            click.echo(f"eotriage: error: {exc}", err=True)
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


# --- subcommands defined in their own modules: one import + add_command line each ---


def main() -> None:
    try:
        cli.main(prog_name="eotriage", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("eotriage: interrupted", err=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
