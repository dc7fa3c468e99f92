"""Re-create the bundled sample scenes from ../shared/data (copies and one crop).

    python sample_scenes/make_samples.py [SHARED_DATA_DIR]

The files in this folder were made by this script; their sources and licences are in
``sample_scenes/README.md`` and ``scenes.json``.  Pixel values are never changed: files are
byte-identical copies, or a window cut with rasterio (same DNs, transform shifted to the window).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import rasterio
from rasterio.windows import Window

HERE = Path(__file__).resolve().parent

#: Virginia crop: 512 x 512 px at 10 m starting at (252, 252) so that the window's corner lies
#: on the 10, 20 and 60 m grids (252 is a multiple of 2 and 6).
VIRGINIA_OFF = 252
VIRGINIA_SIZE = 512


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _crop_band(src: Path, dst: Path, factor: int) -> None:
    with rasterio.open(src) as ds:
        off = VIRGINIA_OFF // factor
        size = -(-VIRGINIA_SIZE // factor)
        win = Window(off, off, size, size)
        data = ds.read(1, window=win)
        profile = ds.profile.copy()
        profile.update(
            width=size,
            height=size,
            transform=ds.window_transform(win),
            compress="deflate",
            predictor=2,
        )
        desc = ds.descriptions[0]
        tags = ds.tags()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data, 1)
        if desc:
            out.set_band_description(1, desc)
        out.update_tags(**tags)


def main(argv: list[str]) -> int:
    data = Path(argv[1]) if len(argv) > 1 else HERE.parent.parent / "shared" / "data"
    if not data.is_dir():
        print(f"shared data not found at {data}", file=sys.stderr)
        return 1
    fire = data / "s2_fire" / "G90292"
    _copy(fire / "G90292_20230514.tif", HERE / "s2_fire_G90292" / "G90292_20230514.tif")
    _copy(fire / "fire_pixels_swir_test.csv", HERE / "s2_fire_G90292" / "fire_pixels_swir_test.csv")
    for port in ("honolulu", "casablanca"):
        for name in (
            "B02.tif",
            "B03.tif",
            "B04.tif",
            "B08.tif",
            "B11.tif",
            "labels.json",
            "vessel_instances.tif",
        ):
            _copy(data / "sen2ships" / port / name, HERE / f"sen2ships_{port}" / name)
    virginia = data / "s2_l1c_virginia"
    for src in sorted(virginia.glob("B*.tif")):
        with rasterio.open(src) as ds:
            factor = round(ds.res[0] / 10.0)
        _crop_band(src, HERE / "s2_l1c_virginia_crop" / src.name, factor)
    for f in sorted(HERE.rglob("*")):
        if f.is_file() and f.parent != HERE:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            print(f"{digest}  {f.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
