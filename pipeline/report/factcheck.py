"""Check a summary against the facts: outcome, every number, count, class and place name.

The check is independent of how the text was written.  A summary reads
``<Outcome> scan. <Priority> priority, <headline>: <phrase>; <phrase>; ... .`` and the check
accepts:

* the outcome lead of the facts (``Complete scan.``, ``Partial scan.``, ``Failed scan.``) and
  nothing else as the first words;
* after the headline, only whole fact phrases, one per ``;``-separated part: a number is thus
  always in the phrase that binds it to its class and unit ("longest ship 310 m at ...", never
  "310 m" after a crop-stress phrase), and "not checked" only where the facts say so;
* a count only when it equals the facts for that class ("no ships" only when the ship detector
  looked), and the count of the class that leads the report first;
* in the headline, no number, negation or name, no word of a class that was not found, nor of
  a found class other than the one that leads, and no word claiming a clear scene when some of
  it was not looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.results import NOT_CHECKED
from .facts import Facts
from .phrases import (
    COUNT_WORDS,
    all_phrase_texts,
    fact_phrases,
    headline_class,
    outcome_lead,
    plain_count_phrases,
    priority_choices,
)

NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred hundreds thousand thousands million dozen dozens single couple pair both "
    "first second third several".split()
)
NEGATIONS = frozenset("no not none without zero neither nor absent".split())
#: words that claim an empty scene
EMPTY_WORDS = frozenset("nothing clear empty quiet calm idle".split())
#: words that claim the whole scene was looked at and is empty (not for partial/failed scans)
ALL_CLEAR_WORDS = frozenset("clear empty quiet calm idle".split())
#: headline words that claim something is going on (not when nothing was found)
ACTIVITY_WORDS = frozenset(
    "active activity alert multiple large small new possible mixed busy burning".split()
)
#: word stems that claim a class is present
CLASS_STEMS: dict[str, tuple[str, ...]] = {
    "fire": ("fire", "wildfire", "blaze", "burn", "flame", "hot", "smoke", "ember"),
    "ship": (
        "ship",
        "vessel",
        "boat",
        "tanker",
        "cargo",
        "fleet",
        "freighter",
        "ferr",
        "trawler",
        "traffic",
        "maritime",
    ),
    "crop_stress": ("crop", "field", "farm", "drought", "harvest", "vegetat", "stress"),
}
#: capitalised words allowed outside fact phrases
ALLOWED_CAPITALISED = frozenset({"High", "Medium", "Low"})

_WORD_TO_CLASS = {w: cls for cls, words in COUNT_WORDS.items() for w in words[:2]}
_COUNT_RE = re.compile(
    r"(?<![\w.])(\d+|no)\s+(fire clusters?|ships?|crop-stress areas?)(?![\w-])", re.IGNORECASE
)
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_WORD_RE = re.compile(r"[^\W\d_][^\W\d_'\-]*", re.UNICODE)
_PRIORITY_RE = re.compile(r"\b(\w+)\s+priority\b", re.IGNORECASE)
_HEAD_RE = re.compile(r"^\s*(\w+) priority, ([^:]*):(.*)$", re.DOTALL)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check`; ``problems`` name each mismatch."""

    ok: bool
    problems: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


def looked_at_everything(facts: Facts) -> bool:
    """Every class was looked for over the whole scene (only then may a text call it clear)."""
    return facts.outcome == "complete" and all(
        c.status != NOT_CHECKED and c.coverage >= 1.0 for c in facts.classes
    )


def _class_of(word: str) -> str:
    w = word.lower()
    for cls, (one, many, _none) in COUNT_WORDS.items():
        if w in (one, many):
            return cls
    return "crop_stress" if w.startswith("crop") else w


def _strip_phrases(text: str, phrases: list[str]) -> str:
    for p in sorted(set(phrases), key=len, reverse=True):
        text = re.sub(r"(?<![\w.])" + re.escape(p) + r"(?![\w])", " | ", text)
    return text


def check(summary: str, priority: str, facts: Facts, max_chars: int = 280) -> CheckResult:
    """Every number, count per class, class word and place name of ``summary`` vs ``facts``."""
    problems: list[str] = []
    if len(summary) > max_chars:
        problems.append(f"summary has {len(summary)} characters (limit {max_chars})")
    if not summary.strip():
        problems.append("empty summary")
    allowed_priorities = priority_choices(facts)
    if priority not in allowed_priorities:
        problems.append(
            f"priority {priority!r} not in {'/'.join(allowed_priorities)} for these facts"
        )
    for m in _PRIORITY_RE.finditer(summary):
        if m.group(1).lower() != priority:
            problems.append(f"text says {m.group(1)} priority but the report is {priority!r}")

    # counts per class
    stated: dict[str, list[int]] = {}
    for m in _COUNT_RE.finditer(summary):
        cls = _class_of(m.group(2))
        n = 0 if m.group(1).lower() == "no" else int(m.group(1))
        stated.setdefault(cls, []).append(n)
    for c in facts.classes:
        for n in stated.get(c.cls, []):
            if n != c.count:
                problems.append(f"states {n} {COUNT_WORDS[c.cls][1]}, facts say {c.count}")
            elif n == 0 and not c.checked:
                problems.append(f"claims {COUNT_WORDS[c.cls][2]} but that detector did not run")
        if c.count and c.count not in stated.get(c.cls, []):
            problems.append(f"count of {COUNT_WORDS[c.cls][1]} ({c.count}) missing")

    # the outcome first
    lead = outcome_lead(facts)
    rest = summary
    if summary.startswith(lead + " "):
        rest = summary[len(lead) + 1 :]
    else:
        problems.append(f"does not start with the scene outcome {lead!r}")
    texts = all_phrase_texts(facts)
    head = _HEAD_RE.match(rest)
    if head is None:
        problems.append("not in the form '<Priority> priority, <headline>: <facts>.'")
        headline, segments = "", []
    else:
        headline = head.group(2)
        body = head.group(3).strip()
        if not body.endswith("."):
            problems.append("does not end with a full stop")
        segments = [s.strip() for s in body.removesuffix(".").split(";")]
        phrases = set(texts)
        for seg in segments:
            if seg and seg not in phrases:
                problems.append(f"{seg[:60]!r} is not one of the fact phrases")
    # a class's details after its count ("largest fire cluster ..." after "3 fire clusters")
    by_text = {p.text: p for p in (*fact_phrases(facts), *plain_count_phrases(facts))}
    counted: set[str] = set()
    for seg in segments:
        ph = by_text.get(seg)
        if ph is None or ph.cls is None:
            continue
        if ph.key.startswith("count_"):
            counted.add(ph.cls)
        elif not ph.key.startswith("unchecked") and ph.cls not in counted:
            problems.append(f"{seg[:40]!r} comes before the count of {COUNT_WORDS[ph.cls][1]}")
    lead_cls = headline_class(facts)
    if lead_cls is not None and segments:
        first = _COUNT_RE.match(segments[0])
        if first is None or _class_of(first.group(2)) != lead_cls:
            problems.append(
                f"the first fact is not the count of {COUNT_WORDS[lead_cls][1]}, which lead"
            )
    head_words = [w.lower() for w in _WORD_RE.findall(headline)]
    if lead_cls is not None and head is not None:
        if not any(w.startswith(st) for w in head_words for st in CLASS_STEMS[lead_cls]):
            problems.append(f"headline {headline.strip()!r} does not name {lead_cls}, which leads")
    for word in _WORD_RE.findall(headline):
        low = word.lower()
        for c in facts.classes:
            if c.count and c.cls != lead_cls and any(low.startswith(s) for s in CLASS_STEMS[c.cls]):
                problems.append(f"headline word {word!r} names {c.cls}, but {lead_cls} leads")
        if low in ACTIVITY_WORDS and not facts.total:
            problems.append(f"headline word {word!r} claims activity, but nothing was found")
        if low in ALL_CLEAR_WORDS and not looked_at_everything(facts):
            problems.append(
                f"headline word {word!r} claims a clear scene, but not every class was looked "
                "for over the whole scene"
            )

    # what is left outside the fact phrases
    residual = _strip_phrases(rest if head is None else headline, texts)
    for num in _NUMBER_RE.findall(residual):
        problems.append(f"number {num!r} is not bound to a fact")
    absent = [c.cls for c in facts.classes if c.count == 0]
    for word in _WORD_RE.findall(residual):
        low = word.lower()
        if low in NUMBER_WORDS:
            problems.append(f"number word {word!r} is not bound to a fact")
        elif low in NEGATIONS:
            problems.append(f"negation {word!r} outside a fact phrase")
        elif low in EMPTY_WORDS and facts.total:
            problems.append(f"word {word!r} claims an empty scene but {facts.total} detected")
        elif any(ch.isupper() for ch in word) and word not in ALLOWED_CAPITALISED:
            problems.append(f"name {word!r} is not in the facts")
        else:
            for cls in absent:
                if any(low.startswith(s) for s in CLASS_STEMS[cls]):
                    problems.append(f"word {word!r} implies {cls} but none was detected")
    return CheckResult(not problems, tuple(dict.fromkeys(problems)))
