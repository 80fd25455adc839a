"""The World's client and admin sides, and the pool report for violations.

``ClientDriver`` runs every client host: it hands session events to the app
and the checkers, schedules app timers, and restarts apps (``reconnect``).
``AdminDriver`` is the admin CLI: it sends each change to a random server and
retries it.  Both are mixins of ``World`` (tests/sim/world.py); ``self`` is
the world, typed ``Any`` because a mixin cannot name its subclass.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.core.effects import Outgoing, Ready
from tests.sim.checks import InvariantViolation
from tests.sim.hosts import ADMIN, ClientHost
from tests.sim.trace import short, short_id

__all__ = ["ClientDriver", "AdminDriver", "AdminRequest"]


class ClientDriver:
    def client_out(self: Any, client: ClientHost, ready: Ready) -> None:
        app = self.apps[client.name]
        for ev in ready.events:
            self._bookkeep(client, ev)
            app.on_event(ev, self.now)
        self.send_all(client.name, ready)
        client.deadlines = {lid: x.deadline for lid, x in client.core.held(client.clock.local(self.now)).items()}
        self.schedule_wake(client, ready.wake_at)
        self._schedule_app(client.name)
        self._touched_clients.add(client.name)

    def session_bookkeeping(self: Any, client: ClientHost, ready: Ready) -> None:
        for ev in ready.events:
            self._bookkeep(client, ev)

    def _bookkeep(self: Any, client: ClientHost, ev: Any) -> None:
        """The checkers' view of one session event."""
        self.log(client.name, f"* {ev.kind} {short(dict(ev.fields))}")
        lid = ev.get("lease_id")
        if ev.kind in ("granted", "adopted"):
            self._bookkeep_grant(client, ev, lid)
        elif ev.kind == "failing_over":
            for moving in ev.get("lease_ids"):
                client.failing[moving] = (self.now, ev.get("from_server"), ev.get("why"))
        elif ev.kind == "failed_over":
            for moved in ev.get("lease_ids"):
                client.placed.setdefault(moved, []).append((self.now, ev.get("to_server")))
                if self.checker is not None:
                    self.checker.moved(client, moved, ev.get("from_server"))
        elif ev.kind == "released":
            client.released.add(lid)
            client.released_at[lid] = self.now
            if ev.get("before_adopt") and self.checker is not None:
                self.checker.stats["direct: released before the session adopted"] += 1
        elif ev.kind == "lost":
            client.lost.append((self.now, lid, ev.get("why")))
            if self.checker is not None:
                self.checker.lost(client, lid, ev.get("why"), ev.get("reason", ""))
        elif ev.kind == "denied":
            client.resuming.pop(ev.get("request_id"), None)
            if self.checker is not None:
                self.checker.l1.denied(client, ev.get("request_id"), ev.get("reason"))

    def _bookkeep_grant(self: Any, client: ClientHost, ev: Any, lid: str) -> None:
        if lid in self.dead_ids and self.checker is not None and not self.release_unknowable(lid):
            raise InvariantViolation("S3", f"{client.name} was granted {lid} again after its release")
        client.features[lid] = (ev.get("feature"), ev.get("version"))
        if ev.get("seats", 1) != 1:
            client.seats[lid] = ev.get("seats")
        client.grants += 1
        client.placed[lid] = [*client.placed.get(lid, []), (self.now, ev.get("server"))]
        if ev.get("request_id") in client.queued:
            self.queue_grants.append((self.now, client.name))
        if self.checker is not None:
            self.checker.l1.granted(client, ev.get("request_id"))
            self.checker.queue.granted(client, ev.get("request_id"))
            self.check_resume(client, ev.get("request_id"), lid)

    def _schedule_app(self: Any, name: str) -> None:
        client = self.clients[name]
        due = self.apps[name].next_due()
        if due is None or not client.alive or due == client.app_real:
            return
        client.app_gen += 1
        client.app_real = max(due, self.now)
        self.push(client.app_real, "app", name, client.app_gen)

    def _on_app(self: Any, name: str, gen: int) -> None:
        client = self.clients[name]
        if gen != client.app_gen or not client.alive:
            return
        client.app_real = None
        for action in self.apps[name].act(self.now):
            self.client_action(client, action)
        self._schedule_app(name)

    def client_action(self: Any, client: ClientHost, action: tuple[str, ...]) -> None:
        if self.shell is not None:
            self.shell_client_action(client, action)
            return
        local = client.clock.local(self.now)
        if action[0] == "checkout":
            feature, version, rid = action[1:4]
            count = int(action[4]) if len(action) > 4 else 1
            linger = float(action[5]) if len(action) > 5 else 0.0
            if self.checker is not None:
                self.checker.l1.checkout(client, int(rid), (feature, version), count)
            self.client_out(client, client.core.checkout(feature, version, int(rid), local, count=count, linger=linger))
        elif action[0] == "queue":
            _, feature, version, rid, timeout = action
            if self.checker is not None:
                self.checker.l1.checkout(client, int(rid), (feature, version))
            client.queued.add(int(rid))
            ready = client.core.checkout(feature, version, int(rid), local, queue=True, timeout=float(timeout))
            self.client_out(client, ready)
        elif action[0] == "abandon":
            self.client_out(client, client.core.abandon(int(action[1]), local))
            client.resuming.pop(int(action[1]), None)
            self.log(client.name, f"abandon {action[1]}")
            if self.checker is not None:
                self.checker.l1.abandoned(client, int(action[1]))
        elif action[0] == "release":
            self.client_out(client, client.core.release(action[1], local))
        elif action[0] == "reconnect":
            self.reconnect(client)

    def record_releases(self: Any, host: Any, events: Any) -> None:
        """A durable release kills its id for ever (S3); note the release's change number in that server's
        lease reports, so ``release_unknowable`` can tell when the pool has heard of it."""
        for ev in events:
            if ev.kind != "release":
                continue
            lid = ev.get("lease_id")
            changes = host.node.member.leases.changes if host.node is not None else []
            seq = next((c.seq for c in changes if c.lease_id == lid and c.kind == "release"), None)
            self.dead_ids[lid] = (host.name, self.now, seq)

    def release_unknowable(self: Any, lease_id: str) -> bool:
        """The documented exception to "a released id is dead for ever": the
        release was made at a server that has been cut off (or down) since,
        before it could report it, and the client told no other server.  Then
        nobody else can know, and a stale resume elsewhere moves the lease with
        its seat (S1 still holds: the releasing server may not reuse the seat
        before its release report commits).  Once that server's report of the
        release has committed, the pool knows: no exemption (mutant 32)."""
        server, at, seq = self.dead_ids[lease_id]
        if any(h.node is not None and h.node.pool.registry.is_dead(lease_id) for h in self.servers.values()):
            return False
        if seq is not None and any(
            h.node is not None and h.node.pool.registry.report_seq.get(server, 0) >= seq for h in self.servers.values()
        ):
            return False
        touched = any(server in f.subjects for f in self.history.active(at, self.now))
        if touched:
            self.checker.stats["S3 exempt: release unknowable"] += 1
        return touched

    def reconnect(self: Any, client: ClientHost) -> None:
        """The app process restarts: a new session resumes every lease by id.
        The old session is gone (its messages are dropped); no release is sent."""
        if self.shell is not None:
            self.shell_reconnect(client)
            return
        local = client.clock.local(self.now)
        held = client.core.held(local)
        self.owner.pop(client.session_id, None)
        client.session_no += 1
        client.session_id = f"{client.name}/{client.session_no}"
        self.owner[client.session_id] = client.name
        # A restarted app numbers its updates from the wall clock (ms), above any old session's.
        client.core = self.session_factory(
            client.name, client.session_id, tuple(self.servers), self.timing, seq_base=int(self.now * 1000)
        )
        client.wake_real = None
        self.log(client.name, f"RECONNECT as {client.session_id}, resuming {sorted(map(short_id, held))}")
        app = self.apps[client.name]
        ready = Ready()
        for lid, info in sorted(held.items()):
            rid = app.resume(lid, self.now)
            client.resuming[rid] = (lid, (info.feature, info.version))
            ready.merge(client.core.checkout(info.feature, info.version, rid, local, lease_id=lid, count=info.seats))
        stale = random.Random(f"{self.config.seed}/stale/{client.name}/{client.session_no}")
        if client.released and stale.random() < 0.5:
            # The app restarted from a stale file that still lists a lease it
            # had released: that id is dead for ever and must never come back.
            lid = stale.choice(sorted(client.released))
            feature, version = client.features[lid]
            rid = app.resume(lid, self.now)
            count = client.seats.get(lid, 1)
            ready.merge(client.core.checkout(feature, version, rid, local, lease_id=lid, count=count))
        for lid in sorted({lid for at, lid, _ in client.lost if at >= client.reconnected_at} - set(held)):
            # The file also lists leases lost since the last restart (the app died
            # before it noticed): one comes back only while its server still
            # counts its seat; a reclaimed one must be refused, or S1 breaks.
            feature, version = client.features[lid]
            rid = app.resume(lid, self.now)
            count = client.seats.get(lid, 1)
            ready.merge(client.core.checkout(feature, version, rid, local, lease_id=lid, count=count))
        client.reconnected_at = self.now
        self.client_out(client, ready)

    def check_resume(self: Any, client: ClientHost, request_id: int, lease_id: str) -> None:
        """A reconnect must resume its lease, never take a second seat while it lives."""
        resumed = client.resuming.pop(request_id, None)
        if resumed is None or resumed[0] == lease_id or self.checker is None:
            return
        wanted = resumed[0]
        for name, host in self.servers.items():
            old = host.node.member.leases.leases.get(wanted) if host.node is not None else None
            # An operator's force-release revoked it: its seat is the pool's again once the holder lets it
            # go, and the app's resume takes a seat of its own (seed 70 of the shell model).
            if old is not None and old.client_id == client.name and not old.revoked and wanted not in self.forced:
                raise InvariantViolation(
                    "S3",
                    f"{client.name} reconnected asking to resume {wanted}, which {name} still holds, and "
                    f"was granted a second seat {lease_id}",
                )

    def describe(self: Any) -> str:
        """The pool as every party sees it now: for violation reports."""
        lines = []
        for name, host in self.servers.items():
            node = host.node
            if node is None:
                lines.append(f"  {name}: down")
                continue
            tables = "; ".join(
                f"{k[0]}:{k[1]} total={t.total} free={t.free} flight={t.in_flight} alloc={t.alloc}"
                for k, t in node.pool.features.items()
            )
            local = sorted(f"{short_id(lid)}@{x.client_id}" for lid, x in node.member.leases.leases.items())
            reg = sorted(f"{short_id(lid)}@{x.holder}" for lid, x in node.pool.registry.leases.items())
            lines.append(
                f"  {name}: {node.role} epoch={node.epoch} applied={node.applied} {tables}\n"
                f"      local={local} registry={reg} status="
                f"{ {s: st.status for s, st in node.pool.servers.items()} }"
            )
        for name, client in self.clients.items():
            held = client.core.held(client.clock.local(self.now)) if client.alive else {}
            lines.append(
                f"  {name}: {'alive' if client.alive else 'crashed'} "
                f"held={sorted(f'{short_id(k)}@{v.server}' for k, v in held.items())}"
            )
        return "\n".join(lines)


class AdminDriver:
    def admin_submit(
        self: Any,
        make: Callable[[str], Any],
        valid: Callable[[], bool] | None = None,
        done: Callable[[], None] | None = None,
    ) -> None:
        """Send an admin change to a random server, retrying every second for a
        minute until it is acknowledged, or until ``valid()`` turns false (the
        operator notices it no longer applies).  ``done`` runs at the end either way."""
        self.admin_no += 1
        rid = f"adm-{self.admin_no}"
        self.admin_pending[rid] = AdminRequest(make(rid), self.now + 60.0, valid, done)
        self._on_admin(rid)

    def admin_finished(self: Any, rid: str) -> None:
        request = self.admin_pending.pop(rid, None)
        if request is not None and request.done is not None:
            request.done()

    def _on_admin(self: Any, rid: str) -> None:
        request = self.admin_pending.get(rid)
        if request is None:
            return
        if self.now > request.give_up or (request.valid is not None and not request.valid()):
            self.admin_finished(rid)
            return
        target = self.rng["admin"].choice(sorted(self.servers))
        self.send_all(ADMIN, Ready(send=[_out(target, request.msg)]))
        self.push(self.now + 1.0, "admin", rid)


@dataclass
class AdminRequest:
    msg: Any
    give_up: float
    valid: Callable[[], bool] | None = None
    done: Callable[[], None] | None = None


def _out(to: str, msg: Any) -> Outgoing:
    return Outgoing(to, msg)
