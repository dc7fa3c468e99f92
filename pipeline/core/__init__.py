"""The onboard core: scenes, sensor profiles, windowed ingest, tiling, the tile engine, the
streaming API, vectorising, results, model sessions, watchdogs and checkpoints.

Depends on :mod:`pipeline.errors`, :mod:`pipeline.settings` and :mod:`pipeline._fsio` only;
detectors are found through the registry in :mod:`pipeline.core.detector`, so core never
imports a detector, the runner, the CLI, ground tools or evaluation.
"""
