from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline._fsio import sha256_file
from pipeline.core.onnx_models import OnnxModel, choose_providers, load_manifest
from pipeline.errors import ModelError

from .conftest import REPO, run_cli

MODELS = REPO / "models"


def test_manifest_matches_files() -> None:
    manifest = load_manifest(MODELS)
    assert "fire_swir" in manifest
    for m in manifest.values():
        if "package" in m.raw:  # the cloud teacher ships in its PyPI package (optional extra)
            if m.path.is_file():
                assert sha256_file(m.path) == m.sha256
            continue
        assert sha256_file(m.path) == m.sha256
        assert m.path.stat().st_size < 5 * 2**20  # models stay small


def test_rebuild_is_reproducible(tmp_path: Path) -> None:
    """models/build_fire_model.py regenerates a byte-identical file and manifest entry."""
    subprocess.run(
        [sys.executable, str(MODELS / "build_fire_model.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    rebuilt = json.loads((tmp_path / "manifest.json").read_text())["models"]["fire_swir"]
    committed = json.loads((MODELS / "manifest.json").read_text())["models"]["fire_swir"]
    assert rebuilt == committed


def _tampered_models_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    shutil.copytree(MODELS, d, ignore=shutil.ignore_patterns("golden"))  # no fallback copy
    onnx_file = d / "fire_swir.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    return d


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    d = _tampered_models_dir(tmp_path)
    info = load_manifest(d)["fire_swir"]
    with pytest.raises(ModelError, match="sha256 mismatch"):
        OnnxModel(info)


def test_tampered_model_cli_message(tmp_path: Path) -> None:
    d = _tampered_models_dir(tmp_path)
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'models_dir = "{d}"\n')
    proc = run_cli(
        "--config", cfg, "run", REPO / "sample_scenes" / "s2_fire_G90292", "--out", tmp_path / "out"
    )
    assert proc.returncode == 1
    assert "sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("--config", cfg, "models", "verify")
    assert proc.returncode == 1 and "sha256 mismatch" in proc.stderr


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="manifest not found"):
        load_manifest(tmp_path)


def test_providers() -> None:
    chosen = choose_providers()
    assert chosen[-1] == "CPUExecutionProvider" or "CPUExecutionProvider" in chosen
    with pytest.raises(ModelError, match="not available"):
        choose_providers(["NoSuchExecutionProvider"])


def test_model_runs_the_physical_test() -> None:
    """Real session: a hot pixel on a uniform background fires; its cold twin does not."""
    info = load_manifest(MODELS)["fire_swir"]
    model = OnnxModel(info)
    x = np.full((1, 1, 40, 40), 0.12, np.float32)
    y = np.full((1, 1, 40, 40), 0.2, np.float32)
    x[0, 0, 20, 20], y[0, 0, 20, 20] = 0.4, 0.2  # ratio 2.0 > 1.3, contextual hot
    x[0, 0, 5, 5], y[0, 0, 5, 5] = 0.25, 0.1  # ratio 2.5 but too dark (< 0.3)
    feeds = {
        "swir22": x,
        "swir16": y,
        "valid": np.ones_like(x),
        "radius": np.array([10]),
        "context": np.array([True]),
    }
    feeds.update({k: np.array([v], np.float32) for k, v in info.thresholds.items()})
    fire, score, cand = model.run(feeds)
    assert fire.sum() == 1 and fire[0, 0, 20, 20] == 1
    assert 0.5 <= score[0, 0, 20, 20] <= 1.0 and score[0, 0, 5, 5] == 0.0
    assert cand.sum() == 1 and cand[0, 0, 20, 20] == 1
    # screen only: the candidate is reported, but it is not unambiguous (B12 0.4 < 0.5)
    fire, _, cand = model.run({**feeds, "context": np.array([False])})
    assert fire.sum() == 0 and cand[0, 0, 20, 20] == 1
    x[0, 0, 20, 20] = 0.9  # ratio 4.5, B12 0.9: unambiguous, fires without context
    fire, _, _ = model.run({**feeds, "context": np.array([False])})
    assert fire[0, 0, 20, 20] == 1
    feeds["valid"] = np.zeros_like(x)
    fire, _, cand = model.run(feeds)
    assert fire.sum() == 0 and cand.sum() == 0  # invalid pixels never fire


def test_models_verify_checks_the_golden_copies(tmp_path: Path) -> None:
    proc = run_cli("models", "verify")
    assert proc.returncode == 0, proc.stderr
    own = [m for m in load_manifest(MODELS).values() if "package" not in m.raw]
    assert proc.stdout.count(" golden (") == len(own)
    d = tmp_path / "models"
    shutil.copytree(MODELS, d)
    golden = d / "golden" / "fire_swir.onnx"
    golden.write_bytes(golden.read_bytes()[:-1] + b"\x00")
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'models_dir = "{d}"\n')
    proc = run_cli("--config", cfg, "models", "verify")
    assert proc.returncode == 1
    assert "sha256 mismatch" in proc.stderr and "(golden copy)" in proc.stderr
    assert proc.stderr.count("eotriage: error:") == 1  # the primary is fine
