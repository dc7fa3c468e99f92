"""Build ``ship_screen.onnx``: the per-pixel ship screen (water mask + local sea background +
contrast test) as an ONNX graph.

This is a physical test, not a learned model; building the graph is deterministic (no data, no
randomness), so rebuilding gives a byte-identical file.  The learned part of the ship detector
(a chip classifier that removes coast, surf, cloud and wake false alarms) is trained by
``models/train_ship_classifier.py``.

Inputs: green (Sentinel-2 B03) and NIR (B08) reflectance and a validity mask, N x 1 x H x W, with
H and W multiples of ``BLOCK`` (the caller pads; aligning the blocks to the scene grid makes the
result independent of the tiling).  Per pixel:

* water        (green - nir) > ndwi_min * (green + nir)   (NDWI > ndwi_min, McFeeters 1996) and
               valid
* background   over ``BLOCK`` x ``BLOCK`` blocks: sums of water, water*nir, water*nir^2 and valid,
               then a ``CONTEXT`` x ``CONTEXT`` box of blocks around each block (zero padded) ->
               sea fraction, mean and standard deviation of NIR over the water pixels of the
               window (about 7 x 8 = 56 px across; the object itself is not water, so it does not
               count in its own background)
* threshold    thr = max(bg_mean + max(k_std * bg_std, delta_min), nir_min), or +inf where the
               sea fraction is below sea_frac_min, fewer than min_water water pixels exist, or
               the block is land core: it and its 8 neighbours each have more than
               land_block_min of non-water pixels (24 px of solid land, wider than any hull)
* candidate    nir > thr (of the pixel's block) and valid

Every per-pixel operation is element-wise or a block average (a few cheap passes over the tile);
the context box runs on the 64x smaller block grid.  Outputs: ``candidate`` (uint8 0/1, full
resolution) and the block-grid maps ``bg_mean``, ``bg_std``, ``sea_frac`` and ``water_count``
(N x 1 x H/BLOCK x W/BLOCK) that the detector uses to grow candidates into vessel footprints on
small chips only.

Usage: ``python models/build_ship_model.py [OUT_DIR]`` (default: this folder); writes the
``.onnx`` file and its entry (with sha256) in ``OUT_DIR/manifest.json``, keeping every other
entry.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "ship_screen"
VERSION = "1.2.0"
OPSET = 17
#: block edge in pixels (background statistics are computed per block)
BLOCK = 8
#: the background window is CONTEXT x CONTEXT blocks centred on the pixel's block
CONTEXT = 7
#: Tuned on the busan port of sen2ships (models/train_ship_classifier.py reports the others).
THRESHOLDS = {
    "ndwi_min": 0.05,
    "k_std": 3.0,
    "delta_min": 0.02,
    "nir_min": 0.03,
    "sea_frac_min": 0.05,
    "min_water": 40.0,
    "land_block_min": 0.9,
}


def build() -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    img: list[str | int] = ["N", 1, "H", "W"]
    coarse: list[str | int] = ["N", 1, "h", "w"]
    inputs = [
        helper.make_tensor_value_info("green", TensorProto.FLOAT, img),
        helper.make_tensor_value_info("nir", TensorProto.FLOAT, img),
        helper.make_tensor_value_info("valid", TensorProto.FLOAT, img),
    ] + [helper.make_tensor_value_info(k, TensorProto.FLOAT, [1]) for k in THRESHOLDS]

    eps = const("eps", np.array([1e-9], np.float32))
    zero = const("zero", np.array([0.0], np.float32))
    half = const("half", np.array([0.5], np.float32))
    inf = const("inf", np.array([np.inf], np.float32))
    # block average then window average (count_include_pad) -> window sums
    win_px = const("win_px", np.array([float(BLOCK * BLOCK * CONTEXT * CONTEXT)], np.float32))

    # --- water mask and the per-pixel sums (full resolution) ------------------------------
    gsum = node("Add", ["green", "nir"], "g_plus_n")
    gdif = node("Sub", ["green", "nir"], "g_minus_n")
    is_water = node("Greater", [gdif, node("Mul", [gsum, "ndwi_min"], "ndwi_rhs")], "is_water")
    water = node(
        "Mul", [node("Cast", [is_water], "water_f", to=TensorProto.FLOAT), "valid"], "water"
    )
    wn = node("Mul", [water, "nir"], "water_nir")
    wnn = node("Mul", [wn, "nir"], "water_nir2")
    # block averages plane by plane (no full-resolution concatenation), then stack the small
    # block planes
    pooled = [
        node("AveragePool", [x], f"{x}_blk", kernel_shape=[BLOCK, BLOCK], strides=[BLOCK, BLOCK])
        for x in (water, wn, wnn, "valid")
    ]
    blocks = node("Concat", pooled, "block_mean", axis=1)
    r = CONTEXT // 2
    win = node(
        "AveragePool",
        [blocks],
        "win_mean",
        kernel_shape=[CONTEXT, CONTEXT],
        strides=[1, 1],
        pads=[r, r, r, r],
        count_include_pad=1,
    )
    sums = node("Mul", [win, win_px], "win_sums")
    n_w, s1, s2, n_v = (f"win_{k}" for k in ("water", "nir", "nir2", "valid"))
    nodes.append(helper.make_node("Split", [sums], [n_w, s1, s2, n_v], name="split_win", axis=1))
    nw_safe = node("Max", [n_w, eps], "n_water_safe")
    mean = node("Div", [s1, nw_safe], "mean_raw")
    ex2 = node("Div", [s2, nw_safe], "ex2")
    var = node(
        "Max", [node("Sub", [ex2, node("Mul", [mean, mean], "mean2")], "var_raw"), zero], "var"
    )
    std = node("Sqrt", [var], "std_raw")
    sea = node("Div", [n_w, node("Max", [n_v, eps], "n_valid_safe")], "sea_raw")
    margin = node("Max", [node("Mul", [std, "k_std"], "k_sigma"), "delta_min"], "margin")
    thr = node("Max", [node("Add", [mean, margin], "thr_ctx"), "nir_min"], "thr_abs")
    sea_ok = node(
        "And",
        [
            node("Not", [node("Less", [sea, "sea_frac_min"], "sea_low")], "sea_enough"),
            node("Not", [node("Less", [n_w, "min_water"], "water_low")], "water_enough"),
        ],
        "sea_ok",
    )
    # land core: blocks that are almost all non-water, with all 8 neighbours the same (a
    # 3 x 3 erosion on the block grid, i.e. >= 24 px of solid land, wider than any hull)
    b_w, b_n, b_nn, b_v = (f"blk_{k}" for k in ("water", "nir", "nir2", "valid"))
    nodes.append(
        helper.make_node("Split", [blocks], [b_w, b_n, b_nn, b_v], name="split_blk", axis=1)
    )
    nonwater = node("Sub", [b_v, b_w], "blk_nonwater")
    land_blk = node(
        "Cast",
        [node("Greater", [nonwater, "land_block_min"], "blk_land_b")],
        "blk_land",
        to=TensorProto.FLOAT,
    )
    eroded = node(
        "Neg",
        [
            node(
                "MaxPool",
                [node("Neg", [land_blk], "blk_land_neg")],
                "blk_land_negmax",
                kernel_shape=[3, 3],
                strides=[1, 1],
                pads=[1, 1, 1, 1],
            )
        ],
        "land_core_f",
    )
    land_core = node("Greater", [eroded, half], "land_core")
    keep = node("And", [sea_ok, node("Not", [land_core], "not_land_core")], "screen_ok")
    thr_c = node("Where", [keep, thr, inf], "thr_coarse")

    # --- back to full resolution by repetition (exact, no interpolation) --------------------
    shape = node("Shape", ["nir"], "img_shape")
    cshape = node("Shape", [thr_c], "coarse_shape")
    idx = {k: const(f"i{k}", np.array([k], np.int64)) for k in range(4)}
    i_block = const("i_block", np.array([BLOCK], np.int64))
    i_one = const("i_one1", np.array([1], np.int64))

    def dim(src: str, k: int, tag: str) -> str:
        return node("Gather", [src, idx[k]], f"{tag}_{k}", axis=0)

    n_, c_, h_, w_ = (dim(cshape, k, "cdim") for k in range(4))
    six = node("Concat", [n_, c_, h_, i_one, w_, i_one], "shape6", axis=0)
    six_big = node("Concat", [n_, c_, h_, i_block, w_, i_block], "shape6_big", axis=0)
    # compare on a 6-D view: nir (N,1,h,B,w,B) against thr (N,1,h,1,w,1), broadcast
    nir6 = node("Reshape", ["nir", six_big], "nir6")
    valid6 = node("Reshape", ["valid", six_big], "valid6")
    thr6 = node("Reshape", [thr_c, six], "thr6")
    cand6 = node(
        "And",
        [node("Greater", [nir6, thr6], "bright6"), node("Greater", [valid6, half], "valid_b6")],
        "cand6",
    )
    cand = node("Reshape", [cand6, shape], "cand_b")

    # --- outputs ------------------------------------------------------------------------------
    nodes.append(
        helper.make_node("Cast", [cand], ["candidate"], name="candidate", to=TensorProto.UINT8)
    )
    nodes.append(helper.make_node("Identity", [mean], ["bg_mean"], name="bg_mean"))
    nodes.append(helper.make_node("Identity", [std], ["bg_std"], name="bg_std"))
    nodes.append(helper.make_node("Identity", [sea], ["sea_frac"], name="sea_frac"))
    nodes.append(helper.make_node("Identity", [n_w], ["water_count"], name="water_count"))
    outputs = [
        helper.make_tensor_value_info("candidate", TensorProto.UINT8, img),
        helper.make_tensor_value_info("bg_mean", TensorProto.FLOAT, coarse),
        helper.make_tensor_value_info("bg_std", TensorProto.FLOAT, coarse),
        helper.make_tensor_value_info("sea_frac", TensorProto.FLOAT, coarse),
        helper.make_tensor_value_info("water_count", TensorProto.FLOAT, coarse),
    ]
    graph = helper.make_graph(nodes, NAME, inputs, outputs, inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="eotriage/models/build_ship_model.py",
        producer_version=VERSION,
        doc_string=(__doc__ or "").strip().splitlines()[0],
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


MANIFEST_ENTRY: dict[str, Any] = {
    "file": f"{NAME}.onnx",
    "version": VERSION,
    "kind": "physical test as an ONNX graph (not learned)",
    "built_by": "models/build_ship_model.py",
    "inputs": {
        "green": "green reflectance (Sentinel-2 B03), N x 1 x H x W, H and W multiples of block",
        "nir": "near-infrared reflectance (Sentinel-2 B08), same shape",
        "valid": "1 where the pixel is usable, 0 elsewhere",
    },
    "outputs": {
        "candidate": "uint8 0/1, bright compact pixels against the local sea background",
        "bg_mean": "NIR mean over the water pixels of each block's context window",
        "bg_std": "NIR standard deviation over the same pixels",
        "sea_frac": "water pixels / valid pixels in the window",
        "water_count": "water pixels in the window",
    },
    "bands": ["green", "nir"],
    "block_px": BLOCK,
    "context_blocks": CONTEXT,
    "resolution_m": "10 m class (the window is 7 x 8 px, about 0.5 km at 8-10 m)",
    "thresholds": THRESHOLDS,
}


def serialise() -> bytes:
    return build().SerializeToString(deterministic=True)


def main(argv: list[str]) -> int:
    """Write the model and its manifest entry (sha256 included) into the output folder."""
    sys.path.insert(0, str(Path(__file__).parent))
    from model_io import build_main

    return build_main(argv, NAME, serialise, MANIFEST_ENTRY)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
