"""STAC output: Items and a Collection from run outputs and decoded products, schema-validated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pystac = pytest.importorskip("pystac", reason="pystac not installed (extra 'cluster')")
pytest.importorskip("jsonschema", reason="jsonschema needed for STAC validation")

import ground_decoder  # noqa: E402
from ground_decoder.stac import (  # noqa: E402
    item_from_decoded,
    item_from_dir,
    scene_dirs,
    write_collection,
)
from pipeline.core.scene import open_scene  # noqa: E402
from pipeline.downlink import encode_scene, make_extras  # noqa: E402

from .conftest import REPO, SAMPLES, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    scenes = [SAMPLES / "s2_fire_G90292", SAMPLES / "sen2ships_casablanca"]
    proc = run_cli("run", *scenes, "--out", out, "--no-llm", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    return out


def _bbox_of_features(gj: dict) -> list[float]:
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: object) -> None:
        if isinstance(c, list) and len(c) >= 2 and all(isinstance(v, float | int) for v in c[:2]):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        elif isinstance(c, list):
            for x in c:
                walk(x)

    for f in gj["features"]:
        walk(f["geometry"]["coordinates"])
    return [min(xs), min(ys), max(xs), max(ys)]


def test_collection_from_run_outputs_validates(run_out: Path, tmp_path: Path) -> None:
    dirs = scene_dirs(run_out)
    assert [d.name for d in dirs] == ["s2_fire_G90292", "sen2ships_casablanca"]
    root = tmp_path / "stac"
    collection = write_collection(dirs, root)
    assert collection.validate_all() == 2  # collection + both items, core schemas
    # read back from disk as a standard client would
    read = pystac.Collection.from_file(str(root / "collection.json"))
    read.validate_all()
    items = {i.id: i for i in read.get_items()}
    assert set(items) == {"s2_fire_G90292", "sen2ships_casablanca"}
    fire = items["s2_fire_G90292"]
    assert fire.properties["eotriage:counts"] == {"fire": 12}
    assert fire.properties["eotriage:priority"] == "high"
    gj = json.loads((run_out / "s2_fire_G90292" / "detections.geojson").read_text())
    assert fire.bbox == pytest.approx(_bbox_of_features(gj))
    assert set(fire.assets) >= {"detections", "compact", "report", "run"}
    assert fire.assets["detections"].media_type == "application/geo+json"
    for asset in fire.assets.values():
        assert Path(asset.get_absolute_href() or "").is_file()
    # on disk: relative links and hrefs only (self-contained, copyable)
    raw = json.loads((run_out / "s2_fire_G90292" / "s2_fire_G90292.json").read_text())
    assert raw["assets"]["detections"]["href"] == "./detections.geojson"
    assert all(not link["href"].startswith("/") for link in raw["links"])
    coll = json.loads((root / "collection.json").read_text())
    w, s, e, n = coll["extent"]["spatial"]["bbox"][0]
    assert w <= -123.3 and e >= -7.61 and s <= 33.62 and n >= 58.0  # BC .. Casablanca


def test_decoded_products_with_chips_and_quicklook(run_out: Path, tmp_path: Path) -> None:
    d = run_out / "s2_fire_G90292"
    report = json.loads((d / "report.json").read_text())
    compact = json.loads((d / "compact.geojson").read_text())
    extras = make_extras(open_scene(SAMPLES / "s2_fire_G90292"), compact, max_chips=3)
    plan = encode_scene(report, compact, extras=extras)
    decoded = ground_decoder.decode_stream(plan.packets)
    written = ground_decoder.write_decoded(decoded, tmp_path / "ground" / "s2_fire_G90292")
    item = item_from_decoded(decoded, written)
    assert item.id == "s2_fire_G90292"
    assert item.properties["eotriage:product"] == "decoded"
    assert item.properties["eotriage:downlink_intact"] is True
    chips = sorted(k for k in item.assets if k.startswith("chip_"))
    assert len(chips) == 3
    assert "overview" in (item.assets["quicklook"].roles or [])
    assert "thumbnail" in (item.assets["map"].roles or [])
    collection = write_collection([written.directory], tmp_path / "stac")
    assert collection.validate_all() == 1


def test_empty_scene_item_without_geometry_is_valid(tmp_path: Path) -> None:
    d = tmp_path / "quiet"
    d.mkdir()
    (d / "detections.geojson").write_text('{"type":"FeatureCollection","features":[]}')
    item = item_from_dir(d)
    assert item.geometry is None and item.bbox is None
    assert item.properties["eotriage:counts"] == {}
    item.validate()
    with pytest.raises(FileNotFoundError):
        item_from_dir(tmp_path / "nothing_here")


def test_invalid_item_is_rejected_by_the_schema(run_out: Path) -> None:
    item = item_from_dir(run_out / "s2_fire_G90292")
    item.geometry = {"type": "Polygon", "coordinates": "not coordinates"}
    with pytest.raises(pystac.errors.STACValidationError):
        item.validate()


def test_ground_decoder_imports_without_pystac() -> None:
    code = (
        "import sys; sys.modules['pystac'] = None\n"
        "import ground_decoder, ground_decoder.stac\n"
        "try:\n"
        "    ground_decoder.stac.build_collection([])\n"
        "except ImportError as e:\n"
        "    print('ImportError', e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "ImportError" in proc.stdout and "pystac" in proc.stdout
