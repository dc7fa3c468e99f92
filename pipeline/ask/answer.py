"""Answer a question onboard: understand it, query the store, restate the query in the answer.

The answer text is rendered from the exact result by a template, never by the model: every
answer starts by restating what was computed ("3 ships longer than 200 m in hedland (acquired
2023-07-30): longest 307 m at 20.320S 118.580E."), so an operator sees at once whether the
question was understood.  A question that is not understood gets "Not understood: ..." with
what was understood and what was not; no query runs.  A class that was not looked for in a
scene is "not checked" there, never "none found".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import EotriageError
from .intent import QuestionModel
from .parse import CLASS_NAMES, Parse, Parser, Query, fmt_point, format_size
from .query import Question, Result, execute, measure_of
from .store import DetectionStore, StoredDetection, StoredScene

log = logging.getLogger(__name__)

#: characters of an answer text at most (a list is cut, with "and N more")
MAX_TEXT = 900


@dataclass(frozen=True)
class Answer:
    """What goes down for one question."""

    qid: int
    question: str
    #: the query the answer was computed with (None when not understood)
    filter: dict[str, Any] | None
    #: "parser", "parser+llm" (the LLM mapped a word onto an open slot), or "not understood"
    understood_by: str
    facts: dict[str, Any]
    text: str
    #: always "template": numbers are rendered outside the model
    writer: str
    fallback_reason: str | None
    latency_s: float
    error: str | None = None
    #: "answered", "not understood" or "error"
    status: str = "answered"
    understood: tuple[str, ...] = ()
    not_understood: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: words the LLM was asked about (0: the parser understood every word itself)
    llm_calls: int = 0

    def to_value(self) -> dict[str, Any]:
        return {
            "qid": self.qid,
            "question": self.question,
            "status": self.status,
            "filter": self.filter,
            "understood_by": self.understood_by,
            "understood": list(self.understood),
            "not_understood": list(self.not_understood),
            "notes": list(self.notes),
            "llm_calls": self.llm_calls,
            "facts": self.facts,
            "text": self.text,
            "writer": self.writer,
            "fallback_reason": self.fallback_reason,
            "latency_s": round(self.latency_s, 3),
            "error": self.error,
        }


# ----------------------------------------------------------------------------- rendering


def _when(acquired: str | None) -> str:
    if acquired is None:
        return "acquisition time unknown"
    if len(acquired) == 10:
        return f"acquired {acquired}"
    return f"acquired {acquired[:16].replace('T', ' ')} UTC"


def _t(iso: str) -> str:
    if iso.endswith(("T00:00:00Z", "T23:59:59Z")):
        return iso[:10]
    return iso[:16].replace("T", " ") + " UTC"


def _time_phrase(q: Query) -> str:
    if q.since is None and q.until is None:
        return ""
    if q.since and q.until:
        if (
            q.since[:10] == q.until[:10]
            and q.since.endswith("T00:00:00Z")
            and q.until.endswith("T23:59:59Z")
        ):
            window = f"on {q.since[:10]}"
        else:
            window = f"between {_t(q.since)} and {_t(q.until)}"
    elif q.since:
        window = f"since {_t(q.since)}"
    else:
        assert q.until is not None
        window = f"until {_t(q.until)}"
    asked = f" ({q.time_text})" if q.time_text and q.time_text.lower() not in window else ""
    return f" acquired {window}{asked}"


def _where(q: Query, scenes: dict[str, StoredScene]) -> str:
    parts = []
    if q.scenes is not None:
        labels = []
        for name in q.scenes:
            s = scenes.get(name)
            labels.append(f"{name}, {_when(s.acquired_utc if s else None)}")
        said = ", ".join(dict.fromkeys(p.lower() for p in q.place_text))
        if len(q.scenes) == 1 and said == q.scenes[0].lower():
            parts.append(f" in {q.scenes[0]} ({_when(scenes[q.scenes[0]].acquired_utc)})")
        elif len(q.scenes) == 1:
            parts.append(f" in {said} ({labels[0]})")
        elif len(q.scenes) <= 3:
            parts.append(f" in {said} ({'; '.join(labels)})")
        else:
            parts.append(f" in {said} ({len(q.scenes)} scenes: {', '.join(q.scenes)})")
    if q.point is not None and q.radius_km is not None:
        parts.append(f" within {q.radius_km:g} km of {fmt_point(*q.point)}")
    if q.bbox is not None:
        parts.append(" in box " + ",".join(f"{v:g}" for v in q.bbox))
    if q.wkt is not None:
        parts.append(" in the given area")
    return "".join(parts)


def _sizes(q: Query) -> str:
    b = q.sizes
    if len(b) == 2 and b[0].measure == b[1].measure and {b[0].op, b[1].op} == {">=", "<="}:
        lo, hi = sorted(b, key=lambda x: x.value)
        unit = format_size(lo.measure, hi.value).split(" ", 1)[1]
        low = format_size(lo.measure, lo.value, None if lo.measure == "length_m" else unit)
        return f" between {low.split(' ', 1)[0]} and {format_size(hi.measure, hi.value)}"
    return " and".join(f" {x.text()}" for x in b)


def _subject(q: Query, n: int | None, scenes: dict[str, StoredScene]) -> str:
    """ "3 ships longer than 200 m in hedland (acquired ...) acquired since ...", or without
    a number when ``n`` is None."""
    noun = q.noun(2 if n is None else n)
    head = noun if n is None else f"{n} {noun}"
    return f"{head}{_sizes(q)}{_where(q, scenes)}{_time_phrase(q)}"


def _item(
    d: StoredDetection, scene_known: bool, dist_m: float | None = None, label: bool = False
) -> str:
    """ "1.2 km away, 307 m at 20.320S 118.580E in hedland (acquired ...)"; ``label`` names
    the class first (answers about every class)."""
    size = ""
    if measure_of(d.cls) == "length_m" and d.length_m is not None:
        size = format_size("length_m", d.length_m) + " "
    elif d.area_m2 is not None:
        size = format_size("area_m2", d.area_m2) + " "
    where = "" if scene_known else f" in {d.scene} ({_when(d.acquired_utc)})"
    dist = f"{dist_m / 1000:.1f} km away, " if dist_m is not None else ""
    name = f"{CLASS_NAMES.get(d.cls, (d.cls,))[0]} " if label else ""
    return f"{dist}{name}{size}at {fmt_point(d.lon, d.lat)}{where}"


def _best_word(q: Query, largest: bool) -> str:
    if q.cls == "ship":
        return "longest" if largest else "shortest"
    return "largest" if largest else "smallest"


def _notes(r: Result) -> list[str]:
    out = []
    if r.not_checked:
        noun = CLASS_NAMES[r.query.cls][1].capitalize()
        groups: dict[str, list[str]] = {}
        for name, why in r.not_checked.items():
            reason = why.removeprefix("not checked: ").removeprefix("not checked")
            groups.setdefault(reason.strip(" :") or "not recorded", []).append(name)
        parts = [f"{', '.join(names)} ({why})" for why, names in groups.items()]
        out.append(f"{noun} not checked in {'; '.join(parts)}.")
    if r.unknown_time:
        out.append(f"Left out, acquisition time unknown: {', '.join(r.unknown_time)}.")
    return out


def render(r: Result, scenes: dict[str, StoredScene]) -> str:
    """The answer text: the restated query, the result, then what was not checked."""
    q = r.query
    one_scene = q.scenes is not None and len(q.scenes) == 1
    n = len(r.matches)
    notes = _notes(r)
    if not r.searched:
        subject = _subject(q, None, scenes)
        if r.not_checked:
            main = f"No answer for {subject}: not looked for."
        else:
            bare = f"{q.noun(2)}{_sizes(q)}{_where(q, scenes)}"
            known = " with a known acquisition time" if r.unknown_time else ""
            window = _time_phrase(q).strip() or "in the store"
            main = f"No answer for {bare}: no scene{known} {window}."
        return " ".join([main, *notes])
    searched = f"{len(r.searched)} scene{'s' if len(r.searched) != 1 else ''} searched"
    if q.cls == "cloud":
        main = _cloud_main(r, scenes)
    elif q.op in ("count", "any"):
        subject = _subject(q, n, scenes)
        if q.cls == "any" and n:
            parts = ", ".join(
                f"{c} {CLASS_NAMES.get(k, (k, k))[c != 1]}" for k, c in sorted(r.by_class.items())
            )
            main = f"{subject}: {parts}."
        elif n == 0:
            main = f"No {_subject(q, None, scenes)} found ({searched})."
        else:
            extra = ""
            if r.items:
                d = r.items[0]
                extra = f": {_best_word(q, True)} {_item(d, one_scene)}"
            main = f"{subject}{extra}."
        if q.op == "any":
            main = ("Yes: " if n else "No: ") + main[0].lower() + main[1:]
    elif q.op in ("largest", "smallest"):
        word = _best_word(q, q.op == "largest").capitalize()
        if not r.items:
            main = f"No {_subject(q, None, scenes)} found ({searched}), so no {word.lower()}."
        else:
            d = r.items[0]
            main = f"{word} of {n} {q.noun(n)}{_sizes(q)}{_where(q, scenes)}{_time_phrase(q)}: "
            main += f"{_item(d, one_scene)}."
    elif q.op == "nearest":
        assert q.point is not None
        head = f"Nearest {q.noun(1)}{_sizes(q)} to {fmt_point(*q.point)}"
        head += f"{_where(q, scenes)}{_time_phrase(q)}"
        if not r.items:
            main = f"{head}: none found ({searched})."
        else:
            main = f"{head}: {_item(r.items[0], one_scene, r.distances_m[0])}."
    elif q.op == "list":
        if not r.items:
            main = f"No {_subject(q, None, scenes)} found ({searched})."
        else:
            word = {"largest": _best_word(q, True), "smallest": _best_word(q, False)}.get(
                q.order or "largest", "nearest"
            )
            if q.order == "nearest" and q.point is not None:
                word = f"nearest to {fmt_point(*q.point)}"
            if q.n is not None:
                which = f", the {q.n} {word}"
            elif q.cls == "any":
                which = ""
            else:
                which = f", {word} first"
            dists = list(r.distances_m) + [None] * len(r.items)
            listed = "; ".join(
                f"{i + 1}) {_item(d, one_scene, dists[i], q.cls == 'any')}"
                for i, d in enumerate(r.items)
            )
            more = n - len(r.items) if q.n is None else 0
            tail = f"; and {more} more" if more > 0 else ""
            main = f"{_subject(q, n, scenes)}{which}: {listed}{tail}."
    elif q.op in ("most", "least"):
        word = "Most" if q.op == "most" else "Fewest"
        subject = f"{q.noun(2)}{_sizes(q)}{_where(q, scenes)}{_time_phrase(q)}"
        count = r.per_scene[r.best_scenes[0]] if r.best_scenes else 0
        names = " and ".join(f"{b} ({_when(scenes[b].acquired_utc)})" for b in r.best_scenes)
        each = " each" if len(r.best_scenes) > 1 else ""
        main = f"{word} {subject}: {names}, {count} {q.noun(count)}{each} ({searched})."
    elif q.op == "total_area":
        total = r.total_area_m2 or 0.0
        unit = q.area_unit
        shown = format_size("area_m2", total, unit)
        also = "" if unit in (None, "m²") else f" ({format_size('area_m2', total, 'm²')})"
        main = f"Total area of {_subject(q, None, scenes)}: {shown}{also} over {n} {q.noun(n)}."
    else:  # per_scene
        parts = ", ".join(f"{k} {v}" for k, v in r.per_scene.items())
        main = f"{q.noun(2).capitalize()}{_sizes(q)}{_where(q, scenes)}{_time_phrase(q)} "
        main += f"per scene: {parts} ({n} in all)."
    text = " ".join([main, *notes])
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1].rsplit(";", 1)[0] + " ..."
    return text


#: from this share of cloud on, a scene counts as cloudy in a yes/no answer
CLOUDY_FROM = 0.01


def _cover(name: str, cover: tuple[float, float], scenes: dict[str, StoredScene]) -> str:
    cloud, shadow = cover
    text = f"{name} ({_when(scenes[name].acquired_utc)}) {cloud * 100:.0f} % cloud"
    return text + (f", {shadow * 100:.0f} % shadow" if shadow >= 0.005 else "")


def _cloud_main(r: Result, scenes: dict[str, StoredScene]) -> str:
    """Cloud questions are answered from the cloud fraction the screen measured per scene (the
    store keeps no cloud outlines, so "where" narrows only which scenes are searched)."""
    q = r.query
    subject = f"cloud cover{_where(q, scenes)}{_time_phrase(q)}"
    n = len(r.cloud_cover)
    each = "; ".join(_cover(k, v, scenes) for k, v in r.cloud_cover.items())
    if q.op in ("most", "least"):
        word = "Cloudiest" if q.op == "most" else "Clearest"
        best = " and ".join(_cover(b, r.cloud_cover[b], scenes) for b in r.best_scenes)
        return f"{word} scene{_where(q, scenes)}{_time_phrase(q)}: {best} ({n} scenes searched)."
    if q.op == "any":
        cloudy = [k for k, (c, _) in r.cloud_cover.items() if c >= CLOUDY_FROM]
        head = "Yes" if cloudy else "No"
        return f"{head}: {subject}, {n} scene{'s' if n != 1 else ''}: {each}."
    return f"{subject[0].upper()}{subject[1:]}, {n} scene{'s' if n != 1 else ''}: {each}."


def not_understood_text(p: Parse) -> str:
    missing = "; ".join(p.not_understood) or "the question"
    got = ", ".join(p.understood) if p.understood else "nothing"
    return f"Not understood: {missing}. Understood: {got}. Please ask again."


# ----------------------------------------------------------------------------- answering


def understand(
    store: DetectionStore,
    question: Question,
    model: QuestionModel | None = None,
    timeout_s: float = 10.0,
) -> Parse:
    """Parse a question against the store's scenes (the LLM only for unknown words)."""
    parser = Parser(store.scene_records())
    return parser.parse(
        question.text,
        asked_utc=question.asked_utc,
        cls=question.cls,
        op=question.kind,
        point=question.point,
        bbox=question.bbox,
        wkt=question.wkt,
        since=question.since,
        until=question.until,
        resolver=model.resolver(timeout_s) if model is not None else None,
    )


def answer_question(
    store: DetectionStore,
    question: Question,
    model: QuestionModel | None = None,
    timeout_s: float = 10.0,
) -> Answer:
    """Understand, query and phrase one question; errors become an error answer, never raise."""
    t0 = time.perf_counter()
    calls0 = model.calls if model is not None else 0
    try:
        parsed = understand(store, question, model, timeout_s)
        llm_calls = (model.calls if model is not None else 0) - calls0
        if parsed.query is None:
            return Answer(
                question.qid,
                question.text,
                None,
                "not understood",
                {},
                not_understood_text(parsed),
                "template",
                None,
                time.perf_counter() - t0,
                status="not understood",
                understood=parsed.understood,
                not_understood=parsed.not_understood,
                notes=parsed.llm,
                llm_calls=llm_calls,
            )
        result = execute(store, parsed.query)
        scenes = {s.name: s for s in store.scene_records()}
        text = render(result, scenes)
    except Exception as exc:  # one question never takes the others down
        if not isinstance(exc, EotriageError):
            log.exception("question %d: internal error", question.qid)
            exc = EotriageError(f"internal error ({type(exc).__name__}: {exc})")
        return Answer(
            question.qid,
            question.text,
            None,
            "error",
            {},
            f"Question not answered: {exc}",
            "template",
            None,
            time.perf_counter() - t0,
            error=str(exc),
            status="error",
        )
    return Answer(
        question.qid,
        question.text,
        parsed.query.to_dict(),
        "parser+llm" if parsed.llm else "parser",
        result.facts(),
        text,
        "template",
        None,
        time.perf_counter() - t0,
        understood=parsed.understood,
        notes=parsed.llm,
        llm_calls=llm_calls,
    )


__all__ = ["Answer", "answer_question", "not_understood_text", "render", "understand"]
