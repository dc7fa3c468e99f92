"""``eotriage eval``: score detectors against labels (a thin layer over pipeline.evaluation.ships).

\b
  eotriage eval ships SCENE_DIR... [--labels LABELS.json] [--tolerance-m 30] [--json]
  eotriage eval fire SCENE_DIR --reference CSV [--json]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import EotriageError
from ..settings import Settings
from ._common import EXIT_USAGE, fail, fail_on


def _settings(ctx: click.Context, tile_size: int | None) -> Settings:
    base = ctx.find_root().obj
    settings = base if isinstance(base, Settings) else Settings()
    if tile_size is not None:
        try:
            settings = settings.replace(tile_size=tile_size)
        except EotriageError as exc:
            fail(str(exc), EXIT_USAGE)
    return settings


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str]]) -> str:
    cells = [[title for _, title in cols]] + [[_fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    return "\n".join(lines)


@click.group("eval")
def eval_group() -> None:
    """Score detectors against labels: precision, recall, F1 and false alarms per scene."""


@eval_group.command("ships")
@click.argument(
    "scenes", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labels JSON (default: SCENE_DIR/labels.json); only with a single scene.",
)
@click.option(
    "--tolerance-m",
    type=click.FloatRange(min=0.0),
    default=30.0,
    show_default=True,
    help="Max ground distance from a detection centroid to a vessel box, metres.",
)
@click.option("--tile-size", type=int, default=None, help="Tile edge in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def eval_ships(
    ctx: click.Context,
    scenes: tuple[Path, ...],
    labels: Path | None,
    tolerance_m: float,
    tile_size: int | None,
    as_json: bool,
) -> None:
    """Run the ship detector on SCENE_DIR(s) and match detections to labelled vessels.

    A detection matches a vessel when its centroid lies within --tolerance-m of the vessel's
    box; pairs are taken closest first, one-to-one.  False alarms are also given per 10 km2 of
    sea (water pixels of the detector's NDWI mask).
    """
    from ..evaluation.ships import evaluate_ships, sum_by_setting

    if labels is not None and len(scenes) > 1:
        fail(
            "--labels applies to a single SCENE_DIR (each scene's own labels.json otherwise)",
            EXIT_USAGE,
        )
    settings = _settings(ctx, tile_size)
    rows: list[dict[str, Any]] = []
    tot = {"labels": 0, "detections": 0, "tp": 0, "fp": 0, "fn": 0, "sea_km2": 0.0}
    splits: list[Mapping[str, tuple[int, int]]] = []
    for scene in scenes:
        try:
            score, _ = evaluate_ships(scene, labels, settings, tolerance_m)
        except EotriageError as exc:
            fail_on(exc)
        d = score.to_dict()
        d["path"] = str(scene)
        rows.append(d)
        for k in tot:
            tot[k] += d[k]
        splits.append(score.by_setting)
    split = sum_by_setting(splits)
    total: dict[str, Any] = dict(tot)
    total["by_setting"] = split
    total["scene"] = "all"
    total["precision"] = tot["tp"] / tot["detections"] if tot["detections"] else None
    total["recall"] = tot["tp"] / tot["labels"] if tot["labels"] else None
    f1d = 2 * tot["tp"] + tot["fp"] + tot["fn"]
    total["f1"] = 2 * tot["tp"] / f1d if f1d else None
    total["false_alarms_per_10km2"] = 10 * tot["fp"] / tot["sea_km2"] if tot["sea_km2"] else None
    if as_json:
        click.echo(
            json.dumps({"tolerance_m": tolerance_m, "scenes": rows, "total": total}, indent=2)
        )
        return
    cols = [
        ("scene", "scene"),
        ("labels", "vessels"),
        ("detections", "detections"),
        ("tp", "TP"),
        ("fp", "FP"),
        ("fn", "FN"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1", "F1"),
        ("sea_km2", "sea km2"),
        ("false_alarms_per_10km2", "FA/10km2"),
    ]
    shown = rows + ([total] if len(rows) > 1 else [])
    if split.get("at_sea") or split.get("moored"):
        # found / labelled, for vessels at sea and moored ones (labels with an instance raster)
        for r in shown:
            for k in ("at_sea", "moored"):
                n, m = r["by_setting"].get(k, (0, 0))
                r[f"{k}_found"] = f"{m}/{n}"
        cols += [("at_sea_found", "at sea found"), ("moored_found", "moored found")]
    click.echo(_table(shown, cols))


@eval_group.command("fire")
@click.argument("scene", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reference hot-pixel CSV with row, col, cluster columns "
    "(default: SCENE_DIR/fire_pixels_swir_test.csv).",
)
@click.option("--tile-size", type=int, default=None, help="Tile edge in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def eval_fire(
    ctx: click.Context, scene: Path, reference: Path | None, tile_size: int | None, as_json: bool
) -> None:
    """Run the fire detector on SCENE and score its clusters against reference hot pixels.

    A reference cluster is found when a detection's pixel box contains one of its pixels; a
    detection whose box holds no reference pixel is a false cluster.
    """
    from ..evaluation.fire import evaluate_fire

    if reference is None:
        if not scene.is_dir():
            fail("--reference is required when SCENE is a file", EXIT_USAGE)
        reference = scene / "fire_pixels_swir_test.csv"
    settings = _settings(ctx, tile_size)
    try:
        score, _ = evaluate_fire(scene, reference, settings)
    except EotriageError as exc:
        fail_on(exc)
    d = score.to_dict()
    d["path"] = str(scene)
    d["reference"] = str(reference)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    cols = [
        ("scene", "scene"),
        ("reference_clusters", "clusters"),
        ("detections", "detections"),
        ("found", "found"),
        ("false_clusters", "false"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1", "F1"),
    ]
    click.echo(_table([d], cols))
    if score.missed:
        click.echo(f"missed clusters: {', '.join(map(str, score.missed))}")


@eval_group.command("crop")
@click.argument("scene", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--baseline/--no-baseline",
    default=False,
    help="Use SCENE/baseline_ndvi.tif as the expected-NDVI baseline (drop test).",
)
@click.option("--tile-size", type=int, default=None, help="Tile edge in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def eval_crop(
    ctx: click.Context, scene: Path, baseline: bool, tile_size: int | None, as_json: bool
) -> None:
    """Run the crop-stress detector on a synthetic SCENE and score it against its truth.json.

    Prints stressed area (truth vs detected, relative error), pixel recall and precision,
    stressed fields hit, and stressed pixels on water and bare soil (should be 0).  Make such
    scenes with `eotriage scenes generate-crops`.
    """
    from ..core.engine import run_scene
    from ..evaluation.crop import evaluate_crop

    if not (scene / "truth.json").is_file():
        fail(f"{scene}: no truth.json (only synthetic crop scenes have crop truth)", EXIT_USAGE)
    settings = _settings(ctx, tile_size)
    crop = settings.crop
    if baseline:
        path = scene / "baseline_ndvi.tif"
        if not path.is_file():
            fail(f"{path}: baseline raster not found", EXIT_USAGE)
        crop = dataclasses.replace(crop, baseline_ndvi=str(path))
    try:
        result = run_scene(scene, settings.replace(detectors=("crop",), crop=crop))
        ev = evaluate_crop(result, scene, with_baseline=baseline)
    except EotriageError as exc:
        fail_on(exc)
    d = ev.to_dict()
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    cols = [
        ("scene", "scene"),
        ("mode", "mode"),
        ("truth_km2", "truth km2"),
        ("detected_km2", "detected km2"),
        ("relative_error", "rel. error"),
        ("pixel_recall", "recall"),
        ("pixel_precision", "precision"),
        ("fields_hit", "fields hit"),
        ("fields_stressed", "stressed fields"),
        ("stress_px_on_water", "px on water"),
        ("stress_px_on_bare", "px on bare soil"),
    ]
    click.echo(_table([{"scene": scene.name, **d}], cols))
