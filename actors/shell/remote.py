"""Talking to a running pool from outside it: the CLI, the demo and the tests.

``PoolLink`` starts a short-lived actor system of its own (a free port on the
address that routes to the pool), finds each server's LicenseServer through
that host's admin (the same lookup the Resolver does; docs/discovery.md) and
asks it things, always with a timeout.  Closing it shuts that system down and
kills anything of it left behind, even after an error.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from actors.core import adminauth
from actors.protocol import pool as pool_msgs
from actors.protocol.admin import QueuedInfo, SessionInfo, SessionsQuery, SessionsReply, StatusQuery, StatusReply
from actors.shell.config import PoolConfig
from actors.shell.launcher import transmit_timeout
from actors.shell.system import (
    SERVER_GLOBAL_NAME,
    StartedSystem,
    admin_address,
    free_port,
    route_ip,
    start_system,
    stop_system,
)

__all__ = ["PoolLink", "sign_admin", "status_json"]

_RETRY_ERRORS = ("no leader is known yet", "no active leader yet")


def sign_admin(cfg: PoolConfig, msg: Any) -> Any:
    """``msg`` signed with the config's admin key, now, with a fresh nonce."""
    key = adminauth.derive_admin_key(cfg.admin_secret(), cfg.name)
    return adminauth.sign(key, msg, time.time(), os.urandom(16).hex())


class PoolLink:
    def __init__(self, cfg: PoolConfig, *, timeout: float = 2.0, log_level: str = "WARNING") -> None:
        self.cfg = cfg
        self.timeout = timeout
        first = cfg.servers[0]
        ip = route_ip(first.host, first.port)
        self.started: StartedSystem | None = start_system(
            ip,
            free_port(ip),
            transmit_timeout=max(transmit_timeout(cfg.timing), timeout, 1.0),
            own_group=False,
            log_level=log_level,
        )
        self.addresses: dict[str, Any] = {}
        self.queued: tuple[QueuedInfo, ...] = ()
        """The committed queue of waiting checkouts, as the last ``sessions`` found it."""

    def __enter__(self) -> PoolLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.started is not None:
            started, self.started = self.started, None
            stop_system(started)

    @property
    def asys(self) -> Any:
        assert self.started is not None, "PoolLink is closed"
        return self.started.asys

    # ---- finding servers -------------------------------------------------------------

    def resolve(self, name: str, *, fresh: bool = False) -> Any | None:
        """The LicenseServer of ``name``, or None if its host does not answer."""
        if not fresh and name in self.addresses:
            return self.addresses[name]
        spec = self.cfg.server(name)
        try:
            ip = socket.gethostbyname(spec.host)
        except OSError:
            return None
        status = self.asys.ask(admin_address(ip, spec.port), _status_request(), self.timeout)
        found = getattr(status, "globalActors", {}).get(SERVER_GLOBAL_NAME)
        if found is None:
            self.addresses.pop(name, None)
            return None
        self.addresses[name] = found
        return found

    def ask(self, name: str, msg: Any, timeout: float | None = None) -> Any | None:
        """Ask server ``name``; None when it cannot be reached or does not answer."""
        for fresh in (False, True):
            address = self.resolve(name, fresh=fresh)
            if address is None:
                return None
            reply = self.asys.ask(address, msg, timeout or self.timeout)
            if reply is not None:
                return reply
        return None

    # ---- queries -------------------------------------------------------------------

    def status_of(self, name: str) -> StatusReply | None:
        reply = self.ask(name, StatusQuery(request_id=uuid.uuid4().hex))
        return reply if isinstance(reply, StatusReply) else None

    def status(self) -> StatusReply | None:
        """The leader's own view if a server names a leader that answers; else the
        view of the first server that knows a leader; else of any server."""
        fallback = None
        for name in self.cfg.server_names:
            reply = self.status_of(name)
            if reply is None:
                continue
            if reply.leader is None:
                fallback = fallback or reply  # restarting, or an election: look further
                continue
            if reply.leader != name:
                better = self.status_of(reply.leader)
                if better is not None and better.leader == better.answered_by:
                    return better
            return reply
        return fallback

    def sessions(self, feature: str = "", version: str = "") -> tuple[list[SessionInfo], list[str]]:
        """Every server's local leases, plus registry entries of servers that did
        not answer; and the names of the servers that did not answer."""
        found: dict[str, SessionInfo] = {}
        registry: dict[str, SessionInfo] = {}
        silent = []
        self.queued = ()
        for name in self.cfg.server_names:
            reply = self.ask(name, SessionsQuery(feature=feature, version=version))
            if not isinstance(reply, SessionsReply):
                silent.append(name)
                continue
            if len(reply.queued) > len(self.queued):
                self.queued = reply.queued  # the committed queue (the longest view: a lagging server shows less)
            for info in reply.leases:
                found[info.lease_id] = info
            for info in reply.registry:
                registry.setdefault(info.lease_id, info)
        for lease_id, info in registry.items():
            if lease_id not in found and info.server in silent:
                found[lease_id] = info
        return sorted(found.values(), key=lambda x: (x.feature, x.version, x.server, x.granted_at)), silent

    def sign(self, msg: Any) -> Any:
        """``msg`` signed with the config's admin key, now, with a fresh nonce
        (``actors.core.adminauth``); ``ConfigError`` if the key file is missing,
        unreadable or too short."""
        return sign_admin(self.cfg, msg)

    def admin(self, make: Any, *, timeout: float = 10.0, sign: bool = True) -> pool_msgs.AdminReply:
        """Send an admin change (``make(request_id)`` builds it) to the leader if
        known, else to any server, retrying while an election is under way.
        Each attempt is signed afresh (``sign``: tests send unsigned ones)."""
        if sign:
            self.cfg.admin_secret()  # a missing key fails here, before any server is asked
            unsigned = make

            def make(request_id: str) -> Any:
                return self.sign(unsigned(request_id))

        deadline = time.monotonic() + timeout
        last = "no server of the pool answered"
        while True:
            order = list(self.cfg.server_names)
            status = self.status()
            if status is not None and status.leader in order:
                order.remove(status.leader)
                order.insert(0, status.leader)
            for name in order:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                reply = self.ask(name, make(uuid.uuid4().hex), min(remaining, max(self.timeout, 5.0)))
                if not isinstance(reply, pool_msgs.AdminReply):
                    continue
                if reply.ok or not any(x in reply.error for x in _RETRY_ERRORS):
                    return reply
                last = reply.error
                break
            if time.monotonic() >= deadline:
                return pool_msgs.AdminReply(
                    sender="", epoch=0, request_id="", ok=False, error=f"gave up after {timeout:.0f} s: {last}"
                )
            time.sleep(0.2)


def _status_request() -> Any:
    from thespian.system.messages.status import Thespian_StatusReq

    return Thespian_StatusReq()


def status_json(reply: StatusReply) -> dict[str, Any]:
    """The ``licpool status --json`` document (operations.md: fields may be
    added, never renamed)."""
    return {
        "pool": reply.pool,
        "epoch": reply.epoch,
        "leader": reply.leader,
        "answered_by": reply.answered_by,
        "servers": [
            {
                "name": s.name,
                "address": s.address,
                "up": s.up,
                "leader": s.leader,
                "status": s.status,
                "incarnation": s.incarnation,
            }
            for s in reply.servers
        ],
        "features": [
            {
                "feature": f.feature,
                "version": f.version,
                "total": f.total,
                "free_pool": f.free_pool,
                "in_flight": f.in_flight,
                "majority": f.majority,
                "expires": f.expires,
                "version_match": "exact" if f.exact_version else "range",
                "servers": {
                    u.server: {
                        "allocated": u.allocated,
                        "in_use": u.in_use,
                        "target": u.target,
                        "lingering": u.lingering,
                    }
                    for u in f.servers
                },
                "unmet": dict(f.unmet),
                "weight": f.weight,
                "idle_timeout": f.idle_timeout,
            }
            for f in reply.features
        ],
        "pending": [
            {
                "feature": c.feature,
                "version": c.version,
                "server": c.server,
                "allocated": c.allocated,
                "target": c.target,
            }
            for c in reply.pending
        ],
        "today": reply.today,
        "queue": [
            {
                "feature": q.feature,
                "version": q.version,
                "position": q.position,
                "client_id": q.client_id,
                "waiter_id": q.waiter_id,
                "server": q.server,
                "age": round(q.age, 3),
            }
            for q in reply.queue
        ],
        "licenses": [
            {
                "serial": x.serial,
                "feature": x.feature,
                "version": x.version,
                "count": x.count,
                "expires": x.expires,
                "days_left": x.days_left,
            }
            for x in reply.licenses
        ],
    }
