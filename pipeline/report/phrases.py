"""Fact phrases: every number and place of a report, rendered outside any model.

Each :class:`Phrase` binds its numbers to their fact and names its class ("3 ships found",
"largest fire cluster 1.2 ha at 58.123N 123.456W", "longest ship 182 m at ...").  The template
writer joins them deterministically; the LLM writer may only choose among them (which, in what
order), so a number can never leave its phrase, and a phrase never leaves its class.

A report reads::

    <Outcome> scan. <Priority> priority, <headline>: <phrase>; <phrase>; ... .

The outcome comes first (``Complete scan.``, ``Partial scan.``, ``Failed scan.``); the headline
names the class that leads (the first count phrase); per class the report says one of three
things, as run.json and compact.geojson do: ``12 fire clusters found``, ``no ships found``
(looked and found none) or ``crop stress not checked (reason)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.results import FOUND, NOT_CHECKED, percent
from .facts import ClassFacts, Facts

PRIORITIES = ("low", "medium", "high")

#: class -> (singular, plural, "none" form)
COUNT_WORDS = {
    "fire": ("fire cluster", "fire clusters", "no fire clusters"),
    "ship": ("ship", "ships", "no ships"),
    "crop_stress": ("crop-stress area", "crop-stress areas", "no crop-stress areas"),
}
#: class -> the noun of "<noun> not checked"
CLASS_NOUNS = {"fire": "fire", "ship": "ships", "crop_stress": "crop stress", "clouds": "clouds"}
#: headline the template writer uses, by the class that leads
TEMPLATE_HEADLINES = {
    "fire": "active fire",
    "ship": "vessels detected",
    "crop_stress": "crop stress",
    None: "nothing found",
}
#: headline of a failed scene: nothing was looked at
FAILED_HEADLINE = "nothing checked"
#: the report's first words, by scene outcome
OUTCOME_LEADS = {
    "complete": "Complete scan.",
    "partial": "Partial scan.",
    "failed": "Failed scan.",
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
    #: the class the phrase is about (``None``: place, time, scene)
    cls: str | None = None


def outcome_lead(facts: Facts) -> str:
    return OUTCOME_LEADS.get(facts.outcome, OUTCOME_LEADS["partial"])


def fmt_count(cls: str, n: int, coverage: float = 1.0, cloudy: bool = False) -> str:
    """``12 fire clusters found`` / ``no ships found``, with ``(62.5 % checked)`` when the
    detector looked at only part of the scene, and ``in the clear part`` for "none found" when
    cloud hid part of the scene (``cloudy``)."""
    one, many, none = COUNT_WORDS[cls]
    text = f"{none} found" if n == 0 else f"{n} {one if n == 1 else many} found"
    if n == 0 and cloudy:
        text += " in the clear part"
    if 0.0 < coverage < 1.0:
        text += f" ({percent(coverage)} % checked)"
    return text


#: Under this share of cloud and shadow a scene's "none found" needs no "in the clear part",
#: and the cloud phrase is optional.
CLOUD_NOTE_MIN = 0.05


def cloud_phrase(facts: Facts) -> Phrase | None:
    """``62 % cloud, 3 % cloud shadow`` (mandatory from :data:`CLOUD_NOTE_MIN` on), ``no
    cloud`` (optional), or None when the cloud screen did not look."""
    obscured = facts.obscured
    if obscured is None or facts.cloud_fraction is None or facts.shadow_fraction is None:
        return None
    if obscured < 0.005:
        return Phrase("clouds", "no cloud", False, 45)
    parts = []
    if facts.cloud_fraction >= 0.005:
        parts.append(f"{percent(facts.cloud_fraction)} % cloud")
    if facts.shadow_fraction >= 0.005:
        parts.append(f"{percent(facts.shadow_fraction)} % cloud shadow")
    return Phrase("clouds", ", ".join(parts), obscured >= CLOUD_NOTE_MIN, 2)


def _cloudy(facts: Facts) -> bool:
    return (facts.obscured or 0.0) >= CLOUD_NOTE_MIN


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


_NEEDS = re.compile(r"^needs band\(s\) ([A-Za-z0-9, ]+?)(?: \((unreadable).*\))?$")


def short_reason(reason: str | None) -> str:
    """The reason a class was not checked, short enough for a 280-character report (run.json
    keeps the full text): ``needs band(s) B02, B03`` -> ``no B02, B03 bands``."""
    text = " ".join((reason or "").split())
    m = _NEEDS.match(text)
    if m:
        bands = [b.strip() for b in m.group(1).split(",") if b.strip()]
        names = ", ".join(bands)
        if m.group(2):
            return f"{names} band{'s' if len(bands) > 1 else ''} unreadable"
        return f"no {names} band{'s' if len(bands) > 1 else ''}"
    if text.startswith("no usable samples in band(s) "):
        return "no usable samples in " + text.removeprefix("no usable samples in band(s) ")
    if text == "detector not enabled":
        return "not enabled"
    text = re.sub(r"[;()]", ",", text).strip(" ,") or "no reason given"
    if len(text) > 48:
        text = text[:48].rsplit(" ", 1)[0].rstrip(" ,:")
    return text


def priority_choices(facts: Facts) -> tuple[str, ...]:
    """Priorities a writer may give: fire -> high; ships or crop stress -> medium or high;
    nothing found -> low; a failed scene (nothing looked at) -> medium: it needs a person, but
    it is no alert.  The first is the template's choice."""
    if facts.outcome == "failed":
        return ("medium",)
    if facts.of("fire").count:
        return ("high",)
    if facts.of("ship").count or facts.of("crop_stress").count:
        return ("medium", "high")
    return ("low",)


def headline_class(facts: Facts) -> str | None:
    """The class that leads the report (the first count phrase and the headline)."""
    for c in facts.classes:
        if c.count:
            return c.cls
    return None


def template_headline(facts: Facts) -> str:
    if facts.outcome == "failed":
        return FAILED_HEADLINE
    return TEMPLATE_HEADLINES[headline_class(facts)]


def _detail_phrases(c: ClassFacts) -> list[Phrase]:
    out: list[Phrase] = []
    top = c.top
    if c.count == 0 or top is None:
        return out
    pos = fmt_lonlat(top.lon, top.lat)
    if c.cls == "fire":
        if c.total_area_m2 is not None:
            px = f" ({c.total_pixels} hot pixels)" if c.total_pixels is not None else ""
            out.append(
                Phrase(
                    "fire_total", f"fire area {fmt_area(c.total_area_m2)} in total{px}", False, 10
                )
            )
        if c.count > 1 and top.area_m2 is not None:
            text = f"largest fire cluster {fmt_area(top.area_m2)} at {pos}"
        else:
            text = f"fire cluster at {pos}"
        out.append(Phrase("fire_top", text, False, 11))
    elif c.cls == "ship":
        moored = top.setting == "moored"
        head = (
            f", heading {round(top.heading_deg) % 360:d}°"
            if top.heading_deg is not None and not moored
            else ""
        )
        where = f"moored at {pos}" if moored else f"at {pos}"
        if top.length_m is not None:
            what = "longest ship" if c.count > 1 else "ship"
            text = f"{what} {round(top.length_m):d} m {where}{head}"
        else:
            text = f"{'strongest ship' if c.count > 1 else 'ship'} {where}{head}"
        out.append(Phrase("ship_top", text, False, 20))
    else:
        if c.total_area_m2 is not None:
            sev = f", worst severity {c.worst_severity}" if c.worst_severity else ""
            out.append(
                Phrase("crop_total", f"crop stress on {fmt_area(c.total_area_m2)}{sev}", False, 30)
            )
        if top.area_m2 is not None and c.count > 1:
            text = f"largest crop-stress area {fmt_area(top.area_m2)} at {pos}"
        else:
            text = f"crop-stress area at {pos}"
        out.append(Phrase("crop_top", text, False, 31))
    return [Phrase(p.key, p.text, p.mandatory, p.rank, c.cls) for p in out]


def _not_checked_phrases(facts: Facts) -> list[Phrase]:
    """One phrase per reason: ``ships and crop stress not checked (no B04, B08 bands)``."""
    groups: dict[str, list[str]] = {}
    for c in facts.classes:
        if c.status == NOT_CHECKED:
            groups.setdefault(short_reason(c.reason), []).append(c.cls)
    if facts.clouds_reason is not None:  # the cloud screen did not look: said with the others
        groups.setdefault(short_reason(facts.clouds_reason), []).append("clouds")
    out = []
    for why, classes in groups.items():
        nouns = [CLASS_NOUNS[c] for c in classes]
        who = nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]
        key = "unchecked_" + "_".join(classes)
        out.append(
            Phrase(
                key,
                f"{who} not checked ({why})",
                True,
                3,
                classes[0] if len(classes) == 1 and classes[0] in COUNT_WORDS else None,
            )
        )
    return out


def fact_phrases(facts: Facts) -> tuple[Phrase, ...]:
    """All phrases a report of ``facts`` may contain, most important first: the count of every
    class found (the leading class first), what was not checked and why, what was looked for
    and not found, where the leading class's main detection is, then the other details."""
    out: list[Phrase] = []
    present = [c for c in facts.classes if c.count]
    absent = [c for c in facts.classes if not c.count and c.status != NOT_CHECKED]
    for i, c in enumerate(present):
        out.append(Phrase(f"count_{c.cls}", fmt_count(c.cls, c.count, c.coverage), True, i, c.cls))
    clouds = cloud_phrase(facts)
    if clouds is not None:
        out.append(clouds)
    out += _not_checked_phrases(facts)
    cloudy = _cloudy(facts)
    for i, c in enumerate(absent):
        text = fmt_count(c.cls, 0, c.coverage, cloudy)
        out.append(Phrase(f"count_{c.cls}", text, True, 4 + i, c.cls))
    if facts.place:
        out.append(Phrase("place", f"near {facts.place}", False, 7))
    top_cls = headline_class(facts)
    for c in present:
        for p in _detail_phrases(c):
            # where the most important detection is: every report states it
            key_top = p.key.endswith("_top") and c.cls == top_cls
            out.append(Phrase(p.key, p.text, True, 8, p.cls) if key_top else p)
    if facts.time_utc:
        out.append(Phrase("time", f"acquired {facts.time_utc}", False, 40))
    out.append(Phrase("scene", f"scene {facts.scene}", False, 60))
    return tuple(sorted(out, key=lambda p: p.rank))


def plain_count_phrases(facts: Facts) -> tuple[Phrase, ...]:
    """The count phrases without their "(62.5 % checked)" note, for reports too short to hold
    it (the outcome lead still says the scan was partial)."""
    cloudy = _cloudy(facts)
    return tuple(
        Phrase(f"count_{c.cls}", fmt_count(c.cls, c.count, cloudy=cloudy), True, i, c.cls)
        for i, c in enumerate(facts.classes)
        if c.status == FOUND or (c.status != NOT_CHECKED and 0.0 < c.coverage < 1.0)
    )


def compose(
    priority: str,
    headline: str,
    phrases: list[Phrase] | tuple[Phrase, ...],
    lead: str = "",
) -> str:
    """The summary text: ``Complete scan. High priority, active fire: 12 fire clusters found;
    ...; scene X.``"""
    body = "; ".join(p.text for p in phrases)
    head = f"{lead} " if lead else ""
    return f"{head}{priority.capitalize()} priority, {headline}: {body}."


def template_summary(facts: Facts, max_chars: int = 280) -> tuple[str, str]:
    """Deterministic ``(summary, priority)``: counts first, then details while they fit."""
    priority = priority_choices(facts)[0]
    headline = template_headline(facts)
    lead = outcome_lead(facts)
    phrases = fact_phrases(facts)
    chosen = [p for p in phrases if p.mandatory]

    def fits(ps: list[Phrase]) -> bool:
        return len(compose(priority, headline, ps, lead)) <= max_chars

    # over budget: drop "no X found", then the leading detection's position, then the
    # "(62.5 % checked)" notes, then the reasons of what was not checked
    if not fits(chosen):
        chosen = [p for p in chosen if not p.text.startswith("no ")] or chosen[:1]
    if not fits(chosen):
        chosen = [p for p in chosen if not p.key.endswith("_top")]
    if not fits(chosen):
        plain = {p.key: p for p in plain_count_phrases(facts)}
        chosen = [plain.get(p.key, p) for p in chosen]
    if not fits(chosen):
        chosen = [p for p in chosen if not p.key.startswith("unchecked_")]
        unchecked = [CLASS_NOUNS[c.cls] for c in facts.classes if c.status == NOT_CHECKED]
        if unchecked:
            chosen.append(Phrase("unchecked", f"{', '.join(unchecked)} not checked", True, 3))
    for p in phrases:
        if p.mandatory:
            continue
        trial = sorted([*chosen, p], key=lambda q: q.rank)
        if fits(trial):
            chosen = trial
    return compose(priority, headline, chosen, lead), priority


def all_phrase_texts(facts: Facts) -> list[str]:
    """Every phrase text a writer may use for ``facts`` (the fact check's vocabulary)."""
    texts = [p.text for p in fact_phrases(facts)]
    texts += [p.text for p in plain_count_phrases(facts)]
    unchecked = [CLASS_NOUNS[c.cls] for c in facts.classes if c.status == NOT_CHECKED]
    if unchecked:
        texts.append(f"{', '.join(unchecked)} not checked")
    return texts
