"""Archive reprocessing on Dask: the per-scene pipeline of ``eotriage run`` as distributed tasks.

Each scene is one task running exactly what ``eotriage run`` runs for it (:func:`open_scene`,
:func:`~pipeline.core.engine.run_scene`, :func:`~pipeline.runner.write_scene` with a
:class:`~pipeline.report.writer.ReportWriter`), so its products are the same files.  Without a
scheduler address a :class:`dask.distributed.LocalCluster` is started on this machine; with one,
the existing cluster is used unchanged (its workers must see the scene and output paths).

A scene that fails is reported in its :class:`SceneOutcome` and the batch goes on.  A scene whose
outputs are complete (``run.json`` written last, and every file it lists present with the size
it records) is skipped, so an interrupted batch can simply be run again.

Typical use::

    from pipeline.ground.batch import run_batch

    result = run_batch(["sample_scenes/s2_fire_G90292"], "out/", n_workers=2)
    print(result.counts_by_status(), f"{result.scenes_per_minute:.1f} scenes/min")

Needs the ``cluster`` extra (``dask[distributed]``); importing this module without it works, and
:func:`run_batch` then raises :class:`~pipeline.errors.ConfigError`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, EotriageError, cause_text
from ..runner import SceneOutcome, SceneRunner, unique_name
from ..settings import Settings

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """All outcomes of a batch, in input order, with the cluster it ran on."""

    outcomes: tuple[SceneOutcome, ...]
    elapsed_s: float
    workers: int
    scheduler: str
    out_dir: Path

    @property
    def failed(self) -> tuple[SceneOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def counts_by_status(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out

    @property
    def scenes_per_minute(self) -> float:
        """Scenes processed (not skipped) per minute of batch wall time."""
        n = sum(1 for o in self.outcomes if o.status != "skipped")
        return 60.0 * n / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "scenes": len(self.outcomes),
            **self.counts_by_status(),
            "elapsed_s": round(self.elapsed_s, 3),
            "scenes_per_minute": round(self.scenes_per_minute, 2),
            "workers": self.workers,
            "scheduler": self.scheduler,
            "out_dir": str(self.out_dir),
            "outcomes": [o.to_dict() for o in self.outcomes],
        }


# ------------------------------------------------------------------------- one scene (a task)

_local = threading.local()


def _runner(out_dir: Path, settings: Settings, skip_complete: bool) -> SceneRunner:
    """One SceneRunner per worker thread, output folder and settings: the report LLM loads once
    per thread, not once per scene (llama.cpp contexts must not be shared between threads)."""
    cache: dict[tuple[Path, str, bool], SceneRunner] | None = getattr(_local, "runners", None)
    if cache is None:
        cache = {}
        _local.runners = cache
    key = (out_dir, repr(settings), skip_complete)  # Settings holds a dict: not hashable
    if key not in cache:
        cache[key] = SceneRunner(
            out_dir, settings, skip_complete=skip_complete, worker=_worker_name()
        )
    return cache[key]


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return None


def process_scene(
    path: str | Path,
    out_dir: str | Path,
    settings: Settings | None = None,
    name: str | None = None,
    skip_complete: bool = True,
) -> SceneOutcome:
    """Run one scene as ``eotriage run`` does (:class:`~pipeline.runner.SceneRunner`) and write
    its products to ``out_dir/<name>/``.

    Never raises: a bad scene, and even a bug, comes back as a ``failed`` outcome so that one
    scene cannot stop the batch.  ``name`` overrides the scene name (used for inputs that share
    a name).
    """
    settings = settings or Settings()
    t0 = time.perf_counter()
    label = str(path)
    try:
        return _runner(Path(out_dir), settings, skip_complete).run(path, name)
    except Exception as exc:  # noqa: BLE001 - one scene's bug must not stop the batch
        log.exception("%s: unexpected error", label)
        return SceneOutcome(
            label,
            name,
            "failed",
            error=f"{label}: {type(exc).__name__}: {cause_text(exc)}",
            seconds=time.perf_counter() - t0,
            worker=_worker_name(),
        )


# ------------------------------------------------------------------------- the cluster


@contextmanager
def dask_client(
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
) -> Iterator[Client]:
    """A :class:`distributed.Client`: connected to ``scheduler`` when given (the cluster is used
    as it is), else to a new :class:`LocalCluster` of ``n_workers`` one-thread workers (default:
    one per CPU, at most 2 here) that is closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(
            "dask.distributed is not installed; install the 'cluster' extra "
            "(pip install 'eotriage[cluster]')"
        ) from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"cannot connect to Dask scheduler {scheduler}: {exc}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n = n_workers or max(1, min(2, os.cpu_count() or 1))
    if n < 1:
        raise ConfigError(f"workers must be >= 1, got {n}")
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def worker_count(client: Client) -> int:
    return len(client.scheduler_info().get("workers", {}))


def threads_per_scene(client: Client) -> int:
    """CPU threads each concurrent scene may use: this machine's CPUs shared by the workers on
    it (a local cluster; at least 1)."""
    workers = max(1, worker_count(client))
    return max(1, (os.cpu_count() or 1) // workers)


def resolve_names(paths: Sequence[str | Path], settings: Settings) -> list[str | None]:
    """Scene names as ``eotriage run`` gives them (opening metadata only); a later input with a
    name already taken gets ``<name>_<k>``.  ``None`` for inputs that cannot be opened (their
    task reports why)."""
    from ..core.env import Env
    from ..core.scene import open_scene

    names: list[str | None] = []
    seen: set[str] = set()
    for p in paths:
        try:
            with Env(settings):
                name = open_scene(p, sensor=settings.sensor, scaling=settings.scaling).name
        except EotriageError:
            names.append(None)
            continue
        names.append(unique_name(name, seen))
    return names


def run_batch(
    scenes: Sequence[str | Path],
    out_dir: str | Path,
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    skip_complete: bool = True,
    on_outcome: Callable[[SceneOutcome], None] | None = None,
) -> BatchResult:
    """Process ``scenes`` as Dask tasks (one per scene) and write ``out_dir/<scene>/``.

    Uses ``client`` when given, else connects to ``scheduler`` or starts a LocalCluster of
    ``n_workers``.  ``on_outcome`` is called on the client as each scene finishes.  When
    ``settings.threads`` was not chosen (``None`` passed as settings), each scene gets this
    machine's CPUs divided by the number of workers.
    """
    if client is None:
        with dask_client(scheduler, n_workers, processes) as c:
            return run_batch(
                scenes,
                out_dir,
                settings,
                client=c,
                skip_complete=skip_complete,
                on_outcome=on_outcome,
            )
    from distributed import as_completed

    if settings is None:
        settings = Settings(threads=threads_per_scene(client))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [str(Path(p)) for p in scenes]
    names = resolve_names(paths, settings)
    t0 = time.perf_counter()
    futures = []
    index: dict[Any, int] = {}
    for i, (p, name) in enumerate(zip(paths, names, strict=True)):
        fut = client.submit(
            process_scene,
            p,
            str(out.resolve()),
            settings,
            name,
            skip_complete,
            key=f"eotriage-scene-{i}-{name or Path(p).name}-{time.time_ns()}",
            pure=False,
        )
        index[fut.key] = i
        futures.append(fut)
    outcomes: list[SceneOutcome | None] = [None] * len(paths)
    for fut in as_completed(futures):
        i = index[fut.key]
        try:
            outcome = fut.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker (KilledWorker) or lost task
            outcome = SceneOutcome(
                paths[i],
                names[i],
                "failed",
                error=f"{paths[i]}: task failed on the cluster: {type(exc).__name__}: "
                f"{cause_text(exc)}",
            )
        outcomes[i] = outcome
        if outcome.status == "failed":
            log.info("%s", outcome.error)
        if on_outcome is not None:
            on_outcome(outcome)
        fut.release()
    elapsed = time.perf_counter() - t0
    done = tuple(o for o in outcomes if o is not None)
    return BatchResult(done, elapsed, worker_count(client), str(client.scheduler.address), out)
