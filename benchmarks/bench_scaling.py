#!/usr/bin/env python3
"""Scaling: threads 1 vs 2 and a tile-size sweep, to choose the defaults.

Each configuration runs ``pipeline.run_scene`` on the same synthetic 13-band Sentinel-2 L1C scene
(``pipeline.testing.synthetic.generate_scene``, cached in ``benchmarks/_work/`` like
bench_memory.py) with every detector that can run on it, in this one process, one after the
other.  Each configuration runs ``--repeats`` times and the fastest run is kept (timings on this
shared 2-core machine are noisy; the minimum is the least disturbed).  Figures are ratios within
one run of the script.

Results go to the section "## Scaling: threads and tile size" of ``benchmarks/RESULTS.md`` and to
``benchmarks/results_scaling.json``.  Exit status 1 when a run fails or gives different detections
from the reference configuration (threads 2, tile 1024); timings never fail the run.

Usage::

    .venv/bin/python benchmarks/bench_scaling.py            # 4,000 px scene
    .venv/bin/python benchmarks/bench_scaling.py --quick    # 1,000 px scene (CI)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench_memory import S2_MPX_PER_S, ensure_scene
from results_io import (
    BENCH_DIR,
    command_line,
    machine_facts,
    publish,
    section_header,
    signature,
    software_facts,
)

SECTION = "## Scaling: threads and tile size"
RESULTS_JSON = BENCH_DIR / "results_scaling.json"
FAILED_JSON = BENCH_DIR / "_work" / "last_failed_scaling.json"
REFERENCE = {"threads": 2, "tile_size": 1024}
TILE_SIZES = (256, 512, 1024, 2048)


def run_config(path: Any, threads: int, tile_size: int, repeats: int) -> dict[str, Any]:
    import pipeline

    settings = pipeline.Settings(threads=threads, tile_size=tile_size)
    walls = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = pipeline.run_scene(path, settings)
        walls.append(time.perf_counter() - t0)
    assert result is not None
    mpx = result.info["pixels_processed"] / 1e6
    best = min(walls)
    return {
        "threads": threads,
        "tile_size": tile_size,
        "tiles": result.tiles_total,
        "walls_s": [round(w, 3) for w in walls],
        "best_wall_s": round(best, 3),
        "mpx_per_s": round(mpx / best, 2),
        "realtime_factor": round(mpx / best / S2_MPX_PER_S, 3),
        "detectors": dict(result.detectors),
        "counts": result.counts(),
        "timings_s": dict(result.timings_s),
        "ok": result.ok,
        "models": {k: dict(v) for k, v in result.models.items()},
        "signature": signature(result),
    }


def render(doc: dict[str, Any]) -> str:
    lines = section_header(doc, SECTION)
    s = doc["settings"]
    ref = doc["reference"]
    lines += [
        f"Scene: synthetic 13-band Sentinel-2 L1C, {s['size']:,} x {s['size']:,} px "
        f"({s['size'] ** 2 / 1e6:.1f} Mpx of 10 m grid), every detector that runs on it "
        f"({', '.join(k for k, v in ref['detectors'].items() if v == 'ran')}).  "
        f"`pipeline.run_scene` in one process after one untimed warm-up run; best of "
        f"{s['repeats']} runs per configuration.  "
        "Same detections = identical (class, centroid) list as the reference "
        f"(threads {REFERENCE['threads']}, tile {REFERENCE['tile_size']}).",
        "",
        "| threads | tile size (px) | tiles | best wall (s) | Mpx/s | real-time factor | "
        "ingest (s) | detect (s) | same detections |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["results"]:
        t = r["timings_s"]
        lines.append(
            f"| {r['threads']} | {r['tile_size']} | {r['tiles']} | {r['best_wall_s']:.2f} | "
            f"{r['mpx_per_s']:.1f} | {r['realtime_factor']:.2f} | {t.get('ingest', 0):.2f} | "
            f"{t.get('detect', 0):.2f} | {'yes' if r['same_as_reference'] else 'NO'} |"
        )
    lines += [
        "",
        f"Threads 2 vs 1 at tile 1024: **{doc['thread_speedup']:.2f}x**.  Fastest tile size at "
        f"2 threads: **{doc['best_tile_size']} px** (default: {REFERENCE['tile_size']} px).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="1,000 px scene, 1 repeat (for CI)")
    ap.add_argument("--size", type=int, default=4000, help="scene edge in px (4000)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration (2)")
    args = ap.parse_args(argv[1:])
    size = 1000 if args.quick else args.size
    repeats = 1 if args.quick else max(1, args.repeats)
    t_start = time.perf_counter()
    path, _, _ = ensure_scene(size, 0, regenerate=False)
    configs = [(2, REFERENCE["tile_size"]), (1, REFERENCE["tile_size"])]
    configs += [(2, t) for t in TILE_SIZES if t != REFERENCE["tile_size"]]
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    print("warm-up run (not timed) ...", flush=True)
    try:  # model loading and onnxruntime's first-inference set-up stay out of the figures
        run_config(path, REFERENCE["threads"], REFERENCE["tile_size"], 1)
    except Exception as exc:
        errors.append(f"warm-up: {type(exc).__name__}: {exc}")
    for threads, tile in configs:
        print(f"threads {threads}, tile {tile} ...", flush=True)
        try:
            results.append(run_config(path, threads, tile, repeats))
        except Exception as exc:  # report every failing configuration, then fail
            errors.append(f"threads {threads} tile {tile}: {type(exc).__name__}: {exc}")
    ref = results[0] if results else {}
    for r in results:
        r["same_as_reference"] = r["signature"] == ref.get("signature")
        if not r["same_as_reference"]:
            errors.append(
                f"threads {r['threads']} tile {r['tile_size']}: detections differ from reference"
            )
        if not r["ok"]:
            errors.append(f"threads {r['threads']} tile {r['tile_size']}: run not ok")
    by = {(r["threads"], r["tile_size"]): r for r in results}
    two, one = by.get((2, 1024)), by.get((1, 1024))
    at2 = [r for r in results if r["threads"] == 2]
    doc: dict[str, Any] = {
        "benchmark": "scaling: threads and tile size",
        "command": command_line(argv, "benchmarks/bench_scaling.py"),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(),
        "software": software_facts(),
        "models": ", ".join(
            f"{k} {v['version']} {v['sha256'][:12]}" for k, v in ref.get("models", {}).items()
        ),
        "settings": {"size": size, "repeats": repeats, "tile_sizes": list(TILE_SIZES)},
        "reference": ref,
        "results": results,
        "thread_speedup": round(one["best_wall_s"] / two["best_wall_s"], 3) if two and one else 0,
        "best_tile_size": min(at2, key=lambda r: r["best_wall_s"])["tile_size"] if at2 else 0,
        "errors": errors,
        "total_benchmark_s": round(time.perf_counter() - t_start, 1),
    }
    for r in results:
        r.pop("signature", None)
    doc["reference"] = {k: v for k, v in ref.items() if k != "signature"}
    return publish(doc, lambda: render(doc), SECTION, RESULTS_JSON, FAILED_JSON)


if __name__ == "__main__":
    sys.exit(main())
