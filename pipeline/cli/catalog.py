"""What eotriage knows: ``sensors``, ``info SCENE``, ``models list|verify``, ``scenes``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, EotriageError
from ..settings import Settings
from ._common import EXIT_FAILED, EXIT_USAGE, SCALING_OPTION_HELP, fail, fail_on


@click.command("sensors")
def sensors_cmd() -> None:
    """List the sensor profiles and their DN scaling."""
    from ..sensors import PROFILES

    for p in PROFILES.values():
        click.echo(f"{p.name:15s} {p.description}")
        click.echo(f"{'':15s} bands: {' '.join(p.band_names)}")


@click.command("info")
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("--sensor", help="Sensor profile; default: detect from files.")
@click.option("--scaling", metavar="SCALING", help=SCALING_OPTION_HELP)
@click.pass_obj
def info_cmd(settings: Settings, scene: Path, sensor: str | None, scaling: str | None) -> None:
    """Show what eotriage makes of a scene: sensor, bands, grid, scaling, and why."""
    from ..core.env import Env
    from ..core.scene import open_scene

    try:
        settings = settings.override(sensor=sensor, scaling=scaling)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        with Env(settings):
            s = open_scene(scene, sensor=settings.sensor, scaling=settings.scaling)
    except EotriageError as exc:
        fail_on(exc)
    g = s.grid
    click.echo(f"scene    {s.name} ({s.path})")
    click.echo(f"sensor   {s.profile.name} ({s.sensor_reason})")
    click.echo(f"scaling  {s.scaling.spec()}: {s.scaling.describe()} ({s.scaling.reason})")
    click.echo(f"grid     {g.width} x {g.height} px, {g.ground_res_m:.2f} m, {g.crs.to_string()}")
    click.echo(f"centre   lon {g.center_lonlat[0]:.5f} lat {g.center_lonlat[1]:.5f}")
    for b in s.bands:
        click.echo(f"band     {b.name:4s} {b.role:12s} {b.width} x {b.height} {b.dtype} {b.label}")


@click.group("models")
def models_group() -> None:
    """Inspect and verify the ONNX models."""


def _manifest(settings: Settings) -> dict[str, Any]:
    from ..core.onnx_models import load_manifest

    try:
        return dict(load_manifest(settings.models_dir))
    except EotriageError as exc:
        fail_on(exc)


@models_group.command("list")
@click.pass_obj
def models_list(settings: Settings) -> None:
    """List the models in the manifest."""
    for m in _manifest(settings).values():
        click.echo(
            f"{m.name} {m.version} {m.path.name} sha256:{m.sha256[:16]} bands: {','.join(m.bands)}"
        )


@models_group.command("verify")
@click.pass_obj
def models_verify(settings: Settings) -> None:
    """Check every model file and its golden copy against the sha256 and load them."""
    from ..core.onnx_models import (
        OnnxModel,
        default_models_dir,
        golden_dir_for,
        optional_missing,
    )

    bad = 0
    models_dir = (settings.models_dir or default_models_dir()).resolve()
    golden_dir = golden_dir_for(models_dir, settings.robustness)
    for m in _manifest(settings).values():
        missing = optional_missing(m)
        if missing:
            click.echo(f"skip {m.name} {m.version} ({missing})")
            continue
        # as the detectors load it: the file's path under the models folder (a package's
        # model: its file name)
        path = m.path.resolve()
        golden = golden_dir / (
            path.relative_to(models_dir) if path.is_relative_to(models_dir) else m.path.name
        )
        if "package" in m.raw and not golden.is_file():  # its golden copy is optional too
            click.echo(f"ok   {m.name} {m.version} golden copy: none (package model)")
            pairs: tuple[tuple[str, Any], ...] = (("", m),)
        else:
            pairs = (("", m), (" golden", dataclasses.replace(m, path=golden)))
        for label, info in pairs:
            try:
                model = OnnxModel(info, threads=1, providers=settings.providers)
                click.echo(f"ok   {m.name} {m.version}{label} ({', '.join(model.providers)})")
            except EotriageError as exc:
                bad += 1
                click.echo(f"eotriage: error: {exc}{label and ' (golden copy)'}", err=True)
    if bad:
        raise SystemExit(EXIT_FAILED)


@click.group("scenes")
def scenes_group() -> None:
    """Sample scenes and synthetic scene generation."""


@scenes_group.command("list")
def scenes_list() -> None:
    """List the sample scenes bundled with the repository."""
    root = Path(__file__).resolve().parents[2] / "sample_scenes"
    index = root / "scenes.json"
    if not index.is_file():
        fail(f"{index}: sample scene index not found")
    for entry in json.loads(index.read_text())["scenes"]:
        click.echo(f"{entry['name']:28s} {entry['what']}")


@scenes_group.command("generate")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", type=int, default=1024, show_default=True, help="Edge in 10 m pixels.")
@click.option("--fires", type=int, default=3, show_default=True, help="Number of fire clusters.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same scene)."
)
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
    from ..testing.synthetic import generate_scene

    if size < 16:
        fail("--size must be >= 16", EXIT_USAGE)
    generate_scene(
        out,
        size,
        n_fires=fires,
        seed=seed,
        offset_baseline=offset_baseline,
        compress=None if no_compress else "deflate",
    )
    click.echo(f"wrote {out} ({size} x {size} px, truth in {out / 'truth.json'})")


@scenes_group.command("generate-crops")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", type=int, default=800, show_default=True, help="Edge in 10 m pixels.")
@click.option("--dates", type=int, default=12, show_default=True, help="Passes, 10 days apart.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same scene)."
)
def scenes_generate_crops(out: Path, size: int, dates: int, seed: int) -> None:
    """Write a synthetic Sentinel-2 L1C crop series to OUT: one scene per date (fields through
    a season, some stressed from a known date on, forest, scrub and desert, clouds on some
    dates), the parcels (parcels.geojson), a cropland raster (cropland.tif) and truth.json.
    Score it with `eotriage eval crop OUT`.
    """
    from ..testing.synthetic_crops import generate_crop_series

    if size < 200:
        fail("--size must be >= 200 for fields to fit", EXIT_USAGE)
    if dates < 6:
        fail("--dates must be >= 6 (stress starts from the 4th date)", EXIT_USAGE)
    generate_crop_series(out, width=size, seed=seed, n_dates=dates)
    click.echo(f"wrote {out} ({dates} dates of {size} x {size} px, truth in {out / 'truth.json'})")
