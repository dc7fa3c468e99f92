"""Signed uplink bundles: sign on the ground, verify and install atomically on board."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.uplink import uplink_group
from pipeline.core.engine import run_scene
from pipeline.core.onnx_models import load_manifest, optional_missing
from pipeline.errors import InputError, UplinkError
from pipeline.settings import Settings
from pipeline.uplink import (
    canonical_json,
    current_release,
    generate_keypair,
    install_bundle,
    load_private_key,
    sign_bundle,
    verify_bundle,
)

from .conftest import REPO, SAMPLES

MODELS = REPO / "models"
FIRE_ONNX = MODELS / "fire_swir.onnx"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("other"), stem="intruder")


def _fire_entry_manifest(tmp: Path, **changes: object) -> Path:
    """A models manifest.json holding only the fire_swir entry, with some fields changed."""
    entry = json.loads((MODELS / "manifest.json").read_text())["models"]["fire_swir"]
    thresholds = changes.pop("thresholds", None)
    entry.update(changes)
    if thresholds:
        entry["thresholds"] = {**entry["thresholds"], **thresholds}  # type: ignore[dict-item]
    p = tmp / "manifest.json"
    p.write_text(json.dumps({"schema": 1, "models": {"fire_swir": entry}}))
    return p


def _tar_members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        out = {}
        for m in tar:
            fh = tar.extractfile(m)
            assert fh is not None
            out[m.name] = fh.read()
        return out


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _snapshot(target: Path) -> dict[str, bytes]:
    """Every file reachable through target/current, by relative path."""
    cur = (target / "current").resolve()
    return {str(p.relative_to(cur)): p.read_bytes() for p in sorted(cur.rglob("*")) if p.is_file()}


@pytest.fixture()
def installed_v1(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    """A target with version 1 installed: the repo's models plus a settings file."""
    settings = tmp_path / "ground" / "settings.toml"
    settings.parent.mkdir()
    settings.write_text('detectors = ["fire"]\ntile_size = 512\n')
    b1 = sign_bundle([settings], keys[0], 1, tmp_path / "b1.eub")
    target = tmp_path / "payload"
    install_bundle(b1, keys[1], target, base_models=MODELS)
    return target


def test_sign_verify_round_trip(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    b = sign_bundle([FIRE_ONNX], keys[0], 3, tmp_path / "b.eub")
    vb = verify_bundle(b, keys[1])
    assert vb.version == 3 and vb.target == "eotriage"
    assert [f.dest for f in vb.files] == ["models/fire_swir.onnx"]
    assert vb.contents["models/fire_swir.onnx"] == FIRE_ONNX.read_bytes()
    # the signature covers the canonical manifest bytes exactly
    members = _tar_members(b)
    assert canonical_json(json.loads(members["manifest.json"])) == members["manifest.json"]
    load_private_key(keys[0]).public_key().verify(members["manifest.sig"], members["manifest.json"])


def test_install_updates_models_and_settings_and_runs(
    tmp_path: Path, keys: tuple[Path, Path], installed_v1: Path
) -> None:
    """v1 runs the fire detector with the stock thresholds; v2 uplinks a stricter manifest entry
    and v3 a new ONNX file under a new name: the installed release is what the engine runs."""
    rel1 = current_release(installed_v1)
    assert rel1 is not None and rel1.version == 1 and rel1.settings_path is not None
    s1 = Settings.from_toml(rel1.settings_path)
    assert s1.detectors == ("fire",) and s1.tile_size == 512
    scene = SAMPLES / "s2_fire_G90292"
    n1 = run_scene(scene, s1.replace(models_dir=rel1.models_dir)).counts()["fire"]
    assert n1 == 12

    ground = tmp_path / "ground2"
    ground.mkdir()
    strict = _fire_entry_manifest(ground, version="1.1.1", thresholds={"swir22_min": 1.0})
    b2 = sign_bundle([strict], keys[0], 2, tmp_path / "b2.eub")
    rel2 = install_bundle(b2, keys[1], installed_v1)
    assert rel2.version == 2
    manifest = load_manifest(rel2.models_dir)
    assert manifest["fire_swir"].thresholds["swir22_min"] == 1.0
    assert set(manifest) == set(load_manifest(MODELS))  # the other entries are kept
    assert rel2.settings_path is not None  # settings carried over from v1
    s2 = Settings.from_toml(rel2.settings_path).replace(models_dir=rel2.models_dir)
    n2 = run_scene(scene, s2).counts()["fire"]
    assert 0 < n2 < n1

    new_onnx = ground / "fire_swir_b.onnx"
    new_onnx.write_bytes(FIRE_ONNX.read_bytes())
    entry = _fire_entry_manifest(
        ground, file=new_onnx.name, sha256=hashlib.sha256(new_onnx.read_bytes()).hexdigest()
    )
    b3 = sign_bundle([new_onnx, entry], keys[0], 3, tmp_path / "b3.eub")
    rel3 = install_bundle(b3, keys[1], installed_v1)
    assert load_manifest(rel3.models_dir)["fire_swir"].path == rel3.models_dir / new_onnx.name
    s3 = Settings.from_toml(rel3.settings_path or "").replace(models_dir=rel3.models_dir)
    assert run_scene(scene, s3).counts()["fire"] == n1  # stock thresholds again
    # the uplinked model got its golden copy too: a corrupt primary still runs
    golden = rel3.models_dir / "golden" / new_onnx.name
    assert golden.read_bytes() == new_onnx.read_bytes()
    assert golden.stat().st_ino != (rel3.models_dir / new_onnx.name).stat().st_ino
    # older releases are pruned to the last two; the previous one is intact (hard links)
    names = sorted(p.name for p in (installed_v1 / "releases").iterdir())
    assert names == ["v000002", "v000003"]
    load_manifest(installed_v1 / "releases" / "v000002" / "models")


def _assert_rejected(
    bundle: Path, pub: Path, target: Path, match: str, before: dict[str, bytes]
) -> None:
    with pytest.raises(UplinkError, match=match):
        install_bundle(bundle, pub, target)
    assert _snapshot(target) == before
    rel = current_release(target)
    assert rel is not None and rel.version == 1
    leftovers = [p.name for p in (target / "releases").iterdir() if p.name != "v000001"]
    assert leftovers == []


def test_bad_signature_rejected(
    tmp_path: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path], installed_v1: Path
) -> None:
    before = _snapshot(installed_v1)
    forged = sign_bundle([FIRE_ONNX], other_keys[0], 9, tmp_path / "forged.eub")
    _assert_rejected(forged, keys[1], installed_v1, "bad signature", before)
    # a manifest edited after signing (version bumped) fails the signature too
    members = _tar_members(sign_bundle([FIRE_ONNX], keys[0], 2, tmp_path / "ok.eub"))
    members["manifest.json"] = members["manifest.json"].replace(b'"version":2', b'"version":7')
    edited = _write_tar(tmp_path / "edited.eub", members)
    _assert_rejected(edited, keys[1], installed_v1, "bad signature", before)
    assert issubclass(UplinkError, InputError)


def test_tampered_file_rejected(
    tmp_path: Path, keys: tuple[Path, Path], installed_v1: Path
) -> None:
    before = _snapshot(installed_v1)
    members = _tar_members(sign_bundle([FIRE_ONNX], keys[0], 2, tmp_path / "ok.eub"))
    onnx = bytearray(members["files/models/fire_swir.onnx"])
    onnx[len(onnx) // 2] ^= 0x01  # one flipped bit
    members["files/models/fire_swir.onnx"] = bytes(onnx)
    bad = _write_tar(tmp_path / "flip.eub", members)
    _assert_rejected(bad, keys[1], installed_v1, "tampered", before)
    # a file smuggled in beside the signed ones
    members = _tar_members(sign_bundle([FIRE_ONNX], keys[0], 2, tmp_path / "ok2.eub"))
    members["files/settings.toml"] = b"tile_size = 64\n"
    smuggled = _write_tar(tmp_path / "smuggled.eub", members)
    _assert_rejected(smuggled, keys[1], installed_v1, "not listed", before)
    # truncated transfer
    raw = (tmp_path / "ok2.eub").read_bytes()
    cut = tmp_path / "cut.eub"
    cut.write_bytes(raw[: len(raw) // 2])
    _assert_rejected(cut, keys[1], installed_v1, "bundle", before)


def test_old_or_same_version_rejected(
    tmp_path: Path, keys: tuple[Path, Path], installed_v1: Path
) -> None:
    before = _snapshot(installed_v1)
    for v in (1,):
        b = sign_bundle([FIRE_ONNX], keys[0], v, tmp_path / f"v{v}.eub")
        _assert_rejected(b, keys[1], installed_v1, "not newer than the installed version 1", before)
    # replaying an old bundle after a newer one is installed
    install_bundle(sign_bundle([FIRE_ONNX], keys[0], 5, tmp_path / "v5.eub"), keys[1], installed_v1)
    with pytest.raises(UplinkError, match="version 2 is not newer than the installed version 5"):
        install_bundle(
            sign_bundle([FIRE_ONNX], keys[0], 2, tmp_path / "v2.eub"), keys[1], installed_v1
        )
    rel = current_release(installed_v1)
    assert rel is not None and rel.version == 5


def test_wrong_target_rejected(tmp_path: Path, keys: tuple[Path, Path], installed_v1: Path) -> None:
    before = _snapshot(installed_v1)
    b = sign_bundle([FIRE_ONNX], keys[0], 2, tmp_path / "b.eub", target="other-sat")
    _assert_rejected(b, keys[1], installed_v1, "for target 'other-sat'", before)


def _signed_raw(tmp: Path, key: Path, files: dict[str, bytes], version: int = 2) -> Path:
    """A bundle built by hand (bypassing the ground-side checks) but correctly signed."""
    manifest = {
        "format": "eotriage-uplink",
        "schema": 1,
        "target": "eotriage",
        "version": version,
        "created": "2026-01-01T00:00:00Z",
        "files": [
            {"dest": d, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)}
            for d, b in files.items()
        ],
    }
    mbytes = canonical_json(manifest)
    members = {"manifest.json": mbytes, "manifest.sig": load_private_key(key).sign(mbytes)}
    members.update({f"files/{d}": b for d, b in files.items()})
    return _write_tar(tmp / f"raw{len(list(tmp.iterdir()))}.eub", members)


def test_signed_but_invalid_content_rejected(
    tmp_path: Path, keys: tuple[Path, Path], installed_v1: Path
) -> None:
    """Even with a good signature: bad settings, a manifest whose sha256 does not match its
    model file, or a path outside the allowed destinations leave the running release alone."""
    before = _snapshot(installed_v1)
    raw = tmp_path / "raw"
    raw.mkdir()
    bad_settings = _signed_raw(raw, keys[0], {"settings.toml": b"tile_size = 8\n"})
    _assert_rejected(bad_settings, keys[1], installed_v1, "settings rejected: .*tile_size", before)
    entry = json.loads(_fire_entry_manifest(raw, sha256="0" * 64).read_text())
    bad_sha = _signed_raw(raw, keys[0], {"models/manifest.json": json.dumps(entry).encode()})
    _assert_rejected(bad_sha, keys[1], installed_v1, "does not match the sha256", before)
    entry = json.loads(_fire_entry_manifest(raw, file="missing.onnx").read_text())
    missing = _signed_raw(raw, keys[0], {"models/manifest.json": json.dumps(entry).encode()})
    _assert_rejected(missing, keys[1], installed_v1, "needs missing.onnx", before)
    escape = _signed_raw(raw, keys[0], {"models/../../evil.onnx": b"x"})
    _assert_rejected(escape, keys[1], installed_v1, "not allowed", before)
    assert not (installed_v1 / "evil.onnx").exists()


def test_ground_refuses_to_sign_bad_settings(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    bad = tmp_path / "settings.toml"
    bad.write_text("[fire]\nbogus = 1\n")
    with pytest.raises(UplinkError, match=r"unknown \[fire\] setting\(s\): bogus"):
        sign_bundle([bad], keys[0], 2, tmp_path / "b.eub")
    with pytest.raises(UplinkError, match="cannot be uplinked"):
        sign_bundle([REPO / "README.md"], keys[0], 2, tmp_path / "b.eub")
    assert not (tmp_path / "b.eub").exists()


def test_failure_while_staging_keeps_running_release(
    tmp_path: Path, keys: tuple[Path, Path], installed_v1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk error half-way through staging: nothing half-installed, the next try works."""
    before = _snapshot(installed_v1)
    b = sign_bundle([FIRE_ONNX], keys[0], 2, tmp_path / "b.eub")
    import pipeline.uplink as uplink

    calls = {"n": 0}
    real_fsync = uplink._fsync_file

    def failing_fsync(path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_fsync(path)

    monkeypatch.setattr(uplink, "_fsync_file", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        install_bundle(b, keys[1], installed_v1)
    assert _snapshot(installed_v1) == before
    assert sorted(p.name for p in (installed_v1 / "releases").iterdir()) == ["v000001"]
    monkeypatch.setattr(uplink, "_fsync_file", real_fsync)
    assert install_bundle(b, keys[1], installed_v1).version == 2


_INSTALL_CHILD = """
import sys
from pipeline.uplink import install_bundle
print("ready", flush=True)
install_bundle(sys.argv[1], sys.argv[2], sys.argv[3])
print("done", flush=True)
"""


def test_sigkill_during_install_never_half_installs(
    tmp_path: Path, keys: tuple[Path, Path], installed_v1: Path
) -> None:
    """Kill installing processes at random moments: `current` is always a complete release
    (the previous or the new version, every model matching its sha256), never a mix."""
    from pipeline._fsio import sha256_file

    ground = tmp_path / "g"
    ground.mkdir()
    bundles = []
    for v in range(2, 12):  # alternate the fire thresholds so a mix would be visible
        entry = _fire_entry_manifest(ground, thresholds={"swir22_min": 1.0 + v})
        bundles.append(sign_bundle([FIRE_ONNX, entry], keys[0], v, tmp_path / f"b{v}.eub"))
    rng = random.Random(8)
    duration = 0.0
    installed = 1
    killed = 0
    for i, bundle in enumerate(bundles):
        version = i + 2
        proc = subprocess.Popen(
            [sys.executable, "-c", _INSTALL_CHILD, str(bundle), str(keys[1]), str(installed_v1)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        if i == 0:  # the first install runs to the end: its duration scales the kill times
            t0 = time.monotonic()
            assert proc.wait(timeout=60) == 0
            duration = time.monotonic() - t0
        else:
            try:
                proc.wait(timeout=rng.uniform(0.0, 1.2 * duration))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                killed += 1
            proc.wait()
        assert proc.stdout.read() in ("", "done\n")
        proc.stdout.close()
        rel = current_release(installed_v1)
        assert rel is not None and rel.version in (installed, version)
        installed = rel.version
        manifest = load_manifest(rel.models_dir)
        for info in manifest.values():
            if optional_missing(info) is None:  # not the teacher of an extra not installed here
                assert sha256_file(info.path) == info.sha256
        if rel.version > 1:
            assert manifest["fire_swir"].thresholds["swir22_min"] == 1.0 + rel.version
    # whatever the kills left behind, a new install works and cleans up
    last = sign_bundle([FIRE_ONNX], keys[0], 20, tmp_path / "b20.eub")
    assert install_bundle(last, keys[1], installed_v1).version == 20
    left = sorted(p.name for p in (installed_v1 / "releases").iterdir())
    assert len(left) == 2 and left[-1] == "v000020", left


def test_cli_keygen_sign_verify_install(tmp_path: Path, other_keys: tuple[Path, Path]) -> None:
    runner = CliRunner()
    r = runner.invoke(uplink_group, ["keygen", "--out", str(tmp_path / "k")])
    assert r.exit_code == 0, r.output
    key, pub = tmp_path / "k" / "uplink_ed25519.key", tmp_path / "k" / "uplink_ed25519.pub"
    assert key.stat().st_mode & 0o077 == 0  # private key readable by its owner only
    r = runner.invoke(uplink_group, ["keygen", "--out", str(tmp_path / "k")])
    assert r.exit_code == 1 and "already exists" in r.output
    bundle = tmp_path / "b.eub"
    r = runner.invoke(
        uplink_group,
        ["sign", str(FIRE_ONNX), "--key", str(key), "--version", "4", "--out", str(bundle)],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(uplink_group, ["verify", str(bundle), "--pubkey", str(pub)])
    assert r.exit_code == 0 and "signature ok, version 4" in r.output
    r = runner.invoke(uplink_group, ["verify", str(bundle), "--pubkey", str(other_keys[1])])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "bad signature" in r.output
    target = tmp_path / "payload"
    args = ["install", str(bundle), "--pubkey", str(pub), "--target", str(target)]
    r = runner.invoke(uplink_group, [*args, "--base-models", str(MODELS)])
    assert r.exit_code == 0 and "installed version 4" in r.output, r.output
    r = runner.invoke(uplink_group, args)
    assert r.exit_code == 1 and "not newer" in r.output
    r = runner.invoke(uplink_group, ["sign", str(FIRE_ONNX), "--key", str(key), "--out", "x"])
    assert r.exit_code == 2  # usage: --version missing
    r = runner.invoke(uplink_group, ["install", str(bundle), "--pubkey", str(pub)])
    assert r.exit_code == 2  # usage: --target missing


def test_cli_uses_the_pubkey_configured_on_board(
    tmp_path: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    from pipeline.cli import cli

    bundle = tmp_path / "b.eub"
    sign_bundle([FIRE_ONNX], keys[0], 3, bundle)
    runner = CliRunner()
    for pub, code in ((keys[1], 0), (other_keys[1], 1)):
        conf = tmp_path / "eotriage.toml"
        conf.write_text(f'[robustness]\nuplink_pubkey = "{pub}"\n')
        r = runner.invoke(cli, ["--config", str(conf), "uplink", "verify", str(bundle)])
        assert r.exit_code == code, r.output
    r = runner.invoke(cli, ["uplink", "verify", str(bundle)])
    assert r.exit_code == 2 and "no uplink public key" in r.output
