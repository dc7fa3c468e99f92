"""Ask the satellite: an onboard detection store, question packets, understood and exact answers.

Light on import: the store, parser, query and packet modules need only the standard library and
shapely (the ground decoder uses them); the LLM loads only in :mod:`pipeline.ask.intent`, and
only when a question holds a word the parser does not know while a slot is still open.
See docs/ask.md.
"""
