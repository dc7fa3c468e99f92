"""Write a decoded scene to files: GeoJSON, report text, chips, quicklook and a PNG map.

Pillow draws the map (imported here only; decoding itself needs the standard library).
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .decode import Decoded

MAP_WIDTH = 900
#: largest picture a chip or quicklook may decode to (ours are 64 px chips, ~256 px quicklooks)
MAX_IMAGE_PIXELS = 1 << 24
CLASS_COLOURS = {
    "fire": (255, 64, 0),
    "ship": (0, 200, 255),
    "crop_stress": (220, 220, 0),
}
OTHER_COLOUR = (255, 0, 255)


@dataclass(frozen=True)
class WrittenDecoded:
    """Where :func:`write_decoded` put each product (None when it was not received)."""

    directory: Path
    geojson: Path | None
    report_json: Path | None
    report_txt: Path
    chips: tuple[Path, ...]
    quicklook: Path | None
    map_png: Path
    damage_json: Path


def _write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _open_image(image: bytes) -> Any:
    """Open a chip or quicklook picture, refusing sizes no product of ours has: a damaged
    header claiming 50,000 x 50,000 px made Pillow raise DecompressionBombError (not an
    OSError) or allocate gigabytes when loading.  Raises ValueError or OSError."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(image))
        except Image.DecompressionBombError as exc:
            raise ValueError(str(exc)) from None
    if im.width * im.height > MAX_IMAGE_PIXELS:
        im.close()
        raise ValueError(
            f"image of {im.width} x {im.height} px exceeds {MAX_IMAGE_PIXELS} px (damaged?)"
        )
    return im


def _to_png(image: bytes) -> bytes:
    with _open_image(image) as im:
        out = io.BytesIO()
        im.convert("RGB").save(out, format="PNG", optimize=True)
        return out.getvalue()


def write_decoded(decoded: Decoded, out_dir: str | Path) -> WrittenDecoded:
    """Write ``detections.geojson``, ``report.json``/``report.txt``, ``chips/*.png``,
    ``quicklook.png``, ``map.png`` and ``damage.json`` into ``out_dir``.

    ``detections.geojson`` is written like the onboard file (compact JSON), so an intact stream
    gives back the same bytes.  Images that fail to decode are recorded in ``damage.json``.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    bad_images: list[str] = []
    gj_path = rj_path = ql_path = None
    if decoded.geojson is not None:
        gj_path = _write(
            d / "detections.geojson", json.dumps(decoded.geojson, separators=(",", ":")).encode()
        )
    if decoded.report is not None:
        rj_path = _write(d / "report.json", (json.dumps(decoded.report, indent=2) + "\n").encode())
    txt = "\n".join(decoded.summary_lines()) + "\n"
    if decoded.report is not None and isinstance(decoded.report.get("text"), str):
        txt += "\n" + decoded.report["text"].rstrip() + "\n"
    rt_path = _write(d / "report.txt", txt.encode())
    chip_paths: list[Path] = []
    if decoded.chips:
        (d / "chips").mkdir(exist_ok=True)
        for chip in decoded.chips:
            try:
                chip_paths.append(
                    _write(d / "chips" / f"chip_{chip.index:04d}.png", _to_png(chip.image))
                )
            except (OSError, ValueError, SyntaxError) as exc:
                bad_images.append(f"chip {chip.index}: {exc}")
    if decoded.quicklook is not None:
        try:
            ql_path = _write(d / "quicklook.png", _to_png(decoded.quicklook.image))
        except (OSError, ValueError, SyntaxError) as exc:
            bad_images.append(f"quicklook: {exc}")
    map_path = _write(d / "map.png", render_map(decoded, use_quicklook=ql_path is not None))
    damage = decoded.damage.to_dict()
    damage["images_undecodable"] = bad_images
    damage["waiting_onboard"] = list(decoded.waiting)
    damage["features_waiting_onboard"] = list(decoded.waiting_features)
    damage["outcome"] = decoded.outcome
    dmg_path = _write(d / "damage.json", (json.dumps(damage, indent=2) + "\n").encode())
    return WrittenDecoded(
        d, gj_path, rj_path, rt_path, tuple(chip_paths), ql_path, map_path, dmg_path
    )


# ------------------------------------------------------------------------------ the map


def _on_earth(x: Any, y: Any) -> bool:
    """A drawable lon/lat: finite numbers within the WGS84 range (with a margin for
    longitudes past the antimeridian).  A damaged product can hold NaN, inf or 1e300, which
    would otherwise break the frame (NaN), the projection (division by zero) or the tick loop
    (``x += step`` stops moving at 1e20)."""
    return (
        all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        and -360.0 <= x <= 360.0
        and -90.0 <= y <= 90.0
    )


def _positions(coords: Any) -> Iterator[tuple[float, float]]:
    """Every drawable position in a coordinates array (others are skipped)."""
    if (
        isinstance(coords, list | tuple)
        and len(coords) >= 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in coords[:2])
    ):
        if _on_earth(coords[0], coords[1]):
            yield float(coords[0]), float(coords[1])
    elif isinstance(coords, list | tuple):
        for c in coords:
            yield from _positions(c)


def _bbox_on_earth(bbox: tuple[float, float, float, float]) -> bool:
    w, s, e, n = bbox
    return _on_earth(w, s) and _on_earth(e, n) and w <= e and s <= n


def _geometries(geojson: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    for f in (geojson or {}).get("features", []):
        if not isinstance(f, dict) or not isinstance(f.get("geometry"), dict):
            continue
        props = f.get("properties")
        cls = str(props.get("class", "?")) if isinstance(props, dict) else "?"
        yield cls, f["geometry"]


def _rings(geom: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(kind, coordinates) pieces: 'ring' (closed), 'line' or 'point'."""
    t, c = geom.get("type"), geom.get("coordinates")
    if t == "Point":
        yield "point", c
    elif t == "MultiPoint":
        for p in c or []:
            yield "point", p
    elif t == "LineString":
        yield "line", c
    elif t == "MultiLineString":
        for ln in c or []:
            yield "line", ln
    elif t == "Polygon":
        for r in c or []:
            yield "ring", r
    elif t == "MultiPolygon":
        for poly in c or []:
            for r in poly or []:
                yield "ring", r
    elif t == "GeometryCollection":
        for g in geom.get("geometries") or []:
            if isinstance(g, dict):
                yield from _rings(g)


def _tick_label(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{v:.{decimals}f}\u00b0"


def _nice_step(span: float) -> float:
    raw = span / 5.0
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _frame(decoded: Decoded, use_quicklook: bool) -> tuple[float, float, float, float]:
    xs: list[float] = []
    ys: list[float] = []
    for _cls, g in _geometries(decoded.geojson):
        for x, y in _positions(g.get("coordinates")):
            xs.append(x)
            ys.append(y)
    if use_quicklook and decoded.quicklook is not None and _bbox_on_earth(decoded.quicklook.bbox):
        w, s, e, n = decoded.quicklook.bbox
        xs += [w, e]
        ys += [s, n]
    for chip in decoded.chips:
        if not _bbox_on_earth(chip.bbox):
            continue
        w, s, e, n = chip.bbox
        xs += [w, e]
        ys += [s, n]
    if not xs:
        return -180.0, -90.0, 180.0, 90.0
    w, e, s, n = min(xs), max(xs), min(ys), max(ys)
    pad_x = max((e - w) * 0.05, 0.005)
    pad_y = max((n - s) * 0.05, 0.005)
    return w - pad_x, s - pad_y, e + pad_x, n + pad_y


def render_map(decoded: Decoded, use_quicklook: bool = True) -> bytes:
    """A PNG map of the detections on a lon/lat frame (quicklook underneath when present).

    The frame is equirectangular with longitudes scaled by cos(latitude), so shapes look right
    at the scene's latitude.  Small detections get a ring so they stay visible at scene scale.
    """
    from PIL import Image, ImageDraw, ImageFont

    w, s, e, n = _frame(decoded, use_quicklook)
    lat0 = math.radians((s + n) / 2)
    kx = max(math.cos(lat0), 0.05)
    left, right, top, bottom = 80, 20, 40, 50
    plot_w = MAP_WIDTH - left - right
    aspect = (n - s) / max((e - w) * kx, 1e-12)
    plot_h = int(min(max(plot_w * aspect, 200), 1400))
    img = Image.new("RGB", (MAP_WIDTH, plot_h + top + bottom), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()

    def px(x: float, y: float) -> tuple[float, float]:
        return left + (x - w) / (e - w) * plot_w, top + (n - y) / (n - s) * plot_h

    draw.rectangle([left, top, left + plot_w, top + plot_h], fill=(225, 230, 235))
    if use_quicklook and decoded.quicklook is not None and _bbox_on_earth(decoded.quicklook.bbox):
        try:
            with _open_image(decoded.quicklook.image) as ql:
                qw, qs, qe, qn = decoded.quicklook.bbox
                x0, y0 = px(qw, qn)
                x1, y1 = px(qe, qs)
                size = (max(1, round(x1 - x0)), max(1, round(y1 - y0)))
                img.paste(ql.convert("RGB").resize(size), (round(x0), round(y0)))
        except (OSError, ValueError, SyntaxError):
            pass  # recorded by write_decoded; the map is still drawn
    for chip in decoded.chips:
        if not _bbox_on_earth(chip.bbox):
            continue
        cw, cs, ce, cn = chip.bbox
        draw.rectangle([*px(cw, cn), *px(ce, cs)], outline=(120, 120, 120))
    counts: dict[str, int] = {}
    for cls, g in _geometries(decoded.geojson):
        colour = CLASS_COLOURS.get(cls, OTHER_COLOUR)
        counts[cls] = counts.get(cls, 0) + 1
        pts_all = [px(x, y) for x, y in _positions(g.get("coordinates"))]
        for kind, c in _rings(g):
            pts = [px(x, y) for x, y in _positions(c)]
            if not pts:
                continue
            if kind == "point":
                cx, cy = pts[0]
                draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour, outline=(0, 0, 0))
            elif len(pts) >= 2:
                draw.line([*pts, pts[0]] if kind == "ring" else pts, fill=colour, width=2)
        if pts_all:
            xs = [p[0] for p in pts_all]
            ys = [p[1] for p in pts_all]
            if max(xs) - min(xs) < 8 and max(ys) - min(ys) < 8:
                cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
                draw.ellipse([cx - 7, cy - 7, cx + 7, cy + 7], outline=colour, width=2)
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=(0, 0, 0))
    # graticule labels
    step = _nice_step(e - w)
    x = math.ceil(w / step) * step
    while x <= e:
        X, _ = px(x, s)
        draw.line([X, top + plot_h, X, top + plot_h + 5], fill=(0, 0, 0))
        draw.text((X - 20, top + plot_h + 8), _tick_label(x, step), fill=(0, 0, 0), font=font)
        x += step
    step = _nice_step(n - s)
    y = math.ceil(s / step) * step
    while y <= n:
        _, Y = px(w, y)
        draw.line([left - 5, Y, left, Y], fill=(0, 0, 0))
        draw.text((4, Y - 6), _tick_label(y, step), fill=(0, 0, 0), font=font)
        y += step
    title = f"{decoded.scene or 'unknown scene'}"
    if decoded.report is not None:
        title += f"  [{decoded.report.get('priority', '?')}]"
    draw.text((left, 8), title, fill=(0, 0, 0), font=font)
    legend = "   ".join(f"{c}: {k}" for c, k in sorted(counts.items())) or "no detections"
    draw.text((left, 22), legend, fill=(0, 0, 0), font=font)
    lx = left + 8 + int(draw.textlength(legend, font=font))
    for i, c in enumerate(sorted(counts)):
        colour = CLASS_COLOURS.get(c, OTHER_COLOUR)
        draw.rectangle([lx + 14 * i, 22, lx + 14 * i + 10, 32], fill=colour)
    if not decoded.ok:
        draw.text(
            (left, top + plot_h + 30),
            "stream damaged: see damage.json",
            fill=(200, 0, 0),
            font=font,
        )
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
