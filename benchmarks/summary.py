"""The "## Summary" section of RESULTS.md: every target beside its measured figure, and the
downlink saving beside the detection quality it was bought at (from one `eotriage bench` run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SECTION = "## Summary: targets and measured figures"
S2_MPX_PER_S = 19.3


def _doc(records: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    rec = records.get(name)
    doc = rec.get("results") if rec else None
    return doc if isinstance(doc, dict) else None


def _row(what: str, target: str, measured: str, met: bool | None) -> str:
    mark = "–" if met is None else ("yes" if met else "**no**")
    return f"| {what} | {target} | {measured} | {mark} |"


def targets(records: Mapping[str, Any]) -> list[str]:
    rows: list[str] = []
    mem = _doc(records, "memory")
    if mem:
        big = max(mem["results"], key=lambda r: r["size"])
        t = big["timings_s"]
        dets = [k for k in t if k.startswith("detect_")]
        det_s = sum(t[k] for k in dets) or t.get("detect", 0.0)
        mpx = big["megapixels_10m"]
        rate = mpx / det_s if det_s else 0.0
        rows.append(
            _row(
                f"detectors together ({', '.join(k[7:] for k in dets)}), {big['size']:,}² px",
                "real-time factor >= 1",
                f"{rate:.1f} Mpx/s, RTF {rate / S2_MPX_PER_S:.2f}; in-process incl. ingest "
                f"{mpx / t['total']:.1f} Mpx/s (RTF {mpx / t['total'] / S2_MPX_PER_S:.2f}); whole "
                f"process incl. start-up and LLM report {big['mpx_per_s']:.1f} Mpx/s",
                rate >= S2_MPX_PER_S,
            )
        )
        rows.append(
            _row(
                f"peak RSS, {big['size']:,}² px scene incl. the LLM",
                "<= 1.5 GiB",
                f"{big['peak_rss_mib']:.0f} MiB (ratio to 2,000 px: "
                f"{mem['peak_rss_ratio']['ratio']:.3f})",
                big["peak_rss_mib"] <= 1536,
            )
        )
    dl = _doc(records, "downlink")
    if dl:
        worst = min(dl["results"], key=lambda r: r["ratio_raw"])
        full = [r for r in dl["results"] if r.get("width", 0) >= 10980]
        if full:
            f = full[0]
            rows.append(
                _row(
                    "downlink, full-size 13-band scene",
                    ">= 10,000x raw, >= 1,000x zstd",
                    f"{f['ratio_raw']:,.0f}x raw, {f['ratio_zstd']:,.0f}x zstd "
                    f"({f['packet_bytes']:,} B)",
                    f["ratio_raw"] >= 10_000 and f["ratio_zstd"] >= 1_000,
                )
            )
        rows.append(
            _row(
                "downlink, every scene (incl. small sample crops)",
                ">= 10,000x raw",
                f"lowest {worst['ratio_raw']:,.0f}x ({worst['scene']})",
                worst["ratio_raw"] >= 10_000,
            )
        )
    fire = _doc(records, "fire")
    if fire:
        ref = [
            r
            for r in fire["results"]
            if r.get("role") == "fire reference" and r.get("status") == "ok"
        ]
        none = [
            r
            for r in fire["results"]
            if r.get("role") != "fire reference" and r.get("status") == "ok"
        ]
        rows.append(
            _row(
                "fire: reference clusters found",
                "all",
                ", ".join(f"{r['scene']}: {r['fire_features']}" for r in ref)
                or "no reference scene",
                bool(ref) and all(r["fire_features"] == 12 for r in ref),
            )
        )
        rows.append(
            _row(
                "fire: features on fire-free scenes",
                "0",
                ", ".join(f"{r['scene']}: {r['fire_features']}" for r in none) or "–",
                all(r["fire_features"] == 0 for r in none) if none else None,
            )
        )
    ships = _doc(records, "ships")
    if ships:
        for t in ships["totals"]:
            at_sea, moored = t.get("recall_at_sea"), t.get("recall_moored")
            rows.append(
                _row(
                    f"ships, {t['port']} ({t['labels']} vessels)",
                    "recall >= 0.85, precision >= 0.85, at sea >= 0.95, moored >= 0.80",
                    f"recall {t['recall']:.2f}, precision {t['precision']:.2f}, at sea "
                    f"{at_sea if at_sea is not None else float('nan'):.2f}, moored "
                    f"{moored if moored is not None else float('nan'):.2f}, "
                    f"{t['false_alarms_per_10km2']:.1f} FA / 10 km²",
                    t["recall"] >= 0.85
                    and t["precision"] >= 0.85
                    and (at_sea or 0) >= 0.95
                    and (moored or 0) >= 0.80,
                )
            )
        vir = ships.get("virginia")
        if vir:
            rows.append(
                _row(
                    "ships, Virginia L1C tile (no vessels)",
                    "<= 1 false vessel / 10 km² water",
                    f"{vir['false_vessels']} false vessels, {vir['false_per_10km2']:.2f} / 10 km²",
                    vir["false_per_10km2"] is not None and vir["false_per_10km2"] <= 1.0,
                )
            )
    crop = _doc(records, "crop")
    if crop:
        n_none = sum(
            r["crop_features"] + r.get("with_virginia_parcels", 0) for r in crop["no_layer"]
        )
        rows.append(
            _row(
                f"crop stress without a cropland layer ({len(crop['no_layer'])} scenes)",
                "0 features",
                f"{n_none} features",
                n_none == 0,
            )
        )
        main = [r for r in crop["series"] if r["series"] == "closed canopy"]
        for mode in ("parcels", "raster"):
            rs = [r for r in main if r["mode"] == mode]
            if not rs:
                continue
            rec = min(r["parcel_recall"] for r in rs)
            prec = min(r["precision"] for r in rs)
            err = max(abs(r["area_error"]) for r in rs)
            bad = sum(r["noncrop_px"] + r["cloudy_false"] + r["on_hidden"] for r in rs)
            rows.append(
                _row(
                    f"crop stress, synthetic series ({mode}, {len(rs)} seeds)",
                    "recall from first stressed date >= 0.95, precision >= 0.95, area < 10 %",
                    f"worst recall {rec:.3f}, precision {prec:.3f}, area error {err:.1%}; "
                    f"{bad} false on non-crop land, cloudy dates or hidden parcels",
                    rec >= 0.95 and prec >= 0.95 and err < 0.10 and bad == 0,
                )
            )
        sp = crop["speed"]
        if sp:
            worst = max(s["stage_ms_per_mpx"] for s in sp)
            rows.append(
                _row(
                    "crop stage speed", "<= 10 ms per Mpx", f"worst {worst} ms per Mpx", worst <= 10
                )
            )
        h = crop["history"]
        rows.append(
            _row(
                "crop history per 10,000 parcels",
                "<= 1 MB",
                f"{h['file_bytes'] / 1e6 * 10_000 / h['parcels']:.2f} MB",
                h["file_bytes"] * 10_000 / h["parcels"] <= 1_000_000,
            )
        )
    rep = _doc(records, "report")
    if rep:
        m = rep["main"]
        rows.append(
            _row(
                f"report writer ({m['fact_sets']} fact sets)",
                "median < 5 s, >= 95 % pass",
                f"median {m['latency_s']['median']:.2f} s, "
                f"p95 {m['latency_s'].get('p95', float('nan')):.2f} s, "
                f"{m['pass_rate']:.0%} pass without fallback",
                m["latency_s"]["median"] < 5 and m["pass_rate"] >= 0.95,
            )
        )
    st = _doc(records, "stream")
    if st:
        fire_p95 = [
            c["p95_s"] for r in st["results"] for k, c in r["per_class"].items() if k == "fire"
        ]
        same = all(r["same_as_file"] for r in st["results"])
        rows.append(
            _row(
                "streaming: fire alert latency (p95)",
                "well under 1 s",
                f"worst {max(fire_p95) * 1000:.0f} ms; same detections as the file path: "
                f"{'all runs' if same else 'NOT all'}",
                bool(fire_p95) and max(fire_p95) < 1 and same,
            )
        )
    ask = _doc(records, "ask")
    if ask:
        s = ask["summary"]
        rows.append(
            _row(
                f"ask the satellite ({len(ask['results'])} questions)",
                ">= 90 % exact, < 10 s",
                f"{s['correct_share']:.0%} exact, median {s['latency_median_s']} s, p95 "
                f"{s['latency_p95_s']} s, answer {s['answer_bytes_median']} B",
                s["correct_share"] >= 0.9 and (s["latency_p95_s"] or 0) < 10,
            )
        )
    faults = _doc(records, "faults")
    if faults:
        rows += fault_rows(faults)
    clouds = _doc(records, "clouds")
    if clouds:
        rows += cloud_rows(clouds)
    return rows


def cloud_rows(doc: Mapping[str, Any]) -> list[str]:
    """Summary lines of the cloud screening benchmark (issue 17)."""
    rows: list[str] = []
    acc = [r for r in doc["accuracy"] if r.get("status") == "ok"]
    for who, pick in (("student", "cloud_student"), ("teacher", "model_")):
        sel = [r for r in acc if r["model"].startswith(pick)]
        if not sel:
            absent = [r for r in doc["accuracy"] if r.get("model", "").startswith(pick)]
            why = absent[0]["status"] if absent else "not measured"
            rows.append(
                _row(f"clouds: {who} on the shared sample", "acc >= 0.90, kappa >= 0.70", why, None)
            )
            continue
        note = " (fitted: trained on its teacher's masks of it)" if who == "student" else ""
        rows.append(
            _row(
                f"clouds: {who} on the shared sample{note}",
                "acc >= 0.90, kappa >= 0.70",
                "; ".join(
                    f"{r['bands']} b acc {r['cloud_accuracy']:.3f}, kappa {r['kappa']:.3f}"
                    for r in sel
                ),
                all(r["cloud_accuracy"] >= 0.9 and r["kappa"] >= 0.7 for r in sel),
            )
        )
    agree = [
        (f"sample {r['bands']} b", r["agreement_with_teacher"])
        for r in acc
        if r["model"] == "cloud_student" and r["agreement_with_teacher"] is not None
    ]
    agree += [
        (r["scene"], r["teacher"]["agreement"])
        for r in doc["scenes"]
        if r.get("teacher", {}).get("status") == "ok"
    ]
    if agree:
        worst = min(agree, key=lambda a: a[1])
        rows.append(
            _row(
                f"clouds: student vs teacher agreement ({len(agree)} scenes/paths)",
                ">= 0.95 on every scene",
                f"worst {worst[1]:.3f} ({worst[0]}); "
                f"{sum(a >= 0.95 for _, a in agree)} of {len(agree)} >= 0.95",
                worst[1] >= 0.95,
            )
        )
    if doc["overcast"]:
        low = min(r["cloud_fraction"] for r in doc["overcast"])
        rows.append(
            _row(
                f"clouds: overcast frames ({len(doc['overcast'])})",
                "cloud fraction >= 0.9",
                f"lowest {low:.3f}",
                low >= 0.9,
            )
        )
    clear = [r for r in doc["scenes"] if r.get("cloud_fraction") is not None]
    if clear:
        high = max(clear, key=lambda r: r["cloud_fraction"])
        rows.append(
            _row(
                f"clouds: clear real scenes ({len(clear)})",
                "cloud fraction <= 0.05",
                f"highest {high['cloud_fraction']:.4f} ({high['scene']})",
                high["cloud_fraction"] <= 0.05,
            )
        )
    fire = [r["fire_score"] for r in doc["scenes"] if "fire_score" in r]
    if fire:
        rows.append(
            _row(
                "clouds on: G90292 fire clusters (cannot be screened: no visible bands)",
                "12 of 12",
                ", ".join(f"{f['found']} of {f['reference_clusters']}" for f in fire),
                all(f["found"] == f["reference_clusters"] == 12 for f in fire),
            )
        )
    # the 8 shared ports (sample_scenes/ holds copies of two of them); quick mode: the samples
    ports = [r for r in doc["scenes"] if "vessels_student" in r]
    ports = [r for r in ports if r["kind"] == "port"] or ports
    vs = [r["vessels_student"] for r in ports]
    if vs:
        under = sum(v["under_mask"] for v in vs)
        rows.append(
            _row(
                f"clouds on: labelled vessels under the mask ({sum(v['vessels'] for v in vs)} "
                f"on {len(vs)} scenes)",
                "0",
                f"{under} (vessel pixels obscured: {sum(v['obscured_vessel_px'] for v in vs)})",
                under == 0,
            )
        )
    nofire = [r for r in doc["scenes"] if "kind" in r and r["kind"] != "fire"]
    if nofire:
        n = sum(r["fire_features"] for r in nofire)
        ran = sum(r["fire_status"] == "ran" for r in nofire)
        rows.append(
            _row(
                f"clouds on: fire features on fire-free scenes ({len(nofire)}, fire ran on {ran})",
                "0",
                str(n),
                n == 0,
            )
        )
    for r in doc["downlink"]:
        rows.append(
            _row(
                f"clouds: downlink of an overcast scene, nothing found ({r['scene']})",
                "manifest + one-line report only",
                f"{r['discard']['downlink_bytes']:,} B vs {r['no_discard']['downlink_bytes']:,} B "
                f"without the discard ({r['saved_share']:.0%} saved)",
                r["discard"]["decoded_ok"]
                and r["discard"]["manifest"]
                and r["discard"]["report"]
                and not r["discard"]["geojson"]
                and r["discard"]["report_lines"] == 1,
            )
        )
    st = [r for r in doc["speed"] if r["mode"] == "student"]
    if st:
        worst_sp = max(st, key=lambda r: r["ms_per_mpx_10m"])
        rows.append(
            _row(
                "clouds: cloud stage speed (student)",
                "<= 10 ms per Mpx of 10 m grid",
                f"worst median {worst_sp['ms_per_mpx_10m']} ms per 10 m Mpx (working grid: "
                f"median {worst_sp['ms_per_mpx']}, min {worst_sp['min_ms_per_mpx']}, CPU "
                f"{worst_sp['cpu_ms_per_mpx']}; {worst_sp['scene']}, load "
                f"{worst_sp['load_avg_1min']})",
                worst_sp["ms_per_mpx_10m"] <= 10,
            )
        )
    return rows


def fault_rows(doc: Mapping[str, Any]) -> list[str]:
    """Summary lines of the fault-injection benchmark."""
    rows: list[str] = []
    for rate in ("realistic", "100x"):
        sel = [r for r in doc["upsets"] if r["rate_name"] == rate and r["mode"] == "hardened"]
        if not sel:
            continue
        scenes = sum(r["trials"] for r in sel)
        upsets = sum(r["upsets"] for r in sel)
        fs = sum(r["false_alerts"].get("fire", 0) + r["false_alerts"].get("ship", 0) for r in sel)
        rows.append(
            _row(
                f"bit flips, {rate} rate ({sel[0]['rate_per_bit']:g}/bit), {scenes} scenes",
                "no fire/ship alert from a flip",
                f"{upsets} upsets, {fs} false fire/ship alerts",
                fs == 0,
            )
        )
    crashes = doc.get("crashes") or []
    if crashes:
        kills = sum(r["kills"] for r in crashes)
        lost = sum(r["results_lost"] for r in crashes)
        dup = sum(r["packets_duplicated"] for r in crashes)
        rows.append(
            _row(
                f"SIGKILL soak of `run --resume --outbox` ({kills} kills)",
                "0 results lost, 0 packets duplicated",
                f"{lost} lost, {dup} duplicated",
                lost == 0 and dup == 0,
            )
        )
    return rows


def downlink_with_quality(records: Mapping[str, Any]) -> list[str]:
    dl, ships, fire = _doc(records, "downlink"), _doc(records, "ships"), _doc(records, "fire")
    if not dl:
        return []
    quality: dict[str, str] = {}
    if ships:
        for p in ships["ports"]:
            quality[f"sen2ships_{p['scene']}"] = (
                f"ships: recall {p['recall']:.2f}, precision {p['precision']:.2f} "
                f"({p['labels']} labelled vessels)"
            )
    if fire:
        for r in fire["results"]:
            if r.get("role") == "fire reference" and r.get("status") == "ok":
                name = r["scene"].rsplit("/", 1)[-1]
                quality[name] = f"fire: {r['fire_features']} of 12 reference clusters"
    lines = [
        "| scene | detections | packet bytes | raw / packets | zstd / packets | bytes per "
        "detection | detection quality on this scene |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in dl["results"]:
        default = (
            "no labels (synthetic: fires against truth in the memory section)"
            if r["scene"].startswith("syn")
            else "no labels"
        )
        per_det = r["bytes_per_detection"]  # None for a scene without detections
        lines.append(
            f"| {r['scene']} | {r['detections']} | {r['packet_bytes']:,} | {r['ratio_raw']:,.0f}x "
            f"| {r['ratio_zstd']:,.0f}x | {'–' if per_det is None else f'{per_det:.0f}'} | "
            f"{quality.get(r['scene'], default)} |"
        )
    return lines


def render(records: Mapping[str, Any], command: str, date: str) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}`  ",
        f"Date: {date}  ",
        "All figures below come from the sections of this file written by that one run; each "
        "section names its script, machine and code version.",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
        *targets(records),
        "",
        "Downlink saving beside the detection quality it was bought at (packets = manifest + "
        "report + compact GeoJSON, no extras):",
        "",
        *downlink_with_quality(records),
        "",
    ]
    return "\n".join(lines)
