"""`eotriage bench --quick`: the harness CI runs.  It fails on missing or malformed results,
never on timings, and must not touch the recorded figures in benchmarks/."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import REPO, run_cli

pytestmark = pytest.mark.slow
sys.path.insert(0, str(REPO / "benchmarks"))  # the harness modules are plain scripts


def test_bench_quick_writes_complete_results(tmp_path: Path) -> None:
    recorded = {p.name: p.read_bytes() for p in (REPO / "benchmarks").glob("results*.json")}
    recorded_md = (REPO / "benchmarks" / "RESULTS.md").read_bytes()
    out = tmp_path / "bench"
    proc = run_cli("bench", "--quick", "--out", out, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["quick"] is True and doc["problems"] == []
    from run_all import BENCHES  # type: ignore[import-not-found]

    assert set(doc["benchmarks"]) == {b.name for b in BENCHES}
    for name, rec in doc["benchmarks"].items():
        assert rec["exit_code"] == 0, name
        assert rec["results"]["machine"]["nproc"] >= 1, name
    for png in doc["plots"]:
        data = (REPO / png if not Path(png).is_absolute() else Path(png)).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, png
    assert {Path(p).name for p in doc["plots"]} >= {
        "throughput_stages.png",
        "memory_vs_size.png",
        "scaling.png",
    }
    md = (out / "RESULTS.md").read_text()
    assert "## Scaling: threads and tile size" in md
    # the recorded figures are untouched by a quick run
    assert (REPO / "benchmarks" / "RESULTS.md").read_bytes() == recorded_md
    for name, data in recorded.items():
        assert (REPO / "benchmarks" / name).read_bytes() == data, name


def test_bench_harness_flags_a_malformed_result(tmp_path: Path) -> None:
    from run_all import BENCHES, check_results  # type: ignore[import-not-found]

    bench = next(b for b in BENCHES if b.name == "scaling")
    path = tmp_path / bench.results
    path.write_text(json.dumps({"benchmark": "x", "results": []}))
    problems = check_results(bench, path)
    assert any("lacks 'command'" in p for p in problems)
    assert any("'results' is empty" in p for p in problems)
    path.write_text("{not json")
    assert any("not valid JSON" in p for p in check_results(bench, path))
    assert any("was not written" in p for p in check_results(bench, tmp_path / "none.json"))
