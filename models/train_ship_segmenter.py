"""Train the ship detector's vessel segmenter (a small U-Net-like FCN) on the sen2ships ports.

    PYTHONPATH=. python models/train_ship_segmenter.py --cv --final

CPU only, fixed seed, deterministic (``torch.use_deterministic_algorithms``; one torch thread
per model: on the shared 2-core machine two threads were ~10x slower).  The 9 models train
``--jobs`` (default 2) at a time in worker processes; a model depends only on its ports, the
steps and the seed, so the result does not depend on ``--jobs``.  About 19 minutes on 2
cores.  Needs the ``train`` extra (PyTorch) and the labelled ports in
``../shared/data/sen2ships``.

- ``--cv``: leave-one-port-out over the 8 ports.  For each port a model is trained on the
  other 7 and written to ``models/ship_folds/ship_segmenter_without_<port>.onnx`` (so the
  benchmark can measure true leave-one-port-out through the real pipeline without
  retraining); it is then run on the held-out port, its pixels are grouped into vessels exactly
  as the detector does (:mod:`pipeline.detectors.vessel_segmentation`) and the vessels are
  matched to the labels (centroid within 30 m of a vessel box, closest first).  The
  out-of-fold vessels fit the vessel rescoring (logistic regression on
  ``RESCORE_FEATURES``, nested: each port scored by a fit on the other 7) and the score
  calibration (isotonic, rescaled so that score >= 0.5 is where the pooled cross-validated
  precision reaches 0.85); the default ``min_score`` is the best pooled out-of-fold F1.
  Figures, calibration and every out-of-fold vessel go to ``models/ship_segmenter_cv.json``.
- ``--evaluate-only`` (with ``--cv`` / ``--final``): no training; re-evaluate the fold models
  on disk and refresh the calibration and figures in the manifest.
- ``--final``: a model trained on all 8 ports, written as ``models/ship_segmenter.onnx`` with
  its golden copy and its manifest entry (sha256, version, training ports, git sha, the
  cross-validation figures and the calibration from ``--cv``).

The network (~21 k parameters, ~87 kB): the 5 bands (reflectance) and NDWI computed inside
the graph -> a stride-2 3x3 stage (16 channels) and a 3x3 at 1/2, a stride-2 stage and a 3x3
at 1/4 (32 channels), nearest-neighbour upsampling with a skip connection and a 3x3 at 1/2,
bilinear upsampling to full resolution, concatenated with the input, and a per-pixel (1x1)
head with two outputs: ``prob`` (vessel probability) and ``dist`` (distance to the edge of
the pixel's own hull divided by the hull's largest such distance), which separates touching
hulls.

Augmentation: flips and 90-degree rotations; ground-sampling jitter (each patch is resampled
so that its pixels are 6-10 m on the ground, the ports being 5.8-9.3 m); per-band gain and
offset jitter; copy-paste of labelled vessels from the training ports into open water and
along quays.  Patches: 48 x 48 px, a third centred near vessels, a third on the shore line
and a third anywhere; from 40 % of the steps on (and again at 70 %), a quarter of the patches
are centred on the network's own false positives on its training ports (hard-negative
mining: blobs with probability >= 0.5 that touch no labelled vessel, at most 400 per port).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from model_io import torch_to_onnx, update_manifest, write_model  # noqa: E402

from pipeline.detectors.vessel_segmentation import (  # noqa: E402
    Rescorer,
    fit_calibration,
    fit_rescorer,
    gated_maps,
    group_vessels,
    instance_measures,
    median_ndvi,
    pad_to_multiple,
    ring_water_share,
    vessel_features,
)

log = logging.getLogger("train_ship_segmenter")

NAME = "ship_segmenter"
VERSION = "1.0.0"
SEED = 16
PORTS = ("algiers", "athens", "busan", "casablanca", "durban", "gdynia", "honolulu", "valencia")
BANDS = ("B02", "B03", "B04", "B08", "B11")
PATCH = 48
BATCH = 24
LR = 4e-3
#: weight of vessel pixels in the loss (they are ~1 % of the pixels)
POS_WEIGHT = 3.0
#: training steps per model (8 folds + the final model: ~19 minutes on 2 cores, --jobs 2)
STEPS = 3000
GSD_RANGE = (6.0, 10.0)
NDWI_MIN = 0.05  # the detector's water test (pipeline/detectors/ships.py)
TOLERANCE_M = 30.0
PROB_MIN = 0.5
CORE_MIN = 0.45
MIN_LENGTH_M = 35.0
#: the detector's vegetation test (pipeline/detectors/ships.py; median_ndvi)
MAX_NDVI = 0.35
GATE_NDWI = -0.1
GATE_NIR = 0.02
GATE_CELLS = 2
PRECISION_TARGET = 0.85
FOLD_DIR = HERE / "ship_folds"
#: share of patches centred on mined false positives once mining has started
HARD_SHARE = 0.25
#: mining rounds, as fractions of the training steps (empty: no mining)
MINE_AT = (0.4, 0.7)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Port:
    name: str
    x: np.ndarray  # float32 5 x H x W reflectance
    inst: np.ndarray  # int32 H x W (0 background)
    dist: np.ndarray  # float32 H x W normalised distance inside each hull
    gsd: float  # ground metres per pixel
    vessels: list[dict[str, Any]]
    water: np.ndarray  # bool
    shore: np.ndarray  # int64 N x 2 (row, col) of shore pixels
    centres: np.ndarray  # int64 N x 2 vessel centres
    hard: np.ndarray | None = None  # int64 N x 2 centres of mined false positives


def instance_distance(inst: np.ndarray) -> np.ndarray:
    """Per hull: distance to the nearest pixel outside the hull (other hulls count as
    outside), divided by the hull's largest distance."""
    out = np.zeros(inst.shape, np.float32)
    for i in np.unique(inst):
        if i == 0:
            continue
        rr, cc = np.nonzero(inst == i)
        r0, r1, c0, c1 = rr.min() - 1, rr.max() + 2, cc.min() - 1, cc.max() + 2
        r0, c0 = max(r0, 0), max(c0, 0)
        sub = np.pad((inst[r0:r1, c0:c1] == i).astype(np.uint8), 1)
        d = cv2.distanceTransform(sub, cv2.DIST_L2, 3)[1:-1, 1:-1]
        m = sub[1:-1, 1:-1] > 0
        d = d / max(float(d[m].max()), 1e-6)
        out[r0:r1, c0:c1][m] = d[m]
    return out


def water_of(x: np.ndarray) -> np.ndarray:
    g, n = x[1], x[3]
    return (g - n) > NDWI_MIN * (g + n)


def load_port(root: Path, name: str) -> Port:
    import rasterio

    d = root / name
    x = []
    for b in BANDS:
        with rasterio.open(d / f"{b}.tif") as f:
            x.append(f.read(1).astype(np.float32) / 65535.0)
    with rasterio.open(d / "vessel_instances.tif") as f:
        inst = f.read(1).astype(np.int32)
    labels = json.loads((d / "labels.json").read_text())
    xs = np.stack(x)
    water = water_of(xs)
    nonwater = (~water).astype(np.uint8)
    near = cv2.dilate(water.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    shore = np.argwhere((nonwater > 0) & near)
    centres = np.asarray(
        [
            [int(v["centroid_px_colrow"][1]), int(v["centroid_px_colrow"][0])]
            for v in labels["vessels"]
        ]
    )
    return Port(
        name,
        xs,
        inst,
        instance_distance(inst),
        float(labels["image"]["approx_ground_sampling_m"]),
        labels["vessels"],
        water,
        shore,
        centres,
    )


@dataclass
class Chip:
    x: np.ndarray  # 5 x h x w
    m: np.ndarray  # bool h x w
    d: np.ndarray  # float h x w
    gsd: float


def vessel_chips(p: Port) -> list[Chip]:
    out = []
    for i in np.unique(p.inst):
        if i == 0:
            continue
        rr, cc = np.nonzero(p.inst == i)
        r0, r1, c0, c1 = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1
        m = p.inst[r0:r1, c0:c1] == i
        out.append(Chip(p.x[:, r0:r1, c0:c1].copy(), m, p.dist[r0:r1, c0:c1].copy(), p.gsd))
    return out


# --------------------------------------------------------------------------------------------
# Patches and augmentation
# --------------------------------------------------------------------------------------------


def _resize(a: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    return cv2.resize(a, (size[1], size[0]), interpolation=interp)


def make_patch(
    p: Port, chips: list[Chip], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented patch: (5 x P x P input, P x P vessel target, P x P distance target)."""
    gsd_t = rng.uniform(*GSD_RANGE)
    src = max(8, int(round(PATCH * gsd_t / p.gsd)))
    _, h, w = p.x.shape
    # where the patch is centred: near a vessel, on the shore, on a mined false positive
    # of the network being trained (once mining has started), or anywhere
    kind = rng.random()
    hard = p.hard if p.hard is not None and len(p.hard) else None
    if hard is not None and kind < HARD_SHARE:
        cy, cx = hard[int(rng.integers(len(hard)))]
        cy += int(rng.integers(-src // 4, src // 4 + 1))
        cx += int(rng.integers(-src // 4, src // 4 + 1))
    else:
        if hard is not None:
            kind = (kind - HARD_SHARE) / (1.0 - HARD_SHARE)
        if kind < 0.34 and len(p.centres):
            cy, cx = p.centres[int(rng.integers(len(p.centres)))]
            cy += int(rng.integers(-src // 3, src // 3 + 1))
            cx += int(rng.integers(-src // 3, src // 3 + 1))
        elif kind < 0.67 and len(p.shore):
            cy, cx = p.shore[int(rng.integers(len(p.shore)))]
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0 = int(np.clip(cy - src // 2, 0, max(h - src, 0)))
    x0 = int(np.clip(cx - src // 2, 0, max(w - src, 0)))
    xs = p.x[:, y0 : y0 + src, x0 : x0 + src]
    ins = p.inst[y0 : y0 + src, x0 : x0 + src]
    ds = p.dist[y0 : y0 + src, x0 : x0 + src]
    if xs.shape[1] < src or xs.shape[2] < src:  # small port: pad by reflection
        ph, pw = src - xs.shape[1], src - xs.shape[2]
        xs = np.pad(xs, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        ins = np.pad(ins, ((0, ph), (0, pw)), mode="reflect")
        ds = np.pad(ds, ((0, ph), (0, pw)), mode="reflect")
    size = (PATCH, PATCH)
    shrink = cv2.INTER_AREA if src > PATCH else cv2.INTER_LINEAR
    x = np.stack([_resize(b, size, shrink) for b in xs])
    inst = _resize(ins.astype(np.float32), size, cv2.INTER_NEAREST).astype(np.int32)
    dist = _resize(ds, size, cv2.INTER_LINEAR)
    vessel = (inst > 0).astype(np.float32)
    dist = dist * vessel
    # copy-paste of labelled vessels into water and along quays
    if chips and rng.random() < 0.6:
        water = water_of(x)
        for _ in range(int(rng.integers(1, 4))):
            c = chips[int(rng.integers(len(chips)))]
            f = c.gsd / gsd_t
            ch = max(1, int(round(c.m.shape[0] * f)))
            cw = max(1, int(round(c.m.shape[1] * f)))
            cx_ = np.stack([_resize(b, (ch, cw), cv2.INTER_LINEAR) for b in c.x])
            cm = _resize(c.m.astype(np.float32), (ch, cw), cv2.INTER_NEAREST) > 0.5
            cd = _resize(c.d, (ch, cw), cv2.INTER_LINEAR) * cm
            k = int(rng.integers(4))
            cx_, cm, cd = np.rot90(cx_, k, (1, 2)), np.rot90(cm, k), np.rot90(cd, k)
            if rng.random() < 0.5:
                cx_, cm, cd = cx_[:, :, ::-1], cm[:, ::-1], cd[:, ::-1]
            ch, cw = cm.shape
            if ch >= PATCH - 2 or cw >= PATCH - 2 or not cm.any():
                continue
            # a water pixel (open water or next to a quay) as the chip's top-left
            cand = np.argwhere(water[: PATCH - ch, : PATCH - cw])
            if len(cand) == 0:
                continue
            ty, tx = cand[int(rng.integers(len(cand)))]
            reg = (slice(ty, ty + ch), slice(tx, tx + cw))
            if vessel[reg][cm].any():
                continue
            x[(slice(None), *reg)][:, cm] = cx_[:, cm]
            vessel[reg][cm] = 1.0
            dist[reg][cm] = cd[cm]
    # flips and 90-degree rotations
    k = int(rng.integers(4))
    x, vessel, dist = np.rot90(x, k, (1, 2)), np.rot90(vessel, k), np.rot90(dist, k)
    if rng.random() < 0.5:
        x, vessel, dist = x[:, :, ::-1], vessel[:, ::-1], dist[:, ::-1]
    # per-band gain and offset (atmosphere, L1C vs L2A)
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.92, 1.08, size=(5, 1, 1))
    off = rng.uniform(-0.01, 0.015, size=(5, 1, 1))
    x = np.clip(x * gain + off, 0.0, 1.0)
    return (
        np.ascontiguousarray(x, np.float32),
        np.ascontiguousarray(vessel, np.float32),
        np.ascontiguousarray(dist, np.float32),
    )


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def build_net() -> Any:
    import torch
    from torch import nn

    def cbr(i: int, o: int, s: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()
        )

    class SegNet(nn.Module):
        """bands (reflectance) -> (prob, dist), same height and width."""

        def __init__(self) -> None:
            super().__init__()
            self.down1 = cbr(6, 16, 2)  # 1/2
            self.c1 = cbr(16, 16)
            self.down2 = cbr(16, 32, 2)  # 1/4
            self.mid = cbr(32, 32)
            self.lat2 = nn.Conv2d(32, 16, 1)
            self.up1 = cbr(16, 16)  # 1/2
            # full resolution: the input pixels and the upsampled context, per pixel (1x1)
            self.head = nn.Sequential(nn.Conv2d(16 + 6, 16, 1), nn.ReLU(), nn.Conv2d(16, 2, 1))

        def logits(self, bands: torch.Tensor) -> torch.Tensor:
            g, n = bands[:, 1:2], bands[:, 3:4]
            ndwi = (g - n) / (g + n + 1e-3)
            x = torch.cat([bands * 8.0, ndwi], dim=1)
            s1 = self.c1(self.down1(x))
            s2 = self.mid(self.down2(s1))
            u1 = self.up1(s1 + nn.functional.interpolate(self.lat2(s2), scale_factor=2.0))
            up = nn.functional.interpolate(u1, scale_factor=2.0, mode="bilinear")
            return self.head(torch.cat([x, up], dim=1))

        def forward(self, bands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = torch.sigmoid(self.logits(bands))
            return z[:, 0:1], z[:, 1:2]

    return SegNet


def mine_false_positives(net: Any, p: Port, limit: int = 400) -> np.ndarray:
    """Centres of the blobs the network being trained calls vessel (prob >= PROB_MIN) that
    touch no labelled vessel (grown by 3 px): the patches worth showing it again (at most
    ``limit``, evenly spread over the list when there are more)."""
    import torch

    # padded to a multiple of 8 (the network needs 4; 8 is what the committed models saw)
    x, h, w = pad_to_multiple(p.x, 8)
    net.eval()
    with torch.no_grad():
        prob = torch.sigmoid(net.logits(torch.from_numpy(x[None]))[0, 0]).numpy()[:h, :w]
    net.train()
    near = cv2.dilate((p.inst > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    n, lab, stats, cent = cv2.connectedComponentsWithStats(
        (prob >= PROB_MIN).astype(np.uint8), connectivity=8
    )
    if n <= 1:
        return np.zeros((0, 2), np.int64)
    touches = np.zeros(n, bool)
    touches[np.unique(lab[near])] = True
    keep = [i for i in range(1, n) if not touches[i] and stats[i, cv2.CC_STAT_AREA] >= 3]
    if not keep:
        return np.zeros((0, 2), np.int64)
    if len(keep) > limit:
        keep = [keep[int(i)] for i in np.linspace(0, len(keep) - 1, limit)]
    return np.asarray([[int(cent[i][1]), int(cent[i][0])] for i in keep], np.int64)


def train(ports: list[Port], steps: int, seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    chips = [c for p in ports for c in vessel_chips(p)]
    net = build_net()()
    mine_steps = {int(f * steps) for f in MINE_AT}
    for p in ports:
        p.hard = None
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR, total_steps=max(steps, 1), pct_start=0.15
    )
    # ports weighted by the square root of their vessel count (small ports still seen)
    wts = np.sqrt(np.asarray([len(p.vessels) for p in ports], np.float64))
    wts /= wts.sum()
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(POS_WEIGHT))
    net.train()
    losses: list[float] = []
    for step in range(steps):
        if step in mine_steps:
            for p in ports:
                p.hard = mine_false_positives(net, p)
            log.info(
                "  step %d: mined %d false positives",
                step,
                sum(len(p.hard) for p in ports if p.hard is not None),
            )
        xs, vs, ds = [], [], []
        for _ in range(BATCH):
            p = ports[int(rng.choice(len(ports), p=wts))]
            x, v, d = make_patch(p, chips, rng)
            xs.append(x)
            vs.append(v)
            ds.append(d)
        xb = torch.from_numpy(np.stack(xs))
        vb = torch.from_numpy(np.stack(vs))[:, None]
        db = torch.from_numpy(np.stack(ds))[:, None]
        z = net.logits(xb)
        loss_v = bce(z[:, 0:1], vb)
        # distance head: only inside hulls (elsewhere the grouping never reads it)
        dl = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 1:2], db, reduction="none")
        loss_d = (dl * vb).sum() / vb.sum().clamp(min=1.0)
        loss = loss_v + 0.5 * loss_d
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 200 == 0 or step == steps - 1:
            log.info("  step %d/%d loss %.4f", step, steps, float(np.mean(losses[-100:])))
    net.eval()
    return net


def export_onnx(net: Any, doc: str) -> bytes:
    import torch

    return torch_to_onnx(
        net,
        (torch.zeros(1, 5, 64, 64),),
        ["bands"],
        ["prob", "dist"],
        {
            "bands": {0: "n", 2: "h", 3: "w"},
            "prob": {0: "n", 2: "h", 3: "w"},
            "dist": {0: "n", 2: "h", 3: "w"},
        },
        "eotriage/models/train_ship_segmenter.py",
        VERSION,
        doc,
    )


# --------------------------------------------------------------------------------------------
# Evaluation (the detector's grouping, the benchmark's matching)
# --------------------------------------------------------------------------------------------


def _session(blob: bytes) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])


def detect_port(sess: Any, p: Port) -> list[dict[str, Any]]:
    """Vessels on a whole port image: pixels, centroid, raw score, length, setting."""
    # the detector's network gate (pipeline/detectors/ships.py defaults), then its grouping
    valid = np.ones(p.water.shape, bool)
    prob, dist = gated_maps(
        lambda f: sess.run(None, f), list(p.x), valid, NDWI_MIN, GATE_NDWI, GATE_NIR, GATE_CELLS
    )
    n, lab = group_vessels(prob, dist, PROB_MIN, CORE_MIN)
    occupied = lab > 0
    out = []
    for m in instance_measures(lab, n, prob):
        r, c = m["rows"], m["cols"]
        assert isinstance(r, np.ndarray) and isinstance(c, np.ndarray)
        if r.size >= 2:
            ev = np.linalg.eigvalsh(np.cov(np.vstack([r, c]).astype(np.float64), bias=True))
            length = math.sqrt(12.0 * max(float(ev[1]), 0.0) + 1.0)
        else:
            length = 1.0
        if length * p.gsd < MIN_LENGTH_M:
            continue
        if median_ndvi(r, c, p.x[2], p.x[3]) > MAX_NDVI:
            continue
        share = ring_water_share(r, c, p.water, occupied)
        feat = vessel_features(r, c, prob, dist, list(p.x), occupied, p.gsd**2, GATE_NDWI)
        out.append(
            {
                "row": float(r.mean()) + 0.5,
                "col": float(c.mean()) + 0.5,
                "max_prob": float(m["raw"]),
                "feat": [round(float(v), 6) for v in feat],
                "raw": float(m["raw"]),
                "setting": "at_sea" if share >= 0.9 else "moored",
            }
        )
    return out


def vessel_setting(p: Port) -> dict[int, str]:
    out = {}
    for v in p.vessels:
        i = int(v["instance_id"])
        rr, cc = np.nonzero(p.inst == i)
        if rr.size == 0:
            out[i] = "moored"
            continue
        others = (p.inst > 0) & (p.inst != i)
        share = ring_water_share(rr, cc, p.water, others)
        out[i] = "at_sea" if share >= 0.9 else "moored"
    return out


def match(p: Port, dets: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Greedy one-to-one matching: a detection centroid within TOLERANCE_M of a vessel box,
    closest centroids first.  Returns the matched (detection index, vessel id) pairs."""
    pairs = []
    for i, d in enumerate(dets):
        for v in p.vessels:
            c0, r0, c1, r1 = v["bbox_px_xyxy"]
            dx = max(c0 - d["col"], 0.0, d["col"] - c1)
            dy = max(r0 - d["row"], 0.0, d["row"] - r1)
            if math.hypot(dx, dy) * p.gsd <= TOLERANCE_M:
                vc, vr = v["centroid_px_colrow"]
                cd = math.hypot(vc - d["col"], vr - d["row"]) * p.gsd
                pairs.append((cd, i, int(v["instance_id"])))
    pairs.sort()
    used_d: set[int] = set()
    used_v: set[int] = set()
    out = []
    for _, i, j in pairs:
        if i in used_d or j in used_v:
            continue
        used_d.add(i)
        used_v.add(j)
        out.append((i, j))
    return out


def figures(rows: list[dict[str, Any]], min_raw: float | None) -> dict[str, Any]:
    """P/R/F1 per port and pooled, recall at sea and moored, for detections with raw score at
    least ``min_raw`` (None: all)."""
    per: dict[str, Any] = {}
    tot = {"tp": 0, "fp": 0, "fn": 0}
    split = {"at_sea": [0, 0], "moored": [0, 0]}
    for r in rows:
        keep = [
            (d, ok)
            for d, ok in zip(r["dets"], r["tp"], strict=True)
            if min_raw is None or d["raw"] >= min_raw
        ]
        found = {v for d, ok in keep if ok for v in [d.get("vessel")] if v is not None}
        tp = sum(ok for _, ok in keep)
        fp = len(keep) - tp
        fn = r["labels"] - tp
        for vid, where in r["where"].items():
            split[where][0] += 1
            split[where][1] += int(int(vid) in found)
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / r["labels"] if r["labels"] else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        per[r["port"]] = {
            "labels": r["labels"],
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": round(pr, 3),
            "recall": round(rc, 3),
            "f1": round(f1, 3),
        }
        tot["tp"] += tp
        tot["fp"] += fp
        tot["fn"] += fn
    tp, fp, fn = tot["tp"], tot["fp"], tot["fn"]
    return {
        "per_port": per,
        "pooled": {
            **tot,
            "precision": round(tp / (tp + fp), 3) if tp + fp else 0.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 0.0,
            "f1": round(2 * tp / (2 * tp + fp + fn), 3) if tp + fp + fn else 0.0,
        },
        "recall_at_sea": round(split["at_sea"][1] / max(split["at_sea"][0], 1), 3),
        "recall_moored": round(split["moored"][1] / max(split["moored"][0], 1), 3),
        "vessels_by_setting": {k: v[0] for k, v in split.items()},
    }


def evaluate_fold(blob: bytes, p: Port) -> dict[str, Any]:
    sess = _session(blob)
    dets = detect_port(sess, p)
    pairs = match(p, dets)
    # each matched detection remembers its vessel (for the at-sea / moored recall)
    for i, j in pairs:
        dets[i]["vessel"] = j
    matched = {i for i, _ in pairs}
    return {
        "port": p.name,
        "labels": len(p.vessels),
        "dets": dets,
        "tp": [i in matched for i in range(len(dets))],
        "where": {str(k): v for k, v in vessel_setting(p).items()},
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


#: the name :func:`train_models` knows the model trained on every port by
FINAL = "final"


def _train_one(held: str, data: Path, steps: int, seed: int) -> tuple[str, bytes, float]:
    """Worker: one model, trained without port ``held`` (or on all ports: :data:`FINAL`)."""
    _setup_torch()
    import multiprocessing as mp

    if mp.parent_process() is not None:  # a worker: its log lines name the model
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("rasterio").setLevel(logging.WARNING)  # GDAL's notes on the CRS
        for h in logging.getLogger().handlers:
            h.setFormatter(logging.Formatter(f"%(asctime)s [{held}] %(message)s"))
    t0 = time.time()
    ports = [load_port(data, n) for n in PORTS if n != held]
    net = train(ports, steps, seed)
    doc = (
        "eotriage vessel segmenter (sen2ships, 8 ports)"
        if held == FINAL
        else f"eotriage vessel segmenter, fold without {held}"
    )
    return held, export_onnx(net, doc), time.time() - t0


def train_models(
    names: list[str], data: Path, steps: int, seed: int, jobs: int
) -> tuple[dict[str, bytes], dict[str, float]]:
    """The models for ``names`` (held-out ports, or :data:`FINAL`), ``jobs`` at a time in
    worker processes, and the seconds each took.  Each model depends only on its ports,
    steps and seed."""
    blobs: dict[str, bytes] = {}
    secs: dict[str, float] = {}

    def done(held: str, blob: bytes, seconds: float) -> None:
        blobs[held], secs[held] = blob, seconds
        log.info("trained %s in %.0f s (%d of %d)", held, seconds, len(blobs), len(names))

    if jobs <= 1:
        for n in names:
            done(*_train_one(n, data, steps, seed))
        return blobs, secs
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_train_one, n, data, steps, seed) for n in names]
        for f in as_completed(futs):
            done(*f.result())
    return blobs, secs


def _git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _setup_torch() -> None:
    import torch

    # one thread: on the shared 2-core machine two threads were ~10x slower (spinning)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def common_entry(calibration: dict[str, Any], min_score: float = 0.5) -> dict[str, Any]:
    """The manifest fields shared by the final model and the fold models."""
    return {
        "version": VERSION,
        "kind": "learned: small U-Net-like FCN, vessel probability + hull distance map "
        "(PyTorch -> ONNX)",
        "built_by": "models/train_ship_segmenter.py (PYTHONPATH=. python "
        "models/train_ship_segmenter.py --cv --final)",
        "inputs": {
            "bands": "float32 N x 5 x H x W reflectance: blue green red nir swir16 "
            "(Sentinel-2 B02 B03 B04 B08 B11); H, W multiples of 4",
        },
        "outputs": {
            "prob": "float32 N x 1 x H x W vessel probability",
            "dist": "float32 N x 1 x H x W distance to the edge of the pixel's own hull / "
            "the hull's largest (separates touching hulls)",
        },
        "bands": ["blue", "green", "red", "nir", "swir16"],
        "resolution_m": "6-10 m (trained with ground-sampling jitter)",
        "multiple": 4,
        "thresholds": {
            "prob_min": PROB_MIN,
            "core_min": CORE_MIN,
            "min_score": min_score,
            "ndwi_min": NDWI_MIN,
            "gate_ndwi": GATE_NDWI,
            "gate_nir_contrast": GATE_NIR,
            "gate_cells": float(GATE_CELLS),
            "min_length_m": MIN_LENGTH_M,
            "max_length_m": 400.0,
            "max_ndvi": MAX_NDVI,
        },
        "calibration": calibration,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "sen2ships")
    ap.add_argument("--cv", action="store_true", help="leave-one-port-out folds + calibration")
    ap.add_argument("--final", action="store_true", help="the model on all ports + manifest")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="models trained at once, one process and one torch thread each (results do not "
        "depend on it)",
    )
    ap.add_argument("--folds", nargs="*", default=list(PORTS), help="held-out ports (--cv)")
    ap.add_argument(
        "--evaluate-only",
        action="store_true",
        help="no training: re-evaluate the fold models on disk (--cv) and refresh the final "
        "model's calibration and figures in the manifest (--final)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("rasterio").setLevel(logging.WARNING)  # GDAL's notes on the CRS
    try:
        _setup_torch()
    except ImportError:
        ap.error("needs PyTorch: the train extra (pip install -e '.[train]')")
    t0 = time.time()
    missing = [n for n in PORTS if not (args.data / n / "labels.json").is_file()]
    if missing:
        ap.error(f"{args.data}: no labelled port {', '.join(missing)} (sen2ships, see --data)")
    ports = [load_port(args.data, n) for n in PORTS]
    log.info("loaded %d ports in %.0f s", len(ports), time.time() - t0)
    cv_path = args.out_dir / f"{NAME}_cv.json"
    fold_dir = args.out_dir / "ship_folds"
    blobs: dict[str, bytes] = {}
    secs: dict[str, float] = {}
    if args.cv:
        fold_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        folds = {}
        if args.evaluate_only:
            blobs = {h: (fold_dir / f"{NAME}_without_{h}.onnx").read_bytes() for h in args.folds}
        else:
            todo = list(args.folds) + ([FINAL] if args.final else [])
            blobs, secs = train_models(todo, args.data, args.steps, args.seed, args.jobs)
        for held in args.folds:
            ts = time.time()
            train_ports = [p for p in ports if p.name != held]
            path = fold_dir / f"{NAME}_without_{held}.onnx"
            blob = blobs[held]
            if not args.evaluate_only:
                path.write_bytes(blob)
                golden = args.out_dir / "golden" / "ship_folds"
                golden.mkdir(parents=True, exist_ok=True)
                (golden / path.name).write_bytes(blob)
            row = evaluate_fold(blob, next(p for p in ports if p.name == held))
            rows.append(row)
            folds[held] = {
                "file": f"ship_folds/{path.name}",
                "sha256": hashlib.sha256(blob).hexdigest(),
                "training_ports": [p.name for p in train_ports],
            }
            log.info(
                "fold %s: %d detections, %d labels, evaluated in %.0f s",
                held,
                len(row["dets"]),
                row["labels"],
                time.time() - ts,
            )
        # rescoring of vessels (logistic regression on RESCORE_FEATURES), nested: each port's
        # vessels are scored by a rescorer fitted on the other 7 ports' out-of-fold vessels
        rescorers: dict[str, Rescorer] = {}
        for r in rows:
            xs = [d["feat"] for o in rows if o is not r for d in o["dets"]]
            ys = [t for o in rows if o is not r for t in o["tp"]]
            rescorers[r["port"]] = fit_rescorer(np.asarray(xs), np.asarray(ys, float))
            for d in r["dets"]:
                d["raw"] = rescorers[r["port"]](np.asarray(d["feat"]))
        all_x = np.asarray([d["feat"] for r in rows for d in r["dets"]])
        all_y = np.asarray([t for r in rows for t in r["tp"]], float)
        rescore_all = fit_rescorer(all_x, all_y)
        # for comparison: the highest pixel probability alone as the score
        mp = np.asarray([d["max_prob"] for r in rows for d in r["dets"]])
        cal_mp, t_mp = fit_calibration(mp, all_y, PRECISION_TARGET)
        rescored = [[d["raw"] for d in r["dets"]] for r in rows]
        for r in rows:
            for d in r["dets"]:
                d["raw"] = d["max_prob"]
        figures_max_only = figures(rows, t_mp)
        for r, scores in zip(rows, rescored, strict=True):
            for d, v in zip(r["dets"], scores, strict=True):
                d["raw"] = v
        raw = np.asarray([d["raw"] for r in rows for d in r["dets"]])
        ok = np.asarray([t for r in rows for t in r["tp"]], np.float64)
        cal, t = fit_calibration(raw, ok, PRECISION_TARGET)
        # the default operating point: the raw threshold of the best pooled out-of-fold F1
        # (vessels scored between it and 0.5 are reported, with their calibrated score)
        order = np.argsort(-raw, kind="stable")
        n_lab = sum(r["labels"] for r in rows)
        cum = np.cumsum(ok[order])
        f1 = 2 * cum / (np.arange(1, raw.size + 1) + n_lab)
        t_f1 = float(raw[order][int(np.argmax(f1))]) if raw.size else t
        min_score = min(0.5, math.floor(float(cal(t_f1)) * 1e4) / 1e4)
        t_default = min(t, t_f1)
        report = {
            "seed": args.seed,
            "steps": args.steps,
            "patch": PATCH,
            "batch": BATCH,
            "grouping": {"prob_min": PROB_MIN, "core_min": CORE_MIN},
            "gate": {
                "ndwi_min": NDWI_MIN,
                "gate_ndwi": GATE_NDWI,
                "gate_nir_contrast": GATE_NIR,
                "gate_cells": GATE_CELLS,
            },
            "min_length_m": MIN_LENGTH_M,
            "tolerance_m": TOLERANCE_M,
            "calibration": {
                "raw": list(cal.raw),
                "score": list(cal.score),
                "raw_threshold": round(t, 4),
                "precision_target": PRECISION_TARGET,
                "fitted_on": "out-of-fold vessels of the leave-one-port-out folds",
            },
            "rescore": rescore_all.to_manifest(),
            "rescore_by_fold": {k: v.to_manifest() for k, v in rescorers.items()},
            "figures_max_prob_only": figures_max_only,
            "figures_all": figures(rows, None),
            "figures_score_ge_0_5": figures(rows, t),
            "default_min_score": min_score,
            "figures_default": figures(rows, t_default),
            "folds": folds,
            "out_of_fold_vessels": [
                {
                    "port": r["port"],
                    "raw": round(d["raw"], 5),
                    "max_prob": round(d["max_prob"], 5),
                    "feat": d["feat"],
                    "tp": bool(ok),
                    "setting": d["setting"],
                }
                for r in rows
                for d, ok in zip(r["dets"], r["tp"], strict=True)
            ],
            "git_sha": _git_sha(),
            "seconds": round(time.time() - t0, 1),
        }
        cv_path.write_text(json.dumps(report, indent=2) + "\n")
        for held, f in folds.items():
            update_manifest(
                args.out_dir,
                f"{NAME}_without_{held}",
                {
                    **common_entry(report["calibration"], report["default_min_score"]),
                    "rescore": report["rescore_by_fold"][held],
                    "file": f["file"],
                    "training": {
                        "ports": f["training_ports"],
                        "seed": args.seed,
                        "steps": args.steps,
                        "git_sha": report["git_sha"],
                    },
                    "held_out_port": held,
                    "sha256": f["sha256"],
                },
            )
        log.info("CV (score >= 0.5): %s", json.dumps(report["figures_score_ge_0_5"]["pooled"]))
        log.info(
            "CV (default, score >= %.4f): %s",
            min_score,
            json.dumps(report["figures_default"]["pooled"]),
        )
        log.info(
            "CV at sea %.3f moored %.3f",
            report["figures_score_ge_0_5"]["recall_at_sea"],
            report["figures_score_ge_0_5"]["recall_moored"],
        )
    if args.final and args.evaluate_only:
        cv = json.loads(cv_path.read_text())
        manifest = json.loads((args.out_dir / "manifest.json").read_text())
        entry = manifest["models"][NAME]
        entry.update(
            {
                k: v
                for k, v in common_entry(cv["calibration"], cv["default_min_score"]).items()
                if k != "version"
            }
        )
        entry["cross_validation"]["figures_default"] = cv["figures_default"]
        entry["rescore"] = cv["rescore"]
        entry["cross_validation"]["figures_score_ge_0_5"] = cv["figures_score_ge_0_5"]
        entry["cross_validation"]["evaluated_at_git_sha"] = cv["git_sha"]
        update_manifest(args.out_dir, NAME, entry)
        log.info("refreshed the calibration and figures of %s in the manifest", NAME)
    elif args.final:
        if FINAL not in blobs:  # not trained beside the folds
            blobs, secs = train_models([FINAL], args.data, args.steps, args.seed, 1)
        blob = blobs[FINAL]
        cv = json.loads(cv_path.read_text()) if cv_path.exists() else {}
        entry = {
            **common_entry(cv.get("calibration", {}), cv.get("default_min_score", 0.5)),
            "rescore": cv.get("rescore", {}),
            "file": f"{NAME}.onnx",
            "training": {
                "data": "sen2ships (ShipDetectionExperts/sen2ships @ d8e83c1a03, MIT), "
                "../shared/data",
                "ports": list(PORTS),
                "seed": args.seed,
                "steps": args.steps,
                "patch": PATCH,
                "batch": BATCH,
                "git_sha": _git_sha(),
                "seconds_final_model": round(secs[FINAL], 1),
            },
            "cross_validation": {
                "scheme": "leave-one-port-out, 8 folds (models/ship_folds/)",
                "figures_score_ge_0_5": cv.get("figures_score_ge_0_5", {}),
                "figures_default": cv.get("figures_default", {}),
                "folds": cv.get("folds", {}),
            },
        }
        write_model(args.out_dir, NAME, blob, entry)
        log.info("wrote %s.onnx (%d bytes)", NAME, len(blob))
    log.info("done in %.0f s", time.time() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
