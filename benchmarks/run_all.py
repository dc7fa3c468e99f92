#!/usr/bin/env python3
"""Run every benchmark in one go: RESULTS.md, results.json and the plots.

This is what ``eotriage bench`` runs.  Each benchmark script runs as its own child process (so
one crash cannot take the others down, and memory figures are per process) in the order below,
writes its section of RESULTS.md and its ``results_<name>.json``; then this harness checks every
results file for completeness (the keys each benchmark must produce, no recorded errors),
combines them into ``results.json`` and draws the PNG plots into ``plots/``.

``--quick`` runs each script's quick mode (small scenes, few repeats; under 5 minutes on 2 cores)
and writes everything to ``--out`` (default ``benchmarks/_work/quick``) so the recorded figures
in ``benchmarks/`` are never overwritten by a CI run.  A full run writes into ``benchmarks/``.

Exit status: 0 when every benchmark ran and its results are complete and well formed; 1
otherwise (timings never fail the run; quality targets are reported, not enforced here).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from results_io import (
    BENCH_DIR,
    OUT_ENV,
    REPO,
    machine_facts,
    shown,
    software_facts,
    write_results_md,
)


@dataclass(frozen=True)
class Bench:
    """One benchmark script and what its results file must contain."""

    name: str
    script: str
    results: str
    #: top-level keys that must be present (besides the common ones)
    required: tuple[str, ...]
    #: extra arguments in quick mode (always includes --quick)
    quick_args: tuple[str, ...] = ()


COMMON_KEYS = ("benchmark", "command", "date_utc", "machine", "software", "total_benchmark_s")

BENCHES: tuple[Bench, ...] = (
    Bench(
        "clouds",
        "bench_clouds.py",
        "results_clouds.json",
        ("accuracy", "scenes", "overcast", "downlink", "speed"),
    ),
    Bench("fire", "bench_fire.py", "results_fire.json", ("results",)),
    Bench("ships", "bench_ships.py", "results_ships.json", ("ports", "totals", "speed")),
    Bench(
        "crop",
        "bench_crop.py",
        "results_crop.json",
        ("no_layer", "series", "virginia", "history", "speed"),
    ),
    Bench("memory", "bench_memory.py", "results_memory.json", ("results", "peak_rss_ratio")),
    Bench("scaling", "bench_scaling.py", "results_scaling.json", ("results", "thread_speedup")),
    Bench("stream", "bench_stream.py", "results_stream.json", ("results",)),
    Bench("report", "bench_report.py", "results_report.json", ("load", "main")),
    Bench("downlink", "bench_downlink.py", "results_downlink.json", ("results",)),
    Bench("ask", "bench_ask.py", "results_ask.json", ("results", "summary")),
    Bench("ground", "bench_ground.py", "results_ground.json", ("batch", "simulation")),
    Bench(
        "faults", "bench_faults.py", "results_faults.json", ("upsets", "input_faults", "crashes")
    ),
)


def check_results(bench: Bench, path: Path) -> list[str]:
    """Problems with a results file: missing, unreadable, incomplete or carrying errors."""
    if not path.is_file():
        return [f"{bench.name}: {shown(path)} was not written"]
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{bench.name}: {shown(path)} is not valid JSON ({exc})"]
    if not isinstance(doc, dict):
        return [f"{bench.name}: {shown(path)} is not a JSON object"]
    problems = [
        f"{bench.name}: {shown(path)} lacks {k!r}"
        for k in (*COMMON_KEYS, *bench.required)
        if k not in doc
    ]
    if doc.get("errors"):
        problems.append(f"{bench.name}: recorded errors: {doc['errors']}")
    for key in bench.required:
        if key in doc and isinstance(doc[key], list | dict) and not doc[key]:
            problems.append(f"{bench.name}: {key!r} is empty")
    return problems


def run_bench(bench: Bench, quick: bool, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Run one script as a child process; its record for results.json."""
    cmd = [sys.executable, str(BENCH_DIR / bench.script)]
    if quick:
        cmd += ["--quick", *bench.quick_args]
    env = dict(os.environ)
    env[OUT_ENV] = str(out)
    log(f"== {bench.name}: {' '.join(cmd[1:])}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        log(f"   FAILED (exit {proc.returncode}) after {took:.1f} s:")
        for line in tail:
            log(f"   | {line}")
    else:
        log(f"   ok in {took:.1f} s")
    path = out / bench.results
    problems = [] if proc.returncode == 0 else [f"{bench.name}: exit {proc.returncode}"]
    problems += check_results(bench, path)
    doc = json.loads(path.read_text()) if path.is_file() and not problems else None
    return {
        "script": f"benchmarks/{bench.script}",
        "exit_code": proc.returncode,
        "wall_s": round(took, 1),
        "problems": problems,
        "results": doc,
    }


def existing(bench: Bench, out: Path) -> dict[str, Any]:
    """The record of a benchmark from its results file (``--summarise-only``)."""
    path = out / bench.results
    problems = check_results(bench, path)
    return {
        "script": f"benchmarks/{bench.script}",
        "exit_code": 0 if not problems else None,
        "wall_s": None,
        "problems": problems,
        "results": json.loads(path.read_text()) if not problems else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="quick mode of every benchmark (CI)")
    ap.add_argument("--out", type=Path, help="output folder (quick: benchmarks/_work/quick)")
    names = [b.name for b in BENCHES]
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(names)}")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument(
        "--summarise-only",
        action="store_true",
        help="run nothing: rebuild results.json, the summary and the plots from the results "
        "files already in the output folder",
    )
    args = ap.parse_args(argv)
    out = (args.out or (BENCH_DIR / "_work" / "quick" if args.quick else BENCH_DIR)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = list(BENCHES)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            print(f"run_all: unknown benchmark(s) {', '.join(unknown)}", file=sys.stderr)
            return 2
        chosen = [b for b in BENCHES if b.name in wanted]

    def log(msg: str) -> None:
        print(msg, flush=True)

    t0 = time.perf_counter()
    if args.summarise_only:
        records = {b.name: existing(b, out) for b in chosen}
    else:
        records = {b.name: run_bench(b, args.quick, out, log) for b in chosen}
    problems = [p for r in records.values() for p in r["problems"]]
    combined: dict[str, Any] = {
        "harness": "benchmarks/run_all.py",
        "command": "eotriage bench" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(),
        "software": software_facts(),
        "benchmarks": records,
        "problems": problems,
        "total_s": round(time.perf_counter() - t0, 1),
    }
    try:
        from summary import SECTION, render

        write_results_md(
            render(records, combined["command"], combined["date_utc"]),
            SECTION,
            out / "RESULTS.md",
        )
    except Exception as exc:  # a summary that cannot be built is a malformed result
        problems.append(f"summary: {type(exc).__name__}: {exc}")
    if not args.no_plots:
        from plots import make_plots

        try:
            combined["plots"] = [shown(p) for p in make_plots(records, out / "plots")]
        except Exception as exc:  # a missing figure is a malformed result
            problems.append(f"plots: {type(exc).__name__}: {exc}")
    (out / "results.json").write_text(json.dumps(combined, indent=2) + "\n")
    log(f"wrote {shown(out / 'results.json')} in {combined['total_s']:.0f} s")
    if problems:
        log("PROBLEMS:")
        for p in problems:
            log(f"  {p}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
