"""``eotriage bench``: run the benchmark harness (benchmarks/run_all.py) of a source checkout.

The benchmarks measure the repository's own models and data (sample scenes, ``../shared/data``)
and write ``benchmarks/RESULTS.md``, so they live beside the package in the checkout rather than
in the wheel; an installed package without its checkout says so in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from ._common import EXIT_USAGE, fail

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


@click.command("bench")
@click.argument("names", nargs=-1)
@click.option("--quick", is_flag=True, help="Quick mode of every benchmark (small scenes; CI).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: benchmarks/, or benchmarks/_work/quick with --quick).",
)
@click.option("--only", help="Comma-separated subset of benchmarks (e.g. fire,memory).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def bench_cmd(
    names: tuple[str, ...], quick: bool, out: Path | None, only: str | None, no_plots: bool
) -> None:
    """Measure downlink saving, throughput, memory, scaling, report latency and fault
    tolerance.  NAMES (e.g. `eotriage bench faults`) is the same as --only.

    Writes RESULTS.md, results.json and plots/*.png (into benchmarks/ for a full run).  Exit 1
    when a benchmark fails or its results are missing or malformed; timings never fail it.
    A full run generates a 10,980 x 10,980 px scene (~1.4 GB, cached in benchmarks/_work/).
    """
    if not HARNESS.is_file():
        fail(
            f"{HARNESS} not found: `eotriage bench` needs a source checkout of eotriage (the "
            "benchmarks/ folder beside pipeline/); clone the repository and run `make bench`",
            EXIT_USAGE,
        )
    cmd = [sys.executable, str(HARNESS)]
    if quick:
        cmd.append("--quick")
    if out is not None:
        cmd += ["--out", str(out.resolve())]
    only = ",".join([*names, *([only] if only else [])])
    if only:
        cmd += ["--only", only]
    if no_plots:
        cmd.append("--no-plots")
    raise SystemExit(subprocess.call(cmd, cwd=HARNESS.parent.parent))
