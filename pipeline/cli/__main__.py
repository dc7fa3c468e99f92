"""``python -m pipeline.cli`` = ``eotriage``."""

from . import main

main()
