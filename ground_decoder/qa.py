"""Questions and answers on the ground: show each question beside its decoded answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.wire.qa import QA_KINDS, DecodedQA, decode_qa


@dataclass(frozen=True)
class WrittenQA:
    json_path: Path
    text_path: Path
    pairs: int


def qa_lines(qa: DecodedQA, asked: dict[int, dict[str, Any]] | None = None) -> list[str]:
    """Human lines: each answer under its question (from the answer, or the uplink file)."""
    lines: list[str] = []
    asked = asked or {}
    for a in sorted(qa.answers, key=lambda x: int(x.get("qid", 0))):
        qid = int(a.get("qid", 0))
        question = a.get("question") or asked.get(qid, {}).get("text", "?")
        lines.append(f"Q{qid}: {question}")
        lines.append(f"A{qid}: {a.get('text', '')}")
        if a.get("error"):
            lines.append(f"    (not answered: {a['error']})")
        else:
            lines.append(
                f"    (understood by {a.get('understood_by')}, written by {a.get('writer')}, "
                f"{a.get('latency_s')} s onboard)"
            )
    for q in qa.questions:
        lines.append(f"question {q.get('qid')}: {q.get('text')} (uplink, not yet answered)")
    for d in qa.damaged:
        lines.append(f"damaged bytes {d.start}..{d.end} ({d.cause})")
    for i in qa.incomplete:
        lines.append(f"item {i}: incomplete (packets lost)")
    for u in qa.undecodable:
        lines.append(f"undecodable: {u}")
    return lines


def write_qa(qa: DecodedQA, out_dir: str | Path) -> WrittenQA:
    """``answers.json`` (questions, answers, damage) and ``answers.txt`` (the Q/A lines)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "questions": list(qa.questions),
        "answers": list(qa.answers),
        "damaged": [{"start": d.start, "end": d.end, "cause": d.cause} for d in qa.damaged],
        "incomplete": list(qa.incomplete),
        "undecodable": list(qa.undecodable),
    }
    jp, tp = out / "answers.json", out / "answers.txt"
    jp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    tp.write_text("\n".join(qa_lines(qa)) + "\n")
    return WrittenQA(jp, tp, len(qa.answers))


__all__ = ["QA_KINDS", "WrittenQA", "decode_qa", "qa_lines", "write_qa"]
