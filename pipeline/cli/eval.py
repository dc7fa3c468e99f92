"""``eotriage eval``: score detectors against labels (a thin layer over pipeline.evaluation).

\b
  eotriage eval ships SCENE_DIR... [--labels LABELS.json] [--tolerance-m 30] [--json]
  eotriage eval fire SCENE_DIR --reference CSV [--json]
  eotriage eval crop SERIES [--raster] [--json]
  eotriage eval crop SCENE_OR_FOLDER --layer PARCELS [--landcover TIF] [--json]
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


@eval_group.command("clouds")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reference mask GeoTIFF on the scene's grid (SOURCE a scene); not needed for an .npz "
    "sample, which carries its mask.",
)
@click.option(
    "--codes",
    type=click.Choice(["classes", "ukis"]),
    default="classes",
    show_default=True,
    help="Reference codes: 0 clear, 1 cloud, 2 shadow ('classes') or ukis-csmask's 4 cloud, "
    "0 shadow, 1-3 clear.",
)
@click.option(
    "--pixel-m",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Pixel size assumed for an .npz sample (the ukis-csmask sample is ~30 m).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def eval_clouds(
    ctx: click.Context,
    source: Path,
    reference: Path | None,
    codes: str,
    pixel_m: float,
    as_json: bool,
) -> None:
    """Score the cloud screen against a reference mask: cloud-vs-rest accuracy, Cohen's kappa
    over clear / cloud / shadow, and the student's pixel agreement with the teacher.

    SOURCE is an ukis-csmask style .npz sample (img: H x W x 6 reflectance B02 B03 B04 B08 B11
    B12; msk: 4 cloud, 0 shadow, 1-3 clear), scored for the student and, when the
    clouds-accurate extra is installed, the teacher, on the 6-band and the 4-band path; or a
    scene with --reference, scored for the configured model ([clouds] model).
    """
    from ..evaluation.clouds import evaluate_npz, evaluate_scene

    settings = _settings(ctx, None)
    try:
        if source.suffix == ".npz":
            rows = evaluate_npz(source, pixel_m=pixel_m, models_dir=settings.models_dir)
        else:
            if reference is None:
                fail("--reference is required when SOURCE is a scene", EXIT_USAGE)
            rows = evaluate_scene(source, reference, settings, codes)
    except (EotriageError, KeyError, ValueError) as exc:
        fail(f"{source}: {exc}")
    dicts = [r.to_dict() for r in rows]
    if as_json:
        click.echo(json.dumps(dicts, indent=2))
        return
    cols = [
        ("model", "model"),
        ("bands", "bands"),
        ("pixels", "pixels"),
        ("cloud_accuracy", "cloud acc."),
        ("kappa", "kappa"),
        ("agreement", "3-class agr."),
        ("agreement_with_teacher", "agr. teacher"),
        ("cloud_fraction", "cloud"),
        ("shadow_fraction", "shadow"),
    ]
    click.echo(_table(dicts, cols))


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
@click.argument("series", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--raster",
    is_flag=True,
    help="Synthetic series: use its cropland raster (cropland.tif) instead of its parcels.",
)
@click.option(
    "--layer",
    "layer",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Real scene(s): the cropland layer (parcels .geojson or raster .tif).",
)
@click.option(
    "--landcover",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Real scene(s): a land-cover raster (any grid); features on its non-cropland classes "
    "are counted.",
)
@click.option(
    "--cropland-class",
    "cropland_classes",
    type=int,
    multiple=True,
    help="Land-cover code(s) of cropland (default 40, ESA WorldCover).",
)
@click.option(
    "--history",
    type=click.Path(file_okay=False, path_type=Path),
    help="History folder to use (default: a new temporary one, so the series starts fresh).",
)
@click.option("--tile-size", type=int, default=None, help="Tile edge in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def eval_crop(
    ctx: click.Context,
    series: Path,
    raster: bool,
    layer: Path | None,
    landcover: Path | None,
    cropland_classes: tuple[int, ...],
    history: Path | None,
    tile_size: int | None,
    as_json: bool,
) -> None:
    """Score crop stress on a synthetic SERIES against its truth, or on real scene(s).

    \b
    Synthetic (SERIES/truth.json, made by `eotriage scenes generate-crops`): the dates run in
    order with one history folder; per date the stressed parcels seen and found, features and
    false ones; in total parcel recall from the first stressed date, parcel-date recall and
    precision, features on hidden parcels and on cloudy dates, pixels on forest, scrub and
    desert, and the area error.
    \b
    Real (a scene folder, or a folder of dated scene folders): each scene with --layer and
    without any layer; features, their km2, pixels outside the layer and, with --landcover,
    on its non-cropland classes.
    """
    import tempfile

    from ..evaluation.crop import load_truth

    settings = _settings(ctx, tile_size)
    with tempfile.TemporaryDirectory() as td:
        hist = history or Path(td) / "history"
        try:
            if (series / "truth.json").is_file():
                load_truth(series)
                _eval_crop_series(
                    series, settings, "raster" if raster else "parcels", hist, as_json
                )
            else:
                if layer is None:
                    fail(
                        f"{series}: no truth.json: give the cropland layer with --layer", EXIT_USAGE
                    )
                _eval_crop_real(
                    series, settings, layer, landcover, cropland_classes or (40,), hist, as_json
                )
        except EotriageError as exc:
            fail_on(exc)


def _eval_crop_series(
    series: Path, settings: Settings, mode: str, history: Path, as_json: bool
) -> None:
    from ..evaluation.crop import evaluate_series, run_series

    results = run_series(series, settings, mode, history)
    ev = evaluate_series(series, results, mode, settings.crop.min_clear_share)
    d = ev.to_dict()
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    cols = [
        ("date", "date"),
        ("cloud_cover", "cloud"),
        ("stressed_seen", "stressed seen"),
        ("found", "found"),
        ("features", "features"),
        ("false", "false"),
        ("on_hidden", "on hidden"),
        ("noncrop_px", "px non-crop"),
    ]
    rows = [{**r, "false": r["features"] - r["true_features"]} for r in d["per_date"]]
    click.echo(_table(rows, cols))
    refs = ", ".join(f"{k} {v}" for k, v in sorted(d["by_reference"].items())) or "none"
    click.echo(
        f"{series.name} ({mode}): parcels stressed {d['stressed_parcels']}, found on their "
        f"first stressed date {d['found_first']} (recall {d['parcel_recall']:.3f}); "
        f"parcel-date recall {d['recall']:.3f}, precision {d['precision']:.3f}; "
        f"false features on hidden parcels {d['on_hidden']}, on cloudy dates "
        f"{d['cloudy_false']}; px on forest/scrub/desert {d['noncrop_px']}; area error "
        f"{d['area_error']:+.2%}; references: {refs}"
    )


def _eval_crop_real(
    folder: Path,
    settings: Settings,
    layer: Path,
    landcover: Path | None,
    classes: tuple[int, ...],
    history: Path,
    as_json: bool,
) -> None:
    from ..core.engine import run_scene
    from ..core.scene import open_scene
    from ..evaluation.crop import evaluate_scene, layer_mask, scene_order

    with_layer = settings.replace(
        detectors=("crop",),
        crop=dataclasses.replace(
            settings.crop, layers=(str(layer),), layers_dir=None, history=history
        ),
    )
    no_layer = settings.replace(
        detectors=("crop",),
        crop=dataclasses.replace(settings.crop, layers=(), layers_dir=None, history=None),
    )
    rows: list[dict[str, Any]] = []
    for path in scene_order(folder):
        scene = open_scene(path, sensor=settings.sensor)
        g = scene.grid
        grid = ((g.height, g.width), g.transform, g.crs.to_string())
        mask = layer_mask(layer, g, settings.crop.unit_m)
        for label, s in (("layer", with_layer), ("no layer", no_layer)):
            ev = evaluate_scene(
                run_scene(scene, s), grid, mask, landcover if label == "layer" else None, classes
            )
            rows.append({"run": label, **ev.to_dict()})
    if as_json:
        click.echo(json.dumps({"layer": str(layer), "scenes": rows}, indent=2))
        return
    for r in rows:
        r["refs"] = ", ".join(f"{k} {v}" for k, v in sorted(r["by_reference"].items())) or "-"
    cols = [
        ("scene", "scene"),
        ("run", "run"),
        ("status", "crop"),
        ("features", "features"),
        ("feature_km2", "km2"),
        ("outside_layer_px", "px outside layer"),
        ("on_noncrop_px", "px non-crop (land cover)"),
        ("refs", "references"),
    ]
    click.echo(_table(rows, cols))
