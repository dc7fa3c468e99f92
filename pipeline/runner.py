"""The one per-scene runner: open, detect, write, checkpoint, resume, outbox.

``eotriage run``, :mod:`pipeline.ground.batch` (one Dask task per scene) and library users run
scenes through :class:`SceneRunner`, so a scene's products, its "already done" test and its
failure handling are the same everywhere:

* :func:`write_scene` writes ``OUT/<scene>/detections.geojson``, the report files,
  ``downlink.bin`` and, last, ``run.json``, each atomically;
* :func:`outputs_complete` is the one "already done" test (``run.json`` written last lists
  every product with its size; no unfinished checkpoint beside it);
* a scene that fails becomes a ``failed`` :class:`SceneOutcome` and the next scene runs;
* a result that looked at less than the one already in ``OUT/<scene>/`` (a failed scan, or a
  class checked on less of the scene) never replaces it: it is written beside it, to
  ``OUT/<scene>.<outcome>/``, and :attr:`SceneOutcome.kept` names the result that was kept.

Typical use::

    from pipeline.runner import SceneRunner

    with SceneRunner("out/", Settings()) as runner:
        outcome = runner.run("sample_scenes/s2_fire_G90292")
        print(outcome.line())
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from . import __version__
from ._fsio import atomic_write
from .core.results import ClassStatus, SceneResult
from .errors import EotriageError, OutputError
from .settings import Settings

if TYPE_CHECKING:
    from .downlink.outbox import Outbox
    from .downlink.plan import DownlinkPlan
    from .report.writer import ReportWriter, WrittenReport
    from .settings import DownlinkSettings

log = logging.getLogger(__name__)

#: Files of a scene's output folder.
RUN_JSON = "run.json"
#: Per-scene checkpoint of finished tiles (see :mod:`pipeline.core.checkpoint`); removed once
#: the scene's outputs (and outbox entry) are durable.
CHECKPOINT = "checkpoint.jsonl"

Status = Literal["done", "skipped", "failed"]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class WrittenScene:
    """Where a scene's products went."""

    directory: Path
    geojson: Path
    run_json: Path
    geojson_bytes: int
    #: report.txt, report.json and compact.geojson (``None`` when not written)
    report: WrittenReport | None = None
    #: the scene's packets for the ground (report + compact GeoJSON + extras)
    downlink: Path | None = None
    plan: DownlinkPlan | None = None
    #: the earlier, better result that was left in place (this one went beside it)
    kept: Path | None = None


def run_summary(result: SceneResult, geojson_bytes: int, write_s: float) -> dict[str, Any]:
    timings = dict(result.timings_s)
    timings["write"] = round(write_s, 4)
    return {
        "eotriage_version": __version__,
        "scene": result.scene,
        "ok": result.ok,
        #: complete / partial / failed, why, and per class found N / none found / not checked
        **result.status_dict(),
        "input": result.info,
        #: acquisition time (ISO UTC, or null when unknown: never the processing time), where it
        #: came from, and place names of the scene (from its metadata or sidecar)
        "acquired_utc": result.info.get("acquired_utc"),
        "acquired_source": result.info.get("acquired_source"),
        "places": list(result.info.get("places", [])),
        "scene_kind": result.info.get("scene_kind"),
        "input_bytes": result.info.get("input_bytes"),
        "output_bytes": {"detections.geojson": geojson_bytes},
        "counts": result.counts(),
        "detectors": dict(result.detectors),
        "models": {k: dict(v) for k, v in result.models.items()},
        "timings_s": timings,
        "tiles": {
            "total": result.tiles_total,
            "failed": len(result.failures),
            "resumed": result.info.get("resumed_tiles", 0),
            "failures": [f.to_dict() for f in result.failures],
        },
        #: golden-copy fallbacks and compute faults of the models (see pipeline.core.onnx_models)
        "model_events": list(result.info.get("model_events", [])),
        "problems": list(result.problems),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_scene(
    result: SceneResult,
    out_dir: str | Path,
    reports: ReportWriter | None = None,
    downlink: DownlinkSettings | None = None,
    cloudy_discard: float | None = None,
) -> WrittenScene:
    """Write ``OUT/<scene>/detections.geojson``, the report files (``report.txt``,
    ``report.json``, ``compact.geojson``), ``downlink.bin`` and ``OUT/<scene>/run.json``,
    each atomically.

    ``reports`` writes the text report (LLM or template, loaded once and reused across
    scenes); ``None`` uses the template writer only.  ``downlink`` sets the pass budget and
    the optional extras (default: no budget, no extras).  A scene at least ``cloudy_discard``
    under cloud or shadow with nothing detected downlinks only its manifest and a one-line
    report (``[clouds] discard_fraction``).  ``run.json`` is written last.
    """
    from .downlink.pack import pack_scene
    from .report.writer import ReportWriter
    from .settings import DownlinkSettings, ReportSettings

    d = Path(out_dir) / result.scene
    kept: Path | None = None
    if would_lose(result, d):
        kept, d = d, Path(out_dir) / f"{result.scene}.{result.outcome}"
        log.info(
            "%s: %s scan looked at less than the result in %s; that one is kept and this one "
            "written to %s",
            result.scene,
            result.outcome,
            kept,
            d,
        )
    mkdir_out(d)
    t0 = time.perf_counter()
    gj = result.geojson_bytes()
    gj_path = d / "detections.geojson"
    atomic_write(gj_path, gj)
    write_s = time.perf_counter() - t0
    writer = reports if reports is not None else ReportWriter(ReportSettings(use_llm=False))
    written_report = writer.write(result, d)
    run_path = d / RUN_JSON
    summary = run_summary(result, len(gj), write_s)
    summary["output_bytes"].update(written_report.bytes)
    summary["report"] = written_report.report.run_section()
    plan = pack_scene(
        result.scene,
        json.loads(written_report.report_json.read_text()),
        json.loads(written_report.compact_geojson.read_text()),
        downlink or DownlinkSettings(),
        scene_path=result.info.get("path"),
        sensor=result.info.get("sensor"),
        sky_map=result.sky_map,
        scaling=result.info.get("scaling_spec"),
        cloudy_discard=cloudy_discard,
    )
    atomic_write(d / "downlink.bin", plan.packets)
    summary["output_bytes"]["downlink.bin"] = len(plan.packets)
    summary["downlink"] = plan.summary()
    if kept is not None:
        summary["kept_result"] = str(kept)
    atomic_write(run_path, (json.dumps(summary, indent=2) + "\n").encode())
    return WrittenScene(
        d, gj_path, run_path, len(gj), written_report, d / "downlink.bin", plan, kept
    )


def mkdir_out(d: Path) -> None:
    """Create an output folder; a path that cannot be one is an :class:`OutputError`."""
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{d}: cannot create output folder: {_os_reason(exc, d)}") from None


def check_writable(d: Path) -> None:
    """Raise :class:`OutputError` unless a file can be created in the folder ``d``."""
    probe = d / f".eotriage-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{d}: cannot write output files: {_os_reason(exc, d)}") from None


def _output_error(exc: OSError) -> str:
    where = Path(exc.filename) if isinstance(exc.filename, str) else None
    if where is None:
        return f"cannot write outputs: {exc.strerror or exc}"
    return f"{where}: cannot write: {_os_reason(exc, where)}"


def _os_reason(exc: OSError, path: Path) -> str:
    """The OS's reason, and which part of ``path`` is a file when one is in the way."""
    for parent in [path, *path.parents]:
        if parent.is_file():
            return f"{parent} is a file"
    return exc.strerror or str(exc)


#: outcome -> rank (lower is better)
_OUTCOME_RANK = {"complete": 0, "partial": 1, "failed": 2}


def recorded_status(scene_dir: Path) -> tuple[str, dict[str, float]] | None:
    """``(outcome, coverage per class)`` of the result in ``scene_dir`` (its run.json), or None
    when there is none.  Older run.json files without ``outcome`` are read from ``ok``, the
    detector statuses and the failed tiles."""
    try:
        run = json.loads((scene_dir / RUN_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict):
        return None
    classes = run.get("classes")
    if isinstance(run.get("outcome"), str) and isinstance(classes, dict):
        cov = {
            str(c): float(v.get("coverage", 0.0) or 0.0)
            for c, v in classes.items()
            if isinstance(v, dict)
        }
        return str(run["outcome"]), cov
    from .core.results import CLASS_OF_DETECTOR

    tiles = run.get("tiles")
    tiles = tiles if isinstance(tiles, dict) else {}
    total = int(tiles.get("total", 0) or 0)
    failed = int(tiles.get("failed", 0) or 0)
    share = 1.0 - failed / total if total else 1.0
    cov = {}
    for det, status in (run.get("detectors") or {}).items():
        if det in CLASS_OF_DETECTOR:
            cov[CLASS_OF_DETECTOR[det]] = share if status == "ran" else 0.0
    outcome = "complete" if run.get("ok") else "failed" if total and failed >= total else "partial"
    return outcome, cov


def would_lose(result: SceneResult, scene_dir: Path) -> bool:
    """True when writing ``result`` into ``scene_dir`` would replace a result that looked at
    more: a failed scan over one that was not, or a class (of a detector this run enabled)
    checked on less of the scene than before."""
    old = recorded_status(scene_dir)
    if old is None:
        return False
    outcome, old_cov = old
    if result.outcome == "failed" and outcome != "failed":
        return True
    from .core.results import DETECTOR_OF_CLASS

    for cls, st in result.class_status().items():
        if DETECTOR_OF_CLASS[cls] not in result.detectors:
            continue
        if st.coverage + 1e-9 < old_cov.get(cls, 0.0):
            return True
    return False


@dataclass(frozen=True)
class SceneOutcome:
    """What happened to one scene: written, skipped as already done, or failed."""

    path: str
    #: output folder name (the scene name, suffixed when two inputs share a name); ``None`` when
    #: the scene could not even be opened
    name: str | None
    status: Status
    #: detections per class (done and skipped scenes)
    counts: dict[str, int] = field(default_factory=dict)
    #: the cause, one line, when ``status == "failed"``
    error: str | None = None
    #: wall time spent on the scene: open, model load, detect, report, write (0 when skipped)
    seconds: float = 0.0
    #: tiles that failed and scene-level problems (the scene still produced outputs)
    problems: tuple[str, ...] = ()
    worker: str | None = None
    #: the scene's detections.geojson (done scenes)
    geojson: str | None = None
    #: what the scan looked at (done scenes): ``complete``, ``partial`` or ``failed``
    scan: str | None = None
    #: why the scan is not complete, one line each
    scan_reasons: tuple[str, ...] = ()
    #: per class ``12 fire`` / ``no ship`` (looked, found none) / ``ship not checked (reason)``
    classes: dict[str, str] = field(default_factory=dict)
    #: the folder the products went to (``OUT/<scene>``, or beside it, see ``kept``)
    directory: str | None = None
    #: an earlier result that looked at more, left in place (this one went beside it)
    kept: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed" and not self.problems and self.scan != "failed"

    def line(self) -> str:
        """One line for the terminal."""
        label = self.name or self.path
        if self.status == "failed":
            return f"{label}: FAILED: {self.error}"
        if self.status == "skipped":
            counts = ", ".join(f"{n} {c}" for c, n in self.counts.items() if n) or "none"
            return f"{label}: skipped (outputs complete): {counts}"
        extra = f"; {len(self.problems)} problem(s)" if self.problems else ""
        return f"{label}: {self.findings()} ({self.seconds:.1f} s{extra})"

    def findings(self) -> str:
        """``partial scan: 12 fire; ship not checked (needs band(s) B02); no crop_stress``"""
        per_class = "; ".join(self.classes.values())
        return (
            f"{self.scan or 'unknown'} scan: {per_class}"
            if per_class
            else (f"{self.scan or 'unknown'} scan")
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finding(cls: str, st: ClassStatus) -> str:
    if st.status == "found":
        return f"{st.count} {cls}"
    if st.status == "none found":
        return f"no {cls}"
    return f"{cls} {st.text()}"


def outputs_complete(scene_dir: str | Path) -> bool:
    """The one "already done" test: ``scene_dir/run.json`` parses, every file it lists under
    ``output_bytes`` exists with exactly that size (``write_scene`` writes ``run.json`` last and
    atomically), and no checkpoint of an unfinished run lies beside it."""
    d = Path(scene_dir)
    if (d / CHECKPOINT).exists():
        return False
    try:
        run = json.loads((d / RUN_JSON).read_text())
        sizes = run["output_bytes"]
        if not isinstance(sizes, dict) or not sizes:
            return False
        return all((d / name).stat().st_size == int(n) for name, n in sizes.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def recorded_counts(scene_dir: Path) -> dict[str, int]:
    """Detections per class recorded in a finished scene's ``run.json`` ({} when unreadable)."""
    try:
        counts = json.loads((scene_dir / RUN_JSON).read_text()).get("counts", {})
        return {str(k): int(v) for k, v in counts.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def unique_name(name: str, seen: set[str]) -> str:
    """``name``, or ``<name>_<k>`` when an earlier input of the run already took it (two inputs
    with one name get separate output folders); ``seen`` is updated."""
    if name in seen:
        name = f"{name}_{len(seen)}"
    seen.add(name)
    return name


class SceneRunner:
    """Runs scenes one after another into ``out_dir/<scene>/``, as ``eotriage run`` does.

    The report writer (and its LLM) loads once and is reused across scenes; pass ``reports`` to
    share one.  ``skip_complete``: a scene whose outputs are complete is skipped
    (:func:`outputs_complete`).  ``resume``: a scene continues from its last checkpointed tile.
    ``outbox_dir``: each scene's ``downlink.bin`` is also queued there, durably, once per name.
    """

    def __init__(
        self,
        out_dir: str | Path,
        settings: Settings | None = None,
        *,
        reports: ReportWriter | None = None,
        outbox_dir: str | Path | None = None,
        resume: bool = False,
        skip_complete: bool = False,
        worker: str | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.settings = settings or Settings()
        self.resume = resume
        self.skip_complete = skip_complete or resume
        self.worker = worker
        self._stack = contextlib.ExitStack()
        self._seen: set[str] = set()
        if reports is None:
            from .report.writer import ReportWriter

            reports = self._stack.enter_context(
                ReportWriter(self.settings.report, threads=self.settings.threads)
            )
        self.reports = reports
        self.outbox: Outbox | None = None
        if outbox_dir is not None:
            from .downlink.outbox import Outbox

            self.outbox = self._stack.enter_context(Outbox(Path(outbox_dir)))

    def __enter__(self) -> SceneRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def run(
        self,
        path: str | Path,
        name: str | None = None,
        progress: ProgressFn | None = None,
    ) -> SceneOutcome:
        """Run one scene and write its products.  Never raises for a bad scene: the cause comes
        back in a ``failed`` outcome.  ``name`` overrides the scene name (else a name an earlier
        scene of this runner took gets a suffix, see :func:`unique_name`)."""
        from .core.engine import run_scene
        from .core.env import Env
        from .core.scene import open_scene

        settings = self.settings
        t0 = time.perf_counter()
        label = str(path)
        try:
            with Env(settings):
                scene = open_scene(path, sensor=settings.sensor, scaling=settings.scaling)
            scene_name = name or unique_name(scene.name, self._seen)
            if scene_name != scene.name:
                scene = dataclasses.replace(scene, name=scene_name)
            out = self.out_dir / scene.name
            ckpt = out / CHECKPOINT
            if self.skip_complete and outputs_complete(out):
                return SceneOutcome(
                    label, scene.name, "skipped", recorded_counts(out), worker=self.worker
                )
            result = run_scene(
                scene, settings, progress=progress, checkpoint=ckpt, resume=self.resume
            )
            written = write_scene(
                result,
                self.out_dir,
                self.reports,
                settings.downlink,
                cloudy_discard=settings.clouds.discard_fraction,
            )
            if self.outbox is not None and written.downlink is not None:
                data = written.downlink.read_bytes()
                self.outbox.put(f"{scene.name}/downlink.bin", data, first_wins=True)
            ckpt.unlink(missing_ok=True)  # outputs and outbox entry are durable now
        except (EotriageError, OSError) as exc:
            # an OSError here is an output problem (checkpoint, products, outbox): one line too
            msg = str(exc) if isinstance(exc, EotriageError) else _output_error(exc)
            return SceneOutcome(
                label,
                name,
                "failed",
                error=msg,
                seconds=time.perf_counter() - t0,
                worker=self.worker,
            )
        if written.report is not None and written.report.report.fallback_reason:
            log.info("%s: template report (%s)", scene.name, written.report.report.fallback_reason)
        problems = tuple(f"tile {f.tile_id}: {f.cause}" for f in result.failures) + tuple(
            str(p) for p in result.problems
        )
        return SceneOutcome(
            label,
            scene.name,
            "done",
            dict(result.counts()),
            seconds=time.perf_counter() - t0,
            problems=problems,
            worker=self.worker,
            geojson=str(written.geojson),
            scan=result.outcome,
            scan_reasons=result.outcome_reasons,
            classes={c: _finding(c, st) for c, st in result.class_status().items()},
            directory=str(written.directory),
            kept=str(written.kept) if written.kept is not None else None,
        )
