"""``python -m ground_decoder PACKETS --out DIR``: decode a downlink stream on the ground.

Exit codes: 0 the stream was intact, 1 damage was found (products are still written for what
arrived), 2 the file could not be read.
"""

from __future__ import annotations

import argparse
import sys

from . import decode_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ground_decoder",
        description="Decode eotriage downlink packets into GeoJSON, report text, chips and a "
        "PNG map. Exit code 1 when the stream was damaged (lost, corrupt or truncated "
        "packets, garbage), 2 when the file cannot be read.",
    )
    ap.add_argument("packets", help="packet stream file (e.g. downlink.bin)")
    ap.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args(argv)
    try:
        results = decode_file(args.packets, args.out)
    except OSError as exc:
        print(f"ground_decoder: error: {args.packets}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    damaged = False
    for decoded, written in results:
        for line in decoded.summary_lines():
            print(line)
        print(f"wrote {written.directory}")
        damaged |= not decoded.ok
    return 1 if damaged else 0


if __name__ == "__main__":
    raise SystemExit(main())
