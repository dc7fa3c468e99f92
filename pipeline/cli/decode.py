"""``eotriage decode PACKETS --out DIR``: the ground decoder behind the one command line."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("decode")
@click.argument("packets", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (one sub-folder per scene when the stream holds several).",
)
def decode_cmd(packets: Path, out_dir: Path) -> None:
    """Decode downlink PACKETS into GeoJSON, report text, chips and a PNG map in OUT.

    Writes detections.geojson, report.json/report.txt, chips/*.png, quicklook.png, map.png and
    damage.json (answers.json/answers.txt for answers to questions from `eotriage answer`),
    and prints a short summary (features per class, report summary, damage).
    Damaged streams are decoded as far as they go: every packet whose CRC verifies is used.

    Exit code: 0 stream intact, 1 damage found (lost, corrupt or truncated packets, garbage,
    products missing), 2 the file cannot be read.
    """
    from ground_decoder import decode_file
    from ground_decoder.qa import decode_qa, qa_lines, write_qa

    try:
        results = decode_file(packets, out_dir)
    except OSError as exc:
        click.echo(f"eotriage: error: {packets}: {exc.strerror or exc}", err=True)
        raise SystemExit(2) from None
    damaged = False
    for decoded, written in results:
        for line in decoded.summary_lines():
            click.echo(line)
        click.echo(f"wrote {written.directory}")
        damaged |= not decoded.ok
    qa = decode_qa(packets.read_bytes())
    if qa.questions or qa.answers:
        for line in qa_lines(qa):
            click.echo(line)
        written_qa = write_qa(qa, out_dir)
        click.echo(f"wrote {written_qa.json_path} and {written_qa.text_path}")
        damaged |= not qa.ok
    if damaged:
        raise SystemExit(1)
