"""Helpers shared by the benchmark scripts: machine/software facts, ``RESULTS.md`` sections, and
the one percentile, detection signature and detector timing every script uses.

``benchmarks/`` is not a package; the scripts run as ``python benchmarks/X.py``, which puts this
folder on ``sys.path``, so they import this module as ``from results_io import ...``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

RESULTS_MD = BENCH_DIR / "RESULTS.md"
#: Environment variable that redirects RESULTS.md and the results_*.json files to another folder
#: (``eotriage bench --quick`` uses it so CI never overwrites the recorded figures).
OUT_ENV = "EOTRIAGE_BENCH_OUT"


class BenchError(Exception):
    """A benchmark result is missing or malformed."""


def default_shared() -> Path:
    """The shared real data: ``$EOTRIAGE_SHARED_DATA`` or ``../shared/data`` beside the repo."""
    return Path(os.environ.get("EOTRIAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation between order statistics (numpy's
    default); NaN for no values."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def signature(result: Any) -> list[tuple[str, float, float]]:
    """A scene result's detections as sorted (class, centroid lon, lat) rounded to 6 decimals
    (~0.1 m): equal when two runs (tilings, threads, stream vs file) found the same objects."""
    return sorted(
        (d.cls, round(d.geometry.centroid.x, 6), round(d.geometry.centroid.y, 6))
        for d in result.detections
    )


def time_detect(
    detector: Any, scene: Any, tile: Any, settings: Any, repeats: int, warmup: int = 2
) -> dict[str, Any]:
    """Time ``detector.detect`` on one tile of ``scene`` (read once beforehand): median and
    minimum wall time, per Mpx of the tile's read window, CPU time per Mpx and the load average
    (other processes share the cores; the minimum is the least disturbed figure)."""
    import statistics
    import time

    from pipeline.core.env import Env
    from pipeline.core.ingest import SceneReader

    with SceneReader(scene) as reader:
        data = reader.read(tile, detector.band_names(scene))
    times: list[float] = []
    comps = 0
    with Env(settings):
        for _ in range(warmup):
            detector.detect(data, scene)
        c0 = time.process_time()
        for _ in range(repeats):
            t0 = time.perf_counter()
            comps = len(detector.detect(data, scene))
            times.append(time.perf_counter() - t0)
        cpu = (time.process_time() - c0) / repeats
    mpx = tile.read.width * tile.read.height / 1e6
    med = statistics.median(times) * 1000
    return {
        "read_window_px": [int(tile.read.width), int(tile.read.height)],
        "threads": settings.threads,
        "repeats": repeats,
        "components": comps,
        "median_ms": round(med, 2),
        "min_ms": round(min(times) * 1000, 2),
        "ms_per_mpx": round(med / mpx, 2),
        "min_ms_per_mpx": round(min(times) * 1000 / mpx, 2),
        "cpu_ms_per_mpx": round(cpu * 1000 / mpx, 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def results_dir() -> Path:
    """Where RESULTS.md and results_*.json go: ``$EOTRIAGE_BENCH_OUT`` or ``benchmarks/``."""
    env = os.environ.get(OUT_ENV)
    out = Path(env) if env else BENCH_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out


def shown(path: Path) -> str:
    """A path relative to the repository when inside it."""
    p = path.resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def machine_facts() -> dict[str, Any]:
    cpu = "unknown"
    mem_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": nproc,
        "cpu_model": cpu,
        "ram_total_gib": round(mem_kib / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def code_fingerprint() -> str:
    """sha256 over pipeline/ and models/ sources, to notice code edited during the benchmark."""
    h = hashlib.sha256()
    files = sorted(
        p
        for d in ("pipeline", "models")
        for p in (REPO / d).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    for p in files:
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def software_facts() -> dict[str, str]:
    import numpy
    import onnxruntime
    import rasterio

    import pipeline

    facts = {
        "eotriage": pipeline.__version__,
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pipeline", "models"],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        facts["git"] = head + (", pipeline/ or models/ modified" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        facts["git"] = "unknown"
    facts["code_sha256"] = code_fingerprint()
    return facts


def write_results_md(section: str, title: str, path: Path = RESULTS_MD) -> None:
    """Replace (or append) the section headed ``title`` in RESULTS.md, keeping every other
    section.  ``section`` is the whole section text, its first line being ``title``."""
    if path.is_file():
        text = path.read_text()
    else:
        text = (
            "# eotriage benchmark results\n\nMeasured figures, each with the command that "
            "produced it.  Re-run the scripts in `benchmarks/` to refresh them.\n"
        )
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == title), None)
    if start is None:
        body = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:]).strip("\n")
        body = (before + "\n\n" if before else "") + section
        if after:
            body = body.rstrip("\n") + "\n\n" + after + "\n"
    path.write_text(body.rstrip("\n") + "\n")


def command_line(argv: Sequence[str], default_script: str) -> str:
    """The command as typed, with paths under the current directory made relative.

    ``default_script`` stands in for ``argv[0]`` when ``argv`` is empty.
    """

    def short(p: Path) -> str:
        p = p.absolute()
        return os.path.relpath(p) if p.is_relative_to(Path.cwd()) else str(p)

    script = short(Path(argv[0])) if argv else default_script
    return shlex.join([short(Path(sys.executable)), script, *argv[1:]])


def section_header(doc: dict[str, Any], section: str) -> list[str]:
    """Title, command, date, machine and software lines that open every results section."""
    m = doc["machine"]
    sw = doc["software"]
    return [
        section,
        "",
        f"Command: `{doc['command']}`  ",
        f"Date: {doc['date_utc']}  ",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_total_gib']} GiB RAM, "
        f"{m['os']}, Python {m['python']}, no GPU used  ",
        f"Software: eotriage {sw['eotriage']} (git {sw['git']}; pipeline/+models/ sha256 "
        f"{sw['code_sha256']}), models {doc['models']}, rasterio {sw['rasterio']} "
        f"(GDAL {sw['gdal']}), onnxruntime {sw['onnxruntime']}, numpy {sw['numpy']}",
        "",
    ]


def publish(
    doc: dict[str, Any],
    render: Callable[[], str],
    title: str,
    results_json: Path,
    failed_json: Path,
) -> int:
    """Write a benchmark's results, or on ``doc["errors"]`` leave them untouched.

    Success: the rendered section replaces ``title`` in RESULTS.md and ``doc`` goes to
    ``results_json``; returns 0.  Failure: ``doc`` (with its partial figures) goes to
    ``failed_json``, the errors to stderr; returns 1.
    """
    out = results_dir()
    results_json = out / results_json.name
    results_md = out / RESULTS_MD.name
    if out != BENCH_DIR and not results_md.exists() and RESULTS_MD.is_file():
        results_md.write_text(RESULTS_MD.read_text())  # keep the other sections around
    if doc.get("errors"):
        failed_json.parent.mkdir(parents=True, exist_ok=True)
        failed_json.write_text(json.dumps(doc, indent=2) + "\n")
        print(
            f"\nFAILED ({results_md.name} and {results_json.name} left untouched; partial "
            f"figures in {shown(failed_json)}):",
            file=sys.stderr,
        )
        for e in doc["errors"]:
            print(f"  {e}", file=sys.stderr)
        return 1
    section = render()
    write_results_md(section, title, results_md)
    results_json.write_text(json.dumps(doc, indent=2) + "\n")
    print("\n" + section)
    print(
        f"wrote {shown(results_md)} and {shown(results_json)} "
        f"(benchmark took {doc['total_benchmark_s']:.1f} s)"
    )
    return 0
