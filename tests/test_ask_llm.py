"""The onboard LLM only fills a slot the parser left open, by constrained choice (short tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ask.answer import answer_question
from pipeline.ask.intent import MIN_MARGIN, OPTION_WORDS, QuestionModel
from pipeline.ask.query import Question
from pipeline.ask.store import DetectionStore
from pipeline.errors import ModelError

from .test_ask import feature

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def model() -> Iterator[QuestionModel]:
    with QuestionModel() as m:
        yield m


def test_word_meaning_is_one_of_the_offered_values(model: QuestionModel) -> None:
    for word, options in (
        ("freighters", ["ship", "fire", "crop_stress", "cloud"]),
        ("tally", ["count", "largest", "list"]),
        ("helicopters", ["ship", "fire"]),
    ):
        best, margin = model.word_meaning(word, options)
        assert best in [*options, "other"] and best in OPTION_WORDS
        assert margin >= 0


def test_llm_fills_only_open_slots_or_the_question_is_not_understood(
    model: QuestionModel, tmp_path: Path
) -> None:
    with DetectionStore(tmp_path / "s.db") as store:
        store.add_scene(
            "busan",
            [feature("ship", 129.0, 35.0, length_m=80), feature("fire", 129.01, 35.0)],
            "2023-05-14",
        )
        # class and operation known: an unknown word cannot be given to the LLM
        a = answer_question(store, Question("How many moored ships in busan?"), model)
        assert a.status == "not understood" and "moored" in a.text
        assert model.calls == 0 or a.understood_by == "not understood"
        # class open: the LLM may map the word, but only onto a class, with a clear margin
        a = answer_question(store, Question("How many helicopters in busan?"), model)
        if a.status == "answered":
            assert a.understood_by == "parser+llm" and a.filter is not None
            assert a.filter["cls"] in ("ship", "fire", "crop_stress", "cloud")
            assert any("margin" in n for n in a.notes)
            margin = float(a.notes[0].rsplit("margin ", 1)[1].rstrip(")"))
            assert margin >= MIN_MARGIN
            assert a.text.split(" ")[1].startswith(("ship", "fire", "stressed", "cloud"))
        else:
            assert a.status == "not understood" and "helicopters" in a.text


def test_timeout_means_not_understood(model: QuestionModel, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="timed out"):
        model.word_meaning("freighters", ["ship", "fire"], timeout_s=1e-9)
    with DetectionStore(tmp_path / "s.db") as store:
        store.add_scene("a", [feature("ship", 10.0, 50.0, length_m=90)], "2023-05-14")
        a = answer_question(store, Question("How many freighterz?"), model, timeout_s=1e-9)
    assert a.status in ("not understood", "answered")
    if a.status == "answered":  # typo-read as "freighters" by the parser itself, no LLM
        assert a.understood_by == "parser"
