"""The onboard LLM understands questions (constrained choice) and its answers are checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ask.answer import answer_question, check_text
from pipeline.ask.intent import QuestionModel
from pipeline.ask.query import Question
from pipeline.ask.store import DetectionStore
from pipeline.errors import ModelError

from .test_ask import feature

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def model() -> Iterator[QuestionModel]:
    with QuestionModel() as m:
        yield m


@pytest.mark.parametrize(
    ("text", "kind", "cls"),
    [
        ("How many vessels are in the harbour?", "count", "ship"),
        ("Where is the closest blaze to 44.2N 121.3W?", "nearest", "fire"),
        ("Which drought-stressed field is the biggest?", "largest", "crop_stress"),
    ],
)
@pytest.mark.slow
def test_intent_is_a_valid_filter(model: QuestionModel, text: str, kind: str, cls: str) -> None:
    got_kind, got_cls, margin = model.intent(text)
    assert (got_kind, got_cls) == (kind, cls)
    assert margin > 0


@pytest.mark.slow
def test_llm_answer_is_checked_or_replaced(model: QuestionModel, tmp_path: Path) -> None:
    with DetectionStore(tmp_path / "s.db") as store:
        store.add_scene(
            "a",
            [feature("ship", 10.0, 50.0, length_m=80), feature("ship", 10.01, 50.0, length_m=99)],
            "2026-11-28T08:00:00Z",
        )
        a = answer_question(
            store, Question("How many ships are in this box?", bbox=(9.9, 49.9, 10.1, 50.1)), model
        )
    assert a.understood_by == "llm" and a.facts["matches"] == 2
    assert check_text(a.text, a.facts) is None  # whatever wrote it, it states only facts
    assert a.writer in ("llm", "template")
    if a.writer == "template":
        assert a.fallback_reason


@pytest.mark.slow
def test_intent_timeout_falls_back_to_keywords(model: QuestionModel, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="timed out"):
        model.intent("How many ships?", timeout_s=1e-6)
    with DetectionStore(tmp_path / "s.db") as store:
        store.add_scene("a", [feature("fire", 10.0, 50.0, area_m2=400)], "2026-11-28T08:00:00Z")
        a = answer_question(store, Question("How many fires?"), model, timeout_s=1e-6)
    assert a.understood_by == "keywords" and a.facts["matches"] == 1
    assert a.writer == "template" and "timed out" in (a.fallback_reason or "")
