"""Check a summary against the facts: every number, count, class and place name.

The check is independent of how the text was written.  It accepts a number only inside one of
the scene's pre-rendered fact phrases, a count only when it equals the facts for that class,
a capitalised word only when it is the priority word or part of a fact phrase (places are
phrases), and a class word ("ships", "wildfire") only for a class that was detected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .facts import Facts
from .phrases import COUNT_WORDS, fact_phrases, priority_choices

NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred hundreds thousand thousands million dozen dozens single couple pair both "
    "first second third several".split()
)
NEGATIONS = frozenset("no not none without zero neither nor absent".split())
#: words that claim an empty scene
EMPTY_WORDS = frozenset("nothing clear empty quiet calm idle".split())
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


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check`; ``problems`` name each mismatch."""

    ok: bool
    problems: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


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

    # what is left outside the fact phrases
    residual = _strip_phrases(summary, [p.text for p in fact_phrases(facts)])
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
