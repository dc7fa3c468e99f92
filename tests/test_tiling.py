from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.tiling import count_tiles, tile_grid


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 700),
    height=st.integers(1, 700),
    size=st.integers(64, 300),
    overlap=st.integers(0, 31),
)
def test_cores_partition_grid_and_reads_contain_cores(
    width: int, height: int, size: int, overlap: int
) -> None:
    tiles = tile_grid(width, height, size, overlap)
    assert len(tiles) == count_tiles(width, height, size)
    cover = np.zeros((height, width), np.int32)
    for t in tiles:
        c, r = int(t.core.col_off), int(t.core.row_off)
        cover[r : r + int(t.core.height), c : c + int(t.core.width)] += 1
        rr, cc = int(t.read.row_off), int(t.read.col_off)
        assert 0 <= rr <= r and 0 <= cc <= c
        assert rr + int(t.read.height) <= height and cc + int(t.read.width) <= width
        assert r - rr >= min(overlap, r) and c - cc >= min(overlap, c)
        assert rr + int(t.read.height) - (r + int(t.core.height)) >= min(
            overlap, height - r - int(t.core.height)
        )
        assert cc + int(t.read.width) - (c + int(t.core.width)) >= min(
            overlap, width - c - int(t.core.width)
        )
        # every read window has the same shape
        assert int(t.read.height) == min(height, size + 2 * overlap)
        assert int(t.read.width) == min(width, size + 2 * overlap)
        rs, cs = t.core_in_read
        assert rs.stop - rs.start == int(t.core.height) and cs.stop - cs.start == int(t.core.width)
    assert (cover == 1).all()
    assert len({t.id for t in tiles}) == len(tiles)
