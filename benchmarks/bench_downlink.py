"""Downlink figures: how many bytes leave the satellite against the raw and compressed bands.

For each sample scene (``sample_scenes/``) and a full-size 10,980 x 10,980 px 13-band
synthetic Sentinel-2 L1C scene (generated into ``benchmarks/_work/`` by the memory benchmark's
generator, or reused), this script measures:

* raw band bytes: the sum over bands of width x height x 2 bytes (12-bit samples stored as
  uint16) at each band's native resolution;
* zstd bytes: the bands compressed losslessly band by band, streaming (row blocks of uint16
  samples, zstd level 3) -- the baseline a satellite without triage would downlink;
* packet bytes: the framed CCSDS packets of the core product (manifest + report + detections),
  from ``pipeline.downlink.encode_scene``; the optional extras (64 px chips and a 256 px
  quicklook) are counted separately;
* the ratios raw / packets and zstd / packets, and packet bytes per detection sent.

Every stream is decoded again with ``ground_decoder.decode_stream`` and must give back the
same GeoJSON and report, or the benchmark fails.  Targets (full-size scene): packets >= 10,000x
smaller than the raw bands and >= 1,000x smaller than the zstd-compressed bands.

Usage::

    .venv/bin/python benchmarks/bench_downlink.py            # sample scenes + full-size scene
    .venv/bin/python benchmarks/bench_downlink.py --quick    # sample scenes only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from results_io import (
    BENCH_DIR,
    REPO,
    code_fingerprint,
    command_line,
    machine_facts,
    publish,
    section_header,
    software_facts,
)

SECTION = "## Downlink: packet bytes vs raw and compressed bands"
RESULTS_JSON = BENCH_DIR / "results_downlink.json"
WORK = BENCH_DIR / "_work"
FULL_SIZE = 10980
ZSTD_LEVEL = 3
BLOCK_ROWS = 1024
RAW_TARGET = 10_000
ZSTD_TARGET = 1_000
SMALL_RAW_FLOOR = 1_000


@dataclass
class SceneFigures:
    scene: str
    kind: str  # "sample" or "full-size synthetic"
    width: int
    height: int
    bands: int
    raw_bytes: int
    zstd_bytes: int
    zstd_s: float
    detectors: dict[str, str]
    detections: int
    features_sent: int
    geojson_json_bytes: int
    report_json_bytes: int
    packet_bytes: int
    packets: int
    bytes_by_kind: dict[str, int]
    extras_bytes: int | None
    extras_chips: int
    ratio_raw: float
    ratio_zstd: float
    bytes_per_detection: float | None
    round_trip_ok: bool
    geojson_form: str
    errors: list[str] = field(default_factory=list)


def zstd_band_bytes(scene: Any) -> tuple[int, float]:
    """Compressed size of every band, band by band, streaming row blocks (uint16 samples)."""
    import numpy as np
    import rasterio
    import zstandard
    from rasterio.windows import Window

    total = 0
    t0 = time.perf_counter()
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    for b in scene.bands:
        with rasterio.open(b.path) as ds:
            comp = cctx.compressobj()
            n = 0
            for r0 in range(0, b.height, BLOCK_ROWS):
                h = min(BLOCK_ROWS, b.height - r0)
                arr = ds.read(b.index, window=Window(0, r0, b.width, h))
                if arr.dtype != np.uint16:  # e.g. float32 DN: store as the sensor would
                    arr = np.clip(np.nan_to_num(arr), 0, 65535).round().astype(np.uint16)
                n += len(comp.compress(arr.tobytes()))
            n += len(comp.flush())
            total += n
    return total, time.perf_counter() - t0


_WRITER: Any = None
#: writer of each report ("llm" or "template" with its fallback reason)
_WRITERS_USED: list[str] = []


def real_report(result: Any, geojson: dict[str, Any]) -> dict[str, Any]:
    """report.json exactly as `eotriage run` writes it (the onboard LLM writer, default
    settings, model loaded once per benchmark), or the template dict when no detector ran."""
    global _WRITER
    from pipeline.report.writer import ReportWriter
    from pipeline.settings import ReportSettings

    if _WRITER is None:
        _WRITER = ReportWriter(ReportSettings())
    if result is None:
        return {"summary": f"{geojson['eotriage']['scene']}: no detector ran", "priority": "low"}
    # as read back from report.json (JSON types: lists, not tuples)
    report = json.loads(json.dumps(_WRITER.report(result).to_dict()))
    reason = report.get("fallback_reason")
    _WRITERS_USED.append(f"{report.get('writer')}" + (f" ({reason})" if reason else ""))
    return report


def _round5(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _round5(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round5(x) for x in v]
    return round(v, 5) if isinstance(v, float) else v


def compact(result: Any) -> tuple[dict[str, Any], str]:
    """The compact GeoJSON that is downlinked, and which helper made it."""
    try:
        from pipeline.report.compact import compact_geojson

        return compact_geojson(result), "pipeline.report.compact.compact_geojson"
    except ImportError:
        gj = _round5(result.to_geojson())
        gj["eotriage"] = {"scene": result.scene, "counts": result.counts(), "omitted": 0}
        return gj, "to_geojson() rounded to 5 decimals (stand-in)"


def available_detectors() -> tuple[str, ...]:
    from pipeline.core.detector import detector_type
    from pipeline.settings import KNOWN_DETECTORS

    out = []
    for name in KNOWN_DETECTORS:
        try:
            detector_type(name)
        except (ImportError, AttributeError, KeyError):
            continue
        out.append(name)
    return tuple(out)


def measure(path: Path, kind: str, detectors: tuple[str, ...]) -> tuple[SceneFigures, Any]:
    import ground_decoder
    from pipeline import Settings, run_scene
    from pipeline.core.scene import open_scene
    from pipeline.downlink import encode_scene, make_extras
    from pipeline.errors import EotriageError

    scene = open_scene(path)
    raw = sum(b.width * b.height * 2 for b in scene.bands)
    print(f"[{scene.name}] zstd level {ZSTD_LEVEL} over {raw / 2**20:.1f} MiB of bands", flush=True)
    zbytes, zs = zstd_band_bytes(scene)
    errors: list[str] = []
    settings = Settings().replace(detectors=detectors)
    try:
        result = run_scene(scene, settings)
        status = dict(result.detectors)
    except EotriageError as exc:  # no detector has this scene's bands
        result = None
        status = {"all": f"none ran: {exc}"}
    if result is not None:
        geojson, form = compact(result)
        n_det = len(result.detections)
    else:
        geojson = {
            "type": "FeatureCollection",
            "features": [],
            "eotriage": {"scene": scene.name, "counts": {}, "omitted": {}},
        }
        form, n_det = "empty (no detector ran)", 0
    report = real_report(result, geojson)
    plan = encode_scene(report, geojson, scene=scene.name)
    decoded = ground_decoder.decode_stream(plan.packets)
    ok = decoded.ok and decoded.geojson == geojson and decoded.report == report
    if not ok:
        errors.append(f"{scene.name}: decoded packets differ from what was encoded")
    extras_bytes: int | None = None
    chips = 0
    if geojson["features"] or kind == "sample":
        extras = make_extras(scene, geojson)
        with_extras = encode_scene(report, geojson, extras=extras, scene=scene.name)
        extras_bytes = with_extras.extras_bytes
        chips = len(extras.chips)
    n_sent = len(geojson["features"])
    packet_bytes = len(plan.packets)
    fig = SceneFigures(
        scene=scene.name,
        kind=kind,
        width=scene.grid.width,
        height=scene.grid.height,
        bands=len(scene.bands),
        raw_bytes=raw,
        zstd_bytes=zbytes,
        zstd_s=round(zs, 2),
        detectors=status,
        detections=n_det,
        features_sent=n_sent,
        geojson_json_bytes=len(json.dumps(geojson, separators=(",", ":")).encode()),
        report_json_bytes=len(json.dumps(report).encode()),
        packet_bytes=packet_bytes,
        packets=plan.packet_count,
        bytes_by_kind=plan.bytes_by_kind(),
        extras_bytes=extras_bytes,
        extras_chips=chips,
        ratio_raw=round(raw / packet_bytes, 1),
        ratio_zstd=round(zbytes / packet_bytes, 1),
        bytes_per_detection=round(packet_bytes / n_sent, 1) if n_sent else None,
        round_trip_ok=ok,
        geojson_form=form,
        errors=errors,
    )
    models = result.models if result is not None else {}
    return fig, models


def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def render_section(doc: dict[str, Any], rows: list[SceneFigures]) -> str:
    lines = section_header(doc, SECTION)
    lines += [
        "Raw = sum over bands of width x height x 2 bytes at native resolution (12-bit samples "
        "as uint16).  zstd = the same samples compressed losslessly band by band, streaming "
        f"{BLOCK_ROWS}-row blocks, zstd level {ZSTD_LEVEL} (`zstandard` "
        f"{doc['zstandard']}); float32 bands are stored as uint16 DN first.  Packets = the "
        "framed CCSDS space packets of the core product (manifest + report + detections, "
        "`pipeline.downlink.encode_scene`, no budget); extras (64 px JPEG chips per feature "
        "sent and a 256 px JPEG quicklook) are counted separately.  Bytes per detection = "
        "all core packet bytes / features sent.  Each stream was decoded "
        "with `ground_decoder.decode_stream` and gave back the same GeoJSON and report.",
        "",
        "The report is report.json as `eotriage run` writes it (the onboard LLM writer, "
        f"default settings: {doc['report_writer']}).  GeoJSON form: "
        f"{doc['geojson_forms']}.",
        "",
        "| scene | size (px) | bands | detections (sent) | raw bands | zstd bands | GeoJSON "
        "text | packets (bytes / count) | raw / packets | zstd / packets | bytes per detection "
        "| extras bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scene} ({r.kind}) | {r.width:,} x {r.height:,} | {r.bands} | "
            f"{r.detections} ({r.features_sent}) | {_fmt_int(r.raw_bytes)} | "
            f"{_fmt_int(r.zstd_bytes)} | {_fmt_int(r.geojson_json_bytes)} | "
            f"{r.packet_bytes:,} / {r.packets} | {r.ratio_raw:,.0f}x | {r.ratio_zstd:,.0f}x | "
            f"{'-' if r.bytes_per_detection is None else f'{r.bytes_per_detection:.1f}'} | "
            f"{_fmt_int(r.extras_bytes)} ({r.extras_chips} chips + quicklook) |"
        )
    lines.append("")
    full = [r for r in rows if r.kind != "sample"]
    for r in full:
        ok_raw = r.ratio_raw >= RAW_TARGET
        ok_z = r.ratio_zstd >= ZSTD_TARGET
        lines.append(
            f"Full-size scene: packets are **{r.ratio_raw:,.0f}x** smaller than the raw bands "
            f"(target >= {RAW_TARGET:,}x: {'met' if ok_raw else 'NOT met'}) and "
            f"**{r.ratio_zstd:,.0f}x** smaller than the zstd-compressed bands (target >= "
            f"{ZSTD_TARGET:,}x: {'met' if ok_z else 'NOT met'}); zstd itself gains "
            f"{r.raw_bytes / r.zstd_bytes:.2f}x over raw ({r.zstd_s:.1f} s to compress).  "
            f"Per kind: {', '.join(f'{k} {v:,} B' for k, v in r.bytes_by_kind.items() if v)}."
        )
    small = [r for r in rows if r.kind == "sample"]
    if small:
        worst = min(small, key=lambda r: r.ratio_raw)
        lines.append("")
        lines.append(
            f"Sample crops (a few MB raw, floor >= {SMALL_RAW_FLOOR:,}x vs raw): lowest ratio "
            f"{worst.ratio_raw:,.0f}x ({worst.scene}).  Detectors per scene: "
            + "; ".join(
                f"{r.scene}: " + ", ".join(f"{k} {v}" for k, v in r.detectors.items())
                for r in small
            )
            + "."
        )
    if not full:
        lines += ["", "Quick mode: the full-size scene was not measured."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="sample scenes only (no full-size scene)")
    ap.add_argument("--seed", type=int, default=0, help="full-size scene seed (0)")
    args = ap.parse_args(argv[1:])
    WORK.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    software = software_facts()
    import zstandard

    detectors = available_detectors()
    index = json.loads((REPO / "sample_scenes" / "scenes.json").read_text())
    targets: list[tuple[Path, str]] = [
        (REPO / "sample_scenes" / s["name"], "sample") for s in index["scenes"]
    ]
    if not args.quick:
        from bench_memory import ensure_scene

        full, _reused, _gen_s = ensure_scene(FULL_SIZE, args.seed, False)
        targets.append((full, "full-size synthetic"))
    rows: list[SceneFigures] = []
    models: dict[str, str] = {}
    errors: list[str] = []
    for path, kind in targets:
        try:
            fig, m = measure(path, kind, detectors)
        except Exception as exc:  # noqa: BLE001 - a benchmark records every failure
            errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        rows.append(fig)
        errors += fig.errors
        for name, info in m.items():
            models[name] = f"{name} {info.get('version', '?')} {str(info.get('sha256', ''))[:12]}"
        print(
            f"[{fig.scene}] raw {fig.raw_bytes:,} B, zstd {fig.zstd_bytes:,} B, packets "
            f"{fig.packet_bytes:,} B -> {fig.ratio_raw:,.0f}x raw, {fig.ratio_zstd:,.0f}x zstd",
            flush=True,
        )
    if code_fingerprint() != software["code_sha256"]:
        errors.append(
            "pipeline/ or models/ changed while the benchmark ran; results mix code "
            "versions, re-run on a quiet tree"
        )
    doc: dict[str, Any] = {
        "benchmark": "downlink bytes",
        "command": command_line(argv, "benchmarks/bench_downlink.py"),
        "date_utc": date,
        "machine": machine_facts(),
        "software": software,
        "models": ", ".join(sorted(models.values())) or "none ran",
        "zstandard": zstandard.__version__,
        "zstd_level": ZSTD_LEVEL,
        "detectors": list(detectors),
        "report_writer": "reports written by: "
        + ", ".join(f"{w} x{_WRITERS_USED.count(w)}" for w in sorted(set(_WRITERS_USED))),
        "geojson_forms": ", ".join(sorted({r.geojson_form for r in rows})),
        "targets": {"raw": RAW_TARGET, "zstd": ZSTD_TARGET, "small_raw_floor": SMALL_RAW_FLOOR},
        "results": [asdict(r) for r in rows],
        "total_benchmark_s": round(time.perf_counter() - t_start, 2),
    }
    if errors:
        doc["errors"] = errors
    return publish(
        doc,
        lambda: render_section(doc, rows),
        SECTION,
        RESULTS_JSON,
        WORK / "last_failed_downlink.json",
    )


if __name__ == "__main__":
    raise SystemExit(main())
