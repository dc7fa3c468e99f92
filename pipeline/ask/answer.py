"""Answer a question onboard: resolve it, query the store, write a checked short answer."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from ..errors import EotriageError, QuestionError
from .intent import QuestionModel
from .query import Question, keyword_intent, parse_numbers, run_query
from .store import DetectionStore

log = logging.getLogger(__name__)

NOUN = {
    "ship": ("ship", "ships"),
    "fire": ("fire", "fires"),
    "crop_stress": ("stressed field", "stressed fields"),
}
UNIT = {"m2": "m²", "m": "m", "km2": "km²"}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Answer:
    """What goes down for one question."""

    qid: int
    question: str
    #: the resolved filter the answer was computed with
    filter: dict[str, Any]
    #: how kind/class were resolved: "given", "llm", "keywords"
    understood_by: str
    facts: dict[str, Any]
    text: str
    #: "llm" or "template"
    writer: str
    fallback_reason: str | None
    latency_s: float
    error: str | None = None

    def to_value(self) -> dict[str, Any]:
        return {
            "qid": self.qid,
            "question": self.question,
            "filter": self.filter,
            "understood_by": self.understood_by,
            "facts": self.facts,
            "text": self.text,
            "writer": self.writer,
            "fallback_reason": self.fallback_reason,
            "latency_s": round(self.latency_s, 3),
            "error": self.error,
        }


def _fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.4g}"


def template_text(facts: dict[str, Any]) -> str:
    """Deterministic answer from the facts (the fallback, and what the check trusts)."""
    kind, cls, n = facts["kind"], facts.get("cls"), int(facts["matches"])
    one, many = NOUN.get(cls or "", ("detection", "detections"))
    where = " in the area" if "bbox" in facts else ""
    when = f" since {facts['since']}" if "since" in facts else ""
    if kind == "count":
        if n == 0:
            return f"No {many} were detected{where}{when}."
        return f"{n} {one if n == 1 else many} detected{where}{when}."
    best = facts.get("best")
    if not best:
        return f"No {many} were detected{where}{when}."
    at = f"{best['lat']:.4f}, {best['lon']:.4f}"
    size = ""
    if best.get("size") is not None:
        size = f", {_fmt(best['size'])} {UNIT.get(best['size_unit'], best['size_unit'])}"
    label = NOUN.get(best["cls"], (best["cls"],))[0]
    if kind == "nearest":
        return (
            f"Nearest {label}: {facts['distance_km']} km away at {at}{size} "
            f"(scene {best['scene']}, {best['acquired_utc']})."
        )
    return f"Largest {label}: {at}{size} (scene {best['scene']}, {best['acquired_utc']})."


_QUANTITY = re.compile(r"(-?\d+(?:\.\d+)?)(?:\s*(km²|m²|km|m)(?![A-Za-z]))?")


def _numbers(text: str) -> list[tuple[str, str]]:
    """(number, unit) pairs; units km², m², km, m or "" (units km2/m2 are read as km²/m²).

    ISO times are split so their parts count as numbers: 2026-11-28 -> 2026, 11, 28.
    """
    text = re.sub(r"\b(k?m)2\b", r"\1²", text.replace("\u2212", "-"))
    text = re.sub(r"(\d)-(\d)", r"\1 \2", text)
    return [(m.group(1), m.group(2) or "") for m in _QUANTITY.finditer(text)]


def check_text(text: str, facts: dict[str, Any]) -> str | None:
    """None when the text states only facts, bound as in the template, else why not.

    Every number must equal (at the text's precision, with the same unit) a number of the
    template answer, and they must come in the template's order: so a latitude cannot pass as
    a size, nor a count of one class as another's.  The class and a zero count must be stated
    right too.
    """
    if not text or len(text) > 280:
        return f"answer text of {len(text)} characters"
    reference = [(float(x), unit) for x, unit in _numbers(template_text(facts))]
    pos = 0
    for tok, unit in _numbers(text):
        nd = len(tok.split(".")[1]) if "." in tok else 0
        v = float(tok)
        while pos < len(reference) and (
            round(reference[pos][0], nd) != v or reference[pos][1] != unit
        ):
            pos += 1
        if pos == len(reference):
            return f"number {tok} is not a fact in this place"
        pos += 1
    cls = facts.get("cls")
    low = text.lower()
    for other, words in NOUN.items():
        if cls is None or other == cls:
            continue
        stem = words[0].split()[-1]
        if stem in low and not (
            other == "crop_stress" and cls != "crop_stress" and "stress" not in low
        ):
            return f"mentions {other} but the question is about {cls}"
    if facts["kind"] == "count" and int(facts["matches"]) == 0:
        if not re.search(r"\b(no|none|zero|0)\b", low):
            return "count is 0 but the text does not say so"
    return None


def answer_question(
    store: DetectionStore,
    question: Question,
    model: QuestionModel | None = None,
    timeout_s: float = 10.0,
) -> Answer:
    """Resolve, query and phrase one question; errors become an error answer, never raise."""
    t0 = time.perf_counter()
    understood = "given"
    try:
        q = parse_numbers(question)
        if q.kind is None:
            kind, cls = keyword_intent(q.text)
            understood = "keywords"
            if model is not None:
                try:
                    kind_m, cls_m, _margin = model.intent(q.text, timeout_s)
                    kind, cls = kind_m, cls_m if q.cls is None else q.cls
                    understood = "llm"
                except EotriageError as exc:
                    log.warning("question %d: LLM intent failed (%s); keywords used", q.qid, exc)
            if kind is None:
                raise QuestionError(
                    "cannot tell what is asked (count, nearest or largest); give kind="
                )
            q = replace(q, kind=kind, cls=q.cls if q.cls is not None else cls)
        result = run_query(store, q)
    except EotriageError as exc:
        return Answer(
            question.qid,
            question.text,
            question.to_value(),
            understood,
            {},
            f"Question not answered: {exc}",
            "template",
            None,
            time.perf_counter() - t0,
            error=str(exc),
        )
    facts = result.facts()
    text, writer, reason = template_text(facts), "template", None
    if model is not None:
        try:
            remaining = max(0.5, timeout_s - (time.perf_counter() - t0))
            candidate = model.answer_text(facts, remaining)
            reason = check_text(candidate, facts)
            if reason is None:
                text, writer = candidate, "llm"
            else:
                log.info("question %d: LLM answer rejected: %s (%r)", q.qid, reason, candidate)
        except EotriageError as exc:
            reason = f"model error: {exc}"
    else:
        reason = "no model (template only)"
    return Answer(
        q.qid,
        q.text,
        q.to_value(),
        understood,
        facts,
        text,
        writer,
        reason,
        time.perf_counter() - t0,
    )
