"""The learned vessel segmenter's runtime: network input, instance grouping and score
calibration.

``models/ship_segmenter.onnx`` (trained by ``models/train_ship_segmenter.py``) takes the five
bands B02 B03 B04 B08 B11 as reflectance (``bands``: N x 5 x H x W, H and W multiples of
:data:`MULTIPLE`) and returns two maps of the same size:

- ``prob``: the probability that a pixel belongs to a vessel;
- ``dist``: the pixel's distance to the edge of its own hull, divided by the largest such
  distance in that hull (1 on a hull's spine, falling to 0 at its edge and wherever it touches
  another hull).

Vessels are grouped from these maps by :func:`group_vessels`: the pixels above ``prob_min``
are the vessel mask; their cores (``dist`` at least ``core_min``, 4-connected) are the seeds,
one per hull, and every other mask pixel joins the seed it reaches first inside the mask (a
geodesic watershed).  Two hulls rafted side by side have a low-``dist`` seam between their
spines, so they come out as two vessels.

Everything here is NumPy and OpenCV only: the training script imports it too, so the
cross-validation figures and the detector group pixels the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: Band roles the network reads, in this order (Sentinel-2 B02 B03 B04 B08 B11).
ROLES = ("blue", "green", "red", "nir", "swir16")
#: The network's input height and width must be multiples of this (two stride-2 stages).
MULTIPLE = 4

_K3 = np.ones((3, 3), np.uint8)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def pad_to_multiple(x: np.ndarray, multiple: int = MULTIPLE) -> tuple[np.ndarray, int, int]:
    """Reflect-pad the last two axes of ``x`` up to multiples of ``multiple``; returns the
    padded array and the original height and width."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        pads = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
        x = np.pad(x, pads, mode="reflect" if min(h, w) > 1 else "edge")
    return x, h, w


#: Rows of one network run: a taller window runs in strips of this many rows (plus
#: :data:`STRIP_OVERLAP` above and below), so the network's activations (~250 bytes per pixel)
#: stay ~70 MB whatever the window
STRIP_ROWS = 256
#: Rows of context each strip sees beyond its own rows: more than the network's reach (its
#: 3x3 convolutions at 1/2 and 1/4 resolution and the upsampling see ~20 px), a multiple of
#: :data:`MULTIPLE` so that every strip keeps the stride grid of the whole window
STRIP_OVERLAP = 32


def run_segmenter(
    session_run: object, bands: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Run the segmenter on one window: ``bands`` are the :data:`ROLES` planes (reflectance);
    ``session_run`` is a callable taking the feed dict and returning ``[prob, dist]``.
    Windows taller than :data:`STRIP_ROWS` run in overlapping strips (bounded memory; each
    strip keeps the rows that had full context)."""
    x = np.stack([np.asarray(b, np.float32) for b in bands])[None]
    np.nan_to_num(x, copy=False, nan=0.0, posinf=1.0, neginf=0.0)  # x is a fresh stack
    xp, h, w = pad_to_multiple(x)
    hp = xp.shape[2]
    if hp <= STRIP_ROWS + 2 * STRIP_OVERLAP:
        prob, dist = session_run({"bands": np.ascontiguousarray(xp)})[:2]  # type: ignore[operator]
        return prob[0, 0, :h, :w], dist[0, 0, :h, :w]
    prob_out = np.empty((hp, xp.shape[3]), np.float32)
    dist_out = np.empty_like(prob_out)
    for r0 in range(0, hp, STRIP_ROWS):
        r1 = min(hp, r0 + STRIP_ROWS)
        a0, a1 = max(0, r0 - STRIP_OVERLAP), min(hp, r1 + STRIP_OVERLAP)
        p, d = session_run({"bands": np.ascontiguousarray(xp[:, :, a0:a1])})[:2]  # type: ignore[operator]
        prob_out[r0:r1] = p[0, 0, r0 - a0 : r1 - a0]
        dist_out[r0:r1] = d[0, 0, r0 - a0 : r1 - a0]
    return prob_out[:h, :w], dist_out[:h, :w]


#: Cells of the network gate (:func:`gated_maps`), pixels.
CELL_PX = 32


def gated_maps(
    session_run: object,
    bands: Sequence[np.ndarray],
    valid: np.ndarray,
    ndwi_min: float,
    gate_ndwi: float,
    gate_nir_contrast: float,
    gate_cells: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The segmenter's (prob, dist) over a window, the network run only where a vessel can
    be.  ``bands`` are the :data:`ROLES` planes.

    A cell of :data:`CELL_PX` is busy when it holds water by a loose test (NDWI above
    ``gate_ndwi``: harbour water under haze has NDWI near -0.05) and something that is not
    water by the detector's test (NDWI at most ``ndwi_min``: a hull, a quay, a shore) or a
    pixel brighter in NIR than the cell's darkest water by ``gate_nir_contrast``.  Busy cells
    grow by ``gate_cells`` cells of context (moored hulls lie up to ~45 px from the nearest
    NDWI water in some harbours); the network runs on the bounding box of each group of busy
    cells.  Open water with nothing bright in it and land far from water stay at
    probability 0.  When most cells are busy the whole window runs."""
    run = session_run
    blue, green, red, nir, swir = (np.asarray(b, np.float32) for b in bands)
    h, w = nir.shape
    num = green - nir
    den = green + nir
    loose = (num > np.float32(gate_ndwi) * den) & valid
    strict = (num > np.float32(ndwi_min) * den) & valid
    c = CELL_PX
    ch, cw = -(-h // c), -(-w // c)
    ph, pw = ch * c - h, cw * c - w

    def cells(a: np.ndarray, fill: float) -> np.ndarray:
        a = np.pad(a, ((0, ph), (0, pw)), constant_values=fill) if ph or pw else a
        return a.reshape(ch, c, cw, c).swapaxes(1, 2).reshape(ch, cw, c * c)

    wat = cells(loose, False)
    other = cells(valid & ~strict, False)
    nr = cells(nir, 0.0)
    n_w = wat.sum(axis=2)
    dark = np.where(wat, nr, np.float32(np.inf)).min(axis=2)
    bright = (nr.max(axis=2) - dark) >= gate_nir_contrast
    busy = (n_w > 0) & ((other.sum(axis=2) > 0) | bright)
    zeros = (np.zeros((h, w), np.float32), np.zeros((h, w), np.float32))
    if not busy.any():
        return zeros
    k = 2 * gate_cells + 1
    busy = cv2.dilate(busy.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    planes = [blue, green, red, nir, swir]
    if busy.mean() > 0.6:
        return run_segmenter(run, planes)
    prob, dist = zeros
    n, _lab, stats, _ = cv2.connectedComponentsWithStats(busy.astype(np.uint8), connectivity=8)
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        r0, r1 = y * c, min(h, (y + bh) * c)
        c0, c1 = x * c, min(w, (x + bw) * c)
        p, d = run_segmenter(run, [b[r0:r1, c0:c1] for b in planes])
        prob[r0:r1, c0:c1] = np.maximum(prob[r0:r1, c0:c1], p)
        dist[r0:r1, c0:c1] = np.maximum(dist[r0:r1, c0:c1], d)
    return prob, dist


def group_vessels(
    prob: np.ndarray,
    dist: np.ndarray,
    prob_min: float = 0.5,
    core_min: float = 0.45,
    valid: np.ndarray | None = None,
) -> tuple[int, np.ndarray]:
    """Vessel instances from the segmenter's maps: (count, int32 labels, 0 = background).

    Seeds are the 4-connected cores (``dist >= core_min``) inside the mask (``prob >=
    prob_min``); a mask component without a core becomes one vessel of its own; every other
    mask pixel joins the nearest seed through the mask (8-neighbour steps)."""
    mask = prob >= prob_min
    if valid is not None:
        mask &= valid
    if not mask.any():
        return 0, np.zeros(prob.shape, np.int32)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    m = mask[r0:r1, c0:c1]
    core = m & (dist[r0:r1, c0:c1] >= core_min)
    n_core, seeds = cv2.connectedComponents(core.astype(np.uint8), connectivity=4)
    seeds = seeds.astype(np.int32)
    # mask components with no core at all are vessels too (seeded by themselves)
    n_all, comps = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    if n_all > 1:
        has_seed = np.zeros(n_all, bool)
        has_seed[comps[core]] = True
        orphan = (~has_seed[comps]) & m
        if orphan.any():
            remap = np.zeros(n_all, np.int32)
            ids = np.unique(comps[orphan])
            remap[ids] = np.arange(n_core, n_core + ids.size, dtype=np.int32)
            seeds[orphan] = remap[comps[orphan]]
            n_core += ids.size
    n = n_core - 1
    # geodesic growth of the seeds through the mask (hulls are a few pixels wide)
    lab = seeds
    todo = m & (lab == 0)
    for _ in range(64):
        if not todo.any():
            break
        grown = cv2.dilate(lab.astype(np.float32), _K3).astype(np.int32)
        take = todo & (grown > 0)
        if not take.any():
            break
        lab = np.where(take, grown, lab)
        todo &= ~take
    out = np.zeros(prob.shape, np.int32)
    out[r0:r1, c0:c1] = lab
    return n, out


@dataclass(frozen=True)
class Calibration:
    """Monotone map of a vessel's raw score (its highest pixel probability) to the reported
    score, fitted on the out-of-fold detections of the cross-validation (piecewise linear
    through ``raw`` -> ``score``).  0.5 falls at the raw score from which the cross-validated
    precision is at least the manifest's ``precision_target``."""

    raw: tuple[float, ...]
    score: tuple[float, ...]

    def __call__(self, raw: float | np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(raw, self.raw, self.score))

    @classmethod
    def from_manifest(cls, entry: Mapping[str, object] | None) -> Calibration:
        if not entry:
            return cls((0.0, 1.0), (0.0, 1.0))
        raw = tuple(float(v) for v in entry["raw"])  # type: ignore[attr-defined]
        score = tuple(float(v) for v in entry["score"])  # type: ignore[attr-defined]
        return cls(raw, score)


def pava(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing least-squares fit to ``y`` (in order)."""
    y = np.asarray(y, np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, np.float64)
    vals: list[float] = []
    wts: list[float] = []
    cnt: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        vals.append(yi)
        wts.append(wi)
        cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            c = cnt[-2] + cnt[-1]
            vals[-2:] = [v]
            wts[-2:] = [wsum]
            cnt[-2:] = [c]
    return np.repeat(np.asarray(vals), np.asarray(cnt))


def fit_calibration(
    raw: np.ndarray, correct: np.ndarray, precision_target: float = 0.85
) -> tuple[Calibration, float]:
    """Calibration from out-of-fold detections (raw score, true positive or not).

    The isotonic fit of correctness on the raw score gives a probability per detection; the
    raw threshold ``t`` is the lowest at which the detections at or above it reach
    ``precision_target``; the score is that probability rescaled piecewise so that ``t`` maps
    to 0.5 (monotone, so score >= 0.5 is exactly raw >= t).  Returns the calibration and t."""
    order = np.argsort(raw, kind="stable")
    x = np.asarray(raw, np.float64)[order]
    y = np.asarray(correct, np.float64)[order]
    if x.size == 0:
        return Calibration((0.0, 1.0), (0.0, 1.0)), 0.5
    iso = pava(y)
    # precision of everything at or above each position
    cum_tp = np.cumsum(y[::-1])[::-1]
    cum_n = np.arange(x.size, 0, -1)
    prec = cum_tp / cum_n
    ok = np.flatnonzero(prec >= precision_target)
    t = float(x[ok[0]]) if ok.size else float(x[-1]) + 1e-6
    # knots: unique raw values with their isotonic probability
    ux, idx = np.unique(x, return_index=True)
    last = np.r_[idx[1:] - 1, x.size - 1]
    p = iso[last]
    p_t = float(np.interp(t, ux, p))
    lo = max(p_t, 1e-6)
    below = ux < t
    s = np.where(
        below,
        np.minimum(0.5 * p / lo, 0.499),
        0.5 + 0.5 * (p - p_t) / max(1.0 - p_t, 1e-6),
    )
    s = np.maximum.accumulate(np.clip(s, 0.0, 1.0))
    if t > float(ux[-1]):  # the target is never reached: nothing scores 0.5
        kx, ks = np.r_[0.0, ux, 1.0], np.r_[0.0, np.minimum(s, 0.499), 0.499]
    else:
        kx = np.r_[0.0, ux[below], np.nextafter(t, -np.inf), ux[~below], 1.0]
        ks = np.r_[0.0, s[below], 0.499, np.maximum(s[~below], 0.5), max(float(s[-1]), 0.5)]
    keep = np.r_[True, np.diff(kx) > 0]
    kx, ks = kx[keep], np.maximum.accumulate(ks[keep])
    # only the ends of each plateau of the isotonic fit are needed
    same_prev = np.r_[False, ks[1:] == ks[:-1]]
    same_next = np.r_[ks[:-1] == ks[1:], False]
    keep = ~(same_prev & same_next)
    cal = Calibration(
        tuple(float(v) for v in kx[keep]),
        tuple(round(float(v), 4) for v in ks[keep]),
    )
    return cal, t


def instance_measures(
    labels: np.ndarray, n: int, prob: np.ndarray
) -> list[dict[str, np.ndarray | float]]:
    """Per instance 1..n: pixel rows, cols and the raw score (highest probability)."""
    out: list[dict[str, np.ndarray | float]] = []
    if n == 0:
        return out
    rr, cc = np.nonzero(labels)
    lab = labels[rr, cc]
    order = np.argsort(lab, kind="stable")
    rr, cc, lab = rr[order], cc[order], lab[order]
    bounds = np.searchsorted(lab, np.arange(1, n + 2))
    for i in range(n):
        a, b = bounds[i], bounds[i + 1]
        if a == b:
            continue
        r, c = rr[a:b], cc[a:b]
        out.append({"rows": r, "cols": c, "raw": float(prob[r, c].max())})
    return out


def ring_water_share(
    rows: np.ndarray, cols: np.ndarray, water: np.ndarray, others: np.ndarray | None = None
) -> float:
    """Share of water in the 3-pixel ring around a pixel set (``others``: pixels left out of
    the ring, e.g. other vessels)."""
    h, w = water.shape
    r0, r1 = max(0, int(rows.min()) - 3), min(h, int(rows.max()) + 4)
    c0, c1 = max(0, int(cols.min()) - 3), min(w, int(cols.max()) + 4)
    obj = np.zeros((r1 - r0, c1 - c0), np.uint8)
    obj[rows - r0, cols - c0] = 1
    ring = (cv2.dilate(obj, np.ones((7, 7), np.uint8)) > 0) & (obj == 0)
    if others is not None:
        ring &= ~others[r0:r1, c0:c1]
    if not ring.any():
        return 0.0
    return float(water[r0:r1, c0:c1][ring].mean())


def median_ndvi(rows: np.ndarray, cols: np.ndarray, red: np.ndarray, nir: np.ndarray) -> float:
    """Median NDVI of a segment's pixels.  A hull (steel, paint, deck cargo) is not green: the
    224 labelled sen2ships vessels have a median NDVI of at most 0.29 (median 0.05), while
    the forest and marsh along tidal creeks that the segmenter can take for moored hulls
    are well above that (``max_ndvi``, docs/ships.md)."""
    r = red[rows, cols].astype(np.float32)
    n = nir[rows, cols].astype(np.float32)
    return float(np.median((n - r) / np.maximum(n + r, np.float32(1e-4))))


#: Vessel-level features of the rescoring (:class:`Rescorer`), in this order.
RESCORE_FEATURES = (
    "logit_max_prob",
    "logit_mean_prob",
    "log_area_1000m2",
    "log_elongation",
    "max_dist",
    "ring_loose_water",
    "ring_ndwi",
    "ndwi",
    "nir_contrast",
    "swir_contrast",
    "blue_contrast",
)


def vessel_features(
    rows: np.ndarray,
    cols: np.ndarray,
    prob: np.ndarray,
    dist: np.ndarray,
    bands: Sequence[np.ndarray],
    others: np.ndarray,
    pixel_area_m2: float,
    gate_ndwi: float = -0.1,
) -> np.ndarray:
    """:data:`RESCORE_FEATURES` of one vessel (pixels ``rows``, ``cols`` of a window whose
    maps and :data:`ROLES` bands are given; ``others``: pixels of other vessels, left out of
    its 3-pixel ring)."""

    def logit(p: float) -> float:
        p = min(max(p, 1e-4), 1.0 - 1e-4)
        return math.log(p / (1.0 - p))

    blue, green, _red, nir, swir = bands
    h, w = prob.shape
    r0, r1 = max(0, int(rows.min()) - 3), min(h, int(rows.max()) + 4)
    c0, c1 = max(0, int(cols.min()) - 3), min(w, int(cols.max()) + 4)
    obj = np.zeros((r1 - r0, c1 - c0), np.uint8)
    obj[rows - r0, cols - c0] = 1
    ring = (cv2.dilate(obj, np.ones((7, 7), np.uint8)) > 0) & (obj == 0)
    ring &= ~others[r0:r1, c0:c1]
    g, n = green[r0:r1, c0:c1], nir[r0:r1, c0:c1]
    nd = (g - n) / (g + n + np.float32(1e-4))
    inside = obj > 0

    def contrast(b: np.ndarray) -> float:
        sub = b[r0:r1, c0:c1]
        return float(sub[inside].mean() - (sub[ring].mean() if ring.any() else sub[inside].mean()))

    if rows.size >= 2:
        ev = np.linalg.eigvalsh(np.cov(np.vstack([rows, cols]).astype(np.float64), bias=True))
        elong = math.sqrt(12.0 * max(float(ev[1]), 0.0) + 1.0) / math.sqrt(
            12.0 * max(float(ev[0]), 0.0) + 1.0
        )
    else:
        elong = 1.0
    p = prob[rows, cols]
    return np.array(
        [
            logit(float(p.max())),
            logit(float(p.mean())),
            math.log(max(rows.size * pixel_area_m2, 1.0) / 1000.0),
            math.log(elong),
            float(dist[rows, cols].max()),
            float((nd[ring] > gate_ndwi).mean()) if ring.any() else 0.0,
            float(nd[ring].mean()) if ring.any() else 0.0,
            float(nd[inside].mean()),
            contrast(nir),
            contrast(swir),
            contrast(blue),
        ],
        np.float64,
    )


@dataclass(frozen=True)
class Rescorer:
    """Logistic regression of "is a labelled vessel" on :data:`RESCORE_FEATURES`, fitted on
    out-of-fold vessels (``models/train_ship_segmenter.py``).  The default (no entry in the
    manifest) gives back the highest pixel probability."""

    coef: tuple[float, ...] = (1.0,) + (0.0,) * (len(RESCORE_FEATURES) - 1)
    intercept: float = 0.0

    def __call__(self, f: np.ndarray) -> float:
        z = float(np.dot(self.coef, f)) + self.intercept
        return 1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0)))

    @classmethod
    def from_manifest(cls, entry: Mapping[str, object] | None) -> Rescorer:
        if not entry:
            return cls()
        coef = tuple(float(v) for v in entry["coef"])  # type: ignore[attr-defined]
        return cls(coef, float(entry["intercept"]))  # type: ignore[arg-type]

    def to_manifest(self) -> dict[str, object]:
        return {
            "features": list(RESCORE_FEATURES),
            "coef": [round(v, 6) for v in self.coef],
            "intercept": round(self.intercept, 6),
        }


def fit_rescorer(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> Rescorer:
    """L2-regularised logistic regression (features standardised for the penalty, the
    coefficients given back on the raw features) by Newton's method."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape[0] < 5 or y.min() == y.max():
        return Rescorer()
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    a = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(a.shape[1])
    reg = np.eye(a.shape[1]) * l2
    reg[-1, -1] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
        g = a.T @ (p - y) + reg @ w
        h = (a * (p * (1 - p))[:, None]).T @ a + reg
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    coef = w[:-1] / sd
    return Rescorer(tuple(float(v) for v in coef), float(w[-1] - np.dot(coef, mu)))
