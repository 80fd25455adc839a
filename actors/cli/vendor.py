"""The vendor side of the CLI: ``licpool vendor keygen | issue | addon``.

This module owns the vendor commands and the key-file helpers they share with
``licpool license verify``.  It holds no signing logic of its own: codes are
made by ``actors.core.codes``.  Errors are raised (CodeError, ConfigError,
OSError, click exceptions) and turned into one line by ``actors.cli``.
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from actors.core.codes import (
    CodeError,
    load_private_key,
    load_public_key,
    private_key_to_pem,
    public_key_to_pem,
    sign_addon,
    sign_license,
)
from actors.shell.config import write_secret_file

__all__ = ["random_serial", "read_private_key", "read_public_key", "today_iso", "vendor"]

_KEY_FILE = click.Path(dir_okay=False, path_type=Path)


def today_iso() -> str:
    """Today's local date, ``YYYY-MM-DD``: the clock the pure core does not have."""
    return datetime.date.today().isoformat()


def random_serial() -> str:
    """A fresh serial: ``LP-`` and 12 random hex digits."""
    return "LP-" + secrets.token_hex(6).upper()


def read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        return load_private_key(path.read_bytes())
    except CodeError as e:
        raise click.ClickException(f"{path}: {e}") from None


def read_public_key(path: Path) -> Ed25519PublicKey:
    try:
        return load_public_key(path.read_bytes())
    except CodeError as e:
        raise click.ClickException(f"{path}: {e}") from None


@click.group()
def vendor() -> None:
    """Vendor side: make a key pair, issue license codes and add-ons."""


@vendor.command()
@click.option(
    "--private-key",
    "private_path",
    type=_KEY_FILE,
    required=True,
    help="Where to write the private key (mode 0600). Keep it secret.",
)
@click.option(
    "--public-key",
    "public_path",
    type=_KEY_FILE,
    required=True,
    help="Where to write the public key (goes into the pool's config).",
)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def keygen(private_path: Path, public_path: Path, force: bool) -> None:
    """Make a new Ed25519 vendor key pair."""
    if private_path == public_path:
        raise click.UsageError("--private-key and --public-key must be different files")
    if not force:
        for path in (private_path, public_path):
            if path.exists():
                raise click.ClickException(f"{path} already exists; refusing to overwrite a key file (use --force)")
    key = Ed25519PrivateKey.generate()
    write_secret_file(private_path, private_key_to_pem(key), force=force)
    public_path.write_bytes(public_key_to_pem(key.public_key()))
    click.echo(f"wrote private key {private_path} (keep it secret) and public key {public_path}")


@vendor.command()
@click.option("--private-key", "private_path", type=_KEY_FILE, required=True, help="The vendor private key file.")
@click.option("--feature", required=True, help="Feature name, e.g. cad.")
@click.option("--version", "version", required=True, help="Feature version, e.g. 2.0.")
@click.option("--count", type=int, required=True, help="Number of concurrent seats (> 0).")
@click.option("--expires", required=True, metavar="YYYY-MM-DD", help="Last valid day (inclusive).")
@click.option("--serial", default=None, help="Serial number (default: random LP-...).")
@click.option("--no-majority", is_flag=True, help="Favour availability: a fenced server keeps serving its seats.")
@click.option(
    "--distribution",
    default=None,
    metavar="s1:4^s2:3",
    help="Distribution criteria; seats not named go to the free pool.",
)
@click.option(
    "--exact-version",
    is_flag=True,
    help="Serve requests for exactly --version only (default: that version and every lower one).",
)
@click.option(
    "--weight",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Token weight: seats one checkout takes (a heavy app version costs 3).",
)
@click.option(
    "--linger",
    type=click.FloatRange(min=0.0, max=86400.0),
    default=0.0,
    show_default=True,
    help="Seconds a released seat stays held for its client to take back.",
)
def issue(
    private_path: Path,
    feature: str,
    version: str,
    count: int,
    expires: str,
    serial: str | None,
    no_majority: bool,
    distribution: str | None,
    exact_version: bool,
    weight: int,
    linger: float,
) -> None:
    """Issue a signed license code; prints the code alone on stdout."""
    key = read_private_key(private_path)
    code = sign_license(
        key,
        feature=feature,
        version=version,
        count=count,
        expires=expires,
        serial=serial if serial is not None else random_serial(),
        majority=not no_majority,
        distribution=distribution,
        version_match="exact" if exact_version else "range",
        weight=weight,
        linger=linger,
    )
    if expires < today_iso():
        click.echo(
            f"licpool: warning: expiry {expires} is in the past; servers will refuse this code",
            err=True,
        )
    click.echo(code)


@vendor.command()
@click.option("--private-key", "private_path", type=_KEY_FILE, required=True, help="The vendor private key file.")
@click.option("--of", "of_serial", required=True, metavar="SERIAL", help="Serial of the license code to add seats to.")
@click.option("--count", type=int, required=True, help="Seats to add (> 0).")
@click.option("--serial", default=None, help="The add-on's own serial (default: random).")
def addon(private_path: Path, of_serial: str, count: int, serial: str | None) -> None:
    """Issue a signed add-on of COUNT seats; prints it alone on stdout."""
    key = read_private_key(private_path)
    click.echo(
        sign_addon(
            key,
            of_serial=of_serial,
            count=count,
            serial=serial if serial is not None else random_serial(),
        )
    )
