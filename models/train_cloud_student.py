"""Distil ``cloud_student.onnx``: a small cloud / cloud-shadow CNN on a ~60 m grid, taught by
the ukis-csmask U-Nets (the teacher, optional extra ``clouds-accurate``).

What it does, in order (seeded and single-process; CPU, 2 threads):

1. **Scenes** from ``../shared/data`` (or ``--shared`` / ``$EOTRIAGE_SHARED_DATA``):
   the ukis-csmask sample (6 bands, L1C, fed as-is at the teacher's grid: its pixel size is not
   stated, and as-is scores best, see ``docs/clouds_notes.md``), the Virginia L1C tile (6 bands,
   10 m; B11/B12 from 20 m) and the 8 sen2ships ports (L2A, 4 bands: they have no B12; ground
   pixel 5.8-9.3 m).  The fire scene (B09 B11 B12 only) has no visible bands: recorded as
   skipped.
2. **Teacher** on every scene and band set it supports (6-band and 4-band models of the
   scene's product level) through :func:`pipeline.detectors.cloud_models.run_teacher`, at
   ``factor = round(30 m / pixel)``.
3. **Synthetic frames** (``models/cloud_synth.py``): 256 x 256 crops at the teacher grid of
   the scenes, with drawn clouds + shadows, full cloud, thin cirrus, smoke, or nothing; each
   labelled by the teacher on that single 256 px tile, with pixels of drawn cloud opacity
   >= 0.7 forced to cloud and, for smoke frames, the teacher's labels of the frame *before*
   the smoke (smoke is not cloud).  A separate set, drawn with another seed, is kept for
   validation only.
4. **Student** (see :class:`Student`) trained on random crops on the ~60 m grid (2 x 2 teacher
   pixels) against the teacher's class probabilities pooled to that grid (soft cross-entropy),
   with band dropout: every 6-band sample is used as 4-band (SWIR zeroed, ``has_swir`` = 0,
   targets from the 4-band teacher) half of the time.
   Two students are trained: ``holdout`` never sees the ukis sample (nor synthetic frames made
   from it): its score on the sample is a held-out figure; ``full`` sees everything and is the
   shipped model.
5. **Export** to ONNX (normalisation, band features, softmax and argmax inside the graph) and
   **evaluate** through onnxruntime with the runtime code of ``cloud_models``; writes
   ``cloud_student.onnx`` and ``cloud_student_eval.json`` (figures + the manifest entry
   wanted) into ``--out-dir``.  ``models/manifest.json`` is not touched.

Usage::

    python models/train_cloud_student.py [--out-dir models] [--shared DIR] [--quick]

Needs the ``train`` tools (torch, CPU build) and ukis-csmask 1.0.0 (``clouds-accurate``);
rasterio to read the scenes.  ``--quick`` trains for a few steps only (a smoke test of the
script; its model is not for use).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:  # run as a plain script
        sys.path.insert(0, _p)

import cloud_synth  # noqa: E402
from model_io import torch_to_onnx  # noqa: E402

from pipeline.detectors import cloud_models as cm  # noqa: E402
from pipeline.evaluation import clouds as ce  # noqa: E402

log = logging.getLogger("train_cloud_student")

NAME = "cloud_student"
VERSION = "1.0.0"
SEED = 17
THREADS = 2
CROP = 48  # student pixels per training crop side (2.9 km at 60 m)
BATCH = 16
STEPS = 900
N_FEATURES = 13
WIDTH = 16
HEAD = 8
LR = 3e-3
N_SYNTH_TRAIN = 160  # synthetic frames drawn per training set
N_SYNTH_VAL = 40
SYNTH_MIX = {"cloud": 0.5, "full": 0.14, "cirrus": 0.12, "smoke": 0.12, "none": 0.12}
FORCE_CLOUD_ALPHA = 0.7
#: sampling weights of the training sources (per batch item)
SOURCE_WEIGHTS = {"sample": 0.3, "real": 0.2, "synth": 0.5}
PRODUCT = {"sample": "l1c", "virginia": "l1c"}  # ports: l2a
PORT_BANDS = ("B02", "B03", "B04", "B08")
S2_BANDS = dict(zip(cm.BANDS_6, ("B02", "B03", "B04", "B08", "B11", "B12"), strict=True))
EARTH_R = 6378137.0


# --------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------


@dataclass
class Scene:
    name: str
    bands: dict[str, np.ndarray]  # working grid, role -> reflectance
    pixel_m: float
    level: str
    vessels: np.ndarray | None = None
    source: str = ""
    teacher: dict[str, cm.CloudMask] = field(default_factory=dict)

    @property
    def tf(self) -> int:  # working pixels per teacher pixel
        return cm.grid_factor(self.pixel_m, cm.TEACHER_GRID_M)

    @property
    def sf(self) -> int:  # working pixels per student pixel
        return 2 * self.tf

    @property
    def has_swir(self) -> bool:
        return all(r in self.bands for r in ("swir16", "swir22"))

    @property
    def shape(self) -> tuple[int, int]:
        a = next(iter(self.bands.values()))
        return (int(a.shape[0]), int(a.shape[1]))


def _read(path: Path) -> tuple[np.ndarray, Any]:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1), ds


def load_scenes(shared: Path) -> tuple[list[Scene], list[dict[str, str]], np.ndarray]:
    """The scenes, the ones skipped (with the reason) and the sample's reference mask."""
    import rasterio

    scenes: list[Scene] = []
    skipped: list[dict[str, str]] = []
    d = np.load(shared / "clouds" / "ukis_sentinel2.npz")
    img = d["img"].astype(np.float32)
    s = Scene(
        "ukis_sample",
        {r: img[..., i] for i, r in enumerate(cm.BANDS_6)},
        cm.TEACHER_GRID_M,
        "l1c",
        source="clouds/ukis_sentinel2.npz",
    )
    s.vessels = None
    scenes.append(s)
    ref = ce.ukis_reference(d["msk"])

    v = shared / "s2_l1c_virginia"
    vb: dict[str, np.ndarray] = {}
    for role, band in S2_BANDS.items():
        a = _read(v / f"{band}.tif")[0].astype(np.float32) / 10000.0
        if a.shape != (1024, 1024):  # 20 m band: each pixel covers 2 x 2 pixels at 10 m
            f = 1024 // a.shape[0]
            a = np.repeat(np.repeat(a, f, axis=0), f, axis=1)
        vb[role] = a
    scenes.append(Scene("s2_l1c_virginia", vb, 10.0, "l1c", source="s2_l1c_virginia"))

    for port in sorted(p.name for p in (shared / "sen2ships").iterdir() if p.is_dir()):
        folder = shared / "sen2ships" / port
        pb = {}
        for role, band in zip(cm.BANDS_4, PORT_BANDS, strict=True):
            with rasterio.open(folder / f"{band}.tif") as ds:
                pb[role] = ds.read(1).astype(np.float32) / 65535.0
                web_m = abs(ds.transform.a)
                y = (ds.bounds.top + ds.bounds.bottom) / 2
        lat = np.arctan(np.sinh(y / EARTH_R))
        ves = _read(folder / "vessel_instances.tif")[0]
        scenes.append(
            Scene(
                f"sen2ships_{port}",
                pb,
                float(web_m * np.cos(lat)),
                "l2a",
                vessels=ves,
                source=f"sen2ships/{port}",
            )
        )

    fire = shared / "s2_fire" / "G90292"
    if fire.is_dir():
        skipped.append(
            {
                "scene": "s2_fire/G90292",
                "reason": "only B09, B11 and B12 (20 m): no blue/green/red/nir, so neither the "
                "teacher nor the student can screen clouds there (its smoke is not checked)",
            }
        )
    return scenes, skipped, ref


# --------------------------------------------------------------------------------------------
# Teacher targets
# --------------------------------------------------------------------------------------------


def teacher_sessions() -> dict[str, Any]:
    return {n: cm.make_session(cm.teacher_model_path(n), THREADS) for n in cm.TEACHERS}


def run_teachers(scenes: list[Scene], sessions: dict[str, Any]) -> None:
    for s in scenes:
        sets = [cm.BANDS_6, cm.BANDS_4] if s.has_swir else [cm.BANDS_4]
        for roles in sets:
            spec = cm.select_teacher(roles, s.level)
            t0 = time.perf_counter()
            s.teacher[spec.name] = cm.run_teacher(
                sessions[spec.name], {r: s.bands[r] for r in roles}, s.level, s.tf, spec=spec
            )
            log.info("teacher %s on %s: %.1f s", spec.name, s.name, time.perf_counter() - t0)


def pool2(a: np.ndarray) -> np.ndarray:
    """2 x 2 block mean of C x H x W (partial blocks averaged)."""
    return np.stack([cm.block_mean(p.astype(np.float32), 2)[0] for p in a])


@dataclass
class Frame:
    """One training/validation frame on the student grid."""

    name: str
    source: str  # sample | real | synth
    x6: np.ndarray  # 6 x h x w (SWIR zeros when absent)
    has_swir: bool
    t6: np.ndarray | None  # 3 x h x w teacher probs for the 6-band path
    t4: np.ndarray  # 3 x h x w for the 4-band path
    kind: str = "real"
    from_sample: bool = False


def _teacher_grid(s: Scene, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {r: cm.block_mean(s.bands[r], s.tf)[0] for r in roles}


def _stack6(b: dict[str, np.ndarray]) -> np.ndarray:
    h, w = next(iter(b.values())).shape
    x = np.zeros((6, h, w), np.float32)
    for i, r in enumerate(cm.BANDS_6):
        if r in b:
            x[i] = b[r]
    return x


def real_frames(scenes: list[Scene]) -> list[Frame]:
    out = []
    for s in scenes:
        roles = cm.BANDS_6 if s.has_swir else cm.BANDS_4
        tg = _teacher_grid(s, roles)
        x = pool2(_stack6(tg))
        t4 = pool2(s.teacher[cm.select_teacher(cm.BANDS_4, s.level).name].probs)
        t6 = (
            pool2(s.teacher[cm.select_teacher(cm.BANDS_6, s.level).name].probs)
            if s.has_swir
            else None
        )
        src = "sample" if s.name == "ukis_sample" else "real"
        out.append(Frame(s.name, src, x, s.has_swir, t6, t4, "real", src == "sample"))
    return out


def _single_tile_probs(session: Any, spec: cm.TeacherSpec, b: dict[str, np.ndarray]) -> np.ndarray:
    """Teacher probabilities of a frame of at most 256 x 256 px on one tile (symmetric padding
    to 256, the package's normalisation, softmax), cropped back."""
    img = _stack6(b)[: len(spec.bands)]
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    img = (img - mean) / std
    h, w = img.shape[1:]
    img = np.pad(img, ((0, 0), (0, spec.tile - h), (0, spec.tile - w)), mode="symmetric")
    (logits,) = cm._run(session, {spec.input_name: img[None].astype(np.float32)})[:1]
    return cm.softmax(np.asarray(logits, np.float32), axis=1)[0, :, :h, :w]


def _pick_kind(rng: np.random.Generator) -> str:
    kinds = list(SYNTH_MIX)
    p = np.asarray([SYNTH_MIX[k] for k in kinds])
    return str(rng.choice(kinds, p=p / p.sum()))


def synth_frames(
    scenes: list[Scene], sessions: dict[str, Any], n: int, seed: int
) -> tuple[list[Frame], list[dict[str, Any]]]:
    """``n`` synthetic frames (round robin over the scenes), labelled by the teacher."""
    rng = np.random.default_rng(seed)
    grids = {}
    for s in scenes:
        roles = cm.BANDS_6 if s.has_swir else cm.BANDS_4
        grids[s.name] = _teacher_grid(s, roles)
    frames, info = [], []
    for i in range(n):
        s = scenes[i % len(scenes)]
        g = grids[s.name]
        h, w = next(iter(g.values())).shape
        th, tw = min(h, 256), min(w, 256)
        y0 = int(rng.integers(0, h - th + 1))
        x0 = int(rng.integers(0, w - tw + 1))
        crop = {r: a[y0 : y0 + th, x0 : x0 + tw] for r, a in g.items()}
        kind = _pick_kind(rng)
        drawn, truth = cloud_synth.add_clouds(crop, rng, cm.TEACHER_GRID_M, kind)
        gain = float(rng.uniform(0.9, 1.1))  # scene-wide illumination/calibration spread
        drawn = {r: a * gain for r, a in drawn.items()}
        labels_from = crop if kind == "smoke" else drawn
        probs = {}
        stats: dict[str, Any] = {"frame": i, "scene": s.name, "kind": kind}
        for roles in [cm.BANDS_6, cm.BANDS_4] if s.has_swir else [cm.BANDS_4]:
            spec = cm.select_teacher(roles, s.level)
            p = _single_tile_probs(sessions[spec.name], spec, {r: labels_from[r] for r in roles})
            raw = cm.classes_from_probs(p)
            if kind == "smoke":  # what the teacher makes of the smoke itself (not used)
                ps = _single_tile_probs(sessions[spec.name], spec, {r: drawn[r] for r in roles})
                stats[f"teacher_cloud_on_smoke_{len(roles)}b"] = float(
                    (cm.classes_from_probs(ps) == cm.CLOUD).mean()
                )
            forced = truth.alpha >= FORCE_CLOUD_ALPHA
            stats[f"forced_px_{len(roles)}b"] = int((forced & (raw != cm.CLOUD)).sum())
            stats[f"teacher_cloud_{len(roles)}b"] = float((raw == cm.CLOUD).mean())
            if forced.any():
                p = p.copy()
                p[:, forced] = np.array([0.0, 1.0, 0.0], np.float32)[:, None]
            probs[len(roles)] = pool2(p)
        stats["drawn_cloud_alpha_ge_0.5"] = float((truth.alpha >= 0.5).mean())
        x = pool2(_stack6(drawn))
        frames.append(
            Frame(
                f"synth{seed}_{i}_{kind}",
                "synth",
                x,
                s.has_swir,
                probs.get(6),
                probs[4],
                kind,
                s.name == "ukis_sample",
            )
        )
        info.append(stats)
    return frames, info


# --------------------------------------------------------------------------------------------
# Student network
# --------------------------------------------------------------------------------------------


def build_student_module() -> Any:
    import torch
    from torch import nn

    class Student(nn.Module):
        """Spectral features per 60 m pixel + context at 240 m, fused per pixel.

        ``bands`` N x 6 x H x W reflectance (blue green red nir swir16 swir22),
        ``has_swir`` N x 1 x 1 x 1.  In-graph features: the 6 bands scaled
        ((r - 0.2) / 0.2), visible mean, NDVI, NDWI, visible whiteness, and (times has_swir)
        NDSI and SWIR-1/NIR, and a plane of ``has_swir`` (13 planes).  Pixel branch: two 1x1
        convolutions (13 -> 16 -> 16).  Context branch: 2 x 2 average pool (120 m), 3x3
        stride-2 convolution (240 m), two residual dilated 3x3 (d = 2, 4: about 4 km across),
        a 1x1 projection to 8 channels, bilinear x4 back.  Head: 1x1 of the pixel branch
        (16 -> 8) plus the context, ReLU, 1x1 (8 -> 3) logits.  About 25 M multiply-adds per
        1024 x 1024 tile at 10 m (172 x 172 student pixels).
        """

        def __init__(self) -> None:
            super().__init__()
            self.p1 = nn.Conv2d(N_FEATURES, WIDTH, 1)
            self.p2 = nn.Conv2d(WIDTH, WIDTH, 1)
            self.c1 = nn.Conv2d(WIDTH, WIDTH, 3, stride=2, padding=1)
            self.d1 = nn.Conv2d(WIDTH, WIDTH, 3, padding=2, dilation=2)
            self.d2 = nn.Conv2d(WIDTH, WIDTH, 3, padding=4, dilation=4)
            self.h1p = nn.Conv2d(WIDTH, HEAD, 1)
            self.h1c = nn.Conv2d(WIDTH, HEAD, 1, bias=False)
            self.h2 = nn.Conv2d(HEAD, 3, 1)
            self.act = nn.ReLU()

        def features(self, bands: torch.Tensor, has_swir: torch.Tensor) -> torch.Tensor:
            eps = 0.05
            b = torch.cat([bands[:, :4], bands[:, 4:6] * has_swir], dim=1)
            blue, green, red, nir = b[:, 0:1], b[:, 1:2], b[:, 2:3], b[:, 3:4]
            s1 = b[:, 4:5]
            vis = (blue + green + red) / 3.0
            ndvi = (nir - red) / (nir + red + eps)
            ndwi = (green - nir) / (green + nir + eps)
            white = ((blue - vis).abs() + (green - vis).abs() + (red - vis).abs()) / (vis + eps)
            ndsi = (green - s1) / (green + s1 + eps) * has_swir
            s1n = s1 / (nir + eps) * has_swir
            flag = torch.ones_like(vis) * has_swir
            return torch.cat([(b - 0.2) / 0.2, vis, ndvi, ndwi, white, ndsi, s1n, flag], dim=1)

        def forward(self, bands: torch.Tensor, has_swir: torch.Tensor) -> torch.Tensor:
            f = self.features(bands, has_swir)
            p = self.act(self.p1(f))
            p = self.act(self.p2(p))
            c = nn.functional.avg_pool2d(p, 2)
            c = self.act(self.c1(c))
            c = c + self.act(self.d1(c))
            c = c + self.act(self.d2(c))
            c = nn.functional.interpolate(
                self.h1c(c), scale_factor=4.0, mode="bilinear", align_corners=False
            )
            h = self.act(self.h1p(p) + c)
            return self.h2(h)

    class Exported(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, bands: torch.Tensor, has_swir: torch.Tensor) -> Any:
            logits = self.net(bands, has_swir)
            classes = torch.argmax(logits, dim=1).to(torch.uint8)
            return logits, classes

    return Student, Exported


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _crop(frame: Frame, rng: np.random.Generator, use6: bool) -> tuple[np.ndarray, np.ndarray]:
    x = frame.x6.copy()
    t = frame.t6 if use6 else frame.t4
    assert t is not None
    if not use6:
        x[4:] = 0.0
    h, w = x.shape[1:]
    if h < CROP or w < CROP:  # reflect-pad small frames
        ph, pw = max(0, CROP - h), max(0, CROP - w)
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        t = np.pad(t, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        h, w = x.shape[1:]
    y0 = int(rng.integers(0, h - CROP + 1))
    x0 = int(rng.integers(0, w - CROP + 1))
    x = x[:, y0 : y0 + CROP, x0 : x0 + CROP]
    t = t[:, y0 : y0 + CROP, x0 : x0 + CROP]
    k = int(rng.integers(0, 4))
    x, t = np.rot90(x, k, axes=(1, 2)), np.rot90(t, k, axes=(1, 2))
    if rng.random() < 0.5:
        x, t = x[:, :, ::-1], t[:, :, ::-1]
    gain = rng.uniform(0.9, 1.1) * rng.uniform(0.97, 1.03, size=(6, 1, 1))
    x = x * gain.astype(np.float32)
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(t, np.float32)


def train(frames: list[Frame], steps: int, seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    student_cls, _ = build_student_module()
    net = student_cls()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR, total_steps=max(steps, 1), pct_start=0.1
    )
    by_source: dict[str, list[Frame]] = {}
    for f in frames:
        by_source.setdefault(f.source, []).append(f)
    sources = [s for s in SOURCE_WEIGHTS if s in by_source]
    w = np.asarray([SOURCE_WEIGHTS[s] for s in sources])
    w = w / w.sum()
    net.train()
    losses = []
    for step in range(steps):
        xs, ts, fl = [], [], []
        for _ in range(BATCH):
            src = sources[int(rng.choice(len(sources), p=w))]
            fr = by_source[src][int(rng.integers(0, len(by_source[src])))]
            use6 = fr.has_swir and bool(rng.random() < 0.5)
            x, t = _crop(fr, rng, use6)
            xs.append(x)
            ts.append(t)
            fl.append(1.0 if use6 else 0.0)
        xb = torch.from_numpy(np.stack(xs))
        tb = torch.from_numpy(np.stack(ts))
        fb = torch.tensor(fl, dtype=torch.float32).view(-1, 1, 1, 1)
        logits = net(xb, fb)
        loss = -(tb * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 100 == 0 or step == steps - 1:
            log.info("step %d/%d loss %.4f", step, steps, float(np.mean(losses[-100:])))
    net.eval()
    return net, float(np.mean(losses[-100:])) if losses else float("nan")


def export_onnx(net: Any) -> bytes:
    import torch

    _, exported_cls = build_student_module()
    return torch_to_onnx(
        exported_cls(net).eval(),
        (torch.zeros(1, 6, 32, 32), torch.ones(1, 1, 1, 1)),
        ["bands", "has_swir"],
        ["logits", "classes"],
        {
            "bands": {0: "n", 2: "h", 3: "w"},
            "has_swir": {0: "n"},
            "logits": {0: "n", 2: "h", 3: "w"},
            "classes": {0: "n", 1: "h", 2: "w"},
        },
        "eotriage/models/train_cloud_student.py",
        VERSION,
        "eotriage cloud student: 0 clear, 1 cloud, 2 shadow on a ~60 m grid; distilled from "
        "ukis-csmask 1.0.0 (DLR, Apache-2.0)",
    )


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _student_on_teacher_grid(
    session: Any, s: Scene, use_swir: bool
) -> tuple[cm.CloudMask, np.ndarray, np.ndarray]:
    """Student via the runtime path on the working grid; its classes on the teacher grid
    (bilinear probabilities, and nearest)."""
    roles = cm.BANDS_6 if use_swir else cm.BANDS_4
    m = cm.run_student(session, {r: s.bands[r] for r in roles}, s.sf, use_swir=use_swir)
    th, tw = cm.coarse_shape(s.shape, s.tf)
    smooth = cm.classes_from_probs(cm.upsample_probs(m.probs, 2, (th, tw)))
    near = cm.upsample_classes(m.classes, 2, (th, tw))
    return m, smooth, near


def _vessels(s: Scene, grid_classes: np.ndarray) -> dict[str, int]:
    assert s.vessels is not None
    obsc = grid_classes > 0
    ves = s.vessels > 0
    ids = np.unique(s.vessels[ves & obsc])
    return {
        "vessel_pixels": int(ves.sum()),
        "vessels": int(len(np.unique(s.vessels[ves]))),
        "vessel_pixels_masked": int((ves & obsc).sum()),
        "vessel_pixels_cloud": int((ves & (grid_classes == cm.CLOUD)).sum()),
        "vessel_pixels_shadow": int((ves & (grid_classes == cm.SHADOW)).sum()),
        "vessels_touched": int(len(ids)),
    }


def _fr(m: np.ndarray) -> dict[str, float]:
    f = cm.fractions(m)
    return {"cloud": round(f.cloud, 5), "shadow": round(f.shadow, 5)}


def evaluate(
    session: Any, scenes: list[Scene], ref: np.ndarray, val: list[Frame]
) -> dict[str, Any]:
    out: dict[str, Any] = {"scenes": {}, "sample": {}, "synthetic_validation": {}}
    for s in scenes:
        rows: dict[str, Any] = {
            "pixel_m": round(s.pixel_m, 2),
            "teacher_factor": s.tf,
            "student_factor": s.sf,
            "level": s.level,
            "shape": list(s.shape),
        }
        for use_swir in [True, False] if s.has_swir else [False]:
            roles = cm.BANDS_6 if use_swir else cm.BANDS_4
            spec = cm.select_teacher(roles, s.level)
            tm = s.teacher[spec.name]
            sm, smooth, near = _student_on_teacher_grid(session, s, use_swir)
            key = f"{len(roles)}band"
            pooled = cm.classes_from_probs(pool2(tm.probs))
            r: dict[str, Any] = {
                "teacher_model": spec.name,
                "agreement_student_grid": round(ce.agreement(pooled, sm.classes), 5),
                "teacher_fractions": _fr(tm.classes),
                "student_fractions": _fr(sm.classes),
                "agreement_teacher_grid_bilinear": round(ce.agreement(tm.classes, smooth), 5),
                "agreement_teacher_grid_nearest": round(ce.agreement(tm.classes, near), 5),
            }
            if s.vessels is not None:
                r["vessels_teacher"] = _vessels(s, tm.on_grid())
                r["vessels_student"] = _vessels(s, sm.on_grid(smooth=True))
                r["vessels_student_nearest"] = _vessels(s, sm.on_grid())
            if s.name == "ukis_sample":
                r["teacher_vs_reference"] = ce.score(ref, tm.classes).to_dict()
                r["student_vs_reference"] = ce.score(ref, smooth).to_dict()
                r["student_vs_reference_nearest"] = ce.score(ref, near).to_dict()
                r["student_vs_teacher"] = ce.score(tm.classes, smooth).to_dict()
            rows[key] = r
        out["scenes"][s.name] = rows
    kinds: dict[str, dict[str, list[float]]] = {}
    for fr in val:
        for use6 in [True, False] if fr.has_swir else [False]:
            x = fr.x6.copy()
            if not use6:
                x[4:] = 0
            feeds, (h, w), _ = cm.student_input(
                {r: x[i] for i, r in enumerate(cm.BANDS_6 if use6 else cm.BANDS_4)},
                1,
                use_swir=use6,
            )
            probs = cm.softmax(cm._run(session, feeds)[0][0, :, :h, :w], axis=0)
            t = fr.t6 if use6 else fr.t4
            assert t is not None
            tc, sc = cm.classes_from_probs(t), cm.classes_from_probs(probs)
            d = kinds.setdefault(
                f"{fr.kind}_{6 if use6 else 4}band",
                {"agreement": [], "student_cloud": [], "target_cloud": []},
            )
            d["agreement"].append(float((tc == sc).mean()))
            d["student_cloud"].append(float((sc == cm.CLOUD).mean()))
            d["target_cloud"].append(float((tc == cm.CLOUD).mean()))
    for k, d in sorted(kinds.items()):
        out["synthetic_validation"][k] = {
            "frames": len(d["agreement"]),
            "agreement_mean": round(float(np.mean(d["agreement"])), 4),
            "agreement_min": round(float(np.min(d["agreement"])), 4),
            "student_cloud_mean": round(float(np.mean(d["student_cloud"])), 4),
            "student_cloud_min": round(float(np.min(d["student_cloud"])), 4),
            "student_cloud_max": round(float(np.max(d["student_cloud"])), 4),
            "target_cloud_mean": round(float(np.mean(d["target_cloud"])), 4),
        }
    return out


def speed(student: bytes, sessions: dict[str, Any], repeats: int) -> dict[str, Any]:
    """ms per Mpx of 10 m grid for the student stage (block means + model + decode) on a
    1024 x 1024 tile, 2 intra-op threads; and the teacher at its own grid."""
    import cv2

    cv2.setNumThreads(THREADS)
    rng = np.random.default_rng(0)
    tile = {r: (0.05 + 0.3 * rng.random((1024, 1024))).astype(np.float32) for r in cm.BANDS_6}
    sess = cm.make_session(student, THREADS)
    out: dict[str, Any] = {"tile_px": [1024, 1024], "threads": THREADS, "repeats": repeats}
    for nb, roles in ((6, cm.BANDS_6), (4, cm.BANDS_4)):
        b = {r: tile[r] for r in roles}
        cm.run_student(sess, b, 6)  # warm-up
        total = cm.timed(lambda b=b: cm.run_student(sess, b, 6), repeats)
        cpu = []  # process CPU time (both threads): what the stage costs when not waiting
        for _ in range(repeats):
            c0 = time.process_time()
            cm.run_student(sess, b, 6)
            cpu.append(time.process_time() - c0)
        down = cm.timed(lambda b=b: cm.student_input(b, 6), repeats)
        feeds = cm.student_input(b, 6)[0]
        model = cm.timed(lambda feeds=feeds: sess.run(None, feeds), repeats)
        up_t = cm.timed(
            lambda: cm.upsample_probs(np.zeros((3, 171, 171), np.float32), 6, (1024, 1024)), repeats
        )
        mpx = 1024 * 1024 / 1e6
        out[f"student_{nb}band"] = {
            "stage_ms_per_mpx_median": round(float(np.median(total)) * 1e3 / mpx, 3),
            "stage_ms_per_mpx_min": round(float(np.min(total)) * 1e3 / mpx, 3),
            "stage_cpu_ms_per_mpx_median": round(float(np.median(cpu)) * 1e3 / mpx, 3),
            "downsample_ms_per_mpx_median": round(float(np.median(down)) * 1e3 / mpx, 3),
            "model_ms_per_mpx_median": round(float(np.median(model)) * 1e3 / mpx, 3),
            "model_ms_per_mpx_min": round(float(np.min(model)) * 1e3 / mpx, 3),
            "upsample_probs_to_10m_ms_per_mpx_median": round(float(np.median(up_t)) * 1e3 / mpx, 3),
        }
    for name in ("model_6b_l1c", "model_4b_l1c"):
        spec = cm.TEACHERS[name]
        b = {r: tile[r] for r in spec.bands}
        n = max(2, repeats // 10)
        ts = sessions[name]
        t = cm.timed(lambda b=b, spec=spec, ts=ts: cm.run_teacher(ts, b, "l1c", 3, spec=spec), n)
        layout = cm.teacher_layout(cm.coarse_shape((1024, 1024), 3))
        x = np.zeros((1, len(spec.bands), 256, 256), np.float32)
        tt = cm.timed(lambda x=x, ts=ts: ts.run(None, {"input": x}), n)
        med = float(np.median(t))
        out[f"teacher_{name}"] = {
            "tiles_for_1024px_10m": layout.count,
            "ms_per_mpx_10m_median": round(med * 1e3 / mpx, 1),
            "model_grid_mpx_per_s": round(342 * 342 / 1e6 / med, 3),
            "tile_256_ms_median": round(float(np.median(tt)) * 1e3, 1),
            "tile_pixels_mpx_per_s": round(256 * 256 / 1e6 / float(np.median(tt)), 3),
        }
    return out


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _teacher_files() -> dict[str, Any]:
    out = {}
    for name, spec in cm.TEACHERS.items():
        p = cm.teacher_model_path(name)
        out[name] = {
            "file": p.name,
            "bytes": p.stat().st_size,
            "sha256": cm.sha256_file(p),
            "version": spec.version,
            "bands": list(spec.bands),
            "product_level": spec.product_level,
        }
    return out


def sample_scales(shared: Path) -> dict[str, Any]:
    """The teacher on the ukis sample at several assumed pixel sizes (its size is not stated):
    as-is (factor 1), block means of 2 and 3 (the sample would be 15 or 10 m), and enlarged
    2 and 3 times by bilinear interpolation (the sample would be 60 or 90 m), scored against the
    reference on the sample's own grid."""
    import cv2

    d = np.load(shared / "clouds" / "ukis_sentinel2.npz")
    img = d["img"].astype(np.float32)
    ref = ce.ukis_reference(d["msk"])
    sessions = teacher_sessions()
    out: dict[str, Any] = {}
    for name, spec in cm.TEACHERS.items():
        rows = {}
        for label, up, factor in (
            ("as_is", 1, 1),
            ("mean2", 1, 2),
            ("mean3", 1, 3),
            ("up2", 2, 1),
            ("up3", 3, 1),
        ):
            b = {}
            for i, r in enumerate(cm.BANDS_6):
                if r in spec.bands:
                    a = img[..., i]
                    if up > 1:
                        a = cv2.resize(a, (512 * up, 512 * up), interpolation=cv2.INTER_LINEAR)
                    b[r] = a
            m = cm.run_teacher(sessions[name], b, spec.product_level, factor, spec=spec)
            g = m.on_grid()
            if up > 1:
                g = cv2.resize(g, (512, 512), interpolation=cv2.INTER_NEAREST)
            sc = ce.score(ref, g)
            rows[label] = {
                "cloud_accuracy": round(sc.cloud_accuracy, 4),
                "kappa": round(sc.kappa, 4),
            }
            log.info("teacher %s on the sample %s: %s", name, label, rows[label])
        out[name] = rows
    return out


def bench_only(out_dir: Path) -> int:
    """Re-measure :func:`speed` for ``out_dir/cloud_student.onnx`` (its sha256 must match the
    eval json) and write the new figures into the json."""
    report_path = out_dir / f"{NAME}_eval.json"
    report = json.loads(report_path.read_text())
    blob = (out_dir / f"{NAME}.onnx").read_bytes()
    if hashlib.sha256(blob).hexdigest() != report["sha256"]:
        raise SystemExit(f"{NAME}.onnx does not match the sha256 in {report_path.name}")
    report["speed"] = speed(blob, teacher_sessions(), 60)
    report["speed"]["load_average_before"] = list(os.getloadavg())
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    log.info("speed: %s", json.dumps(report["speed"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=HERE)
    default_shared = Path(os.environ.get("EOTRIAGE_SHARED_DATA", REPO.parent / "shared" / "data"))
    ap.add_argument("--shared", type=Path, default=default_shared)
    ap.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument(
        "--bench-only",
        action="store_true",
        help="only re-measure the speed of the existing model (e.g. on a quieter machine) and "
        "replace the 'speed' section of its eval json",
    )
    ap.add_argument(
        "--sample-scales",
        action="store_true",
        help="only score the teacher on the ukis sample at several assumed pixel sizes and "
        "add the figures to the existing eval json",
    )
    args = ap.parse_args(argv)
    if args.sample_scales:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        report_path = args.out_dir / f"{NAME}_eval.json"
        report = json.loads(report_path.read_text())
        report["teacher_sample_scales"] = sample_scales(args.shared)
        report_path.write_text(json.dumps(report, indent=1) + "\n")
        return 0
    if args.bench_only:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        return bench_only(args.out_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    t_start = time.perf_counter()
    shared = args.shared
    if not (shared / "clouds" / "ukis_sentinel2.npz").is_file():
        ap.error(f"no shared data at {shared} (use --shared or EOTRIAGE_SHARED_DATA)")
    steps = 30 if args.quick else args.steps
    n_train, n_val = (12, 6) if args.quick else (N_SYNTH_TRAIN, N_SYNTH_VAL)

    scenes, skipped, ref = load_scenes(shared)
    sessions = teacher_sessions()
    run_teachers(scenes, sessions)
    t_teacher = time.perf_counter()
    real = real_frames(scenes)
    synth, synth_info = synth_frames(scenes, sessions, n_train, SEED)
    val, val_info = synth_frames(scenes, sessions, n_val, SEED + 1000)
    t_data = time.perf_counter()
    log.info(
        "data ready: %d real, %d synthetic, %d validation frames (%.0f s)",
        len(real),
        len(synth),
        len(val),
        t_data - t_start,
    )

    results: dict[str, Any] = {}
    blobs: dict[str, bytes] = {}
    for variant in ("holdout", "full"):
        frames = [f for f in real + synth if variant == "full" or not f.from_sample]
        t0 = time.perf_counter()
        net, loss = train(frames, steps, SEED)
        blob = export_onnx(net)
        blobs[variant] = blob
        t1 = time.perf_counter()
        sess = cm.make_session(blob, THREADS)
        results[variant] = {
            "training_frames": len(frames),
            "final_loss": round(loss, 5),
            "train_s": round(t1 - t0, 1),
            "onnx_bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "eval": evaluate(sess, scenes, ref, val),
        }
    blob = blobs["full"]
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{NAME}.onnx").write_bytes(blob)
    load = list(os.getloadavg())
    spd = speed(blob, sessions, 7 if args.quick else 40)
    spd["load_average_before"] = load
    sha = hashlib.sha256(blob).hexdigest()
    teachers = _teacher_files()
    entry = {
        "file": f"{NAME}.onnx",
        "version": VERSION,
        "kind": "learned: small CNN distilled from ukis-csmask 1.0.0 (PyTorch -> ONNX)",
        "built_by": "models/train_cloud_student.py",
        "inputs": {
            "bands": "float32 N x 6 x H x W reflectance on the ~60 m grid (block means): blue "
            "green red nir swir16 swir22 (Sentinel-2 B02 B03 B04 B08 B11 B12); SWIR planes 0 "
            "when absent; H, W multiples of 4",
            "has_swir": "float32 N x 1 x 1 x 1: 1 with swir16 and swir22, 0 for 4 bands",
        },
        "outputs": {
            "logits": "float32 N x 3 x H x W (clear, cloud, shadow); softmax outside the graph "
            "(ONNX Softmax over the channel axis costs more than the whole network)",
            "classes": "uint8 N x H x W argmax: 0 clear, 1 cloud, 2 shadow",
        },
        "bands": list(cm.BANDS_6),
        "required_bands": list(cm.BANDS_4),
        "resolution_m": cm.STUDENT_GRID_M,
        "multiple": cm.STUDENT_MULTIPLE,
        "thresholds": {},
        "training": {
            "seed": SEED,
            "steps": steps,
            "scenes": [s.source for s in scenes],
            "skipped": skipped,
            "synthetic_frames": n_train,
            "teacher": f"{cm.TEACHER_DIST}=={cm.TEACHER_VERSION}",
            "teacher_models": teachers,
            "git_sha": _git_sha(),
        },
        "sha256": sha,
    }
    report = {
        "name": NAME,
        "version": VERSION,
        "sha256": sha,
        "onnx_bytes": len(blob),
        "manifest_entry": entry,
        "teacher_manifest_entries": {
            n: {
                "file": t["file"],
                "version": t["version"],
                "sha256": t["sha256"],
                "source": f"{cm.TEACHER_DIST}=={cm.TEACHER_VERSION} package data "
                f"({cm.TEACHER_PACKAGE}/{t['file']})",
                "bands": t["bands"],
                "product_level": t["product_level"],
                "resolution_m": cm.TEACHER_GRID_M,
                "optional_extra": cm.TEACHER_EXTRA,
            }
            for n, t in teachers.items()
        },
        "variants": results,
        "synthetic_frames_info": {"train": synth_info, "validation": val_info},
        "speed": spd,
        "timing_s": {
            "teacher_on_scenes": round(t_teacher - t_start, 1),
            "data_total": round(t_data - t_start, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "threads": THREADS,
            "quick": bool(args.quick),
        },
    }
    (out_dir / f"{NAME}_eval.json").write_text(json.dumps(report, indent=1) + "\n")
    log.info(
        "wrote %s (%d bytes, sha256 %s) and %s_eval.json in %.0f s",
        NAME,
        len(blob),
        sha,
        NAME,
        time.perf_counter() - t_start,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
