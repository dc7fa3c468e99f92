"""The report writer with the real onboard LLM (gemma3-270m GGUF via llama-cpp-python).

Never asserts generated text (greedy output differs between builds); asserts that the text
passes the fact check, and that a timeout or an injected wrong number falls back to the
template with the reason recorded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.core.results import SceneResult
from pipeline.errors import LlmTimeout, ModelError
from pipeline.report.factcheck import check
from pipeline.report.facts import Facts, facts_from_result
from pipeline.report.llm import LlmOutput, LlmReporter
from pipeline.report.writer import ReportWriter
from pipeline.settings import ReportSettings
from pipeline.testing.samples import random_result

from .conftest import run_cli
from .test_report import _numbers_match_geojson, _report_matches_geojson, _ships_and_crop

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def reporter() -> Iterator[LlmReporter]:
    with LlmReporter(ReportSettings(), threads=2) as rep:
        yield rep


@pytest.fixture(scope="module")
def fire_result(fire_scene: Path) -> SceneResult:
    from pipeline import run_scene

    return run_scene(fire_scene)


@pytest.mark.slow
def test_real_model_writes_a_checked_report(
    reporter: LlmReporter, fire_result: SceneResult
) -> None:
    assert reporter.prefix_tokens >= 300  # a real few-hundred-token prompt ran (no AMX crash)
    facts = facts_from_result(fire_result)
    out = reporter.write(facts, timeout_s=60)
    verdict = check(out.summary, out.priority, facts)
    assert verdict.ok, (out.summary, verdict.problems)
    assert out.priority == "high" and "12 fire clusters" in out.summary
    assert out.output_tokens >= 5 and out.decisions >= 2
    with ReportWriter(ReportSettings(timeout_s=60), reporter=reporter) as w:
        r = w.report(_ships_and_crop())
    assert r.writer == "llm" and r.fallback_reason is None, r.fallback_reason
    assert r.model == "gemma-3-270m-q4_k_m.gguf" and r.model_sha256 is not None
    assert check(r.summary, r.priority, r.facts).ok
    assert reporter.loaded  # a writer given a reporter does not close it


@pytest.mark.slow
def test_generated_fact_sets_pass_the_check(reporter: LlmReporter) -> None:
    passed = 0
    for seed in range(12):
        facts = facts_from_result(random_result(seed))
        out = reporter.write(facts, timeout_s=60)
        passed += check(out.summary, out.priority, facts).ok
    assert passed >= 11


def test_forced_timeout_falls_back(reporter: LlmReporter, fire_result: SceneResult) -> None:
    with ReportWriter(ReportSettings(timeout_s=1e-6), reporter=reporter) as w:
        r = w.report(fire_result)
    assert r.writer == "template"
    assert r.fallback_reason is not None and r.fallback_reason.startswith("timeout")
    assert check(r.summary, r.priority, r.facts).ok
    # the model is still usable after a timeout
    again = reporter.write(r.facts, timeout_s=60)
    assert check(again.summary, again.priority, r.facts).ok


class _WrongNumber(LlmReporter):
    """Injects a wrong number into the model's text, as a model that invents one would."""

    def __init__(self, inner: LlmReporter) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.model_name = inner.model_name
        self.model_sha256 = inner.model_sha256

    @property
    def loaded(self) -> bool:
        return True

    def write(self, facts: Facts, timeout_s: float | None = None) -> LlmOutput:
        out = self.inner.write(facts, timeout_s=60)
        bad = re.sub(r"\b12 fire clusters", "13 fire clusters", out.summary)
        assert bad != out.summary
        return dataclasses.replace(out, summary=bad)


def test_injected_wrong_number_falls_back(reporter: LlmReporter, fire_result: SceneResult) -> None:
    with ReportWriter(ReportSettings(), reporter=_WrongNumber(reporter)) as w:
        r = w.report(fire_result)
    assert r.writer == "template"
    assert r.fallback_reason is not None
    assert r.fallback_reason.startswith("fact check failed")
    assert "13 fire clusters" in r.fallback_reason
    assert r.llm is not None and "13 fire clusters" in r.llm["rejected_summary"]
    assert "12 fire clusters" in r.summary and check(r.summary, r.priority, r.facts).ok


def test_wrong_sha256_refuses_the_model(reporter: LlmReporter) -> None:
    assert reporter.model_path is not None
    bad = ReportSettings(model_path=reporter.model_path, model_sha256="0" * 64)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        LlmReporter(bad).load()


QUIET = r"""
from pipeline.report.llm import LlmReporter
from pipeline.testing.samples import random_result
from pipeline.report.facts import facts_from_result
with LlmReporter() as rep:
    print(rep.write(facts_from_result(random_result(3)), timeout_s=60).summary)
"""


@pytest.mark.slow
def test_model_is_quiet() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", QUIET], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stderr == ""
    assert "priority" in proc.stdout


@pytest.mark.slow
def test_run_writes_llm_reports_matching_detections(tmp_path: Path, fire_scene: Path) -> None:
    out = tmp_path / "out"
    virginia = fire_scene.parent / "s2_l1c_virginia_crop"
    proc = run_cli("run", fire_scene, virginia, "--out", out, "--llm-timeout", "60")
    assert proc.returncode == 0, proc.stderr
    d = out / "s2_fire_G90292"
    report = json.loads((d / "report.json").read_text())
    assert report["writer"] == "llm", report["fallback_reason"]
    assert report["model"] == "gemma-3-270m-q4_k_m.gguf" and len(report["model_sha256"]) == 64
    assert report["latency_s"] > 0
    run = json.loads((d / "run.json").read_text())
    assert run["report"]["writer"] == "llm" and run["report"]["fallback_reason"] is None
    _numbers_match_geojson(d)
    _report_matches_geojson(out / "s2_l1c_virginia_crop")


def test_timeout_aborts_a_running_decode(reporter: LlmReporter, fire_result: SceneResult) -> None:
    model = reporter.model
    assert model is not None
    model.deadline = time.perf_counter()  # the deadline has passed: llama.cpp must stop
    try:
        with pytest.raises(LlmTimeout, match="aborted"):
            model.eval(model.tokenize("- 3 ships\n" * 40), from_pos=reporter.prefix_tokens)
    finally:
        model.deadline = math.inf
    facts = facts_from_result(fire_result)
    out = reporter.write(facts, timeout_s=60)  # the prefix in the KV cache is intact
    assert check(out.summary, out.priority, facts).ok, out.summary
