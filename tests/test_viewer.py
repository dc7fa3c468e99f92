"""The ground viewer: self-contained HTML pages, checked as files and in headless Chromium.

The browser tests open the pages from disk with the network off (a dead proxy plus DevTools'
offline emulation) and skip only when no chromium binary is installed (``make install-test``
installs Debian's package).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ground_decoder
from ground_decoder.passes import pass_plan
from ground_decoder.viewer import IndexEntry, index_html, scene_html, scene_view, write_viewer

from .chromium import Chromium, find_chromium
from .conftest import REPO, run_cli

FIRE_PAGE_LIMIT = 1_500_000  # bytes: the target for the fire sample scene
READY = 'document.querySelector(".folium-map[data-eot-ready]")'


# ------------------------------------------------------------------------------ fixtures


def _run(scene: str, out: Path, chips: bool = True) -> Path:
    """``eotriage run``'s products for a sample scene (template report), with extras."""
    from pipeline import run_scene, write_scene
    from pipeline.settings import DownlinkSettings

    written = write_scene(
        run_scene(REPO / "sample_scenes" / scene),
        out,
        downlink=DownlinkSettings(chips=chips, quicklook=chips),
    )
    return written.directory / "downlink.bin"


@pytest.fixture(scope="module")
def passes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of passes: the fire scene, Casablanca, a damaged fire pass, a garbage file."""
    root = tmp_path_factory.mktemp("passes")
    fire = _run("s2_fire_G90292", root)
    _run("sen2ships_casablanca", root)
    data = bytearray(fire.read_bytes())
    for off in (300, 2500, 9000):  # CRC failures in the detections and chips
        data[off] ^= 0x5A
    bad = root / "damaged" / "fire_damaged.bin"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00noise" + bytes(data[:-2000]))  # garbage in front, tail cut
    (root / "garbage.bin").write_bytes(b"not a packet stream " * 30)
    return root


@pytest.fixture(scope="module")
def fire_decoded(passes: Path) -> ground_decoder.Decoded:
    return ground_decoder.decode_stream((passes / "s2_fire_G90292" / "downlink.bin").read_bytes())


@pytest.fixture(scope="module")
def damaged_decoded(passes: Path) -> ground_decoder.Decoded:
    return ground_decoder.decode_stream((passes / "damaged" / "fire_damaged.bin").read_bytes())


@pytest.fixture(scope="module")
def decoded_folder(passes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ground")
    proc = run_cli("decode", passes, "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # damage in two passes
    assert f"wrote {out / 'index.html'}" in proc.stdout
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if find_chromium() is None:
        pytest.skip("chromium is not installed (make install-test installs Debian's package)")
    with Chromium(offline=True) as b:
        yield b


def _open(browser: Chromium, page: Path) -> float:
    browser.events.clear()
    return browser.open(page.as_uri(), ready=READY)


def _count(browser: Chromium, selector: str) -> int:
    return int(browser.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length"))


def _no_network(browser: Chromium) -> None:
    """Nothing came from the network: every request was a file or data URL or failed."""
    assert browser.network_responses() == []
    fetched = [u for u in browser.network_requests() if not u.startswith(("file:", "data:"))]
    # only basemap tiles may be asked for (and they fail offline)
    assert all("tile.openstreetmap.org" in u for u in fetched), fetched


def _non_blank(png: bytes) -> tuple[int, float]:
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
        colours = len(rgb.getcolors(1 << 20) or [])
        spread = max(ImageStat.Stat(rgb).stddev)
    return colours, spread


# ------------------------------------------------------------------------------ the files


def test_import_ground_decoder_does_not_import_folium() -> None:
    code = (
        "import sys, ground_decoder, ground_decoder.passes\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'folium', 'branca', 'jinja2'}"
        " or m.startswith('ground_decoder.viewer')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_fire_page_is_self_contained_and_small(fire_decoded: ground_decoder.Decoded) -> None:
    page = scene_html(scene_view(fire_decoded), source="downlink.bin")
    size = len(page.encode())
    assert size <= FIRE_PAGE_LIMIT, f"fire page is {size:,} bytes"
    # no external script, style sheet, image or font: everything is inline
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert not re.search(r"""url\(\s*['"]?(https?:|//)""", page)
    assert not re.search(r"""<img[^>]+src=['"]?(https?:|//)""", page)
    for cdn in ("cdn.jsdelivr", "cdnjs", "code.jquery", "bootstrapcdn", "unpkg"):
        assert cdn not in page
    assert "Leaflet 1.9.4" in page and "BSD-2-Clause" in page
    assert page.count("data:image/jpeg;base64,") >= 13  # quicklook + 12 chips
    assert "12 fire clusters" in page


def test_scene_view_reads_the_fire_scene(fire_decoded: ground_decoder.Decoded) -> None:
    view = scene_view(fire_decoded)
    assert view.scene == "s2_fire_G90292" and view.priority == "high" and view.ok
    assert view.counts() == {"fire": 12}
    assert len(view.chips) == 12 and view.quicklook is not None
    fire = next(c for c in view.classes if c.cls == "fire")
    assert fire.state == "found" and fire.text() == "found 12"
    assert all(d.geometry is not None and d.bbox is not None for d in view.detections)
    # the fire sample has no ship or crop bands: a partial scan, and the page says why
    assert [n.level for n in view.notices] == ["warning"]
    assert "partial scan" in view.notices[0].text and "ship not checked" in view.notices[0].text
    ship = next(c for c in view.classes if c.cls == "ship")
    assert ship.state == "not_checked" and "B02" in ship.text()
    top = view.detections[0]
    assert dict(top.rows)["class"] == "Fire" and "score" in dict(top.rows)


def _fake(
    geojson: dict[str, Any] | None, report: dict[str, Any] | None, scene: str = "synthetic"
) -> Any:
    from ground_decoder import Damage, Decoded

    return Decoded(
        scene=scene,
        scene_tag=7,
        geojson=geojson,
        report=report,
        chips=(),
        quicklook=None,
        manifest=None,
        damage=Damage(),
        packets=3,
    )


def test_scene_outcome_classes_and_cloud_are_read_defensively() -> None:
    """Fields other issues add to the products (outcome, per-class states, cloud) show when
    present, under any of the names they may get; junk never raises."""
    ship = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [-7.6, 33.6]},
        "properties": {
            "class": "ship",
            "score": 0.9,
            "length_m": 120,
            "heading_deg": 45,
            "setting": "moored",
            "cloud_fraction": 0.4,
        },
    }
    junk = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [float("nan"), 1]},
        "properties": {"class": "fire", "score": "high"},
    }
    gj = {
        "type": "FeatureCollection",
        "eotriage": {
            "outcome": {"status": "partial", "reasons": ["tile r001c002 failed: read error"]},
            "cloud_fraction": 0.62,
            "classes": {
                "ship": {"status": "found", "count": 1},
                "fire": {"status": "not_checked", "reason": "no SWIR bands"},
                "crop_stress": {"status": "none", "count": 0},
            },
        },
        "features": [ship, junk],
    }
    view = scene_view(
        _fake(
            gj,
            {
                "summary": "1 ship",
                "priority": "medium",
                "facts": {"time_utc": "2024-05-01T10:00:00Z"},
            },
        )
    )
    assert view.outcome == "partial" and view.outcome_reasons == (
        "tile r001c002 failed: read error",
    )
    assert view.cloud_fraction == pytest.approx(0.62)
    assert view.acquired == "2024-05-01T10:00:00Z"
    states = {c.cls: c.text() for c in view.classes}
    assert states == {
        "ship": "found 1",
        "fire": "not checked (no SWIR bands)",
        "crop_stress": "looked and found none",
    }
    d = view.detections[0]
    assert (d.setting, d.size_text, d.heading) == ("moored", "120 m", 45.0)
    assert d.cloud is not None and "0.4" in d.cloud
    # a clear look (cloud fraction 0) gets no cloud mark in the table; the popup keeps the value
    from ground_decoder.viewer.model import _detection

    props = {"class": "ship", "score": 0.6, "cloud_fraction": 0.0, "under_cloud": False}
    clear = _detection(0, {"type": "Feature", "geometry": None, "properties": props})
    assert clear.cloud is None
    assert any("cloud" in k.lower() for k, _ in clear.rows)  # the popup keeps the values
    assert view.detections[1].geometry is None  # NaN coordinates are not drawn
    page = scene_html(view)
    for text in (
        "partial",
        "62 %",
        "not checked (no SWIR bands)",
        "looked and found none",
        "moored",
        "2024-05-01T10:00:00Z",
    ):
        assert text in page
    # another spelling: facts list with checked=false, report-level outcome, percent clouds
    view2 = scene_view(
        _fake(
            {"type": "FeatureCollection", "features": []},
            {
                "summary": "Scene failed",
                "outcome": "failed",
                "clouds": {"fraction": 95},
                "facts": {
                    "classes": [{"cls": "ship", "count": 0, "checked": False, "reason": "no B08"}]
                },
            },
        )
    )
    assert view2.outcome == "failed" and view2.cloud_fraction == pytest.approx(0.95)
    assert view2.classes[0].text() == "not checked (no B08)"
    assert any("failed" in n.text for n in view2.notices)


def test_zero_detections_page_says_so() -> None:
    view = scene_view(
        _fake(
            {"type": "FeatureCollection", "features": []},
            {"summary": "Low priority, clear scene", "priority": "low"},
        )
    )
    page = scene_html(view)
    assert "Zero detections: the satellite reported nothing found" in page
    view = scene_view(_fake(None, {"summary": "x", "priority": "low"}))
    assert "the detections product was not received" in scene_html(view)


def test_damaged_page_lists_recovered_and_damaged_ranges(
    damaged_decoded: ground_decoder.Decoded,
) -> None:
    assert not damaged_decoded.ok
    view = scene_view(damaged_decoded)
    assert view.damaged_ranges and any(c == "crc" for c, _s, _e in view.damaged_ranges)
    assert any(c == "garbage" for c, _s, _e in view.damaged_ranges)
    recovered = dict(view.recovered)
    assert recovered["manifest"] == "received"
    page = scene_html(view)
    assert "This pass arrived damaged" in page and "CRC failed" in page
    for _cause, start, end in view.damaged_ranges:
        assert f"{start}–{end}" in page


def test_garbage_pass_page_says_why_it_is_empty() -> None:
    view = scene_view(ground_decoder.decode_stream(b"not a packet stream " * 30))
    assert view.packets == 0 and view.detections == ()
    page = scene_html(view)
    assert "Nothing could be recovered from this pass" in page
    assert "garbage" in page


def test_index_sorts_by_priority_then_time(fire_decoded: ground_decoder.Decoded) -> None:
    def entry(name: str, prio: str | None, time_utc: str | None) -> IndexEntry:
        report = {"summary": name, "priority": prio, "facts": {"time_utc": time_utc}}
        empty = {"type": "FeatureCollection", "features": []}
        view = scene_view(_fake(empty, report, scene=name))
        return IndexEntry(view, href=f"{name}/index.html", source=name)

    entries = [
        entry("low_new", "low", "2024-06-02T00:00:00Z"),
        entry("high_old", "high", "2024-01-01T00:00:00Z"),
        entry("high_new", "high", "2024-06-01T00:00:00Z"),
        entry("high_untimed", "high", None),
        entry("medium", "medium", None),
        IndexEntry(None, source="broken.bin", error="cannot be read: Permission denied"),
    ]
    page = index_html(entries)
    order = re.findall(r'<tr data-scene="([^"]+)"', page)
    assert order == ["high_new", "high_old", "high_untimed", "medium", "low_new", "broken.bin"]
    assert "cannot be read: Permission denied" in page


def test_pass_plan_names_output_folders(tmp_path: Path) -> None:
    for rel in ("a/downlink.bin", "b.bin", "c/x/pass1.bin", "a.bin", "out/old.bin", ".hid/z.bin"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    plan = {
        p.relative_to(tmp_path).as_posix(): o.relative_to(tmp_path / "out").as_posix()
        for p, o in pass_plan(tmp_path, tmp_path / "out")
    }
    # DIR/<scene>/downlink.bin -> OUT/<scene>; a clash gets a suffix; OUT and hidden skipped
    assert plan == {
        "a/downlink.bin": "a",
        "a.bin": "a_2",
        "b.bin": "b",
        "c/x/pass1.bin": "c/x/pass1",
    }


def test_cli_single_pass_writes_index_html(passes: Path, tmp_path: Path) -> None:
    out = tmp_path / "ground"
    proc = run_cli("decode", passes / "s2_fire_G90292" / "downlink.bin", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"wrote {out / 'index.html'}"
    page = (out / "index.html").read_text()
    assert "s2_fire_G90292" in page and (out / "detections.geojson").is_file()
    proc = run_cli(
        "decode",
        passes / "s2_fire_G90292" / "downlink.bin",
        "--out",
        tmp_path / "plain",
        "--no-html",
    )
    assert proc.returncode == 0 and not (tmp_path / "plain" / "index.html").exists()


def test_cli_folder_of_passes(decoded_folder: Path) -> None:
    out = decoded_folder
    index = (out / "index.html").read_text()
    hrefs = re.findall(r'<td><a href="([^"]+)">', index)
    assert len(hrefs) == 4  # fire, casablanca, damaged fire, garbage (a scene with nothing)
    for href in hrefs:
        assert (out / href).is_file()
    rows = re.findall(r'<tr data-scene="([^"]+)"', index)
    # high, medium, then unknown priority (the damaged pass lost its report), then nothing
    assert rows == ["s2_fire_G90292", "sen2ships_casablanca", "s2_fire_G90292", "nothing recovered"]
    assert (out / "s2_fire_G90292" / "index.html").is_file()
    assert (out / "damaged" / "fire_damaged" / "index.html").is_file()
    assert 'href="../index.html"' in (out / "s2_fire_G90292" / "index.html").read_text()


def test_cli_folder_without_passes_and_missing_file(tmp_path: Path) -> None:
    proc = run_cli("decode", tmp_path, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "no *.bin pass files" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("decode", tmp_path / "nope.bin", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_write_viewer_single_scene_is_the_index(
    fire_decoded: ground_decoder.Decoded, tmp_path: Path
) -> None:
    pages = write_viewer([(fire_decoded, tmp_path, "downlink.bin")], tmp_path)
    assert pages.index == tmp_path / "index.html" and pages.pages == (pages.index,)


# ------------------------------------------------------------------------------ in Chromium


def test_browser_scene_page_offline(
    browser: Chromium, decoded_folder: Path, fire_decoded: ground_decoder.Decoded
) -> None:
    page = decoded_folder / "s2_fire_G90292" / "index.html"
    seconds = _open(browser, page)
    n = len(fire_decoded.geojson["features"])  # type: ignore[index]
    # one footprint (and one marker ring) per detection, inside the map container
    assert _count(browser, ".folium-map .eot-det") == n == 12
    assert _count(browser, ".folium-map .eot-halo") == n
    assert _count(browser, "table.eot-dets tbody tr") == n
    # the report text is shown
    summary = browser.evaluate("document.getElementById('eot-summary').innerText")
    assert "12 fire clusters" in summary
    assert browser.evaluate("document.getElementById('eot-summary').offsetHeight") > 0
    # the quicklook is drawn from its data URI
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('.leaflet-image-layer'))"
        ".some(i => i.complete && i.naturalWidth === 256)"
    )
    # a click on a detection opens its popup
    assert _count(browser, ".leaflet-popup") == 0
    browser.click_element(".folium-map .eot-halo", 3)
    text = browser.wait_for("(document.querySelector('.leaflet-popup-content') || {}).innerText")
    assert "Fire" in text and "score" in text and "area" in text
    assert (
        browser.evaluate("document.querySelector('.leaflet-popup-content img').naturalWidth") == 64
    )  # the detection's chip
    # a click on a table row zooms to the feature
    zoom_before = browser.evaluate("document.querySelector('.folium-map').dataset.eotReady")
    assert zoom_before == "1"
    map_name = browser.evaluate("Object.keys(window).find(k => /^map_[0-9a-f]+$/.test(k))")
    z0 = browser.evaluate(f"{map_name}.getZoom()")
    browser.click_element('table.eot-dets tbody tr[data-i="0"]')
    time.sleep(0.3)
    assert browser.evaluate(f"{map_name}.getZoom()") > z0
    assert "#0" in browser.evaluate("document.querySelector('.leaflet-popup-content').innerText")
    # the basemap says it is offline; nothing came from the network
    assert "offline" in browser.evaluate("document.getElementById('eot-basemap').innerText")
    _no_network(browser)
    colours, spread = _non_blank(browser.screenshot())
    assert colours > 500 and spread > 20, (colours, spread)
    print(f"fire page: {page.stat().st_size:,} bytes, opened in {seconds:.3f} s")


def test_browser_sorting_the_table(browser: Chromium, decoded_folder: Path) -> None:
    _open(browser, decoded_folder / "s2_fire_G90292" / "index.html")
    first = "document.querySelector('table.eot-dets tbody tr').dataset.i"
    browser.click_element("table.eot-dets thead th", 3)  # size, ascending
    small = browser.evaluate(first)
    browser.click_element("table.eot-dets thead th", 3)  # descending
    assert browser.evaluate(first) == "0" != small  # detection 0 is the largest fire


def test_browser_damaged_page(
    browser: Chromium, decoded_folder: Path, damaged_decoded: ground_decoder.Decoded
) -> None:
    _open(browser, decoded_folder / "damaged" / "fire_damaged" / "index.html")
    got = len((damaged_decoded.geojson or {}).get("features", []))
    assert _count(browser, ".folium-map .eot-det") == got
    notice = browser.evaluate("document.querySelector('.eot-notice').innerText")
    assert "damaged" in notice and "Recovered" in notice
    assert _count(browser, "#eot-ranges tbody tr") == len(
        scene_view(damaged_decoded).damaged_ranges
    )
    assert "CRC" in browser.evaluate("document.getElementById('eot-ranges').innerText")
    _no_network(browser)


def test_browser_garbage_page_says_why(browser: Chromium, decoded_folder: Path) -> None:
    _open(browser, decoded_folder / "garbage" / "index.html")
    assert _count(browser, ".folium-map .eot-det") == 0
    msg = browser.evaluate("document.getElementById('eot-empty-map').innerText")
    assert "Nothing could be recovered" in msg
    _no_network(browser)


def test_browser_folder_index(browser: Chromium, decoded_folder: Path) -> None:
    _open(browser, decoded_folder / "index.html")
    assert _count(browser, "#eot-scenes tbody tr") == 4
    # footprints of the three scenes with a position (the garbage pass has none)
    assert _count(browser, ".folium-map .eot-footprint") == 3
    # one alert per detection of every scene: fire (12 clusters), casablanca (its ships; no
    # crop stress without a cropland layer), damaged (what was recovered)
    per_scene = {
        f.parent.name: len(json.loads(f.read_text())["features"])
        for f in decoded_folder.rglob("detections.geojson")
    }
    assert per_scene["s2_fire_G90292"] == 12 and per_scene["sen2ships_casablanca"] > 0
    assert _count(browser, ".folium-map .eot-alert") == sum(per_scene.values())
    _no_network(browser)
    # a row links to its scene page, which opens
    browser.click_element('#eot-scenes tbody tr[data-scene="sen2ships_casablanca"] a')
    browser.wait_event("Page.loadEventFired")
    browser.wait_for(READY)
    assert browser.evaluate("location.href").endswith("sen2ships_casablanca/index.html")
    assert browser.evaluate("document.getElementById('eot-title').innerText") == (
        "sen2ships_casablanca"
    )


# ------------------------------------------------------------------------------ junk in, page out

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_coords = st.recursive(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), _scalars), max_size=3),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)
_geometry = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "Point",
                    "MultiPoint",
                    "LineString",
                    "MultiLineString",
                    "Polygon",
                    "MultiPolygon",
                    "GeometryCollection",
                    "Nope",
                ]
            ),
            "coordinates": _coords,
        }
    ),
)
_feature = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "type": st.just("Feature"),
            "geometry": _geometry,
            "properties": st.one_of(
                _json,
                st.dictionaries(
                    st.sampled_from(
                        [
                            "class",
                            "score",
                            "length_m",
                            "area_m2",
                            "area_km2",
                            "heading_deg",
                            "setting",
                            "cloud",
                            "centroid_lon",
                            "centroid_lat",
                            "severity",
                            "</script><b>x",
                        ]
                    ),
                    _scalars,
                    max_size=6,
                ),
            ),
        }
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    features=st.lists(_feature, max_size=5),
    members=st.dictionaries(
        st.sampled_from(["eotriage", "properties", "outcome", "classes"]), _json, max_size=3
    ),
    report=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["summary", "priority", "text", "facts", "outcome", "clouds"]),
            _json,
            max_size=5,
        ),
    ),
)
def test_any_product_gives_a_page(
    features: list[Any], members: dict[str, Any], report: dict[str, Any] | None
) -> None:
    """Whatever a damaged or future product holds, the page is written and its scripts stay
    intact (no raw '</script' from the data)."""
    gj = {"type": "FeatureCollection", **members, "features": features}
    page = scene_html(scene_view(_fake(gj, report)))
    assert page.count("<script") == page.count("</script>")
    assert "</script><b>" not in page
