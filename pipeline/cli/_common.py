"""What every command shares: exit codes, one-line errors, logging set-up."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

#: a scene (or question, or product) failed; the others still ran
EXIT_FAILED = 1
#: bad options, settings or paths: nothing ran
EXIT_USAGE = 2


def fail(msg: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr (``eotriage: error: ...``) and exit with ``code``."""
    click.echo(f"eotriage: error: {msg}", err=True)
    raise SystemExit(code)


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
