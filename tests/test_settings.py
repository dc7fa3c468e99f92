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


def test_override_ignores_none_and_parses_cli_values() -> None:
    base = Settings()
    assert (
        base.override(tile_size=None, detectors=None, sections={"report": {"use_llm": None}})
        == base
    )
    s = base.override(
        tile_size=512,
        detectors="fire, crop",
        sections={"report": {"use_llm": False}, "downlink": {"budget_bytes": 4000}},
    )
    assert s.tile_size == 512 and s.detectors == ("fire", "crop")
    assert s.report.use_llm is False and s.report.timeout_s == base.report.timeout_s
    assert s.downlink.budget_bytes == 4000
    assert base.override(detectors="").detectors == base.detectors
    with pytest.raises(ConfigError, match="unknown sensor"):
        base.override(sensor="nope")
    with pytest.raises(ConfigError, match="unknown detector"):
        base.override(detectors="fire,radar")
    with pytest.raises(ConfigError, match=r"\[downlink\] budget_bytes"):
        base.override(sections={"downlink": {"budget_bytes": -1}})
