"""Optional extras: image chips around detections and a low-resolution quicklook of a scene.

Off by default and counted separately from the core downlink.  Chips are read window by window
through :class:`pipeline.core.ingest.SceneReader` (nothing else of the scene is read); the quicklook
is read band by band with decimated (averaged) reads.  Both are JPEG (or PNG) via Pillow.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from ..core.ingest import SceneReader
from ..core.results import Detection
from ..core.scene import Scene
from ..core.sky import SkyMap
from ..core.tiling import Tile
from ..errors import InputError, cause_text
from ..wire.products import Chip, Extras, Quicklook

log = logging.getLogger(__name__)

#: roles shown as red, green, blue, in order of preference
TRUE_COLOUR = ("red", "green", "blue")
SWIR_COLOURS = (
    ("swir22", "swir16", "nir08"),
    ("swir22", "swir16", "nir"),
    ("swir22", "swir16", "red"),
)
#: classes shown in SWIR false colour (a fire is hardly visible in true colour)
SWIR_CLASSES = frozenset({"fire"})


def pick_bands(scene: Scene, cls: str | None = None) -> tuple[str, ...]:
    """Three band names to show as red, green, blue: SWIR false colour (B12, B11, B8A on
    Sentinel-2) for fires, else true colour; failing both, the scene's bands from the longest
    wavelength down (one band repeated as grey when that is all there is)."""
    options = [*SWIR_COLOURS, TRUE_COLOUR]
    if cls not in SWIR_CLASSES:
        options = [TRUE_COLOUR, *SWIR_COLOURS]
    for roles in options:
        if scene.has_roles(*roles):
            return tuple(scene.band_for_role(r).name for r in roles)
    have = set(scene.band_names)
    by_wavelength = [b.name for b in sorted(scene.profile.bands, key=lambda b: -b.wavelength_nm)]
    names = [n for n in by_wavelength if n in have] or list(scene.band_names)
    return tuple(names[:3]) if len(names) >= 3 else (names[0],) * 3


def _stretch(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 RGB from three bands, each stretched between its 2nd and 98th percentile."""
    out = []
    for a in arrays:
        a = a.astype(np.float32, copy=False)
        valid = a[np.isfinite(a) & (a != 0)]
        if valid.size:
            lo, hi = np.percentile(valid, (2, 98))
        else:
            lo, hi = 0.0, 1.0
        if hi <= lo:
            hi = lo + 1e-6
        scaled = np.clip((np.nan_to_num(a) - lo) / (hi - lo), 0.0, 1.0) * 255.0
        out.append(scaled.astype(np.uint8))
    return np.dstack(out)


#: Quicklook tints (RGB, opacity) of cloud and cloud shadow.
CLOUD_TINT = ((190, 255, 255), 0.6)
SHADOW_TINT = ((70, 0, 110), 0.5)


def mark_sky(rgb: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``rgb`` with cloud and shadow tinted (``classes`` of any size, resampled nearest)."""
    h, w = rgb.shape[:2]
    rows = np.minimum((np.arange(h) * classes.shape[0]) // h, classes.shape[0] - 1)
    cols = np.minimum((np.arange(w) * classes.shape[1]) // w, classes.shape[1] - 1)
    cls = classes[np.ix_(rows, cols)]
    out = rgb.astype(np.float32)
    for code, (tint, alpha) in ((1, CLOUD_TINT), (2, SHADOW_TINT)):
        where = cls == code
        out[where] = out[where] * (1 - alpha) + np.asarray(tint, np.float32) * alpha
    return out.astype(np.uint8)


def _encode(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(rgb, mode="RGB")
    if fmt == "jpeg":
        im.save(buf, format="JPEG", quality=quality, optimize=True)
    elif fmt == "png":
        im.save(buf, format="PNG", optimize=True)
    else:
        raise ValueError(f"image format must be 'jpeg' or 'png', got {fmt!r}")
    return buf.getvalue()


def _lonlat_bbox(scene: Scene, window: Window) -> tuple[float, float, float, float]:
    t = scene.grid.transform
    c0, r0 = int(window.col_off), int(window.row_off)
    c1, r1 = c0 + int(window.width), r0 + int(window.height)
    xs, ys = zip(*(t @ (c, r) for c, r in ((c0, r0), (c1, r0), (c0, r1), (c1, r1))), strict=True)
    lons, lats = warp_transform(scene.grid.crs, "EPSG:4326", list(xs), list(ys))
    return (
        round(min(lons), 6),
        round(min(lats), 6),
        round(max(lons), 6),
        round(max(lats), 6),
    )


def _centre_and_class(item: Detection | Mapping[str, Any]) -> tuple[float, float, str | None]:
    if isinstance(item, Detection):
        c = item.geometry.centroid
        return float(c.x), float(c.y), item.cls
    geom = item.get("geometry") if isinstance(item, Mapping) else None
    props = item.get("properties") if isinstance(item, Mapping) else None
    cls = props.get("class") if isinstance(props, Mapping) else None
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: Any) -> None:
        if (
            isinstance(c, list | tuple)
            and len(c) >= 2
            and all(isinstance(v, int | float) for v in c[:2])
        ):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        elif isinstance(c, list | tuple):
            for v in c:
                walk(v)

    walk(geom.get("coordinates") if isinstance(geom, Mapping) else None)
    if not xs:
        raise InputError("a detection without coordinates has no chip")
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, cls if isinstance(cls, str) else None


def make_chips(
    scene: Scene,
    detections: Sequence[Detection | Mapping[str, Any]],
    size: int = 64,
    *,
    fmt: str = "jpeg",
    quality: int = 85,
    limit: int | None = None,
) -> tuple[Chip, ...]:
    """A ``size`` x ``size`` px chip (working-grid pixels) around each detection.

    ``detections`` are :class:`~pipeline.core.results.Detection` objects or GeoJSON features (pass
    the features that are downlinked, so ``Chip.index`` matches their position).  Fires are
    shown in SWIR false colour (B12, B11, B8A), other classes in true colour.  A chip that
    cannot be read is logged and skipped.  ``limit`` caps the number of chips (first ones).
    """
    if size < 4:
        raise ValueError(f"chip size must be >= 4 px, got {size}")
    g = scene.grid
    inv = ~g.transform
    chips: list[Chip] = []
    items = list(detections)[: limit if limit is not None else None]
    if not items:
        return ()
    centres = [_centre_and_class(d) for d in items]
    xs, ys = warp_transform("EPSG:4326", g.crs, [c[0] for c in centres], [c[1] for c in centres])
    w = min(size, g.width)
    h = min(size, g.height)
    with SceneReader(scene) as reader:
        for i, ((_lon, _lat, cls), x, y) in enumerate(zip(centres, xs, ys, strict=True)):
            col, row = inv @ (x, y)
            c0 = int(min(max(round(col - w / 2), 0), g.width - w))
            r0 = int(min(max(round(row - h / 2), 0), g.height - h))
            win = Window(c0, r0, w, h)
            bands = pick_bands(scene, cls)
            try:
                data = reader.read(Tile(0, 0, win, win), list(dict.fromkeys(bands)))
            except InputError as exc:
                log.warning("%s: chip %d not read (%s)", scene.name, i, exc)
                continue
            rgb = _stretch([data.bands[b] for b in bands])
            chips.append(
                Chip(
                    index=i,
                    bbox=_lonlat_bbox(scene, win),
                    image=_encode(rgb, fmt, quality),
                    format=fmt,
                    bands=bands,
                    size_px=(w, h),
                )
            )
    return tuple(chips)


def make_quicklook(
    scene: Scene,
    width: int = 256,
    *,
    fmt: str = "jpeg",
    quality: int = 80,
    sky_map: SkyMap | None = None,
) -> Quicklook:
    """A ``width`` px wide true-colour (else SWIR false-colour) picture of the whole scene.

    With the cloud screen's ``sky_map``, cloud is marked in cyan-white and cloud shadow in dark
    violet (:data:`CLOUD_TINT`, :data:`SHADOW_TINT`)."""
    if width < 8:
        raise ValueError(f"quicklook width must be >= 8 px, got {width}")
    g = scene.grid
    height = max(1, round(width * g.height / g.width))
    bands = pick_bands(scene)
    arrays = []
    for name in bands:
        b = scene.band(name)
        try:
            with rasterio.open(b.path) as ds:
                arrays.append(
                    ds.read(b.index, out_shape=(height, width), resampling=Resampling.average)
                )
        except RasterioError as exc:
            raise InputError(f"{b.path}: quicklook not read ({cause_text(exc)})") from None
    rgb = _stretch(arrays)
    if sky_map is not None:
        rgb = mark_sky(rgb, sky_map.classes)
    return Quicklook(
        bbox=_lonlat_bbox(scene, Window(0, 0, g.width, g.height)),
        image=_encode(rgb, fmt, quality),
        format=fmt,
        bands=bands,
        size_px=(width, height),
    )


def make_extras(
    scene: Scene,
    geojson: Mapping[str, Any] | None,
    *,
    chips: bool = True,
    chip_size: int = 64,
    max_chips: int | None = 100,
    quicklook: bool = True,
    quicklook_width: int = 256,
    sky_map: SkyMap | None = None,
) -> Extras:
    """Chips for the features of ``geojson`` (indices match) and/or the quicklook (with cloud
    marked when the cloud screen's ``sky_map`` is given)."""
    feats = list((geojson or {}).get("features", [])) if chips else []
    return Extras(
        chips=make_chips(scene, feats, chip_size, limit=max_chips) if feats else (),
        quicklook=make_quicklook(scene, quicklook_width, sky_map=sky_map) if quicklook else None,
    )
