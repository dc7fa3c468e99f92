"""The ship segmenter's training script (models/train_ship_segmenter.py): hard-negative mining
and the parallel training of the fold models (needs the ``test`` extra's torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from .conftest import REPO


def load_training_script() -> ModuleType:
    """models/train_ship_segmenter.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "tss", REPO / "models" / "train_ship_segmenter.py"
    )
    assert spec and spec.loader
    tss = importlib.util.module_from_spec(spec)
    sys.modules["tss"] = tss  # its dataclasses look their module up
    try:
        spec.loader.exec_module(tss)
    finally:
        sys.modules.pop("tss", None)
    return tss


def test_mining_finds_the_unlabelled_blobs_only() -> None:
    """Blobs the network calls vessel that touch no labelled hull are mined (their centres),
    blobs on or next to a labelled hull are not; above the limit the mined centres are spread
    over the whole list, not its first rows."""
    torch = pytest.importorskip("torch")
    tss = load_training_script()

    class Bright(torch.nn.Module):  # type: ignore[misc]
        """A "network" that calls every pixel with NIR above 0.3 a vessel."""

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            return (x[:, 3:4] - 0.3) * 100.0

    h, w = 64, 80
    x = np.full((5, h, w), 0.05, np.float32)
    inst = np.zeros((h, w), np.int32)
    x[3, 10:14, 10:20] = 0.5  # a labelled hull
    inst[10:14, 10:20] = 1
    x[3, 15:17, 10:20] = 0.5  # clutter right next to it: not a negative worth mining
    x[3, 40:44, 50:60] = 0.5  # an unlabelled hull-sized blob: mined
    x[3, 55:58, 20:23] = 0.5  # another one
    port = tss.Port(
        "test",
        x,
        inst,
        np.zeros((h, w), np.float32),
        10.0,
        [],
        np.ones((h, w), bool),
        np.zeros((0, 2), np.int64),
        np.zeros((0, 2), np.int64),
    )
    mined = tss.mine_false_positives(Bright(), port)
    assert sorted(map(tuple, mined.tolist())) == [(41, 54), (56, 21)]
    # 30 blobs in 30 rows, limit 5: spread from the first to the last
    x2 = np.full((5, 128, 16), 0.05, np.float32)
    for i in range(30):
        x2[3, 4 * i : 4 * i + 2, 4:8] = 0.5
    port2 = tss.Port(
        "test2",
        x2,
        np.zeros((128, 16), np.int32),
        np.zeros((128, 16), np.float32),
        10.0,
        [],
        np.ones((128, 16), bool),
        np.zeros((0, 2), np.int64),
        np.zeros((0, 2), np.int64),
    )
    rows = sorted(int(r) for r, _ in tss.mine_false_positives(Bright(), port2, limit=5))
    assert len(rows) == 5 and rows[0] == 0 and rows[-1] == 4 * 29


@pytest.mark.slow
def test_fold_models_do_not_depend_on_jobs(shared_data: Path, tmp_path: Path) -> None:
    """Two folds trained in two worker processes (--jobs 2) are byte-identical to the same
    folds trained one after the other (--jobs 1): each model depends only on its ports, the
    steps and the seed (a few steps, mining included)."""
    pytest.importorskip("torch")
    shas = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        out.mkdir()
        subprocess.run(
            [
                sys.executable,
                str(REPO / "models" / "train_ship_segmenter.py"),
                "--cv",
                "--folds",
                "honolulu",
                "casablanca",
                "--steps",
                "5",
                "--jobs",
                str(jobs),
                "--out-dir",
                str(out),
                "--data",
                str(shared_data / "sen2ships"),
            ],
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        folds = json.loads((out / "ship_segmenter_cv.json").read_text())["folds"]
        shas.append({k: v["sha256"] for k, v in folds.items()})
    assert shas[0] == shas[1]
    assert set(shas[0]) == {"honolulu", "casablanca"}
    assert shas[0]["honolulu"] != shas[0]["casablanca"]
