"""Build ``fire_swir.onnx``: the Sentinel-2/Landsat SWIR active-fire test as an ONNX graph.

This is a physical test, not a learned model; building the graph is deterministic (no data, no
randomness), so rebuilding gives a byte-identical file (checked by the test suite).

Per pixel, with SWIR-2 (S2 B12 / L8 B7) = x and SWIR-1 (S2 B11 / L8 B6) = y, reflectance:

* candidate      x / y > ratio_min  and  x > swir22_min  and valid
* unambiguous    x / y > unamb_ratio and x > unamb_swir22
  (the Sentinel-2 analogue of Schroeder et al. 2016's unambiguous-fire test)
* contextual     x > mean_bg + max(context_k * std_bg, context_delta), where mean_bg / std_bg
  are over the valid, non-candidate pixels of a (2r+1)^2 window around the pixel and at least
  min_bg_count such pixels exist (Schroeder et al.'s contextual test against the background)
* fire           candidate and (unambiguous or contextual)

With the input ``context`` false, the contextual test is skipped (fire = candidate and
unambiguous) and only the cheap per-pixel screen runs; the ``candidate`` output tells the caller
where to run the full test.

The window statistics are computed with integral images (CumSum in float64), so the cost is
O(pixels) whatever the radius.  Outputs: ``fire`` (uint8 0/1), ``candidate`` (uint8 0/1) and
``score`` (0..1, 0 where no fire): 0.5 + 0.25 * ratio margin + 0.25 * brightness margin,
each clipped to 0..1 between the candidate and unambiguous thresholds.  The score is a
heuristic confidence, not a calibrated probability.

Usage: ``python models/build_fire_model.py [OUT_DIR]`` (default: this folder); writes the
``.onnx`` file and its entry (with sha256) in ``OUT_DIR/manifest.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "fire_swir"
VERSION = "1.1.0"
OPSET = 17
THRESHOLDS = {
    "ratio_min": 1.3,
    "swir22_min": 0.3,
    "context_k": 3.0,
    "context_delta": 0.05,
    "unamb_ratio": 2.5,
    "unamb_swir22": 0.5,
    "min_bg_count": 10.0,
}


def build() -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    ctx_nodes: list[onnx.NodeProto] = []  # the contextual test, run only when a tile has candidates
    inits: list[onnx.TensorProto] = []
    target = nodes

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: object) -> str:
        target.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    img = ["N", 1, "H", "W"]
    inputs = [
        helper.make_tensor_value_info("swir22", TensorProto.FLOAT, img),
        helper.make_tensor_value_info("swir16", TensorProto.FLOAT, img),
        helper.make_tensor_value_info("valid", TensorProto.FLOAT, img),
        helper.make_tensor_value_info("radius", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("context", TensorProto.BOOL, [1]),
    ] + [helper.make_tensor_value_info(k, TensorProto.FLOAT, [1]) for k in THRESHOLDS]

    eps = const("eps", np.array([1e-6], np.float32))
    one = const("one", np.array([1.0], np.float32))
    zero = const("zero", np.array([0.0], np.float32))
    half = const("half", np.array([0.5], np.float32))
    quarter = const("quarter", np.array([0.25], np.float32))
    i_one = const("i_one", np.array([1], np.int64))
    i_two = const("i_two", np.array([2], np.int64))
    i_zeros2 = const("i_zeros2", np.array([0, 0], np.int64))
    i_big2 = const("i_big2", np.array([2**62, 2**62], np.int64))
    axes23 = const("axes23", np.array([2, 3], np.int64))
    ax2 = const("ax2", np.array(2, np.int64))
    ax3 = const("ax3", np.array(3, np.int64))

    # --- per-pixel tests -------------------------------------------------------------
    valid_b = node("Greater", ["valid", half], "valid_b")
    s16 = node("Max", ["swir16", eps], "s16_safe")
    ratio = node("Div", ["swir22", s16], "ratio")
    c1 = node("Greater", [ratio, "ratio_min"], "c_ratio")
    c2 = node("Greater", ["swir22", "swir22_min"], "c_bright")
    cand = node("And", [node("And", [c1, c2], "c_12"), valid_b], "candidate_b")
    u1 = node("Greater", [ratio, "unamb_ratio"], "u_ratio")
    u2 = node("Greater", ["swir22", "unamb_swir22"], "u_bright")
    unamb = node("And", [u1, u2], "unambiguous")

    # --- background statistics with integral images -------------------------------------
    # The contextual test runs only when ``context`` is true and the input has a candidate
    # (an If node); otherwise fire = candidate and unambiguous.  A caller screens a whole tile
    # with context=false (a few element-wise ops per pixel) and runs context=true only on
    # crops around the candidates.
    candf = node("Cast", [cand], "candidate_f", to=TensorProto.FLOAT)
    any_cand = node(
        "Greater", [node("ReduceMax", [candf], "cand_max", keepdims=0), zero], "any_cand"
    )
    run_ctx = node("And", [any_cand, "context"], "run_context")
    target = ctx_nodes
    bg = node("Mul", ["valid", node("Sub", [one, candf], "not_cand")], "bg")
    xbg = node("Mul", ["swir22", bg], "x_bg")
    x2bg = node("Mul", ["swir22", xbg], "x2_bg")
    stack = node("Concat", [bg, xbg, x2bg], "stack", axis=1)
    stack_d = node("Cast", [stack], "stack_d", to=TensorProto.DOUBLE)
    r = "radius"
    r1 = node("Add", [r, i_one], "r_plus_1")
    k = node("Add", [node("Mul", [r, i_two], "r_times_2"), i_one], "win")
    # pads = [0, 0, r+1, r+1, 0, 0, r, r]
    pads = node("Concat", [i_zeros2, r1, r1, i_zeros2, r, r], "pads", axis=0)
    padded = node("Pad", [stack_d, pads], "padded", mode="constant")
    cs = node("CumSum", [node("CumSum", [padded, ax2], "cs_rows"), ax3], "integral")
    neg_k = node("Neg", [k], "neg_win")
    kk = node("Concat", [k, k], "win2", axis=0)
    nkk = node("Concat", [neg_k, neg_k], "neg_win2", axis=0)
    z_k = node("Concat", [node("Sub", [k, k], "zero_i"), k], "zero_win", axis=0)
    k_z = node("Concat", [k, "zero_i"], "win_zero", axis=0)
    big_nk = node(
        "Concat",
        [node("Add", [k, const("i_big", np.array([2**62], np.int64))], "big"), neg_k],
        "big_negwin",
        axis=0,
    )
    nk_big = node("Concat", [neg_k, "big"], "negwin_big", axis=0)
    a = node("Slice", [cs, kk, i_big2, axes23], "sum_a")
    b = node("Slice", [cs, z_k, nk_big, axes23], "sum_b")
    c = node("Slice", [cs, k_z, big_nk, axes23], "sum_c")
    d = node("Slice", [cs, i_zeros2, nkk, axes23], "sum_d")
    box = node("Add", [node("Sub", [node("Sub", [a, b], "ab"), c], "abc"), d], "box_d")
    boxf = node("Cast", [box], "box", to=TensorProto.FLOAT)
    n, s1, s2 = (f"box_{i}" for i in ("n", "s1", "s2"))
    target.append(helper.make_node("Split", [boxf], [n, s1, s2], name="split_box", axis=1))
    nn = node("Max", [n, one], "n_safe")
    mean = node("Div", [s1, nn], "bg_mean")
    var = node(
        "Max",
        [
            node(
                "Sub",
                [node("Div", [s2, nn], "bg_ex2"), node("Mul", [mean, mean], "bg_mean2")],
                "bg_var_raw",
            ),
            zero,
        ],
        "bg_var",
    )
    std = node("Sqrt", [var], "bg_std")
    margin = node("Max", [node("Mul", [std, "context_k"], "k_std"), "context_delta"], "ctx_margin")
    ctx_hot = node("Greater", ["swir22", node("Add", [mean, margin], "ctx_thr")], "ctx_hot")
    enough = node("Not", [node("Less", [n, "min_bg_count"], "few_bg")], "enough_bg")
    ctx = node("And", [ctx_hot, enough], "contextual")
    node("And", [cand, node("Or", [unamb, ctx], "unamb_or_ctx")], "fire_ctx")
    target = nodes
    bool_out = [helper.make_tensor_value_info("fire_ctx", TensorProto.BOOL, None)]
    then_graph = helper.make_graph(ctx_nodes, "contextual_test", [], bool_out)
    else_graph = helper.make_graph(
        [helper.make_node("And", [cand, unamb], ["fire_none"], name="fire_none")],
        "unambiguous_only",
        [],
        [helper.make_tensor_value_info("fire_none", TensorProto.BOOL, None)],
    )
    fire_b = node("If", [run_ctx], "fire_b", then_branch=then_graph, else_branch=else_graph)

    # --- outputs ---------------------------------------------------------------------------
    nodes.append(helper.make_node("Cast", [fire_b], ["fire"], name="fire", to=TensorProto.UINT8))
    fire_f = node("Cast", [fire_b], "fire_f", to=TensorProto.FLOAT)

    def margin01(x: str, lo: str, hi: str, tag: str) -> str:
        num = node("Sub", [x, lo], f"{tag}_num")
        den = node("Max", [node("Sub", [hi, lo], f"{tag}_den_raw"), eps], f"{tag}_den")
        return node("Clip", [node("Div", [num, den], f"{tag}_frac"), zero, one], f"{tag}_margin")

    m_r = margin01(ratio, "ratio_min", "unamb_ratio", "ratio")
    m_a = margin01("swir22", "swir22_min", "unamb_swir22", "bright")
    raw_score = node(
        "Add",
        [half, node("Mul", [quarter, node("Add", [m_r, m_a], "margins")], "q_margins")],
        "raw_score",
    )
    nodes.append(helper.make_node("Mul", [raw_score, fire_f], ["score"], name="score"))

    nodes.append(
        helper.make_node("Cast", [cand], ["candidate"], name="cand_u8", to=TensorProto.UINT8)
    )
    outputs = [
        helper.make_tensor_value_info("fire", TensorProto.UINT8, img),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, img),
        helper.make_tensor_value_info("candidate", TensorProto.UINT8, img),
    ]
    graph = helper.make_graph(nodes, NAME, inputs, outputs, inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="eotriage/models/build_fire_model.py",
        producer_version=VERSION,
        doc_string=(__doc__ or "").strip().splitlines()[0],
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


MANIFEST_ENTRY = {
    "file": f"{NAME}.onnx",
    "version": VERSION,
    "kind": "physical test as an ONNX graph (not learned)",
    "built_by": "models/build_fire_model.py",
    "inputs": {
        "swir22": "SWIR-2 reflectance (Sentinel-2 B12, Landsat 8 B7), N x 1 x H x W",
        "swir16": "SWIR-1 reflectance (Sentinel-2 B11, Landsat 8 B6), N x 1 x H x W",
        "valid": "1 where the pixel is usable, 0 elsewhere",
        "radius": "background window radius in pixels",
        "context": "true: full test; false: screen only (fire = candidate and unambiguous)",
    },
    "outputs": {
        "fire": "uint8 0/1",
        "score": "0..1 heuristic confidence where fire, else 0",
        "candidate": "uint8 0/1, pixels that passed the per-pixel screen",
    },
    "bands": ["swir22", "swir16"],
    "resolution_m": "any: the background radius is set in metres and converted to pixels",
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
