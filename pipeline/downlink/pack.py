"""A scene's report and compact GeoJSON (plus optional chips and quicklook) -> its packets."""

from __future__ import annotations

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
) -> DownlinkPlan:
    """The scene's downlink plan: report + compact GeoJSON, and the extras the settings ask
    for (chips and quicklook are cut from the scene at ``scene_path``), within the pass budget.
    """
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
