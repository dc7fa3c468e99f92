#!/usr/bin/env python3
"""Peak memory and throughput of ``eotriage run`` versus scene size.

Claim under test: a 10,980 x 10,980 px 13-band Sentinel-2 L1C scene runs with the same peak
memory as a 2,000 x 2,000 px one (ingest is tile by tile, so memory is bounded by one tile).

For each size a synthetic scene (``pipeline.testing.synthetic.generate_scene``, uncompressed
GeoTIFFs, known fires in ``truth.json``) is generated into ``benchmarks/_work/`` (or reused when its
``truth.json`` matches size and seed), then ``eotriage run SCENE --out OUT --no-progress`` runs
as a child process.  The child's own peak RSS comes from ``os.wait4`` (its rusage, not the
cumulative ``RUSAGE_CHILDREN`` maximum).  Recorded per size: peak RSS, wall time, 10 m megapixels
per second, the per-stage timings of ``run.json`` and the fires found against the truth.

Results go to the section "## Memory and throughput vs scene size" of ``benchmarks/RESULTS.md``
(other sections are kept) and to ``benchmarks/results_memory.json``.

Exit status: 0 when every size produced complete, well-formed results with every truth fire
found; 1 otherwise (then RESULTS.md and results_memory.json are left untouched and the partial
figures go to ``benchmarks/_work/last_failed.json``).  Timings never fail the run.

Usage::

    .venv/bin/python benchmarks/bench_memory.py                 # 1000, 2000, 4000, 10980 px
    .venv/bin/python benchmarks/bench_memory.py --quick         # 500, 1000, 2000 px (CI)
    .venv/bin/python benchmarks/bench_memory.py --sizes 2000,10980 --tile-size 512
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import threading
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
    machine_facts,
    publish,
    section_header,
    software_facts,
)

DEFAULT_SIZES = (1000, 2000, 4000, 10980)
QUICK_SIZES = (500, 1000, 2000)
REFERENCE_SIZE = 2000
#: Sentinel-2 MSI acquisition rate of one 10 m band: 290 km swath / 10 m = 29,000 px per line,
#: ~665 lines/s at ~6.65 km/s ground speed -> ~19.3 Mpx/s.
S2_MPX_PER_S = 19.3
MATCH_RADIUS_M = 30.0
SECTION = "## Memory and throughput vs scene size"
RESULTS_JSON = BENCH_DIR / "results_memory.json"
WORK = BENCH_DIR / "_work"
STAGES = ("load_models", "ingest", "detect", "vectorise", "write", "total")
MIB = 1024.0 * 1024.0


@dataclass
class SizeResult:
    size: int
    megapixels_10m: float
    bands: int
    tiles: int
    overlap_px: int
    peak_rss_mib: float
    wall_s: float
    mpx_per_s: float
    realtime_factor: float
    fires_truth: int
    fires_found: int
    fires_matched: int
    max_match_distance_m: float
    timings_s: dict[str, float]
    scene: str
    scene_bytes: int
    scene_reused: bool
    generate_s: float | None
    exit_code: int
    #: detector model name -> "version sha256[:12]", from run.json
    models: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- scenes


def fires_for_size(size: int) -> int:
    """Fire clusters per scene: about one per 200 px of edge, at least 3."""
    return max(3, size // 200)


def scene_dir(size: int, seed: int) -> Path:
    return WORK / f"syn_s2_{size}_f{fires_for_size(size)}_s{seed}"


def expected_scene_bytes(size: int) -> int:
    """Approximate bytes of the uncompressed scene (256 x 256 uint16 blocks, 13 bands)."""
    from pipeline.sensors import PROFILES

    total = 0
    for spec in PROFILES["sentinel2-l1c"].bands:
        f = int(round(spec.resolution_m / 10.0))
        edge = math.ceil(math.ceil(size / f) / 256) * 256
        total += edge * edge * 2
    return total


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.is_dir() else 0


def _scene_matches(path: Path, size: int, seed: int) -> bool:
    from pipeline.sensors import PROFILES
    from pipeline.testing.synthetic import GENERATOR_VERSION

    truth_path = path / "truth.json"
    if not truth_path.is_file():
        return False
    try:
        truth = json.loads(truth_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    names = list(PROFILES["sentinel2-l1c"].band_names)
    return (
        truth.get("generator") == GENERATOR_VERSION
        and truth.get("width") == size
        and truth.get("height") == size
        and truth.get("seed") == seed
        and truth.get("offset_baseline") is False
        and truth.get("bands") == names
        and all((path / f"{n}.tif").is_file() for n in names)
    )


def ensure_scene(size: int, seed: int, regenerate: bool) -> tuple[Path, bool, float | None]:
    """Generate the scene for ``size`` (or reuse it): (path, reused, seconds spent generating)."""
    from pipeline.testing.synthetic import generate_scene

    path = scene_dir(size, seed)
    if not regenerate and _scene_matches(path, size, seed):
        print(
            f"[{size}] reusing {path.relative_to(REPO)} ({_dir_bytes(path) / MIB:.0f} MiB)",
            flush=True,
        )
        return path, True, None
    if path.exists():
        shutil.rmtree(path)
    expected = expected_scene_bytes(size)
    n_fires = fires_for_size(size)
    print(
        f"[{size}] generating {path.relative_to(REPO)}: {size} x {size} px, 13 bands, "
        f"{n_fires} fires, ~{expected / MIB:.0f} MiB uncompressed",
        flush=True,
    )
    stop = threading.Event()

    def report() -> None:
        t0 = time.monotonic()
        while not stop.wait(15.0):
            done = _dir_bytes(path)
            print(
                f"[{size}]   ... {done / MIB:.0f}/{expected / MIB:.0f} MiB written "
                f"({time.monotonic() - t0:.0f} s)",
                flush=True,
            )

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    t0 = time.perf_counter()
    try:
        # truth.json is written last, so an interrupted generation is never reused
        generate_scene(path, size, n_fires=n_fires, seed=seed, compress=None)
    finally:
        stop.set()
        reporter.join()
    took = time.perf_counter() - t0
    print(f"[{size}] generated in {took:.1f} s ({_dir_bytes(path) / MIB:.0f} MiB)", flush=True)
    return path, False, took


# --------------------------------------------------------------------------- child runs


def eotriage_command() -> list[str]:
    """The ``eotriage`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "eotriage"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "pipeline.cli"]


def run_measured(cmd: Sequence[str], log_path: Path) -> tuple[int, float, float]:
    """Run ``cmd``; return (exit code, wall seconds, the child's own peak RSS in MiB).

    ``os.wait4`` reaps the child and returns its rusage, so ``ru_maxrss`` is this child's peak
    (KiB on Linux), not the maximum over every child this process ever had.
    """
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped by wait4; tell Popen so it does not try again
    return code, wall, rusage.ru_maxrss * 1024.0 / MIB


def _number(obj: Any, what: str) -> float:
    if isinstance(obj, bool) or not isinstance(obj, int | float) or not math.isfinite(obj):
        raise BenchError(f"{what}: expected a finite number, got {obj!r}")
    return float(obj)


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise BenchError(f"{path.relative_to(REPO)}: missing")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path.relative_to(REPO)}: unreadable ({exc})") from None


def check_run(out: Path, scene: Path, size: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Validate ``run.json``; return it and its stage timings."""
    run_path = out / scene.name / "run.json"
    run = _load_json(run_path)
    if not isinstance(run, dict):
        raise BenchError(f"{run_path}: not a JSON object")
    errors: list[str] = []
    if run.get("ok") is not True:
        errors.append(f"run.json ok={run.get('ok')!r} problems={run.get('problems')!r}")
    tiles = run.get("tiles", {})
    if not isinstance(tiles, dict) or tiles.get("failed") != 0:
        errors.append(f"run.json tiles: {tiles!r}")
    timings_raw = run.get("timings_s")
    if not isinstance(timings_raw, dict):
        raise BenchError(f"{run_path}: timings_s missing or not an object")
    timings: dict[str, float] = {}
    for stage in STAGES:
        v = _number(timings_raw.get(stage), f"{run_path.name} timings_s.{stage}")
        if v < 0:
            errors.append(f"timings_s.{stage} is negative ({v})")
        timings[stage] = v
    for key, v in timings_raw.items():  # per-detector detect times (detect_fire, ...)
        if key.startswith("detect_") and isinstance(v, int | float):
            timings[key] = float(v)
    report = run.get("report")
    if isinstance(report, dict) and isinstance(report.get("latency_s"), int | float):
        timings["report"] = float(report["latency_s"])
    info = run.get("input")
    grid = info.get("grid") if isinstance(info, dict) else None
    if not isinstance(info, dict) or not isinstance(grid, dict):
        raise BenchError(f"{run_path}: input.grid missing")
    if grid.get("width") != size or grid.get("height") != size:
        errors.append(
            f"grid is {grid.get('width')} x {grid.get('height')}, expected {size} x {size}"
        )
    if info.get("pixels_processed") != size * size:
        errors.append(f"pixels_processed {info.get('pixels_processed')!r} != {size * size}")
    if not isinstance(info.get("bands"), dict):
        errors.append("input.bands missing")
    if errors:
        raise BenchError("; ".join(errors))
    return run, timings


def match_fires(out: Path, scene: Path, run: dict[str, Any]) -> tuple[int, int, int, float]:
    """(truth fires, fire detections, truth fires matched, largest match distance in m), by
    :func:`pipeline.evaluation.scoring.match_points` (greedy, closest pairs first).

    Every truth fire must have its own detection within ``MATCH_RADIUS_M`` and every detection
    must match a truth fire; otherwise :class:`BenchError`.
    """
    from pipeline.evaluation.scoring import match_points

    truth_doc = _load_json(scene / "truth.json")
    fires = truth_doc.get("fires") if isinstance(truth_doc, dict) else None
    if not isinstance(fires, list) or not fires:
        raise BenchError(f"{scene.name}/truth.json: no fires listed")
    gj_path = out / scene.name / "detections.geojson"
    gj = _load_json(gj_path)
    if not isinstance(gj, dict) or gj.get("type") != "FeatureCollection":
        raise BenchError(f"{gj_path.name}: not a GeoJSON FeatureCollection")
    found: list[tuple[float, float]] = []
    for i, feat in enumerate(gj.get("features", [])):
        props = feat.get("properties", {}) if isinstance(feat, dict) else {}
        if props.get("class") != "fire":
            continue
        found.append(
            (
                _number(props.get("centroid_lon"), f"feature {i} centroid_lon"),
                _number(props.get("centroid_lat"), f"feature {i} centroid_lat"),
            )
        )
    counts = run.get("counts", {})
    if counts.get("fire") != len(found):
        raise BenchError(
            f"run.json counts fire={counts.get('fire')!r} but "
            f"detections.geojson has {len(found)} fire features"
        )
    truth = [
        (_number(f.get("lon"), "truth lon"), _number(f.get("lat"), "truth lat")) for f in fires
    ]
    matches = match_points(truth, found, MATCH_RADIUS_M)
    matched = {i for i, _, _ in matches}
    used = {j for _, j, _ in matches}
    worst = max((d for _, _, d in matches), default=0.0)
    missing = [
        f"truth fire {fires[i].get('id')} at ({lon:.5f}, {lat:.5f}) not found"
        for i, (lon, lat) in enumerate(truth)
        if i not in matched
    ]
    extra = len(found) - len(used)
    if missing or extra:
        msg = "; ".join(missing)
        if extra:
            msg += ("; " if msg else "") + f"{extra} detection(s) match no truth fire"
        raise BenchError(msg)
    return len(fires), len(found), len(used), worst


#: pixel of the synthetic cropland raster (m): every ~90 m unit of land counts as cropland
CROPLAND_RES_M = 30.0


def write_cropland(scene: Path, size: int) -> Path:
    """A cropland raster over the scene's land (the synthetic coast puts water on the east
    quarter), so that crop stress, which runs only inside a cropland layer, runs over it."""
    import numpy as np
    import rasterio
    from affine import Affine

    n = int(np.ceil(size * 10.0 / CROPLAND_RES_M))
    path = scene.parent / f"{scene.name}_cropland.tif"
    if path.is_file():
        return path
    with rasterio.open(scene / "B04.tif") as ds:
        crs, t = ds.crs, ds.transform
    land = np.zeros((n, n), np.uint8)
    land[:, : int(n * 0.7)] = 1
    with rasterio.open(
        path, "w", driver="GTiff", width=n, height=n, count=1, dtype="uint8", crs=crs,
        transform=Affine(CROPLAND_RES_M, 0, t.c, 0, -CROPLAND_RES_M, t.f), compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(land, 1)
    return path


def bench_size(size: int, seed: int, tile_size: int, regenerate: bool) -> SizeResult:
    scene, reused, gen_s = ensure_scene(size, seed, regenerate)
    cropland = write_cropland(scene, size)
    out = WORK / "out"
    shutil.rmtree(out / scene.name, ignore_errors=True)  # never read a stale run.json
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        *eotriage_command(),
        "run",
        str(scene),
        "--out",
        str(out),
        "--no-progress",
        "--tile-size",
        str(tile_size),
        "--crop-mask",
        str(cropland),
        "--crop-history",
        str(WORK / f"crop_history_{size}"),
    ]
    shutil.rmtree(WORK / f"crop_history_{size}", ignore_errors=True)
    print(f"[{size}] running: {shlex.join(cmd)}", flush=True)
    code, wall, rss = run_measured(cmd, WORK / f"run_{size}.log")
    mpx = size * size / 1e6
    result = SizeResult(
        size=size,
        megapixels_10m=round(mpx, 3),
        bands=0,
        tiles=0,
        overlap_px=0,
        peak_rss_mib=round(rss, 1),
        wall_s=round(wall, 2),
        mpx_per_s=round(mpx / wall, 3),
        realtime_factor=round(mpx / wall / S2_MPX_PER_S, 3),
        fires_truth=0,
        fires_found=0,
        fires_matched=0,
        max_match_distance_m=0.0,
        timings_s={},
        scene=scene.name,
        scene_bytes=_dir_bytes(scene),
        scene_reused=reused,
        generate_s=None if gen_s is None else round(gen_s, 1),
        exit_code=code,
    )
    if code != 0:
        tail = (WORK / f"run_{size}.log").read_text(errors="replace").strip().splitlines()[-5:]
        result.errors.append(f"eotriage exited with {code}: {' | '.join(tail)}")
    try:
        run, timings = check_run(out, scene, size)
        result.timings_s = timings
        result.bands = len(run["input"]["bands"])
        result.tiles = int(run.get("tiles", {}).get("total", 0))
        result.overlap_px = int(run["input"].get("overlap", 0))
        models = run.get("models")
        if not isinstance(models, dict) or not models:
            raise BenchError("run.json: models missing")
        result.models = {
            name: f"{m.get('version')} {str(m.get('sha256'))[:12]}" for name, m in models.items()
        }
        if result.bands != 13:
            result.errors.append(f"scene has {result.bands} bands, expected 13")
        truth_n, found_n, matched, worst = match_fires(out, scene, run)
        result.fires_truth, result.fires_found, result.fires_matched = truth_n, found_n, matched
        result.max_match_distance_m = round(worst, 2)
    except BenchError as exc:
        result.errors.append(str(exc))
    status = "OK" if not result.errors else "FAILED: " + "; ".join(result.errors)
    print(
        f"[{size}] peak RSS {result.peak_rss_mib:.1f} MiB, wall {result.wall_s:.2f} s, "
        f"{result.mpx_per_s:.2f} Mpx/s, fires {result.fires_found}/{result.fires_truth} "
        f"-> {status}",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------- report


def reference_size(results: Sequence[SizeResult]) -> int:
    sizes = [r.size for r in results]
    return REFERENCE_SIZE if REFERENCE_SIZE in sizes else min(sizes)


def render_section(doc: dict[str, Any], results: Sequence[SizeResult]) -> str:
    ratio = doc["peak_rss_ratio"]
    lines = [
        *section_header(doc, SECTION),
        "Each scene is a synthetic 13-band Sentinel-2 L1C scene "
        "(`pipeline.testing.synthetic.generate_scene`, uncompressed tiled GeoTIFFs, bands at "
        "native "
        f"10/20/60 m), run as `eotriage run SCENE --out OUT --no-progress --tile-size "
        f"{doc['settings']['tile_size']} --crop-mask CROPLAND.tif --crop-history DIR` in its own "
        "process, with the default settings: the cloud screen, all three detectors (fire, ships, "
        "crop stress; CROPLAND.tif, a 30 m cropland raster over the western 70 % of the scene, "
        "its land, so that crop stress runs there; a fresh history per run) and the report "
        "written by the onboard LLM "
        "(gemma3-270m, loaded in the process), then compact.geojson and downlink.bin.  Peak RSS "
        "is that process's `ru_maxrss` from `os.wait4`, so it includes the LLM; wall time is the "
        "whole process (start-up, imports, ONNX and LLM load, run, report, writing); "
        "Mpx/s = size² / 10⁶ / wall.  Real-time factor = Mpx/s / "
        f"{S2_MPX_PER_S} (Sentinel-2 acquisition rate of one 10 m band).  Fires: detections "
        f"/ truth fires, every truth fire matched by centroid within {MATCH_RADIUS_M:.0f} m.  "
        "Scene files are in the page cache (just generated or re-read), so ingest is not "
        "disk-bound.",
        "",
        "| size (px) | 10 m Mpx | bands | peak RSS (MiB) | wall (s) | Mpx/s | real-time factor "
        "| fires found/truth |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.size:,} | {r.megapixels_10m:.2f} | {r.bands} | {r.peak_rss_mib:.1f} "
            f"| {r.wall_s:.2f} | {r.mpx_per_s:.2f} | {r.realtime_factor:.2f} "
            f"| {r.fires_found}/{r.fires_truth} |"
        )
    lines += [
        "",
        f"Peak-RSS ratio, {ratio['largest_size']:,} px / {ratio['reference_size']:,} px scene: "
        f"**{ratio['ratio']:.3f}** ({ratio['largest_mib']:.1f} / {ratio['reference_mib']:.1f} "
        "MiB).",
        "",
        f"Process baseline (`eotriage models verify`: imports + ONNX session, no scene): "
        f"{doc['baseline_rss_mib']:.1f} MiB peak RSS.",
        "",
        "Per-stage times from `OUT/<scene>/run.json` (`timings_s`, seconds; `total` excludes "
        "`write` and process start-up):",
        "",
        "| size (px) | tiles | " + " | ".join(STAGES) + " | Mpx/s (in-process total) |",
        "|---:|---:|" + "---:|" * (len(STAGES) + 1),
    ]
    for r in results:
        total = r.timings_s.get("total", 0.0)
        inproc = r.megapixels_10m / total if total > 0 else float("nan")
        lines.append(
            f"| {r.size:,} | {r.tiles} | "
            + " | ".join(f"{r.timings_s.get(s, float('nan')):.2f}" for s in STAGES)
            + f" | {inproc:.2f} |"
        )
    big = max(results, key=lambda r: r.size)
    dets = sorted(k for k in big.timings_s if k.startswith("detect_"))
    if dets:
        mpx = big.megapixels_10m
        det_total = sum(big.timings_s[k] for k in dets)
        lines += [
            "",
            f"Per-detector breakdown on the {big.size:,} px scene (`timings_s.detect_<name>`; "
            "ingest runs in a read-ahead thread, overlapped with detection, so the in-process "
            "total is less than their sum):",
            "",
            "| stage | seconds | Mpx/s of 10 m grid | real-time factor |",
            "|---|---:|---:|---:|",
        ]
        for k in ["ingest", *dets]:
            v = big.timings_s.get(k, 0.0)
            rate = mpx / v if v > 0 else float("inf")
            lines.append(f"| {k} | {v:.2f} | {rate:.1f} | {rate / S2_MPX_PER_S:.2f} |")
        rate = mpx / det_total if det_total > 0 else float("inf")
        lines.append(
            f"| all detectors together | {det_total:.2f} | {rate:.1f} | {rate / S2_MPX_PER_S:.2f} |"
        )
        total = big.timings_s.get("total", 0.0)
        if total > 0:
            lines.append(
                f"| in-process total (ingest + detect + vectorise, overlapped) | {total:.2f} | "
                f"{mpx / total:.1f} | {mpx / total / S2_MPX_PER_S:.2f} |"
            )
        if "report" in big.timings_s:
            lines.append(
                f"| report (LLM or template; after detection) | {big.timings_s['report']:.2f} "
                "| – | – |"
            )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes must be integers, got {text!r}") from None
    if not sizes or any(s < 100 for s in sizes):
        raise argparse.ArgumentTypeError("--sizes must be >= 100 px each")
    return sorted(set(sizes))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes",
        type=parse_sizes,
        default=None,
        help="comma-separated scene edges in 10 m px (default: 1000,2000,4000,10980)",
    )
    ap.add_argument("--quick", action="store_true", help="sizes 500,1000,2000 only (for CI)")
    ap.add_argument("--tile-size", type=int, default=1024, help="eotriage --tile-size (1024)")
    ap.add_argument("--seed", type=int, default=0, help="synthetic scene seed (0)")
    ap.add_argument(
        "--regenerate",
        action="store_true",
        help="regenerate scenes even when benchmarks/_work/ has matching ones",
    )
    args = ap.parse_args(argv[1:])
    if args.quick and args.sizes:
        ap.error("--quick and --sizes are exclusive")
    sizes: list[int] = list(QUICK_SIZES if args.quick else args.sizes or DEFAULT_SIZES)
    WORK.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    software = software_facts()  # before the runs: the code state they measure

    print("baseline: eotriage models verify", flush=True)
    code, _, baseline = run_measured(
        [*eotriage_command(), "models", "verify"], WORK / "baseline.log"
    )
    errors: list[str] = [] if code == 0 else [f"baseline 'eotriage models verify' exited {code}"]
    print(f"baseline peak RSS {baseline:.1f} MiB", flush=True)

    results: list[SizeResult] = []
    for size in sizes:
        results.append(bench_size(size, args.seed, args.tile_size, args.regenerate))
        errors += [f"size {r.size}: {e}" for r in results[-1:] for e in r.errors]

    if code_fingerprint() != software["code_sha256"]:
        errors.append(
            "pipeline/ or models/ changed while the benchmark ran; results mix code "
            "versions, re-run on a quiet tree"
        )
    used_models = sorted(
        {", ".join(f"{k} {v}" for k, v in sorted(r.models.items())) for r in results if r.models}
    )
    if len(used_models) > 1:
        errors.append(f"sizes ran with different models: {used_models}")

    ref = reference_size(results)
    ref_r = next(r for r in results if r.size == ref)
    big = max(results, key=lambda r: r.size)
    doc: dict[str, Any] = {
        "benchmark": "memory and throughput vs scene size",
        "command": command_line(argv, "benchmarks/bench_memory.py"),
        "date_utc": date,
        "machine": machine_facts(),
        "software": software,
        "models": used_models[0] if used_models else "unknown",
        "settings": {
            "tile_size": args.tile_size,
            "seed": args.seed,
            "sizes": sizes,
            "s2_mpx_per_s_per_10m_band": S2_MPX_PER_S,
            "fire_match_radius_m": MATCH_RADIUS_M,
        },
        "baseline_rss_mib": round(baseline, 1),
        "results": [asdict(r) for r in results],
        "peak_rss_ratio": {
            "largest_size": big.size,
            "reference_size": ref,
            "largest_mib": big.peak_rss_mib,
            "reference_mib": ref_r.peak_rss_mib,
            "ratio": round(big.peak_rss_mib / ref_r.peak_rss_mib, 4)
            if ref_r.peak_rss_mib > 0
            else None,
        },
        "total_benchmark_s": round(time.perf_counter() - t_start, 1),
    }
    if errors or doc["peak_rss_ratio"]["ratio"] is None:
        doc["errors"] = errors or ["peak RSS of the reference size is zero"]
    return publish(
        doc,
        lambda: render_section(doc, results),
        SECTION,
        RESULTS_JSON,
        WORK / "last_failed.json",
    )


if __name__ == "__main__":
    raise SystemExit(main())
