"""Build ``crop_stress.onnx``: the vegetation-index crop-stress test as an ONNX graph.

A physical rule set, not a learned model; the graph is built without data or randomness, so a
rebuild gives a byte-identical file (checked by the test suite).

Inputs are TOA reflectances on the detector's working grid (the 20 m cells of a Sentinel-2
tile).  Optional bands may be fed as a ``1 x 1 x 1 x 1`` dummy (they broadcast); the ``use_ndre``
/ ``use_swir`` flags (0 or 1) then switch off the tests that need them.

Indices (DESIGN.md section 4)::

    NDVI = (B08 - B04) / (B08 + B04)        NDRE = (B8A - B05) / (B8A + B05)
    NDMI = (B08 - B11) / (B08 + B11)        MSI  = B11 / B08
    NDWI = (B03 - B08) / (B03 + B08)        (McFeeters; water mask only)

Land classes (``landclass`` output, uint8)::

    0 invalid    1 water: NDWI > water_ndwi_min or NDVI < water_ndvi_max
    2 bare soil / built-up: NDVI < bare_ndvi_max (not water)
    3 vegetation outside the cropland mask      4 cropland (vegetated, inside the mask)

Stress, inside cropland only:

* low-value test (pixels without a baseline): NDVI < ndvi_stress, confirmed by NDRE < ndre_stress
  or NDMI < ndmi_stress (when neither NDRE nor NDMI can be computed, NDVI alone decides);
* drop test (pixels with a baseline NDVI >= bare_ndvi_max): baseline - NDVI > drop_min.

Severe: NDVI < ndvi_severe, or MSI > msi_severe, or (drop test) baseline - NDVI > drop_severe.
Outputs: ``stress`` and ``severe`` (uint8 0/1), ``landclass``, and the four indices (float32).

Usage: ``python models/build_crop_model.py [OUT_DIR]`` (default: this folder); writes the
``.onnx`` file and its entry (with sha256) in ``OUT_DIR/manifest.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "crop_stress"
VERSION = "1.0.0"
OPSET = 17
THRESHOLDS = {
    "ndvi_stress": 0.5,
    "ndvi_severe": 0.35,
    "ndre_stress": 0.3,
    "ndmi_stress": 0.1,
    "msi_severe": 1.4,
    "drop_min": 0.15,
    "drop_severe": 0.3,
    "bare_ndvi_max": 0.2,
    "water_ndwi_min": 0.0,
    "water_ndvi_max": 0.0,
}
#: Per-call switches (0/1), fed by the detector from the bands the scene has.
FLAGS = ("use_ndre", "use_swir")
#: baseline samples below this mean "no baseline here" (the detector feeds -9 for none).
NO_BASELINE = -1.0


def build() -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def img(name: str, tag: str = "") -> onnx.ValueInfoProto:
        # each optional input has its own symbolic dims, so a 1x1x1x1 dummy broadcasts
        return helper.make_tensor_value_info(
            name, TensorProto.FLOAT, ["N", 1, f"H{tag}", f"W{tag}"]
        )

    inputs = [
        img("red"),
        img("nir"),
        img("valid"),
        img("green", "_g"),
        img("rededge1", "_re"),
        img("nir08", "_n8"),
        img("swir16", "_sw"),
        img("cropland", "_c"),
        img("baseline", "_b"),
    ] + [helper.make_tensor_value_info(k, TensorProto.FLOAT, [1]) for k in (*THRESHOLDS, *FLAGS)]

    eps = const("eps", np.array([1e-6], np.float32))
    half = const("half", np.array([0.5], np.float32))
    no_base = const("no_base", np.array([NO_BASELINE], np.float32))
    u = {v: const(f"u8_{v}", np.array([v], np.uint8)) for v in range(5)}

    def nd(a: str, b: str, tag: str) -> str:
        num = node("Sub", [a, b], f"{tag}_num")
        den = node("Max", [node("Add", [a, b], f"{tag}_sum"), eps], f"{tag}_den")
        return node("Div", [num, den], tag)

    # --- indices ----------------------------------------------------------------------------
    ndvi = nd("nir", "red", "ndvi_f")
    ndre = nd("nir08", "rededge1", "ndre_f")
    ndmi = nd("nir", "swir16", "ndmi_f")
    msi = node("Div", ["swir16", node("Max", ["nir", eps], "nir_safe")], "msi_f")
    ndwi = nd("green", "nir", "ndwi")

    # --- land classes -----------------------------------------------------------------------
    valid = node("Greater", ["valid", half], "valid_b")
    water = node(
        "Or",
        [
            node("Greater", [ndwi, "water_ndwi_min"], "w_ndwi"),
            node("Less", [ndvi, "water_ndvi_max"], "w_ndvi"),
        ],
        "water_b",
    )
    bare = node("Less", [ndvi, "bare_ndvi_max"], "bare_b")
    in_mask = node("Greater", ["cropland", half], "in_mask")
    cls_veg = node("Where", [in_mask, u[4], u[3]], "cls_veg")
    cls_bare = node("Where", [bare, u[2], cls_veg], "cls_bare")
    cls_water = node("Where", [water, u[1], cls_bare], "cls_water")
    nodes.append(
        helper.make_node("Where", [valid, cls_water, u[0]], ["landclass"], name="landclass")
    )
    not_land = node("Or", [water, bare], "water_or_bare")
    crop = node(
        "And",
        [node("And", [valid, in_mask], "valid_in_mask"), node("Not", [not_land], "land")],
        "crop_b",
    )

    # --- stress tests -------------------------------------------------------------------------
    on_ndre = node("Greater", ["use_ndre", half], "on_ndre")
    on_swir = node("Greater", ["use_swir", half], "on_swir")
    t_ndvi = node("Less", [ndvi, "ndvi_stress"], "t_ndvi")
    t_ndre = node("And", [node("Less", [ndre, "ndre_stress"], "lt_ndre"), on_ndre], "t_ndre")
    t_ndmi = node("And", [node("Less", [ndmi, "ndmi_stress"], "lt_ndmi"), on_swir], "t_ndmi")
    no_confirm = node("Not", [node("Or", [on_ndre, on_swir], "any_confirm")], "no_confirm")
    confirm = node("Or", [node("Or", [t_ndre, t_ndmi], "t_conf"), no_confirm], "confirmed")
    low = node("And", [t_ndvi, confirm], "low_stress")
    drop = node("Sub", ["baseline", ndvi], "drop")
    has_base = node(
        "And",
        [
            node("Greater", ["baseline", no_base], "base_given"),
            node("Not", [node("Less", ["baseline", "bare_ndvi_max"], "base_bare")], "base_veg"),
        ],
        "has_base",
    )
    t_drop = node("Greater", [drop, "drop_min"], "t_drop")
    # (Where has no bool kernel in onnxruntime: select with And/Or)
    rule = node(
        "Or",
        [
            node("And", [has_base, t_drop], "drop_stress"),
            node("And", [node("Not", [has_base], "no_base_here"), low], "low_no_base"),
        ],
        "stress_rule",
    )
    stress_b = node("And", [crop, rule], "stress_b")
    sev_ndvi = node("Less", [ndvi, "ndvi_severe"], "sev_ndvi")
    sev_msi = node("And", [node("Greater", [msi, "msi_severe"], "gt_msi"), on_swir], "sev_msi")
    sev_drop = node(
        "And", [has_base, node("Greater", [drop, "drop_severe"], "gt_drop")], "sev_drop"
    )
    severe_any = node("Or", [node("Or", [sev_ndvi, sev_msi], "sev_nm"), sev_drop], "sev_any")
    severe_b = node("And", [stress_b, severe_any], "severe_b")

    # --- outputs -------------------------------------------------------------------------------
    nodes.append(
        helper.make_node("Cast", [stress_b], ["stress"], name="stress", to=TensorProto.UINT8)
    )
    nodes.append(
        helper.make_node("Cast", [severe_b], ["severe"], name="severe", to=TensorProto.UINT8)
    )
    for name, src in (("ndvi", ndvi), ("ndre", ndre), ("ndmi", ndmi), ("msi", msi)):
        nodes.append(helper.make_node("Identity", [src], [name], name=name))
    out_img: list[str | int | None] = ["N", 1, "H", "W"]
    outputs = [
        helper.make_tensor_value_info("stress", TensorProto.UINT8, out_img),
        helper.make_tensor_value_info("severe", TensorProto.UINT8, out_img),
        helper.make_tensor_value_info(
            "landclass", TensorProto.UINT8, ["N", 1, "H_landclass", "W_landclass"]
        ),
        helper.make_tensor_value_info("ndvi", TensorProto.FLOAT, out_img),
        helper.make_tensor_value_info("ndre", TensorProto.FLOAT, ["N", 1, "H_ndre", "W_ndre"]),
        helper.make_tensor_value_info("ndmi", TensorProto.FLOAT, ["N", 1, "H_ndmi", "W_ndmi"]),
        helper.make_tensor_value_info("msi", TensorProto.FLOAT, ["N", 1, "H_msi", "W_msi"]),
    ]
    graph = helper.make_graph(nodes, NAME, inputs, outputs, inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="eotriage/models/build_crop_model.py",
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
    "built_by": "models/build_crop_model.py",
    "inputs": {
        "red": "red reflectance (Sentinel-2 B04, Landsat 8 B4), N x 1 x H x W",
        "nir": "NIR reflectance (Sentinel-2 B08, Landsat 8 B5), N x 1 x H x W",
        "valid": "1 where the pixel is usable, 0 elsewhere",
        "green": "green reflectance (B03) for the NDWI water mask; 1x1x1x1 zero if absent",
        "rededge1": "red-edge 1 (B05); 1x1x1x1 dummy if absent (then use_ndre = 0)",
        "nir08": "narrow NIR (B8A); 1x1x1x1 dummy if absent (then use_ndre = 0)",
        "swir16": "SWIR-1 (B11, Landsat 8 B6); 1x1x1x1 dummy if absent (then use_swir = 0)",
        "cropland": "1 inside the uplinked cropland mask; 1x1x1x1 one if no mask",
        "baseline": "expected NDVI per pixel; < -1 where none (1x1x1x1 -9 if no baseline)",
        "use_ndre": "1 to run the NDRE test",
        "use_swir": "1 to run the NDMI / MSI tests",
    },
    "outputs": {
        "stress": "uint8 0/1 stressed cropland",
        "severe": "uint8 0/1 severely stressed (subset of stress)",
        "landclass": "uint8 0 invalid, 1 water, 2 bare/built-up, 3 other vegetation, 4 cropland",
        "ndvi": "NDVI",
        "ndre": "NDRE",
        "ndmi": "NDMI",
        "msi": "MSI",
    },
    "bands": ["red", "nir", "green", "rededge1", "nir08", "swir16"],
    "required_bands": ["red", "nir"],
    "resolution_m": 20,
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
