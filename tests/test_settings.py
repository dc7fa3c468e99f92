from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Settings


def test_from_toml(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(
        'tile_size = 512\noverlap = 32\ndetectors = ["fire"]\n[fire]\nratio_min = 1.5\n'
        "[gdal]\nGDAL_CACHEMAX = 32\n"
    )
    s = Settings.from_toml(p)
    assert (s.tile_size, s.overlap, s.fire.ratio_min, s.gdal["GDAL_CACHEMAX"]) == (
        512,
        32,
        1.5,
        "32",
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("tile_size = 16", "tile_size"),
        ("overlap = 2000", "overlap"),
        ("bogus = 1", "unknown setting"),
        ("detectors = ['boats']", "unknown detector"),
        ("[fire]\nratio = 2", r"unknown \[fire\]"),
        ("tile_size = ", "invalid TOML"),
    ],
)
def test_bad_settings(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Settings.from_toml(p)


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_toml(tmp_path / "nope.toml")
