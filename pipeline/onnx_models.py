"""Model files: manifest, sha256 verification and onnxruntime sessions.

The loader refuses a file whose sha256 does not match the manifest, and chooses execution
providers automatically (TensorRT, then CUDA, then CPU; whichever this onnxruntime build has),
unless settings name them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)


def default_models_dir() -> Path:
    """``$EOTRIAGE_MODELS_DIR`` or the repository's ``models/`` folder."""
    env = os.environ.get("EOTRIAGE_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class ModelInfo:
    """One manifest entry."""

    name: str
    path: Path
    version: str
    sha256: str
    bands: tuple[str, ...]
    thresholds: Mapping[str, float]
    raw: Mapping[str, Any]


def load_manifest(models_dir: Path | None = None) -> dict[str, ModelInfo]:
    d = models_dir or default_models_dir()
    path = d / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path}: model manifest not found (set models_dir or EOTRIAGE_MODELS_DIR)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model manifest ({exc})") from None
    out: dict[str, ModelInfo] = {}
    try:
        for name, e in data["models"].items():
            out[name] = ModelInfo(
                name=name,
                path=d / e["file"],
                version=str(e["version"]),
                sha256=str(e["sha256"]),
                bands=tuple(e.get("bands", ())),
                thresholds={k: float(v) for k, v in e.get("thresholds", {}).items()},
                raw=e,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: malformed model manifest ({exc!r})") from None
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def choose_providers(requested: Sequence[str] = ()) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelError(
                f"execution provider(s) {', '.join(missing)} not available in this onnxruntime "
                f"(available: {', '.join(available)})"
            )
        return list(requested)
    chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    return chosen or list(available)


class OnnxModel:
    """A verified onnxruntime session for one manifest entry."""

    def __init__(self, info: ModelInfo, threads: int = 1, providers: Sequence[str] = ()) -> None:
        import onnxruntime as ort

        self.info = info
        if not info.path.is_file():
            raise ModelError(f"{info.path}: model file {info.name!r} not found")
        digest = sha256_file(info.path)
        if digest != info.sha256:
            raise ModelError(
                f"{info.path}: sha256 mismatch for model {info.name!r} (file {digest[:12]}…, "
                f"manifest {info.sha256[:12]}…); refusing to load a corrupt or tampered model"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # No busy-waiting between ops: the spinning threads would take the core that reads
        # the next tile (pipeline.prefetch) and the other detectors' sessions.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        # Every tile has the same read-window shape (pipeline.tiling), so onnxruntime's arena
        # settles at one tile's working set and is reused; memory patterns are off because
        # candidate crops vary in shape.
        opts.enable_cpu_mem_arena = True
        opts.enable_mem_pattern = False
        self.providers = choose_providers(providers)
        try:
            self.session = ort.InferenceSession(
                str(info.path), sess_options=opts, providers=self.providers
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{info.path}: onnxruntime cannot load model ({exc})") from None
        self.input_names = {i.name for i in self.session.get_inputs()}
        log.debug("loaded %s %s with %s", info.name, info.version, self.providers)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(None, dict(feeds))
        except Exception as exc:
            raise ModelError(f"model {self.info.name!r} failed to run: {exc}") from None


@cache
def _cached_model(
    models_dir: Path, name: str, threads: int, providers: tuple[str, ...]
) -> OnnxModel:
    manifest = load_manifest(models_dir)
    if name not in manifest:
        raise ModelError(f"model {name!r} not in {models_dir / 'manifest.json'}")
    return OnnxModel(manifest[name], threads=threads, providers=providers)


def get_model(
    name: str, models_dir: Path | None = None, threads: int = 1, providers: Sequence[str] = ()
) -> OnnxModel:
    """Load (once per process and configuration) and return a verified model."""
    return _cached_model(
        (models_dir or default_models_dir()).resolve(), name, threads, tuple(providers)
    )
