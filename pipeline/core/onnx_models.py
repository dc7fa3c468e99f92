"""Model files: manifest, sha256 verification and onnxruntime sessions.

The loader refuses a file whose sha256 does not match the manifest, and chooses execution
providers automatically (TensorRT, then CUDA, then CPU; whichever this onnxruntime build has),
unless settings name them.

Model integrity in orbit (``settings.robustness``):

* **Golden copies.** ``<models_dir>/golden/<file>`` holds a second, byte-identical copy of every
  model (``models/model_io.write_model`` writes both).  When the primary file is missing,
  unreadable, fails its sha256 or cannot be loaded by onnxruntime, and ``golden_fallback`` is
  on, the golden copy is verified against the same manifest sha256 and loaded instead; the
  event is logged (WARNING) and kept in :attr:`OnnxModel.events`.  Nothing is ever written
  into ``models_dir`` at run time.
* **Dual execution.** With ``dual_execution`` on, :meth:`OnnxModel.run` runs the session twice
  and compares every output; on a mismatch a third run decides (two of three agreeing wins, a
  ``compute_fault_corrected`` event is kept), and if no two agree it raises
  :class:`~pipeline.errors.ComputeFaultError`, which the engine records as a tile failure.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._fsio import sha256_bytes
from ..errors import ComputeFaultError, ModelError
from . import watchdog

if TYPE_CHECKING:
    from ..settings import RobustnessSettings, Settings

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)

#: Folder of the golden copies inside ``models_dir`` (unless settings name another).
GOLDEN_SUBDIR = "golden"
#: Run-time events kept per model (the oldest are dropped and counted in ``events_dropped``),
#: so a persistent fault in a long-running process cannot grow memory without bound.
MAX_EVENTS = 64
#: Events of loading the model: they hold for every run of the (cached) model object.
LOAD_EVENTS = frozenset({"golden_fallback"})

#: Test seam for silent compute faults: ``hook(call, attempt, outputs) -> outputs`` sees the
#: outputs of every session execution (``call`` counts :meth:`OnnxModel.run` calls from 0,
#: ``attempt`` is 0, 1 or 2 within one call) and may return altered outputs.
FaultHook = Callable[[int, int, list[np.ndarray]], list[np.ndarray]]


def default_models_dir() -> Path:
    """``$EOTRIAGE_MODELS_DIR`` or the repository's ``models/`` folder."""
    env = os.environ.get("EOTRIAGE_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class ModelInfo:
    """One manifest entry."""

    name: str
    path: Path
    version: str
    sha256: str
    bands: tuple[str, ...]
    thresholds: Mapping[str, float]
    raw: Mapping[str, Any]


def package_file(package: str, file: str) -> Path:
    """A model file shipped inside an installed Python package (e.g. the ukis-csmask cloud
    U-Nets); a path that does not exist when the package is not installed (the model's
    optional extra then says what to install)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<package {package} not installed>") / file
    return Path(next(iter(spec.submodule_search_locations))) / file


def optional_missing(info: ModelInfo) -> str | None:
    """For a model of an optional extra whose package is not installed: what to install."""
    extra = info.raw.get("optional_extra")
    if extra and "package" in info.raw and not info.path.is_file():
        return (
            f"model {info.name} comes with the optional extra {extra!r} "
            f"(pip install 'eotriage[{extra}]'), which is not installed"
        )
    return None


def load_manifest(models_dir: Path | None = None) -> dict[str, ModelInfo]:
    d = models_dir or default_models_dir()
    path = d / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path}: model manifest not found (set models_dir or EOTRIAGE_MODELS_DIR)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model manifest ({exc})") from None
    out: dict[str, ModelInfo] = {}
    try:
        for name, e in data["models"].items():
            out[name] = ModelInfo(
                name=name,
                path=package_file(e["package"], e["file"]) if "package" in e else d / e["file"],
                version=str(e["version"]),
                sha256=str(e["sha256"]),
                bands=tuple(e.get("bands", ())),
                thresholds={k: float(v) for k, v in e.get("thresholds", {}).items()},
                raw=e,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: malformed model manifest ({exc!r})") from None
    return out


def choose_providers(requested: Sequence[str] = ()) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelError(
                f"execution provider(s) {', '.join(missing)} not available in this onnxruntime "
                f"(available: {', '.join(available)})"
            )
        return list(requested)
    chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    return chosen or list(available)


class _LoadFailure(Exception):
    """Why one model file could not be used (internal: becomes a ModelError or a fallback)."""

    def __init__(self, cause: str, corrupt: bool = False) -> None:
        super().__init__(cause)
        self.corrupt = corrupt


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # No busy-waiting between ops: the spinning threads would take the core that reads
    # the next tile (pipeline.core.prefetch) and the other detectors' sessions.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    # Every tile has the same read-window shape (pipeline.core.tiling), so onnxruntime's arena
    # settles at one tile's working set and is reused; memory patterns are off because
    # candidate crops vary in shape.
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_pattern = False
    return opts


def _verified_session(info: ModelInfo, path: Path, opts: Any, providers: list[str]) -> Any:
    """An onnxruntime session for ``path`` if its sha256 is the manifest's, else _LoadFailure."""
    import onnxruntime as ort

    if not path.is_file():
        raise _LoadFailure(f"model file {info.name!r} not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _LoadFailure(f"model file {info.name!r} unreadable ({exc.strerror or exc})") from None
    digest = sha256_bytes(data)
    if digest != info.sha256:
        raise _LoadFailure(
            f"sha256 mismatch for model {info.name!r} (file {digest[:12]}…, "
            f"manifest {info.sha256[:12]}…)",
            corrupt=True,
        )
    try:
        # Load the bytes that were hashed, so the file cannot change between check and use.
        return ort.InferenceSession(data, sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise _LoadFailure(f"onnxruntime cannot load model ({exc})") from None


def _same_outputs(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    """Every output equal in dtype, shape and value: bit for bit (the fast, usual case), else
    by value with NaN equal to NaN (so 0.0 / -0.0 or two NaN payloads are not a fault)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if np.shape(x) != np.shape(y):
            return False
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        if x.dtype != y.dtype:
            return False
        if x.dtype.hasobject:
            if not np.array_equal(x, y):
                return False
        elif not np.array_equal(x.view(np.uint8), y.view(np.uint8)) and not np.array_equal(
            x, y, equal_nan=x.dtype.kind in "fc"
        ):
            return False
    return True


class OnnxModel:
    """A verified onnxruntime session for one manifest entry.

    ``golden_path``: the golden copy to load when the primary file (``info.path``) is missing,
    unreadable, corrupt or unloadable (``None``: refuse instead).  ``dual_execution``: run every
    call twice and compare (see the module docstring).  :attr:`path` is the file actually
    loaded; :attr:`events` records golden fallbacks and compute faults (dicts with an
    ``"event"`` key) for the run record (:meth:`event_mark` / :meth:`events_since` give one
    scene's share); :attr:`runs` counts :meth:`run` calls and
    :attr:`dual_mismatches` the calls whose first two executions disagreed.  :attr:`fault_hook`
    (default ``None``) is a test seam that can alter each execution's outputs, see
    :data:`FaultHook`.
    """

    def __init__(
        self,
        info: ModelInfo,
        threads: int = 1,
        providers: Sequence[str] = (),
        *,
        golden_path: Path | None = None,
        dual_execution: bool = False,
    ) -> None:
        self.info = info
        self.dual_execution = dual_execution
        self.events: list[dict[str, Any]] = []
        self.events_dropped = 0
        self._runtime_events = 0
        self.runs = 0
        self.dual_mismatches = 0
        self.compute_faults = 0
        self.fault_hook: FaultHook | None = None
        self.providers = choose_providers(providers)
        opts = _session_options(threads)
        try:
            self.session = _verified_session(info, info.path, opts, self.providers)
            self.path = info.path
        except _LoadFailure as primary:
            if golden_path is None:
                why = "; refusing to load a corrupt or tampered model" if primary.corrupt else ""
                raise ModelError(f"{info.path}: {primary}{why}") from None
            try:
                self.session = _verified_session(info, golden_path, opts, self.providers)
            except _LoadFailure as golden:
                raise ModelError(
                    f"{info.path}: {primary}; golden copy {golden_path}: {golden}; "
                    f"refusing to load model {info.name!r}"
                ) from None
            self.path = golden_path
            log.warning(
                "%s: %s; loaded the golden copy %s instead", info.path, primary, golden_path
            )
            self._event(
                event="golden_fallback",
                model=info.name,
                version=info.version,
                cause=str(primary),
                primary=str(info.path),
                path=str(golden_path),
            )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        log.debug(
            "loaded %s %s from %s with %s", info.name, info.version, self.path, self.providers
        )

    def _event(self, **event: Any) -> None:
        self.events.append(event)
        if event["event"] in LOAD_EVENTS:
            return
        self._runtime_events += 1
        runtime = [i for i, e in enumerate(self.events) if e["event"] not in LOAD_EVENTS]
        if len(runtime) > MAX_EVENTS:
            del self.events[runtime[0]]
            self.events_dropped += 1

    def event_mark(self) -> int:
        """A mark for :meth:`events_since` (models are cached and shared between scenes)."""
        return self._runtime_events

    def events_since(self, mark: int) -> list[dict[str, Any]]:
        """The load events (golden fallback) and the run-time events recorded after ``mark``."""
        load = [e for e in self.events if e["event"] in LOAD_EVENTS]
        runtime = [e for e in self.events if e["event"] not in LOAD_EVENTS]
        new = min(self._runtime_events - mark, len(runtime))
        return load + runtime[len(runtime) - new :]

    def _execute(self, feeds: dict[str, np.ndarray], call: int, attempt: int) -> list[np.ndarray]:
        # under a watchdog (pipeline.core.watchdog), the run is cut off when its limit passes
        wd = watchdog.current()
        ro = wd.run_options() if wd is not None else None
        try:
            out: list[np.ndarray] = self.session.run(None, feeds, ro)
        except Exception as exc:
            if wd is not None and wd.expired:
                raise wd.error() from None
            raise ModelError(f"model {self.info.name!r} failed to run: {exc}") from None
        finally:
            if wd is not None:
                wd.release(ro)
        if self.fault_hook is not None:
            out = self.fault_hook(call, attempt, out)
        return out

    def _differing(self, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> list[str]:
        names = self.output_names or [str(i) for i in range(len(a))]
        return [n for n, x, y in zip(names, a, b, strict=False) if not _same_outputs([x], [y])]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The session's outputs for ``feeds`` (checked by a second run with dual execution)."""
        call = self.runs
        self.runs += 1
        feeds = dict(feeds)
        first = self._execute(feeds, call, 0)
        if not self.dual_execution:
            return first
        second = self._execute(feeds, call, 1)
        if _same_outputs(first, second):
            return first
        self.dual_mismatches += 1
        differ = self._differing(first, second)
        third = self._execute(feeds, call, 2)
        if _same_outputs(third, first):
            kept, outvoted = first, 1
        elif _same_outputs(third, second):
            kept, outvoted = second, 0
        else:
            self.compute_faults += 1
            self._event(
                event="compute_fault_unresolved",
                model=self.info.name,
                call=call,
                outputs=differ,
            )
            raise ComputeFaultError(
                f"model {self.info.name!r}: silent compute fault: three executions of call "
                f"{call} gave three different results (outputs {', '.join(differ)} differ)"
            )
        log.warning(
            "model %r: compute fault in execution %d of call %d (outputs %s differ); "
            "corrected by a third execution",
            self.info.name,
            outvoted,
            call,
            ", ".join(differ),
        )
        self._event(
            event="compute_fault_corrected",
            model=self.info.name,
            call=call,
            faulty_execution=outvoted,
            outputs=differ,
        )
        return kept


@cache
def _cached_model(
    models_dir: Path,
    name: str,
    threads: int,
    providers: tuple[str, ...],
    golden_dir: Path | None,
    dual_execution: bool,
) -> OnnxModel:
    manifest = load_manifest(models_dir)
    if name not in manifest:
        raise ModelError(f"model {name!r} not in {models_dir / 'manifest.json'}")
    info = manifest[name]
    missing = optional_missing(info)
    if missing:
        raise ModelError(missing)
    golden = None
    if golden_dir is not None:  # a package's model keeps its golden copy under its file name
        rel = info.path.relative_to(models_dir) if info.path.is_relative_to(models_dir) else None
        golden = golden_dir / (rel or info.path.name)
    return OnnxModel(
        info,
        threads=threads,
        providers=providers,
        golden_path=golden,
        dual_execution=dual_execution,
    )


def golden_dir_for(models_dir: Path, robustness: RobustnessSettings) -> Path:
    """Where the golden copies are: ``robustness.golden_dir`` or ``<models_dir>/golden``."""
    return (robustness.golden_dir or models_dir / GOLDEN_SUBDIR).resolve()


def get_model(
    name: str,
    models_dir: Path | None = None,
    threads: int = 1,
    providers: Sequence[str] = (),
    robustness: RobustnessSettings | None = None,
) -> OnnxModel:
    """Load (once per process and configuration) and return a verified model.

    ``robustness`` selects the golden-copy fallback and dual execution; ``None`` (as for a
    training script) gives a strict single-execution model that refuses a corrupt file.
    """
    d = (models_dir or default_models_dir()).resolve()
    golden = None
    dual = False
    if robustness is not None:
        golden = golden_dir_for(d, robustness) if robustness.golden_fallback else None
        dual = robustness.dual_execution
    return _cached_model(d, name, threads, tuple(providers), golden, dual)


def detector_model(name: str, settings: Settings) -> OnnxModel:
    """The model a detector runs: models folder, threads, providers and robustness (golden
    copy, dual execution) from ``settings``."""
    return get_model(
        name, settings.models_dir, settings.threads, settings.providers, settings.robustness
    )
