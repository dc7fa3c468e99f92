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


def torch_to_onnx(
    module: Any,
    args: tuple[Any, ...],
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    producer: str,
    version: str,
    doc: str,
) -> bytes:
    """A PyTorch module exported to ONNX (opset 17, the TorchScript exporter), stamped with its
    producer script, version and doc string, and checked by ``onnx.checker``."""
    import io

    import onnx
    import torch

    buf = io.BytesIO()
    torch.onnx.export(
        module,
        args,
        buf,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=17,
        dynamo=False,
    )
    m = onnx.load_from_string(buf.getvalue())
    m.producer_name = producer
    m.producer_version = version
    m.doc_string = doc
    onnx.checker.check_model(m)
    return bytes(m.SerializeToString())


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
