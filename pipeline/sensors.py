"""Sensor profiles: band names, spectral roles, native resolutions and DN -> reflectance scaling.

Detectors ask for bands by *role* (``swir22``, ``nir``, ...) so the same detector runs on
Sentinel-2 and Landsat.  A profile is chosen with ``--sensor`` or detected from the files
(band names, CRS, resolution, dates in the metadata); the reason is recorded in run.json.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigError, InputError, UnknownSensorError

#: Sentinel-2 processing baseline 04.00 (from 2022-01-25) added RADIO_ADD_OFFSET = -1000.
S2_OFFSET_SINCE = dt.date(2022, 1, 25)

_BAND_TOKEN = re.compile(r"(?<![A-Za-z0-9])B(\d{1,2})(A?)(?![0-9A-Za-z])", re.IGNORECASE)
_DATE_TOKEN = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")


@dataclass(frozen=True)
class BandSpec:
    """One band of a sensor."""

    name: str
    role: str
    resolution_m: float
    wavelength_nm: int
    #: may set the working grid (the finest such band does); Landsat's 15 m panchromatic band
    #: may not: no detector reads it, and its grid would quadruple the work
    grid: bool = True


@dataclass(frozen=True)
class Scaling:
    """reflectance = (DN + offset) * scale.

    ``kind`` names the convention (one of :data:`SCALING_KINDS`, or ``linear`` for an
    ``A*DN+B`` given by the user or the file's own scale/offset metadata); ``reason`` says why
    it was chosen (run.json and ``eotriage info`` show it).
    """

    scale: float
    offset: float = 0.0
    reason: str = ""
    kind: str = ""

    def describe(self) -> str:
        off = f" + ({self.offset:g})" if self.offset else ""
        return f"reflectance = (DN{off}) * {self.scale:g}"

    def spec(self) -> str:
        """The ``--scaling`` text that gives this scaling back (``dn10000-offset``,
        ``2e-05*DN-0.1``)."""
        for name, (scale, offset) in NAMED_SCALINGS.items():
            if math.isclose(self.scale, scale, rel_tol=1e-9) and self.offset == offset:
                return name
        b = self.offset * self.scale
        return f"{self.scale:.10g}*DN{'+' if b >= 0 else '-'}{abs(b):.10g}"

    def apply(self, dn: float) -> float:
        return (dn + self.offset) * self.scale


#: ``--scaling`` names -> (scale, DN offset)
NAMED_SCALINGS: dict[str, tuple[float, float]] = {
    "reflectance": (1.0, 0.0),
    "dn10000": (1e-4, 0.0),
    "dn10000-offset": (1e-4, -1000.0),
    "dn65535": (1.0 / 65535.0, 0.0),
}
SCALING_KINDS = (*NAMED_SCALINGS, "A*DN+B")
SCALING_HELP = (
    "reflectance (samples are reflectance already), dn10000 (DN/10000, Sentinel-2 before "
    "baseline 04.00), dn10000-offset ((DN-1000)/10000, baseline 04.00 on), dn65535 (DN/65535, "
    "Sentinel Hub 16-bit exports) or A*DN+B (e.g. 2e-5*DN-0.1, Landsat Collection 2)"
)
_LINEAR = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*DN\s*"
    r"(?:([-+])\s*((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?\s*$",
    re.IGNORECASE,
)


def parse_scaling(text: str, reason: str = "set by user (--scaling)") -> Scaling:
    """A :class:`Scaling` from ``--scaling`` text; :class:`ConfigError` naming the options."""
    t = text.strip().lower()
    if t in NAMED_SCALINGS:
        scale, offset = NAMED_SCALINGS[t]
        return Scaling(scale, offset, reason, t)
    m = _LINEAR.match(text)
    if m:
        a = float(m.group(1))
        b = float(m.group(3) or 0.0) * (-1.0 if m.group(2) == "-" else 1.0)
        if a != 0.0 and math.isfinite(a) and math.isfinite(b):
            return Scaling(a, b / a, reason, "linear")
    raise ConfigError(
        f"scaling {text!r} is not one of: {', '.join(SCALING_KINDS)} (e.g. 2e-5*DN-0.1)"
    )


@dataclass(frozen=True)
class SampleStats:
    """Sampled values of one band (valid samples only: finite, not nodata, not 0)."""

    token: str
    dtype: str
    count: int
    median: float
    p99: float

    @property
    def floating(self) -> bool:
        return self.dtype.startswith("float")


#: scaled reflectance whose median (over the sampled bands) lies outside this range is
#: implausible for any land or water scene
PLAUSIBLE_MEDIAN = (0.005, 1.5)
#: float samples whose 99th percentile stays below this are reflectance already (DNs of any
#: sensor are in the hundreds at least; a hot fire pixel can pass 1.5 but not a percentile)
REFLECTANCE_P99_MAX = 3.0


def looks_like_reflectance(stats: Iterable[SampleStats]) -> tuple[bool, str]:
    """(float samples already in reflectance range, the figures that say so)."""
    st = [s for s in stats if s.count]
    if not st or not all(s.floating for s in st):
        return False, ""
    med = statistics_median([s.median for s in st])
    p99 = max(s.p99 for s in st)
    text = f"median {med:.3g}, 99th percentile {p99:.3g}"
    return (p99 <= REFLECTANCE_P99_MAX and med <= PLAUSIBLE_MEDIAN[1]), text


def scaled_median(scaling: Scaling, stats: Iterable[SampleStats]) -> float | None:
    """Median over bands of each band's median reflectance under ``scaling`` (None: no data)."""
    meds = [scaling.apply(s.median) for s in stats if s.count]
    return statistics_median(meds) if meds else None


def plausibility(scaling: Scaling, stats: Iterable[SampleStats]) -> str | None:
    """None when the scaled samples look like reflectance, else what is wrong."""
    st = list(stats)
    med = scaled_median(scaling, st)
    if med is None:
        return None
    lo, hi = PLAUSIBLE_MEDIAN
    if lo <= med <= hi:
        return None
    raw = statistics_median([s.median for s in st if s.count])
    fits = [
        name
        for name, (scale, offset) in NAMED_SCALINGS.items()
        if lo <= (scaled_median(Scaling(scale, offset), st) or 0.0) <= hi
    ]
    hint = f"; {' or '.join(fits)} would give plausible values" if fits else ""
    return (
        f"{scaling.describe()} gives a median reflectance of {med:.3g} (plausible: {lo:g} to "
        f"{hi:g}) from samples with median {raw:.6g}{hint}; pass --scaling "
        f"({', '.join(SCALING_KINDS)}) or --sensor"
    )


def statistics_median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


@dataclass(frozen=True)
class SensorProfile:
    """How to read one sensor's products."""

    name: str
    description: str
    bands: tuple[BandSpec, ...]
    scale: float
    #: ``"auto"``: Sentinel-2 rule (-1000 from baseline 04.00), otherwise a fixed DN offset.
    offset: float | str = 0.0
    #: DN at or above which a sample is saturated.
    saturated_dn: float = 65535.0
    #: ``"any"``: a zero DN in any band marks the pixel as fill;
    #: ``"all"``: only when every band is 0 (exports that clamp dark samples to 0).
    zero_fill: str = "any"

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> BandSpec:
        for b in self.bands:
            if b.name == name:
                return b
        raise InputError(f"band {name!r} is not a {self.name} band ({', '.join(self.band_names)})")

    def role_to_band(self) -> dict[str, str]:
        return {b.role: b.name for b in self.bands}

    def canonical_band(self, token: str) -> str | None:
        """Map a band token from a file name or description (``B9``, ``b09``, ``B8A``) to a name."""
        m = _BAND_TOKEN.fullmatch(token.strip())
        if not m:
            return None
        num, suffix = int(m.group(1)), m.group(2).upper()
        for b in self.bands:
            bm = _BAND_TOKEN.fullmatch(b.name)
            assert bm is not None
            if int(bm.group(1)) == num and bm.group(2).upper() == suffix:
                return b.name
        return None

    def scaling(self, texts: Iterable[str] = ()) -> Scaling:
        """Resolve the DN scaling, using metadata texts (tags, descriptions, names) for ``auto``."""
        if self.offset != "auto":
            sc = Scaling(self.scale, float(self.offset), f"DN scaling of the {self.name} profile")
            return dataclasses.replace(sc, kind=_kind_of(sc))
        sc = _sentinel2_offset(self.scale, list(texts))
        return dataclasses.replace(sc, kind=_kind_of(sc))


def _kind_of(sc: Scaling) -> str:
    for name, (scale, offset) in NAMED_SCALINGS.items():
        if math.isclose(sc.scale, scale, rel_tol=1e-9) and sc.offset == offset:
            return name
    return "linear"


def _sentinel2_offset(scale: float, texts: list[str]) -> Scaling:
    joined = "\n".join(texts)
    m = re.search(r"(?:RADIO|BOA)_ADD_OFFSET[^0-9-]{0,5}(-?\d+(?:\.\d+)?)", joined)
    if m:
        return Scaling(scale, float(m.group(1)), "ADD_OFFSET in metadata")
    m = re.search(r"PROCESSING_BASELINE\D{0,5}(\d{2})\.(\d{2})", joined)
    if m:
        baseline = (int(m.group(1)), int(m.group(2)))
        off = -1000.0 if baseline >= (4, 0) else 0.0
        return Scaling(scale, off, f"processing baseline {m.group(1)}.{m.group(2)} in metadata")
    dates: list[dt.date] = []
    for y, mo, d in _DATE_TOKEN.findall(joined):
        try:
            dates.append(dt.date(int(y), int(mo), int(d)))
        except ValueError:
            continue
    if dates:
        when = min(dates)
        off = -1000.0 if when >= S2_OFFSET_SINCE else 0.0
        return Scaling(
            scale,
            off,
            f"acquisition date {when.isoformat()} in metadata "
            f"({'on/after' if off else 'before'} baseline 04.00, {S2_OFFSET_SINCE.isoformat()})",
        )
    return Scaling(scale, 0.0, "no baseline, offset or date in metadata: assuming no offset")


def _s2_bands() -> tuple[BandSpec, ...]:
    table = [
        ("B01", "coastal", 60, 443),
        ("B02", "blue", 10, 490),
        ("B03", "green", 10, 560),
        ("B04", "red", 10, 665),
        ("B05", "rededge1", 20, 705),
        ("B06", "rededge2", 20, 740),
        ("B07", "rededge3", 20, 783),
        ("B08", "nir", 10, 842),
        ("B8A", "nir08", 20, 865),
        ("B09", "watervapour", 60, 945),
        ("B10", "cirrus", 60, 1375),
        ("B11", "swir16", 20, 1610),
        ("B12", "swir22", 20, 2190),
    ]
    return tuple(BandSpec(n, r, float(res), wl) for n, r, res, wl in table)


PROFILES: dict[str, SensorProfile] = {
    p.name: p
    for p in (
        SensorProfile(
            name="sentinel2-l1c",
            description="Sentinel-2 MSI Level-1C (ESA SAFE / GeoTIFF exports), 13 bands, "
            "DN/10000 with -1000 offset from processing baseline 04.00",
            bands=_s2_bands(),
            scale=1e-4,
            offset="auto",
        ),
        SensorProfile(
            name="sentinel2-l2a",
            description="Sentinel-2 MSI Level-2A, 12 bands, DN/10000 with -1000 BOA offset "
            "from processing baseline 04.00",
            bands=tuple(b for b in _s2_bands() if b.name != "B10"),
            scale=1e-4,
            offset="auto",
        ),
        SensorProfile(
            name="sen2ships",
            description="Sentinel-2 L2A 16-bit exports from Sentinel Hub (sen2ships data set): "
            "EPSG:3857, DN/65535 clamped to [0, 1]",
            bands=_s2_bands(),
            scale=1.0 / 65535.0,
            offset=0.0,
            zero_fill="all",
        ),
        SensorProfile(
            name="landsat8-oli",
            description="Landsat 8/9 OLI(+TIRS) Collection 2 Level-1, TOA reflectance = "
            "DN*2e-5 - 0.1",
            bands=(
                BandSpec("B1", "coastal", 30.0, 443),
                BandSpec("B2", "blue", 30.0, 482),
                BandSpec("B3", "green", 30.0, 561),
                BandSpec("B4", "red", 30.0, 655),
                BandSpec("B5", "nir", 30.0, 865),
                BandSpec("B6", "swir16", 30.0, 1609),
                BandSpec("B7", "swir22", 30.0, 2201),
                BandSpec("B8", "pan", 15.0, 590, grid=False),
                BandSpec("B9", "cirrus", 30.0, 1373),
                BandSpec("B10", "tir10", 100.0, 10895),
                BandSpec("B11", "tir12", 100.0, 12005),
            ),
            scale=2e-5,
            offset=-5000.0,  # 2e-5 * (DN - 5000) == 2e-5 * DN - 0.1
        ),
    )
}


def get_profile(name: str) -> SensorProfile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise UnknownSensorError(f"unknown sensor {name!r} (known: {known})") from None


def band_tokens(text: str) -> list[str]:
    """All band-like tokens (``B02``, ``B8A``, ``B9``) in a file name or band description."""
    return [f"B{m.group(1)}{m.group(2).upper()}" for m in _BAND_TOKEN.finditer(text)]


@dataclass(frozen=True)
class Detection:
    """Result of sensor auto-detection."""

    profile: SensorProfile
    reason: str


def detect_sensor(
    tokens: Iterable[str],
    crs_epsg: int | None,
    resolution_m: float,
    texts: Iterable[str] = (),
    floating: bool = False,
) -> Detection:
    """Choose a profile from band names, metadata texts, CRS, resolution and sample type.

    Rules, in order:

    1. Sentinel-2 evidence (``B8A``, ``B12`` or zero-padded names such as ``B02``, or
       "Sentinel" / ``PROCESSING_BASELINE`` / ``MSIL1C`` in the metadata): integer samples in
       EPSG:3857 without ESA product metadata are a Sentinel Hub 16-bit export -> ``sen2ships``
       (ESA products are never Web-Mercator, but a float raster reprojected there by a user is
       no Sentinel Hub export, nor is one that still carries ESA metadata); with ``L2A`` in
       the metadata -> ``sentinel2-l2a``; otherwise ``sentinel2-l1c``.
    2. Landsat evidence ("Landsat", ``LC08``/``LC09`` in names or metadata), or Landsat band
       names at a Landsat resolution (15, 30, 100 m) -> ``landsat8-oli``.
    3. Band names at a Sentinel-2 resolution (10, 20, 60 m) -> ``sentinel2-l1c``.
    """
    toks = {t.upper() for t in tokens}
    text = " ".join(texts).upper()
    s2_names = bool(toks & {"B8A", "B12"}) or any(re.fullmatch(r"B0\d", t) for t in toks)
    s2_text = re.search(r"SENTINEL|PROCESSING_BASELINE|MSIL[12][AC]", text) is not None
    landsat_text = re.search(r"LANDSAT|(?<![A-Z0-9])L[COTE]0[89]", text) is not None

    def near(values: tuple[float, ...]) -> bool:
        return any(abs(resolution_m - v) <= 0.05 * v for v in values)

    if s2_names or (s2_text and not landsat_text):
        why = "Sentinel-2 band names" if s2_names else "Sentinel-2 metadata"
        if crs_epsg == 3857 and not floating and not _ESA_METADATA.search(text):
            return Detection(
                PROFILES["sen2ships"],
                f"{why}, integer samples in EPSG:3857 without ESA metadata "
                "(Sentinel Hub 16-bit export)",
            )
        if crs_epsg == 3857:
            why += (
                ", floating-point samples in EPSG:3857 (reprojected, not a Sentinel Hub "
                "16-bit export)"
                if floating
                else ", ESA metadata in EPSG:3857 (reprojected ESA product)"
            )
        if "L2A" in text:
            return Detection(PROFILES["sentinel2-l2a"], f"{why}, 'L2A' in metadata")
        return Detection(PROFILES["sentinel2-l1c"], why)
    landsat_names = {b.name for b in PROFILES["landsat8-oli"].bands}
    if toks and (landsat_text or (toks <= landsat_names and near((15.0, 30.0, 100.0)))):
        why = "Landsat metadata" if landsat_text else f"Landsat band names at {resolution_m:g} m"
        return Detection(PROFILES["landsat8-oli"], why)
    if toks and near((10.0, 20.0, 60.0)):
        return Detection(
            PROFILES["sentinel2-l1c"], f"band names at {resolution_m:g} m (a Sentinel-2 grid)"
        )
    raise InputError(
        f"cannot tell the sensor from bands {sorted(toks) or 'none'} at {resolution_m:g} m; "
        f"pass --sensor ({', '.join(sorted(PROFILES))})"
    )


#: metadata that only ESA's own Sentinel-2 products (SAFE, or GeoTIFFs made from them) carry
_ESA_METADATA = re.compile(
    r"PROCESSING_BASELINE|MSIL[12][AC]|(?:RADIO|BOA)_ADD_OFFSET|QUANTIFICATION|X\s*10000"
)


def choose_scaling(
    profile: SensorProfile,
    texts: Iterable[str] = (),
    stats: Iterable[SampleStats] = (),
    file_scaling: tuple[float, float] | None = None,
    user: str | None = None,
) -> Scaling:
    """The DN -> reflectance scaling of a scene, from every clue together, in this order:

    1. ``user`` (``--scaling``): one of :data:`SCALING_KINDS`;
    2. the file's own scale/offset metadata (GDAL ``scale``/``offset``: reflectance =
       scale * DN + offset), when it is not the identity;
    3. floating-point samples already in reflectance range (sampled 99th percentile <=
       :data:`REFLECTANCE_P99_MAX`): reflectance as stored, whatever the sensor;
    4. the profile's DN scaling (Sentinel-2: DN/10000 with the -1000 offset of baseline 04.00
       when the metadata says so).
    """
    if user is not None:
        return parse_scaling(user)
    if file_scaling is not None and file_scaling != (1.0, 0.0) and file_scaling[0] != 0.0:
        a, b = file_scaling
        sc = Scaling(a, b / a, f"scale {a:g} and offset {b:g} in the file's band metadata")
        return dataclasses.replace(sc, kind=_kind_of(sc))
    st = list(stats)
    refl, figures = looks_like_reflectance(st)
    if refl:
        return Scaling(
            1.0,
            0.0,
            f"floating-point samples already in reflectance range ({figures})",
            "reflectance",
        )
    sc = profile.scaling(texts)
    if st and all(x.floating for x in st if x.count):
        med = statistics_median([x.median for x in st if x.count] or [0.0])
        sc = dataclasses.replace(
            sc, reason=f"floating-point samples in DN range (median {med:.5g}); {sc.reason}"
        )
    return sc
