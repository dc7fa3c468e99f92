"""The package's rooms (docs/architecture.md): import direction and the light ground decoder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import REPO

HEAVY = ("rasterio", "onnxruntime", "llama_cpp", "cv2", "numpy", "shapely", "PIL")


def test_import_direction_contracts_hold() -> None:
    """core never imports detectors, runner, CLI, ground or evaluation; ground_decoder only the
    wire format (import-linter contracts in pyproject.toml)."""
    beside = Path(sys.executable).with_name("lint-imports")
    exe = str(beside) if beside.is_file() else shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter not installed (it comes with the test extra)")
    proc = subprocess.run(
        [exe, "--config", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_ground_decoder_imports_and_decodes_without_heavy_packages() -> None:
    """With numpy, rasterio, onnxruntime, llama-cpp, OpenCV, shapely and Pillow made impossible
    to import, the ground decoder still imports and decodes a packet stream."""
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {HEAVY!r}:
                    raise ImportError("blocked for the test: " + name)
                return None

        sys.meta_path.insert(0, Block())
        import ground_decoder
        from pipeline.downlink.plan import encode_scene

        geo = {{"type": "FeatureCollection", "features": [
            {{"type": "Feature", "geometry": {{"type": "Point", "coordinates": [1.5, 2.5]}},
             "properties": {{"class": "fire", "score": 0.9}}}}]}}
        report = {{"summary": "High priority, fire: 1 fire cluster.", "priority": "high"}}
        packets = encode_scene(report, geo, scene="s").packets
        decoded = ground_decoder.decode_stream(packets)
        assert decoded.ok and decoded.geojson["features"][0]["properties"]["class"] == "fire"
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        assert not loaded, loaded
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
