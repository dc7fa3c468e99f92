"""docs/viewer.png: the ground viewer's page for a sample scene, as headless Chromium shows it.

Runs the scene (template report, chips and quicklook), decodes its packets, writes the page,
opens it offline in headless Chromium (``tests/chromium.py``), clicks one detection so that its
popup shows, and saves a screenshot (as a 256-colour PNG).

    .venv/bin/python docs/make_viewer_png.py                     # fire sample, detection 0
    .venv/bin/python docs/make_viewer_png.py --scene sen2ships_casablanca --detection 4
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", default="s2_fire_G90292", help="sample scene (s2_fire_G90292)")
    ap.add_argument("--detection", type=int, default=0, help="detection whose popup shows (0)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "viewer.png")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=860)
    args = ap.parse_args(argv)

    import ground_decoder
    from ground_decoder.viewer import write_scene_page
    from pipeline import run_scene, write_scene
    from pipeline.settings import DownlinkSettings
    from tests.chromium import Chromium

    with tempfile.TemporaryDirectory(prefix="eotriage-viewer-png-") as tmp:
        written = write_scene(
            run_scene(REPO / "sample_scenes" / args.scene),
            Path(tmp) / "onboard",
            downlink=DownlinkSettings(chips=True, quicklook=True),
        )
        decoded = ground_decoder.decode_stream((written.directory / "downlink.bin").read_bytes())
        page = write_scene_page(decoded, Path(tmp) / "ground", source="downlink.bin")
        with Chromium(width=args.width, height=args.height, offline=True) as browser:
            browser.open(page.as_uri(), ready='document.querySelector("[data-eot-ready]")')
            browser.click_element(".folium-map .eot-halo", args.detection)
            browser.wait_for("document.querySelector('.leaflet-popup-content img')")
            time.sleep(0.5)  # popup pan and picture decode
            png = browser.screenshot()
    # 256 colours keep the repository light (about 0.1 MB instead of 0.35 MB)
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
        small.save(args.out, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
