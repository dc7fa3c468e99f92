"""Onboard report: scene facts -> short text (small local LLM or template) + compact GeoJSON.

* :mod:`.facts` — ``SceneResult`` -> frozen :class:`Facts` (counts, areas, positions, time, place)
* :mod:`.phrases` — fact phrases with every number rendered outside the model; the template
* :mod:`.llm` — :class:`LlmReporter`: GGUF model via llama-cpp-python, loaded once, quiet,
  constrained per fact set to choose among the phrases and write a short headline
* :mod:`.factcheck` — every number, count, class word and place of a text vs the facts
* :mod:`.compact` — quantised, budgeted GeoJSON for the downlink
* :mod:`.writer` — :class:`ReportWriter`: LLM or template fallback, report files

llama-cpp-python is imported only when a model is loaded.
"""

from __future__ import annotations

from ..errors import LlmTimeout
from .compact import compact_geojson
from .factcheck import CheckResult, check
from .facts import Facts, facts_from_result
from .llm import LlmOutput, LlmReporter
from .phrases import template_summary
from .writer import Report, ReportWriter, WrittenReport, write_report_files

__all__ = [
    "CheckResult",
    "Facts",
    "LlmOutput",
    "LlmReporter",
    "LlmTimeout",
    "Report",
    "ReportWriter",
    "WrittenReport",
    "check",
    "compact_geojson",
    "facts_from_result",
    "template_summary",
    "write_report_files",
]
