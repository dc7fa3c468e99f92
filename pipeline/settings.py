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

KNOWN_DETECTORS = ("fire",)


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

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Settings:
        data = dict(data)
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        if "fire" in data:
            fire = data["fire"]
            fire_fields = {f.name for f in dataclasses.fields(FireSettings)}
            bad = sorted(set(fire) - fire_fields)
            if bad:
                raise ConfigError(f"unknown [fire] setting(s): {', '.join(bad)}")
            data["fire"] = FireSettings(**fire)
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
