"""Shared fixtures: sample scenes, ../shared/data (skipped when absent), synthetic scenes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline.testing.synthetic import generate_scene

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_scenes"
SHARED = Path(os.environ.get("EOTRIAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED} (set EOTRIAGE_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def fire_scene() -> Path:
    return SAMPLES / "s2_fire_G90292"


@pytest.fixture(scope="session")
def synthetic_fires(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 600 x 600 px 13-band L1C scene with 5 fires and the baseline-04.00 offset."""
    out = generate_scene(
        tmp_path_factory.mktemp("syn") / "syn600", 600, n_fires=5, seed=3, offset_baseline=True
    )
    return out, json.loads((out / "truth.json").read_text())


def run_cli(
    *args: str | Path, cwd: Path = REPO, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``eotriage ARGS`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


T20 = Affine(20.0, 0.0, 500_000.0, 0.0, -20.0, 5_000_000.0)


def write_tif(
    path: Path,
    arrays: list[np.ndarray],
    *,
    crs: str = "EPSG:32633",
    transform: Affine = T20,
    descriptions: list[str] | None = None,
    nodata: float | None = None,
) -> Path:
    """A GeoTIFF with one band per array (dtype of the first array)."""
    h, w = arrays[0].shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=len(arrays),
        dtype=arrays[0].dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        for i, a in enumerate(arrays, 1):
            dst.write(a, i)
            if descriptions:
                dst.set_band_description(i, descriptions[i - 1])
    return path


#: Tests of 1-5 s each (measured on 2 quiet cores, `pytest --durations`), marked slow here so
#: that `pytest -m "not slow"` stays under 2 minutes; `make test` runs them all.  Tests over
#: ~5 s carry ``@pytest.mark.slow`` themselves.
SLOW_NODE_IDS = frozenset(
    {
        "tests/test_ask.py::test_cli_question_to_decoded_answer",
        "tests/test_viewer.py::test_cli_single_pass_writes_index_html",
        "tests/test_bench_clouds.py::test_bench_clouds_quick",
        "tests/test_viewer.py::test_any_product_gives_a_page",
        "tests/test_cli.py::test_run_writes_downlink_within_budget_and_decode_restores_it",
        "tests/test_crop.py::test_model_build_is_reproducible",
        "tests/test_fuzz.py::test_decoder_raw_byte_damage",
        "tests/test_ground_decoder.py::test_cli_decode_intact_stream",
        "tests/test_watchdog.py::test_slow_tile_is_abandoned_and_the_scene_goes_on",
        "tests/test_ask_v2.py::test_question_ids_are_unique_and_duplicates_renumbered",
        "tests/test_ask_v2.py::test_store_keeps_a_shared_port_time",
        "tests/test_uplink.py::test_sigkill_during_install_never_half_installs",
        "tests/test_ask_v2.py::test_bad_paths_are_one_line_errors",
        "tests/test_ground_decoder.py::test_decode_path_imports_without_onboard_dependencies",
        "tests/test_stream.py::test_stream_matches_file_path[1-s2_l1c_virginia_crop]",
        "tests/test_eval.py::test_shared_ports_eval_consistent",
        "tests/test_resume.py::test_stream_queues_each_alert_once_in_the_outbox",
        "tests/test_truthful_outputs.py::test_scaling_and_sensor_overrides_and_info_say_why",
        "tests/test_models.py::test_rebuild_is_reproducible",
        "tests/test_report_llm.py::test_injected_wrong_number_falls_back",
        "tests/test_clouds.py::test_cloud_fraction_travels_into_every_product",
        "tests/test_stac.py::test_decoded_products_with_chips_and_quicklook",
        "tests/test_batch.py::test_batch_outputs_identical_to_run",
        "tests/test_eval.py::test_cli_eval_ships_table_two_scenes",
        "tests/test_downlink.py::test_codec_round_trips_compact_geojson_exactly",
        "tests/test_report_llm.py::test_forced_timeout_falls_back",
        "tests/test_truthful_outputs.py::test_failed_rerun_never_replaces_a_good_result",
        "tests/test_truthful_outputs.py::test_partial_rerun_that_looked_at_less_goes_beside_a_complete_result",
        "tests/test_report_llm.py::test_timeout_aborts_a_running_decode",
        "tests/test_ask_llm.py::test_word_meaning_is_one_of_the_offered_values",
        "tests/test_viewer.py::test_browser_scene_page_offline",
        "tests/test_truthful_outputs.py::test_implausible_scaling_is_a_clear_error_naming_the_options",
        "tests/test_constellation.py::test_simulation_on_dask_and_plot",
        "tests/test_stream.py::test_stream_matches_file_path[1024-s2_l1c_virginia_crop]",
        "tests/test_clouds.py::test_cloudy_scene_downlinks_only_its_manifest_and_a_one_line_report",
        "tests/test_truthful_outputs.py::test_geojson_properties_are_documented_and_debug_fields_stay_onboard",
        "tests/test_truthful_outputs.py::test_run_time_includes_model_load",
        "tests/test_stream.py::test_stream_matches_file_path[1-sen2ships_casablanca]",
        "tests/test_eval.py::test_cli_eval_ships_json",
        "tests/test_ask_v2.py::test_store_add_finds_a_relative_input_from_elsewhere",
        "tests/test_stream.py::test_stream_matches_file_path[37-s2_l1c_virginia_crop]",
        "tests/test_models.py::test_tampered_model_cli_message",
        "tests/test_batch.py::test_rerun_skips_complete_scenes_and_redoes_incomplete",
        "tests/test_truthful_outputs.py::test_stac_items_carry_the_outcome_and_class_status",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid in SLOW_NODE_IDS:
            item.add_marker(pytest.mark.slow)
