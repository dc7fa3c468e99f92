"""``eotriage`` command line: a thin layer over the library.

One module per command group; each imports its heavy parts lazily.  Errors from the library
become one-line messages and non-zero exit codes: 0 all fine, 1 a scene (question, product)
failed or had failed tiles / problems, 2 usage, settings or path error.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from .. import __version__
from ..errors import ConfigError
from ..settings import Settings
from ._common import EXIT_USAGE, fail, setup_logging

#: when the command line started: the heavy imports (numpy, rasterio, onnxruntime, llama.cpp),
#: model loads and all work of a command count from here
STARTED = time.perf_counter()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="eotriage")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (TOML); command-line options override it.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, config: Path | None) -> None:
    """eotriage: onboard Earth-observation triage.

    Reads multispectral scenes tile by tile, runs ONNX detectors (active fire, ships, crop
    stress), writes GeoJSON, a short text report (small onboard LLM, fact-checked) and
    downlink packets that `eotriage decode` turns back into maps and text on the ground.

    \b
    Examples:
      eotriage run sample_scenes/s2_fire_G90292 --out out/
      eotriage run SCENE_DIR --sensor sentinel2-l1c --tile-size 512 --out out/
      eotriage decode out/s2_fire_G90292/downlink.bin --out ground/
      eotriage eval ships sample_scenes/sen2ships_honolulu
      eotriage stream sample_scenes/s2_fire_G90292 --rate 664
      eotriage ask "How many vessels?" --bbox -158,21.3,-157.9,21.4 --out q.bin
      eotriage scenes generate /tmp/syn --size 2000 --fires 5
      eotriage bench --quick
    """
    setup_logging(verbose, quiet)
    try:
        ctx.obj = Settings.from_toml(config) if config else Settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


# --- subcommands defined in their own modules (each imports its heavy parts lazily) ---
from .ask import answer_cmd, ask_cmd, store_group  # noqa: E402
from .bench import bench_cmd  # noqa: E402
from .catalog import info_cmd, models_group, scenes_group, sensors_cmd  # noqa: E402
from .decode import decode_cmd  # noqa: E402
from .eval import eval_group  # noqa: E402
from .ground import batch_cmd, simulate_cmd  # noqa: E402
from .run import run_cmd  # noqa: E402
from .stream import stream_cmd  # noqa: E402
from .uplink import uplink_group  # noqa: E402

for _command in (
    run_cmd,
    sensors_cmd,
    info_cmd,
    models_group,
    scenes_group,
    eval_group,
    decode_cmd,
    stream_cmd,
    ask_cmd,
    answer_cmd,
    store_group,
    batch_cmd,
    simulate_cmd,
    uplink_group,
    bench_cmd,
):
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(prog_name="eotriage", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("eotriage: interrupted", err=True)
        raise SystemExit(130) from None
