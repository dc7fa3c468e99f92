"""The onboard LLM fills a slot the parser left open, and only that, by constrained choice.

When a question holds a word the parser does not know (``freighters``, ``tally``) while a slot
(class or operation) is still open, the model is asked what the word means, choosing among that
slot's values plus ``other``: each option is scored by its log-likelihood after a fixed few-shot
prompt (whose KV cache is reused, so a word costs a few tokens), so the output is always a valid
slot value or ``other``, never free text.  The parser accepts the choice only with a clear margin
over the runner-up; otherwise the question is "not understood".  Numbers, places and times are
never read by the model.

Uses the report writer's verified model loading (same GGUF, same sha256 check, quiet logs).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np

from ..errors import ModelError
from ..settings import ReportSettings

log = logging.getLogger(__name__)

#: a word's meaning is accepted only this many nats above the runner-up option
MIN_MARGIN = 2.0
OPTION_WORDS = {
    "ship": "ship",
    "fire": "fire",
    "crop_stress": "crop",
    "cloud": "cloud",
    "count": "count",
    "largest": "largest",
    "smallest": "smallest",
    "nearest": "nearest",
    "list": "list",
    "other": "other",
}

WORD_PROMPT = (
    (
        "Each word from a question about satellite detections means one thing: ship, fire, crop "
        "(stressed crops), cloud, count, largest, smallest, nearest, list, or other.\n"
    )
    + """
Word: vessel
Meaning: ship
Word: aircraft
Meaning: other
Word: wildfire
Meaning: fire
Word: tally
Meaning: count
Word: whale
Meaning: other
Word: biggest
Meaning: largest
Word: parched
Meaning: crop
Word: closest
Meaning: nearest
Word: car
Meaning: other
Word: overcast
Meaning: cloud
Word: tiniest
Meaning: smallest
Word: flood
Meaning: other
Word: enumerate
Meaning: list
Word: moored
Meaning: other
Word: big
Meaning: other
Word: """
)


class QuestionModel:
    """``with QuestionModel(settings) as m: m.resolve(question, word, open_slots)``."""

    def __init__(self, settings: ReportSettings | None = None, threads: int = 2) -> None:
        self.settings = settings or ReportSettings()
        self.threads = self.settings.threads or threads
        self._llm: Any = None
        self.model_name = ""
        self.model_sha256 = ""
        self.load_s = 0.0
        self._prefix: list[int] = []
        self._prefix_ready = False
        self.calls = 0

    def __enter__(self) -> QuestionModel:
        self.load()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def load(self) -> None:
        if self._llm is not None:
            return
        from ..report.gguf import open_llama

        t0 = time.perf_counter()
        llama_cpp, self._llm, path, sha = open_llama(
            self.settings, 1024, self.threads, self.threads
        )
        self._lib = llama_cpp
        self.model_name, self.model_sha256 = path.name, sha
        self._prefix = self._tok(WORD_PROMPT, bos=True)
        self._prefix_ready = False
        self.load_s = time.perf_counter() - t0

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    def _tok(self, text: str, bos: bool = False) -> list[int]:
        return list(self._llm.tokenize(text.encode(), add_bos=bos, special=False))

    def _logprobs(self) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self._llm.n_vocab(),)).astype(np.float64)
        m = logits.max()
        return logits - (m + math.log(np.exp(logits - m).sum()))

    def word_meaning(
        self, word: str, options: Sequence[str], timeout_s: float = 10.0
    ) -> tuple[str, float]:
        """(the option the word most likely means, margin in nats over the runner-up).
        ``options`` are slot values (keys of :data:`OPTION_WORDS`); ``other`` is always added."""
        self.load()
        self.calls += 1
        deadline = time.perf_counter() + timeout_s
        opts = [o for o in options if o in OPTION_WORDS and o != "other"] + ["other"]
        if not self._prefix_ready:
            self._llm.reset()
            self._llm.eval(self._prefix)
            self._prefix_ready = True
        base = len(self._prefix)
        self._llm.n_tokens = base
        suffix = self._tok(f"{word.strip()[:40]}\nMeaning:")
        self._llm.eval(suffix)
        after = base + len(suffix)
        first = self._logprobs()
        scores: list[float] = []
        for o in opts:
            if time.perf_counter() > deadline:
                raise ModelError(f"word meaning timed out after {timeout_s:g} s")
            toks = self._tok(" " + OPTION_WORDS[o])
            total = float(first[toks[0]])
            if len(toks) > 1:
                self._llm.n_tokens = after
                for i in range(1, len(toks)):
                    self._llm.eval([toks[i - 1]])
                    total += float(self._logprobs()[toks[i]])
            scores.append(total)
        self._llm.n_tokens = base
        order = np.argsort(scores)[::-1]
        best = opts[int(order[0])]
        margin = scores[int(order[0])] - scores[int(order[1])] if len(opts) > 1 else math.inf
        return best, float(margin)

    def resolver(self, timeout_s: float = 10.0) -> Any:
        """A :data:`pipeline.ask.parse.Resolver`: maps an unknown word onto an open slot's value
        when the model is clear about it (margin >= :data:`MIN_MARGIN`), else None."""

        def resolve(
            question: str, word: str, open_slots: dict[str, Sequence[str]]
        ) -> tuple[str, str, float] | None:
            values = [v for vals in open_slots.values() for v in vals]
            try:
                best, margin = self.word_meaning(word, values, timeout_s)
            except ModelError as exc:
                log.warning("LLM could not read %r: %s", word, exc)
                return None
            log.info("LLM: %r in %r -> %s (margin %.2f)", word, question, best, margin)
            if best == "other" or margin < MIN_MARGIN:
                return None
            slot = next(s for s, vals in open_slots.items() if best in vals)
            return slot, best, margin

        return resolve
