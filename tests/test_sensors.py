from __future__ import annotations

import pytest

from pipeline.errors import InputError, UnknownSensorError
from pipeline.sensors import PROFILES, band_tokens, detect_sensor, get_profile


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-05-14-00_00_2022-05-14-23_59_Sentinel-2_L2A_B02_(Raw).tiff", ["B02"]),
        ("20230514 60m: B9 945nm", ["B9"]),
        ("T33UUP_20230101T100319_B8A.jp2", ["B8A"]),
        ("LC08_L1TP_044034_20200101_B10.TIF", ["B10"]),
        ("fire_mask_swir_test", []),
        ("L2A", []),
    ],
)
def test_band_tokens(text: str, expected: list[str]) -> None:
    assert band_tokens(text) == expected


def test_canonical_band_names() -> None:
    s2 = PROFILES["sentinel2-l1c"]
    assert s2.canonical_band("B9") == "B09"
    assert s2.canonical_band("b8a") == "B8A"
    assert s2.canonical_band("B13") is None
    assert PROFILES["landsat8-oli"].canonical_band("B04") == "B4"


def test_sentinel2_offset_rules() -> None:
    s2 = PROFILES["sentinel2-l1c"]
    assert s2.scaling(["RADIO_ADD_OFFSET=-1000"]).offset == -1000
    assert s2.scaling(["PROCESSING_BASELINE=04.00"]).offset == -1000
    assert s2.scaling(["PROCESSING_BASELINE=02.09"]).offset == 0
    assert s2.scaling(["20230514 20m: B12 2190nm"]).offset == -1000
    assert s2.scaling(["20210514 20m: B12"]).offset == 0
    none = s2.scaling(["B12.tif"])
    assert none.offset == 0 and "assuming" in none.reason
    assert PROFILES["sen2ships"].scaling(["20230514"]).offset == 0


def test_landsat_scaling_matches_collection2() -> None:
    sc = PROFILES["landsat8-oli"].scaling()
    dn = 12345
    assert (dn + sc.offset) * sc.scale == pytest.approx(2e-5 * dn - 0.1)


def test_detect_sensor() -> None:
    assert detect_sensor(["B02", "B11"], 3857, 10.0).profile.name == "sen2ships"
    assert detect_sensor(["B9", "B11", "B12"], 32610, 20.0).profile.name == "sentinel2-l1c"
    assert detect_sensor(["B02"], 32633, 10.0, ["MSIL2A"]).profile.name == "sentinel2-l2a"
    assert detect_sensor(["B4", "B5", "B6", "B7"], 32610, 30.0).profile.name == "landsat8-oli"
    with pytest.raises(InputError, match="--sensor"):
        detect_sensor([], 32610, 30.0)


def test_unknown_sensor() -> None:
    with pytest.raises(UnknownSensorError, match="known: landsat8-oli"):
        get_profile("sentinel3")
