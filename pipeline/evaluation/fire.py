"""Fire clusters against a reference hot-pixel list: a reference cluster is found when the
pixel box of a fire detection contains one of its pixels; a detection whose box contains no
reference pixel is a false cluster."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.results import Detection, SceneResult
from ..errors import InputError
from ..settings import Settings
from .scoring import rounded


@dataclass(frozen=True)
class FireScore:
    """Per-scene fire cluster scores against a reference hot-pixel list."""

    scene: str
    reference_clusters: int
    reference_pixels: int
    detections: int
    found: int
    false_clusters: int
    missed: tuple[int, ...] = field(default_factory=tuple)

    @property
    def precision(self) -> float | None:
        return (
            (self.detections - self.false_clusters) / self.detections if self.detections else None
        )

    @property
    def recall(self) -> float | None:
        return self.found / self.reference_clusters if self.reference_clusters else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scene": self.scene,
            "reference_clusters": self.reference_clusters,
            "reference_pixels": self.reference_pixels,
            "detections": self.detections,
            "found": self.found,
            "missed_clusters": list(self.missed),
            "false_clusters": self.false_clusters,
            "precision": rounded(self.precision),
            "recall": rounded(self.recall),
            "f1": rounded(self.f1),
        }


def read_fire_reference(path: str | Path) -> dict[int, set[tuple[int, int]]]:
    """cluster id -> {(row, col)} from a CSV with ``row``, ``col`` and ``cluster`` columns."""
    p = Path(path)
    clusters: dict[int, set[tuple[int, int]]] = {}
    try:
        with p.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    key = int(row["cluster"])
                    px = (int(row["row"]), int(row["col"]))
                except (KeyError, TypeError, ValueError):
                    raise InputError(f"{p} line {i}: bad row/col/cluster") from None
                clusters.setdefault(key, set()).add(px)
    except FileNotFoundError:
        raise InputError(f"{p}: reference file not found") from None
    except OSError as exc:
        raise InputError(f"{p}: unreadable reference ({exc.strerror or exc})") from None
    if not clusters:
        raise InputError(f"{p}: no reference pixels")
    return clusters


def _box(d: Detection) -> tuple[int, int, int, int]:
    m = d.measures
    try:
        return (int(m["row_min"]), int(m["col_min"]), int(m["row_max"]), int(m["col_max"]))
    except (KeyError, TypeError, ValueError):
        raise InputError("fire detection without row/col box measures") from None


def score_fire(result: SceneResult, ref: Mapping[int, set[tuple[int, int]]]) -> FireScore:
    boxes = [_box(d) for d in result.detections if d.cls == "fire"]

    def inside(px: tuple[int, int], b: tuple[int, int, int, int]) -> bool:
        return b[0] <= px[0] <= b[2] and b[1] <= px[1] <= b[3]

    found = [k for k, pxs in ref.items() if any(inside(p, b) for b in boxes for p in pxs)]
    all_ref = set().union(*ref.values())
    false = sum(1 for b in boxes if not any(inside(p, b) for p in all_ref))
    return FireScore(
        scene=result.scene,
        reference_clusters=len(ref),
        reference_pixels=len(all_ref),
        detections=len(boxes),
        found=len(found),
        false_clusters=false,
        missed=tuple(sorted(set(ref) - set(found))),
    )


def evaluate_fire(
    scene_path: str | Path, reference: str | Path, settings: Settings | None = None
) -> tuple[FireScore, SceneResult]:
    """Run the fire detector on a scene and score its clusters against a reference CSV."""
    from ..core.engine import run_scene

    ref = read_fire_reference(reference)
    settings = (settings or Settings()).replace(detectors=("fire",))
    result = run_scene(scene_path, settings)
    if result.failures or result.problems:
        causes = [f.cause for f in result.failures[:2]] + list(result.problems[:2])
        raise InputError(f"{scene_path}: fire run incomplete: {'; '.join(causes)}")
    return score_fire(result, ref), result
