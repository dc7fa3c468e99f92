"""Masks -> polygons, merging across tiles, and reprojection to WGS84.

Polygons are built in *scene pixel coordinates* (integer vertices), so pieces of one object cut
by a tile edge meet exactly and can be merged without floating-point tolerance; they are
reprojected to WGS84 only at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from affine import Affine
from rasterio.features import shapes
from rasterio.warp import transform_geom
from shapely import STRtree, unary_union
from shapely.affinity import affine_transform
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from .scene import Grid

#: How per-pixel statistics combine when pieces merge.
SUM, MAX = "sum", "max"


@dataclass(frozen=True)
class Component:
    """One connected object found in one tile, in scene pixel coordinates."""

    cls: str
    tile_id: str
    geometry: BaseGeometry
    #: statistic name -> value; combined with ``rules`` when pieces of one object merge
    stats: Mapping[str, float]
    rules: Mapping[str, str] = field(default_factory=dict)
    #: True when the object touches its tile's core edge, so it may continue in a neighbour
    at_edge: bool = False
    #: Identity of the object when it is known in advance (e.g. a field parcel's id): pieces with
    #: a key merge with the pieces of the same class and key only, whatever their geometry; ""
    #: = connected pixels, merged by touching geometry.
    key: str = ""


def label_components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected labelling: (count, labels int32, stats as cv2.CC_STAT_*)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    return n - 1, labels, stats


def component_polygons(labels: np.ndarray, col_off: int, row_off: int) -> dict[int, BaseGeometry]:
    """Label image -> {label: polygon or multipolygon} in scene pixel coordinates.

    GDAL polygonises 4-connected regions; diagonal-only neighbours of one 8-connected component
    become parts of a MultiPolygon that touch at a corner.
    """
    tr = Affine.translation(col_off, row_off)
    parts: dict[int, list[BaseGeometry]] = {}
    for geom, value in shapes(labels, mask=labels > 0, connectivity=4, transform=tr):
        parts.setdefault(int(value), []).append(shape(geom))
    return {k: (v[0] if len(v) == 1 else unary_union(v)) for k, v in parts.items()}


def merge_components(components: Sequence[Component]) -> list[Component]:
    """Merge pieces of one object that were cut by tile edges.

    Only pieces flagged ``at_edge`` can continue across a tile edge; pieces from different tiles
    whose pixel squares touch (edge or corner, i.e. 8-connectivity) are united.  Pieces with a
    :attr:`Component.key` are united with the other pieces of their class and key instead.
    """
    keyed: dict[tuple[str, str], list[Component]] = {}
    for c in components:
        if c.key:
            keyed.setdefault((c.cls, c.key), []).append(c)
    by_key = [_combine(g) if len(g) > 1 else g[0] for g in keyed.values()]
    components = [c for c in components if not c.key]
    inner = [c for c in components if not c.at_edge] + by_key
    edge = [c for c in components if c.at_edge]
    if len(edge) < 2:
        return inner + edge
    parent = list(range(len(edge)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = STRtree([c.geometry for c in edge])
    left, right = tree.query([c.geometry for c in edge], predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j and edge[i].cls == edge[j].cls and edge[i].tile_id != edge[j].tile_id:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[Component]] = {}
    for i, c in enumerate(edge):
        groups.setdefault(find(i), []).append(c)
    merged = [_combine(g) if len(g) > 1 else g[0] for g in groups.values()]
    return inner + merged


def _combine(group: list[Component]) -> Component:
    rules = group[0].rules
    stats: dict[str, float] = {}
    for key in group[0].stats:
        values = [c.stats[key] for c in group]
        stats[key] = max(values) if rules.get(key, SUM) == MAX else float(sum(values))
    tiles = ",".join(sorted({t for c in group for t in c.tile_id.split(",")}))
    return Component(
        group[0].cls,
        tiles,
        unary_union([c.geometry for c in group]),
        stats,
        rules,
        any(c.at_edge for c in group),
        group[0].key,
    )


def pixel_to_wgs84(geom: BaseGeometry, grid: Grid) -> BaseGeometry:
    """Scene pixel coordinates -> scene CRS -> WGS84 lon/lat, exteriors counter-clockwise."""
    t = grid.transform
    in_crs = affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])
    out = shape(transform_geom(grid.crs, "EPSG:4326", mapping(in_crs)))
    return orient_rfc7946(out)


def orient_rfc7946(geom: BaseGeometry) -> BaseGeometry:
    """Polygons' exteriors counter-clockwise and holes clockwise (RFC 7946)."""
    if geom.geom_type == "Polygon":
        return orient(geom, sign=1.0)
    if geom.geom_type == "MultiPolygon":
        from shapely.geometry import MultiPolygon

        return MultiPolygon([orient(p, sign=1.0) for p in geom.geoms])
    return geom


def centroid_lonlat(geom: BaseGeometry) -> tuple[float, float]:
    c = geom.centroid
    return float(c.x), float(c.y)


def stats_by_label(
    labels: np.ndarray, n: int, values: Mapping[str, np.ndarray], reducers: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """Per-label sums or maxima of pixel values over labelled pixels (labels 1..n)."""
    sel = labels > 0
    return reduce_by_index(labels[sel] - 1, n, {k: a[sel] for k, a in values.items()}, reducers)


def reduce_by_index(
    index: np.ndarray, n: int, values: Mapping[str, np.ndarray], reducers: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """Sums or maxima (``reducers[key]``: :data:`SUM` / :data:`MAX`) of 1-D ``values`` into
    ``n`` bins by ``index`` (0..n-1, one per value), as float64."""
    out: dict[str, np.ndarray] = {}
    for key, arr in values.items():
        a = arr.astype(np.float64)
        if reducers[key] == SUM:
            out[key] = np.bincount(index, weights=a, minlength=n)
        else:
            m = np.full(n, -np.inf)
            np.maximum.at(m, index, a)
            out[key] = m
    return out


def components_from_mask(
    cls: str,
    tile_id: str,
    mask: np.ndarray,
    col_off: int,
    row_off: int,
    values: Mapping[str, np.ndarray],
    reducers: Mapping[str, str],
) -> list[Component]:
    """Connected components of ``mask`` (a tile core) with per-component statistics.

    ``values`` are pixel arrays of the mask's shape; ``reducers`` says per key whether pieces
    sum or take the maximum.  ``n_pixels`` (sum) is always added.  Work is done on the
    bounding box of the mask only (hot pixels are sparse).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    box = (slice(r0, r1), slice(c0, c1))
    n, labels, cc = label_components(mask[box])
    h, w = mask.shape
    vals = {k: v[box] for k, v in values.items()}
    vals["n_pixels"] = np.ones(labels.shape, np.float32)
    red = {**reducers, "n_pixels": SUM}
    per = stats_by_label(labels, n, vals, red)
    polys = component_polygons(labels, col_off + c0, row_off + r0)
    out: list[Component] = []
    for i in range(n):
        st = {k: float(v[i]) for k, v in per.items()}
        x, y, bw, bh = (int(v) for v in cc[i + 1, :4])
        x, y = x + c0, y + r0
        at_edge = x == 0 or y == 0 or x + bw == w or y + bh == h
        out.append(Component(cls, tile_id, polys[i + 1], st, red, at_edge))
    return out
