"""Open a scene: one multi-band GeoTIFF, or a directory of single-band GeoTIFFs.

Opening reads only metadata (no pixels): band names, CRS, grids, sensor profile and scaling.
Pixels are read later, window by window, by :mod:`pipeline.core.ingest`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from ..errors import EmptySceneError, EotriageError, InputError, cause_text
from ..sensors import (
    SampleStats,
    Scaling,
    SensorProfile,
    band_tokens,
    choose_scaling,
    detect_sensor,
    get_profile,
    plausibility,
)

log = logging.getLogger(__name__)

TIFF_SUFFIXES = {".tif", ".tiff"}
#: plausible ground sampling distance of a scene's finest band, metres
MIN_RES_M = 0.01
MAX_RES_M = 100_000.0


@dataclass(frozen=True)
class BandSource:
    """Where one band's samples live."""

    name: str
    role: str
    path: Path
    index: int  # 1-based band index in the file
    width: int
    height: int
    transform: Affine
    dtype: str
    nodata: float | None

    @property
    def label(self) -> str:
        return f"{self.path.name}" + (f" band {self.index}" if self.index != 1 else "")


@dataclass(frozen=True)
class Grid:
    """The working grid every band is resampled to (the finest band's grid)."""

    width: int
    height: int
    transform: Affine
    crs: CRS
    #: approximate ground sampling distance of one working-grid pixel, metres
    ground_res_m: float
    center_lonlat: tuple[float, float]

    @property
    def pixel_area_m2(self) -> float:
        return self.ground_res_m**2


@dataclass(frozen=True)
class Scene:
    """An opened scene: metadata only."""

    name: str
    path: Path
    profile: SensorProfile
    sensor_reason: str
    scaling: Scaling
    bands: tuple[BandSource, ...]
    grid: Grid
    input_bytes: int
    #: band name -> why its file could not be opened (the band is left out; detectors that
    #: need it are skipped and the run reports it)
    unreadable: Mapping[str, str] = field(default_factory=dict)

    def band(self, name: str) -> BandSource:
        for b in self.bands:
            if b.name == name:
                return b
        raise InputError(f"{self.path}: band {name} missing (have {', '.join(self.band_names)})")

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def has_roles(self, *roles: str) -> bool:
        have = {b.role for b in self.bands}
        return all(r in have for r in roles)

    def band_for_role(self, role: str) -> BandSource:
        for b in self.bands:
            if b.role == role:
                return b
        want = self.profile.role_to_band().get(role, role)
        raise InputError(
            f"{self.path}: band {want} ({role}) missing (have {', '.join(self.band_names)})"
        )


@dataclass(frozen=True)
class _RawBand:
    token: str
    path: Path
    index: int
    width: int
    height: int
    transform: Affine
    crs: CRS | None
    dtype: str
    nodata: float | None
    texts: tuple[str, ...]
    #: GDAL scale and offset of the band (value = scale * DN + offset), (1, 0) when absent
    gdal_scaling: tuple[float, float] = (1.0, 0.0)


def _open_checked(path: Path) -> rasterio.DatasetReader:
    try:
        with warnings.catch_warnings():  # a missing CRS is reported as an error below
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{path}: not a readable GeoTIFF ({cause_text(exc)})") from None
    if ds.driver != "GTiff":
        driver = ds.driver
        ds.close()
        raise InputError(f"{path}: not a GeoTIFF (GDAL reads it as {driver})")
    return ds


def _scan_file(path: Path, single_file: bool) -> list[_RawBand]:
    with _open_checked(path) as ds:
        try:
            return _scan_dataset(ds, path, single_file)
        except EotriageError:
            raise
        except (UnicodeDecodeError, RasterioError, ValueError) as exc:
            # a damaged IFD can leave GDAL with band descriptions or tags that are not UTF-8
            # (rasterio raises UnicodeDecodeError), or GeoTIFF keys it cannot make a CRS of
            raise InputError(
                f"{path}: metadata unreadable, file truncated or corrupt? ({cause_text(exc)})"
            ) from None


def _scan_dataset(ds: rasterio.DatasetReader, path: Path, single_file: bool) -> list[_RawBand]:
    if ds.width == 0 or ds.height == 0:
        raise EmptySceneError(f"{path}: raster has no pixels ({ds.width} x {ds.height})")
    if ds.transform.is_identity:
        # rasterio's stand-in when the file has no geotransform (a damaged or lost
        # ModelTiepoint/ModelPixelScale tag): pixels would be placed at (0, 0), 1 unit each
        raise InputError(f"{path}: no geotransform (georeferencing) in the file")
    texts = [path.name, *[d for d in ds.descriptions if d]]
    texts += [f"{k}={v}" for k, v in ds.tags().items()]
    for i in range(1, ds.count + 1):
        texts += [f"{k}={v}" for k, v in ds.tags(i).items()]
    out: list[_RawBand] = []
    name_tokens = band_tokens(path.stem)
    for i in range(1, ds.count + 1):
        desc = ds.descriptions[i - 1] or ""
        toks = band_tokens(desc)
        if not toks and ds.count == 1 and len(name_tokens) == 1:
            toks = name_tokens
        if not toks:
            log.debug("%s band %d: no band name in description or file name; ignored", path, i)
            continue
        if len(set(toks)) > 1:
            log.debug("%s band %d: several band names %s; using %s", path, i, toks, toks[0])
        out.append(
            _RawBand(
                token=toks[0],
                path=path,
                index=i,
                width=ds.width,
                height=ds.height,
                transform=ds.transform,
                crs=ds.crs,
                dtype=ds.dtypes[i - 1],
                nodata=ds.nodatavals[i - 1],
                texts=tuple(texts),
                gdal_scaling=(float(ds.scales[i - 1] or 1.0), float(ds.offsets[i - 1] or 0.0)),
            )
        )
    if single_file and not out and ds.count > 0:
        raise InputError(
            f"{path}: no band names found (set band descriptions such as 'B12', or use a "
            "directory of single-band files named after their bands)"
        )
    return out


def _collect(path: Path) -> tuple[list[_RawBand], int, dict[str, str]]:
    """The bands found, their bytes, and {band token: error} for band files that are broken."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        return _scan_file(path, single_file=True), path.stat().st_size, {}
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES)
    raw: list[_RawBand] = []
    total = 0
    broken: dict[str, str] = {}
    first_error: InputError | None = None
    for f in files:
        try:
            bands = _scan_file(f, single_file=False)
        except InputError as exc:
            tokens = band_tokens(f.stem)
            if not tokens:
                log.warning("%s: skipped (not a readable GeoTIFF and not named after a band)", f)
                continue
            # a broken band file costs its band only: the other bands' detectors still run
            log.warning("%s", exc)
            broken.setdefault(tokens[0], str(exc))
            first_error = first_error or exc
            continue
        if bands:
            raw.extend(bands)
            total += f.stat().st_size
    if not raw and first_error is not None:
        raise first_error
    return raw, total, broken


def _ground_res(
    crs: CRS, transform: Affine, width: int, height: int
) -> tuple[float, tuple[float, float]]:
    cx, cy = transform @ (width / 2.0, height / 2.0)
    lon, lat = (v[0] for v in warp_transform(crs, "EPSG:4326", [cx], [cy]))
    res_x, res_y = abs(transform.a), abs(transform.e)
    res = math.sqrt(res_x * res_y)
    if crs.is_geographic:
        res = res * 111_320.0 * math.sqrt(math.cos(math.radians(lat)))
    elif crs.to_epsg() == 3857:
        res = res * math.cos(math.radians(lat))
    return res, (lon, lat)


def open_scene(
    path: str | Path,
    sensor: str | None = None,
    name: str | None = None,
    scaling: str | None = None,
) -> Scene:
    """Open a scene: metadata, and a few small windows of samples to check the scaling.

    ``path`` is a multi-band GeoTIFF whose band descriptions name the bands, or a directory of
    single-band GeoTIFFs whose file names contain the band name (``B02``, ``B8A``, ``B11``).
    ``sensor`` forces a profile and ``scaling`` the DN -> reflectance scaling (see
    :func:`pipeline.sensors.parse_scaling`); by default both are inferred from band names,
    metadata, CRS, sample type and sampled values together
    (:func:`pipeline.sensors.detect_sensor`, :func:`pipeline.sensors.choose_scaling`).  An
    inferred scaling that gives implausible reflectance is an :class:`InputError` naming the
    options.  Raises :class:`InputError`.
    """
    p = Path(path)
    raw, nbytes, broken = _collect(p)
    if not raw:
        raise EmptySceneError(
            f"{p}: no band files found (expected GeoTIFFs named after their bands, e.g. B02.tif, "
            "or a multi-band GeoTIFF with band descriptions)"
        )
    for r in raw:  # a damaged GeoTIFF header can hold any double, NaN included
        t = r.transform
        if not all(math.isfinite(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)) or not t.a or not t.e:
            raise InputError(f"{r.path}: implausible geotransform {tuple(t)[:6]} (header damaged?)")
    rotated = next((r for r in raw if r.transform.b or r.transform.d), None)
    if rotated is not None:
        raise InputError(f"{rotated.path}: rotated or sheared grids are not supported")
    crss = {str(r.crs) for r in raw}
    if any(r.crs is None for r in raw):
        bad = next(r for r in raw if r.crs is None)
        raise InputError(f"{bad.path}: no CRS (georeferencing) in the file")
    if len(crss) > 1:
        first = raw[0]
        other = next(r for r in raw if str(r.crs) != str(first.crs))
        raise InputError(
            f"{other.path}: wrong CRS {other.crs} (band {first.token} in {first.path.name} is "
            f"{first.crs}); all bands of a scene must share one CRS"
        )
    finest = min(raw, key=lambda r: abs(r.transform.a))
    crs = finest.crs
    assert crs is not None
    texts = sorted({t for r in raw for t in r.texts})
    floating = all(np.dtype(r.dtype).kind == "f" for r in raw)
    if sensor is not None:
        profile, reason = get_profile(sensor), "set by user (--sensor)"
    else:
        det = detect_sensor(
            [r.token for r in raw], crs.to_epsg(), abs(finest.transform.a), texts, floating
        )
        profile, reason = det.profile, det.reason
    sources: dict[str, BandSource] = {}
    for r in raw:
        canon = profile.canonical_band(r.token)
        if canon is None:
            log.warning("%s: %s is not a %s band; ignored", r.path, r.token, profile.name)
            continue
        if canon in sources:
            log.warning(
                "%s: band %s already read from %s; ignored", r.path, canon, sources[canon].path
            )
            continue
        sources[canon] = BandSource(
            name=canon,
            role=profile.band(canon).role,
            path=r.path,
            index=r.index,
            width=r.width,
            height=r.height,
            transform=r.transform,
            dtype=r.dtype,
            nodata=r.nodata,
        )
    if not sources:
        raise EmptySceneError(f"{p}: none of the bands found is a {profile.name} band")
    unreadable = {
        canon: msg
        for token, msg in broken.items()
        if (canon := profile.canonical_band(token) or token) not in sources
    }
    # The working grid is that of the finest band actually used that may set it (not a
    # panchromatic band no detector reads).
    gridders = [b for b in sources.values() if profile.band(b.name).grid] or list(sources.values())
    ref = min(gridders, key=lambda b: (abs(b.transform.a), b.name))
    left, top = ref.transform.c, ref.transform.f
    right, bottom = ref.transform @ (ref.width, ref.height)
    for b in sources.values():
        bl, bt = b.transform.c, b.transform.f
        br, bb = b.transform @ (b.width, b.height)
        # within one of the band's own pixels, per axis; and a pixel no larger than the scene
        # (a damaged pixel size of 1e179 m would otherwise "cover" any extent)
        tol_x, tol_y = abs(b.transform.a) * 1.01, abs(b.transform.e) * 1.01
        if (
            bl - left > tol_x
            or top - bt > tol_y
            or right - br > tol_x
            or bb - bottom > tol_y
            or abs(b.transform.a) > abs(right - left)
            or abs(b.transform.e) > abs(top - bottom)
        ):
            raise InputError(
                f"{b.path}: band {b.name} covers ({bl:.1f}, {bb:.1f}, {br:.1f}, {bt:.1f}), "
                f"not the scene extent ({left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f}) "
                f"of {ref.path.name}"
            )
    try:
        ground_res, center = _ground_res(crs, ref.transform, ref.width, ref.height)
    except (CPLE_BaseError, RasterioError, ValueError) as exc:  # PROJ cannot use the CRS
        raise InputError(
            f"{ref.path}: CRS {crs} cannot be transformed to WGS84 ({cause_text(exc)})"
        ) from None
    if not MIN_RES_M <= ground_res <= MAX_RES_M:
        raise InputError(
            f"{ref.path}: pixel size of {ground_res:.3g} m is implausible for Earth observation "
            f"(expected {MIN_RES_M} m to {MAX_RES_M / 1000:.0f} km; header damaged?)"
        )
    grid = Grid(ref.width, ref.height, ref.transform, crs, ground_res, center)
    order = {n: i for i, n in enumerate(profile.band_names)}
    bands = tuple(sorted(sources.values(), key=lambda b: order[b.name]))
    stats = _sample_stats(raw, sources)
    scales = {r.gdal_scaling for r in raw if r.token in {b.name for b in sources.values()}}
    chosen = choose_scaling(
        profile,
        texts,
        stats,
        file_scaling=next(iter(scales)) if len(scales) == 1 else None,
        user=scaling,
    )
    problem = plausibility(chosen, stats)
    if problem is not None:
        if scaling is None:
            raise InputError(f"{p}: implausible scaling: {problem} (inferred: {chosen.reason})")
        log.warning("%s: %s (kept: --scaling %s was given)", p, problem, scaling)
        chosen = dataclasses.replace(chosen, reason=f"{chosen.reason}; implausible: {problem}")
    scaling_ = chosen
    scene_name = name or (p.stem if p.is_file() else p.name)
    log.info(
        "opened %s: %s (%s), %d bands, %d x %d px at %.1f m, %s (%s)",
        scene_name,
        profile.name,
        reason,
        len(bands),
        grid.width,
        grid.height,
        ground_res,
        scaling_.describe(),
        scaling_.reason,
    )
    return Scene(scene_name, p, profile, reason, scaling_, bands, grid, nbytes, unreadable)


#: windows sampled per band to infer and check the scaling (cheap: a few blocks per file)
_SAMPLE_GRID = 3
_SAMPLE_PX = 32


def _sample_stats(raw: list[_RawBand], sources: Mapping[str, BandSource]) -> list[SampleStats]:
    """Median and 99th percentile of each used band's valid samples (finite, not nodata, not
    0) in a 3 x 3 grid of 32 px windows.  A band that cannot be read here is left out (its
    tiles will fail and be recorded)."""
    used = {(b.path, b.index) for b in sources.values()}
    out: list[SampleStats] = []
    for r in raw:
        if (r.path, r.index) not in used:
            continue
        values = []
        try:
            with rasterio.open(r.path) as ds:
                for fy in range(_SAMPLE_GRID):
                    for fx in range(_SAMPLE_GRID):
                        w = min(_SAMPLE_PX, r.width)
                        h = min(_SAMPLE_PX, r.height)
                        col = int((r.width - w) * (fx + 0.5) / _SAMPLE_GRID)
                        row = int((r.height - h) * (fy + 0.5) / _SAMPLE_GRID)
                        values.append(
                            ds.read(r.index, window=Window(col, row, w, h)).astype(np.float64)
                        )
        except (RasterioError, CPLE_BaseError, ValueError, OSError) as exc:
            log.debug("%s band %d: not sampled (%s)", r.path, r.index, cause_text(exc))
            continue
        v = np.concatenate([a.ravel() for a in values])
        ok = np.isfinite(v) & (v != 0)
        if r.nodata is not None and np.isfinite(r.nodata):
            ok &= v != r.nodata
        v = v[ok]
        if v.size == 0:
            continue
        med, p99 = np.percentile(v, [50, 99])
        out.append(SampleStats(r.token, r.dtype, int(v.size), float(med), float(p99)))
    return out
