"""The World's side of the shell model (tests/sim/shell.py): server inboxes
with service time, the transport's drops and address books, the session actor
and LicenseClient events, kills inside a step, and app restarts.

A mixin of ``World``; ``self`` is the world (typed ``Any``, as in drivers.py).
Nothing here runs in the classic model.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

from actors.core.effects import ClientRef, Event, Ready
from actors.persist import PersistError
from actors.persist.errors import SimulatedCrash
from actors.protocol.raft import SyncReply
from actors.shell.book import AddressBook
from actors.shell.flow import SyncWindow
from actors.shell.persistence import NodeStore
from tests.sim.checks import InvariantViolation
from tests.sim.hosts import ADMIN, ClientHost, ServerHost
from tests.sim.shell import ClientProxy, InboxItem, SessionActor, SimStorage, Step
from tests.sim.trace import short, short_id

__all__ = ["ShellWorld"]

_HELLO = "PeerHello"
"""A server tells a peer it found where it lives (server_actor.receiveMsg_PeerResolved)."""


class ShellWorld:
    # ---- servers: boot, inbox, steps -----------------------------------------------------

    def shell_boot(self: Any, name: str) -> None:
        host: ServerHost = self.servers[name]
        if host.up:
            return
        host.nstore = NodeStore.over(host.storage, compact_every_records=self.config.compact_every)
        try:
            durable = host.nstore.load()
        except PersistError as err:
            raise InvariantViolation("CRASH", f"{name} cannot load its store: {err}") from err
        now = host.clock.local(self.now)
        node, ready = self.node_factory.boot(self.settings(name), durable, now)
        host.node, host.up_since, host.down_since = node, self.now, None
        host.book = AddressBook(tuple(n for n in self.servers if n != name), self.timing.failure_timeout)
        host.window = SyncWindow(window=2, max_hold=self.timing.heartbeat_interval / 2)
        self.topology_changed()
        records = len(durable[1]) if durable else 0
        self.log(name, f"BOOT gen={host.gen} records={records} snapshot={bool(durable and durable[0] is not None)}")
        if self.checker is not None:
            self.checker.server_restarted(host)
        self.shell_resolve_stale(name, host.book, now)
        self._shell_begin(host, ready, now)

    def _shell_enqueue(self: Any, host: ServerHost, item: InboxItem) -> None:
        host.inbox.append(item)
        self._shell_serve(host)

    def _shell_serve(self: Any, host: ServerHost) -> None:
        """Handle queued messages one at a time, each as one step; a burst ends
        (group commit: one fsync, then its sends) when none is left waiting or
        after ``max_batch`` steps."""
        while host.up and not host.stalled and host.step is None and host.inbox:
            if host.outbox and host.batched >= self.shell.max_batch:
                self._shell_end_burst(host)
                return
            item = host.inbox.popleft()
            start, bound = (item.arrival, self.bound) if item.sent is None else (item.sent, self.app_bound)
            if not item.is_tick and self.now - start > bound:
                # Its sender's transmit waited past the bound: Thespian gave up on it.
                self.log(
                    host.name,
                    f"TRANSMIT TIMEOUT {type(item.msg).__name__} from {item.src} (waited {self.now - start:.3f}s)",
                )
                if self.checker is not None:
                    self.checker.stats["shell: transmits timed out"] += 1
                continue
            self._shell_handle(host, item)
        if host.up and not host.stalled and host.step is None and host.outbox:
            self._shell_end_burst(host)

    def _shell_end_burst(self: Any, host: ServerHost) -> None:
        """The burst is over: one fsync (its cost is a step of its own), then its sends."""
        if host.unsynced:
            cost = self.shell_rng.uniform(*self.shell.fsync)
            host.step = Step(Ready(), self.now + cost, flush=True)
            self.push(self.now + cost, "served", host.name, host.gen)
        else:
            self._shell_flush(host)

    def _shell_flush(self: Any, host: ServerHost) -> None:
        """server_actor._flush: sync, then every held Ready's sends in order, then compaction."""
        name, node = host.name, host.node
        if host.unsynced:
            host.nstore.sync()
            host.unsynced = False
            if self.checker is not None and host.batched > 1:
                self.checker.stats["shell: steps synced together"] += host.batched
        host.batched = 0
        held, host.outbox = host.outbox, []
        for ready, _ in held:
            if self._crash_now(host, ready, before_send=True):
                return
        for ready, now in held:
            if node.raft.term != host.window_term:
                host.window.reset()
                host.window_term = node.raft.term
            self._shell_server_sends(host, ready, now)
        compacted = host.nstore.maybe_compact(node.snapshot)
        if compacted:
            self.log(name, "COMPACTED")
            if self.checker is not None:
                self.checker.stats["shell: compactions"] += 1
        if held and self._crash_now(host, held[-1][0], before_send=False):
            return
        if compacted:
            # The actor's pause for the journal swap (and the fork before it),
            # once per compaction: a step of its own, like the fsync.
            pause = self.shell_rng.uniform(*self.shell.compaction)
            host.step = Step(Ready(), self.now + pause, flush=True)
            self.push(self.now + pause, "served", host.name, host.gen)
            return
        self._shell_serve(host)

    def _shell_handle(self: Any, host: ServerHost, item: InboxItem) -> None:
        now = host.clock.local(self.now)
        node = host.node
        if item.is_tick:
            host.wake_due = math.inf
            self.shell_resolve_stale(host.name, host.book, now)
            self._shell_peer_sends(host, list(host.window.due(now)), now)
            ready = node.tick(now)
        elif item.src in self.servers:
            host.book.learn(item.src, item.src_addr, now)
            host.book.heard(item.src, now)
            if item.msg == _HELLO:
                return
            self.log(host.name, f"<- {item.src} {short(item.msg)}")
            if type(item.msg).__name__ == "InstallSnapshot" and self.checker is not None:
                self.checker.stats["shell: snapshots installed"] += 1
            if isinstance(item.msg, SyncReply):
                released = host.window.answered(item.src, item.msg.round, now)
                if released is not None:
                    self._shell_peer_sends(host, [(item.src, released)], now)
            ready = node.receive(item.src, item.msg, now)
        else:
            self.log(host.name, f"<- {item.src} {short(item.msg)}")
            host.clients.add(item.session)
            ready = node.from_client(ClientRef(item.session), item.msg, now)
        self._shell_begin(host, ready, now)

    def _shell_begin(self: Any, host: ServerHost, ready: Ready, now: float) -> None:
        """The core has run: its effects are due when the step's cost is paid."""
        for ev in ready.events:
            self.log(host.name, f"* {ev.kind} {short(dict(ev.fields))}")
            if ev.kind in ("refused_sync", "refused_snapshot"):
                raise InvariantViolation("S4", f"{host.name}: {ev.kind} {dict(ev.fields)}")
        p, rng = self.shell, self.shell_rng
        cost = rng.uniform(*p.msg_cost) + rng.uniform(*p.core_cost) + p.send_cost * len(ready.send)
        if ready.persist and not p.group_commit:
            cost += rng.uniform(*p.fsync)
        if self.checker is not None:
            self.checker.granted_by(host, ready.events)
            self.checker.expired_by(host, ready.events)
            self.checker.server_changed(host)
        host.step = Step(ready, self.now + cost)
        self.push(self.now + cost, "served", host.name, host.gen)
        if host.kill_armed and len(ready.persist) >= 2:
            # The armed kill lands inside this step, while its records are written.
            self.push(self.now + rng.uniform(0.0, cost), "shell_kill", host.name, host.gen)

    def _on_served(self: Any, name: str, gen: int) -> None:
        host: ServerHost = self.servers[name]
        if host.gen != gen or host.step is None:
            return
        if host.stalled:
            host.step_frozen = True
            return
        step, host.step = host.step, None
        if step.flush:
            self._shell_flush(host)
            return
        ready = step.ready
        node = host.node
        if self.shell.group_commit:
            # Appended now (a SIGKILL keeps it, a power loss may not), synced at the burst's end.
            host.nstore.append(ready.persist)
            host.unsynced = host.unsynced or bool(ready.persist)
        else:
            host.nstore.write(ready.persist)
        for ev in ready.events:
            if ev.kind == "leader":
                self.won_commit[host.name] = (node.epoch, node.raft.commit_index)
            elif ev.kind == "stale_direct" and self.checker is not None:
                self.checker.stats["shell: late direct asks refused"] += 1
        self.record_releases(host, ready.events)
        now = host.clock.local(self.now)
        host.outbox.append((ready, now))
        host.batched += 1
        self._shell_schedule(host, ready.wake_at, now)
        if self.checker is not None:
            self.checker.server_changed(host)
        if not self.shell.group_commit:
            self._shell_end_burst(host)
            return
        self._shell_serve(host)

    def _shell_schedule(self: Any, host: ServerHost, wake_at: float | None, now: float) -> None:
        """server_actor._schedule: at least every h, and when a held sync is due."""
        latest = now + self.timing.heartbeat_interval
        wake_at = latest if wake_at is None else min(wake_at, latest)
        held = host.window.next_due()
        if held is not None:
            wake_at = min(wake_at, max(held, now))
        if wake_at < host.wake_due - 0.0005:
            host.wake_due = wake_at
            host.wake_gen += 1
            host.wake_real = max(host.clock.real(wake_at), self.now)
            self.push(host.wake_real, "wake", host.name, host.wake_gen)

    def shell_server_wake(self: Any, host: ServerHost) -> None:
        host.wake_real = None
        self._shell_enqueue(host, InboxItem(self.now, "", None, ""))

    def shell_resume(self: Any, host: ServerHost) -> None:
        """SIGCONT: the frozen step ends, then the inbox drains (old messages were timed out by their senders)."""
        if host.step_frozen and host.step is not None:
            host.step_frozen = False
            self.push(self.now, "served", host.name, host.gen)
        host.wake_due = math.inf
        self.shell_server_wake(host)

    # ---- kills ---------------------------------------------------------------------------------

    def shell_kill(self: Any, host: ServerHost, armed_ok: bool = True) -> None:
        """A kill: half of them wait (at most 0.2 s) for a step with two or more records."""
        if not host.up:
            return
        if armed_ok and not host.kill_armed and self.shell_rng.random() < self.shell.mid_step_kill:
            host.kill_armed = True
            self.log(host.name, "KILL armed: at its next step with two or more records")
            self.push(self.now + 0.2, "shell_kill", host.name, host.gen)
            return
        self._shell_crash(host)

    def _on_shell_kill(self: Any, name: str, gen: int) -> None:
        host = self.servers[name]
        if host.gen == gen and host.up and host.kill_armed:
            self._shell_crash(host)

    def _shell_crash(self: Any, host: ServerHost) -> None:
        power_loss = self.shell_rng.random() < self.shell.power_loss
        step = host.step
        if step is not None and step.ready.persist:
            records = step.ready.persist
            k = self.shell_rng.randint(0, len(records))
            storage = host.storage
            assert isinstance(storage, SimStorage)  # the shell model's hosts get one (World.__init__)
            storage.cut_after(k, power_loss=power_loss)
            with contextlib.suppress(SimulatedCrash):
                host.nstore.write(records)
            storage.disarm()
            self.log(
                host.name,
                f"CRASH inside a step: {k} of {len(records)} appends done "
                f"({'power loss' if power_loss else 'process killed'})",
            )
            if self.checker is not None:
                self.checker.stats["shell: crashes inside a step"] += 1
        else:
            self.log(host.name, f"CRASH ({'power loss' if power_loss else 'process killed'})")
        host.crash(self.now, power_loss=power_loss)
        self.history.open("down", {host.name}, self.now)
        self.topology_changed()

    # ---- the transport -------------------------------------------------------------------------

    def shell_send(self: Any, src: str, ready: Ready) -> None:
        """Sends that bypass the address books: the admin CLI resolves afresh every time."""
        for out in ready.send:
            assert isinstance(out.to, str)
            self._shell_transmit(src, out.to, out.msg, src, self.servers[out.to].gen, None)

    def _shell_server_sends(self: Any, host: ServerHost, ready: Ready, now: float) -> None:
        peers: list[tuple[str, Any]] = []
        for out in ready.send:
            if isinstance(out.to, ClientRef):
                session = out.to.session_id
                # An app's direct ask is answered at the app ("direct:SESSION:REQUEST", as server_actor names it).
                dst = self.owner.get(session.split(":")[1] if session.startswith("direct:") else session)
                if dst is None or session not in host.clients:
                    self.log(host.name, f"-> unknown session {session} {short(out.msg)}")
                    continue
                if session.startswith("direct:"):
                    host.clients.discard(session)  # server_actor keeps no address of an answered direct ask
                self._shell_transmit(host.name, dst, out.msg, session, None, None)
                continue
            msg = host.window.offer(out.to, out.msg, now)
            if msg is not None:
                peers.append((out.to, msg))
        self._shell_peer_sends(host, peers, now)

    def _shell_peer_sends(self: Any, host: ServerHost, sends: list[tuple[str, Any]], now: float) -> None:
        for name, msg in sends:
            address = host.book.address(name)
            if address is None:
                self.log(host.name, f"-> {name} NOT FOUND YET {type(msg).__name__}")
                continue
            host.book.sent(name, now)
            self._shell_transmit(host.name, name, msg, host.name, address[1], (host.name, host.gen))

    def shell_app_direct(self: Any, client: ClientHost, route: tuple[str, Any], msg: Any) -> None:
        """The app's own ask (lever 4), to the address its session had for that server at the last grant."""
        name, address = route
        ref = f"direct:{client.session_id}:{msg.request_id}"
        share, shortest, longest = self.shell.late_direct
        late = 0.0
        if share > 0 and self.late_rng.random() < share:
            late = self.late_rng.uniform(shortest, longest)
            self.log(client.name, f"-> {name} direct ask {msg.request_id} LATE by {late:.3f}s (its transmit)")
            if self.checker is not None:
                self.checker.stats["shell: direct asks late"] += 1
        self._shell_transmit(client.name, name, msg, ref, address[1], None, late, sent=self.now)

    def shell_session_send(self: Any, client: ClientHost, name: str, msg: Any, address: Any) -> None:
        self._shell_transmit(client.name, name, msg, client.session_id, address[1], None)

    def _shell_transmit(
        self: Any,
        src: str,
        dst: str,
        msg: Any,
        session: str,
        gen: int | None,
        src_addr: Any,
        late: float = 0.0,
        sent: float | None = None,
    ) -> None:
        """``sent``: an app's direct ask, bound from its send (``InboxItem.sent``)."""
        delays = self.net.fate(src, dst)
        if not delays:
            self.log(src, f"-> {dst} DROPPED {type(msg).__name__}")
        for delay in delays:
            self.push(self.now + late + delay, "sdeliver", src, dst, msg, session, gen, src_addr, sent)

    def _on_sdeliver(
        self: Any, src: str, dst: str, msg: Any, session: str, gen: int | None, src_addr: Any, sent: float | None
    ) -> None:
        if dst in self.servers:
            host = self.servers[dst]
            if not host.up:
                return
            if gen is not None and gen != host.gen:
                self.log(dst, f"<- {src} LOST at an old address (gen {gen}) {type(msg).__name__}")
                return
            self._shell_enqueue(host, InboxItem(self.now, src, msg, session, src_addr, sent))
        elif dst == ADMIN:
            self.log(dst, f"<- {src} {short(msg)}")
            rid = getattr(msg, "request_id", None)
            if rid in self.admin_pending and getattr(msg, "ok", False):
                self.admin_finished(rid)
        else:
            client = self.clients[dst]
            if session.startswith("direct:"):
                if client.alive and session.split(":")[1] == client.session_id:
                    self.log(dst, f"<- {src} (app) {short(msg)}")
                    client.proxy.from_server_direct(msg)
                return
            if not client.alive or session != client.session_id:
                return
            self.log(dst, f"<- {src} {short(msg)}")
            client.actor.from_server(src, msg)

    def shell_resolve_stale(self: Any, owner: str, book: AddressBook, now: float) -> None:
        """ask_for_stale: the Resolver looks each stale name up (a few ms)."""
        for name in book.stale(now):
            self._resolve_later(owner, self._owner_gen(owner), name, self.shell_rng.uniform(*self.shell.resolve))

    def _owner_gen(self: Any, owner: str) -> int:
        return int(self.servers[owner].gen if owner in self.servers else self.clients[owner].session_no)

    def _resolve_later(self: Any, owner: str, gen: int, name: str, delay: float) -> None:
        self.push(self.now + delay, "resolve", owner, gen, name)

    def _on_resolve(self: Any, owner: str, gen: int, name: str) -> None:
        if owner in self.servers:
            host = self.servers[owner]
            if host.gen != gen or not host.up:
                return
        else:
            client = self.clients[owner]
            if client.session_no != gen or not client.alive:
                return
        target = self.servers[name]
        if not target.up:
            # The host's admin does not answer: the Resolver asks again while the name is wanted.
            self._resolve_later(owner, gen, name, self.shell.resolver_retry)
            return
        address = (name, target.gen)
        if owner in self.servers:
            host = self.servers[owner]
            now = host.clock.local(self.now)
            if host.book.learn(name, address, now, resolved=True):
                # server_actor.receiveMsg_PeerResolved: say hello, so the peer learns us too.
                self._shell_transmit(owner, name, _HELLO, owner, target.gen, (owner, host.gen))
        else:
            self.clients[owner].actor.resolved(name, address)

    # ---- client sessions and the app -------------------------------------------------------------

    def _new_session(self: Any, client: ClientHost, timeout: float) -> None:
        client.actor = SessionActor(self, client)
        client.proxy = ClientProxy(self, client, timeout, client.session_no)
        client.orphan_since.clear()

    def session_ready(self: Any, client: ClientHost, ready: Ready) -> None:
        """What ``client_out`` does for a core step, minus telling the app: the
        session actor answers the LicenseClient instead."""
        self.session_bookkeeping(client, ready)
        for out in ready.send:
            assert isinstance(out.to, str)
            client.actor.send(out.to, out.msg)
        client.deadlines = {lid: x.deadline for lid, x in client.core.held(client.clock.local(self.now)).items()}
        self._touched_clients.add(client.name)

    def app_event(self: Any, client: ClientHost, ev: Event) -> None:
        self.log(client.name, f"app: {ev.kind} {short(dict(ev.fields))}")
        self.apps[client.name].on_event(ev, self.now)
        self._schedule_app(client.name)
        self._touched_clients.add(client.name)

    def _live_session(self: Any, name: str, gen: int) -> ClientHost | None:
        client = self.clients[name]
        return client if client.alive and client.session_no == gen else None

    def _on_to_app(self: Any, name: str, gen: int, ask: int, msg: Any) -> None:
        client = self._live_session(name, gen)
        if client is not None:
            client.proxy.from_session(ask, msg)

    def _on_to_session(self: Any, name: str, gen: int, ident: int, msg: Any) -> None:
        client = self._live_session(name, gen)
        if client is not None:
            client.actor.on_app(msg, ident)

    def _on_ask_timeout(self: Any, name: str, gen: int, ident: int, stage: str) -> None:
        client = self._live_session(name, gen)
        if client is not None:
            client.proxy.ask_timeout(ident, stage)

    def _on_proxy_retry(self: Any, name: str, gen: int, args: tuple[Any, ...]) -> None:
        client = self._live_session(name, gen)
        if client is not None:
            client.proxy.retry(args)

    def _on_adopt_flush(self: Any, name: str, gen: int) -> None:
        client = self._live_session(name, gen)
        if client is not None:
            client.proxy.flush_adopts()

    def _on_proxy_expire(self: Any, name: str, gen: int) -> None:
        client = self._live_session(name, gen)
        if client is not None:
            client.proxy.expire()

    def shell_client_wake(self: Any, client: ClientHost) -> None:
        client.wake_real = None
        client.actor.wakeup()

    def shell_client_action(self: Any, client: ClientHost, action: tuple[str, ...]) -> None:
        if action[0] == "checkout":
            feature, version, rid = action[1:4]
            count = int(action[4]) if len(action) > 4 else 1
            linger = float(action[5]) if len(action) > 5 else 0.0
            client.proxy.checkout(int(rid), feature, version, count=count, linger=linger)
        elif action[0] == "queue":
            _, feature, version, rid, timeout = action
            client.proxy.checkout(int(rid), feature, version, queue=True, timeout=float(timeout))
        elif action[0] == "release":
            client.proxy.release(action[1])
        elif action[0] == "reconnect":
            self.shell_reconnect(client)

    def shell_reconnect(self: Any, client: ClientHost) -> None:
        """The app process restarts; its lease file lists what the app knew it held."""
        held = {lid: (x.feature, x.version) for lid, x in client.proxy.held().items()}
        self.owner.pop(client.session_id, None)
        client.session_no += 1
        client.session_id = f"{client.name}/{client.session_no}"
        self.owner[client.session_id] = client.name
        seq_base = int(self.now * 1000) if self.config.seq_base else 0
        client.core = self.session_factory(
            client.name, client.session_id, tuple(self.servers), self.timing, seq_base=seq_base
        )
        client.wake_real = None
        timeout = client.proxy.timeout
        self._new_session(client, timeout)
        client.actor.start()
        self.log(client.name, f"RECONNECT as {client.session_id}, resuming {sorted(map(short_id, held))}")
        app = self.apps[client.name]
        proxy = client.proxy
        client.resume_ids = set(held)
        for lid, (feature, version) in sorted(held.items()):
            proxy.checkout(app.resume(lid, self.now), feature, version, lease_id=lid, count=client.seats.get(lid, 1))
        stale = random.Random(f"{self.config.seed}/stale/{client.name}/{client.session_no}")
        if client.released and stale.random() < 0.5:
            lid = stale.choice(sorted(client.released))
            feature, version = client.features[lid]
            proxy.checkout(app.resume(lid, self.now), feature, version, lease_id=lid, count=client.seats.get(lid, 1))
        for lid in sorted({lid for at, lid, _ in client.lost if at >= client.reconnected_at} - set(held)):
            feature, version = client.features[lid]
            proxy.checkout(app.resume(lid, self.now), feature, version, lease_id=lid, count=client.seats.get(lid, 1))
        client.reconnected_at = self.now
        self._schedule_app(client.name)
