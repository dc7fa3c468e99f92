"""Draw docs/architecture.png: the data flow of one scene and the package's rooms.

.venv/bin/python docs/make_architecture_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent / "architecture.png"

#: (label, modules) per room, top row first: each room imports only rooms below it
LAYERS: list[list[tuple[str, str]]] = [
    [("cli/", "one module per command group")],
    [("ground/", "batch, constellation"), ("evaluation/", "ships, fire, crop, scoring")],
    [("runner.py", "one per-scene runner: write,\ncheckpoint, resume, outbox")],
    [
        ("ask/", "store, query, intent, answer"),
        ("downlink/", "plan, pack, chips,\nalerts, outbox"),
        ("uplink.py", "signed bundles"),
    ],
    [("report/", "facts, phrases, factcheck,\nfewshot, gguf, llm, writer, compact")],
    [("testing/", "synthetic scenes, faults, samples")],
    [("detectors/", "fire, ships, crop")],
    [
        (
            "core/",
            "scene, ingest, tiling, prefetch, engine, stream, replay,\n"
            "vectorise, results, detector, onnx_models, env, watchdog, checkpoint",
        )
    ],
    [
        ("settings.py", "typed, validated"),
        ("_fsio.py", "atomic writes, sha256"),
        ("wire/", "ccsds, codec, products, qa\n(standard library only)"),
    ],
    [("sensors.py", "sensor profiles"), ("errors.py", "one exception tree")],
]
FLOW = ["scene files", "ingest", "detect", "vectorise", "report", "downlink", "ground decoder"]
COLOURS = {
    "cli/": "#d9d9d9",
    "runner.py": "#fdd0a2",
    "core/": "#c6dbef",
    "detectors/": "#c7e9c0",
    "wire/": "#fde0ef",
}


def box(ax: plt.Axes, x: float, y: float, w: float, h: float, title: str, body: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.01,rounding_size=0.02",
            fc=COLOURS.get(title, "#f0f0f0"),
            ec="#444444",
            lw=1.0,
        )
    )
    ax.text(x + w / 2, y + h * 0.68, title, ha="center", va="center", fontsize=10, weight="bold")
    ax.text(x + w / 2, y + h * 0.3, body, ha="center", va="center", fontsize=7.2)


def main() -> None:
    fig, ax = plt.subplots(figsize=(11, 12.5))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.12)
    ax.axis("off")
    # data flow along the top
    ax.text(0.5, 1.1, "Data flow of one scene", ha="center", fontsize=12, weight="bold")
    n = len(FLOW)
    for i, name in enumerate(FLOW):
        x = 0.02 + i * (0.96 / n)
        box(ax, x, 1.01, 0.96 / n - 0.02, 0.06, name, "")
        if i:
            ax.add_patch(
                FancyArrowPatch(
                    (x - 0.02, 1.04), (x, 1.04), arrowstyle="-|>", mutation_scale=12, color="k"
                )
            )
    ax.text(
        0.5,
        0.975,
        "Rooms of the package: each imports only the rooms below it (checked by import-linter)",
        ha="center",
        fontsize=12,
        weight="bold",
    )
    h = 0.078
    gap = 0.016
    for r, row in enumerate(LAYERS):
        y = 0.94 - (r + 1) * (h + gap) + gap
        w = (0.96 - 0.02 * (len(row) - 1)) / len(row)
        for c, (title, body) in enumerate(row):
            box(ax, 0.02 + c * (w + 0.02), y, w, h, title, body)
    ax.add_patch(
        FancyArrowPatch(
            (0.995, 0.9), (0.995, 0.03), arrowstyle="-|>", mutation_scale=16, color="#888888"
        )
    )
    ax.text(0.985, 0.5, "imports", rotation=90, ha="right", va="center", color="#666666")
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
