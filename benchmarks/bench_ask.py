#!/usr/bin/env python3
"""Ask the satellite: are questions understood, and answered right, from real runs?

The store is built from real runs: ``eotriage run`` on the sample scenes and on the
``../shared/data`` scenes listed in ``benchmarks/ask/scenes.json`` (those present), then
``eotriage store add`` (acquisition times from the scenes' metadata and sidecars).

Two question sets are asked: ``benchmarks/ask/corpus.jsonl`` (the corpus the parser was tuned
on) and ``benchmarks/ask/heldout.jsonl`` (written before the parser, never tuned on; reported
apart).  Each line carries its own truth, written by hand: a structured spec (operation, class,
scenes, size bounds, point, radius, box, time window, top N) or ``"not understood"``.  The
expected answer is computed from the spec by a brute-force function over the runs'
``detections.geojson`` and ``run.json`` and the hand-entered acquisition dates of
``scenes.json``: no parser, no store, no SQL.

An answer is **right** when it is "not understood" and the truth is too, or when its query
equals the spec (class, operation, scenes, bounds, point, time window...) and its facts equal
the brute-force result (count, the detections named, scenes searched and not checked, most /
fewest scenes, total area).  A wrong answer is either a **miss** (the system said "not
understood" to a question it should have answered: safe, the ground asks again) or an
**answer to a different question** (it answered, but not the question asked: the hard target is
zero of these).

Every question and answer goes through the packet codecs.  Latency = ``answer_question`` wall
time on 2 CPU cores with the LLM loaded (the LLM runs only for words the parser does not know).

Results go to the section "## Ask the satellite: onboard answers" of RESULTS.md and to
``benchmarks/results_ask.json``.  Exit 1 when a question gets no answer packet.

Usage::

    .venv/bin/python benchmarks/bench_ask.py            # full: every scene present, with LLM
    .venv/bin/python benchmarks/bench_ask.py --quick    # sample scenes only, no LLM (CI)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results_io import (
    BENCH_DIR,
    REPO,
    command_line,
    machine_facts,
    publish,
    section_header,
    software_facts,
)

SECTION = "## Ask the satellite: onboard answers"
RESULTS_JSON = BENCH_DIR / "results_ask.json"
FAILED_JSON = BENCH_DIR / "_work" / "last_failed_ask.json"
ASK_DIR = BENCH_DIR / "ask"
CORPUS = ASK_DIR / "corpus.jsonl"
HELDOUT = ASK_DIR / "heldout.jsonl"
SCENES = ASK_DIR / "scenes.json"
#: "now" for questions without their own asked_utc (relative times are read against it)
ASKED_UTC = "2026-12-06T12:00:00Z"
#: ../shared/data beside the checkout (or beside the main checkout, from a git worktree)
SHARED = Path(
    os.environ.get("EOTRIAGE_SHARED_DATA")
    or next(
        (
            p
            for p in (REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data")
            if p.is_dir()
        ),
        REPO.parent / "shared" / "data",
    )
)
#: run.json detector name -> class (written out here, apart from the store's own mapping)
DETECTOR_CLASS = {"fire": "fire", "ships": "ship", "crop": "crop_stress"}
MAX_ITEMS = 10
EARTH_R = 6_371_008.8


# ----------------------------------------------------------------------------- the store


def scene_inputs(quick: bool) -> list[dict[str, Any]]:
    """The benchmark's scenes that are present (sample scenes only in quick mode)."""
    out = []
    for s in json.loads(SCENES.read_text())["scenes"]:
        kind, rel = s["input"].split(":", 1)
        if kind == "shared" and quick:
            continue
        path = (REPO / rel) if kind == "repo" else (SHARED / rel)
        if path.exists():
            out.append({**s, "path": path})
    return out


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )


def build_store(scenes: list[dict[str, Any]], work: Path) -> tuple[Path, list[str]]:
    """Run every scene and add it to a fresh store, in the order of scenes.json."""
    errors: list[str] = []
    out = work / "runs"
    proc = cli("run", *(s["path"] for s in scenes), "--out", out, "--no-llm")
    by_run = {}
    for s in scenes:
        dest = out / Path(s["path"]).name
        if not (dest / "run.json").is_file():
            errors.append(f"run {s['name']}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
            continue
        by_run[s["name"]] = dest
    db = work / "store.db"
    db.unlink(missing_ok=True)
    for s in scenes:
        if s["name"] in by_run:
            proc = cli("store", "add", by_run[s["name"]], "--store", db)
            if proc.returncode != 0:
                errors.append(f"store add {s['name']}: {proc.stderr.strip()[-300:]}")
    return db, errors


# ----------------------------------------------------------------------------- the truth


def load_truth_data(scenes: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    """Per scene: hand-entered date, classes looked for, detections (from the run's files)."""
    out = []
    for s in scenes:
        d = work / "runs" / Path(s["path"]).name
        if not (d / "run.json").is_file():
            continue
        run = json.loads((d / "run.json").read_text())
        checked = {
            DETECTOR_CLASS[k]
            for k, v in run.get("detectors", {}).items()
            if k in DETECTOR_CLASS and str(v).startswith("ran")
        }
        if run.get("tiles", {}).get("failed") and run["tiles"]["failed"] >= run["tiles"]["total"]:
            checked = set()
        dets = []
        for f in json.loads((d / "detections.geojson").read_text())["features"]:
            p = f["properties"]
            area = p.get("area_m2")
            if area is None and p.get("area_km2") is not None:
                area = p["area_km2"] * 1e6
            dets.append(
                {
                    "cls": p["class"],
                    "lon": p["centroid_lon"],
                    "lat": p["centroid_lat"],
                    "length": p.get("length_m") if p["class"] == "ship" else None,
                    "area": area,
                    "geometry": f["geometry"],
                }
            )
        out.append({"name": s["name"], "date": s["acquired"], "checked": checked, "dets": dets})
    return out


def haversine(a: Sequence[float], b: Sequence[float]) -> float:
    lon1, lat1, lon2, lat2 = (math.radians(v) for v in (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_R * math.asin(min(1.0, math.sqrt(h)))


def _in_window(date: str | None, since: str | None, until: str | None) -> bool | None:
    """None: unknown date; else whether the day [date 00:00, 23:59:59] meets the window."""
    if since is None and until is None:
        return True
    if date is None:
        return None
    start, end = date + "T00:00:00Z", date + "T23:59:59Z"
    return (since is None or end >= since) and (until is None or start <= until)


def _bounds_hold(spec: dict[str, Any], length: float | None, area: float | None) -> bool:
    for key, v in spec.items():
        measure, _, op = key.partition("_")
        if measure not in ("length", "area") or op not in ("gt", "ge", "lt", "le"):
            continue
        x = length if measure == "length" else area
        if x is None:
            return False
        ok = {"gt": x > v, "ge": x >= v, "lt": x < v, "le": x <= v}[op]
        if not ok:
            return False
    return True


def expected(spec: dict[str, Any], data: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer's facts, by brute force from the spec."""
    from shapely.geometry import box, shape

    names = {s["name"] for s in data}
    if spec.get("scenes"):
        # a place names every scene of it in the store ("in Virginia": one or two scenes)
        spec = {**spec, "scenes": [n for n in spec["scenes"] if n in names]}
        if not spec["scenes"]:
            return {"status": "not understood"}
    cls, op = spec["cls"], spec["op"]
    searched, not_checked, unknown = [], [], []
    for s in data:
        if spec.get("scenes") and s["name"] not in spec["scenes"]:
            continue
        inside = _in_window(s["date"], spec.get("since"), spec.get("until"))
        if inside is None:
            unknown.append(s["name"])
            continue
        if not inside:
            continue
        if cls != "any" and cls not in s["checked"]:
            not_checked.append(s["name"])
            continue
        searched.append(s)
    area = box(*spec["bbox"]) if spec.get("bbox") else None
    rows = []
    for s in searched:
        for d in s["dets"]:
            if cls != "any" and d["cls"] != cls:
                continue
            if area is not None and not area.intersects(shape(d["geometry"])):
                continue
            if spec.get("radius_km") is not None:
                if haversine(spec["point"], (d["lon"], d["lat"])) > spec["radius_km"] * 1000:
                    continue
            if not _bounds_hold(spec, d["length"], d["area"]):
                continue
            rows.append((s["name"], d))
    key = "length" if cls == "ship" else "area"
    sized = [r for r in rows if r[1][key] is not None]
    items: list[tuple[str, dict[str, Any]]] = []
    # stable sorts: ties keep file order, as the store keeps insertion order
    if op in ("count", "any") and cls != "any":
        items = sorted(sized, key=lambda r: -r[1][key])[:1]
    elif op == "largest":
        items = sorted(sized, key=lambda r: -r[1][key])[:1]
    elif op == "smallest":
        items = sorted(sized, key=lambda r: r[1][key])[:1]
    elif op == "nearest" or (op == "list" and spec.get("order") == "nearest"):
        ranked = sorted(rows, key=lambda r: haversine(spec["point"], (r[1]["lon"], r[1]["lat"])))
        items = ranked[: spec.get("n") or (1 if op == "nearest" else MAX_ITEMS)]
    elif op == "list":
        if cls == "any":
            ranked = list(rows)
        elif spec.get("order") == "smallest":
            ranked = sorted(sized, key=lambda r: r[1][key])
        else:
            ranked = sorted(sized, key=lambda r: -r[1][key]) + [
                r for r in rows if r[1][key] is None
            ]
        items = ranked[: spec.get("n") or MAX_ITEMS]
    out: dict[str, Any] = {
        "status": "answered",
        "count": len(rows),
        "searched": sorted(s["name"] for s in searched),
        "not_checked": sorted(not_checked),
        "unknown_time": sorted(unknown),
        "items": [(n, d["lon"], d["lat"]) for n, d in items],
    }
    per_scene = {s["name"]: 0 for s in searched}
    for n, _ in rows:
        per_scene[n] += 1
    if op in ("most", "least", "per_scene"):
        out["per_scene"] = per_scene
    if op in ("most", "least") and per_scene:
        target = max(per_scene.values()) if op == "most" else min(per_scene.values())
        out["best_scenes"] = sorted(n for n, c in per_scene.items() if c == target)
    if op == "total_area":
        out["total_area_m2"] = sum(d["area"] or 0.0 for _, d in rows)
    return out


def query_matches(spec: dict[str, Any], q: dict[str, Any], present: set[str]) -> list[str]:
    """Differences between the truth spec and the query the answer was computed with."""
    diffs = []
    for key in ("op", "cls"):
        if spec[key] != q.get(key):
            diffs.append(f"{key} {q.get(key)} (want {spec[key]})")
    want_scenes = sorted(n for n in spec["scenes"] if n in present) if spec.get("scenes") else None
    got_scenes = sorted(q["scenes"]) if q.get("scenes") else None
    if want_scenes != got_scenes:
        diffs.append(f"scenes {got_scenes} (want {want_scenes})")
    for key in ("since", "until", "n", "radius_km"):
        if spec.get(key) != q.get(key):
            diffs.append(f"{key} {q.get(key)} (want {spec.get(key)})")
    if spec["op"] == "list" and (spec.get("order") or "largest") != (q.get("order") or "largest"):
        diffs.append(f"order {q.get('order')} (want {spec.get('order')})")
    for key in ("point", "bbox"):
        a, b = spec.get(key), q.get(key)
        if (a is None) != (b is None) or (
            a is not None and any(abs(x - y) > 1e-9 for x, y in zip(a, b, strict=True))
        ):
            diffs.append(f"{key} {b} (want {a})")
    want_bounds = sorted(
        (k.partition("_")[0], k.partition("_")[2], float(v))
        for k, v in spec.items()
        if k.partition("_")[0] in ("length", "area")
        and k.partition("_")[2] in ("gt", "ge", "lt", "le")
    )
    op_name = {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}
    got_bounds = sorted(
        (b["measure"].split("_")[0], op_name[b["op"]], float(b["value"]))
        for b in q.get("sizes", [])
    )
    if len(want_bounds) != len(got_bounds) or any(
        w[:2] != g[:2] or abs(w[2] - g[2]) > 1e-6 * max(1.0, abs(w[2]))
        for w, g in zip(want_bounds, got_bounds, strict=False)
    ):
        diffs.append(f"sizes {got_bounds} (want {want_bounds})")
    return diffs


def facts_match(want: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    diffs = []
    if facts.get("count") != want["count"]:
        diffs.append(f"count {facts.get('count')} (want {want['count']})")
    for key in ("searched", "unknown_time"):
        if sorted(facts.get(key, [])) != want[key]:
            diffs.append(f"{key} {sorted(facts.get(key, []))} (want {want[key]})")
    if sorted(facts.get("not_checked", {})) != want["not_checked"]:
        diffs.append(
            f"not_checked {sorted(facts.get('not_checked', {}))} (want {want['not_checked']})"
        )
    got_items = [(i["scene"], i["lon"], i["lat"]) for i in facts.get("items", [])]
    if len(got_items) != len(want["items"]) or any(
        g[0] != w[0] or abs(g[1] - w[1]) > 2e-4 or abs(g[2] - w[2]) > 2e-4
        for g, w in zip(got_items, want["items"], strict=False)
    ):
        diffs.append(f"items {got_items[:3]} (want {want['items'][:3]})")
    if "per_scene" in want and facts.get("per_scene") != want["per_scene"]:
        diffs.append("per-scene counts differ")
    if "best_scenes" in want and sorted(facts.get("best_scenes", [])) != want["best_scenes"]:
        diffs.append(f"best scenes {facts.get('best_scenes')} (want {want['best_scenes']})")
    if "total_area_m2" in want:
        got = facts.get("total_area_m2")
        if got is None or abs(got - want["total_area_m2"]) > max(1.0, 1e-6 * want["total_area_m2"]):
            diffs.append(f"total area {got} (want {want['total_area_m2']:.1f})")
    return diffs


# ----------------------------------------------------------------------------- asking


def load_questions(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ask_all(
    questions: list[dict[str, Any]],
    data: list[dict[str, Any]],
    db: Path,
    model: Any,
    first_qid: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    from pipeline.ask.answer import answer_question
    from pipeline.ask.query import Question
    from pipeline.ask.store import DetectionStore
    from pipeline.wire.qa import decode_qa, encode_answers, encode_questions

    rows, errors = [], []
    with DetectionStore(db, create=False) as store:
        for i, item in enumerate(questions):
            value: dict[str, Any] = {
                "text": item["q"],
                "qid": first_qid + i,
                "asked_utc": item.get("asked_utc", ASKED_UTC),
            }
            for key in ("point", "bbox", "cls"):
                if key in item:
                    value[key] = item[key]
            if "kind" in item:
                value["kind"] = item["kind"]
            up = encode_questions([value])
            body = decode_qa(up).questions[0]
            a = answer_question(store, Question.from_value(body), model, 10.0)
            down = encode_answers([a.to_value()])
            got = decode_qa(down).answers
            if not got:
                errors.append(f"{item['id']}: no answer decoded")
                continue
            ans = got[0]
            truth = item["truth"]
            want = (
                {"status": "not understood"} if truth == "not understood" else expected(truth, data)
            )
            diffs: list[str] = []
            if want["status"] == "not understood":
                if ans["status"] != "not understood":
                    diffs.append("answered a question that should be 'not understood'")
            elif ans["status"] != "answered":
                diffs.append(f"{ans['status']}: {'; '.join(ans.get('not_understood') or [])}")
            else:
                diffs += query_matches(truth, ans["filter"], {s["name"] for s in data})
                diffs += facts_match(want, ans["facts"])
            right = not diffs
            if right:
                verdict = "right"
            elif ans["status"] != "answered":
                verdict = "missed"  # "not understood" (or error) where an answer was due
            else:
                verdict = "different question"
            rows.append(
                {
                    "id": item["id"],
                    "question": item["q"],
                    "right": right,
                    "verdict": verdict,
                    "why": diffs,
                    "answer": ans["text"],
                    "status": ans["status"],
                    "understood_by": ans["understood_by"],
                    "llm_calls": ans.get("llm_calls", 0),
                    "latency_s": ans["latency_s"],
                    "uplink_bytes": len(up),
                    "answer_bytes": len(down),
                }
            )
            mark = {"right": "ok ", "missed": "MISS", "different question": "BAD"}[verdict]
            print(f"[{item['id']}] {mark} {item['q']} -> {ans['text'][:160]}", flush=True)
            for d in diffs:
                print(f"        {d}", flush=True)
    return rows, errors


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    lat = sorted(r["latency_s"] for r in rows)
    with_llm = sorted(r["latency_s"] for r in rows if r["llm_calls"] > 0)
    n = max(1, len(rows))
    return {
        "questions": len(rows),
        "right": sum(r["right"] for r in rows),
        "correct_share": round(sum(r["right"] for r in rows) / n, 3),
        "missed": sum(r["verdict"] == "missed" for r in rows),
        "different_question": sum(r["verdict"] == "different question" for r in rows),
        "llm_used": sum(r["understood_by"] == "parser+llm" for r in rows),
        "llm_asked": sum(r["llm_calls"] > 0 for r in rows),
        "latency_llm_median_s": round(statistics.median(with_llm), 3) if with_llm else None,
        "latency_median_s": round(statistics.median(lat), 3) if lat else None,
        "latency_p95_s": round(lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)], 3)
        if lat
        else None,
        "answer_bytes_median": statistics.median(r["answer_bytes"] for r in rows) if rows else None,
        "uplink_bytes_median": statistics.median(r["uplink_bytes"] for r in rows) if rows else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="sample scenes only, no LLM (CI)")
    ap.add_argument("--no-llm", action="store_true", help="parser only")
    ap.add_argument("--work", type=Path, default=BENCH_DIR / "_work" / "ask")
    args = ap.parse_args(argv[1:])
    use_llm = not (args.quick or args.no_llm)
    t_start = time.perf_counter()
    software = software_facts()
    from pipeline.ask.intent import QuestionModel

    work = args.work / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    scenes = scene_inputs(args.quick)
    db, errors = build_store(scenes, work)
    data = load_truth_data(scenes, work)
    # the store's acquisition times against the hand-entered ones
    from pipeline.ask.store import DetectionStore

    times: dict[str, Any] = {}
    with DetectionStore(db, create=False) as store:
        for s in store.scene_records():
            times[s.name] = {"stored": s.acquired_utc, "source": s.acquired_source}
    for s in scenes:
        t = times.get(s["name"])
        if t is not None:
            t["readme"] = s["acquired"]
            t["agrees"] = t["stored"] == s["acquired"]
    model = QuestionModel() if use_llm else None
    load_s = 0.0
    if model is not None:
        t0 = time.perf_counter()
        model.load()
        load_s = time.perf_counter() - t0
    print(f"store: {len(data)} scenes; corpus", flush=True)
    corpus, e1 = ask_all(load_questions(CORPUS), data, db, model, 1)
    print("held-out set", flush=True)
    heldout, e2 = ask_all(load_questions(HELDOUT), data, db, model, 10_001)
    errors += e1 + e2
    if model is not None:
        model.close()
    doc: dict[str, Any] = {
        "benchmark": "ask the satellite",
        "command": command_line(argv, "benchmarks/bench_ask.py"),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(),
        "software": software,
        "models": (model.model_name + " " + model.model_sha256[:12]) if model else "none",
        "settings": {
            "llm": use_llm,
            "quick": args.quick,
            "scenes": [s["name"] for s in data],
            "detections": sum(len(s["dets"]) for s in data),
            "asked_utc_default": ASKED_UTC,
        },
        "acquisition_times": times,
        "model_load_s": round(load_s, 2),
        "results": corpus,
        "heldout": heldout,
        "summary": summary(corpus),
        "heldout_summary": summary(heldout),
        "errors": errors,
        "total_benchmark_s": round(time.perf_counter() - t_start, 1),
    }
    return publish(doc, lambda: render(doc), SECTION, RESULTS_JSON, FAILED_JSON)


def render(doc: dict[str, Any]) -> str:
    s, m, h = doc["settings"], doc["summary"], doc["heldout_summary"]
    lines = section_header(doc, SECTION)
    times = doc["acquisition_times"]
    agree = sum(1 for t in times.values() if t.get("agrees"))
    lines += [
        f"Store: {len(s['scenes'])} scenes from real `eotriage run` outputs "
        f"({', '.join(s['scenes'])}), {s['detections']} detections, added with "
        f"`eotriage store add`; acquisition times from the scenes' metadata, sidecars and labels "
        f"agree with the READMEs for {agree} of {len(times)} scenes (unknown stays unknown).  "
        "Questions: `benchmarks/ask/corpus.jsonl` (tuned on) and `benchmarks/ask/heldout.jsonl` "
        "(written before the parser, never tuned on), each line with a hand-written truth spec; "
        "expected answers by brute force over the runs' files.  Right = same query and same "
        "facts, or 'not understood' where that is the truth.  Missed = 'not understood' where "
        "an answer was due.  Different question = answered, but not the question asked.  "
        f"LLM: {'loaded; it only maps words the parser does not know' if s['llm'] else 'off'}.  "
        "Latency = `answer_question` wall time on 2 CPU cores.",
        "",
        "| set | questions | right | missed | answers to a different question | LLM asked / "
        "its word taken | latency median (s) | p95 (s) | median when the LLM was asked (s) "
        "| answer bytes (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, x in (("corpus", m), ("held-out", h)):
        lines.append(
            f"| {name} | {x['questions']} | {x['right']} ({x['correct_share']:.1%}) | "
            f"{x['missed']} | {x['different_question']} | {x['llm_asked']} / {x['llm_used']} | "
            f"{x['latency_median_s']} | {x['latency_p95_s']} | {x['latency_llm_median_s']} | "
            f"{x['answer_bytes_median']} |"
        )
    lines += [
        "",
        f"Model load: {doc['model_load_s']} s.  Targets: >= 95 % right on the corpus, >= 90 % on "
        "questions phrased like it that the parser never saw, 0 answers to a different "
        "question, median latency < 10 s.",
        "",
    ]
    for title, rows in (("corpus", doc["results"]), ("held-out set", doc["heldout"])):
        bad = [r for r in rows if not r["right"]]
        if bad:
            lines += [f"Wrong answers, {title}:", ""]
            lines += [
                f'- [{r["id"]}] {r["verdict"]}: "{r["question"]}" -> {r["answer"][:200]} '
                f"({'; '.join(r['why'])[:200]})"
                for r in bad
            ]
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
