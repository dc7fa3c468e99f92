#!/usr/bin/env python3
"""Streaming triage: acquisition-to-alert latency per class, and same results as the file path.

Each scene is replayed by the sensor simulator (``pipeline.core.replay.replay``) as a push-broom
line stream and fed block by block to ``pipeline.core.stream.Triage`` with alert packets
(``pipeline.downlink.alerts.AlertEncoder``), all detectors enabled.  Latency of an alert = time
from the block completing its evidence entering ``Triage.feed`` to its alert packet being ready
(no LLM text: that follows in the scene report).  Scenes are replayed at Sentinel-2's line rate
(664 lines/s of 10 m pixels, so triage must keep up with the sensor) and, for comparison, as
fast as they can be read.  Every run is checked against ``pipeline.run_scene`` on the file.

Results go to the section "## Streaming: acquisition-to-alert latency" of RESULTS.md and to
``benchmarks/results_stream.json``.  Exit 1 when a run fails or its detections differ from the
file path; latencies never fail the run.

Usage::

    .venv/bin/python benchmarks/bench_stream.py           # samples + 4,000 px synthetic scene
    .venv/bin/python benchmarks/bench_stream.py --quick   # samples + 1,000 px (CI)
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_memory import ensure_scene
from results_io import (
    BENCH_DIR,
    REPO,
    command_line,
    machine_facts,
    pct,
    publish,
    section_header,
    signature,
    software_facts,
)

SECTION = "## Streaming: acquisition-to-alert latency"
RESULTS_JSON = BENCH_DIR / "results_stream.json"
FAILED_JSON = BENCH_DIR / "_work" / "last_failed_stream.json"
S2_RATE = 664.0
SAMPLES = ("s2_fire_G90292", "s2_l1c_virginia_crop", "sen2ships_honolulu", "sen2ships_casablanca")


def stream_once(path: Path, rate: float | None, block_lines: int) -> dict[str, Any]:
    import pipeline
    from pipeline.core.replay import replay
    from pipeline.core.stream import StripLayout, Triage
    from pipeline.downlink.alerts import AlertEncoder

    settings = pipeline.Settings()
    scene = pipeline.open_scene(path)
    ref = pipeline.run_scene(scene, settings)
    enc = AlertEncoder()
    triage = Triage(StripLayout.from_scene(scene), settings, alert_encoder=enc)
    events = []
    t0 = time.perf_counter()
    last_block = t0
    for blk in replay(scene, rate=rate, block_lines=block_lines, bands=triage.band_names):
        last_block = time.perf_counter()
        events += triage.feed(blk.band, blk.first_line, blk.data)
    events += triage.finish(scene.grid.height)
    t_end = time.perf_counter()
    result = triage.result()
    per_class: dict[str, dict[str, Any]] = {}
    for cls in sorted({e.detection.cls for e in events}):
        lat = [e.latency_s for e in events if e.detection.cls == cls]
        per_class[cls] = {
            "alerts": len(lat),
            "median_s": round(statistics.median(lat), 4),
            "p95_s": round(pct(lat, 0.95), 4),
            "max_s": round(max(lat), 4),
            "before_strip_end": sum(
                1 for e in events if e.detection.cls == cls and e.last_line < scene.grid.height
            ),
        }
    return {
        "scene": path.name,
        "path": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
        "size": f"{scene.grid.width} x {scene.grid.height}",
        "rate_lines_per_s": rate,
        "block_lines": block_lines,
        "strip_s": round(scene.grid.height / rate, 3) if rate else None,
        "wall_s": round(t_end - t0, 3),
        "after_last_block_s": round(t_end - last_block, 3),
        "alerts": len(events),
        "packet_bytes": enc.bytes,
        "per_class": per_class,
        "detectors": {k: v for k, v in triage.status.items()},
        "same_as_file": signature(result) == signature(ref),
        "ok": result.ok,
    }


def render(doc: dict[str, Any]) -> str:
    lines = section_header(doc, SECTION)
    lines += [
        "Each scene is replayed by the sensor simulator as a push-broom line stream "
        f"({doc['settings']['block_lines']}-line blocks per band, bands in acquisition order) "
        "into `pipeline.core.stream.Triage` with all detectors and alert packets.  Latency = time "
        "from the block completing a detection's evidence entering `Triage.feed` to its alert "
        "packet being ready (no LLM text).  Rate 664 = Sentinel-2's 10 m line rate, so triage "
        "runs while the sensor delivers; 'max' = blocks as fast as they are read.  'after last "
        "block' = time from the last block to the end of `finish()`.  Same as file = the same "
        "(class, centroid) list as `run_scene` on the file.",
        "",
        "| scene | size (px) | rate (lines/s) | strip (s) | wall (s) | after last block (s) | "
        "class | alerts | alerts before strip end | latency median (ms) | p95 (ms) | max (ms) | "
        "same as file |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["results"]:
        classes = r["per_class"] or {"–": None}
        for cls, c in classes.items():
            rate = f"{r['rate_lines_per_s']:g}" if r["rate_lines_per_s"] else "max"
            strip = f"{r['strip_s']:.2f}" if r["strip_s"] else "–"
            if c is None:
                stats = "– | 0 | – | – | – | –"
            else:
                stats = (
                    f"{cls} | {c['alerts']} | {c['before_strip_end']} | "
                    f"{c['median_s'] * 1000:.1f} | {c['p95_s'] * 1000:.1f} | "
                    f"{c['max_s'] * 1000:.1f}"
                )
            lines.append(
                f"| `{r['path']}` | {r['size']} | {rate} | {strip} | {r['wall_s']:.2f} | "
                f"{r['after_last_block_s']:.2f} | {stats} | "
                f"{'yes' if r['same_as_file'] else 'NO'} |"
            )
    fire = [c for r in doc["results"] for k, c in r["per_class"].items() if k == "fire"]
    if fire:
        worst = max(c["p95_s"] for c in fire)
        lines += [
            "",
            f"Fire alerts: worst p95 latency **{worst * 1000:.0f} ms** over these runs (target: "
            "well under 1 s on 2 CPU cores).",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="samples + 1,000 px scene (CI)")
    ap.add_argument("--size", type=int, default=4000, help="synthetic scene edge (4000)")
    ap.add_argument("--block-lines", type=int, default=64, help="lines per block (64)")
    args = ap.parse_args(argv[1:])
    size = 1000 if args.quick else args.size
    t_start = time.perf_counter()
    software = software_facts()
    runs: list[tuple[Path, float | None]] = []
    for name in SAMPLES:
        runs += [(REPO / "sample_scenes" / name, None), (REPO / "sample_scenes" / name, S2_RATE)]
    syn, _, _ = ensure_scene(size, 0, regenerate=False)
    runs += [(syn, S2_RATE)]
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for path, rate in runs:
        print(f"streaming {path.name} at {rate or 'max'} lines/s ...", flush=True)
        try:
            r = stream_once(path, rate, args.block_lines)
        except Exception as exc:  # every failing run is reported, then the benchmark fails
            errors.append(f"{path.name} @ {rate}: {type(exc).__name__}: {exc}")
            continue
        results.append(r)
        if not r["same_as_file"]:
            errors.append(f"{path.name} @ {rate}: detections differ from the file path")
        if not r["ok"]:
            errors.append(f"{path.name} @ {rate}: tile failures")
    models: dict[str, Any] = {}
    if results:
        import pipeline

        models = dict(pipeline.run_scene(REPO / "sample_scenes" / SAMPLES[1]).models)
    doc: dict[str, Any] = {
        "benchmark": "streaming acquisition-to-alert latency",
        "command": command_line(argv, "benchmarks/bench_stream.py"),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(),
        "software": software,
        "models": ", ".join(f"{k} {v['version']} {v['sha256'][:12]}" for k, v in models.items()),
        "settings": {"block_lines": args.block_lines, "synthetic_size": size, "rate": S2_RATE},
        "results": results,
        "errors": errors,
        "total_benchmark_s": round(time.perf_counter() - t_start, 1),
    }
    return publish(doc, lambda: render(doc), SECTION, RESULTS_JSON, FAILED_JSON)


if __name__ == "__main__":
    sys.exit(main())
