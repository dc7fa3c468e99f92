"""Cloud and cloud-shadow screening models: the ukis-csmask teacher and the distilled student.

Runtime side only: this module imports numpy, OpenCV and onnxruntime (and the standard
library), nothing else of ``pipeline``, so the detector that wires it in can live anywhere.

Classes everywhere: ``0`` clear, ``1`` cloud, ``2`` cloud shadow (:data:`CLEAR`, :data:`CLOUD`,
:data:`SHADOW`); ``255`` (:data:`NODATA`) marks coarse pixels without valid input.

Bands are passed as a mapping from spectral *role* (the role names of ``pipeline.sensors``:
``blue`` ``green`` ``red`` ``nir`` ``swir16`` ``swir22``) to 2-D float32 reflectance arrays on
the scene's working grid (10 m class for Sentinel-2).  Both models work on a coarser grid whose
pixel is ``factor`` x ``factor`` working pixels (block mean, see :func:`block_mean`);
:func:`grid_factor` gives the factor for a working-grid pixel size.

Teacher (ukis-csmask 1.0.0, DLR, Apache-2.0; optional extra ``clouds-accurate``)
    Four ONNX U-Nets (EfficientNet-b4, ~40 MB each), input ``input`` N x C x 256 x 256 float32,
    output ``output`` N x 3 x 256 x 256 logits (0 background, 1 cloud, 2 shadow), trained on
    ~30 m images.  ``model_6b_*`` needs blue green red nir swir16 swir22, ``model_4b_*`` the
    first four; ``*_l1c`` is for top-of-atmosphere, ``*_l2a`` for surface reflectance.  The
    package normalises with per-band mean/std of its training set (:data:`TEACHERS`), cuts the
    image into 256 px tiles with 20 % overlap after symmetric padding, takes the softmax per
    tile, blends the tiles with a 2-D Tukey window and takes the argmax;
    :func:`teacher_tiles` / :func:`teacher_untile` reproduce that exactly (tested against the
    package).  It does not resample: callers must bring the image to ~30 m, which
    :func:`run_teacher` does from the working grid.

Student (``models/cloud_student.onnx``, built by ``models/train_cloud_student.py``)
    A small CNN distilled from the teacher, run on a ~60 m grid (:data:`STUDENT_GRID_M`).
    Inputs ``bands`` N x 6 x h x w float32 reflectance (blue green red nir swir16 swir22; the two
    SWIR planes are zeros when absent) and ``has_swir`` N x 1 x 1 x 1 float32 (1 with SWIR, 0
    for the 4-band path); h and w multiples of :data:`STUDENT_MULTIPLE`.  Outputs ``logits``
    N x 3 x h x w (clear, cloud, shadow; the softmax is taken here, in numpy) and ``classes``
    N x h x w uint8 (argmax).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

CLEAR, CLOUD, SHADOW = 0, 1, 2
NODATA = 255
CLASS_NAMES = ("clear", "cloud", "shadow")

BANDS_4 = ("blue", "green", "red", "nir")
BANDS_6 = ("blue", "green", "red", "nir", "swir16", "swir22")

#: Pixel size (m) the teacher was trained at (the package recommends ~30 m input).
TEACHER_GRID_M = 30.0
#: Pixel size (m) of the student's grid.
STUDENT_GRID_M = 60.0
#: The student's height and width must be multiples of this (two stride-2 stages).
STUDENT_MULTIPLE = 4
#: Name of the optional dependency group that installs the teacher.
TEACHER_EXTRA = "clouds-accurate"
TEACHER_PACKAGE = "ukis_csmask"
TEACHER_DIST = "ukis-csmask"
TEACHER_VERSION = "1.0.0"


class CloudModelError(ValueError):
    """A cloud model is missing, corrupt or fed the wrong input (the lead maps this onto the
    project's ``ModelError``)."""


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


def grid_factor(pixel_m: float, target_m: float) -> int:
    """Working pixels per coarse pixel (per axis) to reach about ``target_m`` (at least 1)."""
    if pixel_m <= 0 or target_m <= 0:
        raise CloudModelError(f"pixel sizes must be positive (pixel {pixel_m}, target {target_m})")
    return max(1, int(round(target_m / pixel_m)))


def coarse_shape(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """Shape of the coarse grid covering ``shape`` (the last row/column may be partial)."""
    return (-(-shape[0] // factor), -(-shape[1] // factor))


def block_mean(
    band: np.ndarray, factor: int, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean of each ``factor`` x ``factor`` block of a 2-D array (float32).

    Partial blocks at the bottom/right edges average the pixels they have.  With ``valid``
    (bool, same shape) only valid pixels count; the second result is then the fraction of valid
    pixels per block (float32), else ``None``.  Integer-factor ``cv2.INTER_AREA`` on the full
    blocks (a plain block mean, ~0.3 ms per 10 m Mpx and band on one core).
    """
    if band.ndim != 2:
        raise CloudModelError(f"a band must be 2-D, got shape {band.shape}")
    b = band if band.dtype == np.float32 else band.astype(np.float32)
    if factor == 1:
        if valid is None:
            return b, None
        v = valid.astype(np.float32)
        return np.where(valid, b, 0.0).astype(np.float32), v
    if valid is not None:
        v = valid.astype(np.float32)
        num, _ = block_mean(np.where(valid, b, 0.0).astype(np.float32), factor)
        frac, _ = block_mean(v, factor)
        out = np.divide(num, frac, out=np.zeros_like(num), where=frac > 0)
        return out, frac
    h, w = b.shape
    ch, cw = coarse_shape((h, w), factor)
    fh, fw = h // factor, w // factor
    out = np.empty((ch, cw), np.float32)
    if fh and fw:
        out[:fh, :fw] = cv2.resize(
            b[: fh * factor, : fw * factor], (fw, fh), interpolation=cv2.INTER_AREA
        )
    if fh < ch:  # partial bottom row of blocks
        rest = b[fh * factor :, :]
        out[fh, :] = _row_blocks(rest.mean(axis=0), factor)
    if fw < cw:  # partial right column of blocks
        rest = b[:, fw * factor :]
        out[:, fw] = _row_blocks(rest.mean(axis=1), factor)
    return out, None


def _row_blocks(line: np.ndarray, factor: int) -> np.ndarray:
    n = line.shape[0]
    pad = (-n) % factor
    counts = np.full(-(-n // factor), float(factor), np.float32)
    if pad:
        counts[-1] = factor - pad
        line = np.concatenate([line, np.zeros(pad, line.dtype)])
    return (line.reshape(-1, factor).sum(axis=1) / counts).astype(np.float32)


def upsample_classes(
    classes: np.ndarray, factor: int, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """A coarse class map back onto the working grid (nearest: each coarse pixel fills its
    ``factor`` x ``factor`` block), cropped to ``shape`` (default: the full blocks)."""
    out = np.repeat(np.repeat(classes, factor, axis=0), factor, axis=1)
    if shape is not None:
        if shape[0] > out.shape[0] or shape[1] > out.shape[1]:
            raise CloudModelError(f"shape {shape} exceeds the coarse grid x {factor}")
        out = out[: shape[0], : shape[1]]
    return out


def upsample_probs(probs: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Coarse class probabilities (3 x h x w) bilinearly onto a grid ``factor`` times finer,
    cropped to ``shape``: smoother edges than :func:`upsample_classes` (pixel-centre aligned)."""
    c, h, w = probs.shape
    out = np.empty((c, shape[0], shape[1]), np.float32)
    for i in range(c):
        up = cv2.resize(
            probs[i].astype(np.float32), (w * factor, h * factor), interpolation=cv2.INTER_LINEAR
        )
        out[i] = up[: shape[0], : shape[1]]
    return out


def classes_from_probs(probs: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Argmax over the class axis (first axis) as uint8; :data:`NODATA` where not ``valid``."""
    cls = np.argmax(probs, axis=0).astype(np.uint8)
    if valid is not None:
        cls[~valid] = NODATA
    return cls


# --------------------------------------------------------------------------------------------
# Fractions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudFractions:
    """Share of valid pixels per class (0..1) and the number of valid pixels."""

    cloud: float
    shadow: float
    clear: float
    valid_pixels: int

    @property
    def obscured(self) -> float:
        """Cloud plus shadow."""
        return self.cloud + self.shadow


def fractions(classes: np.ndarray, valid: np.ndarray | None = None) -> CloudFractions:
    """Cloud, shadow and clear fractions over the valid pixels of a class map (pixels equal to
    :data:`NODATA` never count); all zero when nothing is valid."""
    ok = classes != NODATA
    if valid is not None:
        ok &= valid.astype(bool)
    n = int(ok.sum())
    if n == 0:
        return CloudFractions(0.0, 0.0, 0.0, 0)
    counts = np.bincount(classes[ok].ravel(), minlength=3)
    return CloudFractions(
        cloud=float(counts[CLOUD]) / n,
        shadow=float(counts[SHADOW]) / n,
        clear=float(counts[CLEAR]) / n,
        valid_pixels=n,
    )


# --------------------------------------------------------------------------------------------
# Running an ONNX model: a session or a callable
# --------------------------------------------------------------------------------------------

#: A model: an ``onnxruntime.InferenceSession`` or a callable ``feeds -> outputs`` (in the
#: order of the model's outputs), e.g. the project's ``OnnxModel.run``.
ModelLike = Any


def _run(model: ModelLike, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    if hasattr(model, "get_inputs") and hasattr(model, "run"):
        return list(model.run(None, dict(feeds)))
    if callable(model):
        return list(model(dict(feeds)))
    raise CloudModelError(f"not an onnxruntime session or callable: {type(model).__name__}")


def make_session(path: Path | str | bytes, threads: int = 2) -> Any:
    """A CPU ``onnxruntime.InferenceSession`` with ``threads`` intra-op threads (sequential
    execution); ``path`` may be the model bytes.  The lead's loader replaces this in the
    pipeline (manifest, sha256 and golden copies); handy for scripts and tests."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle intra-op threads must not spin: the block means (OpenCV) run between two model
    # calls on the same 2 cores, and spinning threads would take their time.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


def _stack_bands(
    bands: Mapping[str, np.ndarray], roles: Sequence[str]
) -> tuple[list[np.ndarray], tuple[int, int]]:
    missing = [r for r in roles if r not in bands]
    if missing:
        raise CloudModelError(
            f"cloud model needs band roles {', '.join(roles)}; missing {', '.join(missing)}"
        )
    planes = [np.asarray(bands[r]) for r in roles]
    shape = planes[0].shape
    if len(shape) != 2 or any(p.shape != shape for p in planes):
        raise CloudModelError(
            f"bands must be 2-D arrays of one shape, got {[p.shape for p in planes]}"
        )
    return planes, (int(shape[0]), int(shape[1]))


def _coarse_stack(
    planes: Sequence[np.ndarray], factor: int, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if valid is not None and bool(valid.all()):
        valid = None
    out = []
    frac: np.ndarray | None = None
    for p in planes:
        m, f = block_mean(p, factor, valid)
        out.append(m)
        frac = f if f is not None else frac
    coarse_valid = None if frac is None else frac >= 0.5
    return np.stack(out), coarse_valid


# --------------------------------------------------------------------------------------------
# Teacher: ukis-csmask
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeacherSpec:
    """One ukis-csmask model: file, band order and the normalisation of its training set.

    The statistics are copied from the package's ``model_*.json`` (ukis-csmask 1.0.0) so that
    a copied ONNX file runs without the package; :func:`teacher_spec_from_package` reads them
    back and the tests compare.
    """

    name: str
    bands: tuple[str, ...]
    product_level: str
    version: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tile: int = 256
    overlap: float = 0.2
    input_name: str = "input"

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"


_L1C_MEAN = (0.27552253007888794, 0.2556644380092621, 0.269801527261734, 0.33431220054626465)
_L1C_STD = (0.24488002061843872, 0.22757470607757568, 0.2537152171134949, 0.23213787376880646)
_L2A_MEAN = (0.26681777834892273, 0.27799084782600403, 0.28811994194984436, 0.36494743824005127)
_L2A_STD = (0.33637598156929016, 0.3125455975532532, 0.311148464679718, 0.27260705828666687)

TEACHERS: dict[str, TeacherSpec] = {
    s.name: s
    for s in (
        TeacherSpec("model_4b_l1c", BANDS_4, "l1c", "1.0.0-4BL1C", _L1C_MEAN, _L1C_STD),
        TeacherSpec("model_4b_l2a", BANDS_4, "l2a", "1.0.0-4BL2A", _L2A_MEAN, _L2A_STD),
        TeacherSpec(
            "model_6b_l1c",
            BANDS_6,
            "l1c",
            "1.0.0-6BL1C",
            (*_L1C_MEAN, 0.20851291716098785, 0.15826508402824402),
            (*_L1C_STD, 0.148738831281662, 0.12604215741157532),
        ),
        TeacherSpec(
            "model_6b_l2a",
            BANDS_6,
            "l2a",
            "1.0.0-6BL2A",
            (*_L2A_MEAN, 0.2225709855556488, 0.17859040200710297),
            (*_L2A_STD, 0.16653667390346527, 0.14328984916210175),
        ),
    )
}


def select_teacher(roles: Sequence[str] | Mapping[str, Any], product_level: str) -> TeacherSpec:
    """The teacher for the available band roles (6-band model when swir16 and swir22 are both
    there, else 4-band) and product level (``l1c`` top-of-atmosphere, ``l2a`` surface)."""
    level = product_level.lower()
    if level not in ("l1c", "l2a"):
        raise CloudModelError(f"product level must be 'l1c' or 'l2a', got {product_level!r}")
    have = set(roles)
    if set(BANDS_6) <= have:
        return TEACHERS[f"model_6b_{level}"]
    if set(BANDS_4) <= have:
        return TEACHERS[f"model_4b_{level}"]
    raise CloudModelError(
        "the cloud teacher needs at least blue, green, red and nir reflectance "
        f"(have: {', '.join(sorted(have)) or 'none'})"
    )


def teacher_package_dir() -> Path:
    """Folder of the installed ukis-csmask package; a clear error naming the extra if absent."""
    spec = importlib.util.find_spec(TEACHER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CloudModelError(
            f"the accurate cloud model needs {TEACHER_DIST}=={TEACHER_VERSION}, which is not "
            f"installed: pip install 'eotriage[{TEACHER_EXTRA}]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def teacher_model_path(name: str) -> Path:
    """Path of a teacher ONNX file inside the installed package (does not import it)."""
    if name not in TEACHERS:
        raise CloudModelError(f"unknown teacher model {name!r} (known: {', '.join(TEACHERS)})")
    path = teacher_package_dir() / TEACHERS[name].file
    if not path.is_file():
        raise CloudModelError(
            f"{path} is missing: reinstall {TEACHER_DIST}=={TEACHER_VERSION} "
            f"(pip install --force-reinstall 'eotriage[{TEACHER_EXTRA}]')"
        )
    return path


def teacher_spec_from_package(name: str) -> TeacherSpec:
    """The spec as written in the installed package's ``<name>.json`` (for checking
    :data:`TEACHERS`)."""
    import json

    meta = json.loads(teacher_model_path(name).with_suffix(".json").read_text())
    stats = meta["data"]["dataset_statistics"]
    return TeacherSpec(
        name=name,
        bands=tuple(stats["band_names"]),
        product_level=name.rsplit("_", 1)[1],
        version=str(meta["model"]["version"]),
        mean=tuple(float(v) for v in stats["img"][0]),
        std=tuple(float(v) for v in stats["img"][1]),
        tile=int(meta["data"]["target_size"][0]),
    )


def copy_teacher_models(
    dest: Path, names: Sequence[str] | None = None
) -> dict[str, dict[str, str | int]]:
    """Copy teacher ONNX files from the installed package into ``dest``; returns per model its
    file name, size and sha256 (for the manifest)."""
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, str | int]] = {}
    for name in names or list(TEACHERS):
        src = teacher_model_path(name)
        dst = dest / src.name
        shutil.copyfile(src, dst)
        out[name] = {"file": dst.name, "bytes": dst.stat().st_size, "sha256": sha256_file(dst)}
        log.info("copied %s (%d bytes) to %s", src.name, dst.stat().st_size, dst)
    return out


def _tukey(m: int, alpha: float) -> np.ndarray:
    """scipy.signal.windows.tukey(m, alpha) (symmetric), without scipy."""
    if alpha <= 0:
        return np.ones(m)
    if alpha >= 1:
        return np.hanning(m)
    n = np.arange(m, dtype=np.float64)
    width = int(np.floor(alpha * (m - 1) / 2.0))
    w = np.ones(m)
    n1 = n[: width + 1]
    n3 = n[m - width - 1 :]
    w[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * n1 / alpha / (m - 1))))
    w[m - width - 1 :] = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * n3 / alpha / (m - 1))))
    return w


@dataclass(frozen=True)
class TileLayout:
    """Where the teacher's tiles sit: symmetric padding ``pad_before`` / ``pad_after`` rows and
    columns, tile origins ``starts_y`` / ``starts_x`` in the padded image."""

    shape: tuple[int, int]
    tile: int
    step: int
    pad_before: int
    pad_after: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.starts_y) * len(self.starts_x)


def teacher_layout(shape: tuple[int, int], tile: int = 256, overlap: float = 0.2) -> TileLayout:
    """The tiling of ``ukis_csmask.utils.tile_array``: pad ``int(tile*overlap)`` before and
    ``tile + 1 + int(tile*overlap)`` after (symmetric reflection), windows every
    ``int(tile - tile*overlap)`` pixels that fit entirely in the padded image."""
    step = int(tile - tile * overlap)
    before = int(tile * overlap)
    after = tile + 1 + before

    def starts(n: int) -> tuple[int, ...]:
        padded = n + before + after
        count = -(-(padded - tile + 1) // step)
        return tuple(i * step for i in range(max(count, 1)))

    return TileLayout(shape, tile, step, before, after, starts(shape[0]), starts(shape[1]))


def teacher_tiles(img: np.ndarray, layout: TileLayout) -> np.ndarray:
    """Normalised image (C x H x W) -> tiles N x C x tile x tile, rows first (package order)."""
    pad = ((0, 0), (layout.pad_before, layout.pad_after), (layout.pad_before, layout.pad_after))
    padded = np.pad(img, pad, mode="symmetric")
    t = layout.tile
    tiles = [padded[:, y : y + t, x : x + t] for y in layout.starts_y for x in layout.starts_x]
    return np.ascontiguousarray(np.stack(tiles), dtype=np.float32)


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (float32)."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def teacher_untile(probs: np.ndarray, layout: TileLayout) -> np.ndarray:
    """Tile probabilities N x K x tile x tile -> K x H x W, blended with the package's 2-D Tukey
    window (alpha = 2 x overlap) and normalised by the summed weights (the package does not
    normalise; the argmax is the same wherever a weight is non-zero)."""
    t = layout.tile
    w1 = _tukey(t, 2 * (t - layout.step) / t)
    w2 = np.outer(w1, w1).astype(np.float32)
    k = probs.shape[1]
    ph = layout.shape[0] + layout.pad_before + layout.pad_after
    pw = layout.shape[1] + layout.pad_before + layout.pad_after
    acc = np.zeros((k, ph, pw), np.float32)
    wsum = np.zeros((ph, pw), np.float32)
    i = 0
    for y in layout.starts_y:
        for x in layout.starts_x:
            acc[:, y : y + t, x : x + t] += probs[i] * w2
            wsum[y : y + t, x : x + t] += w2
            i += 1
    b = layout.pad_before
    acc = acc[:, b : b + layout.shape[0], b : b + layout.shape[1]]
    wsum = wsum[b : b + layout.shape[0], b : b + layout.shape[1]]
    return acc / np.maximum(wsum, 1e-12)


@dataclass(frozen=True)
class CloudMask:
    """A cloud/shadow class map on a coarse grid.

    ``classes`` (h x w uint8: 0 clear, 1 cloud, 2 shadow, 255 no data) and ``probs``
    (3 x h x w float32) cover the working grid ``shape`` with ``factor`` x ``factor`` blocks;
    ``model`` names the model that made it.
    """

    classes: np.ndarray
    probs: np.ndarray
    factor: int
    shape: tuple[int, int]
    model: str
    valid: np.ndarray | None = field(default=None, repr=False)

    def fractions(self) -> CloudFractions:
        return fractions(self.classes, self.valid)

    def on_grid(self, smooth: bool = False) -> np.ndarray:
        """The class map on the working grid (nearest, or bilinear probabilities + argmax)."""
        if not smooth:
            return upsample_classes(self.classes, self.factor, self.shape)
        cls = classes_from_probs(upsample_probs(self.probs, self.factor, self.shape))
        nodata = upsample_classes(self.classes, self.factor, self.shape) == NODATA
        cls[nodata] = NODATA
        return cls

    def obscured(self, smooth: bool = False) -> np.ndarray:
        """Bool mask on the working grid: cloud or shadow."""
        g = self.on_grid(smooth)
        return (g == CLOUD) | (g == SHADOW)


def teacher_input(
    bands: Mapping[str, np.ndarray],
    spec: TeacherSpec,
    factor: int,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Working-grid bands -> the teacher's normalised C x h x w input on its ~30 m grid (block
    mean over ``factor`` x ``factor``, band order and mean/std of ``spec``) and the coarse
    validity (None when all valid).  Invalid pixels are left out of the block means; blocks
    with no valid pixel get the band's training mean (0 after normalisation)."""
    planes, _ = _stack_bands(bands, spec.bands)
    coarse, cvalid = _coarse_stack(planes, factor, valid)
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    img = (coarse - mean) / std
    if cvalid is not None:
        img[:, ~cvalid] = 0.0
    return img.astype(np.float32), cvalid


def run_teacher(
    model: ModelLike,
    bands: Mapping[str, np.ndarray],
    product_level: str,
    factor: int = 3,
    valid: np.ndarray | None = None,
    spec: TeacherSpec | None = None,
    batch_size: int = 4,
) -> CloudMask:
    """Run a ukis-csmask model (``model``: a session of ``spec.file`` or a callable) on
    working-grid bands.  ``spec`` defaults to :func:`select_teacher` of the bands and
    ``product_level``; ``factor`` working pixels per ~30 m teacher pixel (3 for 10 m)."""
    spec = spec or select_teacher(bands, product_level)
    img, cvalid = teacher_input(bands, spec, factor, valid)
    probs = teacher_probs(model, img, spec, batch_size)
    return CloudMask(
        classes=classes_from_probs(probs, cvalid),
        probs=probs,
        factor=factor,
        shape=next(iter(np.asarray(bands[r]).shape for r in spec.bands)),
        model=spec.name,
        valid=cvalid,
    )


def teacher_probs(
    model: ModelLike, img: np.ndarray, spec: TeacherSpec, batch_size: int = 4
) -> np.ndarray:
    """Class probabilities 3 x H x W of the teacher on a normalised C x H x W image at its own
    resolution (the package's tiling, softmax and blending)."""
    if img.shape[0] != len(spec.bands):
        raise CloudModelError(f"{spec.name} takes {len(spec.bands)} bands, got {img.shape[0]}")
    layout = teacher_layout((img.shape[1], img.shape[2]), spec.tile, spec.overlap)
    tiles = teacher_tiles(img, layout)
    out = []
    for i in range(0, len(tiles), max(1, batch_size)):
        (logits,) = _run(model, {spec.input_name: tiles[i : i + batch_size]})[:1]
        out.append(softmax(np.asarray(logits, np.float32), axis=1))
    return teacher_untile(np.concatenate(out), layout)


# --------------------------------------------------------------------------------------------
# Student
# --------------------------------------------------------------------------------------------


def student_input(
    bands: Mapping[str, np.ndarray],
    factor: int,
    valid: np.ndarray | None = None,
    use_swir: bool | None = None,
) -> tuple[dict[str, np.ndarray], tuple[int, int], np.ndarray | None]:
    """Working-grid bands -> the student's feeds on its coarse grid.

    Returns ``{"bands": 1 x 6 x H x W, "has_swir": 1 x 1 x 1 x 1}`` (H, W the coarse shape
    padded by edge replication to multiples of :data:`STUDENT_MULTIPLE`), the unpadded coarse
    shape and the coarse validity (None when all valid).  ``use_swir`` defaults to whether
    both swir16 and swir22 are present; without them the SWIR planes are zeros (4-band path).
    """
    swir = all(r in bands for r in ("swir16", "swir22")) if use_swir is None else use_swir
    planes, shape = _stack_bands(bands, BANDS_6 if swir else BANDS_4)
    coarse, cvalid = _coarse_stack(planes, factor, valid)
    c, h, w = coarse.shape
    ph, pw = (-h) % STUDENT_MULTIPLE, (-w) % STUDENT_MULTIPLE
    x = np.zeros((1, 6, h + ph, w + pw), np.float32)
    x[0, :c, :h, :w] = coarse
    if ph:
        x[0, :c, h:, :w] = coarse[:, -1:, :]
    if pw:
        x[0, :c, :, w:] = x[0, :c, :, w - 1 : w]
    if cvalid is not None:
        x[0, :c, :h, :w][:, ~cvalid] = 0.0
    flag = np.full((1, 1, 1, 1), 1.0 if swir else 0.0, np.float32)
    return {"bands": x, "has_swir": flag}, (h, w), cvalid


def run_student(
    model: ModelLike,
    bands: Mapping[str, np.ndarray],
    factor: int = 6,
    valid: np.ndarray | None = None,
    use_swir: bool | None = None,
) -> CloudMask:
    """Run the student (a session of ``cloud_student.onnx`` or a callable) on working-grid
    bands; ``factor`` working pixels per ~60 m student pixel (6 for 10 m,
    :func:`grid_factor`)."""
    feeds, (h, w), cvalid = student_input(bands, factor, valid, use_swir)
    outs = _run(model, feeds)
    probs = softmax(np.asarray(outs[0], np.float32)[0, :, :h, :w], axis=0)
    classes = np.asarray(outs[1], np.uint8)[0, :h, :w].copy() if len(outs) > 1 else None
    if classes is None:
        classes = classes_from_probs(probs)
    if cvalid is not None:
        classes[~cvalid] = NODATA
    shape = next(iter(np.asarray(v).shape for v in bands.values()))
    return CloudMask(
        classes, probs, factor, (int(shape[0]), int(shape[1])), "cloud_student", cvalid
    )


# --------------------------------------------------------------------------------------------
# Integrity
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path | str, expected: str) -> None:
    """Raise :class:`CloudModelError` unless ``path`` has sha256 ``expected``."""
    got = sha256_file(path)
    if got != expected.lower():
        raise CloudModelError(f"{path}: sha256 {got} does not match the expected {expected}")


def load_verified(path: Path | str, expected_sha256: str, threads: int = 2) -> Any:
    """A session of ``path`` after checking its sha256 (bytes read once, so the checked bytes
    are the loaded bytes)."""
    data = Path(path).read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != expected_sha256.lower():
        raise CloudModelError(f"{path}: sha256 {got} does not match the expected {expected_sha256}")
    return make_session(data, threads)


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall times (s) of ``repeats`` calls of ``fn`` (for the benchmarks)."""
    import time

    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out
