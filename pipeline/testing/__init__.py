"""Data made for tests and benchmarks: synthetic Sentinel-2 scenes with known fires and
vessels (:mod:`.synthetic`), synthetic fields with known stress (:mod:`.synthetic_crops`),
random scene results for the report writer (:mod:`.samples`) and fault injection
(:mod:`.faults`).

It ships in the package because the CLI exposes it (``eotriage scenes generate``,
``eotriage bench faults``); the onboard path never imports it.
"""
