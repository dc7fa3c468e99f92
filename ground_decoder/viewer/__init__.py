"""The ground viewer: one self-contained HTML page per decoded scene, and an index over passes.

A duty officer opens ``index.html`` from disk, with or without network, and sees on a map
(pan, zoom) where the ships, fires and stressed fields are, what the satellite said about them,
how sure it is and what was lost in transmission.  Each page holds everything it shows:
Leaflet (through folium, with its JS and CSS inlined from this package), the detections, the
report and the quicklook and chips as data URIs; OpenStreetMap tiles are the basemap only when
the browser is online, a graticule on a plain background otherwise.

Needs the ``viewer`` extra (``pip install 'eotriage[viewer]'``, i.e. folium);
``import ground_decoder`` does not import this package.

Typical use::

    import ground_decoder
    from ground_decoder.viewer import write_scene_page

    decoded = ground_decoder.decode_stream(Path("downlink.bin").read_bytes())
    ground_decoder.write_decoded(decoded, "ground_out/")
    write_scene_page(decoded, "ground_out/")          # ground_out/index.html

or ``eotriage decode downlink.bin --out ground_out/`` (``--html`` is on by default), and
``eotriage decode PASSES_DIR --out ground_out/`` for an index over a folder of passes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..decode import Decoded
from .model import ClassStatus, DetectionView, ImageView, Notice, SceneView, scene_view
from .page import IndexEntry, index_html, scene_html, sort_entries, write_text

__all__ = [
    "ClassStatus",
    "DetectionView",
    "ImageView",
    "IndexEntry",
    "Notice",
    "SceneView",
    "ViewerPages",
    "index_html",
    "scene_html",
    "scene_view",
    "sort_entries",
    "write_index_page",
    "write_scene_page",
    "write_viewer",
]

PAGE_NAME = "index.html"


@dataclass(frozen=True)
class ViewerPages:
    """The pages :func:`write_viewer` wrote: the one to open first, and every scene page."""

    index: Path
    pages: tuple[Path, ...]


def _href(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def write_scene_page(
    decoded: Decoded,
    out_dir: str | Path,
    *,
    source: str | None = None,
    index_href: str | None = None,
) -> Path:
    """Write ``out_dir/index.html``, the page of one decoded scene; returns its path."""
    view = scene_view(decoded)
    return write_text(
        Path(out_dir) / PAGE_NAME, scene_html(view, source=source, index_href=index_href)
    )


def write_index_page(
    entries: Sequence[IndexEntry], out_dir: str | Path, title: str = "Decoded passes"
) -> Path:
    """Write ``out_dir/index.html``, the index over scenes (links relative to ``out_dir``)."""
    return write_text(Path(out_dir) / PAGE_NAME, index_html(entries, title))


def write_viewer(
    scenes: Sequence[tuple[Decoded, str | Path, str | None]],
    out_dir: str | Path,
    *,
    failures: Sequence[tuple[str, str]] = (),
    title: str | None = None,
) -> ViewerPages:
    """Pages for what ``eotriage decode`` wrote.

    ``scenes`` holds (decoded scene, the folder its products went to, the pass file it came
    from); ``failures`` (pass file, why) lists passes that gave no scene.  A single scene
    written straight into ``out_dir`` gets its page as ``out_dir/index.html``; otherwise every
    scene gets ``<its folder>/index.html`` and ``out_dir/index.html`` is the index over them.
    """
    out = Path(out_dir)
    if len(scenes) == 1 and not failures and Path(scenes[0][1]).resolve() == out.resolve():
        decoded, _folder, source = scenes[0]
        page = write_scene_page(decoded, out, source=source)
        return ViewerPages(page, (page,))
    pages: list[Path] = []
    entries: list[IndexEntry] = []
    for decoded, folder, source in scenes:
        folder = Path(folder)
        view = scene_view(decoded)
        page = write_text(
            folder / PAGE_NAME,
            scene_html(view, source=source, index_href=_href(out / PAGE_NAME, folder)),
        )
        pages.append(page)
        entries.append(IndexEntry(view, href=_href(page, out), source=source))
    entries += [IndexEntry(None, source=s, error=why) for s, why in failures]
    if title is None:
        title = f"{len(scenes)} decoded scene(s)" + (
            f", {len(failures)} pass(es) unreadable" if failures else ""
        )
    index = write_index_page(entries, out, title)
    return ViewerPages(index, tuple(pages))
