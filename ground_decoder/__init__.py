"""eotriage ground decoder: turns downlink packets back into GeoJSON, text and pictures.

It runs on the ground and imports without onnxruntime, llama-cpp-python, rasterio or OpenCV:
decoding needs only the standard library and the shared packet codec of
:mod:`pipeline.downlink` (pure Python); writing chips and the map uses Pillow.

Typical use::

    import ground_decoder

    decoded = ground_decoder.decode_stream(Path("downlink.bin").read_bytes())
    print("\\n".join(decoded.summary_lines()))
    ground_decoder.write_decoded(decoded, "ground_out/")

or from the shell: ``python -m ground_decoder downlink.bin --out ground_out/``
(``eotriage decode`` does the same).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .decode import Damage, Decoded, decode_scenes, decode_stream
from .render import WrittenDecoded, render_map, write_decoded

__version__ = "0.1.0"

__all__ = [
    "Damage",
    "Decoded",
    "WrittenDecoded",
    "decode_file",
    "decode_scenes",
    "decode_stream",
    "read_detections",
    "render_map",
    "write_decoded",
]


def read_detections(path: str | Path) -> dict[str, Any]:
    """Load a ``detections.geojson`` FeatureCollection written by ``eotriage run``."""
    data = json.loads(Path(path).read_text())
    if data.get("type") != "FeatureCollection":
        raise ValueError(f"{path}: not a GeoJSON FeatureCollection")
    return data


def decode_file(
    packets: str | Path, out_dir: str | Path, data: bytes | None = None
) -> tuple[tuple[Decoded, WrittenDecoded], ...]:
    """Decode a packet file and write its products.

    One scene goes straight into ``out_dir``; a stream with several scenes gets one folder per
    scene (``out_dir/<scene>/``).  ``data``: the file's bytes when already read.  Raises
    ``OSError`` only when the file cannot be read or ``out_dir`` cannot be written.
    """
    if data is None:
        data = Path(packets).read_bytes()
    scenes = decode_scenes(data)
    out = Path(out_dir)
    if len(scenes) == 1:
        return ((scenes[0], write_decoded(scenes[0], out)),)
    results = []
    for s in scenes:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", s.scene) if s.scene else f"scene_{s.scene_tag:04x}"
        results.append((s, write_decoded(s, out / name)))
    return tuple(results)
