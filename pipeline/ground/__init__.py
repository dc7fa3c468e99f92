"""Ground-segment tools that reuse the onboard pipeline: archive reprocessing on Dask
(:mod:`.batch`) and the constellation simulation (:mod:`.constellation`)."""
