"""ground_decoder must import without the onboard native dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import REPO

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
