"""A scene's report and compact GeoJSON (plus optional chips and quicklook) -> its packets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .plan import DownlinkPlan, encode_scene

if TYPE_CHECKING:
    from ..core.sky import SkyMap
    from ..settings import DownlinkSettings


def pack_scene(
    scene_name: str,
    report: dict[str, Any],
    compact: dict[str, Any],
    settings: DownlinkSettings,
    scene_path: str | None = None,
    sensor: str | None = None,
    sky_map: SkyMap | None = None,
    scaling: str | None = None,
    cloudy_discard: float | None = None,
) -> DownlinkPlan:
    """The scene's downlink plan: report + compact GeoJSON, and the extras the settings ask
    for (chips and quicklook are cut from the scene at ``scene_path``), within the pass budget.

    A scene at least ``cloudy_discard`` under cloud or shadow with no detection sends only its
    manifest (outcome, classes, cloud fractions) and a one-line report: no downlink is spent
    on what nobody could see."""
    status = compact.get("eotriage") or {}
    if (
        cloudy_discard is not None
        and is_cloudy(status, cloudy_discard)
        and not compact.get("features")
    ):
        line: dict[str, Any] = {
            k: report[k] for k in ("summary", "priority", "outcome") if k in report
        }
        return encode_scene(
            line,
            None,
            budget_bytes=settings.budget_bytes,
            scene=scene_name,
            status=status,
        )
    extras = None
    if settings.chips or settings.quicklook:
        from ..core.scene import open_scene
        from .chips import make_extras

        if scene_path is None:
            raise ValueError("chips and quicklook need the scene's path")
        scene = open_scene(scene_path, sensor=sensor, scaling=scaling)
        extras = make_extras(
            scene,
            compact,
            chips=settings.chips,
            chip_size=settings.chip_size,
            max_chips=settings.max_chips,
            quicklook=settings.quicklook,
            quicklook_width=settings.quicklook_width,
            sky_map=sky_map,
        )
    return encode_scene(
        report, compact, extras=extras, budget_bytes=settings.budget_bytes, scene=scene_name
    )


def is_cloudy(status: Mapping[str, Any], threshold: float) -> bool:
    """True when the cloud screen saw at least ``threshold`` of the scene under cloud or
    shadow (``status``: compact.geojson's ``eotriage`` member)."""
    c = status.get("clouds")
    if not isinstance(c, Mapping) or c.get("status") != "checked":
        return False
    obscured = float(c.get("cloud_fraction", 0.0)) + float(c.get("shadow_fraction", 0.0))
    return obscured >= threshold
