#!/usr/bin/env python3
"""The ship detector on the labelled sen2ships ports, and its detect() cost per megapixel.

Quality: each port of ``../shared/data/sen2ships`` (or ``$EOTRIAGE_SHARED_DATA``) runs through
``pipeline.evaluation.ships.evaluate_ships`` (the library behind ``eotriage eval ships``): the ship
detector with the committed models, detections matched one-to-one to labelled vessels when the
detection centroid is within 30 m of the vessel box (closest first), false alarms per 10 km² of
sea (NDWI water pixels).  The screen thresholds were tuned and the committed pixel classifier
trained on **busan**; **casablanca** and **honolulu** are held out and reported separately.
Without the shared data, the two sample ports in ``sample_scenes/`` (the same held-out scenes)
are scored.

Leave-one-port-out: for each port, the pixel classifier is retrained
(models/train_ship_classifier.py, same code and seed, Virginia hard negatives included) on the
other two ports into a temporary models folder and the port is scored with it.

Speed: ``ShipDetector.detect()`` on one 1088 × 1088 read window (2 threads, models loaded
beforehand, median of repeated calls): a land-heavy tile of the synthetic L1C scene
(``pipeline.testing.synthetic.generate_scene``: land with a coast, water on the east quarter) and a
sea-heavy tile (the synthetic sen2ships-style sea scene of ``tests/test_ships.py`` with 20
vessels).  ms per Mpx = detect time / read-window megapixels.

Results go to the section "## Ships on labelled ports" of ``benchmarks/RESULTS.md`` (other
sections are kept) and ``benchmarks/results_ships.json``.  Exit status 0 when every result is
complete; 1 otherwise (RESULTS.md untouched, partial figures in
``benchmarks/_work/last_failed_ships.json``).  Quality targets are reported, never enforced.

Usage::

    .venv/bin/python benchmarks/bench_ships.py [--shared-data DIR] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results_io import (
    BENCH_DIR,
    REPO,
    code_fingerprint,
    command_line,
    default_shared,
    machine_facts,
    publish,
    section_header,
    software_facts,
    time_detect,
)

SECTION = "## Ships on labelled ports (sen2ships)"
RESULTS_JSON = BENCH_DIR / "results_ships.json"
WORK = BENCH_DIR / "_work"
PORTS = ("busan", "casablanca", "honolulu")
TUNED = ("busan",)
SAMPLE_DIRS = {"casablanca": "sen2ships_casablanca", "honolulu": "sen2ships_honolulu"}
TOLERANCE_M = 30.0
TILE = 1088
TARGETS = {"recall": 0.90, "precision": 0.85, "false_alarms_per_10km2": 2.0}


def _sum_scores(rows: Sequence[dict[str, Any]], label: str) -> dict[str, Any]:
    tot: dict[str, Any] = {"port": label}
    for k in ("labels", "detections", "tp", "fp", "fn", "sea_km2"):
        tot[k] = sum(r[k] for r in rows)
    tot["precision"] = round(tot["tp"] / tot["detections"], 4) if tot["detections"] else None
    tot["recall"] = round(tot["tp"] / tot["labels"], 4) if tot["labels"] else None
    d = 2 * tot["tp"] + tot["fp"] + tot["fn"]
    tot["f1"] = round(2 * tot["tp"] / d, 4) if d else None
    tot["false_alarms_per_10km2"] = (
        round(10 * tot["fp"] / tot["sea_km2"], 3) if tot["sea_km2"] else None
    )
    tot["sea_km2"] = round(tot["sea_km2"], 3)
    return tot


def score_port(path: Path, port: str, split: str, settings: Any) -> dict[str, Any]:
    from pipeline.evaluation.ships import evaluate_ships

    t0 = time.perf_counter()
    score, result = evaluate_ships(path, None, settings, TOLERANCE_M)
    wall = time.perf_counter() - t0
    d = score.to_dict()
    d.update(
        port=port,
        split=split,
        path=os.path.relpath(path, REPO),
        wall_s=round(wall, 3),
        detect_s=result.timings_s.get("detect_ships"),
        pixels=int(result.info["pixels_processed"]),
    )
    return d


def leave_one_out(shared: Path) -> list[dict[str, Any]]:
    """Retrain the classifier without each port and score that port."""
    import pipeline

    sys.path.insert(0, str(REPO / "models"))
    import train_ship_classifier as tsc
    from model_io import write_model

    rows: list[dict[str, Any]] = []
    for port in PORTS:
        others = tuple(p for p in PORTS if p != port)
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            shutil.copy(REPO / "models" / "manifest.json", d / "manifest.json")
            shutil.copy(REPO / "models" / "ship_screen.onnx", d / "ship_screen.onnx")
            data, entry = tsc.train(others, shared, d)
            write_model(d, "ship_classifier", data, entry)
            settings = pipeline.Settings(detectors=("ships",), models_dir=d)
            row = score_port(
                shared / "sen2ships" / port,
                port,
                f"held out (trained on {'+'.join(others)})",
                settings,
            )
        rows.append(row)
        print(f"  LOPO {port}: P {row['precision']} R {row['recall']} F1 {row['f1']}", flush=True)
    return rows


def lopo_skip_reason(have_shared: bool) -> str | None:
    """Why leave-one-port-out cannot run here, or None when it can."""
    if not have_shared:
        return "no shared data"
    if importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("skl2onnx") is None:
        return "training extra not installed (pip install -e '.[train]')"
    return None


def ship_detect_time(path: Path, repeats: int) -> dict[str, Any]:
    """ShipDetector.detect() on the first 1088 x 1088 read window of a scene."""
    from rasterio.windows import Window

    import pipeline
    from pipeline.core.tiling import Tile
    from pipeline.detectors.ships import ShipDetector

    settings = pipeline.Settings(detectors=("ships",), threads=2)
    scene = pipeline.open_scene(path)
    tile = Tile(0, 0, Window(64, 64, TILE - 128, TILE - 128), Window(0, 0, TILE, TILE))
    row = time_detect(ShipDetector(settings), scene, tile, settings, repeats, 1)
    shown = os.path.relpath(path, REPO) if path.is_relative_to(REPO) else path.name
    return {"scene": shown, **row}


def speed(quick: bool) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from pipeline.testing.ship_scenes import SynShip, write_ship_scene
    from pipeline.testing.synthetic import generate_scene

    WORK.mkdir(parents=True, exist_ok=True)
    land = generate_scene(
        WORK / "syn_land_1088", TILE, n_fires=0, seed=11, bands=("B02", "B03", "B04", "B08", "B11")
    )
    rng = np.random.default_rng(7)
    ships = [
        SynShip(
            float(rng.uniform(40, TILE - 40)),
            float(rng.uniform(40, TILE - 40)),
            float(rng.uniform(8, 30)),
            float(rng.uniform(3, 6)),
            float(rng.uniform(0, 180)),
        )
        for _ in range(20)
    ]
    sea = write_ship_scene(WORK / "syn_sea_1088", TILE, TILE, ships, land_cols=0, seed=3)
    reps = 5 if quick else 20
    out = []
    for kind, p in (("land-heavy (synthetic L1C, coast)", land), ("sea-heavy (20 vessels)", sea)):
        r = ship_detect_time(p, reps)
        r["tile"] = kind
        out.append(r)
        print(f"  detect {kind}: {r['median_ms']} ms = {r['ms_per_mpx']} ms/Mpx", flush=True)
    return out


def _ratio(pair: list[int] | None) -> str:
    if not pair or not pair[0]:
        return "–"
    n, m = pair
    return f"{m}/{n}"


def breakdown_lines(doc: dict[str, Any]) -> list[str]:
    """Recall of vessels at sea vs moored and precision of free vs shore detections."""
    from pipeline.evaluation.ships import AT_SEA_RING_WATER, sum_by_setting

    groups = [
        ("committed model, tuned port (busan)", [r for r in doc["ports"] if r["port"] in TUNED]),
        ("committed model, held-out ports", [r for r in doc["ports"] if r["port"] not in TUNED]),
        ("leave-one-port-out, all ports", [r for r in doc["leave_one_out"] if "by_setting" in r]),
    ]
    lines = [
        "",
        "Where the misses and false alarms are (vessels *at sea*: at least "
        f"{AT_SEA_RING_WATER:.0%} of the 3-pixel ring around the labelled mask is water; "
        "*moored*: the rest, alongside quays, piers or other hulls; "
        "`pipeline.evaluation.ships.vessel_settings`, also printed by `eotriage eval ships`; "
        "detections by the detector's kind, `free` = surrounded by water, `shore` = pixel "
        "classifier):",
        "",
        "| runs | vessels at sea found | moored vessels found | free detections correct "
        "| shore detections correct |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, rows in groups:
        if not rows:
            continue
        b = sum_by_setting(r.get("by_setting", {}) for r in rows)
        lines.append(
            f"| {label} | {_ratio(b.get('at_sea'))} | {_ratio(b.get('moored'))} "
            f"| {_ratio(b.get('free'))} | {_ratio(b.get('shore'))} |"
        )
    return lines


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def render(doc: dict[str, Any]) -> str:
    lines = [
        *section_header(doc, SECTION),
        "Library call per port: `pipeline.evaluation.ships.evaluate_ships(port_dir)` "
        "(= `eotriage eval "
        "ships PORT_DIR`): ship detector with the committed models and default settings "
        f"(tile 1024, {doc['settings']['threads']} threads); a detection matches a labelled "
        f"vessel when its centroid is within {TOLERANCE_M:g} m of the vessel box (closest "
        "first, one-to-one); FA/10 km² = false alarms per 10 km² of NDWI water.  Detector: "
        "free vessels = contrast-screen footprints with >= `free_water_min` of their ring in "
        "water; vessels at quays/shores = objects of the per-pixel classifier "
        "(`ship_classifier` 2.x, gradient-boosted trees on 24 pixel features, hard negatives "
        "from the Virginia L1C tile).  The committed classifier was trained on busan, so busan "
        "is *not* a generalisation figure.  Not fully blind: the screen thresholds were tuned on "
        "busan earlier; the object-stage thresholds (`seed_prob`, `grow_prob`, "
        "`shore_min_pixels`, `min_elongation`, `free_water_min`) and the shore zone width "
        "(`SHORE_PX` = 7) were picked while leave-one-port-out results of all three ports were "
        "on screen (a handful of values, not a search per port); `free_contrast_min` (0.05) "
        "lies below the peak contrast of every free vessel of the three ports (>= 0.074) and "
        "above the Virginia marsh/shoal patches; `free_ndvi_min` (-0.15) was set from the "
        "Virginia false alarms (NDVI about -0.3).  `min_length_m` (35 m; vessels shorter "
        "than that are not reported) follows the labels' convention on the tuning port: busan's "
        "smallest labelled vessel covers 34 px (about 2,300 m²) and its smallest detected one "
        "is 35.7 m long; the held-out ports' false-alarm sizes had been seen when the rule was "
        "added (most of them were 19-33 m objects in open water).  `free_swir_ratio_min` (0.2) "
        "and `free_blue_ratio_min` (0.2) come from the Virginia L1C tile (no vessels; surf on "
        'an inlet\'s shoals and marsh islands gave 39 free "vessels", 3 remain): its breakers '
        "reach a SWIR/NIR contrast ratio of about 0.2-0.25, the weakest vessel of the three "
        "ports 0.25-0.3 (seen when the value was set; a thin margin).",
        "",
        "Earlier detectors: ship_classifier 1.0.0 (logistic regression on 4 chip features; "
        "RESULTS of 2026-11-28 17:07 UTC): held-out total P 0.303 R 0.370, 19.1 FA/10 km²; "
        "leave-one-port-out total P 0.333 R 0.247 F1 0.284, 16.5 FA/10 km².  ship_classifier "
        "2.0.0 without `min_length_m` (RESULTS of 2026-11-28 19:34 UTC): held-out total P 0.526 "
        "R 0.370, 7.48 FA/10 km²; leave-one-port-out P 0.470 R 0.383 F1 0.422.",
        "",
        "| port | split | vessels | detections | TP | FP | FN | precision | recall | F1 "
        "| sea km² | FA/10 km² |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(r: dict[str, Any]) -> str:
        return (
            f"| {r['port']} | {r.get('split', '')} | {r['labels']} | {r['detections']} | {r['tp']} "
            f"| {r['fp']} | {r['fn']} | {_f(r['precision'])} | {_f(r['recall'])} | {_f(r['f1'])} "
            f"| {_f(r['sea_km2'], 2)} | {_f(r['false_alarms_per_10km2'], 2)} |"
        )

    for r in doc["ports"]:
        lines.append(row(r))
    for r in doc["totals"]:
        lines.append(row({**r, "port": f"**{r['port']}**"}))
    lines += ["", "Leave-one-port-out (classifier retrained on the other two ports):", ""]
    lines += [
        "| port | split | vessels | detections | TP | FP | FN | precision | recall | F1 "
        "| sea km² | FA/10 km² |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [row(r) for r in doc["leave_one_out"]] or [
        f"| (skipped: {doc.get('leave_one_out_skipped') or 'no shared data'}) |"
    ]
    lines += breakdown_lines(doc)
    t = TARGETS
    held = next((r for r in doc["totals"] if r["port"] == "held-out total"), None)
    if held:
        ok = (
            (held["recall"] or 0) >= t["recall"]
            and (held["precision"] or 0) >= t["precision"]
            and held["false_alarms_per_10km2"] is not None
            and held["false_alarms_per_10km2"] < t["false_alarms_per_10km2"]
        )
        lines += [
            "",
            f"Targets (recall ≥ {t['recall']}, precision ≥ {t['precision']}, < "
            f"{t['false_alarms_per_10km2']:g} FA/10 km²) on the held-out ports: "
            + ("**met**." if ok else "**not met**."),
        ]
    lines += [
        "",
        f"detect() cost (`ShipDetector.detect` on one {TILE} × {TILE} read window, 2 threads, "
        "median of repeated calls after a warm-up, models loaded beforehand):",
        "",
        "| tile | median ms | min ms | ms per Mpx (median) | ms per Mpx (min) | components |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in doc["speed"]:
        lines.append(
            f"| {s['tile']} | {s['median_ms']} | {s['min_ms']} | {s['ms_per_mpx']} | "
            f"{s['min_ms_per_mpx']} | {s['components']} |"
        )
    lines.append("")
    lines.append(
        f"Load average while timing: {doc.get('loadavg', '?')} (other processes share the 2 "
        "cores; the min is the less disturbed figure).  Budget: about 10 ms per Mpx."
    )
    lines.append("")
    lines.append(
        "Per-port detect time (whole scene, `timings_s.detect_ships`): "
        + ", ".join(
            f"{r['port']} {1000 * r['detect_s'] / (r['pixels'] / 1e6):.0f} ms/Mpx"
            for r in doc["ports"]
            if r.get("detect_s")
        )
        + " (harbours are dense in candidates; the per-chip work dominates there)."
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared-data", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="fewer timing repeats")
    args = ap.parse_args(argv[1:])
    shared: Path = args.shared_data or default_shared()
    t_start = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    software = software_facts()

    import pipeline
    from pipeline.detectors.ships import ShipDetector

    settings = pipeline.Settings(detectors=("ships",))
    det = ShipDetector(settings)
    models = ", ".join(f"{m.info.name} {m.info.version} {m.info.sha256[:12]}" for m in det.models)
    errors: list[str] = []
    ports: list[dict[str, Any]] = []
    lopo: list[dict[str, Any]] = []
    lopo_skipped: str | None = None
    have_shared = (shared / "sen2ships").is_dir()
    try:
        for port in PORTS:
            split = "tuned + trained" if port in TUNED else "held out"
            if have_shared:
                path = shared / "sen2ships" / port
            elif port in SAMPLE_DIRS:
                path = REPO / "sample_scenes" / SAMPLE_DIRS[port]
            else:
                continue
            r = score_port(path, port, split, settings)
            ports.append(r)
            print(
                f"  {port} ({split}): P {r['precision']} R {r['recall']} F1 {r['f1']} "
                f"FA/10km2 {r['false_alarms_per_10km2']}",
                flush=True,
            )
        lopo_skipped = lopo_skip_reason(have_shared)
        if lopo_skipped is None:
            lopo = leave_one_out(shared)
        else:
            print(f"  leave-one-port-out skipped: {lopo_skipped}", flush=True)
        spd = speed(args.quick)
    except pipeline.EotriageError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        spd = []
    totals = []
    for label, sel in (
        ("tuned total", [r for r in ports if r["port"] in TUNED]),
        ("held-out total", [r for r in ports if r["port"] not in TUNED]),
    ):
        if sel:
            totals.append(_sum_scores(sel, label))
    if lopo:
        totals_lopo = _sum_scores(lopo, "leave-one-port-out total")
        lopo = [*lopo, totals_lopo]
    if not ports:
        errors.append("no port was scored")
    if code_fingerprint() != software["code_sha256"]:
        errors.append("pipeline/ or models/ changed while the benchmark ran; re-run")
    doc: dict[str, Any] = {
        "benchmark": "ships on labelled ports",
        "command": command_line(argv, "benchmarks/bench_ships.py"),
        "date_utc": date,
        "machine": machine_facts(),
        "software": software,
        "models": models,
        "settings": {
            "threads": settings.threads,
            "tile_size": settings.tile_size,
            "tolerance_m": TOLERANCE_M,
            "thresholds": dict(det.thresholds),
            "shared_data": str(shared),
            "shared_data_found": have_shared,
        },
        "targets": TARGETS,
        "ports": ports,
        "totals": totals,
        "leave_one_out": lopo,
        "leave_one_out_skipped": lopo_skipped,
        "speed": spd,
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "total_benchmark_s": round(time.perf_counter() - t_start, 2),
    }
    if errors:
        doc["errors"] = errors
    return publish(doc, lambda: render(doc), SECTION, RESULTS_JSON, WORK / "last_failed_ships.json")


if __name__ == "__main__":
    raise SystemExit(main())
