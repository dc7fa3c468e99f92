"""Writing a built model: the ``.onnx`` file and its entry in ``manifest.json``.

Shared by every script in ``models/`` (they run as ``python models/X.py``, which puts this folder
on ``sys.path``).  The manifest is read, changed and written back, so building one model never
drops the entries of the others.  Every model is also written, byte for byte, to
``golden/<name>.onnx``: the second stored copy that ``pipeline.core.onnx_models`` loads when the
primary file is corrupt (``settings.robustness.golden_fallback``), so a rebuild keeps both in
step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Sub-folder of the golden copies (the same name as ``pipeline.core.onnx_models.GOLDEN_SUBDIR``).
GOLDEN_SUBDIR = "golden"


def update_manifest(out_dir: Path, name: str, entry: dict[str, Any]) -> Path:
    """Read-modify-write ``out_dir/manifest.json``: set ``name``, keep every other entry."""
    manifest_path = out_dir / "manifest.json"
    manifest: dict[str, Any] = (
        json.loads(manifest_path.read_text())
        if manifest_path.exists()
        else {"schema": 1, "models": {}}
    )
    manifest["models"][name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest_path


def write_model(out_dir: Path, name: str, data: bytes, entry: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``out_dir/<name>.onnx``, its golden copy ``out_dir/golden/<name>.onnx`` and its
    manifest entry with the file's sha256."""
    golden_dir = out_dir / GOLDEN_SUBDIR
    golden_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    onnx_path.write_bytes(data)
    (golden_dir / onnx_path.name).write_bytes(data)
    full = {**entry, "sha256": hashlib.sha256(data).hexdigest()}
    return onnx_path, update_manifest(out_dir, name, full)


def build_main(
    argv: list[str], name: str, serialise: Callable[[], bytes], entry: dict[str, Any]
) -> int:
    """Command line of a graph-construction script: write the model and its manifest entry
    (sha256 included) into ``argv[1]`` (default: this folder)."""
    out_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent
    data = serialise()
    onnx_path, manifest_path = write_model(out_dir, name, data, entry)
    print(f"wrote {onnx_path} ({len(data)} bytes) and {manifest_path}")
    return 0
