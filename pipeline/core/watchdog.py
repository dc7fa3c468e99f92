"""Watchdogs: a time limit on one unit of work (a tile's detectors), enforced from a timer.

In orbit no one restarts a stuck process, so a stage that runs past its limit is abandoned for
that unit of work, recorded, and the scene goes on::

    with Watchdog(2.0, "tile r0c1") as wd:
        for det in detectors:
            wd.check()          # raises StageTimeout once the limit has passed
            det.detect(...)

Enforcement: onnxruntime runs started under the watchdog get a ``RunOptions`` whose
``terminate`` flag the timer sets, so a long model call is cut off where it is; Python code
between model calls stops at the next :meth:`Watchdog.check` (cooperative: CPython cannot
stop a thread from outside).  :func:`current` gives the innermost active watchdog of this
thread, which :class:`pipeline.core.onnx_models.OnnxModel` consults for each run.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from types import TracebackType
from typing import Any

from ..errors import StageTimeout

log = logging.getLogger(__name__)

_CURRENT: contextvars.ContextVar[Watchdog | None] = contextvars.ContextVar(
    "eotriage_watchdog", default=None
)


class Watchdog:
    """A deadline of ``limit_s`` seconds (``None``: none) for the work inside the ``with``."""

    def __init__(self, limit_s: float | None, label: str) -> None:
        self.limit_s = limit_s
        self.label = label
        self.expired = False
        self._lock = threading.Lock()
        self._run_options: list[Any] = []
        self._timer: threading.Timer | None = None
        self._token: contextvars.Token[Watchdog | None] | None = None
        self._t0 = 0.0

    def __enter__(self) -> Watchdog:
        self._t0 = time.perf_counter()
        if self.limit_s is not None:
            self._timer = threading.Timer(self.limit_s, self._expire)
            self._timer.daemon = True
            self._timer.start()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for ro in self._run_options:
                ro.terminate = True
        log.warning("%s: watchdog limit of %.3g s reached; abandoning", self.label, self.limit_s)

    def error(self) -> StageTimeout:
        return StageTimeout(
            f"{self.label}: abandoned by the watchdog after {self.elapsed_s:.2f} s "
            f"(limit {self.limit_s:g} s)"
        )

    def check(self) -> None:
        """Raise :class:`StageTimeout` if the limit has passed."""
        if self.expired:
            raise self.error()

    def run_options(self) -> Any:
        """An ``onnxruntime.RunOptions`` that this watchdog terminates when it expires."""
        import onnxruntime as ort

        ro = ort.RunOptions()
        with self._lock:
            if self.expired:
                ro.terminate = True
            self._run_options.append(ro)
        return ro

    def release(self, ro: Any) -> None:
        """Forget a finished run's options."""
        with self._lock:
            if ro in self._run_options:
                self._run_options.remove(ro)


def current() -> Watchdog | None:
    """The innermost active watchdog of this thread (or context), if any."""
    return _CURRENT.get()
