"""Write a scene's products: ``detections.geojson``, the report files and ``run.json``."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .results import SceneResult

if TYPE_CHECKING:
    from .downlink.plan import DownlinkPlan
    from .report.writer import ReportWriter, WrittenReport
    from .settings import DownlinkSettings


@dataclass(frozen=True)
class WrittenScene:
    """Where a scene's products went."""

    directory: Path
    geojson: Path
    run_json: Path
    geojson_bytes: int
    #: report.txt, report.json and compact.geojson (``None`` when not written)
    report: WrittenReport | None = None
    #: the scene's packets for the ground (report + compact GeoJSON + extras)
    downlink: Path | None = None
    plan: DownlinkPlan | None = None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


_atomic_write = atomic_write


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
            "resumed": result.info.get("resumed_tiles", 0),
            "failures": [f.to_dict() for f in result.failures],
        },
        #: golden-copy fallbacks and compute faults of the models (see pipeline.onnx_models)
        "model_events": list(result.info.get("model_events", [])),
        "problems": list(result.problems),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_scene(
    result: SceneResult,
    out_dir: str | Path,
    reports: ReportWriter | None = None,
    downlink: DownlinkSettings | None = None,
) -> WrittenScene:
    """Write ``OUT/<scene>/detections.geojson``, the report files (``report.txt``,
    ``report.json``, ``compact.geojson``), ``downlink.bin`` and ``OUT/<scene>/run.json``,
    each atomically.

    ``reports`` writes the text report (LLM or template, loaded once and reused across
    scenes); ``None`` uses the template writer only.  ``downlink`` sets the pass budget and
    the optional extras (default: no budget, no extras).  ``run.json`` is written last.
    """
    from .report.writer import ReportWriter
    from .settings import DownlinkSettings, ReportSettings

    d = Path(out_dir) / result.scene
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gj = result.geojson_bytes()
    gj_path = d / "detections.geojson"
    _atomic_write(gj_path, gj)
    write_s = time.perf_counter() - t0
    writer = reports if reports is not None else ReportWriter(ReportSettings(use_llm=False))
    written_report = writer.write(result, d)
    run_path = d / "run.json"
    summary = run_summary(result, len(gj), write_s)
    summary["output_bytes"].update(written_report.bytes)
    summary["report"] = written_report.report.run_section()
    plan = _write_downlink(result, d, written_report, downlink or DownlinkSettings())
    summary["output_bytes"]["downlink.bin"] = len(plan.packets)
    summary["downlink"] = plan.summary()
    _atomic_write(run_path, (json.dumps(summary, indent=2) + "\n").encode())
    return WrittenScene(d, gj_path, run_path, len(gj), written_report, d / "downlink.bin", plan)


def _write_downlink(
    result: SceneResult, d: Path, written: WrittenReport, settings: DownlinkSettings
) -> DownlinkPlan:
    """Pack report.json + compact.geojson (+ extras) into ``downlink.bin``."""
    from .downlink import encode_scene

    report = json.loads(written.report_json.read_text())
    compact = json.loads(written.compact_geojson.read_text())
    extras = None
    if settings.chips or settings.quicklook:
        from .downlink import make_extras
        from .scene import open_scene

        scene = open_scene(result.info["path"], sensor=result.info.get("sensor"))
        extras = make_extras(
            scene,
            compact,
            chips=settings.chips,
            chip_size=settings.chip_size,
            max_chips=settings.max_chips,
            quicklook=settings.quicklook,
            quicklook_width=settings.quicklook_width,
        )
    plan = encode_scene(
        report, compact, extras=extras, budget_bytes=settings.budget_bytes, scene=result.scene
    )
    _atomic_write(d / "downlink.bin", plan.packets)
    return plan
