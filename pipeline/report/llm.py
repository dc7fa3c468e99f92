"""The onboard LLM report writer: a small local GGUF model via llama-cpp-python.

A 270M-parameter base model is not faithful when it writes freely (it copies numbers from its
examples and swaps counts between classes; ../shared/DESIGN.md §7).  So the model never writes
a number.  For each fact set a grammar is built whose only paths are:

``<Outcome> scan. <Priority> priority, <headline>: <phrase>; <phrase>; ... .``

* the outcome lead (``Complete scan.``, ``Partial scan.``) is fixed by the facts;
* the priority is one of the choices the facts allow (:func:`phrases.priority_choices`);
* the headline is one of a few short phrases of the class that leads (:data:`HEADLINE_PHRASES`:
  "vessel traffic", "active fire", "stressed fields", ...): no digits, no names, no number
  words, no negations, no word for another class; singular or plural by the count; no
  "clear"/"quiet" unless every class was looked for over the whole scene, and no word of
  activity ("active") when nothing was found;
* the first phrase is the count of the class that leads; each further phrase is one of the
  scene's pre-rendered fact phrases (numbers rendered outside the model), each at most once, a
  class's details only after its count, every mandatory phrase before the end, within the
  character budget.

A failed scene (nothing was looked at) is never given to the model: the writer states what was
not checked with the template.

The model chooses the priority, the headline and which details to mention and in what order.
The grammar is applied as a token trie over the logits: where only one token is possible it
is not sampled but evaluated in a batch with the next ones, so a report costs a
handful of decoding steps instead of the ~65 ms per token of a GBNF grammar over Gemma's
262k-token vocabulary.  A fixed few-shot prefix is evaluated once at load and reused from the KV
cache.  The result is checked anyway (:mod:`.factcheck`) by the writer.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from ..errors import LlmTimeout, ModelError
from ..settings import ReportSettings
from .factcheck import (
    ACTIVITY_WORDS,
    ALL_CLEAR_WORDS,
    EMPTY_WORDS,
    looked_at_everything,
)
from .facts import Facts
from .fewshot import example_facts, facts_block, few_shot_prefix
from .gguf import DEFAULT_MODEL_NAME, GgufSession
from .phrases import (
    Phrase,
    compose,
    fact_phrases,
    headline_class,
    outcome_lead,
    priority_choices,
)

log = logging.getLogger(__name__)

#: the headlines the model chooses from, per class that leads (``None``: nothing found and
#: everything looked at): short neutral phrases with no number, name, negation, place or
#: cause, each naming its class.  Each is ``(phrase, number)``: ``"one"`` only for a single
#: detection, ``"many"`` only for several, ``"any"`` for both.  Whole phrases, so the
#: headline reads as English whatever the model prefers (word by word, the 270M model wrote
#: "active scene area vessel").
HEADLINE_PHRASES: dict[str | None, tuple[tuple[str, str], ...]] = {
    "fire": (
        ("active fire", "any"),
        ("active fires", "many"),
        ("fire detected", "one"),
        ("fires detected", "many"),
        ("fire activity", "any"),
        ("wildfire activity", "any"),
        ("hot spots", "many"),
    ),
    "ship": (
        ("vessel detected", "one"),
        ("ship detected", "one"),
        ("vessels detected", "many"),
        ("ships detected", "many"),
        ("vessel traffic", "many"),
        ("maritime activity", "any"),
        ("shipping activity", "any"),
    ),
    "crop_stress": (
        ("crop stress", "any"),
        ("crop stress detected", "any"),
        ("stressed field", "one"),
        ("stressed fields", "many"),
        ("stressed crops", "any"),
        ("field stress", "any"),
    ),
    None: (
        ("nothing found", "any"),
        ("clear scene", "any"),
        ("quiet scene", "any"),
    ),
}  # fmt: skip
#: every word of the headlines (their tokens are indexed at load)
HEADLINE_WORDS = tuple(
    sorted({w for ps in HEADLINE_PHRASES.values() for p, _ in ps for w in p.split()})
)


#: the headline when nothing was found and not everything was looked at
EMPTY_HEADLINE = ("nothing", "found")


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


# --- the reporter ---


def headline_choices(facts: Facts, lead: str | None, max_words: int) -> list[str]:
    """The headlines the model may choose for these facts: those of the class that leads
    (:data:`HEADLINE_PHRASES`) that fit its count, claim no activity when nothing was found
    and no clear scene when part of it was not looked at, in at most ``max_words`` words
    (the shortest phrase when none is that short)."""
    count = next((c.count for c in facts.classes if c.cls == lead), 0) if lead else 0
    partial = not looked_at_everything(facts)
    fits = [
        p
        for p, number in HEADLINE_PHRASES.get(lead, HEADLINE_PHRASES[None])
        if (number == "any" or (number == "one") == (count == 1))
        and not (partial and any(w in ALL_CLEAR_WORDS for w in p.split()))
        and not (not facts.total and any(w in ACTIVITY_WORDS for w in p.split()))
        and not (facts.total and any(w in EMPTY_WORDS for w in p.split()))
    ]
    short = [p for p in fits if len(p.split()) <= max_words]
    return short or sorted(fits, key=lambda p: len(p.split()))[:1]


class LlmReporter:
    """Loads the model once (``with LlmReporter(settings) as r:``) and writes reports."""

    def __init__(self, settings: ReportSettings | None = None, threads: int = 2) -> None:
        self.settings = settings or ReportSettings()
        #: prompt-evaluation threads / single-token decoding threads
        self.batch_threads = self.settings.threads or threads
        self.threads = self.settings.decode_threads
        self.model: GgufSession | None = None
        self.model_path: Path | None = None
        self.model_sha256: str | None = None
        self.model_name: str = DEFAULT_MODEL_NAME
        self.load_s: float = 0.0
        self.prefix_s: float = 0.0
        self.prefix_tokens: int = 0
        self.warmup_s: float = 0.0
        #: token of ``:`` (ends the headline) and of each headline word, set at load
        self.colon_token: int = -1
        self.headline_tokens: dict[str, list[int]] = {}

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
        return self.model is not None

    def load(self) -> None:
        """Verify and load the model, evaluate the few-shot prefix and index the vocabulary."""
        if self.model is not None:
            return
        t0 = time.perf_counter()
        model = GgufSession(self.settings, self.settings.n_ctx, self.threads, self.batch_threads)
        self.model_path, self.model_sha256, self.model_name = model.path, model.sha256, model.name
        colon = model.tokenize(":")
        if len(colon) != 1:
            model.close()
            raise ModelError(f"{model.name}: ':' is not a single token in this vocabulary")
        self.colon_token = colon[0]
        self.headline_tokens = {w: model.tokenize(" " + w) for w in HEADLINE_WORDS}
        self.model = model
        self.load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        prefix = model.tokenize(few_shot_prefix(), bos=True)
        model.eval(prefix, from_pos=0)
        self.prefix_tokens = len(prefix)
        self.prefix_s = time.perf_counter() - t1
        # warm-up: the first decodes of a process allocate llama.cpp's compute graphs; do it
        # here so that the first scene's report is not slower than the others
        t2 = time.perf_counter()
        _Decoder(self, model, example_facts()[0][0], math.inf, math.inf).run(t2)
        self.warmup_s = time.perf_counter() - t2
        log.info(
            "report model %s loaded in %.2f s; few-shot prefix %d tokens in %.2f s, warm-up %.2f s",
            model.name,
            self.load_s,
            self.prefix_tokens,
            self.prefix_s,
            self.warmup_s,
        )

    def close(self) -> None:
        if self.model is not None:
            try:
                self.model.close()
            finally:
                self.model = None

    def write(self, facts: Facts, timeout_s: float | None = None) -> LlmOutput:
        """Write one report of ``facts``.  Raises :class:`LlmTimeout` past the deadline and
        :class:`ModelError` on any model failure."""
        if self.model is None:
            self.load()
        model = self.model
        assert model is not None
        t0 = time.perf_counter()
        limit = self.settings.timeout_s if timeout_s is None else timeout_s
        model.deadline = t0 + limit
        try:
            return _Decoder(self, model, facts, t0 + limit, limit).run(t0)
        finally:
            model.deadline = math.inf


class _Decoder:
    """One constrained generation (see the module docstring)."""

    def __init__(
        self, rep: LlmReporter, model: GgufSession, facts: Facts, deadline: float, limit: float
    ) -> None:
        self.rep = rep
        self.model = model
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
            self.model.eval(self.pending)
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
        return self.model.logits()

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
        """One of :data:`HEADLINE_PHRASES` for the class that leads (or for an empty scene),
        at most ``headline_words`` words, fitting the number found and what was looked at,
        then ``:``."""
        rep = self.rep
        lead = headline_class(self.facts)
        if lead is None and not looked_at_everything(self.facts):
            # nothing found, and not everything looked at: nothing to name but that; the
            # template's words, forced (the model could only say less, or say "clear")
            for w in EMPTY_HEADLINE:
                self.choose([rep.headline_tokens[w]])
            self._emit(rep.colon_token)
            return " ".join(EMPTY_HEADLINE)
        pool = headline_choices(self.facts, lead, rep.settings.headline_words)
        k = self.choose([[t for w in p.split() for t in rep.headline_tokens[w]] for p in pool])
        self._emit(rep.colon_token)
        return pool[k]

    def run(self, t0: float) -> LlmOutput:
        rep = self.rep
        facts = self.facts
        max_chars = rep.settings.max_chars
        model = self.model
        prompt = model.tokenize(facts_block(facts))
        self._check_time()
        model.eval(prompt, from_pos=rep.prefix_tokens)
        self.fresh = True
        t_prompt = time.perf_counter()

        lead = outcome_lead(facts)
        choices = priority_choices(facts)
        opts = [model.tokenize(f" {lead} {p.capitalize()} priority,") for p in choices]
        priority = choices[self.choose(opts)]
        headline = self.headline()
        text = f"{lead} {priority.capitalize()} priority, {headline}:"

        remaining: list[Phrase] = list(fact_phrases(facts))
        chosen: list[Phrase] = []
        end = model.tokenize(".")
        first_key = None if headline_class(facts) is None else f"count_{headline_class(facts)}"
        stated: set[str] = set()
        while True:
            mandatory_left = [p for p in remaining if p.mandatory]
            over_budget = self.out_tokens >= rep.settings.max_tokens
            options: list[Phrase] = []
            for p in remaining:
                if not chosen and first_key is not None and p.key != first_key:
                    continue  # the class that leads comes first
                if p.cls is not None and not p.key.startswith(("count_", "unchecked")):
                    if f"count_{p.cls}" not in stated:
                        continue  # a class's details follow its count
                sep = " " if not chosen else "; "
                need = len(text) + len(sep) + len(p.text) + 1
                need += sum(len(q.text) + 2 for q in mandatory_left if q is not p)
                if need <= max_chars and (p.mandatory or not over_budget):
                    options.append(p)
            if mandatory_left and not any(p.mandatory for p in options):
                raise ModelError("count phrases do not fit the character budget")
            seqs = [model.tokenize((" " if not chosen else "; ") + p.text) for p in options]
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
            stated.add(p.key)
            remaining.remove(p)
            if not remaining:
                break
        summary = compose(priority, headline, chosen, lead)
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
