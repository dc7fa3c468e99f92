"""Ed25519-signed uplink bundles: models, model-manifest entries, settings and cropland layers,
installed atomically.

Bundle format (an uncompressed POSIX tar, suffix ``.eub`` by convention)::

    manifest.json      canonical JSON (sorted keys, no spaces, UTF-8), see below
    manifest.sig       the raw 64-byte Ed25519 signature of the exact manifest.json bytes
    files/<dest>       one regular file per manifest entry

``manifest.json``::

    {"format": "eotriage-uplink", "schema": 1, "target": "eotriage", "version": 7,
     "created": "2026-11-28T17:30:00Z",
     "files": [{"dest": "models/fire_swir.onnx", "sha256": "...", "size": 1234}, ...]}

``dest`` is one of ``models/<name>.onnx``, ``models/manifest.json`` (model-manifest entries,
merged by name into the installed manifest), ``settings.toml`` (replaces the settings) or
``crop/<name>.geojson|.json|.tif|.tiff`` (a cropland layer for crop stress: field parcels or a
cropland raster, checked to load before installing; it replaces a layer of the same name and is
kept in every later release until replaced).
``version`` is an integer that must be greater than the installed one (no replay, no rollback).

Install target layout (the payload side)::

    TARGET/releases/v000007/models/...   one complete, verified release per folder
    TARGET/releases/v000007/settings.toml
    TARGET/releases/v000007/crop/...     cropland layers (eotriage run --crop-layers ...)
    TARGET/releases/v000007/release.json version, bundle sha256, install time, files
    TARGET/current -> releases/v000007   symlink, switched atomically with rename(2)

Install order: read the tar (bounded), verify the signature over the manifest bytes before
parsing anything else, check format/target/version, check every file's size and sha256, stage
a full copy of the current release plus the new files in a temporary folder, validate the
merged model manifest (every model file present with its sha256) and the settings
(``Settings.from_toml``), fsync, rename the staged folder into place, then switch ``current``.
Any failure before the switch leaves the running release untouched.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._fsio import fsync_dir, sha256_bytes, sha256_file
from .errors import ConfigError, EotriageError, UplinkError

log = logging.getLogger(__name__)

FORMAT = "eotriage-uplink"
SCHEMA = 1
DEFAULT_TARGET = "eotriage"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
MAX_MANIFEST_BYTES = 256 * 1024
KEEP_RELEASES = 2

_DEST_RE = re.compile(
    r"^(models/[A-Za-z0-9_.-]+\.onnx|models/manifest\.json|settings\.toml"
    r"|crop/[A-Za-z0-9_.-]+\.(?:geojson|json|tif|tiff))$"
)
#: Suffixes of cropland layers (``crop/<name>``), see pipeline.detectors.crop_layers.
CROP_SUFFIXES = (".geojson", ".json", ".tif", ".tiff")
_RELEASE_RE = re.compile(r"^v(\d{6,})$")


@dataclass(frozen=True)
class BundleFile:
    """One file carried by a bundle."""

    dest: str
    sha256: str
    size: int


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature, manifest and file hashes all check out."""

    path: Path
    version: int
    target: str
    created: str
    files: tuple[BundleFile, ...]
    contents: Mapping[str, bytes]
    sha256: str


@dataclass(frozen=True)
class Release:
    """The installed release a payload runs on."""

    version: int
    directory: Path
    models_dir: Path
    settings_path: Path | None
    bundle_sha256: str
    #: cropland layers of the release (may not exist when none was ever uplinked)
    crop_dir: Path | None = None


# --- keys ------------------------------------------------------------------------------------
def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ConfigError(f"signed uplinks need the 'cryptography' package ({exc})") from None
    return ed25519


def generate_keypair(out_dir: str | os.PathLike[str], stem: str = "uplink") -> tuple[Path, Path]:
    """Write ``<stem>_ed25519.key`` (PKCS#8 PEM, mode 0600) and ``<stem>_ed25519.pub`` (PEM).

    The private key stays on the ground; the public key is configured on board.
    """
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = d / f"{stem}_ed25519.key", d / f"{stem}_ed25519.pub"
    for p in (key_path, pub_path):
        if p.exists():
            raise UplinkError(f"{p}: already exists, not overwriting a key")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path.write_bytes(pub)
    return key_path, pub_path


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 private key from a PKCS#8 PEM file (unencrypted)."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
    p = Path(path)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except OSError as exc:
        raise UplinkError(f"{p}: cannot read private key: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise UplinkError(f"{p}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UplinkError(f"{p}: not an Ed25519 private key ({type(key).__name__})")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 public key from a PEM file or a raw 32-byte file."""
    from cryptography.hazmat.primitives import serialization

    ed25519 = _crypto()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UplinkError(f"{p}: cannot read public key: {exc.strerror or exc}") from None
    try:
        if len(raw) == 32:
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as exc:
        raise UplinkError(f"{p}: not a PEM or raw Ed25519 public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UplinkError(f"{p}: not an Ed25519 public key ({type(key).__name__})")
    return key


# --- ground side: build and sign -------------------------------------------------------------
def dest_for(path: Path) -> str:
    """Where a file given to :func:`sign_bundle` is installed, from its name."""
    if path.suffix == ".onnx":
        dest = f"models/{path.name}"
    elif path.name == "manifest.json":
        dest = "models/manifest.json"
    elif path.suffix == ".toml":
        dest = "settings.toml"
    elif path.suffix.lower() in CROP_SUFFIXES:
        dest = f"crop/{path.name}"
    else:
        raise UplinkError(
            f"{path}: cannot be uplinked (expected a .onnx model, a models manifest.json, "
            "a settings .toml or a cropland layer .geojson/.tif)"
        )
    if not _DEST_RE.match(dest):
        raise UplinkError(f"{path}: file name not allowed in a bundle ({dest!r})")
    return dest


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_bundle(
    files: Sequence[str | os.PathLike[str]],
    private_key_path: str | os.PathLike[str],
    version: int,
    out: str | os.PathLike[str],
    target: str = DEFAULT_TARGET,
) -> Path:
    """Build and sign a bundle from ``files`` (ground side); return its path.

    Settings files are validated here too, so the ground does not uplink a bundle the payload
    will reject.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UplinkError(f"bundle version must be a positive integer, got {version!r}")
    if not files:
        raise UplinkError("a bundle needs at least one file")
    key = load_private_key(private_key_path)
    entries: list[dict[str, Any]] = []
    contents: dict[str, bytes] = {}
    for f in files:
        p = Path(f)
        dest = dest_for(p)
        if dest in contents:
            raise UplinkError(f"{p}: two files would be installed as {dest}")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise UplinkError(f"{p}: cannot read: {exc.strerror or exc}") from None
        contents[dest] = data
        entries.append({"dest": dest, "sha256": sha256_bytes(data), "size": len(data)})
    _validate_payload_files(contents, origin=None)
    manifest = {
        "format": FORMAT,
        "schema": SCHEMA,
        "target": target,
        "version": version,
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": sorted(entries, key=lambda e: e["dest"]),
    }
    mbytes = canonical_json(manifest)
    sig = key.sign(mbytes)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST, mbytes), (SIGNATURE, sig)] + [
            (f"files/{d}", contents[d]) for d in sorted(contents)
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out_path)
    return out_path


# --- payload side: verify --------------------------------------------------------------------
def _read_members(path: Path) -> tuple[dict[str, bytes], str]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UplinkError(f"{path}: cannot read bundle: {exc.strerror or exc}") from None
    if size > MAX_BUNDLE_BYTES:
        raise UplinkError(f"{path}: bundle of {size} bytes exceeds {MAX_BUNDLE_BYTES}")
    raw = path.read_bytes()
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for m in tar:
                if not m.isfile():
                    raise UplinkError(f"{path}: member {m.name!r} is not a regular file")
                if m.name in members:
                    raise UplinkError(f"{path}: member {m.name!r} appears twice")
                fh = tar.extractfile(m)
                if fh is None:  # pragma: no cover - isfile() checked
                    raise UplinkError(f"{path}: member {m.name!r} unreadable")
                members[m.name] = fh.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UplinkError(f"{path}: not a readable bundle (tar: {exc})") from None
    return members, sha256_bytes(raw)


def verify_bundle(
    bundle: str | os.PathLike[str], public_key: Any, target: str = DEFAULT_TARGET
) -> VerifiedBundle:
    """Check a bundle's signature, manifest and file hashes; raise :class:`UplinkError` if bad.

    ``public_key`` is a key object or the path of a key file.  The signature is checked over
    the exact manifest bytes before the manifest is parsed.
    """
    from cryptography.exceptions import InvalidSignature

    path = Path(bundle)
    if isinstance(public_key, (str, os.PathLike)):
        public_key = load_public_key(public_key)
    members, bundle_sha = _read_members(path)
    mbytes = members.get(MANIFEST)
    sig = members.get(SIGNATURE)
    if mbytes is None or sig is None:
        raise UplinkError(f"{path}: bundle lacks {MANIFEST} or {SIGNATURE}")
    if len(mbytes) > MAX_MANIFEST_BYTES:
        raise UplinkError(f"{path}: {MANIFEST} is too large ({len(mbytes)} bytes)")
    try:
        public_key.verify(sig, mbytes)
    except InvalidSignature:
        raise UplinkError(
            f"{path}: bad signature (not signed by the configured uplink key, or the manifest "
            "was altered)"
        ) from None
    try:
        manifest = json.loads(mbytes)
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
        if manifest.get("format") != FORMAT or manifest.get("schema") != SCHEMA:
            raise ValueError(f"format {manifest.get('format')!r} schema {manifest.get('schema')!r}")
        version = manifest["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version {version!r} is not a positive integer")
        files = tuple(
            BundleFile(str(e["dest"]), str(e["sha256"]), int(e["size"])) for e in manifest["files"]
        )
        bundle_target = str(manifest["target"])
        created = str(manifest.get("created", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise UplinkError(f"{path}: signed manifest is malformed ({exc})") from None
    if bundle_target != target:
        raise UplinkError(f"{path}: bundle is for target {bundle_target!r}, not {target!r}")
    if not files:
        raise UplinkError(f"{path}: bundle lists no files")
    expected = {MANIFEST, SIGNATURE} | {f"files/{f.dest}" for f in files}
    extra = sorted(set(members) - expected)
    if extra:
        raise UplinkError(f"{path}: files not listed in the signed manifest: {', '.join(extra)}")
    contents: dict[str, bytes] = {}
    for f in files:
        if not _DEST_RE.match(f.dest):
            raise UplinkError(f"{path}: destination {f.dest!r} not allowed")
        if f.dest in contents:
            raise UplinkError(f"{path}: destination {f.dest!r} listed twice")
        data = members.get(f"files/{f.dest}")
        if data is None:
            raise UplinkError(f"{path}: {f.dest} is listed in the manifest but missing")
        if len(data) != f.size or sha256_bytes(data) != f.sha256:
            raise UplinkError(
                f"{path}: {f.dest} was tampered with or damaged (sha256/size mismatch)"
            )
        contents[f.dest] = data
    return VerifiedBundle(path, version, bundle_target, created, files, contents, bundle_sha)


# --- payload side: install -------------------------------------------------------------------
def current_release(target_dir: str | os.PathLike[str]) -> Release | None:
    """The installed release under ``target_dir``, or None when nothing is installed yet."""
    d = Path(target_dir)
    cur = d / "current"
    if not cur.is_symlink() and not cur.exists():
        return None
    real = cur.resolve()
    try:
        info = json.loads((real / "release.json").read_text())
        version = int(info["version"])
        bundle_sha = str(info.get("bundle_sha256", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UplinkError(f"{real}: installed release is unreadable ({exc})") from None
    settings = real / "settings.toml"
    return Release(
        version=version,
        directory=real,
        models_dir=real / "models",
        settings_path=settings if settings.is_file() else None,
        bundle_sha256=bundle_sha,
        crop_dir=real / "crop",
    )


def install_bundle(
    bundle: str | os.PathLike[str],
    public_key: Any,
    target_dir: str | os.PathLike[str],
    *,
    base_models: str | os.PathLike[str] | None = None,
    target: str = DEFAULT_TARGET,
) -> Release:
    """Verify ``bundle`` and install it as the new current release under ``target_dir``.

    The new release is the current one (or, for the first install, a copy of ``base_models``)
    with the bundle's files applied.  Raises :class:`UplinkError` and leaves the current
    release running on any problem.
    """
    tdir = Path(target_dir)
    tdir.mkdir(parents=True, exist_ok=True)
    releases = tdir / "releases"
    releases.mkdir(exist_ok=True)
    with _install_lock(tdir):
        vb = verify_bundle(bundle, public_key, target=target)
        cur = current_release(tdir)
        if cur is not None and vb.version <= cur.version:
            raise UplinkError(
                f"{vb.path}: bundle version {vb.version} is not newer than the installed "
                f"version {cur.version}"
            )
        final = releases / f"v{vb.version:06d}"
        if final.exists():  # a staged release from an interrupted install, never switched to
            shutil.rmtree(final)
        stage = Path(tempfile.mkdtemp(prefix=f".stage-v{vb.version}-", dir=releases))
        try:
            _stage_release(stage, vb, cur, base_models)
            stage.chmod(0o755)  # mkdtemp makes it 0700
            os.rename(stage, final)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        fsync_dir(releases)
        link_tmp = tdir / ".current.tmp"
        with contextlib.suppress(FileNotFoundError):
            link_tmp.unlink()
        os.symlink(Path("releases") / final.name, link_tmp)
        os.replace(link_tmp, tdir / "current")
        fsync_dir(tdir)
        log.info("installed uplink bundle version %d into %s", vb.version, final)
        _prune(releases, keep=KEEP_RELEASES)
        new = current_release(tdir)
        assert new is not None
        return new


def _stage_release(
    stage: Path, vb: VerifiedBundle, cur: Release | None, base_models: str | os.PathLike[str] | None
) -> None:
    models = stage / "models"
    # unchanged files are hard-linked from the running release (no copy of big models); files
    # of the bundle are always written as new files, never into a shared inode
    if cur is not None:
        shutil.copytree(cur.models_dir, models, copy_function=_link_or_copy)
        if cur.settings_path is not None:
            _link_or_copy(str(cur.settings_path), str(stage / "settings.toml"))
        if cur.crop_dir is not None and cur.crop_dir.is_dir():
            shutil.copytree(cur.crop_dir, stage / "crop", copy_function=_link_or_copy)
    elif base_models is not None:
        try:
            shutil.copytree(base_models, models)
        except OSError as exc:
            raise UplinkError(f"{base_models}: cannot copy base models ({exc})") from None
    else:
        models.mkdir()
    old_manifest: dict[str, Any] = {"schema": 1, "models": {}}
    if (models / "manifest.json").is_file():
        try:
            old_manifest = json.loads((models / "manifest.json").read_text())
        except ValueError as exc:
            raise UplinkError(f"{models}: installed manifest.json is unreadable ({exc})") from None
    for dest, data in vb.contents.items():
        if dest == "models/manifest.json":
            continue
        (stage / dest).parent.mkdir(exist_ok=True)
        _write_new(stage / dest, data)
        if dest.endswith(".onnx"):  # the second stored copy the loader falls back to
            (models / "golden").mkdir(exist_ok=True)
            _write_new(models / "golden" / Path(dest).name, data)
    if "models/manifest.json" in vb.contents:
        merged = _merge_manifest(old_manifest, vb.contents["models/manifest.json"], vb.path)
        _write_new(models / "manifest.json", (json.dumps(merged, indent=2) + "\n").encode())
    _validate_release(stage, vb.path)
    (stage / "release.json").write_text(
        json.dumps(
            {
                "version": vb.version,
                "target": vb.target,
                "bundle": vb.path.name,
                "bundle_sha256": vb.sha256,
                "created": vb.created,
                "installed": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "files": [f.dest for f in vb.files],
            },
            indent=2,
        )
        + "\n"
    )
    for p in _walk(stage):
        _fsync_file(p)
    for d in [stage, models, stage / "crop"]:
        if d.is_dir():
            fsync_dir(d)


def _merge_manifest(old: Mapping[str, Any], new_bytes: bytes, origin: Path) -> dict[str, Any]:
    """The installed model manifest with the bundle's entries replacing/adding by name."""
    try:
        new = json.loads(new_bytes)
        entries = new["models"]
        if not isinstance(entries, dict):
            raise TypeError("'models' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise UplinkError(f"{origin}: models/manifest.json is malformed ({exc!r})") from None
    merged = dict(old)
    models = dict(merged.get("models", {}))
    models.update(entries)
    merged["models"] = models
    return merged


def _validate_payload_files(contents: Mapping[str, bytes], origin: Path | None) -> None:
    """Checks that need only the bundle's own files (also run on the ground when signing)."""
    where = f"{origin}: " if origin else ""
    for dest, data in contents.items():
        if dest.startswith("crop/"):
            _check_crop_layer(data, dest, where)
    if "settings.toml" in contents:
        _check_settings(contents["settings.toml"], where)
    if "models/manifest.json" in contents:
        try:
            new = json.loads(contents["models/manifest.json"])
            if not isinstance(new.get("models"), dict):
                raise TypeError("'models' is not an object")
        except (ValueError, TypeError, AttributeError) as exc:
            raise UplinkError(f"{where}models/manifest.json is malformed ({exc})") from None


def _check_crop_layer(data: bytes, dest: str, where: str) -> None:
    from .detectors.crop_layers import check_layer_bytes

    try:
        check_layer_bytes(data, dest)
    except EotriageError as exc:
        msg = str(exc).split(": ", 1)[-1]
        raise UplinkError(f"{where}{dest} rejected: {msg}") from None


def _check_settings(data: bytes, where: str) -> None:
    from .settings import Settings

    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "settings.toml"
        p.write_bytes(data)
        try:
            Settings.from_toml(p)
        except EotriageError as exc:
            msg = str(exc).replace(str(p), "settings.toml")
            raise UplinkError(f"{where}settings rejected: {msg}") from None


def _validate_release(stage: Path, origin: Path) -> None:
    """The staged release must load: every model in the manifest present with its sha256."""
    from .core.onnx_models import load_manifest, optional_missing
    from .errors import ModelError

    models = stage / "models"
    if (models / "manifest.json").is_file():
        try:
            manifest = load_manifest(models)
        except ModelError as exc:
            raise UplinkError(f"{origin}: resulting model manifest invalid: {exc}") from None
        for info in manifest.values():
            if optional_missing(info) is not None:
                continue  # a model of an optional extra (e.g. the cloud teacher) not installed here
            if not info.path.is_file():
                raise UplinkError(
                    f"{origin}: model {info.name!r} needs {info.path.name}, which neither the "
                    "bundle nor the installed release provides"
                )
            if sha256_file(info.path) != info.sha256:
                raise UplinkError(
                    f"{origin}: model {info.name!r}: {info.path.name} does not match the sha256 "
                    "in the manifest"
                )
            golden = models / "golden" / info.path.name
            if golden.is_file() and sha256_file(golden) != info.sha256:
                raise UplinkError(
                    f"{origin}: model {info.name!r}: its golden copy golden/{info.path.name} "
                    "does not match the sha256 in the manifest"
                )
    elif any(models.glob("*.onnx")):
        raise UplinkError(f"{origin}: models installed without a manifest.json to describe them")
    if (stage / "settings.toml").is_file():
        _check_settings((stage / "settings.toml").read_bytes(), f"{origin}: ")


def _prune(releases: Path, keep: int) -> None:
    versions = sorted(
        (int(m.group(1)), p)
        for p in releases.iterdir()
        if (m := _RELEASE_RE.match(p.name)) and p.is_dir()
    )
    current = (releases.parent / "current").resolve()
    for _, p in versions[:-keep]:
        if p.resolve() != current:
            shutil.rmtree(p, ignore_errors=True)
    for p in releases.glob(".stage-*"):
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _install_lock(tdir: Path) -> Iterator[None]:
    fd = os.open(tdir / ".install.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UplinkError(f"{tdir}: another install is in progress") from None
        yield
    finally:
        os.close(fd)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` as a new inode at ``path`` (unlinking a hard link first)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.write_bytes(data)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            yield Path(dirpath) / n


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
