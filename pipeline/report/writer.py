"""Choose the writer (LLM or template), check the text, and write the report files.

The LLM report is used only when it passes :func:`factcheck.check`; on a mismatch, a timeout,
a model that cannot load or any model error the deterministic template is used and the reason
recorded.  A report never fails a scene.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from .._fsio import atomic_write
from ..core.results import SceneResult
from ..errors import EotriageError, LlmTimeout, ModelError
from ..settings import ReportSettings
from .compact import compact_geojson
from .factcheck import check
from .facts import Facts, facts_from_result
from .llm import LlmOutput, LlmReporter
from .phrases import template_summary

log = logging.getLogger(__name__)

REPORT_TXT = "report.txt"
REPORT_JSON = "report.json"
COMPACT_GEOJSON = "compact.geojson"


@dataclass(frozen=True)
class Report:
    """A scene's text report and how it was made."""

    summary: str
    priority: str
    #: "llm" or "template"
    writer: str
    #: why the template was used although the LLM was enabled (``None``: no fallback)
    fallback_reason: str | None
    model: str | None
    model_sha256: str | None
    latency_s: float
    facts: Facts
    #: the LLM's own figures (tokens, decisions, times), when it ran
    llm: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "priority": self.priority,
            # the scene outcome; its reasons and the per-class status are in "facts" (outcome,
            # outcome_reasons, classes[].status / reason / coverage), not repeated here: this
            # dict is the report product of the downlink
            "outcome": self.facts.outcome,
            "writer": self.writer,
            "fallback_reason": self.fallback_reason,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "latency_s": round(self.latency_s, 4),
            "llm": self.llm,
            "facts": self.facts.to_dict(),
        }

    def run_section(self) -> dict[str, Any]:
        """The ``"report"`` section of run.json."""
        return {
            "writer": self.writer,
            "priority": self.priority,
            "summary": self.summary,
            "fallback_reason": self.fallback_reason,
            "latency_s": round(self.latency_s, 4),
            "model": self.model,
        }


@dataclass(frozen=True)
class WrittenReport:
    report: Report
    report_txt: Path
    report_json: Path
    compact_geojson: Path
    bytes: dict[str, int]


def _llm_stats(out: LlmOutput) -> dict[str, Any]:
    return {
        "headline": out.headline,
        "phrases": list(out.phrase_keys),
        "prompt_tokens": out.prompt_tokens,
        "output_tokens": out.output_tokens,
        "decisions": out.decisions,
        "prompt_s": round(out.prompt_s, 4),
        "generate_s": round(out.generate_s, 4),
    }


class ReportWriter:
    """Writes reports for many scenes; the LLM loads on first use, once per writer.

    ``with ReportWriter(settings.report, threads=settings.threads) as w: w.report(result)``
    """

    def __init__(
        self,
        settings: ReportSettings | None = None,
        threads: int = 2,
        reporter: LlmReporter | None = None,
    ) -> None:
        self.settings = settings or ReportSettings()
        self._own = reporter is None
        self._reporter = reporter
        self._threads = threads
        self._load_error: str | None = None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._own and self._reporter is not None:
            self._reporter.close()
            self._reporter = None

    def _llm(self) -> LlmReporter | None:
        if self._load_error is not None:
            return None
        if self._reporter is None:
            self._reporter = LlmReporter(self.settings, threads=self._threads)
        if not self._reporter.loaded:
            try:
                self._reporter.load()
            except EotriageError as exc:
                self._load_error = f"model unavailable: {exc}"
                log.warning("report model not loaded, using the template: %s", exc)
                return None
        return self._reporter

    def report(self, result: SceneResult) -> Report:
        return self.report_facts(facts_from_result(result))

    def report_facts(self, facts: Facts) -> Report:
        # the model loads on first use, once per writer; latency_s excludes that load
        rep = self._llm() if self.settings.use_llm else None
        t0 = time.perf_counter()
        reason: str | None = None
        model = sha = None
        stats: dict[str, Any] | None = None
        if self.settings.use_llm and facts.outcome == "failed":
            # nothing was looked at: no headline to write, only what was not checked and why
            reason = "scene failed: the template states what was not checked"
        elif self.settings.use_llm:
            if rep is None:
                reason = self._load_error
            else:
                model, sha = rep.model_name, rep.model_sha256
                try:
                    out = rep.write(facts, timeout_s=self.settings.timeout_s)
                except LlmTimeout as exc:
                    reason = f"timeout: {exc}"
                except ModelError as exc:
                    reason = f"model error: {exc}"
                except Exception as exc:  # noqa: BLE001 - a model bug must not lose the scene
                    log.exception("report model failed on %s", facts.scene)
                    reason = f"model error: {type(exc).__name__}: {exc}"
                else:
                    stats = _llm_stats(out)
                    verdict = check(out.summary, out.priority, facts, self.settings.max_chars)
                    if verdict.ok:
                        return Report(
                            out.summary,
                            out.priority,
                            "llm",
                            None,
                            model,
                            sha,
                            time.perf_counter() - t0,
                            facts,
                            stats,
                        )
                    reason = f"fact check failed: {verdict.reason}"
                    stats["rejected_summary"] = out.summary
            log.info("%s: report falls back to the template (%s)", facts.scene, reason)
        summary, priority = template_summary(facts, self.settings.max_chars)
        return Report(
            summary,
            priority,
            "template",
            reason,
            model,
            sha,
            time.perf_counter() - t0,
            facts,
            stats,
        )

    def write(self, result: SceneResult, directory: str | Path) -> WrittenReport:
        """Write report.txt, report.json and compact.geojson into ``directory`` atomically."""
        report = self.report(result)
        compact = compact_geojson(result, self.settings.max_features)
        return write_report_files(Path(directory), report, compact)


def write_report_files(directory: Path, report: Report, compact: dict[str, Any]) -> WrittenReport:

    directory.mkdir(parents=True, exist_ok=True)
    files = {
        REPORT_TXT: (report.summary + "\n").encode(),
        REPORT_JSON: (json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n").encode(),
        COMPACT_GEOJSON: json.dumps(compact, separators=(",", ":"), ensure_ascii=False).encode(),
    }
    for name, data in files.items():
        atomic_write(directory / name, data)
    return WrittenReport(
        report,
        directory / REPORT_TXT,
        directory / REPORT_JSON,
        directory / COMPACT_GEOJSON,
        {k: len(v) for k, v in files.items()},
    )
