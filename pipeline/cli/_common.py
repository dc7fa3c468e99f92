"""What every command shares: exit codes, one-line errors, logging set-up."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from ..errors import ConfigError, EotriageError, OutputError

#: a scene (or question, or product) failed; the others still ran
EXIT_FAILED = 1
#: bad options, settings or paths: nothing ran
EXIT_USAGE = 2

#: help of every --scaling option (kept in step with pipeline.sensors.SCALING_KINDS)
SCALING_OPTION_HELP = (
    "DN -> reflectance scaling: reflectance (stored as reflectance), dn10000 (DN/10000), "
    "dn10000-offset ((DN-1000)/10000, Sentinel-2 baseline 04.00 on), dn65535 (DN/65535, "
    "Sentinel Hub 16-bit exports) or A*DN+B (e.g. 2e-5*DN-0.1).  Default: inferred from the "
    "sample type, sampled values, metadata and band names; run.json says why."
)


def fail(msg: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr (``eotriage: error: ...``) and exit with ``code``."""
    click.echo(f"eotriage: error: {' '.join(msg.split())}", err=True)
    raise SystemExit(code)


def fail_on(exc: EotriageError) -> NoReturn:
    """``fail`` with the exit code of the error's kind: 2 for bad settings and output paths
    (nothing could run), 1 for everything else (a scene, product or question failed)."""
    fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError | OutputError) else EXIT_FAILED)


def process_seconds(fallback_start: float) -> float:
    """Wall seconds since this process started (Linux: from /proc, so interpreter start-up and
    imports count too); elsewhere since ``fallback_start`` (a ``time.perf_counter()``)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - fallback_start


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level, format="eotriage: %(levelname)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("pipeline").setLevel(level)
    # GDAL's own chatter (CPLE_* notes) only when asked for with -vv
    logging.getLogger("rasterio").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
