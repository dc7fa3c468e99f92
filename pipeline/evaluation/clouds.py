"""Scoring cloud/shadow masks against a reference (numpy only).

Classes as in :mod:`pipeline.detectors.cloud_models`: 0 clear, 1 cloud, 2 shadow; pixels equal
to 255 (no data) in either map, or outside ``valid``, are left out.  The ukis-csmask reference
sample codes its mask differently (4 cloud, 0 shadow, 1/2/3 clear): :func:`ukis_reference`
converts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

N_CLASSES = 3
NODATA = 255
CLASS_NAMES = ("clear", "cloud", "shadow")


def ukis_reference(msk: np.ndarray) -> np.ndarray:
    """The ukis-csmask test mask (4 cloud, 0 shadow, 1/2/3 clear) -> 0 clear, 1 cloud,
    2 shadow (uint8, 2-D)."""
    m = np.asarray(msk)
    if m.ndim == 3:
        m = m[..., 0]
    out = np.zeros(m.shape, np.uint8)
    out[m == 4] = 1
    out[m == 0] = 2
    return out


def _pairs(
    reference: np.ndarray, predicted: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference)
    pred = np.asarray(predicted)
    if ref.shape != pred.shape:
        raise ValueError(f"reference {ref.shape} and prediction {pred.shape} differ in shape")
    ok = (ref != NODATA) & (pred != NODATA)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    return ref[ok].astype(np.int64), pred[ok].astype(np.int64)


def confusion(
    reference: np.ndarray, predicted: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """3 x 3 confusion matrix: rows reference class, columns predicted class (pixel counts)."""
    r, p = _pairs(reference, predicted, valid)
    if r.size and (r.max() >= N_CLASSES or p.max() >= N_CLASSES):
        raise ValueError("classes must be 0 clear, 1 cloud, 2 shadow or 255 no data")
    return np.bincount(r * N_CLASSES + p, minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)


def kappa_from_confusion(cm: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix (1.0 when both maps are one identical class)."""
    c = cm.astype(np.float64)
    n = c.sum()
    if n == 0:
        return float("nan")
    po = np.trace(c) / n
    pe = float((c.sum(axis=0) * c.sum(axis=1)).sum()) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return float((po - pe) / (1.0 - pe))


@dataclass(frozen=True)
class MaskScore:
    """Scores of a predicted mask against a reference over the pixels both cover."""

    pixels: int
    #: cloud vs not-cloud pixel accuracy
    cloud_accuracy: float
    #: Cohen's kappa over clear / cloud / shadow
    kappa: float
    #: three-class pixel agreement
    agreement: float
    #: rows reference, columns prediction (clear, cloud, shadow)
    confusion: tuple[tuple[int, ...], ...]
    reference_fractions: tuple[float, float, float]
    predicted_fractions: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["confusion"] = [list(r) for r in self.confusion]
        d["reference_fractions"] = list(self.reference_fractions)
        d["predicted_fractions"] = list(self.predicted_fractions)
        return d


def score(
    reference: np.ndarray, predicted: np.ndarray, valid: np.ndarray | None = None
) -> MaskScore:
    """Cloud-vs-rest accuracy, three-class kappa and agreement, confusion matrix and class
    fractions of ``predicted`` against ``reference`` (same shape)."""
    cm = confusion(reference, predicted, valid)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("no pixel to score (everything is no data or invalid)")
    cloud_ok = cm[1, 1] + cm[0, 0] + cm[0, 2] + cm[2, 0] + cm[2, 2]
    return MaskScore(
        pixels=n,
        cloud_accuracy=float(cloud_ok) / n,
        kappa=kappa_from_confusion(cm),
        agreement=float(np.trace(cm)) / n,
        confusion=tuple(tuple(int(v) for v in row) for row in cm),
        reference_fractions=tuple(float(v) / n for v in cm.sum(axis=1)),  # type: ignore[arg-type]
        predicted_fractions=tuple(float(v) / n for v in cm.sum(axis=0)),  # type: ignore[arg-type]
    )


def agreement(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Share of pixels where two class maps agree (e.g. student vs teacher)."""
    r, p = _pairs(a, b, valid)
    if r.size == 0:
        raise ValueError("no pixel to compare")
    return float((r == p).mean())
