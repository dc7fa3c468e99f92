"""The scene engine: ingest -> detect -> vectorise -> merge, tile by tile.

Each stage is usable alone (``SceneReader.read``, ``FireDetector.detect``,
``merge_components``, ``FireDetector.finalise``); :func:`run_scene` wires them together,
records per-tile failures and goes on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .onnx_models import OnnxModel

import numpy as np

from ..errors import EotriageError, InputError
from ..settings import Settings
from . import sky
from .acquisition import scene_acquisition
from .checkpoint import CheckpointWriter, Restored, TileRecord, read_checkpoint
from .detector import (
    SCREEN_TYPES,
    Detector,
    SkyScreen,
    detector_type,
    finalises_scene,
    screen_type,
    skip_reason,
)
from .env import Env
from .ingest import SceneReader, TileData
from .prefetch import read_tiles
from .results import Detection, SceneResult, TileFailure
from .scene import Scene, open_scene
from .tiling import Tile, count_tiles, iter_tiles
from .vectorise import SUM, Component, merge_components
from .watchdog import Watchdog

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


def build_detectors(scene: Scene, settings: Settings) -> tuple[list[Detector], dict[str, str]]:
    """Detectors that can run on this scene, and a status line for each enabled one
    (``"ran"`` or ``"skipped: <why>"``: bands missing, or the detector's own
    :func:`~pipeline.core.detector.skip_reason`; the cloud screen is built by
    :meth:`Stages.build`).

    Raises :class:`InputError` when none of the enabled detectors can run and at least one lacks
    its bands; detectors skipped only for their own reason leave an empty list.
    """
    detectors, _screen, status, _ = _build(scene, settings, with_screen=False)
    return detectors, status


def _missing(scene: Scene, roles: Sequence[str]) -> str | None:
    """Why a stage cannot run on this scene (its bands are missing or unreadable), or None."""
    missing = [r for r in roles if not scene.has_roles(r)]
    if not missing:
        return None
    want = [scene.profile.role_to_band().get(r, r) for r in missing]
    broken = [b for b in want if b in scene.unreadable]
    why = f" (unreadable: {'; '.join(scene.unreadable[b] for b in broken)})" if broken else ""
    return f"needs band(s) {', '.join(want)}{why}"


def _build(
    scene: Scene, settings: Settings, with_screen: bool = True
) -> tuple[list[Detector], SkyScreen | None, dict[str, str], set[str]]:
    """(detectors ready to run, the cloud screen, a status per enabled stage, the detectors
    that do not apply to this scene by design: skipped by their own ``skip_reason``, which
    leaves the scan complete, unlike missing bands)."""
    ready: list[Detector] = []
    screen: SkyScreen | None = None
    status: dict[str, str] = {}
    not_applicable: set[str] = set()
    missing_all: list[str] = []
    for name in settings.detectors:
        if name in SCREEN_TYPES:
            if not with_screen:
                continue
            kind_s = screen_type(name)
            why = _missing(scene, kind_s.roles)
            if why is None:
                screen = kind_s(settings)
                status[name] = "ran"
            else:
                status[name] = f"skipped: {why}"
            continue
        kind = detector_type(name)
        why = _missing(scene, kind.roles)
        if why is not None:
            status[name] = f"skipped: {why}"
            missing_all.append(f"{name} {why}")
            continue
        det = kind(settings)
        reason = skip_reason(det, scene)
        if reason:
            status[name] = f"skipped: {reason}"
            not_applicable.add(name)
            continue
        ready.append(det)
        status[name] = "ran"
    if not ready and screen is None and missing_all:
        raise InputError(
            f"{scene.path}: missing band(s): {'; '.join(missing_all) or 'no detector enabled'} "
            f"(scene has {', '.join(scene.band_names)})"
        )
    return ready, screen, status, not_applicable


@dataclass
class Stages:
    """The detectors of one scene or strip and what they need, wired once for both the file
    path (:func:`run_scene`) and the streaming path (:class:`~pipeline.core.stream.Triage`)."""

    detectors: list[Detector]
    #: "ran" or "skipped: <why>" per enabled detector (the cloud screen included)
    status: dict[str, str]
    #: bands every tile must read
    band_names: list[str]
    #: tile overlap: the configured one, raised to the detectors' widest context
    overlap: int
    #: the cloud screen, run first on every tile (None when disabled or its bands are missing)
    screen: SkyScreen | None = None
    #: detections under cloud dropped / flagged, per class (see :meth:`finalise`)
    obscured_max: float = 0.5
    under_cloud: dict[str, dict[str, int]] = field(default_factory=dict)
    #: detectors skipped by their own ``skip_reason`` (they do not apply to this scene)
    not_applicable: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, scene: Scene, settings: Settings) -> Stages:
        detectors, screen, status, not_applicable = _build(scene, settings)
        stages: list[Any] = [*detectors, *([screen] if screen is not None else [])]
        band_names = sorted({b for d in stages for b in d.band_names(scene)})
        context = max((d.context_px(scene.grid) for d in stages), default=0)
        overlap = max(settings.overlap, context)
        if overlap != settings.overlap:
            log.info(
                "overlap raised from %d to %d px for the detectors' context",
                settings.overlap,
                overlap,
            )
        return cls(
            detectors,
            status,
            band_names,
            overlap,
            screen,
            settings.clouds.obscured_max,
            not_applicable=not_applicable,
        )

    @property
    def models(self) -> list[OnnxModel]:
        """Every model the stages run, the cloud screen's first."""
        out = list(self.screen.models) if self.screen is not None else []
        return out + [m for d in self.detectors for m in d.models]

    def finalise(self, merged: Sequence[Component], scene: Scene) -> list[Detection]:
        """Merged objects -> WGS84 detections (each by the detector of its class; a detector
        with ``finalise_scene`` gets all its objects in one call).

        Where the cloud screen looked, each detection gets ``cloud_fraction``, the share of its
        footprint under cloud or shadow; at ``obscured_max`` and above its detector's policy
        applies: ``drop`` it or ``flag`` it (kept, ``under_cloud: true``)."""
        by_cls = {d.cls: d for d in self.detectors}
        out = []
        whole: dict[str, list[Component]] = {}
        for comp in merged:
            detector = by_cls[comp.cls]
            if finalises_scene(detector):
                whole.setdefault(comp.cls, []).append(comp)
                continue
            det = detector.finalise(comp, scene)
            if det is not None:
                out.extend(self._sky_policy([(comp, det)], by_cls))
        for cls, comps in whole.items():
            # a detector that judges the scene's objects together (crop stress) applies the
            # sky itself: its cells under cloud or shadow are not seen (TileData.sky)
            out.extend(by_cls[cls].finalise_scene(comps, scene))  # type: ignore[attr-defined]
        return out

    def _sky_policy(
        self, pairs: Sequence[tuple[Component, Detection]], by_cls: Mapping[str, Detector]
    ) -> list[Detection]:
        """Each detection with its ``cloud_fraction`` where the cloud screen looked; under
        cloud (``obscured_max``) it is dropped or flagged by its detector's policy."""
        out = []
        for comp, det in pairs:
            checked = float(comp.stats.get(sky.STAT_PX, 0.0))
            if self.screen is None or checked <= 0:
                out.append(det)
                continue
            frac = float(comp.stats.get(sky.STAT_OBSCURED, 0.0)) / checked
            under = frac >= self.obscured_max
            policy = getattr(by_cls[comp.cls], "under_cloud", "flag")
            tally = self.under_cloud.setdefault(det.cls, {"dropped": 0, "flagged": 0})
            if under and policy == "drop":
                tally["dropped"] += 1
                continue
            measures = {**det.measures, "cloud_fraction": round(frac, 3)}
            if under:
                tally["flagged"] += 1
                measures["under_cloud"] = True
            out.append(dataclasses.replace(det, measures=measures))
        return out

    def models_info(self) -> dict[str, dict[str, str]]:
        """name -> version, sha256 and execution providers of every model run."""
        return {
            m.info.name: {
                "version": m.info.version,
                "sha256": m.info.sha256,
                "providers": ",".join(m.providers),
            }
            for m in self.models
        }


def sort_detections(dets: Sequence[Detection]) -> tuple[Detection, ...]:
    """Highest score first; ties by class and tile (deterministic)."""
    return tuple(sorted(dets, key=lambda d: (-d.score, d.cls, str(d.measures.get("tiles", "")))))


def run_scene(
    scene: Scene | str | Path,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> SceneResult:
    """Run every enabled detector over a scene, tile by tile, in bounded memory.

    A tile that fails, or runs past ``settings.robustness.tile_timeout_s`` (the watchdog), is
    recorded in :attr:`SceneResult.failures` and the scene goes on.  With ``checkpoint``, each
    finished tile is recorded there (fsynced) and, with ``resume``, tiles already recorded are
    not run again (see :mod:`pipeline.core.checkpoint`).  Raises :class:`InputError` only when the
    scene cannot be processed at all (or the checkpoint belongs to another run).
    """
    settings = settings or Settings()
    if not isinstance(scene, Scene):
        scene = open_scene(scene, sensor=settings.sensor, scaling=settings.scaling)
    timings: dict[str, float] = defaultdict(float)
    t_start = time.perf_counter()
    with Env(settings):
        t0 = time.perf_counter()
        stages = Stages.build(scene, settings)
        detectors, status = stages.detectors, stages.status
        band_names, overlap = stages.band_names, stages.overlap
        # models are cached across scenes: this scene reports its own events (and the load's)
        marks = {id(m): m.event_mark() for m in stages.models}
        timings["load_models"] = time.perf_counter() - t0
        grid = scene.grid
        total = count_tiles(grid.width, grid.height, settings.tile_size)
        failures: list[TileFailure] = []
        components: dict[str, list[Component]] = {d.name: [] for d in detectors}
        invalid: dict[str, int] = dict.fromkeys(band_names, 0)
        repaired: dict[str, int] = dict.fromkeys(band_names, 0)
        looked: dict[str, int] = {d.name: 0 for d in detectors}
        read_px = 0
        tiles = list(iter_tiles(grid.width, grid.height, settings.tile_size, overlap))
        header = checkpoint_header(scene, settings, stages, overlap)
        tally = sky.SkyTally(stages.screen.model_name if stages.screen is not None else "")
        sky_map = sky.SkyMap.for_grid(grid.width, grid.height) if stages.screen else None
        restored = Restored()
        if checkpoint is not None and resume:
            restored = read_checkpoint(checkpoint, header)
            for old in restored.tiles.values():
                read_px += _absorb(old, components, invalid, repaired, looked, tally)
            if restored.tiles:
                log.info(
                    "%s: resuming: %d of %d tiles already done",
                    scene.name,
                    len(restored.tiles),
                    total,
                )
        writer = CheckpointWriter(checkpoint, header, restored) if checkpoint is not None else None
        done = len(restored.tiles)
        # no stage to run (each detector skipped for its own reason): nothing to read
        running = bool(detectors) or stages.screen is not None
        todo = [t for t in tiles if t.id not in restored.tiles] if running else []
        limit = settings.robustness.tile_timeout_s
        try:
            with SceneReader(scene, settings.robustness) as reader:
                for item in read_tiles(reader, todo, band_names, ahead=settings.prefetch):
                    rec = run_tile(item.tile, item.data, scene, stages, timings, failures, limit)
                    if rec is not None:
                        read_px += _absorb(rec, components, invalid, repaired, looked, tally)
                        if sky_map is not None and rec.sky_classes is not None:
                            sky_map.add(rec.sky_classes, item.tile.read, item.tile.core)
                        if writer is not None:
                            writer.add(rec)
                    done += 1
                    if progress is not None:
                        progress(done, total)
        finally:
            if writer is not None:
                writer.close()
        t0 = time.perf_counter()
        detections: list[Detection] = []
        for det in detectors:
            detections += stages.finalise(merge_components(components[det.name]), scene)
        timings["vectorise"] = time.perf_counter() - t0
    problems: list[str] = [
        f"band {b} left out: {msg}" for b, msg in sorted(scene.unreadable.items())
    ]
    if failures and len(failures) == total:
        problems.append(f"all {total} tiles failed; first cause: {failures[0].cause}")
    for name, n in invalid.items():
        if read_px and n >= read_px:
            src = scene.band(name)
            problems.append(
                f"{src.label}: band {name} has no valid samples (all NaN, nodata or zero)"
            )
    timings["total"] = time.perf_counter() - t_start
    models = stages.models_info()
    info = {
        "path": str(Path(scene.path).resolve()),
        "sensor": scene.profile.name,
        "sensor_reason": scene.sensor_reason,
        "scaling": scene.scaling.describe(),
        #: the --scaling text that reproduces it, and why it was chosen
        "scaling_spec": scene.scaling.spec(),
        "scaling_reason": scene.scaling.reason,
        "bands": {b.name: b.label for b in scene.bands},
        "grid": {
            "width": grid.width,
            "height": grid.height,
            "crs": grid.crs.to_string(),
            "transform": list(grid.transform)[:6],
            "ground_res_m": round(grid.ground_res_m, 3),
        },
        "input_bytes": scene.input_bytes,
        "tile_size": settings.tile_size,
        "overlap": overlap,
        "pixels_processed": read_px,
        "thresholds": {d.name: d.thresholds for d in detectors},
        #: bands each detector reads (its usable samples decide what it looked at)
        "bands_used": {d.name: list(d.band_names(scene)) for d in detectors},
        "resumed_tiles": len(restored.tiles),
        #: samples flagged unusable per band (NaN, nodata, zero fill, impossible, stuck lines)
        "invalid_samples": dict(invalid),
        #: impossible / stuck samples rebuilt from their neighbours (isolated or thin lines)
        "repaired_samples": dict(repaired),
        "model_events": [e for m in stages.models for e in m.events_since(marks.get(id(m), 0))],
    }
    info.update(_acquisition_info(scene))
    info["not_applicable"] = sorted(stages.not_applicable)
    if stages.screen is not None:
        info["clouds"] = {
            **tally.summary(),
            "model": stages.screen.model_name,
            "under_cloud": stages.under_cloud,
        }
    return SceneResult(
        scene=scene.name,
        detections=sort_detections(detections),
        failures=tuple(failures),
        problems=tuple(problems),
        tiles_total=total,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        models=models,
        detectors=status,
        info=info,
        sky_map=sky_map,
        looked_px=looked,
        scene_px=grid.width * grid.height,
    )


def _acquisition_info(scene: Scene) -> dict[str, Any]:
    """When and where the scene was acquired (metadata, sidecar or file name; never the
    processing time: unknown stays ``None``)."""
    try:
        acq = scene_acquisition(scene.path)
    except InputError as exc:
        return {"acquired_utc": None, "acquired_source": f"unknown ({exc})"}
    return {
        "acquired_utc": acq.utc,
        "acquired_source": acq.source,
        "places": list(acq.places),
        "scene_kind": acq.kind,
    }


def _absorb(
    rec: TileRecord,
    components: dict[str, list[Component]],
    invalid: dict[str, int],
    repaired: dict[str, int],
    looked: dict[str, int],
    tally: sky.SkyTally | None = None,
) -> int:
    """Add one tile's record to the scene totals; returns its pixel count."""
    if tally is not None and rec.sky:
        tally.add(rec.tile, rec.sky)
    for name in looked:
        # a record of an older checkpoint has no "looked": every core pixel counts
        looked[name] += rec.looked.get(name, rec.read_px)
    for name, comps in rec.components.items():
        components.setdefault(name, []).extend(comps)
    for name, n in rec.invalid.items():
        invalid[name] = invalid.get(name, 0) + n
    for name, n in rec.repaired.items():
        repaired[name] = repaired.get(name, 0) + n
    return rec.read_px


def run_tile(
    tile: Tile,
    read: Callable[[], tuple[TileData, float]],
    scene: Scene,
    stages: Stages,
    timings: dict[str, float],
    failures: list[TileFailure],
    limit_s: float | None,
) -> TileRecord | None:
    """One tile through the cloud screen and every detector under a watchdog of ``limit_s``
    seconds.

    ``read`` returns the tile's data and the seconds spent reading.  The screen's sky classes
    go to the detectors (``TileData.sky``), and each object they find gets the share of its
    pixels under cloud or shadow (statistics :data:`~pipeline.core.sky.STAT_PX` and
    :data:`~pipeline.core.sky.STAT_OBSCURED`).  Returns the tile's record, or None after
    appending a :class:`TileFailure` (error, bug or watchdog).
    """
    with Watchdog(limit_s, f"{scene.name} tile {tile.id}") as wd:
        try:
            t0 = time.perf_counter()
            data, read_s = read()
            t1 = time.perf_counter()
            timings["ingest"] = timings.get("ingest", 0.0) + read_s
            timings["ingest_wait"] = timings.get("ingest_wait", 0.0) + t1 - t0
            counts: dict[str, int] = {}
            if stages.screen is not None:
                screen = stages.screen
                own = data.for_bands(screen.band_names(scene)) if data.band_invalid else data
                classes = screen.screen(own, scene)
                data = dataclasses.replace(data, sky=classes)
                counts = sky.core_counts(classes, tile.core_in_read)
                timings[f"detect_{screen.name}"] = (
                    timings.get(f"detect_{screen.name}", 0.0) + time.perf_counter() - t1
                )
            comps: dict[str, list[Component]] = {}
            looked: dict[str, int] = {}
            core = data.tile.core_in_read
            for det in stages.detectors:
                wd.check()
                t2 = time.perf_counter()
                # a fault in a band this detector does not read must not mask its pixels
                own = data.for_bands(det.band_names(scene)) if data.band_invalid else data
                looked[det.name] = int(
                    np.count_nonzero(data.looked_at(det.band_names(scene))[core])
                )
                found = list(det.detect(own, scene))
                comps[det.name] = [_with_sky(c, data.sky, tile) for c in found]
                timings[f"detect_{det.name}"] = (
                    timings.get(f"detect_{det.name}", 0.0) + time.perf_counter() - t2
                )
            wd.check()  # a tile past its limit is abandoned, even if its last stage finished
            timings["detect"] = timings.get("detect", 0.0) + time.perf_counter() - t1
            return TileRecord(
                tile.id,
                comps,
                dict(data.invalid_in_core),
                int(tile.core.width * tile.core.height),
                dict(data.repaired_in_core),
                sky=counts,
                sky_classes=data.sky,
                looked=looked,
            )
        except Exception as exc:  # a bug must not lose the other tiles' results either
            if wd.expired:  # whatever the abandoned stage raised, the cause is the watchdog
                cause = str(wd.error())
            elif isinstance(exc, EotriageError):
                cause = str(exc)
            else:
                cause = f"internal error: {type(exc).__name__}: {exc}"
                log.exception("%s tile %s: internal error", scene.name, tile.id)
            failures.append(_failure(tile, cause))
            log.warning("%s tile %s failed: %s", scene.name, tile.id, cause)
            return None


def _with_sky(comp: Component, classes: Any, tile: Tile) -> Component:
    """The component with its checked and obscured pixel counts (summed across tile edges)."""
    if classes is None:
        return comp
    checked, obscured = sky.component_sky(comp.geometry, classes, tile.read)
    return dataclasses.replace(
        comp,
        stats={**comp.stats, sky.STAT_PX: float(checked), sky.STAT_OBSCURED: float(obscured)},
        rules={**comp.rules, sky.STAT_PX: SUM, sky.STAT_OBSCURED: SUM},
    )


def checkpoint_header(
    scene: Scene, settings: Settings, stages: Stages, overlap: int
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: scene, layout, models and thresholds."""
    conf = {
        name: dataclasses.asdict(getattr(settings, name))
        for name in ("clouds", "fire", "ships", "crop", "robustness")
    }
    return json.loads(
        json.dumps(
            {
                "scene": str(Path(scene.path).resolve()),
                "grid": [scene.grid.width, scene.grid.height],
                "tile_size": settings.tile_size,
                "overlap": overlap,
                "detectors": [d.name for d in stages.detectors]
                + ([stages.screen.name] if stages.screen is not None else []),
                "models": {m.info.name: m.info.sha256 for m in stages.models},
                "settings": conf,
            },
            default=str,
            sort_keys=True,
        )
    )


def _failure(tile: Tile, cause: str) -> TileFailure:
    w = tile.core
    return TileFailure(
        tile.id, (int(w.col_off), int(w.row_off), int(w.width), int(w.height)), cause
    )
