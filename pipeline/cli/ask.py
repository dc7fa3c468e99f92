"""``eotriage ask`` (ground), ``eotriage answer`` and ``eotriage store`` (onboard)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..errors import EotriageError, QuestionError
from ..settings import Settings
from ._common import fail


def _floats(text: str | None, n: int, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{name} must be {n} comma-separated numbers") from None
    if len(vals) != n:
        raise click.BadParameter(f"{name} must be {n} comma-separated numbers")
    return vals


@click.command("ask")
@click.argument("question")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Uplink packet file to write (appended to when it exists).",
)
@click.option("--bbox", help="Area as WEST,SOUTH,EAST,NORTH in degrees.")
@click.option("--wkt", help="Area as a WKT polygon (lon lat).")
@click.option("--point", help="Reference point LON,LAT for 'nearest' questions.")
@click.option("--since", help="Only scenes acquired at or after this UTC time (ISO 8601).")
@click.option("--until", help="Only scenes acquired at or before this UTC time (ISO 8601).")
@click.option("--class", "cls", type=click.Choice(["ship", "fire", "crop_stress"]))
@click.option(
    "--kind",
    type=click.Choice(["count", "nearest", "largest"]),
    help="What is asked; default: understood onboard from the text.",
)
@click.option("--qid", type=int, default=None, help="Question id (default: from the clock).")
def ask_cmd(
    question: str,
    out: Path,
    bbox: str | None,
    wkt: str | None,
    point: str | None,
    since: str | None,
    until: str | None,
    cls: str | None,
    kind: str | None,
    qid: int | None,
) -> None:
    """Encode QUESTION (text plus optional filters) as an uplink packet.

    \b
    Examples:
      eotriage ask "How many vessels in this box?" --bbox -158,21.3,-157.9,21.4 --out q.bin
      eotriage ask "Nearest fire to 58.07N 123.28W?" --out q.bin
      eotriage ask "Largest stressed field?" --since 2026-11-01 --out q.bin
    """
    from ..ask.query import Question, _iso
    from ..wire.qa import encode_questions

    try:
        q = Question(
            text=question,
            qid=qid if qid is not None else int(time.time()) & 0xFFFF,
            kind=kind,
            cls=cls,
            bbox=_floats(bbox, 4, "--bbox"),  # type: ignore[arg-type]
            wkt=wkt,
            point=_floats(point, 2, "--point"),  # type: ignore[arg-type]
            since=_iso(since) if since else None,
            until=_iso(until) if until else None,
        )
    except QuestionError as exc:
        fail(str(exc), 2)
    data = encode_questions([q.to_value()])
    with out.open("ab") as fh:
        fh.write(data)
    click.echo(f"question {q.qid}: {len(data)} bytes appended to {out}")


@click.command("answer")
@click.argument("questions", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Onboard detection store (SQLite).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Answer packet file to write.",
)
@click.option("--no-llm", is_flag=True, help="Keywords and the template only (no model).")
@click.pass_obj
def answer_cmd(
    settings: Settings, questions: Path, store_path: Path, out: Path, no_llm: bool
) -> None:
    """Answer every question in the uplink file QUESTIONS from the store; write answer packets.

    Damaged question packets are reported and skipped; a question that cannot be answered gets
    an error answer.  Exit 1 when any question packet was damaged.
    """
    from ..ask.answer import answer_question
    from ..ask.intent import QuestionModel
    from ..ask.query import Question
    from ..ask.store import DetectionStore
    from ..wire.qa import decode_qa, encode_answers

    try:
        data = questions.read_bytes()
    except OSError as exc:
        fail(f"{questions}: cannot read ({exc.strerror})")
    decoded = decode_qa(data)
    for d in decoded.damaged:
        click.echo(
            f"eotriage: damaged question packet bytes {d.start}..{d.end} ({d.cause})", err=True
        )
    answers = []
    try:
        model = None if no_llm else QuestionModel(settings.report, settings.threads)
        with DetectionStore(store_path) as store:
            for body in decoded.questions:
                try:
                    q = Question.from_value(body)
                except QuestionError as exc:
                    qid = body.get("qid", 0) if isinstance(body, dict) else 0
                    answers.append(
                        {
                            "qid": qid,
                            "question": str(body.get("text", "")),
                            "error": str(exc),
                            "text": f"Question not understood: {exc}",
                        }
                    )
                    continue
                a = answer_question(store, q, model, settings.report.timeout_s * 2)
                answers.append(a.to_value())
                click.echo(f"[{q.qid}] {q.text}\n  -> {a.text} ({a.writer}, {a.latency_s:.2f} s)")
        if model is not None:
            model.close()
    except EotriageError as exc:
        fail(str(exc))
    packets = encode_answers(answers)
    out.write_bytes(packets)
    click.echo(f"{len(answers)} answer(s), {len(packets)} bytes -> {out}")
    if not decoded.ok:
        raise SystemExit(1)


@click.group("store")
def store_group() -> None:
    """The onboard detection store (SQLite with an R-tree index)."""


@store_group.command("add")
@click.argument(
    "scene_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), required=True
)
@click.option("--acquired", help="Acquisition time, ISO 8601 UTC (default: the run's time).")
def store_add(scene_dirs: tuple[Path, ...], store_path: Path, acquired: str | None) -> None:
    """Add `eotriage run` outputs (OUT/<scene>/) to the store."""
    from ..ask.query import _iso
    from ..ask.store import DetectionStore

    try:
        with DetectionStore(store_path) as store:
            for d in scene_dirs:
                try:
                    gj = json.loads((d / "detections.geojson").read_text())
                    run = json.loads((d / "run.json").read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    fail(f"{d}: not an eotriage run output ({exc})")
                report = None
                if (d / "report.json").is_file():
                    report = json.loads((d / "report.json").read_text())
                when = _iso(acquired) if acquired else run.get("finished_utc", "")
                store.add_scene(run.get("scene", d.name), gj["features"], when, report)
                click.echo(f"{d.name}: {len(gj['features'])} detections stored ({when})")
    except EotriageError as exc:
        fail(str(exc))
