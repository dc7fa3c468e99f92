"""The onboard LLM understands a question and phrases its answer.

* **Intent** (kind of question and class): the model only *chooses*: each of the 12
  (kind, class) options is scored by its log-likelihood after a few-shot prompt, so the output
  is always a valid filter (constrained by construction, no free text).  Numbers in the question
  are never read by the model (see :func:`pipeline.ask.query.parse_numbers`).
* **Answer text**: the model writes one short sentence from the query facts (greedy, a few dozen
  tokens).  Every number in it is checked against the facts by the caller, which falls back to
  the template on any mismatch, timeout or model error.

Uses the report writer's verified model loading (same GGUF, same sha256 check, quiet logs).
"""

from __future__ import annotations

import logging
import math
import time
from types import TracebackType
from typing import Any

import numpy as np

from ..errors import ModelError
from ..settings import ReportSettings
from .query import CLASSES, KINDS

log = logging.getLogger(__name__)

INTENT_PROMPT = """Classify each question about satellite detections.
kind is count, nearest or largest. class is ship, fire, crop_stress or any.

Question: How many vessels are inside the harbour box since 10:00?
Answer: count ship
Question: Where is the nearest fire to 44.2N 121.3W?
Answer: nearest fire
Question: Which stressed field is the largest?
Answer: largest crop_stress
Question: Any boats near the port entrance today?
Answer: count ship
Question: How big is the biggest blaze?
Answer: largest fire
Question: Closest drought-stressed crop area to 36.1N 5.2W?
Answer: nearest crop_stress
Question: How many detections of any kind in this area?
Answer: count any
Question: What is the longest ship seen since yesterday?
Answer: largest ship
Question: {question}
Answer:"""

ANSWER_PROMPT = """Write a one-sentence answer for the ground operator using only the facts.

Facts: kind=count class=ship matches=3 since=2026-11-28T10:00:00Z
Answer: 3 ships were detected in the area since 2026-11-28T10:00:00Z.
Facts: kind=nearest class=fire matches=2 distance_km=12.5 lat=44.1 lon=-121.2 size=4400 m2
Answer: The nearest fire is 12.5 km away at 44.1, -121.2, about 4400 m2.
Facts: kind=largest class=crop_stress matches=5 size=0.047 km2 lat=37.7 lon=-75.64
Answer: The largest stressed field covers 0.047 km2 at 37.7, -75.64.
Facts: kind=count class=fire matches=0
Answer: No fires were detected in the area.
Facts: {facts}
Answer:"""


def facts_line(facts: dict[str, Any]) -> str:
    """The facts as the one line the answer prompt shows."""
    parts = [f"kind={facts['kind']}", f"class={facts.get('cls') or 'any'}"]
    parts.append(f"matches={facts['matches']}")
    for key in ("since", "until", "distance_km"):
        if key in facts:
            parts.append(f"{key}={facts[key]}")
    best = facts.get("best")
    if best:
        parts.append(f"lat={best['lat']} lon={best['lon']}")
        if best.get("size") is not None:
            parts.append(f"size={_num(best['size'])} {best['size_unit']}")
    return " ".join(parts)


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 else f"{v:.6f}"


class QuestionModel:
    """``with QuestionModel(settings) as m: m.intent(text); m.answer_text(facts)``."""

    def __init__(self, settings: ReportSettings | None = None, threads: int = 2) -> None:
        self.settings = settings or ReportSettings()
        self.threads = self.settings.threads or threads
        self._llm: Any = None
        self.model_name = ""
        self.model_sha256 = ""
        self.load_s = 0.0
        self._options: list[tuple[str, str | None, list[int]]] = []

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
        self._options = [
            (k, None if c == "any" else c, self._tok(f" {k} {c}"))
            for k in KINDS
            for c in (*CLASSES, "any")
        ]
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

    def intent(self, question: str, timeout_s: float = 10.0) -> tuple[str, str | None, float]:
        """(kind, class or None for any, margin in nats over the runner-up option)."""
        self.load()
        deadline = time.perf_counter() + timeout_s
        prompt = self._tok(INTENT_PROMPT.format(question=question.strip()[:300]), bos=True)
        self._llm.reset()
        self._llm.eval(prompt)
        base = len(prompt)
        first = self._logprobs()
        scores: list[float] = []
        for _kind, _cls, toks in self._options:
            if time.perf_counter() > deadline:
                raise ModelError(f"intent timed out after {timeout_s:g} s")
            total = float(first[toks[0]])
            self._llm.n_tokens = base
            for i in range(1, len(toks)):
                self._llm.eval([toks[i - 1]])
                total += float(self._logprobs()[toks[i]])
            scores.append(total)
        order = np.argsort(scores)[::-1]
        kind, cls, _ = self._options[int(order[0])]
        margin = scores[int(order[0])] - scores[int(order[1])]
        return kind, cls, margin

    def answer_text(
        self, facts: dict[str, Any], timeout_s: float = 10.0, max_tokens: int = 40
    ) -> str:
        """One sentence from the facts (unchecked: the caller checks every number)."""
        self.load()
        deadline = time.perf_counter() + timeout_s
        prompt = self._tok(ANSWER_PROMPT.format(facts=facts_line(facts)), bos=True)
        self._llm.reset()
        self._llm.eval(prompt)
        newline = set(self._tok("\n"))
        out: list[int] = []
        for _ in range(max_tokens):
            if time.perf_counter() > deadline:
                raise ModelError(f"answer timed out after {timeout_s:g} s")
            tok = int(np.argmax(self._logprobs()))
            if tok in newline or tok == self._llm.token_eos():
                break
            out.append(tok)
            self._llm.eval([tok])
        return self._llm.detokenize(out).decode("utf-8", "replace").strip()
