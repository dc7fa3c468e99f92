"""HTML pages of the ground viewer: one self-contained page per scene and an index over passes.

The map is folium (Leaflet).  folium links Leaflet, jQuery, Bootstrap and Font Awesome from
CDNs; here none of them is linked: Leaflet's JS and CSS (shipped in ``static/``, BSD-2-Clause)
are inlined into the page, and only folium elements that need nothing but Leaflet are used, so a
page opened from disk with no network shows the detections, report and pictures.  Popups are
bound by the page's own small script (``static/viewer.js``) from escaped HTML built here.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import (
    CLASS_STYLES,
    Bbox,
    DetectionView,
    SceneView,
    class_colour,
    class_label,
    fmt_fraction,
    fmt_lat_lon,
    union_bbox,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
LEAFLET_VERSION = "1.9.4"
PRIORITY_COLOURS = {"high": "#c62828", "medium": "#e08a00", "low": "#2e7d32"}
UNKNOWN_COLOUR = "#6b7785"
DAMAGE_CAUSES = {
    "crc": "CRC failed",
    "truncated": "truncated packet",
    "garbage": "no packet header (garbage)",
}
#: zoom the map never goes past when fitting a scene or a detection
MAX_FIT_ZOOM = 16


def _folium() -> Any:
    try:
        import folium
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the HTML viewer needs folium: pip install 'eotriage[viewer]' (or 'folium')"
        ) from exc
    return folium


# ------------------------------------------------------------------------------ assets


@functools.cache
def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


@functools.cache
def _leaflet_css() -> str:
    """Leaflet's CSS with its images inlined (layer-control icon); other images dropped."""

    def inline(m: re.Match[str]) -> str:
        path = STATIC / m.group(1)
        if path.is_file():
            return "url(data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() + ")"
        return "none"

    return re.sub(r"url\((images/[A-Za-z0-9_.-]+\.png)\)", inline, _asset("leaflet.css"))


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no '</script>', no HTML comment openers)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline_script(code: str) -> str:
    return "<script>\n" + code.replace("</script", "<\\/script") + "\n</script>"


@functools.cache
def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(
        fmt_fraction=fmt_fraction,
        fmt_lat_lon=fmt_lat_lon,
        causes=DAMAGE_CAUSES,
        leaflet_version=LEAFLET_VERSION,
        colour=class_colour,
        label=class_label,
    )
    return env


# ------------------------------------------------------------------------------ map pieces


def _nice_step(span: float) -> float:
    raw = max(span, 1e-6) / 4.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _deg(v: float, step: float, pos: str, neg: str) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{abs(v):.{decimals}f}°{pos if v >= 0 else neg}"


def _graticule(folium: Any, bounds: Bbox | None) -> Any:
    """Lon/lat lines around the scene with labels along its south and west edges: the
    offline background (no tiles needed)."""
    group = folium.FeatureGroup(name="Graticule", show=True)
    if bounds is None:
        w, s, e, n, step = -180.0, -80.0, 180.0, 80.0, 30.0
        lw, ls = w, s
    else:
        span = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
        step = _nice_step(span)
        w = max(-180.0, math.floor((bounds[0] - 3 * span) / step) * step)
        e = min(180.0, math.ceil((bounds[2] + 3 * span) / step) * step)
        s = max(-85.0, math.floor((bounds[1] - 3 * span) / step) * step)
        n = min(85.0, math.ceil((bounds[3] + 3 * span) / step) * step)
        lw, ls = bounds[0], bounds[1]
    lines: list[list[list[float]]] = []
    labels: list[tuple[float, float, str, bool]] = []  # (lat, lon, text, is_lon)
    k = math.ceil(w / step)
    while k * step <= e + 1e-9 and len(lines) < 400:
        x = round(k * step, 9)
        lines.append([[x, s], [x, n]])
        if bounds is None or bounds[0] - step <= x <= bounds[2] + step:
            labels.append((ls, x, _deg(x, step, "E", "W"), True))
        k += 1
    k = math.ceil(s / step)
    while k * step <= n + 1e-9 and len(lines) < 800:
        y = round(k * step, 9)
        lines.append([[w, y], [e, y]])
        if bounds is None or bounds[1] - step <= y <= bounds[3] + step:
            labels.append((y, lw, _deg(y, step, "N", "S"), False))
        k += 1
    folium.GeoJson(
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "MultiLineString", "coordinates": lines},
        },
        style_function=lambda _f: {
            "color": "#8796a5",
            "weight": 1,
            "opacity": 0.7,
            "dashArray": "3 4",
        },
        interactive=False,
        control=False,
    ).add_to(group)
    for lat, lon, text, is_lon in labels[:60]:
        folium.Marker(
            [lat, lon],
            icon=folium.DivIcon(
                html=f'<div class="eot-grid-label">{html.escape(text)}</div>',
                icon_size=(70, 14),
                icon_anchor=(35, -4) if is_lon else (74, 7),
                class_name="eot-grid",
            ),
            interactive=False,
        ).add_to(group)
    return group


def _base_map(folium: Any, bounds: Bbox | None, title: str) -> Any:
    """A folium Map with no CDN links: Leaflet and the viewer's CSS/JS inlined in the page."""
    from branca.element import Element

    if bounds is None:
        centre, zoom = [20.0, 0.0], 2
    else:
        centre, zoom = [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2], 12
    m = folium.Map(
        location=centre,
        zoom_start=zoom,
        tiles=None,
        control_scale=True,
        zoom_snap=0.25,
        zoom_delta=0.5,
    )
    # folium would link leaflet, jquery, bootstrap and font-awesome from CDNs
    m.default_js = []
    m.default_css = []
    fig = m.get_root()
    fig.title = html.escape(title)
    header = fig.header
    header.add_child(
        Element(
            "<!-- Leaflet "
            + LEAFLET_VERSION
            + " (c) 2010-2023 Vladimir Agafonkin, (c) 2010-2011 CloudMade; BSD-2-Clause, "
            "see ground_decoder/viewer/static/LICENSE-leaflet.txt -->\n<style>\n"
            + _leaflet_css()
            + "\n</style>"
        ),
        name="leaflet_css",
    )
    header.add_child(Element(_inline_script(_asset("leaflet.js"))), name="leaflet_js")
    header.add_child(Element("<style>\n" + _asset("viewer.css") + "\n</style>"), name="eot_css")
    header.add_child(Element(_inline_script(_asset("viewer.js"))), name="eot_js")
    folium.TileLayer(
        "OpenStreetMap",
        name="OpenStreetMap (online)",
        max_zoom=19,
        max_native_zoom=19,
        overlay=False,
        control=True,
    ).add_to(m)
    folium.FeatureGroup(name="Plain background (offline)", overlay=False, show=False).add_to(m)
    # the view is fitted to the bounds by EOT.init (without animation: an animated zoom
    # started before the page is painted can leave Leaflet waiting for a transition)
    return m


def _js_call(folium: Any, code: str) -> Any:
    """A map child whose script calls ``code`` with the map (``{map}`` in code)."""
    from branca.element import MacroElement
    from jinja2 import Template

    class _Call(MacroElement):
        _template = Template(
            "{% macro script(this, kwargs) %}"
            + code.replace("{map}", "{{ this._parent.get_name() }}")
            + "{% endmacro %}"
        )

    return _Call()


def _swatch(colour: str) -> str:
    return f'<span class="eot-swatch" style="background:{html.escape(colour)}"></span>'


def _popup(d: DetectionView) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in d.rows
    )
    return (
        f"<h3>{_swatch(d.colour)}{html.escape(d.label)} "
        f'<span class="eot-muted">#{d.index}</span></h3><table>{rows}</table>'
    )


def _feature(i: int, geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": i, "geometry": geometry, "properties": {"_i": i, **props}}


def _class_layers(folium: Any, m: Any, view: SceneView) -> None:
    from folium.utilities import JsCode

    by_class: dict[str, list[DetectionView]] = {}
    for d in view.detections:
        if d.geometry is not None:
            by_class.setdefault(d.cls, []).append(d)
    order = [c for c in CLASS_STYLES if c in by_class] + sorted(
        c for c in by_class if c not in CLASS_STYLES
    )
    for cls in order:
        dets = by_class[cls]
        colour = class_colour(cls)
        name = f"{_swatch(colour)}{html.escape(class_label(cls))} ({len(dets)})"
        group = folium.FeatureGroup(name=name, show=True)

        def style(_f: Any, c: str = colour) -> dict[str, Any]:
            return {
                "color": c,
                "weight": 2,
                "fillColor": c,
                "fillOpacity": 0.35,
                "className": "eot-det",
            }

        def halo(_f: Any, c: str = colour) -> dict[str, Any]:
            return {
                "color": c,
                "weight": 2,
                "fillColor": c,
                "fillOpacity": 0.08,
                "className": "eot-halo",
            }

        folium.GeoJson(
            {
                "type": "FeatureCollection",
                "features": [_feature(d.index, d.geometry or {}) for d in dets],
            },
            style_function=style,
            highlight_function=lambda _f: {"weight": 4, "fillOpacity": 0.6},
            marker=folium.CircleMarker(radius=5),
            on_each_feature=JsCode("EOT.register"),
            control=False,
        ).add_to(group)
        centres = [d for d in dets if d.lat is not None and d.lon is not None]
        if centres:
            folium.GeoJson(
                {
                    "type": "FeatureCollection",
                    "features": [
                        _feature(d.index, {"type": "Point", "coordinates": [d.lon, d.lat]})
                        for d in centres
                    ],
                },
                style_function=halo,
                marker=folium.CircleMarker(radius=11),
                on_each_feature=JsCode("EOT.registerHalo"),
                control=False,
            ).add_to(group)
        group.add_to(m)


def _image_layers(folium: Any, m: Any, view: SceneView) -> None:
    if view.quicklook is not None or view.chips:
        folium.map.CustomPane("eot-imagery", z_index=350, pointer_events=False).add_to(m)
    if view.quicklook is not None:
        q = view.quicklook
        folium.raster_layers.ImageOverlay(
            q.data_uri,
            bounds=[[q.bbox[1], q.bbox[0]], [q.bbox[3], q.bbox[2]]],
            name=f"Quicklook ({q.size_px[0]}×{q.size_px[1]} px)",
            opacity=0.9,
            pane="eot-imagery",
            show=True,
        ).add_to(m)
    if view.chips:
        group = folium.FeatureGroup(name=f"Image chips ({len(view.chips)})", show=False)
        for c in view.chips:
            folium.raster_layers.ImageOverlay(
                c.data_uri,
                bounds=[[c.bbox[1], c.bbox[0]], [c.bbox[3], c.bbox[2]]],
                pane="eot-imagery",
                control=False,
            ).add_to(group)
        group.add_to(m)


def _legend(view: SceneView) -> str:
    parts = [
        f"{_swatch(c.colour)}{html.escape(c.label)}: {c.received}"
        for c in view.classes
        if c.received
    ]
    if not parts:
        parts = ["no detections on the map"]
    return (
        "<div>" + "<br>".join(parts) + "</div>"
        '<div class="eot-basemap" id="eot-basemap">Basemap: OpenStreetMap</div>'
    )


def _no_detections_text(view: SceneView) -> str:
    if view.packets == 0:
        first = next((n.text for n in view.notices if n.level == "error"), None)
        return first or "Nothing could be recovered from this pass."
    if any(n.text.startswith("No detections on the map") for n in view.notices):
        return next(n.text for n in view.notices if n.text.startswith("No detections on the map"))
    if view.outcome == "failed":
        return "No detections: processing failed onboard, so this is not a clear scene."
    not_checked = [c.label for c in view.classes if c.state == "not_checked"]
    text = "Zero detections: the satellite reported nothing found"
    if not_checked:
        text += f" (not checked: {', '.join(not_checked)})"
    return text + "."


def scene_html(view: SceneView, *, source: str | None = None, index_href: str | None = None) -> str:
    """The self-contained HTML page of one scene."""
    folium = _folium()
    m = _base_map(folium, view.bounds, f"{view.title} · eotriage ground viewer")
    _image_layers(folium, m, view)
    _graticule(folium, view.bounds).add_to(m)
    _class_layers(folium, m, view)
    folium.LayerControl(collapsed=False, position="bottomright").add_to(m)
    _js_call(folium, "EOT.init({map});").add_to(m)

    chips = {c.index: c.data_uri for c in view.chips if c.index is not None}
    data = {
        "scene": view.scene,
        "bounds": list(view.bounds) if view.bounds else None,
        "maxZoom": MAX_FIT_ZOOM,
        "legend": _legend(view),
        "dets": [
            {
                "popup": _popup(d),
                "bbox": list(d.bbox) if d.bbox else None,
                "chip": chips.get(d.index),
            }
            for d in view.detections
        ],
    }
    from branca.element import Element

    fig = m.get_root()
    fig.header.add_child(
        Element(_inline_script("var EOT_DATA = " + _script_json(data) + ";")), name="eot_data"
    )
    no_dets = _no_detections_text(view) if not view.detections else ""
    empty_map = ""
    if view.bounds is None:
        empty_map = no_dets or "No detection has a drawable position (damaged coordinates)."
    side = (
        _templates()
        .get_template("scene.html.j2")
        .render(
            v=view,
            source=source,
            index_href=index_href,
            no_detections=no_dets,
            empty_map=empty_map,
        )
    )
    fig.html.add_child(Element(side), name="eot_side")
    page: str = fig.render()
    return page


# ------------------------------------------------------------------------------ the index


@dataclass(frozen=True)
class IndexEntry:
    """One row of the index: a decoded scene (``view``) with its page, or a pass that failed."""

    view: SceneView | None
    href: str | None = None  #: link to the scene page, relative to the index
    source: str | None = None  #: the pass file it came from
    error: str | None = None  #: why the pass gave no scene (file unreadable, no packets ...)


def _sort_key_time(acquired: str | None) -> str:
    return acquired or ""


def sort_entries(entries: Iterable[IndexEntry]) -> list[IndexEntry]:
    """Priority (high first, unknown after low), then acquisition time (newest first, unknown
    last), then name."""
    rows = sorted(entries, key=lambda e: (e.view.title if e.view else "", e.source or ""))
    rows.sort(key=lambda e: _sort_key_time(e.view.acquired if e.view else None), reverse=True)
    # passes that gave nothing go after those of the same priority that gave something
    rows.sort(key=lambda e: (e.view.priority_rank, e.view.packets == 0) if e.view else (4, True))
    return rows


def _scene_popup(e: IndexEntry) -> str:
    v = e.view
    assert v is not None
    counts = ", ".join(f"{n} {html.escape(class_label(c))}" for c, n in v.counts().items())
    link = f'<a href="{html.escape(e.href)}">open the scene page</a>' if e.href else ""
    prio = html.escape(v.priority or "unknown")
    return (
        f"<h3>{html.escape(v.title)}</h3><div>priority: {prio}"
        + (f", {html.escape(v.outcome)}" if v.outcome else "")
        + ("" if v.ok else ", <b>downlink damaged</b>")
        + f"</div><div>{counts or 'no detections'}</div>"
        + (f"<div>{html.escape(v.summary)}</div>" if v.summary else "")
        + f"<div>{link}</div>"
    )


def _count_cells(v: SceneView) -> dict[str, tuple[str, str, str]]:
    """Per class: (sort value, text, title) for the index table."""
    out: dict[str, tuple[str, str, str]] = {}
    for c in v.classes:
        if c.state == "not_checked":
            out[c.cls] = ("", "n/c", c.text())
        elif c.state == "unknown" and not c.received:
            out[c.cls] = ("", "?", c.text())
        else:
            out[c.cls] = (str(c.received), str(c.received), c.text())
    return out


def index_html(entries: Sequence[IndexEntry], title: str = "Decoded passes") -> str:
    """The index page: one overview map of every scene's footprint and detections, and a
    table of scenes sorted by priority then time, each row linking to its scene page."""
    from branca.element import Element
    from folium.utilities import JsCode

    folium = _folium()
    rows = sort_entries(entries)
    views = [e.view for e in rows if e.view is not None]
    bounds = union_bbox(v.bounds for v in views)
    m = _base_map(folium, bounds, f"{title} · eotriage ground viewer")
    _graticule(folium, bounds).add_to(m)
    footprints = []
    alerts: dict[str, list[dict[str, Any]]] = {}
    popups: list[str] = []
    for e in rows:
        v = e.view
        if v is None or v.bounds is None:
            continue
        k = len(popups)
        popups.append(_scene_popup(e))
        w, s, ea, n = v.bounds
        footprints.append(
            {
                "type": "Feature",
                "id": k,
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[w, s], [ea, s], [ea, n], [w, n], [w, s]]],
                },
                "properties": {"_s": k, "p": v.priority or "unknown"},
            }
        )
        for d in v.detections:
            if d.lat is not None and d.lon is not None:
                alerts.setdefault(d.cls, []).append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [d.lon, d.lat]},
                        "properties": {"_s": k},
                    }
                )
    names = folium.FeatureGroup(name="Scene names", show=True)
    for e in rows:
        v = e.view
        if v is None or v.bounds is None:
            continue
        prio = html.escape(v.priority or "unknown")
        label = html.escape(v.title)
        link = f'<a class="{prio}" href="{html.escape(e.href)}">{label}</a>' if e.href else label
        folium.Marker(
            [v.bounds[3], (v.bounds[0] + v.bounds[2]) / 2],
            icon=folium.DivIcon(
                html=link, icon_size=(0, 0), icon_anchor=(-8, 22), class_name="eot-scene-label"
            ),
        ).add_to(names)
    if footprints:
        folium.GeoJson(
            {"type": "FeatureCollection", "features": footprints},
            name="Scene footprints",
            style_function=lambda f: {
                "color": PRIORITY_COLOURS.get(f["properties"]["p"], UNKNOWN_COLOUR),
                "weight": 3,
                "fillOpacity": 0.12,
                "className": "eot-footprint",
            },
            on_each_feature=JsCode("EOT.registerScene"),
        ).add_to(m)
    for cls in sorted(alerts, key=lambda c: (c not in CLASS_STYLES, c)):
        colour = class_colour(cls)
        folium.GeoJson(
            {"type": "FeatureCollection", "features": alerts[cls]},
            name=f"{_swatch(colour)}{html.escape(class_label(cls))} ({len(alerts[cls])})",
            style_function=lambda _f, c=colour: {
                "color": "#222",
                "weight": 1,
                "fillColor": c,
                "fillOpacity": 0.9,
                "className": "eot-alert",
            },
            marker=folium.CircleMarker(radius=5),
            on_each_feature=JsCode("EOT.registerScene"),
        ).add_to(m)
    names.add_to(m)
    folium.LayerControl(collapsed=True, position="topright").add_to(m)
    _js_call(folium, "EOT.initIndex({map});").add_to(m)
    m.get_root().header.add_child(
        Element(
            _inline_script(
                "var EOT_DATA = "
                + _script_json(
                    {"scenes": popups, "bounds": list(bounds) if bounds else None, "maxZoom": 12}
                )
                + ";"
            )
        ),
        name="eot_data",
    )

    classes: list[str] = []
    for v in views:
        for c in [*v.counts(), *(st.cls for st in v.classes)]:
            if c not in classes:
                classes.append(c)
    classes.sort(
        key=lambda c: (
            c not in CLASS_STYLES,
            list(CLASS_STYLES).index(c) if c in CLASS_STYLES else 0,
            c,
        )
    )
    table_rows: list[dict[str, Any]] = []
    notices = []
    for e in rows:
        v = e.view
        if v is None:
            notices.append(
                {"level": "error", "text": f"{e.source or 'pass'}: {e.error or 'no scene'}"}
            )
            table_rows.append(
                {
                    "name": e.source or "?",
                    "href": None,
                    "rank": 4,
                    "priority": None,
                    "acquired": None,
                    "outcome": None,
                    "counts": {},
                    "summary": None,
                    "no_summary": e.error or "no scene decoded",
                    "ok": False,
                    "damage": e.error or "",
                    "source": e.source,
                }
            )
            continue
        dmg = v.damage_lines[0] if v.damage_lines else ""
        table_rows.append(
            {
                "name": v.title,
                "href": e.href,
                "rank": v.priority_rank,
                "priority": v.priority,
                "acquired": v.acquired,
                "outcome": v.outcome,
                "counts": _count_cells(v),
                "summary": v.summary,
                "ok": v.ok,
                "damage": dmg,
                "source": e.source,
                "no_summary": "no report received" if v.packets else "nothing recovered",
            }
        )
    main = (
        _templates()
        .get_template("index.html.j2")
        .render(
            title=title,
            rows=table_rows,
            classes=classes,
            notices=notices,
            n_alerts=sum(1 for v in views if v.priority == "high"),
            n_damaged=sum(1 for e in rows if e.view is None or not e.view.ok),
        )
    )
    fig = m.get_root()
    fig.html.add_child(Element(main), name="eot_main")
    page: str = fig.render()
    return page.replace("<body>", '<body class="eot-index">', 1)


# ------------------------------------------------------------------------------ files


def write_text(path: Path, text: str) -> Path:
    """Write atomically (a reader never sees half a page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    log.debug("wrote %s (%d bytes)", path, len(text.encode()))
    return path
