"""A folder of passes: find the packet files in it and choose an output folder for each.

``eotriage decode DIR`` decodes every ``*.bin`` file under ``DIR`` (recursively, in name
order).  Each pass goes to ``OUT/<its path inside DIR without .bin>/``; a last path part
``downlink`` (the name ``eotriage run`` gives its packet file) is dropped, so
``DIR/<scene>/downlink.bin`` is decoded into ``OUT/<scene>/``.
"""

from __future__ import annotations

from pathlib import Path

PASS_SUFFIX = ".bin"


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def find_passes(folder: str | Path, exclude: str | Path | None = None) -> tuple[Path, ...]:
    """Every ``*.bin`` file under ``folder`` (sorted), skipping any under ``exclude`` (the
    output folder, when it lies inside ``folder``)."""
    root = Path(folder)
    found = []
    for p in sorted(root.rglob(f"*{PASS_SUFFIX}")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if exclude is not None and _under(p, Path(exclude)):
            continue
        found.append(p)
    return tuple(found)


def pass_plan(folder: str | Path, out_dir: str | Path) -> tuple[tuple[Path, Path], ...]:
    """(pass file, its output folder) for every pass under ``folder``; the output folders are
    distinct (a clash keeps the full path inside ``folder``)."""
    root, out = Path(folder), Path(out_dir)
    plan: list[tuple[Path, Path]] = []
    used: set[Path] = set()
    for p in find_passes(root, exclude=out):
        rel = p.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if len(rel.parts) > 1 and rel.parts[-1] == "downlink" else rel.parts
        target = out.joinpath(*parts)
        if target in used:
            target = out.joinpath(*rel.parts)
        n = 2
        while target in used:
            target = out.joinpath(*rel.parts[:-1], f"{rel.parts[-1]}_{n}")
            n += 1
        used.add(target)
        plan.append((p, target))
    return tuple(plan)
