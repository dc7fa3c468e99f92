"""Fact phrases: every number and place of a report, rendered outside any model.

Each :class:`Phrase` binds its numbers to their fact ("3 ships", "largest 1.2 ha at 58.123N
123.456W").  The template writer joins them deterministically; the LLM writer may only choose
among them (which, in what order), so a number can never leave its phrase.
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import ClassFacts, Facts

PRIORITIES = ("low", "medium", "high")

#: class -> (singular, plural, "none" form)
COUNT_WORDS = {
    "fire": ("fire cluster", "fire clusters", "no fire clusters"),
    "ship": ("ship", "ships", "no ships"),
    "crop_stress": ("crop-stress area", "crop-stress areas", "no crop-stress areas"),
}
#: headline the template writer uses, by the most important class present
TEMPLATE_HEADLINES = {
    "fire": "active fire",
    "ship": "vessels detected",
    "crop_stress": "crop stress",
    None: "nothing detected",
}


@dataclass(frozen=True)
class Phrase:
    """One pre-rendered fact phrase."""

    key: str
    text: str
    #: a count phrase: every report states it
    mandatory: bool
    #: order of importance (lower first) for the template and for budget cuts
    rank: int


def fmt_count(cls: str, n: int) -> str:
    one, many, none = COUNT_WORDS[cls]
    if n == 0:
        return none
    return f"{n} {one if n == 1 else many}"


def fmt_area(m2: float) -> str:
    """Areas: m² below 1 ha, ha below 1 km², km² above."""
    if m2 < 1e4:
        return f"{round(m2):d} m²"
    if m2 < 1e6:
        return f"{m2 / 1e4:.1f} ha"
    return f"{m2 / 1e6:.2f} km²"


def fmt_lonlat(lon: float, lat: float) -> str:
    """``58.123N 123.456W`` (3 decimals, ~100 m)."""
    return f"{abs(lat):.3f}{'N' if lat >= 0 else 'S'} {abs(lon):.3f}{'E' if lon >= 0 else 'W'}"


def priority_choices(facts: Facts) -> tuple[str, ...]:
    """Priorities a writer may give: fire -> high; ships or crop stress -> medium or high;
    nothing -> low.  The first is the template's choice."""
    if facts.of("fire").count:
        return ("high",)
    if facts.of("ship").count or facts.of("crop_stress").count:
        return ("medium", "high")
    return ("low",)


def headline_class(facts: Facts) -> str | None:
    for c in facts.classes:
        if c.count:
            return c.cls
    return None


def _detail_phrases(c: ClassFacts, rank0: int) -> list[Phrase]:
    out: list[Phrase] = []
    top = c.top
    if c.count == 0 or top is None:
        return out
    pos = fmt_lonlat(top.lon, top.lat)
    if c.cls == "fire":
        if c.total_area_m2 is not None:
            px = f"{c.total_pixels} hot pixels, " if c.total_pixels is not None else ""
            out.append(Phrase("fire_total", f"{px}{fmt_area(c.total_area_m2)} in total", False, 10))
        if c.count > 1 and top.area_m2 is not None:
            out.append(Phrase("fire_top", f"largest {fmt_area(top.area_m2)} at {pos}", False, 11))
        else:
            out.append(Phrase("fire_top", f"fire at {pos}", False, 11))
    elif c.cls == "ship":
        if top.length_m is not None:
            head = (
                f", heading {round(top.heading_deg) % 360:d}°"
                if top.heading_deg is not None
                else ""
            )
            what = "longest" if c.count > 1 else "length"
            out.append(
                Phrase("ship_top", f"{what} {round(top.length_m):d} m at {pos}{head}", False, 20)
            )
        else:
            out.append(Phrase("ship_top", f"strongest ship at {pos}", False, 20))
    else:
        if c.total_area_m2 is not None:
            sev = f", worst severity {c.worst_severity}" if c.worst_severity else ""
            out.append(
                Phrase("crop_total", f"{fmt_area(c.total_area_m2)} stressed{sev}", False, 30)
            )
        what = (
            f"largest {fmt_area(top.area_m2)}"
            if top.area_m2 is not None and c.count > 1
            else ("stressed field")
        )
        out.append(Phrase("crop_top", f"{what} at {pos}", False, 31))
    return [Phrase(p.key, p.text, p.mandatory, p.rank + rank0) for p in out]


def fact_phrases(facts: Facts) -> tuple[Phrase, ...]:
    """All phrases a report of ``facts`` may contain, most important first."""
    out: list[Phrase] = []
    present = [c for c in facts.classes if c.count]
    absent = [c for c in facts.classes if not c.count and c.checked]
    for i, c in enumerate(present):
        out.append(Phrase(f"count_{c.cls}", fmt_count(c.cls, c.count), True, i))
    for i, c in enumerate(absent):
        out.append(Phrase(f"count_{c.cls}", fmt_count(c.cls, 0), True, 3 + i))
    if facts.place:
        out.append(Phrase("place", f"near {facts.place}", False, 5))
    top_cls = headline_class(facts)
    for c in present:
        for p in _detail_phrases(c, 0):
            # where the most important detection is: every report states it
            key_top = p.key.endswith("_top") and c.cls == top_cls
            out.append(Phrase(p.key, p.text, True, 6) if key_top else p)
    if top_cls is not None:
        top = facts.of(top_cls).top
        if top is not None and top.tile:
            out.append(Phrase("tile", f"tile {top.tile}", False, 50))
    if facts.time_utc:
        out.append(Phrase("time", f"acquired {facts.time_utc}", False, 40))
    out.append(Phrase("scene", f"scene {facts.scene}", False, 60))
    return tuple(sorted(out, key=lambda p: p.rank))


def compose(priority: str, headline: str, phrases: list[Phrase] | tuple[Phrase, ...]) -> str:
    """The summary text: ``High priority, active fire: 12 fire clusters; ...; scene X.``"""
    body = "; ".join(p.text for p in phrases)
    return f"{priority.capitalize()} priority, {headline}: {body}."


def template_summary(facts: Facts, max_chars: int = 280) -> tuple[str, str]:
    """Deterministic ``(summary, priority)``: counts first, then details while they fit."""
    priority = priority_choices(facts)[0]
    headline = TEMPLATE_HEADLINES[headline_class(facts)]
    phrases = fact_phrases(facts)
    chosen = [p for p in phrases if p.mandatory]
    if len(compose(priority, headline, chosen)) > max_chars:
        chosen = [p for p in chosen if not p.text.startswith("no ")] or chosen[:1]
    for p in phrases:
        if p.mandatory:
            continue
        trial = sorted([*chosen, p], key=lambda q: q.rank)
        if len(compose(priority, headline, trial)) <= max_chars:
            chosen = trial
    return compose(priority, headline, chosen), priority
