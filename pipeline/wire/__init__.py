"""The wire format: what goes over the radio and what the ground decoder imports.

Standard library only (no numpy, rasterio, onnxruntime or llama-cpp), so that
:mod:`ground_decoder` can decode packets on any machine:

* :mod:`.ccsds` — CCSDS space packets: primary header, APIDs, sequence counts, CRC-16, stream
  scanning that skips and reports damaged ranges;
* :mod:`.codec` — the lossless compact codec of GeoJSON and reports;
* :mod:`.products` — product kinds and their payloads (manifest, report, detection chunks,
  chips, quicklook);
* :mod:`.qa` — question and answer packets of "ask the satellite".
"""
