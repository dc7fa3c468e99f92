"""Understand a question by filling slots, deterministically; say so when it cannot.

A question becomes a :class:`Query` with these slots:

* **class**: ship, fire, crop_stress, cloud, or any (every detection);
* **op**: count, any (yes/no + count), largest, smallest, nearest, list (all, or top N),
  most / least (which scene has the most or fewest), total_area, per_scene;
* **size bounds** with units (``longer than 200 m``, ``over 1 ha``, ``at least 0.5 km²``);
* **place**: scene names in the store and place names from the scenes' metadata;
* **point / radius / box**: ``58.08N 123.28W``, ``44.41, 8.85`` (lat, lon), ``within 5 km of``,
  ``bbox -158,21.3,-157.9,21.4`` (beside the structured ``--point`` / ``--bbox``);
* **time**: today, yesterday, since yesterday, last 3 days, ISO dates, month names, since/until.

Numbers, coordinates, sizes and times are read by regular expressions; words by a lexicon (with
typo tolerance).  Every word must be understood: a word that is neither a slot value nor a known
filler word makes the question "not understood" (the unknown word may be a class, a place or a
modifier such as "moored" that would change the answer), unless the onboard LLM maps it, with a
clear margin, onto a value of a slot that is still open (:meth:`Parser.parse` ``resolver``).
Conflicting slots (two classes, two operations, a size bound on the wrong class, an empty size
range...) are "not understood" too: the answer then lists what was understood and what was not,
so that the ground can ask again.  No default query is ever run.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .store import StoredScene

log = logging.getLogger(__name__)

CLASSES = ("ship", "fire", "crop_stress", "cloud", "any")
OPS = (
    "count",
    "any",
    "largest",
    "smallest",
    "nearest",
    "list",
    "most",
    "least",
    "total_area",
    "per_scene",
)
#: classes whose detections carry an area (for total_area and area bounds)
AREA_CLASSES = ("fire", "crop_stress", "ship")
CLASS_NAMES = {
    "ship": ("ship", "ships"),
    "fire": ("fire", "fires"),
    "crop_stress": ("stressed field", "stressed fields"),
    "cloud": ("cloud", "clouds"),
    "any": ("detection", "detections"),
}
EARTH_RADIUS_M = 6_371_008.8
MAX_TOP_N = 20

# ----------------------------------------------------------------------------- the lexicon

#: (slot, value) -> its words and phrases, comma separated; matched longest first.  Slots:
#: ``cls``, ``op`` (with the weak operations ``locate``, ``show``, ``measure``) and ``block``
#: (phrases whose meaning no slot can carry; the value says why).
_LEXICON_TEXT: dict[tuple[str, str], str] = {
    ("cls", "ship"): """
        ship, ships, vessel, vessels, boat, boats, tanker, tankers, cargo, freighter, freighters,
        ferry, ferries, trawler, trawlers, shipping, cargo ship, cargo ships, container ship,
        container ships, oil tanker, oil tankers, bulk carrier, bulk carriers
        """,
    ("cls", "fire"): """
        fire, fires, wildfire, wildfires, blaze, blazes, hotspot, hotspots, burning, flames,
        inferno, burned, burnt, bushfire, bushfires, hot spot, hot spots, burn area, burn areas,
        burned area, burned areas, burnt area, burnt areas, forest fire, forest fires, active fire,
        active fires, thermal anomaly, thermal anomalies, fire area, fire areas
        """,
    ("cls", "crop_stress"): """
        crop stress, stressed field, stressed fields, stressed crop, stressed crops, crop stressed,
        field stress, vegetation stress, stressed vegetation, crops under stress, fields under
        stress, drought, droughts, drought stress, drought stressed, drought-stressed, stressed
        farmland, dry fields, dry field, dry crops, parched fields, wilting crops, stressed area,
        stressed areas, stressed farm, stressed farms, water stress, water stressed, crop-stress,
        stress, stressed, stressed cropland, drought areas, drought area, crop stress areas, crop
        stress area, crop-stress areas, crop stresses
        """,
    ("cls", "cloud"): """
        cloud, clouds, cloudy, overcast, cloudiness, cloud cover
        """,
    ("cls", "any"): """
        detection, detections, object, objects, thing, things, everything, alerts, alert, targets,
        target
        """,
    ("op", "count"): """
        how many, count, number, number of, tally, total number, total count, quantity, counted,
        how many of, count up, count of
        """,
    ("op", "any"): """
        any, is there, are there, was there, were there, did you see, did you find, did you spot,
        did you detect, do you see, have you seen, has there been, have there been, exist, exists,
        present, yes or no, is it, are they, is anything, is something
        """,
    ("op", "largest"): """
        largest, biggest, longest, greatest, maximum, max, hugest, widest
        """,
    ("op", "smallest"): """
        smallest, shortest, tiniest, minimum, min, littlest
        """,
    ("op", "nearest"): """
        nearest, closest, how far, distance to, nearest to, closest to, next to, nearby
        """,
    ("op", "list"): """
        list, enumerate, listing, list out, top, list all
        """,
    # weak: a list unless another operation is asked (give me a count)
    ("op", "show"): """
        show me, show, give me, what are the, display, tell me
        """,
    # weak: a list unless a stronger operation is asked beside it (where is the largest)
    ("op", "locate"): """
        where are, where were, where is, where's, where was, locations, location of, positions,
        position of, coordinates, details, which, which ones, what are
        """,
    # weak: needs largest / smallest / total area beside it
    ("op", "measure"): """
        how big, how large, how long, what size, how big are, how long are
        """,
    ("block", "a question about all of them (every one) is not supported"): """
        are all, were all, is every, was every, all of them, every one
        """,
    ("op", "most"): """
        most, highest number, greatest number, largest number, busiest, maximum number, more
        """,
    ("op", "least"): """
        fewest, least, lowest number, smallest number, minimum number, quietest, fewer, less
        """,
    ("op", "total_area"): """
        total area, combined area, area in total, sum of areas, overall area, how much area, area
        total, total surface, how many hectares, how many ha, how many km2, how many square
        kilometres, how many square kilometers, how many square metres, how many square meters, how
        many m2, how much ground, how much land, total extent, extent, area covered, acreage, how
        much, total size, combined size
        """,
    ("op", "per_scene"): """
        per scene, each scene, every scene, by scene, per port, each port, every port, by port, per
        image, each image, breakdown, in each, scene by scene, port by port, for each scene, for
        each port
        """,
}


def _phrases(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split(",") if p.strip()]


#: word or phrase -> (slot, value)
LEXICON: dict[str, tuple[str, str]] = {
    phrase: key for key, text in _LEXICON_TEXT.items() for phrase in _phrases(text)
}
#: crop nouns: class crop_stress only beside a stress word (above); alone they are not a class
CROP_NOUNS = set(
    """
    crop cropland crops farm farmland farms field fields vegetation
    """.split()
)
#: words that are a class and an operation at once
BOTH = {"anything": ("any", "any"), "something": ("any", "any")}
#: words that make "most"/"least" a question about scenes
SCOPE_WORDS = set(
    """
    acquisition acquisitions area capture captures city harbor harbors harbour harbours image images
    location pass passes picture pictures place places port ports region scene scenes tile tiles
    where which
    """.split()
)
#: words that name a scene as a scene ("the fire scene", "the Virginia crop image")
SCENE_WORDS = {"acquisition", "capture", "image", "pass", "picture", "scene", "tile"}
#: words understood and carrying no slot (articles, verbs of seeing, politeness, ...)
FILLER = set(
    """
    a acquired acquisition acquisitions across actually all also altogether am an and any anywhere
    approximately are area areas ask asking at be been being both by can capture captured check
    checked cheers city collected contain containing contains could coverage currently data database
    detect detected detecting did do does done each entire ever every exactly far feature features
    find finding for found from full get give go got had harbor harbors harbour harbours has have
    having held hello here hey hi hold holds how how's hows i i'd i'm identified identify if image
    imaged images in inside into is it it's its just kindly know let like list location look looked
    looking many may me might mine much must my near need note noted now number observe observed
    observing of off ok okay on onboard one ones only onto or orbit our over overall overhead pass
    passes photo pic pick picked picture place places please pls plz port ports present presently
    question quick quickly r really recorded regarding region report reported right s sat satellite
    saw say scene scenes see seen shall should show showed showing shows sighted sighting sightings
    so some spot spotted spotting storage store stored taken tell thank thanks that that's thats the
    their them there there's theres these they this those throughout thx tile tiles to today's
    together total ty u up ur us view visible want was we we've were what what's whats when where
    which who whole whom will with within wonder wondering would yet you you've your
    """.split()
)
#: words whose meaning a slot cannot carry (-> why): not understood, never simplified away
_BLOCKER_TEXT = {
    "negation": "not no without",
    "exclusion": "except excluding exclude outside besides other others but",
    "average": "average mean",
    "median": "median",
    "share": "percent percentage",
    "ratio": "ratio",
    "reason": "why",
    "confidence": "confidence score probability",
    "vague size": "big large small huge tiny giant massive little",
    "vague time": "recent recently lately soon earlier later",
    "a comparison without a size and unit": (
        "than longer shorter bigger larger smaller greater wider"
    ),
    "approximate value": "about around roughly approximately nearly almost",
}
BLOCKERS = {w: why for why, words in _BLOCKER_TEXT.items() for w in words.split()}
#: blocker words that are harmless before these words (filler then)
_BLOCKER_OK_NEXT = {
    "about": {"any", "boats", "clouds", "crop", "fires", "it", "ships", "the", "vessels"},
    "around": {"here", "the", "there"},
}
#: size words: fine only as part of a size bound or beside largest / smallest
SIZE_WORDS = set(
    """
    area's big large length lengths long size sizes small tall wide
    """.split()
)
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
}
#: tokens of scene names that are not place names (sensors, products, class words)
GENERIC_NAME_TOKENS = set(
    """
    and crop data fire l1c l2a l8 l9 landsat msi of oli port s1 s2 sample scene sen2ships sentinel
    sentinel2 ship ships test the tile
    """.split()
)
#: real words close to vocabulary words: never read as a typo of them
NOT_TYPOS = set(
    """
    amount anchors bats bears beats bets birds blame boars boast bolts boots car cars chips clods
    cloth coast coats cost could counts court courts crown crows dock docks drops farms fibres files
    fined fines fire fired firms fish fishes flame forms ghost goats hip hips hire hires host lanes
    last least list lost loud mist moats moored most mount must oil people plane planes plans post
    props roads rocks shape sheep ships' shoe shoes shop shops slips smallest spill spills stores
    storm storms tank tanks tires toast tree trees tyre wales whale whales whips wire wires yield
    yields
    """.split()
)


def _osa(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (edits incl. adjacent swaps), capped at limit + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
        if min(prev) > limit:
            return limit + 1
    return prev[-1]


# ----------------------------------------------------------------------------- the query


@dataclass(frozen=True)
class SizeBound:
    """``measure op value``: measure ``length_m`` or ``area_m2`` (value in m or m²)."""

    measure: str
    op: str
    value: float

    def holds(self, v: float | None) -> bool:
        if v is None:
            return False
        return {
            ">": v > self.value,
            ">=": v >= self.value,
            "<": v < self.value,
            "<=": v <= self.value,
        }[self.op]

    def text(self) -> str:
        word = {
            ("length_m", ">"): "longer than",
            ("length_m", ">="): "at least",
            ("length_m", "<"): "shorter than",
            ("length_m", "<="): "at most",
            ("area_m2", ">"): "larger than",
            ("area_m2", ">="): "at least",
            ("area_m2", "<"): "smaller than",
            ("area_m2", "<="): "at most",
        }[(self.measure, self.op)]
        return f"{word} {format_size(self.measure, self.value)}"


def format_size(measure: str, value: float, unit: str | None = None) -> str:
    """``307 m``, ``1.5 km``; areas in m², ha or km² (``unit`` forces one)."""
    if measure == "length_m":
        if unit == "km" or (unit is None and value >= 10_000):
            return f"{_num(value / 1000)} km"
        return f"{_num(value)} m"
    if unit is None:
        unit = "m²" if value < 10_000 else ("ha" if value < 1_000_000 else "km²")
    div = {"m²": 1.0, "ha": 1e4, "km²": 1e6}[unit]
    return f"{_num(value / div)} {unit}"


def _num(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2g}"


def fmt_point(lon: float, lat: float, nd: int = 3) -> str:
    return (
        f"{abs(lat):.{nd}f}{'N' if lat >= 0 else 'S'} {abs(lon):.{nd}f}{'E' if lon >= 0 else 'W'}"
    )


@dataclass(frozen=True)
class Query:
    """A fully understood question: every slot the answer depends on."""

    op: str
    cls: str
    #: store scene names the question is limited to (None: every scene)
    scenes: tuple[str, ...] | None = None
    #: the place words as asked ("hedland", "virginia"), for restating
    place_text: tuple[str, ...] = ()
    point: tuple[float, float] | None = None
    radius_km: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    wkt: str | None = None
    since: str | None = None
    until: str | None = None
    #: the time window as asked ("in the last 3 days"), for restating
    time_text: str | None = None
    sizes: tuple[SizeBound, ...] = ()
    #: top N (list) ; None = all
    n: int | None = None
    #: list order: "largest", "smallest" or "nearest"
    order: str | None = None
    #: unit the total area was asked in ("ha", "km²", "m²")
    area_unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sizes"] = [asdict(s) for s in self.sizes]
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    def noun(self, n: int) -> str:
        one, many = CLASS_NAMES[self.cls]
        return one if n == 1 else many


@dataclass(frozen=True)
class Parse:
    """The parser's result: a query, or what was understood and what was not."""

    query: Query | None
    understood: tuple[str, ...]
    not_understood: tuple[str, ...]
    #: words the LLM mapped onto a slot ("freighters -> class ship")
    llm: tuple[str, ...] = ()
    #: typo corrections made ("vesels -> vessels")
    corrections: tuple[str, ...] = ()
    slots: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.query is not None


#: resolver(question, word, open slot values) -> (slot, value, margin) or None
Resolver = Callable[[str, str, dict[str, Sequence[str]]], "tuple[str, str, float] | None"]

# ----------------------------------------------------------------------------- patterns

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_FLOAT = r"-?\d+(?:\.\d+)?"
_LAT_HEMI = r"(?P<lat>\d{1,2}(?:\.\d+)?)\s*°?\s*(?P<ns>[NS])"
_LON_HEMI = r"(?P<lon>\d{1,3}(?:\.\d+)?)\s*°?\s*(?P<ew>[EW])"
_POINT_HEMI = re.compile(rf"(?<![\w.]){_LAT_HEMI}\b[\s,;/]*{_LON_HEMI}\b", re.I)
_POINT_HEMI_REV = re.compile(
    r"(?<![\w.])(?P<lon>\d{1,3}(?:\.\d+)?)\s*°?\s*(?P<ew>[EW])\b[\s,;/]*"
    r"(?P<lat>\d{1,2}(?:\.\d+)?)\s*°?\s*(?P<ns>[NS])\b",
    re.I,
)
_POINT_PAIR = re.compile(
    r"(?<![\w.\-])(?:(?P<label>lat(?:itude)?\s*/?\s*lon(?:gitude)?|lon(?:gitude)?\s*/?\s*"
    r"lat(?:itude)?)\s*[:=]?\s*)?\(?\s*(?P<a>-?\d{1,3}\.\d+)\s*[,;]\s*(?P<b>-?\d{1,3}\.\d+)\s*\)?",
    re.I,
)
_POINT_LABELLED = re.compile(
    r"\blat(?:itude)?\s*[:=]?\s*(?P<lat>-?\d{1,2}(?:\.\d+)?)\s*[,;]?\s*(?:and\s+)?"
    r"lon(?:g|gitude)?\s*[:=]?\s*(?P<lon>-?\d{1,3}(?:\.\d+)?)"
    r"|\blon(?:g|gitude)?\s*[:=]?\s*(?P<lon2>-?\d{1,3}(?:\.\d+)?)\s*[,;]?\s*(?:and\s+)?"
    r"lat(?:itude)?\s*[:=]?\s*(?P<lat2>-?\d{1,2}(?:\.\d+)?)",
    re.I,
)
_BBOX = re.compile(
    rf"\b(?:bbox|b-box|bounding\s+box|box|rectangle)\b\s*(?:of\s+)?[:=]?\s*[(\[]?\s*"
    rf"(?P<w>{_FLOAT})\s*[, ]\s*(?P<s>{_FLOAT})\s*[, ]\s*(?P<e>{_FLOAT})\s*[, ]\s*"
    rf"(?P<n>{_FLOAT})\s*[)\]]?",
    re.I,
)
_LEN_UNITS = {
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
    "mtr": 1.0,
    "mtrs": 1.0,
    "km": 1000.0,
    "kilometer": 1000.0,
    "kilometers": 1000.0,
    "kilometre": 1000.0,
    "kilometres": 1000.0,
    "ft": 0.3048,
    "feet": 0.3048,
    "foot": 0.3048,
}
_AREA_UNITS = {
    "m2": 1.0,
    "m²": 1.0,
    "sq m": 1.0,
    "sqm": 1.0,
    "square meters": 1.0,
    "square metres": 1.0,
    "square meter": 1.0,
    "square metre": 1.0,
    "ha": 1e4,
    "hectare": 1e4,
    "hectares": 1e4,
    "km2": 1e6,
    "km²": 1e6,
    "sq km": 1e6,
    "sqkm": 1e6,
    "square kilometers": 1e6,
    "square kilometres": 1e6,
    "square kilometer": 1e6,
    "square kilometre": 1e6,
    "acre": 4046.8564224,
    "acres": 4046.8564224,
}
_UNIT_ALT = "|".join(
    sorted((re.escape(u) for u in (*_LEN_UNITS, *_AREA_UNITS)), key=len, reverse=True)
)
_UNIT = rf"(?P<unit>{_UNIT_ALT})(?![\w²])"
_GT = (
    r"longer\s+than|bigger\s+than|larger\s+than|greater\s+than|wider\s+than|more\s+than|"
    r"over|above|exceeding|in\s+excess\s+of|beyond|>"
)
_GE = r"at\s+least|no\s+less\s+than|not\s+less\s+than|minimum\s+of|min\.?|>=|≥"
_LT = r"shorter\s+than|smaller\s+than|less\s+than|under|below|beneath|<"
_LE = r"at\s+most|no\s+more\s+than|not\s+more\s+than|up\s+to|maximum\s+of|max\.?|<=|≤"
_SIZE_PRE = re.compile(
    rf"(?P<cmp>{_GE}|{_LE}|{_GT}|{_LT})\s*(?P<v>{_NUM})\s*-?\s*{_UNIT}"
    r"(?:\s*(?:long|in\s+length|length|in\s+size|in\s+area|of\s+area|large|big|wide))?",
    re.I,
)
_SIZE_POST = re.compile(
    rf"(?<![\w.])(?P<v>{_NUM})\s*-?\s*{_UNIT}(?:\s*(?:long|in\s+length|large|in\s+size))?\s*"
    r"(?P<cmp>or\s+(?:more|longer|bigger|larger|greater|above|over)|and\s+(?:up|above|over|"
    r"longer|bigger|larger)|plus|\+|or\s+(?:less|shorter|smaller|below|under)|and\s+(?:under|"
    r"below|shorter|smaller))",
    re.I,
)
_SIZE_BETWEEN = re.compile(
    rf"(?:between|from)\s+(?P<a>{_NUM})\s*(?P<unit_a>{_UNIT_ALT})?\s*(?:and|to|-)\s*"
    rf"(?P<b>{_NUM})\s*{_UNIT}(?:\s*(?:long|in\s+length|in\s+size|in\s+area))?",
    re.I,
)
_SIZE_RANGE = re.compile(rf"(?<![\w.])(?P<a>{_NUM})\s*(?:-|–|to)\s*(?P<b>{_NUM})\s*{_UNIT}", re.I)
_RADIUS = re.compile(
    rf"(?:within|inside|in\s+a|in)\s+(?:a\s+)?(?P<v>{_NUM})\s*-?\s*(?P<unit>km|kilometers|"
    r"kilometres|kilometer|kilometre|m|meters|metres|nm|nautical\s+miles|miles|mi)\b"
    r"(?:\s+radius)?\s*(?:of|from|around|to)?",
    re.I,
)
_TOP_N = re.compile(
    r"\b(?:top|first)\s+(?P<n>\d{1,3}|" + "|".join(NUMBER_WORDS) + r")\b"
    r"|\b(?P<n2>\d{1,3}|" + "|".join(NUMBER_WORDS) + r")\s+(?P<sup>largest|biggest|longest|"
    r"smallest|shortest|tiniest|nearest|closest|greatest)\b",
    re.I,
)
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?\s*(?:Z|UTC)?)?"
    r"|\d{4}/\d{1,2}/\d{1,2}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MON})\.?,?\s+\d{{4}}"
    rf"|(?:{_MON})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|(?:{_MON})\.?\s+\d{{4}}"
    r"|(?<![\d.])(?:19|20)\d{2}(?![\d.]))"
)
_T_BETWEEN = re.compile(
    rf"\b(?:between|from)\s+(?P<a>{_DATE})\s+(?:and|to|until|till|through|-)\s+(?P<b>{_DATE})",
    re.I,
)
_T_SINCE = re.compile(
    rf"\b(?P<w>since|after|from|starting|beginning)\s+(?:on\s+)?(?P<a>{_DATE})", re.I
)
_T_UNTIL = re.compile(
    rf"\b(?P<w>until|till|til|up\s+to|by|before|through|to)\s+(?:on\s+)?(?P<a>{_DATE})", re.I
)
_T_ON = re.compile(rf"(?:\b(?:on|in|for|during|of|at)\s+)?(?P<a>{_DATE})", re.I)
_REL_UNITS = {
    "hour": dt.timedelta(hours=1),
    "hours": dt.timedelta(hours=1),
    "hr": dt.timedelta(hours=1),
    "hrs": dt.timedelta(hours=1),
    "h": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "days": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "weeks": dt.timedelta(days=7),
    "month": dt.timedelta(days=30),
    "months": dt.timedelta(days=30),
}
_T_LAST = re.compile(
    r"\b(?:(?:in|during|over|within|for|since|from)\s+)?(?:the\s+)?(?:last|past|previous)\s+"
    rf"(?P<n>\d{{1,3}}|{'|'.join(NUMBER_WORDS)}|a|an)?\s*(?P<u>hours?|hrs?|h|days?|weeks?|months?)"
    r"\b",
    re.I,
)
_T_TODAY = re.compile(
    r"\b(?:since\s+|from\s+)?(?P<w>today|yesterday|tonight|this\s+morning|"
    r"this\s+week|this\s+month|this\s+year|so\s+far\s+today)\b",
    re.I,
)
_UNIT_SHOWN = re.compile(
    r"\b(?:in|as|expressed\s+in|in\s+units\s+of)\s+(?P<u>hectares|hectare|ha|km2|km²|sq\s*km|"
    r"square\s+kilomet(?:er|re)s?|m2|m²|sq\s*m|square\s+met(?:er|re)s?|acres)\b",
    re.I,
)
#: "the latest scene": the scene(s) acquired last (or first) among those with a known time
for _w in ("latest", "newest", "most recent", "last", "freshest"):
    for _s in ("scene", "image", "pass", "acquisition", "picture", "tile", "capture"):
        LEXICON[f"{_w} {_s}"] = ("latest", "latest")
for _w in ("earliest", "oldest", "first"):
    for _s in ("scene", "image", "pass", "acquisition", "picture", "tile", "capture"):
        LEXICON[f"{_w} {_s}"] = ("latest", "earliest")
#: words before "may" that make it the month, not the verb
_MONTH_PREPS = {
    "in", "since", "until", "during", "of", "before", "after", "from", "on", "till", "by",
    "early", "late", "mid",
}  # fmt: skip
_MONTH_WORDS = (
    {m.lower() for m in calendar.month_name if m}
    | {"sept"}
    | {m.lower() for m in calendar.month_abbr if m and m.lower() not in ("may", "mar")}
)
#: words that point at a structured field: "this box" needs --bbox, "this point" --point
REF_WORDS = {"box": "bbox", "point": "point", "polygon": "wkt", "bbox": "bbox", "spot": "point"}
#: words that, beside a class word, ask for an area in total
TOTAL_WORDS = {"total", "combined", "overall", "sum", "altogether", "cumulative"}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'\-]*[A-Za-z0-9]|[A-Za-z]|\d+(?:\.\d+)?")
_PLACE_PREP = {"in", "at", "near", "off", "around", "over", "from", "of", "outside"}


def _float(text: str) -> float:
    return float(text.replace(",", ""))


def _day(d: dt.date) -> tuple[str, str]:
    return d.isoformat() + "T00:00:00Z", d.isoformat() + "T23:59:59Z"


def _iso_t(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(text: str) -> tuple[str, str] | None:
    """A written date -> the UTC interval it covers: a day, a month, a year or an instant."""
    t = " ".join(text.strip().rstrip(",").split())
    m = re.fullmatch(
        r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:Z|UTC)?)?", t, re.I
    )
    try:
        if m:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
            if m[4] is not None:
                inst = dt.datetime(
                    day.year, day.month, day.day, int(m[4]), int(m[5]), int(m[6] or 0)
                )
                return _iso_t(inst), _iso_t(inst)
            return _day(day)
        if m := re.fullmatch(r"(\d{4})/(\d{1,2})/(\d{1,2})", t):
            return _day(dt.date(int(m[1]), int(m[2]), int(m[3])))
        if m := re.fullmatch(
            rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MON})\.?,?\s+(\d{{4}})", t, re.I
        ):
            return _day(dt.date(int(m[3]), _MONTHS[m[2].lower()], int(m[1])))
        if m := re.fullmatch(rf"({_MON})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})", t, re.I):
            return _day(dt.date(int(m[3]), _MONTHS[m[1].lower()], int(m[2])))
        if m := re.fullmatch(rf"({_MON})\.?\s+(\d{{4}})", t, re.I):
            y, mo = int(m[2]), _MONTHS[m[1].lower()]
            last = calendar.monthrange(y, mo)[1]
            return _day(dt.date(y, mo, 1))[0], _day(dt.date(y, mo, last))[1]
        if m := re.fullmatch(r"((?:19|20)\d{2})", t):
            y = int(m[1])
            return _day(dt.date(y, 1, 1))[0], _day(dt.date(y, 12, 31))[1]
    except ValueError:
        return None
    return None


def _minus_1s(iso: str) -> str:
    t = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ") - dt.timedelta(seconds=1)
    return _iso_t(t)


def _plus_1s(iso: str) -> str:
    t = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=1)
    return _iso_t(t)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


# ----------------------------------------------------------------------------- places


def place_aliases(scenes: Sequence[StoredScene]) -> dict[str, set[str]]:
    """alias (lower case, words joined by one space) -> scene names.

    From each scene name (whole, and its distinctive tokens: ``sen2ships_honolulu`` ->
    ``honolulu``) and its place names from metadata (``British Columbia``).
    """
    out: dict[str, set[str]] = {}

    def add(alias: str, name: str) -> None:
        a = " ".join(alias.lower().replace("_", " ").split()) if " " in alias else alias.lower()
        if len(a) < 3 or a in FILLER or a in LEXICON or a.isdigit():
            return
        out.setdefault(a, set()).add(name)

    for s in scenes:
        out.setdefault(s.name.lower(), set()).add(s.name)
        tokens = [t for t in re.split(r"[_\-\s.]+", s.name.lower()) if t]
        for t in tokens:
            if t not in GENERIC_NAME_TOKENS and not t.isdigit():
                add(t, s.name)
        if len(tokens) > 1:
            add(" ".join(tokens), s.name)
        for p in s.places:
            add(p, s.name)
            words = p.lower().split()
            if len(words) > 1:
                add(" ".join(words), s.name)
    return out


# ----------------------------------------------------------------------------- the parser


@dataclass
class _State:
    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)
    slots: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    understood: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    llm: list[str] = field(default_factory=list)

    def take(self, m: re.Match[str], group: int | str = 0) -> None:
        self.spans.append(m.span(group))

    def free(self, start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in self.spans)

    def put(self, slot: str, value: Any, said: str) -> None:
        self.slots.setdefault(slot, []).append((said, value))

    def remaining(self) -> str:
        chars = list(self.text)
        for a, b in self.spans:
            for i in range(a, b):
                chars[i] = " "
        return "".join(chars)


#: words that limit a question to the scenes whose metadata says they show a port
PORT_WORDS = {"port", "ports", "harbour", "harbours", "harbor", "harbors"}
#: operations for which a size word needs no number ("the longest", "total area")
SIZED_OPS = ("largest", "smallest", "list", "total_area")


class _Found:
    """The slots found in one question, with what was understood and what was not."""

    def __init__(self, st: _State, raw: str) -> None:
        self.slots = st.slots
        self.raw = raw
        self.words = set(re.findall(r"[a-z]+", raw.lower()))
        self.problems: list[str] = list(st.problems)
        self.understood: list[str] = []
        self.llm_notes: list[str] = []

    def values(self, slot: str) -> list[Any]:
        """The distinct values found for a slot, in order."""
        out: list[Any] = []
        for _, v in self.slots.get(slot, []):
            if v not in out:
                out.append(v)
        return out


class Parser:
    """``Parser(scenes).parse(text, asked_utc=..., point=..., bbox=...)`` -> :class:`Parse`."""

    def __init__(self, scenes: Sequence[StoredScene]) -> None:
        self.scenes = list(scenes)
        self.aliases = place_aliases(self.scenes)
        #: aliases that hold a class word ("virginia crop"): a place only before "scene"
        self.scene_only: dict[str, set[str]] = {}
        for sc in self.scenes:
            toks = [t for t in re.split(r"[_\-\s.]+", sc.name.lower()) if t]
            for a in range(len(toks)):
                for b in range(a + 2, len(toks) + 1):
                    part = toks[a:b]
                    if any(t in LEXICON or t in CROP_NOUNS for t in part) and any(
                        t not in GENERIC_NAME_TOKENS and not t.isdigit() for t in part
                    ):
                        self.scene_only.setdefault(" ".join(part), set()).add(sc.name)

        self.phrases = sorted(
            {**{k: v for k, v in LEXICON.items()}, **{a: ("place", a) for a in self.aliases}},
            key=lambda p: -len(p.split()),
        )
        self.max_words = max(len(p.split()) for p in self.phrases)
        self.vocab: dict[str, str] = {}
        words = [*LEXICON, *self.aliases, *sorted(FILLER), *BLOCKERS, *CROP_NOUNS]
        words += [*SCOPE_WORDS, *SIZE_WORDS, *_MONTH_WORDS, *REF_WORDS, *TOTAL_WORDS, *BOTH]
        for p in words:
            if " " not in p:
                self.vocab.setdefault(p, p)

    def known_places(self) -> list[str]:
        """One name per stored scene: its first place name, else its name."""
        return sorted({(sc.places[0] if sc.places else sc.name) for sc in self.scenes})

    # -- entry point

    def parse(
        self,
        text: str,
        *,
        asked_utc: str | None = None,
        cls: str | None = None,
        op: str | None = None,
        point: tuple[float, float] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        wkt: str | None = None,
        since: str | None = None,
        until: str | None = None,
        resolver: Resolver | None = None,
    ) -> Parse:
        raw = " ".join(text.replace("\u2212", "-").replace("\u2013", "-").split())
        st = _State(raw)
        now = _asked_time(asked_utc)
        self._areas(st)
        self._sizes(st)
        self._top_n(st)
        self._times(st, now)
        for m in _UNIT_SHOWN.finditer(st.text):
            if st.free(*m.span()):
                u = m["u"].lower()
                unit = (
                    "ha"
                    if u.startswith(("hect", "ha"))
                    else ("km²" if "k" in u else ("acres" if u == "acres" else "m²"))
                )
                st.put("unit", unit, m.group(0))
                st.take(m)
        self._words(st)
        # structured fields from the ground: they must agree with the text
        for slot, value, label in (
            ("cls", cls, "--class"),
            ("op", op, "--kind"),
            ("point", point, "--point"),
            ("bbox", bbox, "--bbox"),
            ("wkt", wkt, "--wkt"),
        ):
            if value is not None:
                st.put(slot, tuple(value) if isinstance(value, list) else value, label)
        if since is not None or until is not None:
            st.put("time", (since, until, _time_words(since, until)), "--since/--until")
        return self._resolve(st, raw, resolver)

    # -- numbers: coordinates, boxes, radius

    def _areas(self, st: _State) -> None:
        for m in _BBOX.finditer(st.text):
            w, s, e, n = (float(m[k]) for k in "wsen")
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                st.problems.append(f"box {m.group(0)!r} (want west, south, east, north degrees)")
            else:
                st.put("bbox", (w, s, e, n), m.group(0))
            st.take(m)
        for rx in (_POINT_HEMI, _POINT_HEMI_REV):
            for m in rx.finditer(st.text):
                if not st.free(*m.span()):
                    continue
                lat = float(m["lat"]) * (-1 if m["ns"].upper() == "S" else 1)
                lon = float(m["lon"]) * (-1 if m["ew"].upper() == "W" else 1)
                if abs(lat) > 90 or abs(lon) > 180:
                    st.problems.append(f"point {m.group(0)!r} out of range")
                else:
                    st.put("point", (lon, lat), m.group(0))
                st.take(m)
        for m in _POINT_LABELLED.finditer(st.text):
            lat, lon = float(m["lat"] or m["lat2"]), float(m["lon"] or m["lon2"])
            if abs(lat) > 90 or abs(lon) > 180:
                st.problems.append(f"point {m.group(0)!r} out of range")
            else:
                st.put("point", (lon, lat), m.group(0))
            st.take(m)
        for m in _POINT_PAIR.finditer(st.text):
            if not st.free(*m.span()):
                continue
            a, b = float(m["a"]), float(m["b"])
            label = (m["label"] or "").lower()
            lat, lon = (b, a) if label.startswith("lon") else (a, b)
            if abs(lat) > 90 or abs(lon) > 180:
                st.problems.append(f"point {m.group(0).strip()!r} out of range (lat, lon)")
            else:
                st.put("point", (lon, lat), m.group(0).strip())
            st.take(m)
        for m in _RADIUS.finditer(st.text):
            if not st.free(*m.span()):
                continue
            unit = m["unit"].lower()
            factor = 1.0
            if unit in ("m", "meters", "metres"):
                factor = 0.001
            elif unit in ("nm",) or unit.startswith("nautical"):
                factor = 1.852
            elif unit in ("miles", "mi"):
                factor = 1.609344
            st.put("radius", _float(m["v"]) * factor, m.group(0).strip())
            st.take(m)

    # -- time

    def _times(self, st: _State, now: dt.datetime) -> None:
        def put(since: str | None, until: str | None, said: str) -> None:
            st.put("time", (since, until, said), said)

        for m in _T_BETWEEN.finditer(st.text):
            a, b = parse_date(m["a"]), parse_date(m["b"])
            if a and b:
                put(a[0], b[1], m.group(0))
                st.take(m)
        for m in _T_SINCE.finditer(st.text):
            if not st.free(*m.span()):
                continue
            a = parse_date(m["a"])
            if a:
                strict = m["w"].lower() == "after"
                put(_plus_1s(a[1]) if strict else a[0], None, m.group(0))
                st.take(m)
        for m in _T_UNTIL.finditer(st.text):
            if not st.free(*m.span()):
                continue
            a = parse_date(m["a"])
            if a:
                strict = m["w"].lower() == "before"
                put(None, _minus_1s(a[0]) if strict else a[1], m.group(0))
                st.take(m)
        for m in _T_ON.finditer(st.text):
            if not st.free(*m.span()):
                continue
            a = parse_date(m["a"])
            if a:
                put(a[0], a[1], m.group(0).strip())
                st.take(m)
        for m in _T_LAST.finditer(st.text):
            if not st.free(*m.span()):
                continue
            n_text = (m["n"] or "1").lower()
            n = 1 if n_text in ("a", "an") else NUMBER_WORDS.get(n_text) or int(n_text)
            delta = _REL_UNITS[m["u"].lower()] * n
            put(_iso_t(now - delta), _iso_t(now), m.group(0).strip())
            st.take(m)
        for m in _T_TODAY.finditer(st.text):
            if not st.free(*m.span()):
                continue
            w = " ".join(m["w"].lower().split())
            today = now.replace(hour=0, minute=0, second=0)
            if w == "yesterday" and not m.group(0).lower().startswith(("since", "from")):
                y = today - dt.timedelta(days=1)
                put(_iso_t(y), _iso_t(today - dt.timedelta(seconds=1)), m.group(0))
            elif w == "yesterday":
                put(_iso_t(today - dt.timedelta(days=1)), _iso_t(now), m.group(0))
            elif w in ("today", "tonight", "this morning", "so far today"):
                put(_iso_t(today), _iso_t(now), m.group(0))
            elif w == "this week":
                put(_iso_t(today - dt.timedelta(days=now.weekday())), _iso_t(now), m.group(0))
            elif w == "this month":
                put(_iso_t(today.replace(day=1)), _iso_t(now), m.group(0))
            else:
                put(_iso_t(today.replace(month=1, day=1)), _iso_t(now), m.group(0))
            st.take(m)

    # -- sizes

    def _size(self, st: _State, cmp: str, value: float, unit: str, said: str) -> None:
        u = unit.lower()
        if u in _LEN_UNITS:
            measure, v = "length_m", value * _LEN_UNITS[u]
        else:
            measure, v = "area_m2", value * _AREA_UNITS[u]
        st.put("size", SizeBound(measure, cmp, v), said)

    def _sizes(self, st: _State) -> None:
        for m in _SIZE_BETWEEN.finditer(st.text):
            unit = m["unit"]
            if m["unit_a"] and m["unit_a"].lower() != unit.lower():
                st.problems.append(f"size range {m.group(0)!r} with two units")
            else:
                self._size(st, ">=", _float(m["a"]), unit, m.group(0))
                self._size(st, "<=", _float(m["b"]), unit, m.group(0))
            st.take(m)
        for m in _SIZE_RANGE.finditer(st.text):
            if st.free(*m.span()):
                self._size(st, ">=", _float(m["a"]), m["unit"], m.group(0))
                self._size(st, "<=", _float(m["b"]), m["unit"], m.group(0))
                st.take(m)
        for m in _SIZE_PRE.finditer(st.text):
            if not st.free(*m.span()):
                continue
            c = " ".join(m["cmp"].lower().split()).rstrip(".")
            if re.fullmatch(_GE, c, re.I):
                op = ">="
            elif re.fullmatch(_LE, c, re.I):
                op = "<="
            elif re.fullmatch(_GT, c, re.I):
                op = ">"
            else:
                op = "<"
            if c in ("longer than", "shorter than") and m["unit"].lower() in _AREA_UNITS:
                st.problems.append(f"{m.group(0)!r}: a length bound with an area unit")
            else:
                self._size(st, op, _float(m["v"]), m["unit"], m.group(0))
            st.take(m)
        for m in _SIZE_POST.finditer(st.text):
            if not st.free(*m.span()):
                continue
            c = m["cmp"].lower()
            op = (
                "<="
                if any(w in c for w in ("less", "shorter", "smaller", "below", "under"))
                else ">="
            )
            self._size(st, op, _float(m["v"]), m["unit"], m.group(0))
            st.take(m)

    def _top_n(self, st: _State) -> None:
        for m in _TOP_N.finditer(st.text):
            if not st.free(*m.span()):
                continue
            n_text = (m["n"] or m["n2"]).lower()
            n = NUMBER_WORDS.get(n_text) or int(n_text)
            following = st.text[m.end() :].split()
            if following and following[0].lower().strip("?,.!") in SCOPE_WORDS:
                # "the top 3 scenes": a ranking of scenes, which no slot says
                st.problems.append(f"{m.group(0)!r} {following[0]} (a ranking of scenes)")
                st.take(m)
                continue
            st.put("n", n, m.group(0))
            if m["sup"]:
                sup = m["sup"].lower()
                order = LEXICON.get(sup, ("op", "largest"))[1]
                st.put("order", order, m.group(0))
                st.put("op", "list", m.group(0))
                st.spans.append(m.span())
            else:
                st.put("op", "list", m.group(0))
                st.spans.append(m.span())

    # -- words

    def _lookup(self, word: str) -> tuple[str | None, str | None]:
        """(vocabulary word, correction note) for a word, allowing one typo (two in long words)."""
        if word in self.vocab:
            return word, None
        if word in NOT_TYPOS or len(word) < 4 or any(ch.isdigit() for ch in word):
            return None, None
        limit = 1 if len(word) < 8 else 2
        best: list[str] = []
        best_d = limit + 1
        for v in self.vocab:
            if v[0] != word[0] or abs(len(v) - len(word)) > limit or len(v) < 4:
                continue
            d = _osa(word, v, limit)
            if d < best_d:
                best, best_d = [v], d
            elif d == best_d:
                best.append(v)
        if not best or best_d > limit:
            return None, None
        meanings = {self._meaning(b) for b in best}
        if len(meanings) != 1:
            return None, None
        return best[0], f"{word} -> {best[0]}"

    def _meaning(self, word: str) -> tuple[str, str]:
        if word in LEXICON:
            return LEXICON[word]
        if word in self.aliases:
            return ("place", word)
        if word in BLOCKERS or word in _MONTH_WORDS or word in BOTH:
            return ("word", word)
        return ("filler", "")

    def _words(self, st: _State) -> None:
        """Every word left after the numbers: a slot value, a filler, a problem, or unknown."""
        toks = [m.group(0) for m in _WORD.finditer(st.remaining())]
        words = [t.lower().replace("\u2019", "'") for t in toks]
        # fix typos first so that phrases match
        fixed: list[str] = []
        for w in words:
            if w in self.vocab or any(ch.isdigit() for ch in w) or "_" in w:
                fixed.append(w)
                continue
            base = w[:-2] if w.endswith("'s") else w
            if base in self.vocab:
                fixed.append(base)
                continue
            v, note = self._lookup(w)
            if v is not None:
                fixed.append(v)
                if note:
                    st.corrections.append(note)
            else:
                fixed.append(w)
        i = 0
        unknown: list[tuple[str, int]] = []
        while i < len(fixed):
            matched = False
            for n in range(min(self.max_words, len(fixed) - i), 0, -1):
                phrase = " ".join(fixed[i : i + n])
                hit = LEXICON.get(phrase)
                after = fixed[i + n] if i + n < len(fixed) else ""
                if phrase in self.scene_only and after in SCENE_WORDS:
                    st.put("place", phrase, phrase)
                    i += n + 1
                    matched = True
                    break
                if phrase in self.aliases and (hit is None or n > 1):
                    st.put("place", phrase, toks[i] if n == 1 else phrase)
                    i += n
                    matched = True
                    break
                if hit is not None:
                    slot, value = hit
                    after = fixed[i + n] if i + n < len(fixed) else ""
                    if slot == "cls" and after in SCENE_WORDS:
                        # "the fire scene", "the port image": which scene, not what to count
                        st.put("descriptor", f"{phrase} {after}", f"{phrase} {after}")
                        i += n + 1
                        matched = True
                        break
                    st.put(slot, value, phrase)
                    i += n
                    matched = True
                    break
            if matched:
                continue
            w = fixed[i]
            nxt = fixed[i + 1] if i + 1 < len(fixed) else ""
            prev = fixed[i - 1] if i > 0 else ""
            if (w in _MONTH_WORDS and w != "may") or (w == "may" and prev in _MONTH_PREPS):
                st.problems.append(f"{toks[i]!r} (which year? say e.g. 'May 2023')")
                i += 1
                continue
            if w in BOTH:
                st.put("cls", BOTH[w][0], toks[i])
                st.put("op", BOTH[w][1], toks[i])
                i += 1
                continue
            if w in REF_WORDS and prev in ("this", "that", "the", "my", "given", "our"):
                st.put("ref", REF_WORDS[w], f"{prev} {w}")
                i += 1
                continue
            if w in TOTAL_WORDS:
                st.put("total", w, toks[i])
            if w in BLOCKERS and not (w in _BLOCKER_OK_NEXT and nxt in _BLOCKER_OK_NEXT[w]):
                if w in ("around", "about") and nxt and nxt in self.aliases:
                    i += 1
                    continue
                st.problems.append(f"{toks[i]!r} ({BLOCKERS[w]} is not supported)")
            elif w in CROP_NOUNS:
                st.put("crop_noun", w, toks[i])
            elif w in SCOPE_WORDS:
                st.put("scope", w, toks[i])
            elif w in SIZE_WORDS:
                st.put("size_word", w, toks[i])
            elif w in FILLER or w in ("about", "around"):
                pass
            elif w in NUMBER_WORDS or re.fullmatch(r"\d+(?:\.\d+)?", w):
                st.problems.append(f"the number {toks[i]!r} (what does it count or measure?)")
            else:
                unknown.append((toks[i], i))
            i += 1
        for tok, idx in unknown:
            prev = fixed[idx - 1] if idx > 0 else ""
            looks_place = (tok[:1].isupper() and idx > 0) or prev in _PLACE_PREP
            st.put("unknown", (tok, looks_place), tok)

    # -- combining the slots

    def _resolve(self, st: _State, raw: str, resolver: Resolver | None) -> Parse:
        """Combine the slots found into a query, or say what was not understood."""
        r = _Found(st, raw)
        for said, why in st.slots.get("block", []):
            r.problems.append(f"{said!r} ({why})")
        cls, ops = self._class_and_words(r, resolver)
        op = self._operation(r, ops)
        scenes, place_text = self._places(r)
        point, radius, bbox, wkt = self._geometry(r)
        since, until, time_words = self._time(r)
        sizes = self._size_bounds(r, cls, op)
        n_vals, orders = r.values("n"), r.values("order")
        n = n_vals[0] if n_vals else None
        order = orders[0] if orders else None
        if len(n_vals) > 1 or len(orders) > 1:
            r.problems.append("two different top-N lists")
        if n is not None and not 1 <= n <= MAX_TOP_N:
            r.problems.append(f"top {n} (1 to {MAX_TOP_N})")
        if op == "list" and order is None:
            order = next((o for o in ("largest", "smallest", "nearest") if o in ops), None)
        self._check(r, cls, op, order, point, radius)
        area_unit = self._area_unit(r, op)
        for said, ref in st.slots.get("ref", []):
            if {"bbox": bbox, "point": point, "wkt": wkt}[ref] is None:
                r.problems.append(f"{said!r}: none given (--{ref})")
        if not scenes:
            scenes, place_text = self._described_scenes(r)
        if st.corrections:
            r.understood.append("read " + ", ".join(st.corrections))
        if r.problems or cls is None or op is None:
            return Parse(
                None,
                tuple(r.understood),
                tuple(r.problems),
                tuple(r.llm_notes),
                tuple(st.corrections),
            )
        query = Query(
            op=op,
            cls=cls,
            scenes=tuple(scenes) if scenes else None,
            place_text=tuple(place_text),
            point=point,
            radius_km=radius,
            bbox=bbox,
            wkt=wkt,
            since=since,
            until=until,
            time_text=" and ".join(time_words) if time_words else None,
            sizes=sizes,
            n=n,
            order=order if op == "list" else None,
            area_unit=area_unit,
        )
        return Parse(query, tuple(r.understood), (), tuple(r.llm_notes), tuple(st.corrections))

    def _class_and_words(
        self, r: _Found, resolver: Resolver | None
    ) -> tuple[str | None, list[str]]:
        """The class, and the operation words; unknown words go to the LLM (open slots only)
        or become problems."""
        classes = r.values("cls")
        crop_nouns = r.values("crop_noun")
        if crop_nouns and "crop_stress" not in classes:
            if not classes:
                r.problems.append(
                    f"{crop_nouns[0]!r} alone (stressed fields? say 'stressed fields' or "
                    "'crop stress')"
                )
            else:
                r.problems.append(f"{crop_nouns[0]!r} beside {classes[0]} (a place filter?)")
        ops = r.values("op")
        unknown = r.values("unknown")
        if unknown and resolver is not None:
            open_slots: dict[str, Sequence[str]] = {}
            if not classes:
                open_slots["cls"] = ("ship", "fire", "crop_stress", "cloud")
            if not ops:
                open_slots["op"] = ("count", "largest", "smallest", "nearest", "list")
            still: list[tuple[str, bool]] = []
            for tok, looks_place in unknown:
                got = resolver(r.raw, tok, open_slots) if open_slots and not looks_place else None
                if got is None:
                    still.append((tok, looks_place))
                    continue
                slot, value, margin = got
                r.llm_notes.append(f"{tok} -> {slot} {value} (LLM, margin {margin:.1f})")
                (classes if slot == "cls" else ops).append(value)
                open_slots.pop(slot, None)
            unknown = still
        for tok, looks_place in unknown:
            if looks_place:
                known = ", ".join(self.known_places())
                r.problems.append(f"{tok!r} (not a scene or place in the store; known: {known})")
            else:
                r.problems.append(f"{tok!r} (unknown word)")
        if len(classes) > 1 and "any" in classes:
            classes = [c for c in classes if c != "any"]  # "anything burning": fires
        if len(classes) > 1:
            r.problems.append("several classes (" + ", ".join(classes) + "): ask one at a time")
        cls = classes[0] if len(classes) == 1 else None
        if cls:
            r.understood.append(f"class {CLASS_NAMES[cls][1]}")
        return cls, ops

    def _operation(self, r: _Found, ops: list[str]) -> str | None:
        area_said = any("area" in said for said, _ in r.slots.get("cls", []))
        if (
            r.slots.get("total")
            and set(ops) <= {"measure", "locate"}
            and (r.values("unit") or r.words & {"area", "areas", "extent"} or area_said)
        ):
            ops = [o for o in ops if o not in ("measure", "locate")] + ["total_area"]
        op = self._op(ops, r.slots, r.problems)
        if op is None and not r.problems and not ops:
            op = "count"  # a bare "ships in busan?" asks how many
        if op == "measure" and area_said:
            op = "total_area"  # "how large is the burnt area": all of it
        if op == "measure":
            r.problems.append("how big is what? (the largest, the smallest, or the total area?)")
            op = None
        said_cls = [said for said, _ in r.slots.get("cls", [])]
        if op in ("largest", "smallest") and said_cls and _plural(said_cls[-1]):
            # "the largest fires": a list, largest first, not the one largest
            r.slots.setdefault("order", []).append((said_cls[-1], op))
            op = "list"
        if op:
            r.understood.append(f"operation {op}")
        return op

    def _places(self, r: _Found) -> tuple[list[str], list[str]]:
        scenes: list[str] = []
        place_text: list[str] = []
        for said, alias in r.slots.get("place", []):
            place_text.append(said)
            for s in sorted(self.aliases.get(alias) or self.scene_only.get(alias, set())):
                if s not in scenes:
                    scenes.append(s)
        for said, which in r.slots.get("latest", []):
            dated = [sc for sc in self.scenes if sc.acquired_utc is not None]
            if not dated:
                r.problems.append(f"{said!r}: no scene has a known acquisition time")
                continue
            pick = max if which == "latest" else min
            when = pick(sc.acquired_utc or "" for sc in dated)
            if scenes:
                r.problems.append(f"{said!r} beside a place")
            scenes.extend(sc.name for sc in dated if sc.acquired_utc == when)
            place_text.append(said)
        ports = [sc.name for sc in self.scenes if sc.kind == "port"]
        if not scenes and r.words & PORT_WORDS and ports:
            # "which port had the fewest ships": the port scenes, not every scene
            scenes, place_text = ports, ["ports"]
        if place_text:
            r.understood.append("place " + ", ".join(place_text))
        return scenes, place_text

    def _described_scenes(self, r: _Found) -> tuple[list[str], list[str]]:
        """ "the fire scene": the scenes whose name says so (s2_fire_G90292)."""
        scenes: list[str] = []
        place_text: list[str] = []
        for said, _ in r.slots.get("descriptor", []):
            word = said.split()[0]
            named = [
                sc.name for sc in self.scenes if word in re.split(r"[_\-\s.]+", sc.name.lower())
            ]
            if named:
                scenes.extend(named)
                place_text.append(said)
                r.understood.append(f"place {said} ({', '.join(named)})")
            else:
                r.problems.append(f"which scene is {said!r}? (name it: 'in busan')")
        return scenes, place_text

    def _geometry(
        self, r: _Found
    ) -> tuple[
        tuple[float, float] | None,
        float | None,
        tuple[float, float, float, float] | None,
        str | None,
    ]:
        pts, boxes, radii, wkts = (r.values(k) for k in ("point", "bbox", "radius", "wkt"))
        for what, got in (("points", pts), ("boxes", boxes), ("radii", radii)):
            if len(got) > 1:
                r.problems.append(f"two different {what}")
        point = pts[0] if len(pts) == 1 else None
        bbox = boxes[0] if len(boxes) == 1 else None
        radius = radii[0] if len(radii) == 1 else None
        wkt = wkts[0] if wkts else None
        if radius is not None and point is None:
            said = r.slots["radius"][0][0]
            r.problems.append(f"{said!r} of what? (give a point: 44.41N 8.85E)")
        if point is not None:
            r.understood.append("point " + fmt_point(*point))
        if radius is not None:
            r.understood.append(f"within {_num(radius)} km")
        if bbox is not None:
            r.understood.append("box " + ",".join(f"{v:g}" for v in bbox))
        return point, radius, bbox, wkt

    def _time(self, r: _Found) -> tuple[str | None, str | None, list[str]]:
        """The intersection of every time window asked."""
        since: str | None = None
        until: str | None = None
        time_words: list[str] = []
        for a, b, said in r.values("time"):
            if a is not None:
                since = a if since is None else max(since, a)
            if b is not None:
                until = b if until is None else min(until, b)
            time_words.append(said)
        if since and until and since > until:
            r.problems.append("an empty time window (" + " and ".join(time_words) + ")")
        if time_words:
            r.understood.append("time " + " and ".join(time_words))
        return since, until, time_words

    def _size_bounds(self, r: _Found, cls: str | None, op: str | None) -> tuple[SizeBound, ...]:
        sizes = tuple(r.values("size"))
        for measure in ("length_m", "area_m2"):
            lo = [b for b in sizes if b.measure == measure and b.op in (">", ">=")]
            hi = [b for b in sizes if b.measure == measure and b.op in ("<", "<=")]
            if lo and hi and max(b.value for b in lo) >= min(b.value for b in hi):
                r.problems.append("an empty size range")
        if sizes:
            r.understood.append("size " + " and ".join(b.text() for b in sizes))
            if cls in ("fire", "crop_stress") and any(b.measure == "length_m" for b in sizes):
                r.problems.append(f"a length bound on {CLASS_NAMES[cls][1]} (they have areas)")
            if cls in ("any", "cloud"):
                r.problems.append(f"a size bound on {CLASS_NAMES[cls or 'any'][1]}")
        if r.values("size_word") and not sizes and op not in SIZED_OPS:
            said = r.slots["size_word"][0][0]
            r.problems.append(f"{said!r} without a number (say e.g. 'longer than 200 m')")
        return sizes

    def _check(
        self,
        r: _Found,
        cls: str | None,
        op: str | None,
        order: str | None,
        point: tuple[float, float] | None,
        radius: float | None,
    ) -> None:
        """What each operation needs."""
        if cls is None and not any("class" in p or "alone" in p for p in r.problems):
            r.problems.append("what to look for (ships, fires, stressed fields, clouds?)")
        if op in ("largest", "smallest") and cls in ("any", "cloud"):
            r.problems.append(f"{op} {CLASS_NAMES[cls][0]} (by which measure?)")
        nearest = op == "nearest" or order == "nearest"
        if nearest and point is None:
            r.problems.append("nearest to what? (give a point: 58.08N 123.28W)")
        if op in ("most", "least") and not (r.words & SCOPE_WORDS):
            r.problems.append(f"'{op}' of what? (which scene has the {op} ...?)")
        if op == "total_area" and cls in ("cloud", "any"):
            r.problems.append(f"total area of {CLASS_NAMES[cls][1]}")
        if point is not None and radius is None and not nearest:
            r.problems.append(
                "a point without a radius (say 'within 5 km of ...' or ask for the nearest)"
            )
        if op is None and not any("operation" in p for p in r.problems):
            r.problems.append("what is asked (how many, largest, nearest, list ...?)")

    def _area_unit(self, r: _Found, op: str | None) -> str | None:
        """The unit an area answer is shown in, when the question names one."""
        units = r.values("unit")
        if units and op not in ("total_area", "largest", "smallest", "list", "nearest"):
            r.problems.append(f"{r.slots['unit'][0][0]!r} (a unit for what?)")
        if units and units[0] != "acres":
            return str(units[0])
        if op == "total_area":
            low = r.raw.lower()
            for key, unit in (("hectare", "ha"), ("km2", "km²"), ("km²", "km²"),
                              ("square kilomet", "km²")):  # fmt: skip
                if key in low:
                    return unit
        return None

    def _op(self, ops: list[str], slots: dict[str, Any], problems: list[str]) -> str | None:
        s = set(ops)
        if not s:
            return None
        if len(s) == 1:
            return "list" if ops[0] in ("locate", "show") else ops[0]
        # weak operations ("where is", "which", "how big", "show me") give way to a strong one
        if "show" in s and len(s) > 1:
            s.discard("show")
            ops = [o for o in ops if o != "show"]
            if len(s) == 1:
                return "list" if ops[0] in ("locate", "show") else ops[0]
        strong = s - {"locate", "measure"}
        if "locate" in s and not strong - {"any", "count"}:
            return "list"
        if strong and s - strong:
            if "measure" in s and not strong & {"largest", "smallest", "list", "nearest"}:
                problems.append("'how big' beside " + ", ".join(sorted(strong)))
                return None
            s = strong
            ops = [o for o in ops if o in strong]
            if len(s) == 1:
                return ops[0]
        # compatible pairs: the more specific operation wins
        for keep, absorbed in (
            ("per_scene", {"count", "any", "list"}),
            ("most", {"count", "any", "list", "largest"}),
            ("least", {"count", "any", "list", "smallest"}),
            ("total_area", {"count", "any", "list"}),
            ("count", {"any"}),
            ("list", {"any", "count", "largest", "smallest", "nearest"}),
            ("nearest", {"any", "list"}),
            ("largest", {"any", "list"}),
            ("smallest", {"any", "list"}),
        ):
            if keep in s and s - {keep} <= absorbed:
                return keep
        problems.append("several operations (" + ", ".join(ops) + ")")
        return None


def _plural(phrase: str) -> bool:
    """ "fires", "stressed fields", "hot spots": plural; "fire", "crop stress": not."""
    last = phrase.split()[-1]
    return last.endswith("s") and not last.endswith("ss") and last not in ("cloudiness",)


def _asked_time(asked_utc: str | None) -> dt.datetime:
    """When the question was asked (UTC, naive); the clock when not given."""
    if asked_utc:
        span = parse_date(asked_utc.rstrip("Z").replace("T", " ").strip())
        if span is not None:
            # a date alone: its start (relative windows then end at midnight)
            return dt.datetime.strptime(span[0], "%Y-%m-%dT%H:%M:%SZ")
        log.warning("asked_utc %r unreadable; using the clock", asked_utc)
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _time_words(since: str | None, until: str | None) -> str:
    if since and until:
        return f"between {since} and {until}"
    if since:
        return f"since {since}"
    return f"until {until}"


__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "OPS",
    "Parse",
    "Parser",
    "Query",
    "SizeBound",
    "distance_m",
    "fmt_point",
    "format_size",
    "parse_date",
    "place_aliases",
]
