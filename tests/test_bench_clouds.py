"""`benchmarks/bench_clouds.py --quick` (about 10 s): complete results, written only to the
output folder it is given, never over the recorded figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))  # the harness modules are plain scripts


def test_bench_clouds_quick(tmp_path: Path) -> None:
    from run_all import BENCHES, check_results  # type: ignore[import-not-found]

    recorded = (REPO / "benchmarks" / "RESULTS.md").read_bytes()
    env = {**os.environ, "EOTRIAGE_BENCH_OUT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_clouds.py"), "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    bench = next(b for b in BENCHES if b.name == "clouds")
    assert check_results(bench, tmp_path / bench.results) == []
    doc = json.loads((tmp_path / bench.results).read_text())
    assert doc["quick"] is True and doc["teacher"] == "skipped in --quick"
    # the overcast frames are cloud, the sample scenes are clear, and G90292 keeps its fires
    assert all(r["cloud_fraction"] >= 0.9 for r in doc["overcast"])
    screened = [r for r in doc["scenes"] if r.get("cloud_fraction") is not None]
    assert screened and all(r["cloud_fraction"] <= 0.05 for r in screened)
    fire = [r["fire_score"] for r in doc["scenes"] if "fire_score" in r]
    assert fire and all(f["found"] == 12 for f in fire)
    dl = doc["downlink"][0]
    assert dl["discard"]["report_lines"] == 1 and not dl["discard"]["geojson"]
    assert dl["discard"]["downlink_bytes"] < dl["no_discard"]["downlink_bytes"]
    assert "## Cloud screening" in (tmp_path / "RESULTS.md").read_text()
    assert (REPO / "benchmarks" / "RESULTS.md").read_bytes() == recorded
