"""``licpool check --config F [--name S] [--json]``: is this host ready to run
its server, and does the pool agree with it?

One line per check, ``ok``, ``warn`` or ``FAIL``; the exit code is 1 if any
check failed.  The checks, in order:

1. the config loads and its timings pass the rules;
2. the admin key and vendor key files are readable, well formed and not
   readable by group or others;
3. with ``--name``: the server's address is an address of this host and its
   admin (and metrics) port is free, or held by that very server, running;
4. every other server is reachable, or which are not (a warning: on the first
   host of a new pool none is running yet);
5. the settings hash of each reachable server equals this config's;
6. the clock of each reachable server: its offset (``FAIL`` past half the
   admin timestamp window, ``warn`` past 1 s) and its rate against this host's
   over the run of the check, against ``clock_drift``.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from actors.core.adminauth import WINDOW
from actors.shell.config import ConfigError, PoolConfig, load_config

__all__ = ["Check", "run_checks"]

OK, WARN, FAIL = "ok", "warn", "FAIL"
OFFSET_WARN = 1.0
"""Seconds of clock offset worth a warning: NTP keeps hosts far closer."""
RATE_SPAN = 1.0
"""Seconds between the two clock samples of each server."""


@dataclass(frozen=True)
class Check:
    check: str
    status: str
    detail: str


def _key_file(cfg: PoolConfig, path: Path | None, what: str, load: Any) -> Check:
    if path is None:
        return Check(f"key {what}", FAIL, "not set in [pool]")
    try:
        load()
        info = path.stat()
    except ConfigError as exc:
        return Check(f"key {what}", FAIL, exc.reason)
    except OSError as exc:
        return Check(f"key {what}", FAIL, f"{path}: {exc.strerror}")
    mode = stat.S_IMODE(info.st_mode)
    if what == "admin" and mode & 0o077:
        return Check(
            f"key {what}",
            FAIL,
            f"{path} has mode {mode:04o}: group or others may read the admin key (chmod 600 {path})",
        )
    if mode & 0o022:
        return Check(f"key {what}", FAIL, f"{path} has mode {mode:04o}: group or others may change it")
    owner = "" if info.st_uid == os.geteuid() else f", owned by uid {info.st_uid}, not this user"
    return Check(f"key {what}", OK, f"{path} readable, mode {mode:04o}{owner}")


def _own_address(cfg: PoolConfig, name: str, link: Any) -> list[Check]:
    spec = cfg.server(name)
    try:
        ip = socket.gethostbyname(spec.host)
    except OSError as exc:
        return [Check("address", FAIL, f"{spec.host} does not resolve: {exc}")]
    with socket.socket() as s:
        try:
            s.bind((ip, 0))
        except OSError as exc:
            return [Check("address", FAIL, f"{spec.host} ({ip}) is not an address of this host: {exc.strerror}")]
    found = [Check("address", OK, f"{spec.host} ({ip}) is an address of this host")]
    ports = [("admin port", spec.port)] + ([("metrics port", spec.metrics_port)] if spec.metrics_port else [])
    serving = None
    for what, port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
                found.append(Check(what, OK, f"{ip}:{port} is free"))
                continue
            except OSError:
                pass
        if serving is None:
            reply = link.status_of(name) if link is not None else None
            serving = reply is not None and reply.answered_by == name
        if serving:
            found.append(Check(what, OK, f"{ip}:{port} is in use by server {name}, which is running"))
        else:
            found.append(
                Check(
                    what,
                    FAIL,
                    f"{ip}:{port} is in use and server {name} does not answer: another "
                    f"program holds it, or {name} is still starting (check again after its "
                    "'serving on' line)",
                )
            )
    return found


def _pool_checks(cfg: PoolConfig, name: str | None, link: Any) -> list[Check]:
    found: list[Check] = []
    mine = cfg.settings_hash()
    first: dict[str, tuple[float, float, float]] = {}
    replies: dict[str, Any] = {}
    for other in cfg.server_names:
        if other == name:
            continue
        t0 = time.time()
        reply = link.status_of(other)
        t1 = time.time()
        if reply is None:
            found.append(
                Check(
                    f"reach {other}",
                    WARN,
                    f"{cfg.server(other).address} does not answer (not started yet, down, or a firewall between)",
                )
            )
            continue
        replies[other] = reply
        state = "leader" if reply.leader == other else f"follower of {reply.leader or 'no leader yet'}"
        found.append(
            Check(
                f"reach {other}",
                OK,
                f"{cfg.server(other).address} answers in {(t1 - t0) * 1000:.1f} ms: {state}, epoch {reply.epoch}",
            )
        )
        if reply.wall:
            first[other] = (reply.wall - (t0 + t1) / 2, (t0 + t1) / 2, t1 - t0)
    for other, reply in replies.items():
        if not reply.settings_hash:
            found.append(Check(f"settings {other}", WARN, "the server does not report its settings hash (older)"))
        elif reply.settings_hash == mine:
            found.append(Check(f"settings {other}", OK, f"hash {mine[:16]} matches"))
        else:
            found.append(
                Check(
                    f"settings {other}",
                    FAIL,
                    f"its settings hash {reply.settings_hash[:16]} differs "
                    f"from this config's {mine[:16]}: timing, names, hosts, ports or thresholds differ",
                )
            )
    if first:
        time.sleep(max(0.0, RATE_SPAN - (time.time() - min(at for _, at, _ in first.values()))))
    for other, (offset, at, rtt) in first.items():
        t0 = time.time()
        again = link.status_of(other)
        t1 = time.time()
        detail = f"offset {offset * 1000:+.1f} ms"
        status = OK
        if again is not None and again.wall:
            later = again.wall - (t0 + t1) / 2
            span = (t0 + t1) / 2 - at
            # Each sample is uncertain by half its round trip: fail only on a rate surely too high.
            rate = abs(later - offset) / span if span > 0 else 0.0
            error = (rtt + (t1 - t0)) / 2 / span if span > 0 else 0.0
            detail += (
                f", rate {rate * 100:.3f}% ± {error * 100:.3f}% over {span:.1f} s "
                f"(clock_drift {cfg.timing.clock_drift * 100:g}%)"
            )
            if rate - error > cfg.timing.clock_drift:
                status = FAIL
        if abs(offset) > WINDOW / 2:
            status, detail = FAIL, detail + f": signed admin changes are refused past {WINDOW:.0f} s; fix NTP"
        elif abs(offset) > OFFSET_WARN and status == OK:
            status, detail = WARN, detail + ": is NTP running on both hosts?"
        found.append(Check(f"clock {other}", status, detail))
    return found


def run_checks(config_path: Path, name: str | None, timeout: float = 2.0) -> list[Check]:
    """Every check, in order; later checks are skipped when the config does not load."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        return [Check("config", FAIL, str(exc))]
    found = [
        Check(
            "config",
            OK,
            f"{config_path}: pool {cfg.name!r}, {len(cfg.servers)} servers "
            f"({', '.join(cfg.server_names)}), timings pass, settings hash {cfg.settings_hash()[:16]}",
        )
    ]
    found += [Check("config", WARN, w) for w in cfg.warnings]
    if name is not None:
        try:
            cfg.server(name)
        except ConfigError as exc:
            return [*found, Check("name", FAIL, exc.reason)]
    found.append(_key_file(cfg, cfg.admin_key_file, "admin", cfg.admin_secret))
    found.append(_key_file(cfg, cfg.vendor_public_key, "vendor", cfg.vendor_key))
    from actors.cli.pool import _link

    with _link(cfg, timeout) as link:
        if name is not None:
            found += _own_address(cfg, name, link)
        found += _pool_checks(cfg, name, link)
    return found


def register(licpool: click.Group) -> None:
    @licpool.command("check")
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LICPOOL_CONFIG",
        required=True,
        help="The pool config file, pool.toml (default: $LICPOOL_CONFIG).",
    )
    @click.option("--name", default=None, help="The [[server]] this host runs: also check its address and ports.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON document: checks and whether all passed.")
    @click.option("--timeout", default=2.0, show_default=True, help="Seconds to wait for each server.")
    def check(config_path: Path, name: str | None, as_json: bool, timeout: float) -> int:
        """Check this host and the pool before starting (or restarting) a server."""
        found = run_checks(config_path, name, timeout)
        failed = [c for c in found if c.status == FAIL]
        if as_json:
            click.echo(json.dumps({"ok": not failed, "checks": [asdict(c) for c in found]}, sort_keys=True))
        else:
            for c in found:
                click.echo(f"{c.status:<4}  {c.check:<16} {c.detail}")
            click.echo(f"{len(found)} checks: {len(failed)} failed, {sum(c.status == WARN for c in found)} warnings")
        return 1 if failed else 0
