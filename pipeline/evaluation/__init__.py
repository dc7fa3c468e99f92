"""Scoring detections against truth: ships against labelled vessels (:mod:`.ships`), fire
against a reference hot-pixel list (:mod:`.fire`), crop stress against synthetic truth
(:mod:`.crop`), with the shared matching helpers in :mod:`.scoring`."""
