"""``eotriage uplink ...``: sign bundles on the ground, verify and install them on board.

Exit codes: 0 fine, 1 the bundle (or key) is rejected, 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from ..errors import EotriageError
from ..settings import Settings
from ._common import EXIT_USAGE, fail

#: ``--target NAME`` of sign and verify before they took ``--payload`` (hidden, still accepted:
#: scripts keep working, and install's ``--target DIR`` is the only visible --target)
_old_target_option = click.option("--target", "old_target", hidden=True, default=None)

EXIT_REJECTED = 1


def _reject(exc: EotriageError) -> NoReturn:
    click.echo(f"eotriage: error: {' '.join(str(exc).split())}", err=True)
    raise SystemExit(EXIT_REJECTED)


@click.group("uplink")
def uplink_group() -> None:
    """Ed25519-signed uplink bundles (models, model-manifest entries, settings, cropland
    layers)."""


@uplink_group.command("keygen")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for uplink_ed25519.key (private, mode 0600) and uplink_ed25519.pub.",
)
def keygen_cmd(out_dir: Path) -> None:
    """Make a new uplink key pair (ground side). The .pub file goes on board."""
    from ..uplink import generate_keypair

    try:
        key, pub = generate_keypair(out_dir)
    except EotriageError as exc:
        _reject(exc)
    click.echo(f"wrote {key} (keep on the ground) and {pub} (configure on board)")


@uplink_group.command("sign")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Ed25519 private key (PEM).",
)
@click.option(
    "--version",
    "version",
    required=True,
    type=click.IntRange(min=1),
    help="Bundle version; must be greater than the one installed on board.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The bundle file to write (.eub).",
)
@click.option(
    "--payload",
    default="eotriage",
    show_default=True,
    help="Name of the payload the bundle is for ('uplink install --payload' must match).",
)
@_old_target_option
def sign_cmd(
    files: tuple[Path, ...],
    key_path: Path,
    version: int,
    out: Path,
    payload: str,
    old_target: str | None,
) -> None:
    """Sign FILES (.onnx models, a models manifest.json, a settings .toml, cropland layers:
    parcels .geojson or cropland rasters .tif) into a bundle."""
    from ..uplink import sign_bundle

    payload = _payload(payload, old_target)
    try:
        path = sign_bundle(files, key_path, version, out, target=payload)
    except EotriageError as exc:
        _reject(exc)
    except OSError as exc:
        fail(f"{out}: cannot write the bundle: {exc.strerror or exc}", EXIT_USAGE)
    click.echo(f"wrote {path} (version {version}, {len(files)} file(s))")


@uplink_group.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--pubkey",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The uplink public key (default: [robustness] uplink_pubkey of the settings).",
)
@click.option(
    "--payload",
    default="eotriage",
    show_default=True,
    help="This payload's name (the bundle must be signed for it).",
)
@_old_target_option
@click.pass_obj
def verify_cmd(
    settings: Settings | None,
    bundle: Path,
    pubkey: Path | None,
    payload: str,
    old_target: str | None,
) -> None:
    """Check BUNDLE's signature and file hashes without installing anything."""
    from ..uplink import verify_bundle

    payload = _payload(payload, old_target)
    key = _pubkey(pubkey, settings)
    try:
        vb = verify_bundle(bundle, key, target=payload)
    except EotriageError as exc:
        _reject(exc)
    click.echo(f"{bundle}: signature ok, version {vb.version}, target {vb.target}")
    for f in vb.files:
        click.echo(f"  {f.dest}  {f.size} bytes  sha256 {f.sha256[:16]}...")


@uplink_group.command("install")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--pubkey",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The uplink public key (default: [robustness] uplink_pubkey of the settings).",
)
@click.option(
    "--target",
    "target_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Install folder (releases/ and the 'current' link live here).  Only here does "
    "--target name a folder; the payload's name is --payload in every uplink command.",
)
@click.option(
    "--base-models",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Models folder to start from on the first install (default: an empty one).",
)
@click.option(
    "--payload",
    default="eotriage",
    show_default=True,
    help="This payload's name (the bundle must be signed for it).",
)
@click.pass_obj
def install_cmd(
    settings: Settings | None,
    bundle: Path,
    pubkey: Path | None,
    target_dir: Path,
    base_models: Path | None,
    payload: str,
) -> None:
    """Verify BUNDLE and install it atomically as the new current release under TARGET.

    Point EOTRIAGE_MODELS_DIR at TARGET/current/models, --config at
    TARGET/current/settings.toml and `eotriage run --crop-layers` at TARGET/current/crop to run
    on it.
    """
    from ..uplink import install_bundle

    key = _pubkey(pubkey, settings)
    try:
        rel = install_bundle(bundle, key, target_dir, base_models=base_models, target=payload)
    except EotriageError as exc:
        _reject(exc)
    click.echo(f"installed version {rel.version} at {rel.directory}")
    if rel.crop_dir is not None and rel.crop_dir.is_dir():
        n = sum(1 for p in rel.crop_dir.iterdir() if p.is_file())
        click.echo(f"{n} cropland layer(s) in {target_dir / 'current' / 'crop'}")


def _payload(payload: str, old_target: str | None) -> str:
    if old_target is None:
        return payload
    click.echo(
        "eotriage: warning: --target NAME is now --payload NAME (--target is the install "
        "folder of 'uplink install')",
        err=True,
    )
    return old_target


def _pubkey(given: Path | None, settings: Settings | None) -> Path:
    """--pubkey, else the key configured on board in the settings; a usage error if neither."""
    key = given or (settings or Settings()).robustness.uplink_pubkey
    if key is None:
        click.echo(
            "eotriage: error: no uplink public key: pass --pubkey or set uplink_pubkey in "
            "[robustness] of the settings file (--config)",
            err=True,
        )
        raise SystemExit(2)
    return key
