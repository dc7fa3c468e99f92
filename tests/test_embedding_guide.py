"""docs/embedding.md: its example payload application runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ground_decoder import decode_scenes

from .conftest import REPO

GUIDE = REPO / "docs" / "embedding.md"


def example_code() -> str:
    text = GUIDE.read_text()
    head = text.index("## Example payload application")
    blocks = re.findall(r"```python\n(.*?)```", text[head:], re.S)
    assert blocks, "no python example in the guide"
    return blocks[0]


def test_embedding_example_runs_and_writes_decodable_alerts(tmp_path: Path) -> None:
    script = tmp_path / "payload.py"
    script.write_text(example_code())
    outbox = tmp_path / "outbox.bin"
    env = dict(os.environ, EOTRIAGE_OUTBOX=str(outbox))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"12 alerts written to {outbox}" in proc.stdout
    alerts = decode_scenes(outbox.read_bytes())
    assert len(alerts) == 12
    assert all(a.damage.ok for a in alerts)
    assert {f["properties"]["class"] for a in alerts for f in a.geojson["features"]} == {"fire"}
