"""Score crop stress: a synthetic series against its truth, a real scene against a land cover.

**Series** (:func:`run_series`, :func:`evaluate_series`): the dates of a series written by
:func:`pipeline.testing.synthetic_crops.generate_crop_series` run in order with one history
folder, so that every date sees the passes before it.  Per date and parcel the truth says
whether the parcel is stressed and whether it can be seen (at least ``min_clear_share`` of its
10 m pixels under clear sky).  Scored:

* parcel-date precision (features on truly stressed parcels / all features) and recall (truly
  stressed parcels that could be seen, found that date);
* *found from the first stressed date*: stressed parcels found on the first date they are
  stressed and seen (the parcel recall of the target);
* false features on parcels not seen (hidden by cloud), false features on cloudy dates,
  pixels of features on non-crop land (forest, scrub, desert);
* area: the features' ``area_km2`` against the truly stressed parcels' area (a parcel feature
  stands for its whole parcel, a raster area for the parcel's part under clear sky): all
  features against the stressed parcels seen or found, and true features only (the
  measurement error).

**Real scene** (:func:`evaluate_scene`): features outside the cropland layer and, with a
land-cover raster, on land-cover classes that are not cropland.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.features import rasterize
from rasterio.warp import Resampling, reproject, transform_geom
from shapely.geometry import mapping

from ..core.results import SceneResult
from ..errors import InputError, cause_text
from ..settings import Settings


def detection_mask(
    result: SceneResult, shape: tuple[int, int], transform: Affine, crs: str
) -> np.ndarray:
    """Rasterise the ``crop_stress`` detections on a grid (bool, pixel centres inside)."""
    geoms = [
        transform_geom("EPSG:4326", crs, mapping(d.geometry))
        for d in result.detections
        if d.cls == "crop_stress"
    ]
    if not geoms:
        return np.zeros(shape, bool)
    burned = rasterize(
        [(g, 1) for g in geoms], out_shape=shape, transform=transform, fill=0, dtype="uint8"
    )
    return burned.astype(bool)


def load_truth(series: str | Path) -> dict[str, Any]:
    p = Path(series)
    if p.is_dir():
        p = p / "truth.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read crop truth ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != "crop stress series":
        raise InputError(f"{p}: not the truth of a synthetic crop series")
    return data


def _read(path: Path) -> tuple[np.ndarray, Affine, str]:
    try:
        with rasterio.open(path) as ds:
            return ds.read(1), ds.transform, ds.crs.to_string()
    except RasterioError as exc:
        raise InputError(f"{path}: {cause_text(exc)}") from None


@dataclass(frozen=True)
class DateScore:
    """One date of a series."""

    index: int
    date: str
    cloud_cover: float
    #: parcels truly stressed and seen / of those found / features / true ones
    stressed_seen: int
    found: int
    features: int
    true_features: int
    #: false features on parcels hidden by cloud (clear share below the minimum)
    on_hidden: int
    #: feature pixels (10 m) on forest, scrub or desert
    noncrop_px: int
    truth_km2: float
    detected_km2: float
    true_detected_km2: float
    true_truth_km2: float
    by_reference: dict[str, int]


@dataclass(frozen=True)
class SeriesEvaluation:
    mode: str
    dates: tuple[DateScore, ...]
    stressed_parcels: int
    #: stressed parcels found on the first date they were stressed and seen
    found_first: int
    #: stressed parcels seen on none of their stressed dates (cannot be found)
    never_seen: int

    def _sum(self, key: str) -> float:
        return float(sum(getattr(d, key) for d in self.dates))

    @property
    def parcel_recall(self) -> float:
        n = self.stressed_parcels - self.never_seen
        return self.found_first / n if n else 1.0

    @property
    def recall(self) -> float:
        n = self._sum("stressed_seen")
        return self._sum("found") / n if n else 1.0

    @property
    def precision(self) -> float:
        n = self._sum("features")
        return self._sum("true_features") / n if n else 1.0

    @property
    def area_error(self) -> float:
        t = self._sum("truth_km2")
        return (self._sum("detected_km2") - t) / t if t else float("inf")

    @property
    def measure_error(self) -> float:
        """Area error of the true features alone (how well a found parcel is measured)."""
        t = self._sum("true_truth_km2")
        return (self._sum("true_detected_km2") - t) / t if t else 0.0

    @property
    def cloudy_false(self) -> int:
        """False features on dates with clouds."""
        return int(sum(d.features - d.true_features for d in self.dates if d.cloud_cover > 0))

    def to_dict(self) -> dict[str, Any]:
        refs: dict[str, int] = {}
        for d in self.dates:
            for k, v in d.by_reference.items():
                refs[k] = refs.get(k, 0) + v
        return {
            "mode": self.mode,
            "dates": len(self.dates),
            "stressed_parcels": self.stressed_parcels,
            "found_first": self.found_first,
            "never_seen": self.never_seen,
            "parcel_recall": round(self.parcel_recall, 4),
            "recall": round(self.recall, 4),
            "precision": round(self.precision, 4),
            "features": int(self._sum("features")),
            "false_features": int(self._sum("features") - self._sum("true_features")),
            "on_hidden": int(self._sum("on_hidden")),
            "cloudy_false": self.cloudy_false,
            "noncrop_px": int(self._sum("noncrop_px")),
            "truth_km2": round(self._sum("truth_km2"), 4),
            "detected_km2": round(self._sum("detected_km2"), 4),
            "area_error": round(self.area_error, 4),
            "measure_error": round(self.measure_error, 4),
            "by_reference": refs,
            "per_date": [dataclasses.asdict(d) for d in self.dates],
        }


def series_settings(series: str | Path, settings: Settings, mode: str, history: Path) -> Settings:
    """``settings`` for running a series: crop only, its parcels (``mode`` "parcels") or its
    cropland raster ("raster") as the layer, ``history`` as the history folder."""
    truth = load_truth(series)
    layer = truth["parcels_file"] if mode == "parcels" else truth["cropland_raster"]
    crop = dataclasses.replace(
        settings.crop, layers=(str(Path(series) / layer),), layers_dir=None, history=history
    )
    return settings.replace(detectors=("crop",), crop=crop)


def run_series(
    series: str | Path, settings: Settings, mode: str, history: Path
) -> list[SceneResult]:
    """Run every date of a series in order, with one history folder."""
    from ..core.engine import run_scene
    from ..testing.synthetic_crops import series_scenes

    s = series_settings(series, settings, mode, history)
    return [run_scene(p, s) for p in series_scenes(series)]


def evaluate_series(
    series: str | Path,
    results: Sequence[SceneResult],
    mode: str = "parcels",
    min_clear_share: float = 0.5,
) -> SeriesEvaluation:
    """Score the runs of a series' dates (see the module docstring)."""
    truth = load_truth(series)
    folder = Path(series)
    if len(results) != len(truth["dates"]):
        raise InputError(f"{folder}: {len(results)} results for {len(truth['dates'])} dates")
    cls, transform, crs = _read(folder / truth["class_raster"])
    pid, _, _ = _read(folder / truth["parcel_raster"])
    classes = truth["classes"]
    noncrop = np.isin(cls, [classes[c] for c in ("forest", "scrub", "desert")])
    parcels = truth["parcels"]
    by_id = {p["id"]: p for p in parcels}
    first_seen: dict[str, int | None] = {}
    for p in parcels:
        if p["stress_from"] is None:
            continue
        first_seen[p["id"]] = next(
            (
                d["index"]
                for d in truth["dates"]
                if _stressed(p, d["index"]) and d["clear_share"][p["id"]] >= min_clear_share
            ),
            None,
        )
    found_first = 0
    scores = []
    for d, result in zip(truth["dates"], results, strict=True):
        k = d["index"]
        feats = [x for x in result.detections if x.cls == "crop_stress"]
        det_mask = detection_mask(result, cls.shape, transform, crs)
        seen = {p["id"] for p in parcels if d["clear_share"][p["id"]] >= min_clear_share}
        stressed_all = {p["id"] for p in parcels if _stressed(p, k)}
        stressed = stressed_all & seen
        det_ids: dict[str, float] = {}
        refs: dict[str, int] = {}
        true_feats = on_hidden = 0
        true_det_km2 = true_truth_km2 = 0.0

        def truth_area(i: str, share: dict[str, float] = d["clear_share"]) -> float:
            # a parcel feature covers the parcel; a raster area only what was under clear sky
            a = float(by_id[i]["area_km2"])
            return a if mode == "parcels" else a * float(share[i])

        hits: set[str] = set()
        for f in feats:
            ids = _feature_parcels(f, mode, pid, det_mask, transform, crs)
            area = float(f.measures.get("area_km2", 0.0))
            ref = str(f.measures.get("reference", ""))
            refs[ref] = refs.get(ref, 0) + 1
            # true when on a stressed parcel (a raster area may find one through the clear
            # part of a parcel mostly under cloud)
            hit = [i for i in ids if i in stressed_all]
            for i in ids:
                det_ids[i] = det_ids.get(i, 0.0) + area / max(len(ids), 1)
            if hit:
                true_feats += 1
                true_det_km2 += area
                true_truth_km2 += sum(truth_area(i) for i in hit)
                hits.update(hit)
            elif not any(i in seen for i in ids):
                on_hidden += 1
        found = stressed & set(det_ids)
        found_first += sum(1 for i in found if first_seen.get(i) == k)
        scores.append(
            DateScore(
                index=k,
                date=d["date"],
                cloud_cover=float(d["cloud_cover"]),
                stressed_seen=len(stressed),
                found=len(found),
                features=len(feats),
                true_features=true_feats,
                on_hidden=on_hidden,
                noncrop_px=int(np.count_nonzero(det_mask & noncrop)),
                # stressed parcels seen, and those found through their clear part
                truth_km2=round(sum(truth_area(i) for i in stressed | hits), 6),
                detected_km2=round(sum(float(f.measures["area_km2"]) for f in feats), 6),
                true_detected_km2=round(true_det_km2, 6),
                true_truth_km2=round(true_truth_km2, 6),
                by_reference=refs,
            )
        )
    return SeriesEvaluation(
        mode=mode,
        dates=tuple(scores),
        stressed_parcels=len(first_seen),
        found_first=found_first,
        never_seen=sum(1 for v in first_seen.values() if v is None),
    )


def _stressed(p: dict[str, Any], k: int) -> bool:
    frm, until = p["stress_from"], p["stress_until"]
    return frm is not None and k >= frm and (until is None or k < until)


def _feature_parcels(
    feature: Any,
    mode: str,
    pid: np.ndarray,
    det_mask: np.ndarray,
    transform: Affine,
    crs: str,
) -> list[str]:
    """Truth parcels a feature is about: its parcel id (parcels), or the parcels holding at
    least half of its pixels (raster areas)."""
    if mode == "parcels":
        return [str(feature.measures["parcel_id"])]
    g = transform_geom("EPSG:4326", crs, mapping(feature.geometry))
    m = rasterize([(g, 1)], out_shape=pid.shape, transform=transform, fill=0, dtype="uint8") > 0
    n = int(m.sum())
    if n == 0:
        return []
    nums, counts = np.unique(pid[m], return_counts=True)
    # a parcel counts when the feature covers half of its pixels or is mostly on it
    sizes = {int(v): int(np.count_nonzero(pid == v)) for v in nums if v > 0}
    return [
        f"P{int(v):03d}"
        for v, c in zip(nums, counts, strict=True)
        if v > 0 and (c >= 0.5 * n or c >= 0.5 * sizes[int(v)])
    ]


# --------------------------------------------------------------------------- real scene


@dataclass(frozen=True)
class SceneEvaluation:
    """Crop features of a real scene against its cropland layer and a land cover."""

    scene: str
    status: str
    features: int
    feature_km2: float
    #: feature pixels outside the layer's cropland (should be 0)
    outside_layer_px: int
    #: feature pixels on land-cover classes that are not cropland (None: no land cover given)
    on_noncrop_px: int | None
    by_reference: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate_scene(
    result: SceneResult,
    scene_grid: tuple[tuple[int, int], Affine, str],
    layer_mask: np.ndarray | None,
    landcover: Path | None = None,
    cropland_classes: Collection[int] = (40,),
) -> SceneEvaluation:
    """Features of a real scene: outside the layer (``layer_mask`` on the scene grid, True =
    cropland) and on a land cover's non-cropland classes (``landcover``: any raster, any grid;
    ``cropland_classes``: its cropland codes, 40 in ESA WorldCover)."""
    shape, transform, crs = scene_grid
    det = detection_mask(result, shape, transform, crs)
    outside = int(np.count_nonzero(det & ~layer_mask)) if layer_mask is not None else 0
    on_noncrop = None
    if landcover is not None:
        lc = np.zeros(shape, np.int32)
        try:
            with rasterio.open(landcover) as ds:
                reproject(
                    rasterio.band(ds, 1),
                    lc,
                    dst_transform=transform,
                    dst_crs=crs,
                    resampling=Resampling.nearest,
                )
        except RasterioError as exc:
            raise InputError(f"{landcover}: {cause_text(exc)}") from None
        on_noncrop = int(np.count_nonzero(det & ~np.isin(lc, list(cropland_classes))))
    feats = [d for d in result.detections if d.cls == "crop_stress"]
    refs: dict[str, int] = {}
    for f in feats:
        r = str(f.measures.get("reference", ""))
        refs[r] = refs.get(r, 0) + 1
    return SceneEvaluation(
        scene=result.scene,
        status=str(result.detectors.get("crop", "not enabled")),
        features=len(feats),
        feature_km2=round(sum(float(f.measures["area_km2"]) for f in feats), 5),
        outside_layer_px=outside,
        on_noncrop_px=on_noncrop,
        by_reference=refs,
    )


def layer_mask(layer_path: str | Path, grid: Any, unit_m: float = 40.0) -> np.ndarray:
    """The cropland of a layer on a scene's working grid (bool): parcels rasterised (pixel
    centres inside), or the raster's non-zero samples (nearest)."""
    from ..detectors.crop_layers import ParcelLayer, RasterLayer, load_layer

    layer = load_layer(layer_path, unit_m)
    shape = (grid.height, grid.width)
    if isinstance(layer, ParcelLayer):
        sp = layer.for_scene(grid)
        if len(sp.index) == 0:
            return np.zeros(shape, bool)
        return rasterize(
            [(g, 1) for g in sp.geoms_px],
            out_shape=shape,
            transform=Affine.identity(),
            fill=0,
            dtype="uint8",
        ).astype(bool)
    assert isinstance(layer, RasterLayer)
    return layer.units(shape, grid.transform, grid.crs) > 0


def scene_order(folder: str | Path) -> list[Path]:
    """A scene folder, or the scene folders inside ``folder`` (a real series) in acquisition
    order (scenes without a date last, by name)."""
    import datetime as dt

    from ..core.scene import open_scene
    from ..detectors.crop import acquisition_date

    f = Path(folder)
    subs = sorted(p for p in f.iterdir() if p.is_dir()) if f.is_dir() else []
    scenes = [p for p in subs if any(p.glob("*.tif"))]
    if not scenes:
        return [f]
    far = dt.date(9999, 1, 1)
    keyed = []
    for p in scenes:
        d = acquisition_date(open_scene(p))
        keyed.append((d or far, p.name, p))
    return [p for _, _, p in sorted(keyed)]
