"""Synthetic clouds, cloud shadows, cirrus and smoke over clear Sentinel-2 scenes (numpy + cv2).

Used by ``models/train_cloud_student.py`` (augmented training and validation frames) and by
``tests/test_cloud_models.py`` (a fully clouded tile).  Bands are a mapping from spectral role
(``blue`` ``green`` ``red`` ``nir`` ``swir16`` ``swir22``; any subset) to 2-D reflectance arrays
on a grid of ``pixel_m`` metres; structure sizes are set in metres, so the same call works on a
10 m working grid and on the teacher's 30 m grid.

The physics is deliberately simple:

* a cloud is an opacity field ``alpha`` (fractal noise: Gaussian-blurred white noise at
  0.03-5 km; half of the clouds are small sharp-edged cumulus of 0.4-1.5 km) thresholded at
  the wanted cover with soft edges, over a bright, nearly flat spectrum in the visible and
  NIR, lower in SWIR-1 and lower still in SWIR-2 (water and ice absorb there), with its own
  texture; ``out = ground * (1 - alpha) + cloud * alpha``;
* its shadow is the same field displaced by 150 m - 2 km in a random direction, darkening the
  ground by 45-85 % (less in blue: diffuse skylight); the cloud is drawn over the shadow;
* cirrus is a broad thin layer (opacity 0.1-0.4) without shadow;
* smoke is an elongated plume that adds path radiance falling steeply from blue to SWIR
  (smoke is nearly transparent at 1.6 and 2.2 um) and dims the ground a little; it is not
  cloud.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("none", "cloud", "full", "cirrus", "smoke")

# Cloud spectrum relative to its visible brightness, per role: (low, high) of a uniform draw.
_CLOUD_SPECTRUM = {
    "blue": (1.0, 1.08),
    "green": (0.98, 1.02),
    "red": (0.97, 1.02),
    "nir": (0.93, 1.12),
    "swir16": (0.5, 0.9),
    "swir22": (0.3, 0.7),
}
# Cirrus (ice): flat in VNIR, dark in SWIR.
_CIRRUS_SPECTRUM = {
    "blue": (1.0, 1.1),
    "green": (0.97, 1.03),
    "red": (0.95, 1.02),
    "nir": (0.9, 1.05),
    "swir16": (0.3, 0.6),
    "swir22": (0.15, 0.45),
}
# Fraction of the shadow darkening per role (diffuse skylight fills blue shadows most).
_SHADOW_DEPTH = {"blue": 0.6, "green": 0.75, "red": 0.85, "nir": 1.0, "swir16": 1.0, "swir22": 1.0}
# Smoke: added path radiance and ground dimming per unit opacity.
_SMOKE_PATH = {
    "blue": 0.2,
    "green": 0.15,
    "red": 0.1,
    "nir": 0.045,
    "swir16": 0.01,
    "swir22": 0.005,
}
_SMOKE_DIM = {"blue": 0.35, "green": 0.3, "red": 0.25, "nir": 0.15, "swir16": 0.03, "swir22": 0.02}


@dataclass(frozen=True)
class SynthTruth:
    """What was drawn: cloud opacity, shadow strength (0..1, where visible, i.e. not under
    the cloud), smoke opacity, and the kind."""

    kind: str
    alpha: np.ndarray
    shadow: np.ndarray
    smoke: np.ndarray

    def classes(self, cloud_min: float = 0.5, shadow_min: float = 0.5) -> np.ndarray:
        """0 clear, 1 cloud (alpha >= cloud_min), 2 shadow (shadow >= shadow_min)."""
        out = np.zeros(self.alpha.shape, np.uint8)
        out[self.shadow >= shadow_min] = 2
        out[self.alpha >= cloud_min] = 1
        return out


def _blurred_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-blurred white noise (blurred on a reduced canvas when the
    blur is wide, then enlarged; periodic-free thanks to a reflected border)."""
    h, w = shape
    red = max(1, int(sigma_px // 4))
    sh, sw = max(2, -(-h // red) + 2), max(2, -(-w // red) + 2)
    n = rng.standard_normal((sh, sw)).astype(np.float32)
    s = max(sigma_px / red, 0.5)
    n = cv2.GaussianBlur(n, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    if red > 1:
        n = cv2.resize(n, (sw * red, sh * red), interpolation=cv2.INTER_CUBIC)
    n = n[:h, :w]
    sd = float(n.std())
    return (n - float(n.mean())) / (sd if sd > 0 else 1.0)


def fractal(
    rng: np.random.Generator, shape: tuple[int, int], pixel_m: float, scales_m: tuple[float, ...]
) -> np.ndarray:
    """Sum of blurred noise at ``scales_m`` (weights falling with size), rescaled to 0..1."""
    total = np.zeros(shape, np.float32)
    for i, s in enumerate(scales_m):
        total += _blurred_noise(rng, shape, max(s / pixel_m, 0.7)) / (1.6**i)
    lo, hi = np.percentile(total, [0.5, 99.5])
    return np.clip((total - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)


def _opacity(
    rng: np.random.Generator,
    shape: tuple[int, int],
    pixel_m: float,
    cover: float,
    softness: float,
    big: float | None = None,
) -> np.ndarray:
    big = float(rng.uniform(1500, 5000)) if big is None else big
    field = fractal(rng, shape, pixel_m, (big, big / 2.5, big / 6, big / 15))
    thr = float(np.quantile(field, 1.0 - cover)) if cover < 1 else -1.0
    return np.clip((field - thr) / softness, 0.0, 1.0)


def _shift(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        a,
        m,
        (a.shape[1], a.shape[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


def add_clouds(
    bands: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    pixel_m: float,
    kind: str = "cloud",
    cover: float | None = None,
) -> tuple[dict[str, np.ndarray], SynthTruth]:
    """Draw one ``kind`` of :data:`KINDS` over ``bands``; returns new float32 bands and the
    truth.  ``cover`` (0..1) sets the cloud cover of ``cloud`` (random 0.05-0.7 if None)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    roles = list(bands)
    shape = np.asarray(bands[roles[0]]).shape
    out = {r: np.asarray(bands[r], np.float32).copy() for r in roles}
    zero = np.zeros(shape, np.float32)
    if kind == "none":
        return out, SynthTruth(kind, zero, zero, zero)

    if kind == "smoke":
        field = fractal(rng, shape, pixel_m, (3000.0, 1200.0, 400.0))
        angle = float(rng.uniform(0, 180))
        centre = (shape[1] / 2.0, shape[0] / 2.0)
        rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
        plume = np.zeros(shape, np.float32)
        cv2.ellipse(
            plume,
            (int(centre[0]), int(centre[1])),
            (int(shape[1] * 0.6), int(shape[0] * float(rng.uniform(0.12, 0.3)))),
            0,
            0,
            360,
            1.0,
            -1,
        )
        plume = cv2.warpAffine(plume, rot, (shape[1], shape[0]))
        plume = cv2.GaussianBlur(plume, (0, 0), max(600.0 / pixel_m, 1.0))
        smoke = np.clip(plume * (0.4 + 0.8 * field), 0, 1) * float(rng.uniform(0.5, 1.0))
        gain = float(rng.uniform(0.6, 1.5))
        for r in roles:
            out[r] = out[r] * (1 - _SMOKE_DIM[r] * smoke) + _SMOKE_PATH[r] * gain * smoke
        return out, SynthTruth(kind, zero, zero, smoke.astype(np.float32))

    if kind == "full":
        alpha = np.clip(0.9 + 0.1 * fractal(rng, shape, pixel_m, (2000.0, 500.0)), 0, 1)
        spectrum, bright = _CLOUD_SPECTRUM, float(rng.uniform(0.3, 0.85))
        max_alpha = 1.0
    elif kind == "cirrus":
        max_alpha = float(rng.uniform(0.1, 0.4))
        alpha = _opacity(rng, shape, pixel_m, float(rng.uniform(0.3, 1.0)), 0.5) * max_alpha
        spectrum, bright = _CIRRUS_SPECTRUM, float(rng.uniform(0.3, 0.7))
    else:
        c = float(rng.uniform(0.05, 0.7)) if cover is None else cover
        if rng.random() < 0.5:  # fair-weather cumulus: many small, sharp-edged clouds
            alpha = _opacity(
                rng,
                shape,
                pixel_m,
                min(c, 0.4),
                float(rng.uniform(0.03, 0.15)),
                big=float(rng.uniform(400, 1500)),
            )
        else:  # stratiform / frontal fields
            alpha = _opacity(rng, shape, pixel_m, c, float(rng.uniform(0.05, 0.35)))
        max_alpha = float(rng.uniform(0.75, 1.0))
        alpha = alpha * max_alpha
        spectrum, bright = _CLOUD_SPECTRUM, float(rng.uniform(0.3, 0.9))

    texture = 0.8 + 0.4 * fractal(rng, shape, pixel_m, (800.0, 250.0, 90.0))
    # thin parts of a cloud are darker than its core
    level = bright * texture * (0.55 + 0.45 * np.clip(alpha / max(max_alpha, 1e-6), 0, 1))

    shadow = zero
    if kind == "cloud":
        dist_m = float(rng.uniform(150, 2000))
        ang = float(rng.uniform(0, 2 * np.pi))
        shifted = _shift(alpha, dist_m / pixel_m * np.sin(ang), dist_m / pixel_m * np.cos(ang))
        depth = float(rng.uniform(0.45, 0.85))
        for r in roles:
            out[r] = out[r] * (1 - depth * _SHADOW_DEPTH[r] * shifted)
        shadow = (shifted * (1 - np.clip(alpha * 2, 0, 1))).astype(np.float32)

    for r in roles:
        lo, hi = spectrum[r]
        cloud = level * float(rng.uniform(lo, hi))
        out[r] = out[r] * (1 - alpha) + cloud * alpha
    return out, SynthTruth(kind, alpha.astype(np.float32), shadow, zero)
