"""Ask the satellite: an onboard detection store, question packets, checked answers.

Light on import: the store, query and packet modules need only the standard library and
shapely (the ground decoder uses them); the LLM loads only in :mod:`pipeline.ask.intent`.
"""
