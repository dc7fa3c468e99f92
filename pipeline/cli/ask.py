"""``eotriage ask`` (ground), ``eotriage answer`` and ``eotriage store`` (onboard)."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import click

from ..errors import EotriageError
from ..settings import Settings
from ._common import EXIT_FAILED, EXIT_USAGE, fail

_OPS = (
    "count", "any", "largest", "smallest", "nearest", "list", "most", "least", "total_area",
    "per_scene",
)  # fmt: skip
_CLASSES = ("ship", "fire", "crop_stress", "cloud", "any")


def _warn(msg: str) -> None:
    click.echo(f"eotriage: warning: {msg}", err=True)


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


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _new_qid(taken: set[int]) -> int:
    """A random 32-bit question id not in ``taken`` (never 0)."""
    while True:
        qid = secrets.randbits(32)
        if qid and qid not in taken:
            return qid


def _qids_in(path: Path) -> set[int]:
    """Question ids already in an uplink file (none when it does not exist)."""
    from ..wire.qa import decode_qa

    if not path.exists():
        return set()
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read ({_os_reason(exc)})", EXIT_USAGE)
    return {int(b.get("qid", 0)) for b in decode_qa(data).questions}


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
@click.option("--point", help="Reference point LON,LAT (for 'nearest', 'within N km of').")
@click.option("--since", help="Only scenes acquired at or after this UTC time (ISO 8601).")
@click.option(
    "--until", help="Only scenes acquired at or before this UTC time (ISO 8601; a date: its end)."
)
@click.option(
    "--class", "cls", type=click.Choice(_CLASSES), help="What to look for (default: from the text)."
)
@click.option(
    "--kind",
    type=click.Choice(_OPS),
    help="What is asked; default: understood onboard from the text.",
)
@click.option(
    "--qid",
    type=click.IntRange(1, 0xFFFFFFFF),
    default=None,
    help="Question id (default: a random 32-bit id not yet in --out).",
)
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

    The text is understood onboard: class (ships, fires, stressed fields, clouds), what is asked
    (how many, any, largest, smallest, nearest, list / top N, which scene has the most or
    fewest, total area), sizes with units, places (scene and place names), points and boxes,
    and times (today, since yesterday, last 3 days, ISO dates).  A question that is not
    understood is answered "not understood" with what was and was not understood.

    \b
    Examples:
      eotriage ask "How many ships longer than 200 m in Busan?" --out q.bin
      eotriage ask "Which fire is closest to 58.08N 123.28W?" --out q.bin
      eotriage ask "How many vessels in this box?" --bbox -158,21.3,-157.9,21.4 --out q.bin
    """
    from ..ask.query import Question, _iso
    from ..errors import QuestionError
    from ..wire.qa import encode_questions

    taken = _qids_in(out)
    if qid is not None and qid in taken:
        fail(f"question id {qid} is already in {out}; give another --qid or none", EXIT_USAGE)
    try:
        q = Question(
            text=question,
            qid=qid if qid is not None else _new_qid(taken),
            kind=kind,
            cls=cls,
            bbox=_floats(bbox, 4, "--bbox"),  # type: ignore[arg-type]
            wkt=wkt,
            point=_floats(point, 2, "--point"),  # type: ignore[arg-type]
            since=_iso(since) if since else None,
            until=_iso(until, end_of_day=True) if until else None,
            asked_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
    except QuestionError as exc:
        fail(str(exc), EXIT_USAGE)
    data = encode_questions([q.to_value()])
    try:
        with out.open("ab") as fh:
            fh.write(data)
    except OSError as exc:
        fail(f"{out}: cannot write ({_os_reason(exc)})", EXIT_USAGE)
    click.echo(f"question {q.qid}: {len(data)} bytes appended to {out}")


@click.command("answer")
@click.argument("questions", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Onboard detection store (SQLite); must exist unless --create.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Answer packet file to write.",
)
@click.option("--create", is_flag=True, help="Create the store when it does not exist (empty).")
@click.option("--no-llm", is_flag=True, help="Parser only (no model for unknown words).")
@click.pass_obj
def answer_cmd(
    settings: Settings,
    questions: Path,
    store_path: Path,
    out: Path,
    create: bool,
    no_llm: bool,
) -> None:
    """Answer every question in the uplink file QUESTIONS from the store; write answer packets.

    Damaged question packets are reported and skipped; a question that is not understood gets
    a "not understood" answer; two questions with one id are both answered, the second under a
    new id (with a warning).  Exit 1 when any question packet was damaged.
    """
    from ..ask.answer import answer_question
    from ..ask.intent import QuestionModel
    from ..ask.query import Question
    from ..ask.store import DetectionStore
    from ..errors import QuestionError, StoreError
    from ..wire.qa import decode_qa, encode_answers

    try:
        data = questions.read_bytes()
    except OSError as exc:
        fail(f"{questions}: cannot read ({_os_reason(exc)})", EXIT_USAGE)
    decoded = decode_qa(data)
    for d in decoded.damaged:
        click.echo(
            f"eotriage: damaged question packet bytes {d.start}..{d.end} ({d.cause})", err=True
        )
    answers: list[dict[str, Any]] = []
    seen: dict[int, dict[str, Any]] = {}
    all_ids = {int(b.get("qid", 0)) for b in decoded.questions}
    model = None if no_llm else QuestionModel(settings.report, settings.threads)
    try:
        with DetectionStore(store_path, create=create) as store:
            for body in decoded.questions:
                qid = int(body.get("qid", 0)) if isinstance(body.get("qid", 0), int) else 0
                renumbered = None
                if qid in seen:
                    if seen[qid] == body:
                        _warn(f"question {qid} sent twice; answered once")
                        continue
                    new = _new_qid(all_ids | set(seen))
                    _warn(
                        f"question id {qid} used twice in {questions}; "
                        f"{str(body.get('text', ''))[:60]!r} answered as question {new}"
                    )
                    renumbered, body = qid, {**body, "qid": new}
                    qid = new
                seen[qid] = body
                try:
                    q = Question.from_value(body)
                except QuestionError as exc:
                    answers.append(
                        {
                            "qid": qid,
                            "question": str(body.get("text", "")),
                            "status": "error",
                            "error": str(exc),
                            "text": f"Question not understood: {exc}",
                        }
                    )
                    continue
                a = answer_question(store, q, model, settings.report.timeout_s * 2).to_value()
                if renumbered is not None:
                    a["renumbered_from"] = renumbered
                answers.append(a)
                click.echo(
                    f"[{q.qid}] {q.text}\n  -> {a['text']} ({a['understood_by']}, "
                    f"{a['latency_s']:.2f} s)"
                )
    except StoreError as exc:
        fail(str(exc), EXIT_USAGE)
    except EotriageError as exc:
        fail(str(exc))
    finally:
        if model is not None:
            model.close()
    packets = encode_answers(answers)
    try:
        out.write_bytes(packets)
    except OSError as exc:
        fail(f"{out}: cannot write ({_os_reason(exc)})", EXIT_USAGE)
    click.echo(f"{len(answers)} answer(s), {len(packets)} bytes -> {out}")
    if not decoded.ok:
        raise SystemExit(EXIT_FAILED)


@click.group("store")
def store_group() -> None:
    """The onboard detection store (SQLite with an R-tree index)."""


@store_group.command("add")
@click.argument(
    "scene_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Detection store (SQLite), created when missing.",
)
@click.option(
    "--acquired",
    help="Acquisition time, ISO 8601 UTC, for every scene given (default: from run.json, or the "
    "scene's metadata, sidecar scene.json, labels.json or file name; else unknown).",
)
def store_add(scene_dirs: tuple[Path, ...], store_path: Path, acquired: str | None) -> None:
    """Add `eotriage run` outputs (OUT/<scene>/) to the store.

    The acquisition time is never the processing time: when nothing says when a scene was
    acquired, it is stored as unknown, and time-filtered questions leave it out (and say so).
    A scene already in the store under the same name is replaced.
    """
    from ..ask.store import DetectionStore, class_status
    from ..core.acquisition import scene_acquisition
    from ..errors import StoreError

    try:
        with DetectionStore(store_path) as store:
            for d in scene_dirs:
                try:
                    gj = json.loads((d / "detections.geojson").read_text())
                    run = json.loads((d / "run.json").read_text())
                    features = gj["features"]
                except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
                    fail(f"{d}: not an eotriage run output ({exc})", EXIT_USAGE)
                report = None
                if (d / "report.json").is_file():
                    try:
                        report = json.loads((d / "report.json").read_text())
                    except (OSError, json.JSONDecodeError):
                        _warn(f"{d}/report.json unreadable; stored without the report")
                name = str(run.get("scene", d.name))
                info = run.get("input") if isinstance(run.get("input"), dict) else {}
                input_path = _input_path(d, info.get("path") if isinstance(info, dict) else None)
                when, source, places, kind = _acquisition(
                    run, input_path, acquired, scene_acquisition
                )
                if store.remove_scene(name):
                    _warn(f"{name}: already in {store_path}; replaced")
                store.add_scene(
                    name,
                    features,
                    when,
                    report,
                    acquired_source=source,
                    classes=class_status(run),
                    places=places,
                    input_path=input_path,
                    kind=kind,
                    clouds=run.get("clouds"),
                )
                shown = f"acquired {when}" if when else "acquisition time unknown"
                click.echo(f"{name}: {len(features)} detections stored ({shown}; {source})")
    except StoreError as exc:
        fail(str(exc), EXIT_USAGE)
    except EotriageError as exc:
        fail(str(exc), EXIT_USAGE)


def _input_path(scene_dir: Path, recorded: Any) -> str | None:
    """The scene input a run recorded.  run.json keeps the path as given to `eotriage run`,
    often relative to the folder it ran in: when it is not found from here, the run output's
    ancestors (where `run` was likely started) are tried."""
    if not isinstance(recorded, str) or not recorded:
        return None
    p = Path(recorded)
    if p.is_absolute() or p.exists():
        return recorded
    for base in scene_dir.resolve().parents:
        cand = base / p
        # not a run output of the same name (OUT/<scene> beside the input <scene>)
        if cand.exists() and not (cand.is_dir() and (cand / "run.json").is_file()):
            return str(cand)
    return recorded


def _acquisition(
    run: dict[str, Any], input_path: str | None, override: str | None, finder: Any
) -> tuple[str | None, str, tuple[str, ...], str | None]:
    """(time or None, source, places, kind): ``--acquired``, then run.json's ``acquired_utc``
    (when the run recorded it), then the scene input's metadata/sidecar/labels/file name."""
    places = tuple(run.get("places") or ())
    kind = run.get("scene_kind")
    if override is None and "acquired_utc" in run:
        when = run.get("acquired_utc")
        source = str(run.get("acquired_source") or "run.json")
        if input_path and (not places or kind is None):
            found = finder(input_path)
            places, kind = places or found.places, kind or found.kind
        return (str(when) if when else None), source, places, kind
    if input_path is None:
        if override is not None:
            from ..core.acquisition import normalise_time
            from ..errors import InputError

            when = normalise_time(override)
            if when is None:
                raise InputError(f"--acquired {override!r} is not an ISO 8601 date or time")
            return when, "--acquired", places, kind
        return None, "unknown (run.json names no input)", places, kind
    acq = finder(input_path, override)
    return acq.utc, acq.source, places or acq.places, kind or acq.kind
