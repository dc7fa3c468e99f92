"""Write a scene's products: ``detections.geojson`` and ``run.json``."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .results import SceneResult


@dataclass(frozen=True)
class WrittenScene:
    """Where a scene's products went."""

    directory: Path
    geojson: Path
    run_json: Path
    geojson_bytes: int


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_summary(result: SceneResult, geojson_bytes: int, write_s: float) -> dict[str, Any]:
    timings = dict(result.timings_s)
    timings["write"] = round(write_s, 4)
    return {
        "eotriage_version": __version__,
        "scene": result.scene,
        "ok": result.ok,
        "input": result.info,
        "input_bytes": result.info.get("input_bytes"),
        "output_bytes": {"detections.geojson": geojson_bytes},
        "counts": result.counts(),
        "detectors": dict(result.detectors),
        "models": {k: dict(v) for k, v in result.models.items()},
        "timings_s": timings,
        "tiles": {
            "total": result.tiles_total,
            "failed": len(result.failures),
            "failures": [f.to_dict() for f in result.failures],
        },
        "problems": list(result.problems),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_scene(result: SceneResult, out_dir: str | Path) -> WrittenScene:
    """Write ``OUT/<scene>/detections.geojson`` and ``OUT/<scene>/run.json`` atomically."""
    d = Path(out_dir) / result.scene
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gj = result.geojson_bytes()
    gj_path = d / "detections.geojson"
    _atomic_write(gj_path, gj)
    write_s = time.perf_counter() - t0
    run_path = d / "run.json"
    summary = run_summary(result, len(gj), write_s)
    _atomic_write(run_path, (json.dumps(summary, indent=2) + "\n").encode())
    return WrittenScene(d, gj_path, run_path, len(gj))
