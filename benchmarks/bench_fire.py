#!/usr/bin/env python3
"""The active-fire detector on real Sentinel-2 scenes: reference fire clusters and no-fire scenes.

Claims under test: on the real wildfire scene G90292 (Sentinel-2 SWIR, 400 x 400 px at 20 m) the
detector finds every one of the 12 reference hot-pixel clusters (105 pixels,
``fire_pixels_swir_test.csv``), with the same result at every tile size; on real scenes without
fire it reports none.

Everything runs in this process through the library (``pipeline.run_scene(path,
pipeline.Settings(...))``).  The ONNX session is created once before the runs, so the wall times
of ``run_scene`` (open, ingest, detect, vectorise; no output files) exclude model loading.

Scenes:

* ``sample_scenes/s2_fire_G90292`` (fire reference).  A reference cluster is *found* when the
  pixel bounding box of a detection (measures ``row_min``/``col_min``/``row_max``/``col_max``)
  contains at least one of its pixels; a detection whose box contains no reference pixel is a
  *false cluster*.  Pixel precision/recall use the exact hot-pixel set of
  ``FireDetector.fire_mask`` over the whole scene read as one tile.  The run is repeated at tile
  sizes 64, 128, 256 and 1024: the detections (boxes and pixel counts) must be identical.
* ``sample_scenes/s2_l1c_virginia_crop`` and, from ``../shared/data`` (or
  ``$EOTRIAGE_SHARED_DATA``), ``s2_l1c_virginia`` (no fire: 0 fire features expected).
* ``../shared/data/s2_fire/G90292`` (the original folder, with an ENVI copy and derived masks that
  must be ignored): the same 12 clusters as the sample.
* The sen2ships port scenes have no B12, so the fire detector cannot run on them: they are
  listed as "not applicable", from their bands.

Missing shared data only skips its rows (the reason is in the table).  Results go to the section
"## Active fire on real scenes" of ``benchmarks/RESULTS.md`` (other sections are kept) and to
``benchmarks/results_fire.json``.

Exit status: 0 when every result is complete and well formed and every hard expectation holds
(all 12 reference clusters found, in the sample and the shared copy alike; no fire on a no-fire
scene; identical detections at every tile size); 1 otherwise (then RESULTS.md and
results_fire.json are left untouched and the partial figures go to
``benchmarks/_work/last_failed_fire.json``).  Timings never fail the run.

Usage::

    .venv/bin/python benchmarks/bench_fire.py
    .venv/bin/python benchmarks/bench_fire.py --shared-data /path/to/shared/data
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from results_io import (
    BENCH_DIR,
    REPO,
    BenchError,
    code_fingerprint,
    command_line,
    default_shared,
    machine_facts,
    publish,
    section_header,
    software_facts,
)

SECTION = "## Active fire on real scenes"
RESULTS_JSON = BENCH_DIR / "results_fire.json"
WORK = BENCH_DIR / "_work"
SAMPLES = REPO / "sample_scenes"
FIRE_SAMPLE = "s2_fire_G90292"
REFERENCE_CSV = "fire_pixels_swir_test.csv"
REFERENCE_CLUSTERS = 12
REFERENCE_PIXELS = 105
TILE_SIZES = (64, 128, 256, 1024)
#: tile size of the main run of every scene (the library default)
MAIN_TILE_SIZE = 1024
SHIP_PORTS = ("busan", "casablanca", "honolulu")

Box = tuple[int, int, int, int, int]  # row_min, col_min, row_max, col_max, pixel_count


def show(path: Path) -> str:
    """``path`` relative to the repository (``sample_scenes/...``, ``../shared/...``) when it is
    inside the repository or its parent folder, else absolute."""
    p = path.resolve()
    if p.is_relative_to(REPO):
        return str(p.relative_to(REPO))
    if p.is_relative_to(REPO.parent):
        return os.path.relpath(p, REPO)
    return str(p)


@dataclass
class TileRun:
    tile_size: int
    overlap: int
    tiles: int
    wall_s: float
    fire_features: int
    hot_pixels: int
    boxes: list[list[int]]
    #: same detection boxes and pixel counts as the main run (tile size MAIN_TILE_SIZE)
    identical: bool = True


@dataclass
class ReferenceEval:
    reference_csv: str
    reference_clusters: int
    reference_pixels: int
    clusters_found: int
    missed_clusters: list[int]
    false_clusters: int
    #: sum of ``pixel_count`` over the detections of the run
    hot_pixels_detected: int
    #: hot pixels of ``FireDetector.fire_mask`` over the whole scene as one tile
    mask_pixels: int
    true_positive_pixels: int
    #: None when fire_mask flags no pixel
    pixel_precision: float | None
    pixel_recall: float


@dataclass
class SceneRow:
    scene: str
    role: str  # "fire reference" | "no fire" | "ships (no fire test)"
    #: "ok", "failed", "skipped" or "not applicable"
    status: str
    reason: str = ""
    expected: str = ""
    bands: list[str] = field(default_factory=list)
    #: files the bands were read from (names, in band order, without repeats)
    band_files: list[str] = field(default_factory=list)
    sensor: str = ""
    scaling: str = ""
    width: int = 0
    height: int = 0
    ground_res_m: float = 0.0
    pixels_processed: int = 0
    km2: float = 0.0
    tile_size: int = 0
    tiles: int = 0
    wall_s: float | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    fire_features: int | None = None
    hot_pixels: int | None = None
    boxes: list[list[int]] = field(default_factory=list)
    reference: ReferenceEval | None = None
    tile_sweep: list[TileRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def read_reference(csv_path: Path) -> dict[int, set[tuple[int, int]]]:
    """cluster id -> {(row, col)} from the reference CSV; checks 12 clusters / 105 pixels."""
    if not csv_path.is_file():
        raise BenchError(f"{show(csv_path)}: missing")
    clusters: dict[int, set[tuple[int, int]]] = {}
    try:
        with csv_path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    key = int(row["cluster"])
                    px = (int(row["row"]), int(row["col"]))
                except (KeyError, TypeError, ValueError):
                    raise BenchError(f"{show(csv_path)} line {i}: bad row/col/cluster") from None
                clusters.setdefault(key, set()).add(px)
    except OSError as exc:
        raise BenchError(f"{show(csv_path)}: unreadable ({exc})") from None
    n_px = sum(map(len, clusters.values()))
    if len(clusters) != REFERENCE_CLUSTERS or n_px != REFERENCE_PIXELS:
        raise BenchError(
            f"{show(csv_path)}: {len(clusters)} clusters / {n_px} pixels, expected "
            f"{REFERENCE_CLUSTERS} / {REFERENCE_PIXELS}"
        )
    return clusters


def _int_measure(measures: Any, key: str, i: int) -> int:
    v = measures.get(key) if hasattr(measures, "get") else None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise BenchError(f"detection {i}: measure {key} is {v!r}, expected an integer")
    if int(v) != v:
        raise BenchError(f"detection {i}: measure {key} is {v!r}, expected an integer")
    return int(v)


def detection_boxes(result: Any) -> list[Box]:
    """Sorted pixel boxes of the fire detections; BenchError when a measure is missing."""
    boxes: list[Box] = []
    for i, d in enumerate(result.detections):
        if d.cls != "fire":
            continue
        m = d.measures
        box = (
            _int_measure(m, "row_min", i),
            _int_measure(m, "col_min", i),
            _int_measure(m, "row_max", i),
            _int_measure(m, "col_max", i),
            _int_measure(m, "pixel_count", i),
        )
        if box[0] > box[2] or box[1] > box[3] or box[4] < 1:
            raise BenchError(f"detection {i}: malformed box {box}")
        if box[4] > (box[2] - box[0] + 1) * (box[3] - box[1] + 1):
            raise BenchError(f"detection {i}: pixel_count {box[4]} exceeds its box {box[:4]}")
        boxes.append(box)
    return sorted(boxes)


def check_result(result: Any, scene: Any) -> None:
    """A run that is incomplete or inconsistent is an error, whatever it detected."""
    errors: list[str] = []
    if not result.ok:
        failures = "; ".join(f"{f.tile_id}: {f.cause}" for f in result.failures[:3])
        errors.append(f"run not ok: problems={list(result.problems)!r} failures=[{failures}]")
    if result.detectors.get("fire") != "ran":
        errors.append(f"fire detector status {result.detectors.get('fire')!r}")
    expected_px = scene.grid.width * scene.grid.height
    if result.info.get("pixels_processed") != expected_px:
        errors.append(f"pixels_processed {result.info.get('pixels_processed')!r} != {expected_px}")
    if result.counts().get("fire") != sum(1 for d in result.detections if d.cls == "fire"):
        errors.append("counts() disagrees with the detections")
    if errors:
        raise BenchError("; ".join(errors))


def timed_run(scene: Any, tile_size: int) -> tuple[Any, float]:
    import pipeline

    settings = pipeline.Settings(tile_size=tile_size)
    t0 = time.perf_counter()
    result = pipeline.run_scene(scene.path, settings)
    wall = time.perf_counter() - t0
    check_result(result, scene)
    return result, wall


def fill_from_scene(row: SceneRow, scene: Any) -> None:
    row.bands = [b.name for b in scene.bands]
    row.band_files = list(dict.fromkeys(b.path.name for b in scene.bands))
    row.sensor = scene.profile.name
    row.scaling = scene.scaling.describe()
    row.width, row.height = scene.grid.width, scene.grid.height
    row.ground_res_m = round(scene.grid.ground_res_m, 3)


def fill_from_run(row: SceneRow, scene: Any, result: Any, wall: float) -> list[Box]:
    row.tile_size = int(result.info["tile_size"])
    row.tiles = int(result.tiles_total)
    row.pixels_processed = int(result.info["pixels_processed"])
    row.km2 = round(row.pixels_processed * scene.grid.pixel_area_m2 / 1e6, 3)
    row.wall_s = round(wall, 3)
    row.timings_s = {k: round(float(v), 4) for k, v in result.timings_s.items()}
    boxes = detection_boxes(result)
    row.boxes = [list(b) for b in boxes]
    row.fire_features = len(boxes)
    row.hot_pixels = sum(b[4] for b in boxes)
    return boxes


def whole_scene_mask(scene: Any) -> set[tuple[int, int]]:
    """Exact hot pixels of ``FireDetector.fire_mask`` with the whole scene read as one tile."""
    import numpy as np

    from pipeline import Settings
    from pipeline.core.ingest import SceneReader
    from pipeline.core.tiling import tile_grid
    from pipeline.detectors.fire import FireDetector

    det = FireDetector(Settings())
    edge = max(scene.grid.width, scene.grid.height, 64)
    tiles = tile_grid(scene.grid.width, scene.grid.height, edge, 0)
    if len(tiles) != 1:
        raise BenchError(f"expected one tile over the whole scene, got {len(tiles)}")
    with SceneReader(scene) as reader:
        data = reader.read(tiles[0], det.band_names(scene))
    b22, b16 = (data.bands[n] for n in det.band_names(scene))
    fire, _ = det.fire_mask(b22, b16, data.valid.astype(np.float32), det.context_px(scene.grid))
    return {(int(r), int(c)) for r, c in np.argwhere(fire)}


def evaluate_reference(
    boxes: Sequence[Box],
    mask: set[tuple[int, int]],
    ref: dict[int, set[tuple[int, int]]],
    csv_path: Path,
) -> ReferenceEval:
    def inside(px: tuple[int, int], b: Box) -> bool:
        return b[0] <= px[0] <= b[2] and b[1] <= px[1] <= b[3]

    found = [k for k, pxs in ref.items() if any(inside(p, b) for b in boxes for p in pxs)]
    all_ref = set().union(*ref.values())
    false = sum(1 for b in boxes if not any(inside(p, b) for p in all_ref))
    tp = len(mask & all_ref)
    return ReferenceEval(
        reference_csv=show(csv_path),
        reference_clusters=len(ref),
        reference_pixels=len(all_ref),
        clusters_found=len(found),
        missed_clusters=sorted(set(ref) - set(found)),
        false_clusters=false,
        hot_pixels_detected=sum(b[4] for b in boxes),
        mask_pixels=len(mask),
        true_positive_pixels=tp,
        pixel_precision=round(tp / len(mask), 4) if mask else None,
        pixel_recall=round(tp / len(all_ref), 4),
    )


# --------------------------------------------------------------------------- scenes


def _some(boxes: Sequence[Sequence[int]], n: int = 5) -> str:
    """The first ``n`` boxes, for an error message."""
    more = f" and {len(boxes) - n} more" if len(boxes) > n else ""
    return f"{[list(b) for b in boxes[:n]]}{more}"


def bench_fire_scene(
    path: Path, label: str, sweep: bool, same_as: list[list[int]] | None = None
) -> SceneRow:
    """A scene with the G90292 reference: clusters, pixels, and (``sweep``) tile sizes.

    ``same_as``: the sample scene's detection boxes, which this scene must reproduce.
    """
    import pipeline

    expected = f"all {REFERENCE_CLUSTERS} reference clusters"
    if same_as is not None:
        expected += ", same detections as the sample"
    row = SceneRow(scene=label, role="fire reference", status="failed", expected=expected)
    try:
        csv_path = path / REFERENCE_CSV
        ref = read_reference(csv_path)
        scene = pipeline.open_scene(path)
        fill_from_scene(row, scene)
        result, wall = timed_run(scene, MAIN_TILE_SIZE)
        boxes = fill_from_run(row, scene, result, wall)
        mask = whole_scene_mask(scene)
        row.reference = ev = evaluate_reference(boxes, mask, ref, csv_path)
        if ev.clusters_found != REFERENCE_CLUSTERS:
            row.errors.append(
                f"{ev.clusters_found}/{REFERENCE_CLUSTERS} reference clusters found "
                f"(missed: {ev.missed_clusters})"
            )
        if same_as is not None and row.boxes != same_as:
            only_here = [b for b in row.boxes if b not in same_as]
            only_sample = [b for b in same_as if b not in row.boxes]
            row.errors.append(
                f"detections differ from the sample scene's: only here {_some(only_here)}, "
                f"only in the sample {_some(only_sample)}"
            )
        if sweep:
            for ts in TILE_SIZES:
                r, w = (result, wall) if ts == MAIN_TILE_SIZE else timed_run(scene, ts)
                tb = detection_boxes(r)
                run = TileRun(
                    tile_size=ts,
                    overlap=int(r.info["overlap"]),
                    tiles=int(r.tiles_total),
                    wall_s=round(w, 3),
                    fire_features=len(tb),
                    hot_pixels=sum(b[4] for b in tb),
                    boxes=[list(b) for b in tb],
                )
                run.identical = run.boxes == row.boxes
                row.tile_sweep.append(run)
                print(
                    f"  tile {ts:>4}: {run.tiles:>3} tiles, {run.fire_features} features, "
                    f"{run.hot_pixels} px, {run.wall_s:.3f} s",
                    flush=True,
                )
            differ = [t.tile_size for t in row.tile_sweep if not t.identical]
            if differ:
                row.errors.append(
                    f"detections at tile size(s) {differ} differ from tile size {MAIN_TILE_SIZE}"
                )
    except (BenchError, pipeline.EotriageError) as exc:
        row.errors.append(f"{type(exc).__name__}: {exc}")
    row.status = "ok" if not row.errors else "failed"
    return row


def bench_no_fire_scene(path: Path, label: str) -> SceneRow:
    import pipeline

    row = SceneRow(scene=label, role="no fire", status="failed", expected="0 fire features")
    try:
        scene = pipeline.open_scene(path)
        fill_from_scene(row, scene)
        result, wall = timed_run(scene, MAIN_TILE_SIZE)
        fill_from_run(row, scene, result, wall)
        if row.fire_features:
            row.errors.append(
                f"{row.fire_features} fire feature(s) on a scene without fire "
                f"(boxes row_min, col_min, row_max, col_max, pixels: {_some(row.boxes)})"
            )
    except (BenchError, pipeline.EotriageError) as exc:
        row.errors.append(f"{type(exc).__name__}: {exc}")
    row.status = "ok" if not row.errors else "failed"
    return row


def bench_ship_scene(path: Path, label: str) -> SceneRow:
    """Bands only: the fire test needs B12 (and B11), which these port scenes do not have."""
    import pipeline
    from pipeline.detectors.fire import FireDetector

    row = SceneRow(
        scene=label, role="ships (no fire test)", status="failed", expected="not applicable"
    )
    try:
        scene = pipeline.open_scene(path)
        fill_from_scene(row, scene)
        missing = [
            scene.profile.role_to_band().get(r, r)
            for r in FireDetector.roles
            if not scene.has_roles(r)
        ]
        if missing:
            row.status = "not applicable"
            row.reason = f"no {', '.join(missing)}"
            return row
        # Unexpected: the scene has the SWIR bands, so the detector does run (no expectation).
        result, wall = timed_run(scene, MAIN_TILE_SIZE)
        fill_from_run(row, scene, result, wall)
        row.status = "ok"
        row.reason = "has the SWIR bands after all; ran without an expectation"
    except (BenchError, pipeline.EotriageError) as exc:
        row.errors.append(f"{type(exc).__name__}: {exc}")
    return row


def skipped(label: str, role: str, expected: str, reason: str) -> SceneRow:
    return SceneRow(scene=label, role=role, status="skipped", reason=reason, expected=expected)


def run_all(shared: Path) -> list[SceneRow]:
    rows: list[SceneRow] = []

    def log(row: SceneRow) -> None:
        what = row.reason if row.status != "ok" or row.reason else ""
        figures = (
            f"{row.fire_features} fire features, {row.hot_pixels} px, {row.wall_s:.3f} s"
            if row.wall_s is not None
            else ""
        )
        msg = "; ".join(x for x in (figures, what, *row.errors) if x)
        print(f"[{row.scene}] {row.status.upper()}: {msg}", flush=True)
        rows.append(row)

    print(f"[{FIRE_SAMPLE}] tile sizes {', '.join(map(str, TILE_SIZES))}", flush=True)
    sample = bench_fire_scene(SAMPLES / FIRE_SAMPLE, f"sample_scenes/{FIRE_SAMPLE}", sweep=True)
    log(sample)
    shared_ok = shared.is_dir()
    no_shared = f"shared data not found at {shared} (set EOTRIAGE_SHARED_DATA)"
    label = f"{show(shared)}/s2_fire/G90292"
    exp = f"all {REFERENCE_CLUSTERS} reference clusters, same detections as the sample"
    if not shared_ok:
        log(skipped(label, "fire reference", exp, no_shared))
    elif not (shared / "s2_fire" / "G90292").is_dir():
        log(skipped(label, "fire reference", exp, f"{label} not found"))
    else:
        same = sample.boxes if sample.status == "ok" else None
        log(bench_fire_scene(shared / "s2_fire" / "G90292", label, sweep=False, same_as=same))
    log(bench_no_fire_scene(SAMPLES / "s2_l1c_virginia_crop", "sample_scenes/s2_l1c_virginia_crop"))
    label = f"{show(shared)}/s2_l1c_virginia"
    if not shared_ok:
        log(skipped(label, "no fire", "0 fire features", no_shared))
    elif not (shared / "s2_l1c_virginia").is_dir():
        log(skipped(label, "no fire", "0 fire features", f"{label} not found"))
    else:
        log(bench_no_fire_scene(shared / "s2_l1c_virginia", label))
    for port in SHIP_PORTS:
        label = f"{show(shared)}/sen2ships/{port}"
        if not shared_ok:
            log(skipped(label, "ships (no fire test)", "not applicable", no_shared))
        elif not (shared / "sen2ships" / port).is_dir():
            log(skipped(label, "ships (no fire test)", "not applicable", f"{label} not found"))
        else:
            log(bench_ship_scene(shared / "sen2ships" / port, label))
    for port in SHIP_PORTS:
        path = SAMPLES / f"sen2ships_{port}"
        if path.is_dir():
            log(bench_ship_scene(path, f"sample_scenes/sen2ships_{port}"))
    return rows


# --------------------------------------------------------------------------- report


def _fmt_wall(row: SceneRow) -> str:
    return f"{row.wall_s:.3f}" if row.wall_s is not None else "–"


def render_section(doc: dict[str, Any], rows: Sequence[SceneRow]) -> str:
    lines = [
        *section_header(doc, SECTION),
        "Each scene runs in this process as `pipeline.run_scene(path, pipeline.Settings("
        f"tile_size={MAIN_TILE_SIZE}))` (default settings: overlap 64 px, fire thresholds from "
        f"the model manifest, {doc['settings']['threads']} threads).  Wall time is that call "
        "(open, ingest, detect, vectorise; no output files); the ONNX session was created "
        f"beforehand ({doc['model_load_s']:.2f} s).  Each wall time is one run; the first "
        "run_scene call of the process (the sample scene at tile size 1024) also pays "
        "onnxruntime's first-inference warm-up.  km² = pixels processed × ground "
        "resolution² of the scene grid.  Fire features = fire detections.",
        "",
        "| scene | bands | grid (px @ m) | km² | tiles | run_scene wall (s) "
        "| fire features | expected | result |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        grid = f"{r.width} × {r.height} @ {r.ground_res_m:g}" if r.width else "–"
        km2 = f"{r.km2:.2f}" if r.pixels_processed else "–"
        tiles = str(r.tiles) if r.tiles else "–"
        feats = str(r.fire_features) if r.fire_features is not None else "–"
        bands = " ".join(r.bands) if r.bands else "–"
        if len(r.band_files) == 1:
            bands += f" (all from `{r.band_files[0]}`)"
        if r.status == "ok":
            res = "OK" + (f" ({r.reason})" if r.reason else "")
        elif r.status == "failed":
            res = "**FAILED**: " + "; ".join(r.errors)
        else:
            res = f"{r.status} ({r.reason})"
        lines.append(
            f"| `{r.scene}` | {bands} | {grid} | {km2} | {tiles} | {_fmt_wall(r)} | {feats} "
            f"| {r.expected} | {res} |"
        )
    refs = [r for r in rows if r.reference is not None]
    if refs:
        lines += [
            "",
            "Against the reference hot pixels of G90292 (`fire_pixels_swir_test.csv`: pixels "
            "passing B12/B11 > 1.3 and B12 > 0.3, 8-connected clusters).  A reference cluster "
            "is found when a detection's pixel box (`row_min`..`row_max`, `col_min`..`col_max`) "
            "contains one of its pixels; a false cluster is a detection whose box contains no "
            "reference pixel.  Hot pixels detected = sum of `pixel_count`.  Pixel precision and "
            "recall compare the exact hot-pixel set of `FireDetector.fire_mask` over the whole "
            "scene read as one tile with the reference pixels.",
            "",
            "| scene | reference clusters | clusters found | false clusters "
            "| hot pixels detected / reference | fire_mask pixels | pixel precision "
            "| pixel recall |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in refs:
            ev = r.reference
            assert ev is not None
            precision = "–" if ev.pixel_precision is None else f"{ev.pixel_precision:.3f}"
            lines.append(
                f"| `{r.scene}` | {ev.reference_clusters} | {ev.clusters_found} "
                f"| {ev.false_clusters} | {ev.hot_pixels_detected} / {ev.reference_pixels} "
                f"| {ev.mask_pixels} | {precision} | {ev.pixel_recall:.3f} |"
            )
    sweeps = [r for r in rows if r.tile_sweep]
    for r in sweeps:
        lines += [
            "",
            f"Tile size on `{r.scene}` (`Settings(tile_size=N)`, overlap 64 px; identical = "
            f"same detection boxes and pixel counts as tile size {MAIN_TILE_SIZE}):",
            "",
            "| tile size (px) | tiles | run_scene wall (s) | fire features | hot pixels "
            "| identical |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for t in r.tile_sweep:
            same = "yes" if t.identical else "**no**"
            lines.append(
                f"| {t.tile_size} | {t.tiles} | {t.wall_s:.3f} | {t.fire_features} "
                f"| {t.hot_pixels} | {same} |"
            )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--shared-data",
        type=Path,
        default=None,
        help="folder of the shared real data (default: $EOTRIAGE_SHARED_DATA or ../shared/data)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="accepted for `eotriage bench --quick`; this benchmark is already quick (seconds)",
    )
    args = ap.parse_args(argv[1:])
    shared: Path = args.shared_data or default_shared()
    WORK.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    software = software_facts()  # before the runs: the code state they measure

    import pipeline
    from pipeline.detectors.fire import FireDetector

    settings = pipeline.Settings()
    t0 = time.perf_counter()
    model = FireDetector(settings).model  # creates and caches the ONNX session
    model_load = time.perf_counter() - t0
    models = f"{model.info.name} {model.info.version} {model.info.sha256[:12]}"

    rows = run_all(shared)
    errors = [f"{r.scene}: {e}" for r in rows for e in r.errors]
    if code_fingerprint() != software["code_sha256"]:
        errors.append(
            "pipeline/ or models/ changed while the benchmark ran; results mix code "
            "versions, re-run on a quiet tree"
        )
    ref_rows = [r for r in rows if r.role == "fire reference" and r.status != "skipped"]
    if not ref_rows or not any(r.scene.startswith("sample_scenes/") for r in ref_rows):
        errors.append("the sample fire scene produced no result")
    doc: dict[str, Any] = {
        "benchmark": "active fire on real scenes",
        "command": command_line(argv, "benchmarks/bench_fire.py"),
        "date_utc": date,
        "machine": machine_facts(),
        "software": software,
        "models": models,
        "model_load_s": round(model_load, 3),
        "settings": {
            "tile_size": MAIN_TILE_SIZE,
            "tile_sizes_swept": list(TILE_SIZES),
            "overlap": settings.overlap,
            "threads": settings.threads,
            "fire": asdict(settings.fire),
            "shared_data": str(shared),
            "shared_data_found": shared.is_dir(),
        },
        "results": [asdict(r) for r in rows],
        "total_benchmark_s": round(time.perf_counter() - t_start, 2),
    }
    if errors:
        doc["errors"] = errors
    return publish(
        doc,
        lambda: render_section(doc, rows),
        SECTION,
        RESULTS_JSON,
        WORK / "last_failed_fire.json",
    )


if __name__ == "__main__":
    raise SystemExit(main())
