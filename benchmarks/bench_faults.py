"""Fault injection: what upsets, broken inputs, crashes and corrupt models do to the results.

* **Upsets (SEU)**: random bit flips in the stored band samples (``pipeline.testing.faults``) at a
  *realistic* rate, at 100x that rate, and at a stress rate where the hardened pipeline
  (defaults) is compared with the same pipeline with its input checks off.  A false alert is a
  detection with no detection of its class in the clean run within 50 m (crop stress: no
  overlapping clean polygon); a lost alert is the reverse.
* **Input faults**: a stuck row, a stuck column, NaN and zero-filled windows, a truncated file.
* **Crashes**: ``eotriage run --resume --outbox`` SIGKILLed at random moments until it finishes;
  results lost (detections differing from an uninterrupted run) and packets duplicated in the
  outbox must both be 0.
* **Model integrity**: a corrupt primary model (golden copy used), and the cost of dual execution.

    .venv/bin/python benchmarks/bench_faults.py            # shared data, ~6 min
    .venv/bin/python benchmarks/bench_faults.py --quick    # sample scenes, few trials, < 90 s

The realistic rate is an assumption, stated in RESULTS.md: 1e-8 upsets per stored bit per scene.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from results_io import (
    REPO,
    code_fingerprint,
    command_line,
    machine_facts,
    publish,
    section_header,
    software_facts,
)

SECTION = "## Fault injection: upsets, broken inputs, crashes, corrupt models"
RESULTS_JSON = Path(__file__).resolve().parent / "results_faults.json"
WORK = Path(__file__).resolve().parent / "_work" / "faults"
SHARED = Path(os.environ.get("EOTRIAGE_SHARED_DATA", REPO.parent / "shared" / "data"))
#: upsets per stored bit per scene
REALISTIC = 1e-8
STRESS = 1e-5
MATCH_M = 50.0


def _scenes(quick: bool) -> list[tuple[str, Path, tuple[str, ...]]]:
    if not quick and SHARED.is_dir():
        return [
            ("virginia L1C 1024 px", SHARED / "s2_l1c_virginia", ("fire", "ships", "crop")),
            ("G90292 fire 400 px", SHARED / "s2_fire" / "G90292", ("fire",)),
            ("busan port", SHARED / "sen2ships" / "busan", ("ships",)),
        ]
    s = REPO / "sample_scenes"
    return [
        ("virginia crop 512 px", s / "s2_l1c_virginia_crop", ("fire", "ships", "crop")),
        ("G90292 fire 400 px", s / "s2_fire_G90292", ("fire",)),
        ("casablanca port", s / "sen2ships_casablanca", ("ships",)),
    ]


def _unhardened(settings: Any) -> Any:
    from pipeline.settings import FireSettings, RobustnessSettings

    return settings.replace(
        robustness=RobustnessSettings(max_reflectance=1e9, stuck_line_px=0),
        fire=FireSettings(
            one_sample_spill_min=0.0, one_sample_rise_min=0.0, one_sample_tint_min=0.0
        ),
    )


def _unmatched(these: Sequence[Any], those: Sequence[Any]) -> dict[str, int]:
    """Detections in ``these`` with no counterpart of their class in ``those``, per class."""
    from pipeline.evaluation.scoring import detection_lonlat, distance_m

    out: dict[str, int] = {}
    for d in these:
        same = [o for o in those if o.cls == d.cls]
        if d.cls == "crop_stress":
            hit = any(d.geometry.intersects(o.geometry) for o in same)
        else:
            lon, lat = detection_lonlat(d)
            hit = any(distance_m(lon, lat, *detection_lonlat(o)) <= MATCH_M for o in same)
        if not hit:
            out[d.cls] = out.get(d.cls, 0) + 1
    return out


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def _tmp(name: str) -> Path:
    d = WORK / name
    shutil.rmtree(d, ignore_errors=True)
    d.parent.mkdir(parents=True, exist_ok=True)
    return d


def upsets(quick: bool, rng: np.random.Generator) -> list[dict[str, Any]]:
    """False and lost alerts per scene at the realistic, 100x and stress upset rates.

    At the stress rate both modes run on the same damaged copies.
    """
    from pipeline import Settings
    from pipeline.core.engine import run_scene
    from pipeline.testing.faults import inject_upsets

    rows: list[dict[str, Any]] = []
    plan = [
        ("realistic", REALISTIC, 3 if quick else 40),
        ("100x", 100 * REALISTIC, 3 if quick else 40),
        ("stress", STRESS, 1 if quick else 5),
    ]
    for label, path, dets in _scenes(quick):
        hard = Settings(detectors=dets)
        settings = {"hardened": hard, "checks off": _unhardened(hard)}
        clean = {m: run_scene(path, s) for m, s in settings.items()}
        for rate_name, rate, trials in plan:
            modes = list(settings) if rate_name == "stress" else ["hardened"]
            acc = {m: _Acc() for m in modes}
            flips = bits = 0
            t0 = time.perf_counter()
            for t in range(trials):
                dst = _tmp(f"seu_{t}")
                inj = inject_upsets(path, dst, rate, rng)
                flips += len(inj.upsets)
                bits = inj.bits
                for m in modes:
                    acc[m].add(run_scene(inj.scene, settings[m]), clean[m])
                shutil.rmtree(dst, ignore_errors=True)
            for m in modes:
                a = acc[m]
                rows.append(
                    {
                        "scene": label,
                        "detectors": list(dets),
                        "rate_name": rate_name,
                        "rate_per_bit": rate,
                        "mode": m,
                        "trials": trials,
                        "bits_per_scene": bits,
                        "upsets": flips,
                        "upsets_per_scene": round(flips / trials, 2),
                        "clean_alerts": len(clean[m].detections),
                        "false_alerts": a.false,
                        "false_alerts_total": sum(a.false.values()),
                        "false_alerts_per_scene": round(sum(a.false.values()) / trials, 3),
                        "false_fire_or_ship_per_1000_upsets": round(
                            1000
                            * (a.false.get("fire", 0) + a.false.get("ship", 0))
                            / max(flips, 1),
                            2,
                        ),
                        "scenes_with_false_alerts": a.scenes_with_false,
                        "lost_alerts": a.lost,
                        "samples_flagged_invalid": a.invalid,
                        "samples_repaired": a.repaired,
                        "tile_failures": a.failed,
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
                print(
                    f"[upsets] {label} {rate_name} {m}: {flips} upsets in {trials} scenes, "
                    f"false {a.false or 0}, lost {a.lost or 0}, flagged {a.invalid}, "
                    f"repaired {a.repaired}",
                    flush=True,
                )
    return rows


class _Acc:
    """Running totals of one mode over the trials."""

    def __init__(self) -> None:
        self.false: dict[str, int] = {}
        self.lost: dict[str, int] = {}
        self.scenes_with_false = self.invalid = self.repaired = self.failed = 0

    def add(self, res: Any, clean: Any) -> None:
        new = _unmatched(res.detections, clean.detections)
        _add(self.false, new)
        _add(self.lost, _unmatched(clean.detections, res.detections))
        self.scenes_with_false += bool(new)
        self.invalid += sum(res.info["invalid_samples"].values()) - sum(
            clean.info["invalid_samples"].values()
        )
        self.repaired += sum(res.info["repaired_samples"].values())
        self.failed += len(res.failures)


def input_faults(quick: bool) -> list[dict[str, Any]]:
    """One broken input each: stuck lines, NaN / zero windows, a truncated band file."""
    import rasterio
    from rasterio.windows import Window

    from pipeline import Settings
    from pipeline.core.engine import run_scene
    from pipeline.testing.faults import copy_scene, fill_window, stick_line, truncate

    scenes = {label: (path, dets) for label, path, dets in _scenes(quick)}
    l1c_label = next(k for k in scenes if "virginia" in k)
    fire_label = next(k for k in scenes if "G90292" in k)
    l1c, l1c_dets = scenes[l1c_label]
    fire, _ = scenes[fire_label]
    fire_file = next(fire.glob("*.tif"))

    def b(name: str) -> Callable[[Path], Path]:
        return lambda d: d / f"{name}.tif"

    def fire_tif(d: Path) -> Path:
        return d / fire_file.name

    with rasterio.open(l1c / "B12.tif") as ds:
        h20, w20 = ds.height, ds.width
    cases: list[tuple[str, str, Path, tuple[str, ...], Callable[[Path], str]]] = [
        (
            "B12 row stuck at 0.60 (a line that looks hot)",
            l1c_label,
            l1c,
            l1c_dets,
            lambda d: (stick_line(b("B12")(d), 1, "row", h20 // 3, 6000), "")[1],
        ),
        (
            "B08 column stuck at 0.45 (a bright line across water)",
            l1c_label,
            l1c,
            l1c_dets,
            lambda d: (stick_line(b("B08")(d), 1, "col", 2 * w20 // 3, 4500), "")[1],
        ),
        (
            "NaN window 100 x 100 px in the SWIR stack",
            fire_label,
            fire,
            ("fire",),
            lambda d: (fill_window(fire_tif(d), 3, Window(250, 250, 100, 100), np.nan), "")[1],
        ),
        (
            "zero-filled window 100 x 100 px in B11",
            l1c_label,
            l1c,
            l1c_dets,
            lambda d: (fill_window(b("B11")(d), 1, Window(50, 50, 100, 100), 0), "")[1],
        ),
        (
            "B12 file truncated to 60 % (a write cut by power loss)",
            l1c_label,
            l1c,
            l1c_dets,
            lambda d: f"{truncate(b('B12')(d), 0.6)} bytes cut",
        ),
    ]
    rows: list[dict[str, Any]] = []
    for name, label, path, dets, damage in cases:
        hard = Settings(detectors=dets, tile_size=256)
        for mode, settings in (("hardened", hard), ("checks off", _unhardened(hard))):
            clean = run_scene(path, settings)
            dst = _tmp("input_fault")
            copy = copy_scene(path, dst)
            note = damage(copy)
            row: dict[str, Any] = {"fault": name, "scene": label, "mode": mode, "note": note}
            try:
                res = run_scene(copy, settings)
            except Exception as exc:  # noqa: BLE001 - record whatever escaped
                row.update(outcome=f"{type(exc).__name__}: {exc}", completed=False)
            else:
                skipped = [n for n, st in res.detectors.items() if st.startswith("skipped")]
                row.update(
                    completed=True,
                    outcome="scene completed"
                    + (f"; {', '.join(skipped)} skipped (band unreadable)" if skipped else ""),
                    false_alerts=_unmatched(res.detections, clean.detections),
                    lost_alerts=_unmatched(clean.detections, res.detections),
                    samples_flagged_invalid=sum(res.info["invalid_samples"].values())
                    - sum(clean.info["invalid_samples"].values()),
                    samples_repaired=sum(res.info["repaired_samples"].values()),
                    tiles_failed=len(res.failures),
                    tiles_total=res.tiles_total,
                    first_failure=res.failures[0].cause[:160] if res.failures else "",
                )
            rows.append(row)
            shutil.rmtree(dst, ignore_errors=True)
            print(
                f"[input] {name} ({mode}): {row.get('false_alerts')} {row['outcome']}", flush=True
            )
    return rows


def crashes(quick: bool) -> list[dict[str, Any]]:
    """SIGKILL soak of `eotriage run --resume --outbox` against an uninterrupted run."""
    import subprocess

    from ground_decoder.decode import decode_stream
    from pipeline.downlink.outbox import Outbox
    from pipeline.testing.faults import sigkill_soak

    scenes = [
        REPO / "sample_scenes" / "s2_fire_G90292",
        REPO / "sample_scenes" / "s2_l1c_virginia_crop",
    ]
    common = ["--no-llm", "--tile-size", "64", "--overlap", "32", "--no-progress"]
    ref = _tmp("crash_ref")
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "run",
            *map(str, scenes),
            "--out",
            str(ref),
            *common,
        ],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    ref_s = time.perf_counter() - t0
    rows = []
    for loop in range(1 if quick else 5):
        out, box = _tmp(f"crash_out_{loop}"), _tmp(f"crash_box_{loop}")
        args = [
            "run",
            *map(str, scenes),
            "--out",
            str(out),
            "--outbox",
            str(box),
            "--resume",
            *common,
        ]
        soak = sigkill_soak(args, np.random.default_rng(100 + loop), ref_s, cwd=REPO)
        lost = 0
        resumed = 0
        for s in scenes:
            got = out / s.name / "detections.geojson"
            want = ref / s.name / "detections.geojson"
            if not got.is_file() or json.loads(got.read_text()) != json.loads(want.read_text()):
                lost += 1
            run_json = out / s.name / "run.json"
            if run_json.is_file():
                resumed += int(json.loads(run_json.read_text())["tiles"].get("resumed", 0))
        with Outbox(box) as ob:
            items = ob.items()
            names = [i.name for i in items]
            dup = len(names) - len(set(names))
            contents = [ob.read(i.id) for i in items]
            dup += len(contents) - len(set(contents))
            undecodable = sum(1 for c in contents if not decode_stream(c).damage.ok)
            missing = len(scenes) - len(set(names))
        rows.append(
            {
                "loop": loop,
                "attempts": soak.attempts,
                "kills": soak.kills,
                "kill_times_s": list(soak.kill_times_s),
                "exit_code": soak.exit_code,
                "scenes": len(scenes),
                "results_lost": lost,
                "packets_duplicated": dup,
                "packets_missing": missing,
                "packets_undecodable": undecodable,
                "tiles_resumed_in_final_run": resumed,
                "uninterrupted_run_s": round(ref_s, 2),
            }
        )
        print(f"[crash] loop {loop}: {soak.kills} kills, lost {lost}, duplicated {dup}", flush=True)
    return rows


def integrity(quick: bool) -> dict[str, Any]:
    """Corrupt primary model -> golden copy; dual execution: cost and injected compute faults."""
    from pipeline import Settings
    from pipeline.core import onnx_models
    from pipeline.core.engine import run_scene
    from pipeline.settings import RobustnessSettings

    fire = REPO / "sample_scenes" / "s2_fire_G90292"
    models = _tmp("models")
    shutil.copytree(REPO / "models", models, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    target = models / "fire_swir.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit in the stored model
    target.write_bytes(bytes(data))
    clean = run_scene(fire, Settings(detectors=("fire",)))
    res = run_scene(fire, Settings(detectors=("fire",), models_dir=models))
    events = [e for e in res.info["model_events"] if e.get("event") == "golden_fallback"]
    golden = {
        "fault": "one bit flipped in models/fire_swir.onnx",
        "events": events,
        "same_detections": _features(res) == _features(clean),
    }

    # dual execution cost: whole detect time and the time inside the ONNX models
    scene = REPO / "sample_scenes" / "s2_l1c_virginia_crop"
    cfg = {
        mode: Settings(robustness=RobustnessSettings(dual_execution=mode == "dual"))
        for mode in ("single", "dual")
    }
    onnx_s = [0.0]
    plain = onnx_models.OnnxModel.run

    def timed(self: Any, feeds: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return plain(self, feeds)
        finally:
            onnx_s[0] += time.perf_counter() - t0

    times: dict[str, dict[str, list[float]]] = {m: {"detect": [], "onnx": []} for m in cfg}
    ref = {m: _features(run_scene(scene, s)) for m, s in cfg.items()}  # warm-up too
    onnx_models.OnnxModel.run = timed  # type: ignore[method-assign]
    try:
        for i in range(3 if quick else 9):
            for mode in ("single", "dual") if i % 2 == 0 else ("dual", "single"):
                onnx_s[0] = 0.0
                r = run_scene(scene, cfg[mode])
                times[mode]["detect"].append(r.timings_s["detect"])
                times[mode]["onnx"].append(onnx_s[0])
    finally:
        onnx_models.OnnxModel.run = plain  # type: ignore[method-assign]
    med = {m: {k: statistics.median(v) for k, v in t.items()} for m, t in times.items()}

    # injected silent compute faults, caught by dual execution (fire model, G90292, 4 tiles)
    injected = {}
    for kind in ("one-off", "persistent"):
        d = _tmp(f"models_{kind}")
        shutil.copytree(REPO / "models", d, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        s = Settings(detectors=("fire",), tile_size=256, models_dir=d)
        s = s.replace(robustness=RobustnessSettings(dual_execution=True))
        model = onnx_models.detector_model("fire_swir", s)
        model.fault_hook = _fault_hook(kind)
        r = run_scene(fire, s)
        model.fault_hook = None
        injected[kind] = {
            "events": sorted({e["event"] for e in r.info["model_events"]}),
            "tiles_failed": len(r.failures),
            "tiles_total": r.tiles_total,
            "fires": len(r.detections),
            "fires_clean": len(clean.detections),
        }
    return {
        "golden": golden,
        "dual_execution": {
            "scene": "sample_scenes/s2_l1c_virginia_crop (fire, ships, crop)",
            "repeats": len(times["single"]["detect"]),
            "detect_s_single_median": round(med["single"]["detect"], 4),
            "detect_s_dual_median": round(med["dual"]["detect"], 4),
            "cost_ratio": round(med["dual"]["detect"] / med["single"]["detect"], 2),
            "onnx_s_single_median": round(med["single"]["onnx"], 4),
            "onnx_s_dual_median": round(med["dual"]["onnx"], 4),
            "onnx_cost_ratio": round(med["dual"]["onnx"] / med["single"]["onnx"], 2),
            "same_detections": ref["single"] == ref["dual"],
        },
        "injected_compute_faults": injected,
    }


def _features(result: Any) -> list[Any]:
    return [d.to_feature() for d in result.detections]


def _fault_hook(kind: str) -> Callable[[int, int, list[np.ndarray]], list[np.ndarray]]:
    """A silent compute fault in the first model call: once, or different in every execution."""

    def hook(call: int, attempt: int, out: list[np.ndarray]) -> list[np.ndarray]:
        if call != 0 or (kind == "one-off" and attempt != 1):
            return out
        bad = [o.copy() for o in out]
        flat = bad[0].reshape(-1)
        flat[attempt % flat.size] = flat[attempt % flat.size] + 1 + attempt
        return bad

    return hook


def _fmt(d: dict[str, int] | None) -> str:
    if not d:
        return "0"
    return ", ".join(f"{v} {k}" for k, v in sorted(d.items()))


def render(doc: dict[str, Any]) -> str:
    lines = [
        *section_header(doc, SECTION),
        f"Upsets: each trial copies the scene and flips Poisson(rate x bits) random bits of its "
        f"stored band samples (any bit: sign, exponent, mantissa or integer), then runs "
        f"`pipeline.core.engine.run_scene` with default settings (*hardened*) or with the input "
        f"checks "
        f"off (*checks off*: no impossible-value or stuck-line flags, no second check of "
        f"one-sample fires).  The realistic rate, {REALISTIC:g} upsets per stored bit per scene, "
        f"is an assumption at the pessimistic end for unprotected memory in LEO (a scene held "
        f"in mass memory for hours through the South Atlantic Anomaly); published SDRAM rates "
        f"are 1e-10 to 1e-7 per bit per day.  A false alert has no same-class detection of the "
        f"clean run within {MATCH_M:g} m (crop stress: no overlapping clean polygon).",
        "",
        "| scene | rate | mode | scenes | upsets | false alerts | per scene | fire+ship per "
        "1000 upsets | lost alerts | samples invalid | samples repaired |",
        "|---|---|---|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for r in doc["upsets"]:
        lines.append(
            f"| {r['scene']} | {r['rate_name']} ({r['rate_per_bit']:g}/bit) | {r['mode']} | "
            f"{r['trials']} | {r['upsets']} | {_fmt(r['false_alerts'])} | "
            f"{r['false_alerts_per_scene']} | {r['false_fire_or_ship_per_1000_upsets']} | "
            f"{_fmt(r['lost_alerts'])} | {r['samples_flagged_invalid']} | "
            f"{r['samples_repaired']} |"
        )
    lines += [
        "",
        "Input faults (tile 256 px; one damaged copy each; both modes against their own clean "
        "run):",
        "",
        "| fault | scene | mode | outcome | false alerts | lost alerts | samples invalid | "
        "samples repaired | tiles failed |",
        "|---|---|---|---|---|---|---:|---:|---|",
    ]
    for r in doc["input_faults"]:
        failed = f"{r.get('tiles_failed', '-')} / {r.get('tiles_total', '-')}"
        lines.append(
            f"| {r['fault']} | {r['scene']} | {r['mode']} | {r['outcome']} | "
            f"{_fmt(r.get('false_alerts'))} | {_fmt(r.get('lost_alerts'))} | "
            f"{r.get('samples_flagged_invalid', '-')} | {r.get('samples_repaired', '-')} | "
            f"{failed} |"
        )
    lines += [
        "",
        "Crashes: `eotriage run G90292 virginia_crop --out O --outbox B --resume --no-llm "
        "--tile-size 64` SIGKILLed at random moments (0.15-1.2 x an uninterrupted run's time) "
        "until it finishes (`pipeline.testing.faults.sigkill_soak`), then compared with an "
        "uninterrupted run:",
        "",
        "| loop | attempts | kills | results lost | packets duplicated | packets missing | "
        "undecodable | tiles resumed (last run) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["crashes"]:
        lines.append(
            f"| {r['loop']} | {r['attempts']} | {r['kills']} | {r['results_lost']} | "
            f"{r['packets_duplicated']} | {r['packets_missing']} | {r['packets_undecodable']} | "
            f"{r['tiles_resumed_in_final_run']} |"
        )
    g = doc["integrity"]["golden"]
    du = doc["integrity"]["dual_execution"]
    inj = doc["integrity"]["injected_compute_faults"]
    lines += [
        "",
        f"Model integrity: {g['fault']}: {len(g['events'])} golden-copy fallback event(s) in "
        f"run.json, detections identical to the clean run: {g['same_detections']}.",
        "",
        f"Dual execution (`[robustness] dual_execution = true`) on {du['scene']}, median of "
        f"{du['repeats']} interleaved runs: detect {du['detect_s_single_median']} s -> "
        f"{du['detect_s_dual_median']} s (x{du['cost_ratio']}); time inside the ONNX models "
        f"{du['onnx_s_single_median']} s -> {du['onnx_s_dual_median']} s "
        f"(x{du['onnx_cost_ratio']}); identical detections: {du['same_detections']}.  The "
        "models are a small part of detect time (the rest is OpenCV/numpy post-processing, "
        "which dual execution does not cover).",
        "",
        "Injected silent compute faults (fire model, first call, via `OnnxModel.fault_hook`; "
        "G90292 in 4 tiles, dual execution on):",
        "",
        "| fault | events | tiles failed | fires (clean) |",
        "|---|---|---|---|",
    ]
    for kind, r in inj.items():
        lines.append(
            f"| {kind} | {', '.join(r['events']) or '-'} | {r['tiles_failed']} / "
            f"{r['tiles_total']} | {r['fires']} ({r['fires_clean']}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="sample scenes, few trials (< 90 s)")
    args = ap.parse_args(argv[1:])
    WORK.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    software = software_facts()
    rng = np.random.default_rng(2026)
    errors: list[str] = []
    parts: dict[str, Any] = {}
    for name, fn in (
        ("upsets", lambda: upsets(args.quick, rng)),
        ("input_faults", lambda: input_faults(args.quick)),
        ("crashes", lambda: crashes(args.quick)),
        ("integrity", lambda: integrity(args.quick)),
    ):
        try:
            parts[name] = fn()
        except Exception as exc:  # noqa: BLE001 - a benchmark records every failure
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            parts[name] = [] if name != "integrity" else {}
    for r in parts.get("crashes", []):
        if r["results_lost"] or r["packets_duplicated"] or r["packets_missing"]:
            errors.append(f"crash loop {r['loop']}: results lost or packets duplicated: {r}")
    if code_fingerprint() != software["code_sha256"]:
        errors.append("pipeline/ or models/ changed while the benchmark ran; re-run")
    doc: dict[str, Any] = {
        "benchmark": "fault injection",
        "command": command_line(argv, "benchmarks/bench_faults.py"),
        "date_utc": date,
        "machine": machine_facts(),
        "software": software,
        "models": "as in models/manifest.json",
        "realistic_rate_per_bit": REALISTIC,
        **parts,
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "total_benchmark_s": round(time.perf_counter() - t_start, 2),
    }
    if errors:
        doc["errors"] = errors
    return publish(doc, lambda: render(doc), SECTION, RESULTS_JSON, WORK / "last_failed.json")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
