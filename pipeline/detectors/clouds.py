"""The cloud screen: clear / cloud / cloud-shadow classes on a coarse grid, first on every tile.

Two models (``[clouds] model``):

* ``student`` (default): ``models/cloud_student.onnx``, a small CNN distilled from the
  ukis-csmask U-Nets, on a ~60 m grid (block means of the working grid), 4 bands (B02 B03 B04
  B08) or 6 (+ B11 B12).  Real time on the CPU.
* ``accurate``: the ukis-csmask 1.0.0 teacher itself (DLR, Apache-2.0; EfficientNet-b4 U-Nets
  trained on CloudSEN12+ and SPARCS) on a ~30 m grid, the 4- or 6-band model of the scene's
  product level (L1C top of atmosphere, L2A surface).  About 130 times slower on the CPU: for
  payloads with a GPU.  Its ONNX files come from the PyPI package (extra ``clouds-accurate``)
  and are checked against ``models/manifest.json`` like every other model.

Both run through the project's own :class:`~pipeline.core.onnx_models.OnnxModel` (manifest
sha256, golden copy, watchdog, dual execution).  Blocks are aligned to the scene grid, so a
pixel's class does not depend on the tiling.  The result is handed to the detectors of the
tile as ``TileData.sky`` (:mod:`pipeline.core.sky`); see ``docs/clouds.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..core import sky
from ..core.ingest import TileData
from ..core.onnx_models import OnnxModel, detector_model
from ..core.scene import Grid, Scene
from ..errors import ModelError
from ..settings import Settings
from . import cloud_models as cm

log = logging.getLogger(__name__)

STUDENT_MODEL = "cloud_student"
#: Band roles the screen needs; swir16 and swir22 are used when both are there (6-band path).
ROLES = ("blue", "green", "red", "nir")
OPTIONAL_ROLES = ("swir16", "swir22")
#: Context read around a tile core, in metres.  The student's receptive field spans about 58
#: cells of 60 m, but its weights fade fast: with 640 m of context (64 px at 10 m, the default
#: tile overlap, so no extra reading) a 128 px tiling and a whole-scene run of the Virginia
#: sample differ in 0.03 % of the pixels, with 960 m in none (tests/test_clouds.py).
CONTEXT_M = 640.0


def product_level(scene: Scene, configured: str | None) -> str:
    """``l1c`` (top of atmosphere) or ``l2a`` (surface reflectance) for the teacher."""
    if configured:
        return configured
    name = scene.profile.name.lower()
    return "l2a" if ("l2a" in name or name == "sen2ships") else "l1c"


class CloudScreen:
    """Per tile: bands -> sky classes over the read window (see the module docstring)."""

    name = "clouds"
    roles = ROLES

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mode = settings.clouds.model
        self._models: dict[str, OnnxModel] = {}
        if self.mode == "student":
            self._models[STUDENT_MODEL] = detector_model(STUDENT_MODEL, settings)
        self._logged: set[str] = set()

    @property
    def models(self) -> Sequence[OnnxModel]:
        return tuple(self._models.values())

    @property
    def model_name(self) -> str:
        return ", ".join(self._models) or self.mode

    def _roles(self, scene: Scene) -> list[str]:
        """The 6-band path when both SWIR bands are there, else the 4-band path."""
        return [*ROLES, *(OPTIONAL_ROLES if scene.has_roles(*OPTIONAL_ROLES) else ())]

    def band_names(self, scene: Scene) -> list[str]:
        return [scene.band_for_role(r).name for r in self._roles(scene)]

    def context_px(self, grid: Grid) -> int:
        return int(np.ceil(CONTEXT_M / grid.ground_res_m))

    def _teacher(self, scene: Scene, roles: Sequence[str]) -> tuple[OnnxModel, cm.TeacherSpec]:
        spec = cm.select_teacher(roles, product_level(scene, self.settings.clouds.product_level))
        if spec.name not in self._models:
            self._models[spec.name] = detector_model(spec.name, self.settings)
        return self._models[spec.name], spec

    def screen(self, data: TileData, scene: Scene) -> np.ndarray:
        """uint8 sky classes over the tile's read window (0 clear, 1 cloud, 2 shadow, 255
        unknown where too little input was valid)."""
        roles = self._roles(scene)
        bands = {r: data.bands[scene.band_for_role(r).name] for r in roles}
        target = cm.TEACHER_GRID_M if self.mode == "accurate" else cm.STUDENT_GRID_M
        factor = cm.grid_factor(scene.grid.ground_res_m, target)
        # align the blocks to the scene grid: pad the window's top and left edges (edge
        # replication) so that it starts on a block boundary.  A window that does not start on
        # one starts inside the scene, so the padded blocks lie in the tile's context margin,
        # never in its core; replicating validity too keeps the all-valid fast path
        read = data.tile.read
        top, left = int(read.row_off) % factor, int(read.col_off) % factor
        valid = data.valid
        if top or left:
            pad = ((top, 0), (left, 0))
            bands = {r: np.pad(a, pad, mode="edge") for r, a in bands.items()}
            valid = np.pad(valid, pad, mode="edge")
        try:
            if self.mode == "accurate":
                model, spec = self._teacher(scene, roles)
                mask = cm.run_teacher(model.run, bands, spec.product_level, factor, valid, spec)
            else:
                mask = cm.run_student(self._models[STUDENT_MODEL].run, bands, factor, valid)
        except cm.CloudModelError as exc:
            raise ModelError(f"cloud screen: {exc}") from None
        classes = mask.on_grid()[top:, left:]
        classes[~data.valid] = sky.UNKNOWN
        return np.ascontiguousarray(classes, dtype=np.uint8)
