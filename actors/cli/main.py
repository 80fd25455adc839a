"""The ``licpool`` command line: entry point, error edge and command groups.

This module owns the top-level ``licpool`` group, the rule that every failure is
one line on stderr (``licpool: error: ...``) with a non-zero exit code and no
traceback, and the options shared between commands (``--config``).  Command
groups live here or in ``actors.cli_*`` modules and are attached at the bottom
of this file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from actors.cli.check import register as register_check
from actors.cli.pool import register as register_pool_commands
from actors.cli.report import register as register_report
from actors.cli.vendor import read_public_key, today_iso, vendor
from actors.cli.web import register as register_web
from actors.core.codes import AddOn, CodeError, LicenseCode, check_criteria, verify_code
from actors.shell.config import ConfigError, load_config

__all__ = ["config_option", "licpool", "main"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
"""An unexpected exception: a bug in licpool, not bad input."""
DEBUG_ENV = "LICPOOL_DEBUG"

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"licpool: error: {_one_line(message)}", err=True)
    sys.exit(code)


class LicpoolGroup(click.Group):
    """A click group whose every failure is one line on stderr, never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.pop("standalone_mode", True)
        kwargs.setdefault("prog_name", "licpool")
        try:
            # Not standalone: exceptions come back here to be printed as one line.
            click_main: Callable[..., Any] = super().main
            rv = click_main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            _fail(e.format_message() + hint, e.exit_code)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.Abort:
            _fail("aborted", EXIT_INTERRUPTED)
        except (CodeError, ConfigError) as e:
            _fail(str(e), EXIT_ERROR)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}{e.strerror or e}", EXIT_ERROR)
        except Exception as e:
            if os.environ.get(DEBUG_ENV):
                raise
            _fail(
                f"internal error: {type(e).__name__}: {e} (set {DEBUG_ENV}=1 to see the traceback)",
                EXIT_INTERNAL,
            )
        if not standalone:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _version() -> str:
    try:
        return metadata.version("licpool")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


@click.group(cls=LicpoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="licpool")
def licpool() -> None:
    """licpool: a pool of floating-license servers."""


def config_option(*, required: bool = True) -> Callable[[F], F]:
    """The shared ``--config F`` option (also read from $LICPOOL_CONFIG)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LICPOOL_CONFIG",
        required=required,
        help="The pool config file, pool.toml (default: $LICPOOL_CONFIG).",
    )


# -- licpool config ---------------------------------------------------------------


@licpool.group("config")
def config_group() -> None:
    """Check a pool config."""


@config_group.command("check")
@config_option()
@click.option("--client", is_flag=True, help="Check it as a client config (name and servers).")
def config_check(config_path: Path, client: bool) -> None:
    """Load the config, and the key files it names; print OK and any warnings."""
    cfg = load_config(config_path, client=client)
    warnings = list(cfg.warnings)
    if not client:
        cfg.admin_secret()
        if cfg.vendor_public_key is not None:
            cfg.vendor_key()
        else:
            warnings.append(f"{config_path}: [pool] vendor_public_key: not set; the pool cannot verify codes")
    for warning in warnings:
        click.echo(f"licpool: warning: {warning}", err=True)
    click.echo(
        f"OK: {config_path}: pool {cfg.name!r}, {len(cfg.servers)} server(s) "
        f"({', '.join(cfg.server_names)}), settings hash {cfg.settings_hash()[:16]}"
    )


# -- licpool license --------------------------------------------------------------


@licpool.group("license")
def license_group() -> None:
    """Inspect license codes."""


def _code_fields(code: LicenseCode | AddOn) -> dict[str, Any]:
    fields = asdict(code)
    del fields["text"]
    if isinstance(code, LicenseCode):
        del fields["exact_version"]
        # Issue 14's fields are shown only when the code signs them (not their default).
        for name, default in (("weight", 1), ("linger", 0.0)):
            value = fields.pop(name)
            if value != default:
                fields[name] = value
        fields["version_match"] = code.version_match
    return {"kind": "license" if isinstance(code, LicenseCode) else "addon", **fields}


@license_group.command("verify")
@click.argument("code")
@config_option(required=False)
@click.option(
    "--public-key",
    "public_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The vendor public key file (instead of --config).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the fields as one JSON object.")
def license_verify(code: str, config_path: Path | None, public_path: Path | None, as_json: bool) -> None:
    """Verify CODE (a license code or add-on; '-' reads stdin) and print its fields.

    With --config, the vendor key comes from the config, and criteria are checked
    against its servers.
    """
    if (config_path is None) == (public_path is None):
        raise click.UsageError("give exactly one of --config and --public-key")
    if code == "-":
        code = sys.stdin.read()
    if public_path is not None:
        decoded = verify_code(code, read_public_key(public_path), today=today_iso())
    else:
        assert config_path is not None
        cfg = load_config(config_path, client=True)
        decoded = verify_code(code, cfg.vendor_key(), today=today_iso())
        if isinstance(decoded, LicenseCode):
            check_criteria(decoded.criteria, decoded.count, cfg.server_names)
    fields = _code_fields(decoded)
    if as_json:
        click.echo(json.dumps(fields, sort_keys=True))
        return
    for name, value in fields.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            value = "(none: even split)" if name == "distribution" else "-"
        click.echo(f"{name}: {value}")


# -- attach groups that live in their own modules ----------------------------------

licpool.add_command(vendor)
register_pool_commands(licpool, license_group)
register_check(licpool)
register_report(licpool)
register_web(licpool)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``licpool``)."""
    licpool.main(args=list(argv) if argv is not None else None, prog_name="licpool")


if __name__ == "__main__":
    main()
