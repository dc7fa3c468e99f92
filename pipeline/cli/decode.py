"""``eotriage decode PACKETS --out DIR``: the ground decoder behind the one command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command("decode")
@click.argument("packets", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (one sub-folder per scene when the stream holds several).",
)
@click.option(
    "--html/--no-html",
    default=True,
    show_default=True,
    help="Write index.html: an interactive map page per scene that works offline (and an "
    "index over scenes when there are several). Needs the 'viewer' extra (folium).",
)
def decode_cmd(packets: Path, out_dir: Path, html: bool) -> None:
    """Decode downlink PACKETS into GeoJSON, report text, chips and a PNG map in OUT.

    Writes detections.geojson, report.json/report.txt, chips/*.png, quicklook.png, map.png,
    damage.json and index.html (the ground viewer; answers.json/answers.txt for answers to
    questions from `eotriage answer`), and prints a short summary (features per class, report
    summary, damage).  Damaged streams are decoded as far as they go: every packet whose CRC
    verifies is used.

    PACKETS may be a folder of passes: every *.bin file under it is decoded into
    OUT/<its path without .bin>/ (DIR/<scene>/downlink.bin goes to OUT/<scene>/), and
    OUT/index.html lists the scenes by priority, then time, over one overview map.

    Besides the damage, the summary says what the satellite's scan looked at: the outcome
    (complete, partial, failed) and per class "found N", "looked and found none" or "not
    checked (reason)".  Detections held back by a downlink budget are "waiting onboard", not
    damage.

    Exit code: 0 stream intact, 1 damage found (lost, corrupt or truncated packets, garbage,
    products missing) or a scene whose scan failed, 2 the file (or a file of the folder)
    cannot be read or OUT cannot be written.
    """
    from ground_decoder import decode_file
    from ground_decoder.passes import pass_plan
    from ground_decoder.qa import decode_qa, qa_lines, write_qa

    folder = packets.is_dir()
    plan = pass_plan(packets, out_dir) if folder else ((packets, out_dir),)
    if folder and not plan:
        click.echo(f"eotriage: error: {packets}: no *.bin pass files in this folder", err=True)
        raise SystemExit(2)
    damaged = unreadable = scan_failed = False
    scenes: list[tuple[Any, Path, str]] = []
    failures: list[tuple[str, str]] = []
    for path, out in plan:
        source = str(path.relative_to(packets)) if folder else path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            click.echo(f"eotriage: error: {path}: {exc.strerror or exc}", err=True)
            if not folder:
                raise SystemExit(2) from None
            unreadable = True
            failures.append((source, f"cannot be read: {exc.strerror or exc}"))
            continue
        try:
            results = decode_file(path, out, data=data)
        except OSError as exc:  # the output folder, not the packets
            click.echo(f"eotriage: error: {_out_error(out, exc)}", err=True)
            raise SystemExit(2) from None
        for decoded, written in results:
            for line in decoded.summary_lines():
                click.echo(line)
            click.echo(f"wrote {written.directory}")
            damaged |= not decoded.ok
            if decoded.outcome == "failed":
                scan_failed = True
                click.echo(
                    f"eotriage: error: {decoded.scene}: the satellite's scan failed: nothing "
                    "was checked (see outcome above)",
                    err=True,
                )
            scenes.append((decoded, written.directory, source))
        qa = decode_qa(data)
        if qa.questions or qa.answers:
            for line in qa_lines(qa):
                click.echo(line)
            written_qa = write_qa(qa, out)
            click.echo(f"wrote {written_qa.json_path} and {written_qa.text_path}")
            damaged |= not qa.ok
    if html and (scenes or failures):
        _write_html(scenes, out_dir, failures)
    if unreadable:
        raise SystemExit(2)
    if damaged or scan_failed:
        raise SystemExit(1)


def _out_error(out: Path, exc: OSError) -> str:
    """``OUT: cannot write decoded products: <reason>`` (naming a file in the way)."""
    for parent in [out, *out.parents]:
        if parent.is_file():
            return f"{out}: cannot write decoded products: {parent} is a file"
    target = exc.filename if isinstance(exc.filename, str) else out
    return f"{target}: cannot write decoded products: {exc.strerror or exc}"


def _write_html(
    scenes: list[tuple[Any, Path, str]], out_dir: Path, failures: list[tuple[str, str]]
) -> None:
    """The ground viewer's pages; without folium only an explicit --html is an error."""
    explicit = (
        click.get_current_context().get_parameter_source("html")
        != click.core.ParameterSource.DEFAULT
    )
    try:
        from ground_decoder.viewer import write_viewer

        pages = write_viewer(scenes, out_dir, failures=failures)
    except ImportError as exc:
        if explicit:
            click.echo(f"eotriage: error: --html: {exc}", err=True)
            raise SystemExit(2) from None
        click.echo(f"eotriage: warning: no index.html written: {exc}", err=True)
        return
    except OSError as exc:
        click.echo(f"eotriage: error: {out_dir}: {exc.strerror or exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"wrote {pages.index}")
