#!/usr/bin/env python3
"""Contact sheets of the ship detector's errors on the labelled sen2ships ports.

``ship_false_alarms.png``: a 48 x 48 px crop (true colour, enlarged 4x) around every false
alarm; ``ship_misses.png``: the same around every missed vessel.  Green: the outlines of the
labelled vessel masks (``vessel_instances.tif``); magenta: the detection's pixel box.  Each
crop is captioned with the port, the detection or vessel number, the detection's setting
(at sea / moored) and length, or the vessel's setting (at sea / moored).

Each port is scored by the fold model that never saw it (``[ships] model =
"ship_segmenter_without_<port>"``, default settings otherwise), as by ``eotriage bench ships``:
the errors shown are the leave-one-port-out errors.  The ports
are ``../shared/data/sen2ships`` (or ``$EOTRIAGE_SHARED_DATA``), else the two sample ports in
``sample_scenes/``.  Run::

    .venv/bin/python docs/make_ship_audit.py [OUT_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.evaluation.ships import INSTANCES_FILE, evaluate_ships, vessel_settings  # noqa: E402
from pipeline.settings import Settings, ShipSettings  # noqa: E402

CROP = 48
ZOOM = 4
PER_ROW = 6
GREEN = (0, 230, 0)
MAGENTA = (255, 0, 255)
CAPTION = (255, 255, 0)


def ports() -> list[Path]:
    shared = Path(os.environ.get("EOTRIAGE_SHARED_DATA", REPO.parent / "shared" / "data"))
    names = ("algiers", "athens", "busan", "casablanca", "durban", "gdynia", "honolulu", "valencia")
    if (shared / "sen2ships").is_dir():
        return [shared / "sen2ships" / n for n in names]
    return [REPO / "sample_scenes" / f"sen2ships_{n}" for n in ("casablanca", "honolulu")]


def true_colour(port: Path) -> np.ndarray:
    bands = []
    for name in ("B04", "B03", "B02"):
        with rasterio.open(port / f"{name}.tif") as f:
            bands.append(f.read(1).astype(np.float32) / 65535.0)
    rgb = np.clip(np.dstack(bands) / 0.2, 0.0, 1.0) ** 0.6
    return (rgb * 255).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def crop(
    rgb: np.ndarray,
    inst: np.ndarray,
    centre: tuple[int, int],
    box: tuple[int, int, int, int] | None,
    caption: str,
) -> Image.Image:
    h, w = inst.shape
    y0 = max(0, min(h - CROP, centre[0] - CROP // 2))
    x0 = max(0, min(w - CROP, centre[1] - CROP // 2))
    img = rgb[y0 : y0 + CROP, x0 : x0 + CROP].copy()
    edge = outline(inst[y0 : y0 + CROP, x0 : x0 + CROP] > 0)
    img[edge] = GREEN
    big = Image.fromarray(img).resize((CROP * ZOOM, CROP * ZOOM), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(big)
    if box is not None:
        r0, c0, r1, c1 = box
        draw.rectangle(
            (
                (c0 - x0) * ZOOM - 2,
                (r0 - y0) * ZOOM - 2,
                (c1 + 1 - x0) * ZOOM + 1,
                (r1 + 1 - y0) * ZOOM + 1,
            ),
            outline=MAGENTA,
        )
    draw.text((3, 2), caption, fill=CAPTION)
    return big


def sheet(tiles: list[Image.Image], out: Path) -> None:
    side = CROP * ZOOM
    rows = max(1, -(-len(tiles) // PER_ROW))
    canvas = Image.new("RGB", (PER_ROW * side, rows * side), (0, 0, 0))
    for i, t in enumerate(tiles):
        canvas.paste(t, ((i % PER_ROW) * side, (i // PER_ROW) * side))
    canvas.save(out, optimize=True)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else REPO / "docs"
    false_tiles: list[Image.Image] = []
    miss_tiles: list[Image.Image] = []
    for port in ports():
        name = port.name.removeprefix("sen2ships_")
        fold = ShipSettings(model=f"ship_segmenter_without_{port.name.removeprefix('sen2ships_')}")
        score, result = evaluate_ships(port, None, Settings(ships=fold))
        with rasterio.open(port / INSTANCES_FILE) as f:
            inst = f.read(1)
        where = vessel_settings(port, port / INSTANCES_FILE)
        rgb = true_colour(port)
        ships = [d for d in result.detections if d.cls == "ship"]
        for j in score.false_alarms:
            m = ships[j].measures
            box = (int(m["row_min"]), int(m["col_min"]), int(m["row_max"]), int(m["col_max"]))
            centre = ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
            caption = f"{name} det {j} {m['setting']} {float(m['length_m']):.0f} m"
            false_tiles.append(crop(rgb, inst, centre, box, caption))
        for vid in score.missed:
            r, c = np.nonzero(inst == vid)
            centre = (int(r.mean()), int(c.mean()))
            caption = f"{name} vessel {vid} {where.get(vid, '?')}"
            miss_tiles.append(crop(rgb, inst, centre, None, caption))
        print(f"{name}: {len(score.false_alarms)} false alarms, {len(score.missed)} misses")
    sheet(false_tiles, out_dir / "ship_false_alarms.png")
    sheet(miss_tiles, out_dir / "ship_misses.png")
    print(f"wrote {out_dir / 'ship_false_alarms.png'} and {out_dir / 'ship_misses.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
