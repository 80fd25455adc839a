"""The pool commands of ``licpool``: run servers, query them, change them.

``up``, ``server`` (and ``server down``), ``status``, ``sessions``, ``release``,
``license add``, ``allocations add``, ``distribution set``, ``snapshot show``
and ``demo``.  Queries and admin changes go through ``PoolLink`` (a short-lived
actor system of the CLI's own, always shut down); the answers come from the
servers' real state.  Errors are raised as ``click.ClickException`` and become
one line (``actors.cli``).  ``register`` attaches the commands to the groups.
"""

from __future__ import annotations

import datetime
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from actors.cli.vendor import today_iso
from actors.core.codes import AddOn, CodeError, LicenseCode, parse_criteria, verify_code
from actors.persist import PersistError
from actors.protocol import pool as pool_msgs
from actors.shell import logs
from actors.shell.config import DEFAULT_POOL_DIR, PoolConfig, load_config, write_default_pool
from actors.shell.launcher import LaunchError, PoolProcesses, run_server
from actors.shell.remote import PoolLink, status_json

__all__ = ["register"]

_CONFIG = click.Path(dir_okay=False, path_type=Path)


def _config_option(required: bool = True) -> Callable[[Any], Any]:
    return click.option(
        "--config",
        "config_path",
        type=_CONFIG,
        envvar="LICPOOL_CONFIG",
        required=required,
        help="The pool config file, pool.toml (default: $LICPOOL_CONFIG).",
    )


def _link(cfg: PoolConfig, timeout: float = 2.0) -> PoolLink:
    logs.configure(level="WARNING", console=True)
    return PoolLink(cfg, timeout=timeout)


def _admin_config(config_path: Path) -> PoolConfig:
    """An admin change needs a server config whose admin key file is readable:
    ``PoolLink.admin`` signs each change with it (``actors.core.adminauth``)."""
    cfg = load_config(config_path)
    cfg.admin_secret()
    return cfg


def _feature_key(text: str, link: PoolLink | None = None) -> tuple[str, str]:
    """``FEATURE:VERSION``, or ``FEATURE`` when the pool has one version of it."""
    if ":" in text:
        feature, _, version = text.partition(":")
        if not feature or not version:
            raise click.UsageError(f"bad feature {text!r}: write FEATURE or FEATURE:VERSION")
        return feature, version
    if link is None:
        return text, ""
    status = link.status()
    if status is None:
        raise click.ClickException("no server of the pool answered")
    versions = sorted(f.version for f in status.features if f.feature == text)
    if len(versions) != 1:
        found = ", ".join(versions) or "none"
        raise click.ClickException(f"feature {text!r} has versions {found}: write {text}:VERSION")
    return text, versions[0]


def _check_code(cfg: PoolConfig, text: str, kind: type) -> None:
    """Refuse a bad code here, with the vendor key of the config, before asking
    the pool (the leader checks it again)."""
    if cfg.vendor_public_key is None:
        return
    code = verify_code(text, cfg.vendor_key(), today=today_iso())
    if not isinstance(code, kind):
        other = "an add-on (use allocations add)" if isinstance(code, AddOn) else "a license code (use license add)"
        raise click.ClickException(f"that is {other}")


def _run_admin(cfg: PoolConfig, make: Callable[[str], Any], done: str) -> None:
    with _link(cfg) as link:
        reply = link.admin(make)
    _report_admin(reply, done)


def _report_admin(reply: pool_msgs.AdminReply, done: str) -> None:
    """One line for an admin change's answer; a refusal is a ``ClickException``."""
    if reply.already_present:
        click.echo(f"already present: {reply.error}")
        return
    if not reply.ok:
        raise click.ClickException(reply.error or "the change was refused")
    click.echo(f"{done} (committed at log index {reply.index})")


# ---- running servers ------------------------------------------------------------------


def _up(config_path: Path | None) -> None:
    """Run every server of a config (the default 3-server loopback pool if none) until Ctrl-C."""
    if config_path is None:
        config_path = write_default_pool(DEFAULT_POOL_DIR).absolute()
        click.echo(f"licpool: default pool config: {config_path}")
    cfg = load_config(config_path)
    cfg.admin_secret()
    cfg.vendor_key()
    pool = PoolProcesses(config_path, quiet=False, log_level="INFO")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name in cfg.server_names:
            pool.start(name)
        click.echo(f"licpool: pool {cfg.name!r} starting {len(cfg.servers)} server(s); Ctrl-C stops them")
        while not stop.wait(0.5):
            for name, proc in pool.procs.items():
                if proc.poll() is not None:
                    raise click.ClickException(f"server {name} exited with code {proc.returncode}")
        click.echo("licpool: stopping the pool")
    finally:
        pool.stop_all()
        pool.wait_gone()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(config_path: Path | None, name: str | None, log_level: str, console_level: str | None) -> None:
    if config_path is None or name is None:
        raise click.UsageError("licpool server needs --config F and --name S (or a subcommand: down)")
    try:
        run_server(
            config_path,
            name,
            log_level=log_level.upper(),
            console_level=console_level.upper() if console_level else None,
        )
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None


# ---- queries ----------------------------------------------------------------------------


def _print_status(reply: Any) -> None:
    leader = reply.leader or "none (election under way)"
    click.echo(f"pool {reply.pool}: epoch {reply.epoch}, leader {leader} (view of {reply.answered_by})")
    for s in reply.servers:
        state = "up" if s.up else f"DOWN ({s.status})" if s.status != "live" else "DOWN (not answering)"
        click.echo(f"  {s.name:<10} {s.address:<22} {state}{'  leader' if s.leader else ''}")
    if not reply.features:
        click.echo("no license codes in the pool yet")
    for f in reply.features:
        rule = ("" if f.majority else ", no-majority") + (", exact version" if f.exact_version else "")
        click.echo(
            f"{f.feature} {f.version}: {f.total} seats, free pool {f.free_pool}, "
            f"in flight {f.in_flight}{rule}, expires {f.expires}"
        )
        if f.weight != 1 or f.idle_timeout:
            click.echo(f"  token weight {f.weight}, idle_timeout {f.idle_timeout:g} s (0: none)")
        for u in f.servers:
            linger = f"  lingering {u.lingering}" if u.lingering else ""
            click.echo(
                f"  {u.server:<10} allocated {u.allocated:>4}  in use {u.in_use:>4}  target {u.target:>4}{linger}"
            )
        if f.unmet:
            counts = ", ".join(f"{reason} {n}" for reason, n in f.unmet)
            click.echo(f"  unmet demand at {reply.answered_by} since it started: {counts}")
    for c in reply.pending:
        click.echo(f"pending: {c.feature} {c.version} at {c.server}: {c.allocated} allocated, target {c.target}")
    for q in reply.queue:
        click.echo(_queued_line(q))
    for code in reply.licenses:
        click.echo(
            f"license {code.serial}: {code.feature} {code.version}, {code.count} seats, expires "
            f"{code.expires}: {days_text(code.days_left)}"
        )


def _queued_line(q: Any) -> str:
    return (
        f"queued: {q.feature} {q.version} #{q.position}  {q.client_id:<20} at {q.server:<8} "
        f"waiting {q.age:.1f} s  {q.waiter_id}"
    )


def days_text(left: int) -> str:
    """``N days left`` (today included), or that the code has expired."""
    if left <= 0:
        return "EXPIRED" if left == 0 else f"EXPIRED {-left} day(s) ago"
    return "last day today" if left == 1 else f"{left} days left"


def _status(config_path: Path, as_json: bool) -> int:
    cfg = load_config(config_path, client=True)
    with _link(cfg) as link:
        reply = link.status()
    if reply is None:
        click.echo(f"licpool: error: no server of pool {cfg.name!r} answered", err=True)
        return 2
    if as_json:
        click.echo(json.dumps(status_json(reply), sort_keys=True))
    else:
        _print_status(reply)
    return 0


def _iso(wall: float) -> str | None:
    if not wall:
        return None
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat(timespec="seconds")


def _sessions(config_path: Path, feature: str | None, as_json: bool) -> int:
    cfg = load_config(config_path, client=True)
    key = _feature_key(feature) if feature else ("", "")
    with _link(cfg) as link:
        leases, silent = link.sessions(*key)
    if len(silent) == len(cfg.servers):
        click.echo(f"licpool: error: no server of pool {cfg.name!r} answered", err=True)
        return 2
    rows = [
        {
            "lease_id": x.lease_id,
            "client_id": x.client_id,
            "feature": x.feature,
            "version": x.version,
            "server": x.server,
            "granted_at": _iso(x.granted_at),
            "expires_at": _iso(x.expires_at),
            "seats": x.seats,
            "lingering": x.lingering,
        }
        for x in leases
    ]
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return 0
    for name in silent:
        click.echo(f"licpool: warning: server {name} did not answer; its leases are shown as committed", err=True)
    if not rows:
        click.echo("no leases")
    for r in rows:
        click.echo(
            f"{r['feature']} {r['version']}  {r['client_id']:<20} at {r['server']:<8} "
            f"since {r['granted_at'] or '?'}  until {r['expires_at'] or '?'}  {r['lease_id']}"
            + (f"  {r['seats']} seats" if r["seats"] != 1 else "")
            + ("  LINGERING" if r["lingering"] else "")
        )
    for q in link.queued:
        click.echo(_queued_line(q))
    return 0


def _snapshot_show(config_path: Path, name: str, as_json: bool) -> None:
    from actors.shell.snapshot_view import describe

    cfg = load_config(config_path)
    cfg.server(name)
    try:
        doc = describe(cfg, name)
    except PersistError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(doc, sort_keys=True, default=str))
        return
    click.echo(f"server {name}: data {doc['data_dir']}")
    click.echo(
        f"  persisted incarnation {doc['incarnation']}, epoch {doc['epoch']}, voted for {doc['voted_for'] or '-'}"
    )
    click.echo(
        f"  log: snapshot index {doc['log']['snap_index']}, last index {doc['log']['last_index']}, "
        f"applied {doc['applied']}; {doc['journal_records']} journal record(s) after the snapshot"
    )
    for f in doc["features"]:
        alloc = ", ".join(f"{s}:{n}" for s, n in f["alloc"].items())
        click.echo(
            f"  {f['feature']} {f['version']}: total {f['total']}, free {f['free']}, "
            f"in flight {f['in_flight']}; allocations {alloc}"
        )
    click.echo(f"  local leases: {len(doc['leases'])}; registry leases: {doc['registry_leases']}")
    for lease in doc["leases"]:
        click.echo(f"    {lease['feature']} {lease['version']} {lease['client_id']} {lease['lease_id']}")


# ---- registering ------------------------------------------------------------------------


def register(licpool: click.Group, license_group: click.Group) -> None:
    """Attach the pool commands to the ``licpool`` group (and ``license add``)."""
    _register_running(licpool)
    _register_views(licpool)
    _register_changes(licpool, license_group)
    _register_tools(licpool)


def _register_running(licpool: click.Group) -> None:
    """``up``, ``server`` and ``server down``."""

    @licpool.command("up")
    @_config_option(required=False)
    def up(config_path: Path | None) -> None:
        """Run every server of a config until Ctrl-C (no config: a default pool in ./licpool-pool/)."""
        _up(config_path)

    @licpool.group("server", invoke_without_command=True)
    @_config_option(required=False)
    @click.option("--name", default=None, help="Which [[server]] of the config this host runs.")
    @click.option("--log-level", default="INFO", show_default=True, help="Level of the server's log file.")
    @click.option("--console-level", default=None, help="Console log level (OFF: none; default: --log-level).")
    @click.pass_context
    def server(
        ctx: click.Context, config_path: Path | None, name: str | None, log_level: str, console_level: str | None
    ) -> None:
        """Run one server (--config F --name S) until Ctrl-C or SIGTERM."""
        if ctx.invoked_subcommand is None:
            _serve(config_path, name, log_level, console_level)

    @server.command("down")
    @click.argument("server_name")
    @_config_option()
    def server_down(server_name: str, config_path: Path) -> None:
        """Assert that SERVER_NAME is really stopped (STONITH) so all its seats are reclaimed."""
        cfg = _admin_config(config_path)
        cfg.server(server_name)
        _run_admin(
            cfg,
            lambda rid: pool_msgs.DeclareServerDown(sender="cli", epoch=0, request_id=rid, server=server_name),
            f"server {server_name} declared down",
        )


def _register_views(licpool: click.Group) -> None:
    """``status`` and ``sessions``."""

    @licpool.command("status")
    @_config_option()
    @click.option("--json", "as_json", is_flag=True, help="One JSON document (stable field names).")
    def status(config_path: Path, as_json: bool) -> int:
        """Servers (up, leader, epoch) and, per feature, allocations, use and the free pool."""
        return _status(config_path, as_json)

    @licpool.command("sessions")
    @_config_option()
    @click.option("--feature", default=None, help="FEATURE or FEATURE:VERSION.")
    @click.option("--json", "as_json", is_flag=True, help="A JSON list of leases.")
    def sessions(config_path: Path, feature: str | None, as_json: bool) -> int:
        """Who holds which lease, at which server, until when."""
        return _sessions(config_path, feature, as_json)


def _register_changes(licpool: click.Group, license_group: click.Group) -> None:
    """The admin changes: ``release``, ``license add``, ``allocations add``, ``distribution set``."""

    @licpool.command("release")
    @click.argument("lease_id")
    @_config_option()
    def release(lease_id: str, config_path: Path) -> None:
        """Force-release LEASE_ID (an admin change): its holder stops renewing it."""
        cfg = _admin_config(config_path)
        _run_admin(
            cfg,
            lambda rid: pool_msgs.ForceReleaseLease(sender="cli", epoch=0, request_id=rid, lease_id=lease_id),
            f"lease {lease_id} released",
        )

    @license_group.command("add")
    @click.argument("code")
    @_config_option()
    def license_add(code: str, config_path: Path) -> None:
        """Add a signed license code to the pool (through any server, to the leader)."""
        cfg = _admin_config(config_path)
        _check_code(cfg, code, LicenseCode)
        _run_admin(
            cfg,
            lambda rid: pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id=rid, code=code.strip()),
            "license code added",
        )

    @licpool.group("allocations")
    def allocations() -> None:
        """Add seats to the pool from a vendor-signed add-on."""

    @allocations.command("add")
    @click.argument("addon")
    @_config_option()
    def allocations_add(addon: str, config_path: Path) -> None:
        """Apply a signed add-on: its seats go to the feature's free pool."""
        cfg = _admin_config(config_path)
        _check_code(cfg, addon, AddOn)
        _run_admin(
            cfg,
            lambda rid: pool_msgs.AddAllocations(sender="cli", epoch=0, request_id=rid, addon=addon.strip()),
            "add-on applied",
        )

    @licpool.group("distribution")
    def distribution() -> None:
        """Change where a feature's seats belong (the distribution criteria)."""

    @distribution.command("set")
    @click.argument("feature")
    @click.argument("criteria")
    @_config_option()
    def distribution_set(feature: str, criteria: str, config_path: Path) -> None:
        """Set FEATURE's criteria, e.g. s1:4^s2:3 (seats not named go to the free pool)."""
        cfg = _admin_config(config_path)
        try:
            parse_criteria(criteria)
        except CodeError as exc:
            raise click.ClickException(str(exc)) from None
        with _link(cfg) as link:
            key = _feature_key(feature, link)
            reply = link.admin(
                lambda rid: pool_msgs.ChangeDistributionCriteria(
                    sender="cli", epoch=0, request_id=rid, feature=key[0], version=key[1], criteria=criteria
                )
            )
        _report_admin(reply, f"distribution of {key[0]} {key[1]} set to {criteria}")

    @licpool.group("policy")
    def policy() -> None:
        """Pool policies of a feature (signed admin changes)."""

    @policy.command("idle-timeout")
    @click.argument("feature")
    @click.argument("seconds", type=click.FloatRange(min=0.0, max=1e9))
    @_config_option()
    def policy_idle_timeout(feature: str, seconds: float, config_path: Path) -> None:
        """Reclaim FEATURE's leases that their apps marked idle for SECONDS (0: never)."""
        cfg = _admin_config(config_path)
        with _link(cfg) as link:
            key = _feature_key(feature, link)
            reply = link.admin(
                lambda rid: pool_msgs.SetIdleTimeout(
                    sender="cli", epoch=0, request_id=rid, feature=key[0], version=key[1], idle_timeout=seconds
                )
            )
        _report_admin(reply, f"idle_timeout of {key[0]} {key[1]} set to {seconds:g} s")


def _register_tools(licpool: click.Group) -> None:
    """``snapshot show`` and ``demo``."""

    @licpool.group("snapshot")
    def snapshot() -> None:
        """Inspect a server's persisted state."""

    @snapshot.command("show")
    @click.option("--name", required=True, help="The server whose data_dir/<name>/ to read.")
    @_config_option()
    @click.option("--json", "as_json", is_flag=True, help="One JSON document.")
    def snapshot_show(name: str, config_path: Path, as_json: bool) -> None:
        """Print a server's persisted state (read from a copy; safe while it runs)."""
        _snapshot_show(config_path, name, as_json)

    @licpool.command("demo")
    @click.option("--clients", default=4, show_default=True, help="How many client apps to run.")
    def demo(clients: int) -> int:
        """A 3-server pool on loopback: clients, a leader crash, fail-over; leaves nothing behind."""
        from actors.cli.demo import run_demo

        return run_demo(clients=clients)
