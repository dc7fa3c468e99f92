#!/usr/bin/env python3
"""The crop-stress figure of docs/crop_stress.md: ``crop_references.png``.

(a) A synthetic series (``generate_crop_series(dir, 480, seed=4, n_dates=10)``, the test
    suite's series): the mean NDVI of three parcels through the season, with the history
    reference of each date (the parcel's best clear pass of the last 60 days, dashed) and the
    scene reference (median of the parcels seen that date, with the band median - z_min x
    robust spread); the dates a parcel was reported, and by which reference.
(b) One date of the same series: every parcel's NDVI against the other parcels (robust
    z-score) and against its own history (drop below its recent best), with the thresholds.
(c) The Virginia sample with its hand-drawn parcels (one date: only the scene reference).

Run::

    .venv/bin/python docs/make_crop_figure.py [OUT_PNG]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from matplotlib.patches import Polygon as MplPolygon
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    import pipeline
    import pipeline.detectors.crop as crop
    from pipeline.evaluation.crop import series_settings
    from pipeline.settings import CropSettings
    from pipeline.testing.synthetic_crops import generate_crop_series, series_scenes

    out = Path(argv[1]) if len(argv) > 1 else REPO / "docs" / "crop_references.png"
    th = crop.CropDetector(pipeline.Settings(detectors=("crop",))).thresholds
    # capture what the detector judged on every date (a wrapper around crop.judge)
    seen: list[dict[str, np.ndarray]] = []
    judge = crop.judge

    def spy(ndvi: np.ndarray, ndmi: np.ndarray, ref: object, *a: object) -> crop.Verdict:
        v = judge(ndvi, ndmi, ref, *a)  # type: ignore[arg-type]
        seen.append({"ndvi": ndvi.copy(), "v": v})  # type: ignore[dict-item]
        return v

    crop.judge = spy  # type: ignore[assignment]
    ids_by_date: list[list[str]] = []
    jp = crop.CropDetector._judge_parcels

    def spy_parcels(self, act, comps, scene, state):  # type: ignore[no-untyped-def]
        cs = self.settings.crop
        step = self.step(scene.grid)
        cell_m2 = (step * scene.grid.ground_res_m) ** 2
        sums = {k: np.array([c.stats.get(k, 0.0) for c in comps]) for k in crop.SUM_KEYS}
        ok = crop._observed(sums, cs.min_clear_share) & (sums["n_cells"] * cell_m2 >= 5000)
        idx = [int(c.key.split(":")[1]) for c in comps]
        ids_by_date.append([act.layer.ids[i] for i, o in zip(idx, ok, strict=True) if o])
        return jp(self, act, comps, scene, state)

    crop.CropDetector._judge_parcels = spy_parcels  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as td:
        series = generate_crop_series(
            Path(td) / "series", 480, seed=4, n_dates=10, cloudy={2: 0.35, 6: 1.0},
            stressed_share=0.25,
        )  # fmt: skip
        import json

        truth = json.loads((series / "truth.json").read_text())
        s = series_settings(series, pipeline.Settings(), "parcels", Path(td) / "history")
        results = []
        for scene in series_scenes(series):
            n_before, ids_before = len(seen), len(ids_by_date)
            results.append(pipeline.run_scene(scene, s))
            if len(seen) == n_before:  # nothing judged (all cloud)
                seen.append({})
            if len(ids_by_date) == ids_before:
                ids_by_date.append([])
    crop.judge = judge
    crop.CropDetector._judge_parcels = jp
    dates = [d["date"][5:] for d in truth["dates"]]
    n = len(dates)
    parcels = {p["id"]: p for p in truth["parcels"]}
    recovering = next(p for p in truth["parcels"] if p["stress_until"] is not None)
    stressed = next(
        p
        for p in truth["parcels"]
        if p["stress_until"] is None and p["stress_from"] is not None and p["stress_from"] >= 4
    )
    healthy = next(p for p in truth["parcels"] if p["stress_from"] is None)
    fig = plt.figure(figsize=(13, 9.0), dpi=100)
    gs = fig.add_gridspec(2, 3, height_ratios=[1.0, 1.1], hspace=0.3, wspace=0.3)
    ax = fig.add_subplot(gs[0, :])
    x = np.arange(n)
    med, lo = np.full(n, np.nan), np.full(n, np.nan)
    for k, rec in enumerate(seen[:n]):
        if rec:
            v = rec["ndvi"]
            m = float(np.median(v))
            sp = max(1.4826 * float(np.median(np.abs(v - m))), crop.MIN_SPREAD)
            med[k], lo[k] = m, m - max(th["z_min"] * sp, th["scene_drop_min"])
    ax.fill_between(x, lo, med, color="0.85", label="scene: median of the parcels seen, down to "
                    "the stress line (z = -z_min, at least scene_drop_min)")  # fmt: skip
    ax.plot(x, med, color="0.45", lw=1)
    colours = {"healthy": "tab:green", "stressed": "tab:red", "recovering": "tab:orange"}
    for label, p in (("healthy", healthy), ("stressed", stressed), ("recovering", recovering)):
        ys, best = np.full(n, np.nan), np.full(n, np.nan)
        for k in range(n):
            rec = seen[k]
            if not rec or p["id"] not in ids_by_date[k]:
                continue
            j = ids_by_date[k].index(p["id"])
            ys[k] = rec["ndvi"][j]
            best[k] = rec["v"].expected[j]
        c = colours[label]
        what = f"{label} parcel {p['id']}"
        if p["stress_from"] is not None:
            until = p["stress_until"] or n
            what += f" (stressed dates {p['stress_from'] + 1}-{until})"
            ax.axvspan(p["stress_from"] - 0.45, until - 0.55, color=c, alpha=0.07)
        ax.plot(x, ys, "o-", color=c, label=what)
        ax.plot(x, best, "--", color=c, lw=1, alpha=0.8)
        for k in range(n):
            hit = [d for d in results[k].detections if d.measures["parcel_id"] == p["id"]]
            if hit:
                ref = str(hit[0].measures["reference"])
                ax.annotate(
                    ref.replace("history+scene", "both"), (k, ys[k]), textcoords="offset points",
                    xytext=(0, -16), ha="center", fontsize=8, color=c,
                )  # fmt: skip
    for k, d in enumerate(truth["dates"]):
        if d["cloud_cover"] > 0.5:
            ax.axvspan(k - 0.45, k + 0.45, color="tab:blue", alpha=0.12)
            ax.text(k, 0.03, f"{d['cloud_cover']:.0%}\ncloud", ha="center", fontsize=8)
        elif d["cloud_cover"] > 0:
            ax.text(k, 0.03, f"{d['cloud_cover']:.0%}\ncloud", ha="center", fontsize=8)
    ax.plot([], [], "k--", lw=1, label="history reference: the parcel's best clear pass of the "
            "last 60 days (expected value)")  # fmt: skip
    ax.set_xticks(x, [f"{i + 1}\n{d}" for i, d in enumerate(dates)], fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("parcel mean NDVI (clear cells)")
    ax.set_title(
        "(a) a synthetic series: a parcel is reported when it drops below its own recent best "
        "(history) or falls far below the other parcels (scene)",
        fontsize=10,
    )
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
    # (b) one date: both references for every parcel
    k = 8
    rec = seen[k]
    v = rec["v"]
    ax2 = fig.add_subplot(gs[1, 0:2])
    truly = np.array(
        [
            parcels[i]["stress_from"] is not None
            and parcels[i]["stress_from"] <= k
            and (parcels[i]["stress_until"] is None or k < parcels[i]["stress_until"])
            for i in ids_by_date[k]
        ]
    )
    ax2.scatter(v.drop_history[~truly], v.z[~truly], s=18, c="tab:green", label="healthy (truth)")
    ax2.scatter(v.drop_history[truly], v.z[truly], s=26, c="tab:red", marker="s",
                label="stressed (truth)")  # fmt: skip
    rep = v.stressed
    ax2.scatter(v.drop_history[rep], v.z[rep], s=80, facecolors="none", edgecolors="k",
                label="reported")  # fmt: skip
    ax2.axvline(th["drop_min"], color="tab:purple", ls="--", lw=1)
    ax2.annotate("history: drop >= drop_min\n(NDMI confirms)", (th["drop_min"], 0.97),
                 xycoords=("data", "axes fraction"), xytext=(4, -4), textcoords="offset points",
                 va="top", color="tab:purple", fontsize=8)  # fmt: skip
    ax2.axhline(-th["z_min"], color="0.3", ls="--", lw=1)
    ax2.annotate("scene: z <= -z_min (and >= scene_drop_min below the median)",
                 (0.99, -th["z_min"]), xycoords=("axes fraction", "data"), xytext=(0, 4),
                 textcoords="offset points", ha="right", fontsize=8, color="0.3")  # fmt: skip
    ax2.set_xlabel("drop below the parcel's own recent best (NDVI)")
    ax2.set_ylabel("robust z-score among the scene's parcels")
    ax2.set_title(f"(b) date {k + 1} ({dates[k]}): the two references for every parcel seen",
                  fontsize=10)  # fmt: skip
    ax2.legend(fontsize=8, loc="lower left")
    # (c) Virginia with its parcels
    ax3 = fig.add_subplot(gs[1, 2])
    vir = REPO / "sample_scenes" / "s2_l1c_virginia_crop"
    arr = []
    for b in ("B04", "B03", "B02"):
        with rasterio.open(vir / f"{b}.tif") as ds:
            arr.append(ds.read(1).astype(np.float32) / 10000.0)
            tr, crs = ds.transform, ds.crs
    rgb = np.dstack(arr)
    lo_, hi_ = np.percentile(rgb, 2), np.percentile(rgb, 98)
    ax3.imshow(np.clip((rgb - lo_) / (hi_ - lo_), 0, 1) ** 0.8)
    layer = vir / "parcels.geojson"
    res = pipeline.run_scene(
        vir, pipeline.Settings(detectors=("crop",), crop=CropSettings(layers=(str(layer),)))
    )
    flagged = {str(d.measures["parcel_id"]): d for d in res.detections}
    inv = ~tr
    for f in json.loads(layer.read_text())["features"]:
        g = shape(transform_geom("EPSG:4326", crs, f["geometry"]))
        xy = [inv * c for c in mapping(g)["coordinates"][0]]
        bad = f["id"] in flagged
        ax3.add_patch(MplPolygon(xy, closed=True, fill=False, lw=2 if bad else 1,
                                 ec="red" if bad else "yellow"))  # fmt: skip
        if bad:
            m = flagged[f["id"]].measures
            cx, cy = np.mean(xy, axis=0)
            ax3.annotate(
                f"{f['id']}\nNDVI {m['mean_ndvi']:.2f}, z {m['z_scene']:.1f}\n"
                f"(median {m['scene_median_ndvi']:.2f})",
                (cx, cy), xytext=(110, 330), color="white", fontsize=8,
                arrowprops={"arrowstyle": "->", "color": "white"},
            )  # fmt: skip
    ax3.set_xlim(0, 330)
    ax3.set_ylim(512, 0)
    ax3.set_xticks([])
    ax3.set_yticks([])
    ax3.set_title("(c) Virginia sample, hand-drawn parcels (yellow);\none date: scene "
                  "reference only (red: reported)", fontsize=10)  # fmt: skip
    fig.savefig(out, bbox_inches="tight")
    from PIL import Image  # a 256-colour PNG is a third of the size and looks the same

    Image.open(out).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
        out, optimize=True
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
