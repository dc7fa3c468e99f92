"""The report model's fixed few-shot prompt: an instruction and four example fact sets, each
rendered with the same phrase renderer as real reports and evaluated once at load."""

from __future__ import annotations

from .facts import ClassFacts, Facts, Spot
from .phrases import compose, fact_phrases, outcome_lead

INSTRUCTION = (
    "Onboard satellite triage reports for a fire service or coast guard. Each report gives the "
    "priority, a short headline in plain lowercase words naming what leads, then copies the fact "
    "phrases exactly, most important first, separated by semicolons.\n\n"
)


def example_facts() -> list[tuple[Facts, str, str, tuple[str, ...]]]:
    fire = Facts(
        "S2B_T10SFH_20240913",
        (
            ClassFacts("fire", 4, True, 9200.0, 23, top=Spot(0.97, -121.842, 39.761, 4400.0)),
            ClassFacts("ship", 0, True),
            ClassFacts("crop_stress", 0, False, reason="detector not enabled"),
        ),
        time_utc="2024-09-13 18:52 UTC",
    )
    ships = Facts(
        "port_scan_0412",
        (
            ClassFacts("fire", 0, False, reason="needs band(s) B12"),
            ClassFacts(
                "ship",
                7,
                True,
                longest_m=214.0,
                top=Spot(0.91, 18.671, 54.402, length_m=214.0, heading_deg=95.0),
            ),
            ClassFacts("crop_stress", 0, True),
        ),
        place="Gdansk",
        outcome="partial",
    )
    crop = Facts(
        "field_survey_B7",
        (
            ClassFacts("fire", 0, True),
            ClassFacts("ship", 0, False, reason="detector not enabled"),
            ClassFacts(
                "crop_stress",
                2,
                True,
                1.75e6,
                worst_severity="high",
                top=Spot(0.8, 5.127, 52.034, 1.31e6, severity="high"),
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
            ("count_fire", "fire_top", "fire_total", "count_ship", "unchecked_crop_stress", "time"),
        ),
        (
            ships,
            "medium",
            "vessel traffic",
            ("count_ship", "unchecked_fire", "place", "ship_top", "count_crop_stress"),
        ),
        (
            crop,
            "medium",
            "stressed fields",
            ("count_crop_stress", "crop_top", "crop_total", "unchecked_ship", "count_fire", "time"),
        ),
        (empty, "low", "clear scene", ("count_fire", "count_ship", "count_crop_stress", "scene")),
    ]


def facts_block(facts: Facts) -> str:
    lines = "".join(f"- {p.text}\n" for p in fact_phrases(facts))
    return f"Facts:\n{lines}Report:"


def few_shot_prefix() -> str:
    parts = [INSTRUCTION]
    for facts, priority, headline, keys in example_facts():
        by_key = {p.key: p for p in fact_phrases(facts)}
        report = compose(priority, headline, [by_key[k] for k in keys], outcome_lead(facts))
        parts.append(f"{facts_block(facts)} {report}\n\n")
    return "".join(parts)
