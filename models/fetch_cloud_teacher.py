"""Locate or copy the ukis-csmask teacher models (optional extra ``clouds-accurate``).

The four ONNX U-Nets (~40 MB each) ship inside the ukis-csmask 1.0.0 wheel; they are not kept
in this repository.  This script lists them (path, size, sha256) or copies them into a folder,
e.g. next to the other models so the project's own loader (manifest + sha256 + golden copy) can
open them::

    python models/fetch_cloud_teacher.py                 # list
    python models/fetch_cloud_teacher.py --copy DIR [--models model_6b_l1c model_4b_l2a]

Exit status 2 with a one-line message naming the extra when ukis-csmask is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script
    sys.path.insert(0, str(REPO))

from pipeline.detectors import cloud_models as cm  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copy", type=Path, help="copy the ONNX files into this folder")
    ap.add_argument("--models", nargs="*", choices=sorted(cm.TEACHERS), default=None)
    args = ap.parse_args(argv)
    try:
        if args.copy:
            info = cm.copy_teacher_models(args.copy, args.models)
        else:
            info = {}
            for name in args.models or list(cm.TEACHERS):
                p = cm.teacher_model_path(name)
                info[name] = {
                    "path": str(p),
                    "bytes": p.stat().st_size,
                    "sha256": cm.sha256_file(p),
                }
    except cm.CloudModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
