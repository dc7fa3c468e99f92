"""Ground viewer figures: page size and open time in headless Chromium.

The four sample scenes are run (template reports, 64 px chips and a 256 px quicklook, as
``make demo`` does), their packets decoded as a folder of passes, and the viewer pages written
(``ground_decoder.viewer.write_viewer``).  For each scene page and the index this script
measures:

* the page size in bytes, and how much of it is Leaflet (JS + CSS, inlined) and pictures
  (quicklook and chips as data URIs);
* the time Python takes to build the pages;
* the open time in headless Chromium (Debian's package, driven over the DevTools protocol by
  ``tests/chromium.py``) from disk with the network off: from navigation until the map is
  ready (Leaflet drew every layer and the page's script ran), median and worst of N opens, and
  the browser's own Navigation Timing (load event end).

Targets (issue 19), reported, not enforced: the fire scene's page <= 1.5 MB; it opens in
< 1 s.

Usage::

    .venv/bin/python benchmarks/bench_viewer.py            # 10 opens per page
    .venv/bin/python benchmarks/bench_viewer.py --quick    # 3 opens per page
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
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

SECTION = "## Ground viewer"
RESULTS_JSON = BENCH_DIR / "results_viewer.json"
WORK = BENCH_DIR / "_work" / "viewer"
SCENES = (
    "s2_fire_G90292",
    "s2_l1c_virginia_crop",
    "sen2ships_honolulu",
    "sen2ships_casablanca",
)
SIZE_TARGET = 1_500_000
OPEN_TARGET_S = 1.0
READY = 'document.querySelector(".folium-map[data-eot-ready]")'


def build_pages() -> tuple[Path, dict[str, Any]]:
    """Run the sample scenes, decode their packets as a folder of passes, write the pages."""
    import ground_decoder
    from ground_decoder.passes import pass_plan
    from ground_decoder.viewer import write_viewer
    from pipeline import run_scene, write_scene
    from pipeline.settings import DownlinkSettings

    shutil.rmtree(WORK, ignore_errors=True)
    onboard, ground = WORK / "onboard", WORK / "ground"
    for name in SCENES:
        write_scene(
            run_scene(REPO / "sample_scenes" / name),
            onboard,
            downlink=DownlinkSettings(chips=True, quicklook=True),
        )
    scenes = []
    t0 = time.perf_counter()
    for path, out in pass_plan(onboard, ground):
        for decoded, written in ground_decoder.decode_file(path, out):
            scenes.append((decoded, written.directory, str(path.relative_to(onboard))))
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pages = write_viewer(scenes, ground)
    pages_s = time.perf_counter() - t0
    detections = {d.scene: len((d.geojson or {}).get("features", [])) for d, _dir, _src in scenes}
    return pages.index, {
        "decode_s": round(decode_s, 3),
        "write_pages_s": round(pages_s, 3),
        "pages": [str(p.relative_to(ground)) for p in (*pages.pages, pages.index)],
        "detections": detections,
    }


def page_parts(path: Path) -> dict[str, int]:
    text = path.read_text()
    leaflet = sum(
        len((REPO / "ground_decoder" / "viewer" / "static" / n).read_bytes())
        for n in ("leaflet.js", "leaflet.css")
    )
    images = 0
    # quoted data URIs: the quicklook and chips (Leaflet's CSS icons are url(data:...))
    for prefix in ('"data:image/jpeg;base64,', '"data:image/png;base64,'):
        start = 0
        while (i := text.find(prefix, start)) >= 0:
            end = i + len(prefix)
            while end < len(text) and text[end] != '"':
                end += 1
            images += end - i
            start = end
    total = len(text.encode())
    return {"bytes": total, "leaflet_bytes": leaflet, "image_bytes": images}


def open_times(pages: Sequence[Path], repeats: int) -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from tests.chromium import Chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        raise RuntimeError("chromium not installed (make install-test installs it)")
    out: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    with Chromium(binary, offline=True) as browser:
        start_s = time.perf_counter() - t0
        version = browser.evaluate("navigator.userAgent")
        for page in pages:
            walls: list[float] = []
            loads: list[float] = []
            for _ in range(repeats):
                browser.events.clear()
                browser.open("about:blank")
                walls.append(browser.open(page.as_uri(), ready=READY))
                loads.append(
                    float(
                        browser.evaluate(
                            "performance.getEntriesByType('navigation')[0].loadEventEnd"
                        )
                    )
                    / 1000.0
                )
            ok = not browser.network_responses()
            out[page.parent.name if page.name == "index.html" else page.name] = {
                "open_s_median": round(statistics.median(walls), 3),
                "open_s_max": round(max(walls), 3),
                "open_s_first": round(walls[0], 3),
                "load_event_s_median": round(statistics.median(loads), 3),
                "no_network_response": ok,
            }
    out["_browser"] = {"user_agent": version, "start_s": round(start_s, 3)}
    return out


def _version(user_agent: str) -> str:
    m = re.search(r"Chrome/([0-9.]+)", user_agent)
    return m.group(1) if m else "(version unknown)"


def render_section(doc: dict[str, Any]) -> str:
    lines = section_header(doc, SECTION)
    b = doc["browser"]
    lines += [
        "Pages from `ground_decoder.viewer.write_viewer` for the four sample scenes (template "
        "reports, 64 px chips and a 256 px quicklook, as `make demo`), opened from disk in "
        f"headless Chromium {_version(b['user_agent'])} (Debian's "
        "package, flags as in `tests/chromium.py`, network off: dead proxy + DevTools offline "
        f"emulation) {doc['repeats']} times each.  Open time = navigation until the map is "
        "ready (every layer drawn, the page's script run); load event = the browser's "
        "Navigation Timing `loadEventEnd`.  Leaflet 1.9.4 (JS + CSS) is inlined in every page.",
        "",
        "| page | detections | page bytes | of which Leaflet | of which pictures | open time "
        "median (max) | load event median |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in doc["pages"].items():
        t = doc["open"][name]
        lines.append(
            f"| {name} | {row['detections'] if row['detections'] is not None else '–'} | "
            f"{row['bytes']:,} | {row['leaflet_bytes']:,} | {row['image_bytes']:,} | "
            f"{t['open_s_median']:.3f} s ({t['open_s_max']:.3f} s) | "
            f"{t['load_event_s_median']:.3f} s |"
        )
    fire = doc["pages"]["s2_fire_G90292"]
    fire_t = doc["open"]["s2_fire_G90292"]
    lines += [
        "",
        f"Fire scene page: **{fire['bytes'] / 1e6:.2f} MB** (target <= 1.5 MB: "
        f"{'met' if fire['bytes'] <= SIZE_TARGET else 'not met'}), opens in "
        f"**{fire_t['open_s_median']:.2f} s** median, {fire_t['open_s_max']:.2f} s worst "
        f"(target < 1 s: {'met' if fire_t['open_s_max'] < OPEN_TARGET_S else 'not met'}).  "
        f"Decoding the four passes and writing their products (GeoJSON, report, PNG map, "
        f"chips) took {doc['build']['decode_s']:.2f} s, writing the five viewer pages "
        f"{doc['build']['write_pages_s']:.2f} s (Python); the browser started in "
        f"{b['start_s']:.2f} s.  No page got any response from the network.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="3 opens per page instead of 10")
    args = ap.parse_args(argv[1:])
    repeats = 3 if args.quick else 10
    t_start = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    software = software_facts()
    errors: list[str] = []
    index, build = build_pages()
    ground = index.parent
    pages = [ground / p for p in build["pages"]]
    sizes: dict[str, dict[str, Any]] = {}
    for p in pages:
        name = p.parent.name if p.parent != ground else "index (4 scenes)"
        sizes[name] = {**page_parts(p), "detections": build["detections"].get(name)}
    opened = open_times(pages, repeats)
    browser = opened.pop("_browser")
    opened = {("index (4 scenes)" if k == ground.name else k): v for k, v in opened.items()}
    for name, t in opened.items():
        if not t["no_network_response"]:
            errors.append(f"{name}: a request got a response from the network")
    if code_fingerprint() != software["code_sha256"]:
        errors.append("pipeline/ or models/ changed while the benchmark ran")
    doc: dict[str, Any] = {
        "benchmark": "ground viewer",
        "command": command_line(argv, "benchmarks/bench_viewer.py"),
        "date_utc": date,
        "machine": machine_facts(),
        "software": software,
        "models": "as run by the pipeline (fire, ships, crop)",
        "repeats": repeats,
        "browser": browser,
        "build": build,
        "pages": sizes,
        "open": opened,
        "targets": {"fire_page_bytes": SIZE_TARGET, "open_s": OPEN_TARGET_S},
        "total_benchmark_s": round(time.perf_counter() - t_start, 2),
    }
    if errors:
        doc["errors"] = errors
    return publish(
        doc, lambda: render_section(doc), SECTION, RESULTS_JSON, WORK / "last_failed.json"
    )


if __name__ == "__main__":
    raise SystemExit(main())
