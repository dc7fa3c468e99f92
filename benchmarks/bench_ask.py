#!/usr/bin/env python3
"""Ask the satellite: correctness, latency and bytes of onboard answers.

A detection store is filled with seeded random detections (ships, fires, stressed fields in
several scenes at different times, around a few ports).  Questions of the three kinds (count in
an area, nearest fire, largest of a class) are generated in varied wordings with known answers,
computed independently by brute force over the generated detections.  Half of the questions
carry structured filters, half are free text only (kind and class then come from the onboard
LLM).  Each question goes through the uplink packet codec, ``answer_question`` with the LLM, and
the answer packet codec.  Correct = the decoded answer's facts equal the known answer (count, or
the identity and value of the nearest / largest detection).

Results go to the section "## Ask the satellite: onboard answers" of RESULTS.md and to
``benchmarks/results_ask.json``.  Exit 1 when a question fails to produce an answer packet;
correctness and latency are reported, not enforced.

Usage::

    .venv/bin/python benchmarks/bench_ask.py            # 60 questions
    .venv/bin/python benchmarks/bench_ask.py --quick    # 12 questions, template only (CI)
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from results_io import (
    BENCH_DIR,
    command_line,
    machine_facts,
    publish,
    section_header,
    software_facts,
)

SECTION = "## Ask the satellite: onboard answers"
RESULTS_JSON = BENCH_DIR / "results_ask.json"
FAILED_JSON = BENCH_DIR / "_work" / "last_failed_ask.json"
PORTS = [(-157.95, 21.35), (-7.60, 33.61), (129.06, 35.10), (-123.28, 58.07)]
TIMES = ["2026-11-27T06:00:00Z", "2026-11-27T18:00:00Z", "2026-11-28T06:00:00Z"]
WORDING = {
    ("count", "ship"): [
        "How many vessels are in the area?",
        "Count the ships in this box.",
        "Any boats inside this region?",
    ],
    ("count", "fire"): ["How many fires are burning in the area?", "Number of hot spots here?"],
    ("count", "crop_stress"): ["How many stressed fields in this box?"],
    ("nearest", "fire"): ["Where is the nearest fire to {pt}?", "Closest blaze to {pt}?"],
    ("nearest", "ship"): ["Which vessel is closest to {pt}?", "Nearest ship to {pt}?"],
    ("largest", "crop_stress"): [
        "Which stressed field is the largest?",
        "How big is the biggest drought-stressed crop area?",
    ],
    ("largest", "fire"): ["How large is the biggest fire?", "Largest wildfire so far?"],
    ("largest", "ship"): ["What is the longest ship seen?"],
}


def fmt_pt(lon: float, lat: float) -> str:
    return f"{abs(lat):.2f}{'N' if lat >= 0 else 'S'} {abs(lon):.2f}{'E' if lon >= 0 else 'W'}"


def feature(cls: str, lon: float, lat: float, **props: float) -> dict[str, Any]:
    """A GeoJSON feature: a ~100 m square around (lon, lat) with its measures."""
    d = 0.0005
    ring = [
        [lon - d, lat - d],
        [lon + d, lat - d],
        [lon + d, lat + d],
        [lon - d, lat + d],
        [lon - d, lat - d],
    ]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "class": cls,
            "score": 0.9,
            "centroid_lon": lon,
            "centroid_lat": lat,
            **props,
        },
    }


def make_detections(rng: random.Random) -> list[tuple[str, str, list[dict[str, Any]]]]:
    scenes = []
    for i, t in enumerate(TIMES):
        for j, (plon, plat) in enumerate(PORTS):
            feats = []
            for _ in range(rng.randint(0, 6)):
                feats.append(
                    feature(
                        "ship",
                        plon + rng.uniform(-0.05, 0.05),
                        plat + rng.uniform(-0.05, 0.05),
                        length_m=round(rng.uniform(15, 300), 1),
                    )
                )
            for _ in range(rng.randint(0, 2)):
                feats.append(
                    feature(
                        "fire",
                        plon + rng.uniform(-0.2, 0.2),
                        plat + rng.uniform(-0.2, 0.2),
                        area_m2=float(rng.randint(1, 60) * 400),
                    )
                )
            for _ in range(rng.randint(0, 3)):
                feats.append(
                    feature(
                        "crop_stress",
                        plon + rng.uniform(-0.3, 0.3),
                        plat + rng.uniform(-0.3, 0.3),
                        area_km2=round(rng.uniform(0.01, 2.0), 4),
                    )
                )
            scenes.append((f"s{i}_{j}", t, feats))
    return scenes


def brute_force(scenes: list, q: dict[str, Any]) -> dict[str, Any]:
    """The known answer, computed without the store, SQL or shapely."""
    from pipeline.ask.query import distance_m

    rows = []
    for name, t, feats in scenes:
        if "since" in q and t < q["since"]:
            continue
        for f in feats:
            p = f["properties"]
            if p["class"] != q["cls"]:
                continue
            lon, lat = p["centroid_lon"], p["centroid_lat"]
            if "bbox" in q:
                w, s, e, n = q["bbox"]
                d = 0.0005  # the features' half-size: boxes that touch count
                if not (w - d <= lon <= e + d and s - d <= lat <= n + d):
                    continue
            rows.append((name, lon, lat, p))
    out: dict[str, Any] = {"matches": len(rows)}
    if q["kind"] == "nearest" and rows:
        pt = q["point"]
        best = min(rows, key=lambda r: distance_m(pt, (r[1], r[2])))
        out["best"] = (best[0], round(best[1], 4), round(best[2], 4))
    if q["kind"] == "largest" and rows:
        key = {"ship": "length_m", "fire": "area_m2", "crop_stress": "area_km2"}[q["cls"]]
        best = max(rows, key=lambda r: r[3][key])
        out["best"] = (best[0], round(best[1], 4), round(best[2], 4))
    return out


def make_questions(rng: random.Random, n: int) -> list[dict[str, Any]]:
    keys = list(WORDING)
    qs = []
    for i in range(n):
        kind, cls = keys[i % len(keys)]
        text = rng.choice(WORDING[(kind, cls)])
        q: dict[str, Any] = {"qid": i + 1, "kind": kind, "cls": cls}
        plon, plat = rng.choice(PORTS)
        if kind == "count":
            r = rng.uniform(0.02, 0.3)
            q["bbox"] = [
                round(plon - r, 4),
                round(plat - r, 4),
                round(plon + r, 4),
                round(plat + r, 4),
            ]
        if kind == "nearest":
            q["point"] = [
                round(plon + rng.uniform(-0.1, 0.1), 2),
                round(plat + rng.uniform(-0.1, 0.1), 2),
            ]
            text = text.format(pt=fmt_pt(*q["point"]))
        if rng.random() < 0.4:
            q["since"] = rng.choice(TIMES[1:])
        q["text"] = text
        q["structured"] = i % 2 == 0
        qs.append(q)
    return qs


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="12 questions, no LLM (CI)")
    ap.add_argument("--questions", type=int, default=60, help="questions (60)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv[1:])
    n = 12 if args.quick else max(30, args.questions)
    use_llm = not args.quick
    t_start = time.perf_counter()
    software = software_facts()
    import tempfile
    from pathlib import Path

    from pipeline.ask.answer import answer_question
    from pipeline.ask.intent import QuestionModel
    from pipeline.ask.query import Question
    from pipeline.ask.store import DetectionStore
    from pipeline.wire.qa import decode_qa, encode_answers, encode_questions

    rng = random.Random(args.seed)
    scenes = make_detections(rng)
    questions = make_questions(rng, n)
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    model = QuestionModel() if use_llm else None
    load_s = 0.0
    if model is not None:
        t0 = time.perf_counter()
        model.load()
        load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp, DetectionStore(Path(tmp) / "s.db") as store:
        for name, t, feats in scenes:
            store.add_scene(name, feats, t)
        for q in questions:
            value = {"text": q["text"], "qid": q["qid"]}
            if q["structured"]:
                value.update({k: q[k] for k in ("kind", "cls") if k in q})
            for k in ("bbox", "point", "since"):
                if k in q and (q["structured"] or k != "point"):
                    value[k] = q[k]
            up = encode_questions([value])
            body = decode_qa(up).questions[0]
            a = answer_question(store, Question.from_value(body), model, 10.0)
            down = encode_answers([a.to_value()])
            got = decode_qa(down).answers
            if not got:
                errors.append(f"question {q['qid']}: no answer decoded")
                continue
            ans = got[0]
            want = brute_force(scenes, q)
            facts = ans.get("facts") or {}
            best = facts.get("best")
            got_best = (best["scene"], best["lon"], best["lat"]) if best else None
            correct = (
                facts.get("kind") == q["kind"]
                and facts.get("cls") == q["cls"]
                and facts.get("matches") == want["matches"]
                and (q["kind"] == "count" or got_best == want.get("best"))
            )
            rows.append(
                {
                    "qid": q["qid"],
                    "text": q["text"],
                    "structured": q["structured"],
                    "kind": q["kind"],
                    "cls": q["cls"],
                    "understood_by": ans["understood_by"],
                    "correct": correct,
                    "answer": ans["text"],
                    "writer": ans["writer"],
                    "fallback_reason": ans["fallback_reason"],
                    "latency_s": ans["latency_s"],
                    "uplink_bytes": len(up),
                    "answer_bytes": len(down),
                }
            )
            print(
                f"[{q['qid']:2d}] {'ok ' if correct else 'BAD'} {q['text']} -> {ans['text']}",
                flush=True,
            )
    if model is not None:
        model.close()
    lat = [r["latency_s"] for r in rows]
    free = [r for r in rows if not r["structured"]]
    doc: dict[str, Any] = {
        "benchmark": "ask the satellite",
        "command": command_line(argv, "benchmarks/bench_ask.py"),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(),
        "software": software,
        "models": (model.model_name + " " + model.model_sha256[:12]) if model else "none",
        "settings": {
            "questions": n,
            "seed": args.seed,
            "llm": use_llm,
            "scenes": len(scenes),
            "detections": sum(len(f) for _, _, f in scenes),
        },
        "model_load_s": round(load_s, 2),
        "results": rows,
        "summary": {
            "correct_share": round(sum(r["correct"] for r in rows) / max(1, len(rows)), 3),
            "free_text_correct_share": round(
                sum(r["correct"] for r in free) / max(1, len(free)), 3
            ),
            "llm_text_share": round(sum(r["writer"] == "llm" for r in rows) / max(1, len(rows)), 3),
            "latency_median_s": round(statistics.median(lat), 3) if lat else None,
            "latency_p95_s": round(
                sorted(lat)[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)], 3
            )
            if lat
            else None,
            "answer_bytes_median": statistics.median(r["answer_bytes"] for r in rows)
            if rows
            else None,
            "uplink_bytes_median": statistics.median(r["uplink_bytes"] for r in rows)
            if rows
            else None,
        },
        "errors": errors,
        "total_benchmark_s": round(time.perf_counter() - t_start, 1),
    }
    return publish(doc, lambda: render(doc), SECTION, RESULTS_JSON, FAILED_JSON)


def render(doc: dict[str, Any]) -> str:
    s, m = doc["settings"], doc["summary"]
    understood = (
        "the onboard LLM (log-likelihood choice among the 12 options)"
        if s["llm"]
        else "keywords (no LLM in quick mode)"
    )
    lines = section_header(doc, SECTION)
    lines += [
        f"A store of {s['detections']} seeded random detections in {s['scenes']} scenes (3 "
        f"acquisition times, 4 ports); {s['questions']} generated questions (count in a box, "
        "nearest fire/ship to a point, largest field/fire/ship; some with a time window) with "
        "known answers computed by brute force.  Even-numbered questions carry structured "
        "filters (kind, class); the others are free text plus area/point, so kind and class come "
        f"from {understood}.  "
        "Every question and answer goes through the packet codecs.  Latency = "
        "`answer_question` wall time on 2 CPU cores (intent + query + answer text).",
        "",
        "| questions | correct | free-text correct | answers written by the LLM | latency "
        "median (s) | p95 (s) | model load (s) | uplink bytes (median) | answer bytes (median) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(doc['results'])} | {m['correct_share']:.1%} | {m['free_text_correct_share']:.1%}"
        f" | {m['llm_text_share']:.1%} | {m['latency_median_s']} | {m['latency_p95_s']} | "
        f"{doc['model_load_s']} | {m['uplink_bytes_median']} | {m['answer_bytes_median']} |",
        "",
        "Targets: answer latency under 10 s onboard; >= 90 % exact.  LLM answer texts that fail "
        "the fact check (numbers bound to their place and unit in the template) fall back to the "
        "template, so a wrong number is never sent.",
        "",
    ]
    bad = [r for r in doc["results"] if not r["correct"]]
    if bad:
        lines += ["Wrong answers:", ""]
        lines += [
            f"- [{r['qid']}] {r['text']} -> {r['answer']} (understood by {r['understood_by']})"
            for r in bad[:10]
        ]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
