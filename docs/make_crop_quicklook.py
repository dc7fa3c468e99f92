#!/usr/bin/env python3
"""Quicklook of the crop-stress detector on the Virginia Sentinel-2 L1C tile: ``crop_virginia.png``.

Left: true-colour RGB (B04, B03, B02; 2-98 % stretch) with the stressed polygons (orange:
moderate, red: severe).  Right: the detector's land classes on the 20 m cells (blue water,
grey bare soil / built-up, green cropland by the spectral rule) with the same polygons.

The scene is ``../shared/data/s2_l1c_virginia`` (or ``$EOTRIAGE_SHARED_DATA``), else the
sample crop ``sample_scenes/s2_l1c_virginia_crop``.  Run::

    .venv/bin/python docs/make_crop_quicklook.py [SCENE_DIR] [OUT_PNG]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pipeline  # noqa: E402
from pipeline.core.ingest import SceneReader  # noqa: E402
from pipeline.core.tiling import Tile  # noqa: E402
from pipeline.detectors.crop import CropDetector  # noqa: E402

COLOURS = {"moderate": (255, 150, 0), "severe": (230, 0, 0)}
CLASS_RGB = np.array(
    [(0, 0, 0), (40, 90, 200), (150, 150, 150), (60, 110, 60), (120, 200, 90)], np.uint8
)


def default_scene() -> Path:
    shared = Path(os.environ.get("EOTRIAGE_SHARED_DATA", REPO.parent / "shared" / "data"))
    full = shared / "s2_l1c_virginia"
    return full if full.is_dir() else REPO / "sample_scenes" / "s2_l1c_virginia_crop"


def rgb(scene_dir: Path) -> np.ndarray:
    chans = []
    for b in ("B04", "B03", "B02"):
        with rasterio.open(scene_dir / f"{b}.tif") as ds:
            chans.append(ds.read(1).astype(np.float32))
    img = np.stack(chans, axis=-1)
    lo, hi = np.percentile(img, 2), np.percentile(img, 98)
    return (np.clip((img - lo) / (hi - lo), 0, 1) ** 0.8 * 255).astype(np.uint8)


def landclass_image(scene: pipeline.Scene, settings: pipeline.Settings) -> np.ndarray:
    """Land classes of the whole scene read as one tile, upsampled to the 10 m grid."""
    from rasterio.windows import Window

    det = CropDetector(settings)
    g = scene.grid
    win = Window(0, 0, g.width, g.height)
    with SceneReader(scene) as reader:
        data = reader.read(Tile(0, 0, win, win), det.band_names(scene))
    a = det.analyse(data, scene)
    step = int(a["step"])
    lc = np.repeat(np.repeat(a["landclass"], step, axis=0), step, axis=1)[: g.height, : g.width]
    return CLASS_RGB[lc]


def draw(img: np.ndarray, result: pipeline.SceneResult, scene: pipeline.Scene) -> Image.Image:
    im = Image.fromarray(img).convert("RGBA")
    overlay = Image.new("RGBA", im.size, (0, 0, 0, 0))
    dr = ImageDraw.Draw(overlay)
    inv = ~scene.grid.transform
    crs = scene.grid.crs.to_string()
    for d in result.detections:
        geom = shape(transform_geom("EPSG:4326", crs, mapping(d.geometry)))
        colour = COLOURS[str(d.measures["severity"])]
        polys = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
        for p in polys:
            xy = [inv @ (x, y) for x, y in p.exterior.coords]
            dr.polygon(xy, fill=(*colour, 90), outline=(*colour, 255))
    return Image.alpha_composite(im, overlay).convert("RGB")


def main(argv: list[str]) -> int:
    scene_dir = Path(argv[1]) if len(argv) > 1 else default_scene()
    out = Path(argv[2]) if len(argv) > 2 else REPO / "docs" / "crop_virginia.png"
    settings = pipeline.Settings(detectors=("crop",))
    scene = pipeline.open_scene(scene_dir)
    result = pipeline.run_scene(scene, settings)
    left = draw(rgb(scene_dir), result, scene)
    right = draw(landclass_image(scene, settings), result, scene)
    w, h = left.size
    panel = Image.new("RGB", (2 * w + 10, h + 40), (255, 255, 255))
    panel.paste(left, (0, 40))
    panel.paste(right, (w + 10, 40))
    km2 = sum(float(d.measures["area_km2"]) for d in result.detections)
    text = (
        f"{scene_dir.name}: {len(result.detections)} stressed areas, {km2:.2f} km2 "
        "(orange moderate, red severe).  Right: water blue, bare/built-up grey, "
        "cropland (spectral rule) light green"
    )
    ImageDraw.Draw(panel).text((8, 12), text, fill=(0, 0, 0))
    scale = min(1.0, 1600 / panel.size[0])
    if scale < 1.0:
        panel = panel.resize(
            (int(panel.size[0] * scale), int(panel.size[1] * scale)), Image.Resampling.LANCZOS
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the PNG small enough for the repository
    panel.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size} bytes): {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
