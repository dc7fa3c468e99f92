"""Cloud screening: the ukis-csmask teacher run through our own code, the distilled student and
the scoring helpers.

Needs ``../shared/data`` (``$EOTRIAGE_SHARED_DATA``) for the real scenes and ukis-csmask 1.0.0
(optional extra ``clouds-accurate``) for the teacher; each test skips with the reason when its
part is absent.  The student is ``models/cloud_student.onnx`` with the sha256 written by
``models/train_cloud_student.py`` into ``models/cloud_student_eval.json``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pipeline.detectors import cloud_models as cm
from pipeline.evaluation import clouds as ce

from .conftest import REPO, SHARED

MODELS = REPO / "models"
STUDENT = MODELS / "cloud_student.onnx"
STUDENT_EVAL = MODELS / "cloud_student_eval.json"
PORTS = ("algiers", "athens", "busan", "casablanca", "durban", "gdynia", "honolulu", "valencia")


def _has_ukis() -> bool:
    return importlib.util.find_spec(cm.TEACHER_PACKAGE) is not None


needs_ukis = pytest.mark.skipif(
    not _has_ukis(), reason="ukis-csmask not installed (optional extra clouds-accurate)"
)


def _shared() -> Path:
    if not (SHARED / "clouds" / "ukis_sentinel2.npz").is_file():
        pytest.skip(f"shared data not found at {SHARED} (set EOTRIAGE_SHARED_DATA)")
    return SHARED


def _synth() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cloud_synth", MODELS / "cloud_synth.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cloud_synth"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def student() -> Any:
    if not STUDENT.is_file() or not STUDENT_EVAL.is_file():
        pytest.skip("models/cloud_student.onnx not built (python models/train_cloud_student.py)")
    expected = json.loads(STUDENT_EVAL.read_text())["sha256"]
    return cm.load_verified(STUDENT, expected, threads=2)


@pytest.fixture(scope="module")
def sample() -> tuple[dict[str, np.ndarray], np.ndarray]:
    d = np.load(_shared() / "clouds" / "ukis_sentinel2.npz")
    img = d["img"].astype(np.float32)
    return {r: img[..., i] for i, r in enumerate(cm.BANDS_6)}, ce.ukis_reference(d["msk"])


def _read_port(port: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rasterio = pytest.importorskip("rasterio")
    folder = _shared() / "sen2ships" / port
    bands = {}
    for role, name in zip(cm.BANDS_4, ("B02", "B03", "B04", "B08"), strict=True):
        with rasterio.open(folder / f"{name}.tif") as ds:
            bands[role] = ds.read(1).astype(np.float32) / 65535.0
    with rasterio.open(folder / "vessel_instances.tif") as ds:
        vessels = ds.read(1)
    return bands, vessels


def _read_virginia() -> dict[str, np.ndarray]:
    rasterio = pytest.importorskip("rasterio")
    folder = _shared() / "s2_l1c_virginia"
    out = {}
    for role, name in zip(cm.BANDS_6, ("B02", "B03", "B04", "B08", "B11", "B12"), strict=True):
        with rasterio.open(folder / f"{name}.tif") as ds:
            a = ds.read(1).astype(np.float32) / 10000.0
        f = 1024 // a.shape[0]
        out[role] = np.repeat(np.repeat(a, f, axis=0), f, axis=1) if f > 1 else a
    return out


# ------------------------------------------------------------------ grids, fractions, scoring


def test_block_mean_matches_numpy_including_partial_blocks() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((20, 23)).astype(np.float32)
    got, frac = cm.block_mean(a, 6)
    assert frac is None and got.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert got[i, j] == pytest.approx(a[6 * i : 6 * i + 6, 6 * j : 6 * j + 6].mean(), 1e-5)
    valid = rng.random((20, 23)) > 0.3
    got_v, frac_v = cm.block_mean(a, 6, valid)
    assert frac_v is not None
    blk = a[:6, :6][valid[:6, :6]]
    assert got_v[0, 0] == pytest.approx(blk.mean(), 1e-5)
    assert frac_v[0, 0] == pytest.approx(valid[:6, :6].mean(), 1e-6)


def test_upsampling_and_fractions() -> None:
    cls = np.array([[0, 1], [2, cm.NODATA]], np.uint8)
    up = cm.upsample_classes(cls, 3, (5, 6))
    assert up.shape == (5, 6) and up[4, 0] == 2 and up[0, 5] == 1
    f = cm.fractions(cls)
    assert (f.cloud, f.shadow, f.clear, f.valid_pixels) == (
        pytest.approx(1 / 3),
        pytest.approx(1 / 3),
        pytest.approx(1 / 3),
        3,
    )
    assert cm.fractions(np.full((2, 2), cm.NODATA, np.uint8)).valid_pixels == 0
    probs = np.zeros((3, 2, 2), np.float32)
    probs[1] = 1.0
    assert (cm.classes_from_probs(cm.upsample_probs(probs, 4, (7, 8))) == cm.CLOUD).all()
    assert cm.grid_factor(10, 60) == 6 and cm.grid_factor(8.0, 30) == 4
    assert cm.grid_factor(30, 60) == 2 and cm.grid_factor(100, 30) == 1


def test_scores_against_hand_counts() -> None:
    ref = np.array([0, 0, 1, 1, 2, 2, 0, 1], np.uint8)
    pred = np.array([0, 1, 1, 1, 2, 0, 0, cm.NODATA], np.uint8)
    s = ce.score(ref, pred)
    assert s.pixels == 7
    assert s.confusion == ((2, 1, 0), (0, 2, 0), (1, 0, 1))
    assert s.agreement == pytest.approx(5 / 7)
    # cloud vs rest: only the clear pixel called cloud is wrong
    assert s.cloud_accuracy == pytest.approx(6 / 7)
    po, pe = 5 / 7, (3 * 3 + 2 * 3 + 2 * 1) / 49
    assert s.kappa == pytest.approx((po - pe) / (1 - pe))
    assert ce.score(ref, ref).kappa == 1.0
    assert ce.ukis_reference(np.array([[4, 0, 1, 2, 3]])).tolist() == [[1, 2, 0, 0, 0]]


# ------------------------------------------------------------------ teacher


def test_missing_teacher_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(cm.CloudModelError, match="clouds-accurate"):
        cm.teacher_model_path("model_6b_l1c")
    with pytest.raises(cm.CloudModelError, match="blue, green, red and nir"):
        cm.select_teacher(["swir16", "swir22"], "l1c")
    assert cm.select_teacher(cm.BANDS_6, "L2A").name == "model_6b_l2a"
    assert cm.select_teacher([*cm.BANDS_4, "swir16"], "l2a").name == "model_4b_l2a"


@needs_ukis
def test_teacher_specs_match_the_package() -> None:
    for name, spec in cm.TEACHERS.items():
        assert cm.teacher_spec_from_package(name) == spec


@needs_ukis
@pytest.mark.parametrize("shape", [(512, 512), (300, 700), (100, 257)])
def test_teacher_tiling_matches_the_package(shape: tuple[int, int]) -> None:
    from ukis_csmask.utils import tile_array

    rng = np.random.default_rng(1)
    img = rng.random((*shape, 2)).astype(np.float32)
    theirs = np.moveaxis(tile_array(img, xsize=256, ysize=256, overlap=0.2), -1, 1)
    ours = cm.teacher_tiles(np.moveaxis(img, -1, 0), cm.teacher_layout(shape))
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


@needs_ukis
def test_teacher_reproduces_the_package_and_scores_on_the_sample(
    sample: tuple[dict[str, np.ndarray], np.ndarray],
) -> None:
    import warnings

    from ukis_csmask.mask import CSmask

    bands, ref = sample
    img = np.stack([bands[r] for r in cm.BANDS_6], axis=-1)
    spec = cm.TEACHERS["model_6b_l1c"]
    ours = cm.run_teacher(cm.make_session(cm.teacher_model_path(spec.name)), bands, "l1c", 1)
    assert ours.model == spec.name and ours.classes.shape == (512, 512)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = CSmask(
            img=img,
            band_order=list(cm.BANDS_6),
            product_level="l1c",
            intra_op_num_threads=2,
            inter_op_num_threads=1,
        ).csm[..., 0]
    # identical up to float rounding at near-ties (0-2 of 262,144 pixels)
    assert int((ours.classes != theirs).sum()) <= 10
    s = ce.score(ref, ours.classes)
    assert s.cloud_accuracy >= 0.90 and s.kappa >= 0.70


# ------------------------------------------------------------------ student


def test_tampered_student_is_detected(tmp_path: Path) -> None:
    if not STUDENT.is_file() or not STUDENT_EVAL.is_file():
        pytest.skip("models/cloud_student.onnx not built")
    expected = json.loads(STUDENT_EVAL.read_text())["sha256"]
    cm.verify_sha256(STUDENT, expected)
    bad = tmp_path / STUDENT.name
    shutil.copyfile(STUDENT, bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(cm.CloudModelError, match="sha256"):
        cm.verify_sha256(bad, expected)
    with pytest.raises(cm.CloudModelError, match="sha256"):
        cm.load_verified(bad, expected)


def test_student_io_contract(student: Any) -> None:
    names = [i.name for i in student.get_inputs()]
    assert names == ["bands", "has_swir"]
    assert [o.name for o in student.get_outputs()] == ["logits", "classes"]
    assert STUDENT.stat().st_size <= 2 * 1024 * 1024
    bands = {r: np.full((50, 70), 0.05, np.float32) for r in cm.BANDS_4}
    m = cm.run_student(student, bands, 6)
    assert m.classes.shape == (9, 12) and m.probs.shape == (3, 9, 12)
    assert m.on_grid().shape == (50, 70) and m.on_grid(smooth=True).shape == (50, 70)
    np.testing.assert_allclose(m.probs.sum(axis=0), 1.0, atol=1e-5)
    valid = np.ones((50, 70), bool)
    valid[:, :30] = False
    mv = cm.run_student(student, bands, 6, valid=valid)
    assert (mv.classes[:, :4] == cm.NODATA).all() and mv.fractions().valid_pixels == 9 * 7


@pytest.mark.parametrize("use_swir", [True, False])
def test_student_on_the_sample(
    student: Any, sample: tuple[dict[str, np.ndarray], np.ndarray], use_swir: bool
) -> None:
    """6-band and 4-band paths on the only real cloud truth.  The shipped student was
    distilled on the teacher's masks of this sample (never on its reference mask); the
    held-out figure is in cloud_student_eval.json (variant ``holdout``)."""
    bands, ref = sample
    roles = cm.BANDS_6 if use_swir else cm.BANDS_4
    m = cm.run_student(student, {r: bands[r] for r in roles}, factor=2)
    s = ce.score(ref, m.on_grid(smooth=True))
    assert s.cloud_accuracy >= 0.90, s
    assert s.kappa >= 0.70, s


@pytest.mark.parametrize("use_swir", [True, False])
def test_student_full_cloud_tile(student: Any, use_swir: bool) -> None:
    """A clear real 10 m scene under a drawn overcast layer -> cloud fraction >= 0.9."""
    synth = _synth()
    base = _read_virginia()
    rng = np.random.default_rng(5)
    roles = cm.BANDS_6 if use_swir else cm.BANDS_4
    for _ in range(3):
        drawn, truth = synth.add_clouds({r: base[r] for r in roles}, rng, 10.0, "full")
        assert (truth.alpha >= 0.9).all()
        m = cm.run_student(student, drawn, 6)
        assert m.fractions().cloud >= 0.9, m.fractions()


def test_student_clear_real_scenes(student: Any) -> None:
    """Clear real scenes (the teacher finds no cloud there) -> cloud fraction <= 0.05."""
    v = _read_virginia()
    for roles in (cm.BANDS_6, cm.BANDS_4):
        f = cm.run_student(student, {r: v[r] for r in roles}, 6).fractions()
        assert f.cloud <= 0.05, (roles, f)
    for port in ("athens", "gdynia"):
        bands, vessels = _read_port(port)
        m = cm.run_student(student, bands, 8)
        assert m.fractions().cloud <= 0.05
        # no labelled vessel under the student's cloud mask
        assert not ((m.on_grid(smooth=True) == cm.CLOUD) & (vessels > 0)).any()
