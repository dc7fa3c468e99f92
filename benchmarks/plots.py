"""PNG plots from the benchmark results (matplotlib, headless).

* ``throughput_stages.png``: Mpx/s of 10 m grid per stage and end to end on the largest scene of
  the memory benchmark, with Sentinel-2's 19.3 Mpx/s acquisition rate as a line;
* ``memory_vs_size.png``: peak RSS against scene size;
* ``scaling.png``: Mpx/s per thread count and tile size;
* ``downlink_bytes.png``: bytes per product on a log scale (raw bands, zstd bands, packets),
  when the downlink benchmark ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

S2_MPX_PER_S = 19.3


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _results(records: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    rec = records.get(name)
    doc = rec.get("results") if rec else None
    return doc if isinstance(doc, dict) else None


def plot_throughput(doc: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    row = max(doc["results"], key=lambda r: r["size"])
    mpx = row["megapixels_10m"]
    t = row["timings_s"]
    stages = [k for k in t if k not in ("total", "load_models", "write", "ingest_wait")]
    stages = [k for k in stages if k != "detect" or not any(s.startswith("detect_") for s in t)]
    labels = [*stages, "end to end (process)"]
    values = [mpx / t[k] if t[k] > 0 else 0.0 for k in stages] + [row["mpx_per_s"]]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.barh(labels, values, color=["#4477aa"] * len(stages) + ["#cc6677"])
    ax.axvline(S2_MPX_PER_S, color="k", ls="--", lw=1)
    ax.text(S2_MPX_PER_S, len(labels) - 0.4, " Sentinel-2 rate 19.3", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("Mpx of 10 m grid per second (log)")
    ax.set_title(f"Throughput per stage, {row['size']:,}² px scene, 2 CPU cores")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_memory(doc: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    rows = sorted(doc["results"], key=lambda r: r["size"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([r["megapixels_10m"] for r in rows], [r["peak_rss_mib"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"{r['size']:,} px", (r["megapixels_10m"], r["peak_rss_mib"]), fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(0, max(r["peak_rss_mib"] for r in rows) * 1.4)
    ax.set_xlabel("scene size (Mpx of 10 m grid, log)")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title("Peak memory of `eotriage run` vs scene size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scaling(doc: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    rows = doc["results"]
    labels = [f"{r['threads']} thr, tile {r['tile_size']}" for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.barh(labels, [r["mpx_per_s"] for r in rows], color="#228833")
    ax.axvline(S2_MPX_PER_S, color="k", ls="--", lw=1)
    ax.set_xlabel("Mpx of 10 m grid per second")
    ax.set_title(f"Threads and tile size ({doc['settings']['size']:,}² px scene)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_downlink(doc: dict[str, Any], path: Path) -> Path:
    """Bytes per product for every scene in the downlink benchmark (log scale)."""
    plt = _plt()
    rows = doc["results"]
    keys = [k for k in ("raw_bytes", "zstd_bytes", "packet_bytes") if k in rows[0]]
    if not keys:
        raise ValueError("downlink results carry none of raw_bytes, zstd_bytes, packet_bytes")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        xs = [i + j * width for i in range(len(rows))]
        ax.bar(xs, [max(1, r[key]) for r in rows], width, label=key.replace("_", " "))
    ax.set_xticks([i + width * (len(keys) - 1) / 2 for i in range(len(rows))])
    ax.set_xticklabels(
        [str(r.get("scene", i)) for i, r in enumerate(rows)], rotation=20, ha="right"
    )
    ax.set_yscale("log")
    ax.set_ylabel("bytes (log)")
    ax.set_title("What goes down: raw bands vs compressed bands vs report packets")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(records: Mapping[str, Any], out: Path) -> list[Path]:
    """Every plot whose benchmark ran; raises when a present result cannot be plotted."""
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    plan = (
        ("memory", "throughput_stages.png", plot_throughput),
        ("memory", "memory_vs_size.png", plot_memory),
        ("scaling", "scaling.png", plot_scaling),
        ("downlink", "downlink_bytes.png", plot_downlink),
    )
    for name, filename, fn in plan:
        doc = _results(records, name)
        if doc is not None:
            made.append(fn(doc, out / filename))
    return made
