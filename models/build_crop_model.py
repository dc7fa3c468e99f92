"""Build ``crop_stress.onnx``: the per-cell vegetation indices of the crop-stress detector.

A physical computation written as an ONNX graph, not a learned model; the graph is built without
data or randomness, so a rebuild gives a byte-identical file (checked by the test suite).

Inputs are TOA reflectances on the detector's working grid (the 20 m cells of a Sentinel-2
tile).  Optional bands may be fed as a ``1 x 1 x 1 x 1`` dummy (they broadcast); the ``use_ndre``
/ ``use_swir`` flags (0 or 1) then mark the indices that need them as not computed.

Indices (DESIGN.md section 4)::

    NDVI = (B08 - B04) / (B08 + B04)        NDRE = (B8A - B05) / (B8A + B05)
    NDMI = (B08 - B11) / (B08 + B11)        MSI  = B11 / B08
    NDWI = (B03 - B08) / (B03 + B08)        (McFeeters; water only)

Cell masks (uint8 0/1)::

    seen   = valid and clear sky (no cloud, no cloud shadow; ``clear`` is 1 without a cloud mask)
    usable = seen and not water (NDWI > water_ndwi_min or NDVI < water_ndvi_max)

Whether a field is stressed is not decided here: that needs the field's own history and the
other fields of the scene (``pipeline/detectors/crop.py``).  The manifest also carries those
thresholds, so that every threshold of the detector lives in one place.

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
VERSION = "2.0.0"
OPSET = 17
THRESHOLDS = {
    # graph inputs: the water test
    "water_ndwi_min": 0.0,
    "water_ndvi_max": 0.0,
    # used by the detector on per-field means (pipeline/detectors/crop.py)
    "drop_min": 0.15,
    "drop_severe": 0.3,
    "ndmi_drop_min": 0.15,
    "confirm_min": 0.05,
    "z_min": 2.0,
    "scene_drop_min": 0.1,
    "growth_min": 0.05,
}
#: Thresholds the graph takes as inputs (the others are the detector's).
GRAPH_THRESHOLDS = ("water_ndwi_min", "water_ndvi_max")
#: Per-call switches (0/1), fed by the detector from the bands the scene has.
FLAGS = ("use_ndre", "use_swir")


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
        img("valid", "_v"),
        img("clear", "_c"),
        img("green", "_g"),
        img("rededge1", "_re"),
        img("nir08", "_n8"),
        img("swir16", "_sw"),
    ] + [
        helper.make_tensor_value_info(k, TensorProto.FLOAT, [1])
        for k in (*GRAPH_THRESHOLDS, *FLAGS)
    ]

    eps = const("eps", np.array([1e-6], np.float32))
    half = const("half", np.array([0.5], np.float32))
    nan = const("nan", np.array([np.nan], np.float32))

    def nd(a: str, b: str, tag: str) -> str:
        num = node("Sub", [a, b], f"{tag}_num")
        den = node("Max", [node("Add", [a, b], f"{tag}_sum"), eps], f"{tag}_den")
        return node("Div", [num, den], tag)

    # --- indices (NaN where the bands are missing) ---------------------------------------------
    ndvi = nd("nir", "red", "ndvi_f")
    on_ndre = node("Greater", ["use_ndre", half], "on_ndre")
    on_swir = node("Greater", ["use_swir", half], "on_swir")
    ndre = node("Where", [on_ndre, nd("nir08", "rededge1", "ndre_raw"), nan], "ndre_f")
    ndmi = node("Where", [on_swir, nd("nir", "swir16", "ndmi_raw"), nan], "ndmi_f")
    msi_raw = node("Div", ["swir16", node("Max", ["nir", eps], "nir_safe")], "msi_raw")
    msi = node("Where", [on_swir, msi_raw, nan], "msi_f")
    ndwi = nd("green", "nir", "ndwi")

    # --- cell masks ------------------------------------------------------------------------------
    seen = node(
        "And",
        [node("Greater", ["valid", half], "valid_b"), node("Greater", ["clear", half], "clear_b")],
        "seen_b",
    )
    water = node(
        "Or",
        [
            node("Greater", [ndwi, "water_ndwi_min"], "w_ndwi"),
            node("Less", [ndvi, "water_ndvi_max"], "w_ndvi"),
        ],
        "water_b",
    )
    usable = node("And", [seen, node("Not", [water], "land_b")], "usable_b")

    # --- outputs -------------------------------------------------------------------------------
    nodes.append(helper.make_node("Cast", [seen], ["seen"], name="seen", to=TensorProto.UINT8))
    nodes.append(
        helper.make_node("Cast", [usable], ["usable"], name="usable", to=TensorProto.UINT8)
    )
    for name, src in (("ndvi", ndvi), ("ndre", ndre), ("ndmi", ndmi), ("msi", msi)):
        nodes.append(helper.make_node("Identity", [src], [name], name=name))
    outputs = [
        helper.make_tensor_value_info(n, t, ["N", 1, f"H_{n}", f"W_{n}"])
        for n, t in (
            ("seen", TensorProto.UINT8),
            ("usable", TensorProto.UINT8),
            ("ndvi", TensorProto.FLOAT),
            ("ndre", TensorProto.FLOAT),
            ("ndmi", TensorProto.FLOAT),
            ("msi", TensorProto.FLOAT),
        )
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
    "kind": "physical computation as an ONNX graph (not learned)",
    "built_by": "models/build_crop_model.py",
    "inputs": {
        "red": "red reflectance (Sentinel-2 B04, Landsat 8 B4), N x 1 x H x W",
        "nir": "NIR reflectance (Sentinel-2 B08, Landsat 8 B5), N x 1 x H x W",
        "valid": "1 where the pixel is usable, 0 elsewhere (1x1x1x1 one if all are)",
        "clear": "1 under clear sky, 0 under cloud or cloud shadow (1x1x1x1 one if no mask)",
        "green": "green reflectance (B03) for the NDWI water test; 1x1x1x1 zero if absent",
        "rededge1": "red-edge 1 (B05); 1x1x1x1 dummy if absent (then use_ndre = 0)",
        "nir08": "narrow NIR (B8A); 1x1x1x1 dummy if absent (then use_ndre = 0)",
        "swir16": "SWIR-1 (B11, Landsat 8 B6); 1x1x1x1 dummy if absent (then use_swir = 0)",
        "use_ndre": "1 to compute NDRE",
        "use_swir": "1 to compute NDMI and MSI",
    },
    "outputs": {
        "seen": "uint8 0/1: valid and under clear sky",
        "usable": "uint8 0/1: seen and not water",
        "ndvi": "NDVI",
        "ndre": "NDRE (NaN when not computed)",
        "ndmi": "NDMI (NaN when not computed)",
        "msi": "MSI (NaN when not computed)",
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
