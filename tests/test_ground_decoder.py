"""ground_decoder must import without the onboard native dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ground_decoder

from .conftest import REPO, run_cli

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'rasterio', 'onnxruntime', 'llama_cpp', 'onnx', 'cv2'}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
import ground_decoder
data = ground_decoder.read_detections(sys.argv[1])
print(len(data['features']))
"""


def test_imports_without_onboard_dependencies(tmp_path: Path) -> None:
    from pipeline import run_scene, write_scene

    written = write_scene(run_scene(REPO / "sample_scenes" / "s2_fire_G90292"), tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(written.geojson)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "12"


DECODE_LIGHT = """
import sys
BLOCKED = {'rasterio', 'onnxruntime', 'llama_cpp', 'onnx', 'cv2', 'numpy', 'shapely', 'click'}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
import ground_decoder
decoded = ground_decoder.decode_stream(open(sys.argv[1], 'rb').read())
written = ground_decoder.write_decoded(decoded, sys.argv[2])
print(decoded.ok, len(decoded.geojson['features']), len(decoded.chips), written.map_png.name)
from pipeline.downlink import encode_scene  # the onboard encoder is light too
again = encode_scene(decoded.report, decoded.geojson, scene=decoded.scene)
print(ground_decoder.decode_stream(again.packets).geojson == decoded.geojson)
print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))
"""


def _downlink(tmp_path: Path, with_extras: bool = True) -> tuple[Path, dict]:
    """Run the sample fire scene and write its downlink packets (with chips and quicklook)."""
    from pipeline import run_scene
    from pipeline.core.scene import open_scene
    from pipeline.downlink import encode_scene, make_extras

    scene = open_scene(REPO / "sample_scenes" / "s2_fire_G90292")
    gj = json.loads(json.dumps(run_scene(scene).to_geojson()))
    report = {"summary": "12 fire clusters", "priority": "high", "writer": "template"}
    extras = make_extras(scene, gj) if with_extras else None
    plan = encode_scene(report, gj, extras=extras, scene=scene.name)
    path = tmp_path / "downlink.bin"
    path.write_bytes(plan.packets)
    return path, gj


def test_decode_path_imports_without_onboard_dependencies(tmp_path: Path) -> None:
    packets, gj = _downlink(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", DECODE_LIGHT, str(packets), str(tmp_path / "ground")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    first, again, loaded = proc.stdout.strip().splitlines()
    assert first == "True 12 12 map.png" and again == "True"
    assert loaded == "[]"
    # the ground GeoJSON is the onboard GeoJSON, byte for byte
    ground = (tmp_path / "ground" / "detections.geojson").read_bytes()
    assert ground == json.dumps(gj, separators=(",", ":")).encode()


def test_cli_decode_intact_stream(tmp_path: Path) -> None:
    packets, gj = _downlink(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("decode", packets, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "12 fire" in proc.stdout and "damage: none" in proc.stdout
    assert "report [high]: 12 fire clusters" in proc.stdout
    assert ground_decoder.read_detections(out / "detections.geojson") == gj
    assert len(list((out / "chips").glob("chip_*.png"))) == 12
    from PIL import Image

    with Image.open(out / "map.png") as im:
        assert im.format == "PNG" and im.size[0] >= 400
    with Image.open(out / "chips" / "chip_0000.png") as im:
        assert im.size == (64, 64)
    assert json.loads((out / "damage.json").read_text())["ok"] is True
    assert "12 fire clusters" in (out / "report.txt").read_text()


def test_cli_decode_damaged_stream_exits_1(tmp_path: Path) -> None:
    packets, _ = _downlink(tmp_path, with_extras=False)
    data = bytearray(packets.read_bytes())
    data[200] ^= 0x04
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00junk" + bytes(data))
    out = tmp_path / "out"
    proc = run_cli("decode", bad, "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "CRC" in proc.stdout and "garbage" in proc.stdout
    damage = json.loads((out / "damage.json").read_text())
    assert damage["ok"] is False and damage["crc_failures"] and damage["garbage"]
    assert (out / "map.png").is_file()


def test_cli_decode_missing_file_exits_2(tmp_path: Path) -> None:
    proc = run_cli("decode", tmp_path / "nope.bin", "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert "nope.bin" in proc.stderr and "Traceback" not in proc.stderr
    help_text = run_cli("decode", "--help").stdout
    assert "Exit code" in help_text and "damage" in help_text


def test_python_m_ground_decoder(tmp_path: Path) -> None:
    packets, _ = _downlink(tmp_path, with_extras=False)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ground_decoder", str(packets), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "12 fire" in proc.stdout
    assert (out / "detections.geojson").is_file() and (out / "map.png").is_file()
