"""Sensor profiles: band names, spectral roles, native resolutions and DN -> reflectance scaling.

Detectors ask for bands by *role* (``swir22``, ``nir``, ...) so the same detector runs on
Sentinel-2 and Landsat.  A profile is chosen with ``--sensor`` or detected from the files
(band names, CRS, resolution, dates in the metadata); the reason is recorded in run.json.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InputError, UnknownSensorError

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


@dataclass(frozen=True)
class Scaling:
    """reflectance = (DN + offset) * scale."""

    scale: float
    offset: float = 0.0
    reason: str = ""

    def describe(self) -> str:
        off = f" + ({self.offset:g})" if self.offset else ""
        return f"reflectance = (DN{off}) * {self.scale:g}"


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
            return Scaling(self.scale, float(self.offset), "fixed by sensor profile")
        return _sentinel2_offset(self.scale, list(texts))


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
                BandSpec("B8", "pan", 15.0, 590),
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
) -> Detection:
    """Choose a profile from band names, metadata texts, CRS and resolution.

    Rules, in order:

    1. Sentinel-2 evidence (``B8A``, ``B12`` or zero-padded names such as ``B02``, or
       "Sentinel" / ``PROCESSING_BASELINE`` / ``MSIL1C`` in the metadata): in EPSG:3857 this is
       a Sentinel Hub export -> ``sen2ships`` (ESA products are never Web-Mercator); with
       ``L2A`` in the metadata -> ``sentinel2-l2a``; otherwise ``sentinel2-l1c``.
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
        if crs_epsg == 3857:
            return Detection(PROFILES["sen2ships"], f"{why} in EPSG:3857 (Sentinel Hub export)")
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
