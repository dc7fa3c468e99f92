"""Streaming triage: feed line blocks as the imager delivers them, get detections as they settle.

A push-broom imager delivers blocks of lines per band, bands at different resolutions and with
small line offsets between them.  :class:`Triage` keeps, per band, only the lines that the next
tile row still needs; as soon as every band has delivered the lines of a tile row's read window
(core plus overlap), that row runs through the same detectors as ``run_scene``.  Objects that do
not touch the bottom edge of the processed rows cannot change any more and are emitted at once;
objects that may continue into the next row wait for it.  Tiling, tile read windows and merging
are exactly those of the file path, so a scene fed as line blocks gives the same detections as
:func:`pipeline.run_scene` on the file.

Memory is bounded by the tile row's read window (``tile_size + 2 * overlap`` lines per band plus
the block being fed), not by the length of the strip.

Threading: one ``Triage`` is used from one thread at a time (the feeding thread); detection runs
inside :meth:`Triage.feed`.  Run it in a worker thread fed from a queue to decouple it from the
sensor's receive loop (see docs/embedding.md).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from ..errors import InputError
from ..sensors import Scaling, get_profile
from ..settings import RobustnessSettings, Settings
from . import sky
from .detector import Detector, finalises_scene
from .engine import Stages, run_tile, sort_detections
from .env import Env
from .ingest import SceneReader
from .prefetch import timed_read
from .results import Detection, SceneResult, TileFailure
from .scene import BandSource, Grid, Scene
from .tiling import Tile, read_span
from .vectorise import Component, merge_components

log = logging.getLogger(__name__)

#: band height used while the strip's length is unknown (clipping never reaches it)
_OPEN_END = 1 << 40


@dataclass(frozen=True)
class StripLayout:
    """What the payload knows about the strip before the first line arrives.

    ``transform`` and ``crs`` geolocate line 0 of the working grid (the finest band); a band
    with ``factor`` 2 has pixels twice as large (20 m bands on a 10 m grid).
    """

    name: str
    sensor: str
    crs: CRS
    transform: Affine
    width: int
    #: band name -> resolution factor relative to the working grid (1, 2, 6, ...)
    bands: Mapping[str, int]
    scaling: Scaling
    dtype: str = "uint16"
    nodata: float | None = None
    #: expected strip length in lines; only used for the ground-resolution estimate at its centre
    expected_lines: int = 10_000
    #: ground sampling distance override in metres (default: from the CRS at the strip centre)
    ground_res_m: float | None = None

    @classmethod
    def from_scene(cls, scene: Scene) -> StripLayout:
        """The layout of a scene file, so that replaying it gives the file path's results."""
        g = scene.grid
        bands = {}
        for b in scene.bands:
            f = b.transform.a / g.transform.a
            if abs(f - round(f)) > 1e-6:
                raise InputError(f"{scene.path}: band {b.name} grid is not an integer multiple")
            bands[b.name] = int(round(f))
        dtypes = {b.dtype for b in scene.bands}
        nodatas = {b.nodata for b in scene.bands}
        return cls(
            name=scene.name,
            sensor=scene.profile.name,
            crs=g.crs,
            transform=g.transform,
            width=g.width,
            bands=bands,
            scaling=scene.scaling,
            dtype=dtypes.pop() if len(dtypes) == 1 else "float32",
            nodata=nodatas.pop() if len(nodatas) == 1 else None,
            expected_lines=g.height,
            ground_res_m=g.ground_res_m,
        )


@dataclass(frozen=True)
class StreamEvent:
    """A detection that can no longer change, with when its evidence was complete."""

    detection: Detection
    #: perf_counter time at which the block completing the detection's evidence was fed
    evidence_complete_s: float
    #: perf_counter time at which the detection was emitted (after vectorising it)
    emitted_s: float
    #: last working-grid line that the detection's evidence needed
    last_line: int
    #: alert packet bytes, when an alert encoder is set (see :class:`Triage`)
    packet: bytes | None = None
    packet_ready_s: float | None = None
    #: cloud fraction of the strip so far (None before the cloud screen classified anything,
    #: or when it does not run)
    cloud_fraction: float | None = None

    @property
    def latency_s(self) -> float:
        """Seconds from the last evidence line entering the API to the alert being ready."""
        end = self.packet_ready_s if self.packet_ready_s is not None else self.emitted_s
        return end - self.evidence_complete_s


AlertEncoder = Callable[[Detection, str], bytes]


class _LineBuffer:
    """The retained lines of one band; quacks like a rasterio dataset for ``read``."""

    def __init__(self, name: str, width: int, dtype: np.dtype[Any]) -> None:
        self.name = name
        self.width = width
        self.dtype = dtype
        self.first = 0  # band line index of rows[0]
        self.rows = np.zeros((0, width), dtype)
        self.end = 0  # lines received so far (contiguous from 0)

    def append(self, first_line: int, block: np.ndarray) -> None:
        if block.ndim != 2 or block.shape[1] != self.width:
            raise InputError(
                f"band {self.name}: block shape {block.shape} does not match the strip width "
                f"{self.width} of this band"
            )
        if first_line != self.end:
            raise InputError(
                f"band {self.name}: block starts at line {first_line}, expected line {self.end} "
                "(blocks of a band must arrive in order without gaps)"
            )
        self.rows = np.concatenate([self.rows, block.astype(self.dtype, copy=False)])
        self.end += block.shape[0]

    def drop_before(self, line: int) -> None:
        if line > self.first:
            cut = min(line - self.first, self.rows.shape[0])
            self.rows = self.rows[cut:].copy()
            self.first += cut

    def read(self, index: int, window: Window) -> np.ndarray:
        r0 = int(window.row_off) - self.first
        r1 = r0 + int(window.height)
        c0, c1 = int(window.col_off), int(window.col_off + window.width)
        if r0 < 0 or r1 > self.rows.shape[0]:
            raise InputError(
                f"band {self.name}: lines {int(window.row_off)}..{int(window.row_off) + r1 - r0}"
                f" not in the buffer ({self.first}..{self.end})"
            )
        return self.rows[r0:r1, c0:c1]

    def close(self) -> None:
        self.rows = self.rows[:0]


class _BufferReader(SceneReader):
    """SceneReader over line buffers instead of files (same resampling and scaling code)."""

    def __init__(
        self,
        scene: Scene,
        buffers: Mapping[str, _LineBuffer],
        robustness: RobustnessSettings | None = None,
    ) -> None:
        super().__init__(scene, robustness)
        self._buffers = buffers

    def _dataset(self, band: BandSource) -> Any:
        return self._buffers[band.name]

    def close(self) -> None:  # the buffers belong to the Triage
        pass


@dataclass
class _Carry:
    components: list[Component] = field(default_factory=list)
    evidence_s: float = 0.0
    last_line: int = 0


class Triage:
    """Streaming triage of one strip.

    Example::

        triage = Triage(layout, Settings(detectors=("fire",)))
        for band, first_line, block in sensor_blocks():     # any order across bands
            for event in triage.feed(band, first_line, block):
                send(event.packet)
        for event in triage.finish():
            send(event.packet)
        result = triage.result()                         # the whole strip as a SceneResult

    ``alert_encoder(detection, strip_name) -> bytes`` (optional) makes an alert packet per event;
    its time counts into the event's latency.
    """

    def __init__(
        self,
        layout: StripLayout,
        settings: Settings | None = None,
        alert_encoder: AlertEncoder | None = None,
    ) -> None:
        self.layout = layout
        self.settings = settings or Settings()
        self.alert_encoder = alert_encoder
        profile = get_profile(layout.sensor)
        unknown = [b for b in layout.bands if b not in profile.band_names]
        if unknown:
            raise InputError(
                f"strip {layout.name}: band(s) {', '.join(unknown)} not in sensor profile "
                f"{profile.name} ({', '.join(profile.band_names)})"
            )
        self._scene = self._make_scene(_OPEN_END)
        with Env(self.settings):
            self.stages = Stages.build(self._scene, self.settings)
        self.detectors: list[Detector] = self.stages.detectors
        self.status = self.stages.status
        if not self.detectors:
            why = "; ".join(f"{k} {v}" for k, v in self.status.items())
            raise InputError(f"strip {layout.name}: no detector can run ({why})")
        #: classes judged over the whole strip at once: held until its end
        self._whole = {d.cls for d in self.detectors if finalises_scene(d)}
        needed = self.stages.band_names
        self.band_names = needed
        self.overlap = self.stages.overlap
        self._buffers = {
            b: _LineBuffer(b, math.ceil(layout.width / layout.bands[b]), np.dtype(layout.dtype))
            for b in needed
        }
        self._ready_s: dict[str, list[tuple[int, float]]] = {b: [] for b in needed}
        self._next_row = 0
        self._carry = _Carry()
        self._detections: list[Detection] = []
        self._failures: list[TileFailure] = []
        self._looked: dict[str, int] = {d.name: 0 for d in self.detectors}
        self._timings: dict[str, float] = {"ingest": 0.0, "detect": 0.0, "vectorise": 0.0}
        self._finished = False
        self._lines_done = 0
        self._sky = sky.SkyTally(self.stages.screen.model_name if self.stages.screen else "")

    # ------------------------------------------------------------------ set-up

    def _make_scene(self, height: int) -> Scene:
        lay = self.layout
        profile = get_profile(lay.sensor)
        bands = []
        for name, f in lay.bands.items():
            bands.append(
                BandSource(
                    name=name,
                    role=profile.band(name).role,
                    path=Path(f"stream:{lay.name}/{name}"),
                    index=1,
                    width=math.ceil(lay.width / f),
                    height=height if height == _OPEN_END else math.ceil(height / f),
                    transform=lay.transform @ Affine.scale(f),
                    dtype=lay.dtype,
                    nodata=lay.nodata,
                )
            )
        res, centre = _ground_res(lay)
        grid = Grid(
            lay.width,
            height if height != _OPEN_END else lay.expected_lines,
            lay.transform,
            lay.crs,
            lay.ground_res_m or res,
            centre,
        )
        return Scene(
            name=lay.name,
            path=Path(f"stream:{lay.name}"),
            profile=profile,
            sensor_reason="given by the strip layout",
            scaling=lay.scaling,
            bands=tuple(bands),
            grid=grid,
            input_bytes=0,
        )

    # ------------------------------------------------------------------ feeding

    @property
    def lines_available(self) -> int:
        """Working-grid lines for which every needed band has delivered its samples."""
        return min(buf.end * self.layout.bands[b] for b, buf in self._buffers.items())

    def feed(self, band: str, first_line: int, block: np.ndarray) -> list[StreamEvent]:
        """Add ``block`` (lines x samples of ``band``, first line index in that band's own line
        numbering) and return the detections that became final.  Bands the enabled detectors do
        not use are accepted and ignored."""
        if self._finished:
            raise InputError(f"strip {self.layout.name}: feed() after finish()")
        if band not in self.layout.bands:
            raise InputError(f"strip {self.layout.name}: unknown band {band!r}")
        if band not in self._buffers:
            return []
        now = time.perf_counter()
        buf = self._buffers[band]
        buf.append(first_line, np.asarray(block))
        self._ready_s[band].append((buf.end * self.layout.bands[band], now))
        return self._process_ready(height=None)

    def finish(self, total_lines: int | None = None) -> list[StreamEvent]:
        """End of strip: process the last rows and emit everything still pending."""
        if self._finished:
            return []
        lines = self.lines_available if total_lines is None else int(total_lines)
        if lines <= 0:
            raise InputError(f"strip {self.layout.name}: no complete lines were fed")
        if lines > self.lines_available:
            raise InputError(
                f"strip {self.layout.name}: finish({lines}) but only {self.lines_available} "
                "lines have arrived in every band"
            )
        self._scene = self._make_scene(lines)
        events = self._process_ready(height=lines)
        self._finished = True
        events += self._emit(self._carry.components, self._carry.evidence_s, self._carry.last_line)
        self._carry = _Carry()
        for buf in self._buffers.values():
            buf.close()
        return events

    def close(self) -> None:
        """Free the buffers without emitting (use :meth:`finish` to keep the results)."""
        if not self._finished:
            self._finished = True
            for buf in self._buffers.values():
                buf.close()

    def __enter__(self) -> Triage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ processing

    def _row_span(self, row: int, height: int | None) -> tuple[int, int, int, int] | None:
        """(core start, core length, read lo, read hi) of a tile row, or None past the end."""
        t = self.settings.tile_size
        r0 = row * t
        if height is None:
            limit = _OPEN_END
            h = t
        else:
            if r0 >= height:
                return None
            limit = height
            h = min(t, height - r0)
        lo, hi = read_span(r0, h, t, self.overlap, limit)
        return r0, h, lo, hi

    def _evidence_time(self, line_end: int) -> float:
        """When the last band delivered line ``line_end - 1`` (the block completing it)."""
        latest = 0.0
        for marks in self._ready_s.values():
            latest = max(latest, next((s for end, s in marks if end >= line_end), marks[-1][1]))
        return latest

    def _process_ready(self, height: int | None) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        while True:
            span = self._row_span(self._next_row, height)
            if span is None:
                break
            r0, h, lo, hi = span
            if hi > self.lines_available:
                break
            with Env(self.settings):  # cv2 threads, malloc tuning (no GDAL reads here)
                events += self._process_row(self._next_row, r0, h, lo, hi, height)
            self._next_row += 1
        if height is None:
            self._drop_lines()
        return events

    def _drop_lines(self) -> None:
        """Forget lines no future tile row can read.

        The next row normally reads from ``core - overlap``; but if the strip ended within the
        next row, its read window would be shifted up to keep its size (as in the file path),
        so lines are kept back to ``lines_available - (tile_size + 2 * overlap)`` until enough
        lines have arrived to rule that out.
        """
        nxt = self._row_span(self._next_row, None)
        if nxt is None:
            return
        want = self.settings.tile_size + 2 * self.overlap
        keep_from = max(0, min(nxt[2], self.lines_available - want))
        for b, buf in self._buffers.items():
            buf.drop_before(keep_from // self.layout.bands[b])
            marks = self._ready_s[b]
            while len(marks) > 1 and marks[1][0] <= keep_from:
                marks.pop(0)

    def _process_row(
        self, row: int, r0: int, h: int, lo: int, hi: int, height: int | None
    ) -> list[StreamEvent]:
        t = self.settings.tile_size
        width = self.layout.width
        evidence = self._evidence_time(hi)
        new: list[Component] = []
        reader = _BufferReader(self._scene, self._buffers, self.settings.robustness)
        for col, c0 in enumerate(range(0, width, t)):
            w = min(t, width - c0)
            cc0, cc1 = read_span(c0, w, t, self.overlap, width)
            tile = Tile(row, col, Window(c0, r0, w, h), Window(cc0, lo, cc1 - cc0, hi - lo))
            rec = run_tile(
                tile,
                functools.partial(timed_read, reader, tile, self.band_names),
                self._scene,
                self.stages,
                self._timings,
                self._failures,
                self.settings.robustness.tile_timeout_s,
            )
            if rec is not None:
                for comps in rec.components.values():
                    new.extend(comps)
                if rec.sky:
                    self._sky.add(rec.tile, rec.sky)
                for name, n in rec.looked.items():
                    self._looked[name] = self._looked.get(name, 0) + n
        self._lines_done = r0 + h
        # Merge with what was carried from the row above; whatever touches this row's bottom
        # edge may still continue (unless this is the last row).
        t0 = time.perf_counter()
        merged = merge_components(self._carry.components + new)
        last_row = height is not None and r0 + h >= height
        # An object may continue below when one of its pieces comes from this row and touches
        # its tile's edge.  (Detectors keep geometry in their own pixel or cell units, so the
        # test uses the pieces' tile ids rather than coordinates; an object touching only a
        # left/right tile edge waits one row more than strictly needed.)
        row_tag = f"r{row:03d}"
        carry: list[Component] = []
        done: list[Component] = []
        for c in merged:
            open_below = not last_row and (
                c.cls in self._whole
                or (c.at_edge and any(t.startswith(row_tag) for t in c.tile_id.split(",")))
            )
            (carry if open_below else done).append(c)
        self._timings["vectorise"] += time.perf_counter() - t0
        events = self._emit(done, evidence, hi)
        self._carry = _Carry(carry, evidence, hi)
        return events

    def _emit(self, comps: list[Component], evidence_s: float, last_line: int) -> list[StreamEvent]:
        events = []
        for det in self.stages.finalise(comps, self._scene):
            emitted = time.perf_counter()
            packet = ready = None
            if self.alert_encoder is not None:
                packet = self.alert_encoder(det, self.layout.name)
                ready = time.perf_counter()
            self._detections.append(det)
            events.append(
                StreamEvent(det, evidence_s, emitted, last_line, packet, ready, self.cloud_fraction)
            )
        return events

    @property
    def cloud_fraction(self) -> float | None:
        """Cloud fraction of the lines processed so far (None without a cloud screen or before
        it classified anything)."""
        return sky.fractions(self._sky.totals())["cloud_fraction"] if self._sky.tiles else None

    def sky_summary(self) -> dict[str, Any] | None:
        """Cloud, shadow and clear fractions so far, per tile and for the strip."""
        return self._sky.summary() if self.stages.screen is not None else None

    # ------------------------------------------------------------------ results

    def result(self) -> SceneResult:
        """Everything emitted so far as a SceneResult (complete after :meth:`finish`)."""
        return SceneResult(
            scene=self.layout.name,
            detections=sort_detections(self._detections),
            failures=tuple(self._failures),
            problems=(),
            tiles_total=self._next_row * -(-self.layout.width // self.settings.tile_size),
            timings_s={k: round(v, 4) for k, v in self._timings.items()},
            models=self.stages.models_info(),
            detectors=dict(self.status),
            info={
                "path": f"stream:{self.layout.name}",
                "sensor": self.layout.sensor,
                "lines": self._lines_done,
                "width": self.layout.width,
                "tile_size": self.settings.tile_size,
                "overlap": self.overlap,
                "streaming": True,
                "not_applicable": sorted(self.stages.not_applicable),
                **({"clouds": self.sky_summary()} if self.stages.screen is not None else {}),
            },
            looked_px=dict(self._looked),
            scene_px=self._lines_done * self.layout.width,
        )


def _ground_res(lay: StripLayout) -> tuple[float, tuple[float, float]]:
    """Ground sampling distance and lon/lat centre of the expected strip (as open_scene)."""
    from .scene import _ground_res as scene_ground_res

    return scene_ground_res(lay.crs, lay.transform, lay.width, lay.expected_lines)
