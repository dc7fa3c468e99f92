"""What the engine expects of a detector, and the registry of detectors by name.

A detector is constructed with the run's :class:`~pipeline.settings.Settings`, loads its ONNX
model(s) once, and then, per tile, turns a :class:`~pipeline.core.ingest.TileData` into connected
:class:`~pipeline.core.vectorise.Component` pieces in scene pixel coordinates.  The engine merges
pieces cut by tile edges and calls :meth:`Detector.finalise` once per merged object.

Two optional methods (not part of the protocol, looked up with :func:`skip_reason` and
:func:`finalises_scene`):

* ``skip_reason(scene) -> str | None``: why the detector has nothing to look at in this scene
  although its bands are there (the crop detector without a cropland layer covering the scene).
  The engine then does not run it and records ``"skipped: <reason>"`` as its status.
* ``finalise_scene(merged, scene) -> list[Detection]``: judge all merged objects of the scene at
  once (the crop detector compares each parcel with the other parcels of the scene).  It replaces
  the per-object :meth:`Detector.finalise`; the streaming path holds such a detector's objects
  until the end of the strip.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from ..settings import Settings
    from .ingest import TileData
    from .onnx_models import OnnxModel
    from .results import Detection
    from .scene import Grid, Scene
    from .vectorise import Component


class Detector(Protocol):
    #: detector name used in settings (``fire``, ``ships``, ``crop``)
    name: str
    #: detection class it emits (``fire``, ``ship``, ``crop_stress``)
    cls: str
    #: band roles that must be present for the detector to run (see pipeline.sensors)
    roles: tuple[str, ...]
    #: effective thresholds (manifest values with settings overrides applied)
    thresholds: Mapping[str, float]
    #: what becomes of a detection whose footprint lies mostly under cloud or shadow:
    #: ``"drop"`` it, or ``"flag"`` it (kept, with its ``cloud_fraction``)
    under_cloud: str

    def __init__(self, settings: Settings) -> None:
        """Load the model(s) once; thresholds = manifest values with settings overrides."""
        ...

    @property
    def models(self) -> Sequence[OnnxModel]:
        """Every ONNX model the detector runs (for run.json provenance)."""
        ...

    def band_names(self, scene: Scene) -> list[str]:
        """Scene band names to read for each tile."""
        ...

    def context_px(self, grid: Grid) -> int:
        """Pixels of context needed around a tile core (the engine's overlap is at least this)."""
        ...

    def detect(self, data: TileData, scene: Scene) -> list[Component]:
        """Objects whose pixels lie in the tile core."""
        ...

    def finalise(self, comp: Component, scene: Scene) -> Detection | None:
        """A merged object -> a WGS84 detection with its measures (None to drop it)."""
        ...


class SkyScreen(Protocol):
    """What the engine expects of the cloud screen: it runs first on every tile and returns the
    sky classes of the tile's read window (:mod:`pipeline.core.sky`), which the detectors of
    the tile then see as ``TileData.sky``."""

    name: str
    #: band roles that must be present for the screen to run
    roles: tuple[str, ...]

    def __init__(self, settings: Settings) -> None: ...

    @property
    def models(self) -> Sequence[OnnxModel]: ...

    @property
    def model_name(self) -> str:
        """The model that classified the sky (for run.json and the products)."""
        ...

    def band_names(self, scene: Scene) -> list[str]: ...

    def context_px(self, grid: Grid) -> int: ...

    def screen(self, data: TileData, scene: Scene) -> np.ndarray:
        """uint8 sky classes over the tile's read window (0 clear, 1 cloud, 2 shadow, 255
        unknown)."""
        ...


#: screen name -> "module:class" (the cloud screen, see :data:`DETECTOR_TYPES`)
SCREEN_TYPES: dict[str, str] = {"clouds": "pipeline.detectors.clouds:CloudScreen"}


def skip_reason(detector: Detector, scene: Scene) -> str | None:
    """The detector's optional ``skip_reason(scene)``: None (run it) when it has none."""
    fn = getattr(detector, "skip_reason", None)
    return fn(scene) if fn is not None else None


def finalises_scene(detector: Detector) -> bool:
    """True when the detector judges a scene's objects together (``finalise_scene``)."""
    return callable(getattr(detector, "finalise_scene", None))


#: detector name -> "module:class", imported on first use (heavy model code loads lazily).  The
#: detectors live in :mod:`pipeline.detectors`, a room above core: core finds them by name here
#: and never imports them statically.
DETECTOR_TYPES: dict[str, str] = {
    "fire": "pipeline.detectors.fire:FireDetector",
    "ships": "pipeline.detectors.ships:ShipDetector",
    "crop": "pipeline.detectors.crop:CropDetector",
}


def detector_type(name: str) -> type[Detector]:
    """The detector class registered under ``name``."""
    module, _, cls = DETECTOR_TYPES[name].partition(":")
    kind: type[Detector] = getattr(importlib.import_module(module), cls)
    return kind


def screen_type(name: str) -> type[SkyScreen]:
    """The screen class registered under ``name``."""
    module, _, cls = SCREEN_TYPES[name].partition(":")
    kind: type[SkyScreen] = getattr(importlib.import_module(module), cls)
    return kind
