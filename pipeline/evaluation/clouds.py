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


# ------------------------------------------------------------------------------ a whole run

#: Pixel size assumed for the ukis-csmask sample (.npz): the package recommends ~30 m input
#: and its teachers score best on the sample taken as 30 m (docs/clouds_notes.md).
NPZ_PIXEL_M = 30.0


@dataclass(frozen=True)
class CloudEval:
    """One model on one input against a reference mask (and against the teacher)."""

    input: str
    model: str
    bands: int
    score: MaskScore
    #: pixel agreement with the teacher's mask on the same input (None without the teacher)
    agreement_with_teacher: float | None
    cloud_fraction: float
    shadow_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "model": self.model,
            "bands": self.bands,
            **self.score.to_dict(),
            "agreement_with_teacher": self.agreement_with_teacher,
            "cloud_fraction": self.cloud_fraction,
            "shadow_fraction": self.shadow_fraction,
        }


def evaluate_npz(
    path: Any,
    band_counts: tuple[int, ...] = (6, 4),
    pixel_m: float = NPZ_PIXEL_M,
    models_dir: Any = None,
    with_teacher: bool = True,
) -> list[CloudEval]:
    """The student (and the teacher, when installed) on an ukis-csmask style sample (``img``
    H x W x 6 reflectance in the order B02 B03 B04 B08 B11 B12, ``msk`` with 4 cloud, 0 shadow,
    1-3 clear), for the 6-band and the 4-band path.  Models load through the manifest."""
    from ..core.onnx_models import get_model, optional_missing
    from ..detectors import cloud_models as cm

    d = np.load(path)
    img = np.asarray(d["img"], np.float32)
    ref = ukis_reference(d["msk"])
    roles = ("blue", "green", "red", "nir", "swir16", "swir22")
    out: list[CloudEval] = []
    for n in band_counts:
        bands = {r: img[..., i] for i, r in enumerate(roles[:n])}
        student = get_model("cloud_student", models_dir, threads=2)
        factor = cm.grid_factor(pixel_m, cm.STUDENT_GRID_M)
        s_mask = cm.run_student(student.run, bands, factor).on_grid()
        t_mask = None
        if with_teacher:
            spec = cm.select_teacher(bands, "l1c")
            from ..core.onnx_models import load_manifest

            info = load_manifest(models_dir)[spec.name]
            if optional_missing(info) is None:
                teacher = get_model(spec.name, models_dir, threads=2)
                tf = cm.grid_factor(pixel_m, cm.TEACHER_GRID_M)
                t_mask = cm.run_teacher(teacher.run, bands, "l1c", tf, None, spec).on_grid()
                out.append(_eval(str(path), spec.name, n, ref, t_mask, None))
        agree = agreement(s_mask, t_mask) if t_mask is not None else None
        out.append(_eval(str(path), "cloud_student", n, ref, s_mask, agree))
    return out


def _eval(
    name: str, model: str, n: int, ref: np.ndarray, pred: np.ndarray, agree: float | None
) -> CloudEval:
    sc = score(ref, pred)
    return CloudEval(
        name,
        model,
        n,
        sc,
        agree,
        float(sc.predicted_fractions[1]),
        float(sc.predicted_fractions[2]),
    )


def evaluate_scene(
    scene_path: Any, reference: Any, settings: Any = None, codes: str = "classes"
) -> list[CloudEval]:
    """The configured cloud screen on a scene (``eotriage run`` with only the clouds stage)
    against a reference mask GeoTIFF on the scene's working grid: ``codes`` ``classes`` (0
    clear, 1 cloud, 2 shadow, 255 no data) or ``ukis`` (4 cloud, 0 shadow, 1-3 clear)."""
    import rasterio

    from ..core.engine import run_scene
    from ..errors import InputError
    from ..settings import Settings

    settings = (settings or Settings()).replace(detectors=("clouds",))
    result = run_scene(scene_path, settings)
    if result.sky_map is None:
        raise InputError(f"{scene_path}: the cloud screen did not run ({result.detectors})")
    try:
        with rasterio.open(reference) as ds:
            ref = ds.read(1)
    except (OSError, rasterio.errors.RasterioError) as exc:
        raise InputError(f"{reference}: cannot read the reference mask ({exc})") from None
    ref = ukis_reference(ref) if codes == "ukis" else ref.astype(np.uint8)
    f = result.sky_map.factor
    pred = result.sky_map.classes
    ref = ref[::f, ::f][: pred.shape[0], : pred.shape[1]]
    if ref.shape != pred.shape:
        raise InputError(
            f"{reference}: mask of {ref.shape} px does not match the scene grid ({pred.shape})"
        )
    bands = (
        6 if result.info["clouds"]["model"] and "4b" not in result.info["clouds"]["model"] else 4
    )
    return [_eval(str(scene_path), result.info["clouds"]["model"], bands, ref, pred, None)]
