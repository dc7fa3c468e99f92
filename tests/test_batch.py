"""The Dask batch runner: same products as ``eotriage run``, failures isolated, re-runs resume."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="dask.distributed not installed (extra 'cluster')")

from distributed import Client  # noqa: E402

from pipeline.ground.batch import dask_client, process_scene, run_batch  # noqa: E402
from pipeline.runner import outputs_complete  # noqa: E402
from pipeline.settings import ReportSettings, Settings  # noqa: E402

from .conftest import SAMPLES, run_cli  # noqa: E402

SCENES = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
SETTINGS = Settings(threads=1, report=ReportSettings(use_llm=False))
SAME_FILES = ("detections.geojson", "compact.geojson", "report.txt")


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two in-process workers (threads): fast to start, still real Dask scheduling."""
    with dask_client(n_workers=2, processes=False) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample scenes through ``eotriage run`` (template reports, one thread)."""
    out = tmp_path_factory.mktemp("ref")
    proc = run_cli("run", *SCENES, "--out", out, "--no-llm", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    return out


def _without_timing(report_json: Path) -> dict:
    doc = json.loads(report_json.read_text())
    doc.pop("latency_s", None)
    return doc


def test_batch_outputs_identical_to_run(client: Client, reference: Path, tmp_path: Path) -> None:
    assert len(SCENES) == 4
    result = run_batch(SCENES, tmp_path, SETTINGS, client=client)
    assert result.counts_by_status() == {"done": 4, "skipped": 0, "failed": 0}
    assert result.workers == 2
    # both workers were used (4 scenes, 2 one-thread workers)
    assert len({o.worker for o in result.outcomes}) == 2
    for scene in SCENES:
        ref, got = reference / scene.name, tmp_path / scene.name
        for name in SAME_FILES:
            assert (got / name).read_bytes() == (ref / name).read_bytes(), (scene.name, name)
        assert _without_timing(got / "report.json") == _without_timing(ref / "report.json")
        ref_run = json.loads((ref / "run.json").read_text())
        got_run = json.loads((got / "run.json").read_text())
        for key in ("scene", "ok", "counts", "tiles", "detectors", "models"):
            assert got_run[key] == ref_run[key], (scene.name, key)
        # report.json's size varies with the digits of its latency figure, and downlink.bin
        # carries report.json as its report product
        sizes = [
            {k: v for k, v in r["output_bytes"].items() if k not in ("report.json", "downlink.bin")}
            for r in (got_run, ref_run)
        ]
        assert sizes[0] == sizes[1], scene.name
        outcome = next(o for o in result.outcomes if o.name == scene.name)
        assert outcome.counts == ref_run["counts"]
    # outcomes come back in input order
    assert [o.path for o in result.outcomes] == [str(p) for p in SCENES]


def test_failing_scene_is_reported_and_batch_goes_on(client: Client, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00" + os.urandom(2000))  # TIFF magic, then noise
    empty = tmp_path / "empty_scene"
    empty.mkdir()
    fire, ships = SAMPLES / "s2_fire_G90292", SAMPLES / "sen2ships_honolulu"
    seen: list[str] = []
    out = tmp_path / "out"
    result = run_batch(
        [fire, garbage, empty, ships],
        out,
        SETTINGS,
        client=client,
        on_outcome=lambda o: seen.append(o.status),
    )
    by_path = {Path(o.path).name: o for o in result.outcomes}
    assert by_path["garbage.tif"].status == "failed"
    assert "garbage.tif" in (by_path["garbage.tif"].error or "")
    assert by_path["empty_scene"].status == "failed"
    assert "empty_scene" in (by_path["empty_scene"].error or "")
    assert by_path["s2_fire_G90292"].status == "done"
    assert by_path["s2_fire_G90292"].counts["fire"] == 12
    assert by_path["sen2ships_honolulu"].status == "done"
    assert outputs_complete(out / "s2_fire_G90292")
    assert outputs_complete(out / "sen2ships_honolulu")
    assert sorted(p.name for p in out.iterdir()) == ["s2_fire_G90292", "sen2ships_honolulu"]
    assert not result.ok and len(result.failed) == 2
    assert sorted(seen) == ["done", "done", "failed", "failed"]


def test_rerun_skips_complete_scenes_and_redoes_incomplete(client: Client, tmp_path: Path) -> None:
    scenes = [SAMPLES / "s2_fire_G90292", SAMPLES / "sen2ships_casablanca"]
    first = run_batch(scenes, tmp_path, SETTINGS, client=client)
    assert first.counts_by_status()["done"] == 2
    kept = tmp_path / "s2_fire_G90292" / "run.json"
    kept_bytes, kept_mtime = kept.read_bytes(), kept.stat().st_mtime_ns
    # an interrupted write: compact.geojson cut short
    broken = tmp_path / "sen2ships_casablanca" / "compact.geojson"
    full = broken.read_bytes()
    broken.write_bytes(full[: len(full) // 2])
    assert not outputs_complete(broken.parent)
    second = run_batch(scenes, tmp_path, SETTINGS, client=client)
    status = {o.name: o.status for o in second.outcomes}
    assert status == {"s2_fire_G90292": "skipped", "sen2ships_casablanca": "done"}
    assert kept.read_bytes() == kept_bytes and kept.stat().st_mtime_ns == kept_mtime
    assert broken.read_bytes() == full
    skipped = next(o for o in second.outcomes if o.status == "skipped")
    assert skipped.counts["fire"] == 12  # counts read back from run.json
    third = run_batch(scenes, tmp_path, SETTINGS, client=client, skip_complete=False)
    assert third.counts_by_status()["done"] == 2


def test_outputs_complete_needs_run_json_and_sizes(tmp_path: Path) -> None:
    d = tmp_path / "s"
    assert not outputs_complete(d)
    outcome = process_scene(SAMPLES / "s2_fire_G90292", tmp_path, SETTINGS, name="s")
    assert outcome.status == "done" and outcome.worker is None
    assert outputs_complete(d)
    (d / "detections.geojson").unlink()
    assert not outputs_complete(d)
    shutil.rmtree(d)
    process_scene(SAMPLES / "s2_fire_G90292", tmp_path, SETTINGS, name="s")
    (d / "run.json").write_text("{not json")
    assert not outputs_complete(d)


def test_duplicate_scene_names_get_separate_folders(client: Client, tmp_path: Path) -> None:
    copy = tmp_path / "copy" / "s2_fire_G90292"
    shutil.copytree(SAMPLES / "s2_fire_G90292", copy)
    result = run_batch(
        [SAMPLES / "s2_fire_G90292", copy], tmp_path / "out", SETTINGS, client=client
    )
    names = [str(o.name) for o in result.outcomes]
    assert names == ["s2_fire_G90292", "s2_fire_G90292_1"]
    a, b = (tmp_path / "out" / n / "detections.geojson" for n in names)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_cli_batch_local_cluster(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_scene.tif"
    bad.write_text("hello")
    args: list[str | Path] = ["batch", SAMPLES / "s2_fire_G90292", bad, "--out", tmp_path / "out"]
    args.append("--no-llm")
    proc = run_cli(*args, "--workers", "2", "--summary", tmp_path / "summary.json")
    assert proc.returncode == 1, proc.stderr
    assert "s2_fire_G90292: partial scan: 12 fire;" in proc.stdout
    assert "not_a_scene.tif: FAILED" in proc.stderr
    assert "1 done, 0 skipped, 1 failed" in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["failed"] == 1
    proc = run_cli(
        "batch",
        SAMPLES / "s2_fire_G90292",
        "--out",
        tmp_path / "out",
        "--no-llm",
        "--stac",
        tmp_path / "stac",
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped (outputs complete)" in proc.stdout
    assert "Traceback" not in proc.stderr
    pystac = pytest.importorskip("pystac")
    collection = pystac.Collection.from_file(str(tmp_path / "stac" / "collection.json"))
    assert [i.id for i in collection.get_items()] == ["s2_fire_G90292"]
    collection.validate_all()
