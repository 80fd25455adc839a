"""The shell model: what the Thespian shell adds to the cores, simulated.

``SimConfig(shell=True)`` turns it on (``python -m tests.sim.run --shell``);
the classic model (instant servers, omniscient apps) stays the default, so
the named seeds keep their traces.  leadership.md M16: a rule the
simulator cannot break is only as good as its model.  What it adds:

* **Service time** (``actors/shell/server_actor.py``): a LicenseServer handles
  one message at a time.  Each step costs Thespian's per-message overhead, the
  core's work, a cost per send, and a compaction pause when
  ``NodeStore.maybe_compact`` fires.  **Group commit** as the actor does it:
  each step's records are appended as one frame when the step ends, its
  messages wait; when no received message is left waiting (or after
  ``max_batch`` steps) one fsync, a step of its own, makes the burst durable,
  and only then do the burst's messages leave, in order.  A SIGKILL mid-burst
  keeps the appended frames (page cache), a power loss may tear them, and the
  burst's messages are lost either way (``ShellParams.group_commit=False``:
  append and fsync per step, as ``LICPOOL_GROUP_COMMIT=0``).  Figures from
  docs/performance.md: ~1 ms per message, 2.5-4 ms per fsync on a loaded disk
  (some seeds draw a slow disk, 8-30 ms), 10-50 ms per compaction.  The core
  runs when the step starts; its records reach the disk, and its messages the
  network, when the step ends.  Wake-ups are messages too, at least every
  ``h`` (``_schedule``).
* **Thespian's transport**: a message that waits in an inbox (busy or
  SIGSTOPped server) longer than the transmit bound (``transmit_timeout``:
  ``max(failure_timeout, 0.25)``) is dropped, so an overloaded server loses
  messages in bursts.  An app's direct ask is bound by the app process's own
  transmit timeout instead (``Timing.app_transmit``, T, from its send), and a
  few of them are late in transit too (``late_direct``).  Peer addresses live in the shell's real
  ``AddressBook``: a message goes to the address the sender's book holds, and
  one sent to a restarted peer's old address is lost.  Books refresh as the
  shell's do: from the sender address of every peer envelope, by a
  ``Resolver`` lookup (a few ms, retried every second while the host is down)
  when a peer has been silent for ``failure_timeout``, and through the
  ``PeerHello`` a server sends to every peer it found.  A session learns only
  through its resolver, and buffers up to 64 messages per unresolved server.
  A server replies to a client session at the address that session last used.
  The leader's syncs pass the shell's ``SyncWindow`` (2 unanswered per peer).
* **The real client paths**: ``SessionActor`` mirrors
  ``actors/shell/session_actor.ClientSession`` (waiters, ``heard_at``,
  ``AbandonCheckout``, lease notices, the ``h`` wake-up cap) and
  ``ClientProxy`` mirrors ``LicenseClient`` (an ask per attempt, one request
  id for the whole checkout, retries of NOT_SERVING/NO_MAJORITY with pauses of
  0.1 s doubling to 0.5 s, the ask timeout and its ``AbandonCheckout`` ask,
  which skips a late ``CheckoutResult`` and waits for ``CheckoutAbandoned``;
  the listener's own deadline check; the direct ask, and the adopter, which
  tells the session of the direct grants of ``adopt_window`` in one message).
  The app sees only what the proxy tells it.  App <-> session hops cost
  0.5-2 ms.
* **Crash points inside a step**: a kill that lands while a server is in a
  step cuts the step's records (``SimStorage.cut_after``: the first k appends
  reach the page cache, then the process dies).  Half of all kills wait for
  the target's next step with two or more records (at most 0.2 s) so that
  happens often.  Kills are process kills (the page cache survives) or,
  for 30 %, machine crashes (unsynced data is lost, torn tails).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors.core.effects import Event, Ready
from actors.persist import CrashingMemoryStorage
from actors.persist.errors import SimulatedCrash
from actors.protocol import admin
from actors.protocol.client import CheckoutGranted, CheckoutRequest, DenyReason
from actors.shell.book import AddressBook

if TYPE_CHECKING:
    from tests.sim.hosts import ClientHost
    from tests.sim.world import World

__all__ = ["ShellParams", "SimStorage", "SessionActor", "ClientProxy", "transmit_bound", "Step"]

_BUFFER = 64
"""Messages a session keeps per server while its address is being found (session_actor._BUFFER)."""
_ASK = 5.0
"""LicenseClient's ask timeout for calls that do not wait for a server (client_proxy._ASK)."""
_TRANSIENT = frozenset({DenyReason.NOT_SERVING.value, DenyReason.NO_MAJORITY.value})
_RETRY_FIRST, _RETRY_MAX = 0.1, 0.5
_DIRECT_COOLDOWN = 30.0
"""client_proxy._DIRECT_COOLDOWN."""


def transmit_bound(failure_timeout: float) -> float:
    """``actors.shell.launcher.transmit_timeout`` (not imported: it pulls in Thespian)."""
    return max(failure_timeout, 0.25)


@dataclass
class ShellParams:
    msg_cost: tuple[float, float] = (0.0006, 0.0014)
    """Thespian's per-message overhead (docs/performance.md: about 1 ms)."""
    core_cost: tuple[float, float] = (0.0002, 0.0006)
    send_cost: float = 0.00005
    fsync: tuple[float, float] = (0.0025, 0.004)
    slow_fsync: tuple[float, float] = (0.008, 0.03)
    slow_disk_rate: float = 0.3
    """Share of seeds whose servers have the slow disk."""
    compaction: tuple[float, float] = (0.01, 0.05)
    local_hop: tuple[float, float] = (0.0005, 0.002)
    """One message between the app (LicenseClient) and its session actor."""
    resolve: tuple[float, float] = (0.002, 0.02)
    resolver_retry: float = 1.0
    mid_step_kill: float = 0.5
    power_loss: float = 0.3
    hello_delay: tuple[float, float] = (0.001, 0.02)
    group_commit: bool = True
    """server_actor's group commit: a burst's records are appended step by step, synced once at its end (when
    no received message waits, or after ``max_batch``), and only then do its messages leave."""
    max_batch: int = 64
    """server_actor._MAX_BATCH."""
    adopt_window: float = 0.02
    """client_proxy.ADOPT_WINDOW: the app's adopter waits that long after a direct grant for more, and tells
    its session of them all in one ``AdoptGrants`` (one ``AdoptGrant`` when alone)."""
    late_direct: tuple[float, float, float] = (0.03, 0.5, 8.0)
    """(share, shortest, longest): a direct ask whose transmit is slow (a starved app host, a connect retried)
    arrives that much later than the network alone would deliver it.  The app process's own transmits may wait
    up to ``app_bound`` (``Timing.app_transmit``, T), so such an ask can reach its server long after the app
    fell back to its session, and after that checkout's lease was given back (docs/performance.md, "Late
    direct asks").  Drawn from a generator of its own, so the other draws of a seed do not move."""
    direct: bool = True
    """client_proxy's lever 4 (``LICPOOL_DIRECT``, on by default): after a grant, the app's next plain checkout
    asks that server itself (for ``client_retry`` at most), tells its session to adopt the grant, and falls
    back to its session (which asks that server first) on a denial or silence."""

    def scale_cpu(self, factor: float) -> None:
        """A loaded server host: every step's CPU work (message, core, sends) costs ``factor`` times as much."""
        self.msg_cost = (self.msg_cost[0] * factor, self.msg_cost[1] * factor)
        self.core_cost = (self.core_cost[0] * factor, self.core_cost[1] * factor)
        self.send_cost *= factor


class SimStorage(CrashingMemoryStorage):
    """The simulator's fake disk: ``CrashingMemoryStorage`` plus a crash cut
    inside one step.  ``cut_after(k)`` lets the next ``k`` appends through and
    crashes at the following persist point; ``power_loss=False`` (a SIGKILL)
    keeps what reached the page cache, so a step whose records are appended one
    by one leaves a prefix of them on disk.  A mutant "split step on disk" can
    use the same cut."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._appends_left: int | None = None
        self._cut_power_loss = False

    def cut_after(self, appends: int, power_loss: bool = False) -> None:
        self._appends_left = appends
        self._cut_power_loss = power_loss

    def disarm(self) -> None:
        self._appends_left = None

    def _persist_point(self, op: str, name: str) -> bool:
        pending = super()._persist_point(op, name)
        if self._appends_left is not None:
            if op == "append" and self._appends_left > 0:
                self._appends_left -= 1
            else:
                self._appends_left = None
                return True
        return pending

    def _crash_now(self) -> None:
        self.crash(power_loss=self._cut_power_loss)
        self._cut_power_loss = True
        raise SimulatedCrash("injected crash")


@dataclass
class Step:
    """A server step in progress: the core has run, its effects are due at ``end``."""

    ready: Ready
    end: float
    flush: bool = False
    """The burst's fsync (group commit), not a message: at its end the burst's sends go out."""


@dataclass
class InboxItem:
    arrival: float
    src: str
    msg: Any
    session: str
    src_addr: Any = None
    """The sender's address (peer envelopes carry it)."""
    sent: float | None = None
    """An app's direct ask: when the app sent it.  Its transmit may wait ``app_bound`` from then (the app
    process's own transmit timeout); every other message ``bound`` from its arrival."""

    @property
    def is_tick(self) -> bool:
        return self.src == ""


def new_inbox() -> deque[InboxItem]:
    return deque()


# ---- the client side: session actor and LicenseClient --------------------------------


@dataclass
class _Waiter:
    ask: int
    asked_at: float


class SessionActor:
    """``actors/shell/session_actor.ClientSession`` over the world's clock and network."""

    def __init__(self, w: World, client: ClientHost) -> None:
        self.w, self.client = w, client
        self.gen = client.session_no
        self.waiters: dict[int, _Waiter] = {}
        self.heard_at = -math.inf
        self.deadlines: dict[str, float] = {}
        self.book = AddressBook(tuple(w.servers), w.timing.failure_timeout)
        self.buffered: dict[str, list[Any]] = {}
        self.wake_due = math.inf
        self.closed = False

    @property
    def core(self) -> Any:
        return self.client.core

    def local(self) -> float:
        return self.client.clock.local(self.w.now)

    def start(self) -> None:
        """SessionStart: look every server up, and wake within ``h``."""
        self.w.shell_resolve_stale(self.client.name, self.book, self.local())
        self._schedule(None, self.local())

    # ---- from the app ------------------------------------------------------------------

    def on_app(self, msg: Any, ask: int) -> None:
        now = self.local()
        if isinstance(msg, admin.OpenCheckout):
            self.waiters[msg.request_id] = _Waiter(ask, now)
            if msg.lease_id is not None and msg.lease_id in self.client.resume_ids:
                # A lease the restarted app held (not a stale file's released or lost one): S3's reconnect rule.
                self.client.resuming[msg.request_id] = (msg.lease_id, (msg.feature, msg.version))
            if self.w.checker is not None:
                self.w.checker.l1.checkout(self.client, msg.request_id, (msg.feature, msg.version), msg.count)
            self._run(
                lambda t: self.core.checkout(
                    msg.feature,
                    msg.version,
                    msg.request_id,
                    t,
                    msg.lease_id,
                    queue=msg.queue,
                    timeout=msg.queue_timeout,
                    count=msg.count,
                    linger=msg.linger,
                    server=msg.server or None,
                )
            )
            if msg.request_id not in self.core.outstanding():
                self.waiters.pop(msg.request_id, None)  # session_actor: abandoned before it came
        elif isinstance(msg, admin.AdoptGrant):
            self._run(lambda t: self.core.adopt(msg.grant.server, msg.grant, msg.sent_at, t))
        elif isinstance(msg, admin.AdoptGrants):
            self._run(lambda t: self.core.adopt_all(((a.grant, a.sent_at) for a in msg.adopts), t))
        elif isinstance(msg, admin.AbandonCheckout):
            waiting = self.waiters.pop(msg.request_id, None)
            self.client.resuming.pop(msg.request_id, None)
            if self.w.checker is not None:
                self.w.checker.l1.abandoned(self.client, msg.request_id)
            self.w.log(self.client.name, f"abandon {msg.request_id}")
            self._run(lambda t: self.core.abandon(msg.request_id, t))
            heard = waiting is None or self.heard_at >= waiting.asked_at
            self._to_app(ask, admin.CheckoutAbandoned(request_id=msg.request_id, heard=heard))
        elif isinstance(msg, admin.ReleaseLease):
            self.deadlines.pop(msg.lease_id, None)
            self._run(lambda t: self.core.release(msg.lease_id, t, msg.server))
            self._to_app(ask, admin.LeaseReleased(lease_id=msg.lease_id))

    # ---- from servers ------------------------------------------------------------------

    def from_server(self, name: str, msg: Any) -> None:
        now = self.local()
        self.book.heard(name, now)
        self.heard_at = now
        self._run(lambda t: self.core.receive(name, msg, t))

    def resolved(self, name: str, address: Any) -> None:
        self.book.learn(name, address, self.local(), resolved=True)
        for msg in self.buffered.pop(name, []):
            self.w.shell_session_send(self.client, name, msg, address)

    def send(self, name: str, msg: Any) -> None:
        """``_send_all``: to the book's address, or into the buffer."""
        now = self.local()
        self.book.sent(name, now)
        address = self.book.address(name)
        if address is None:
            queue = self.buffered.setdefault(name, [])
            if len(queue) < _BUFFER:
                queue.append(msg)
            return
        self.w.shell_session_send(self.client, name, msg, address)

    # ---- time ----------------------------------------------------------------------------

    def wakeup(self) -> None:
        self.wake_due = math.inf
        self.w.shell_resolve_stale(self.client.name, self.book, self.local())
        self._run(lambda t: self.core.tick(t))

    def _schedule(self, wake_at: float | None, now: float) -> None:
        latest = now + self.w.timing.heartbeat_interval
        wake_at = latest if wake_at is None else min(wake_at, latest)
        if wake_at < self.wake_due - 0.0005:
            self.wake_due = wake_at
            self.w.schedule_wake(self.client, wake_at, force=True)

    # ---- carrying out a Ready ----------------------------------------------------------

    def _run(self, step: Any) -> None:
        now = self.local()
        ready = step(now)  # the real actor logs and swallows a raise; the simulator reports it (CRASH)
        self.w.session_ready(self.client, ready)
        self._events(ready, now)
        self._notify_deadlines(now)
        if not self.closed:
            self._schedule(ready.wake_at, now)

    def _events(self, ready: Ready, now: float) -> None:
        for event in ready.events:
            kind = event.kind
            if kind == "granted":
                lid = event.get("lease_id")
                self._answer(
                    event.get("request_id"),
                    admin.CheckoutResult(
                        request_id=event.get("request_id"),
                        granted=True,
                        lease_id=lid,
                        server=event.get("server"),
                        deadline=self.core.deadline_of(lid, now),
                        route=self.book.address(event.get("server")),
                    ),
                )
            elif kind == "denied":
                self._answer(
                    event.get("request_id"),
                    admin.CheckoutResult(
                        request_id=event.get("request_id"),
                        granted=False,
                        reason=event.get("reason"),
                        detail=event.get("detail", ""),
                    ),
                )
            elif kind == "adopted":
                # session_actor: the app timed this deadline itself, as the core did: no notice.
                self.deadlines[event.get("lease_id")] = self.core.deadline_of(event.get("lease_id"), now)
            elif kind == "released":
                self.deadlines.pop(event.get("lease_id"), None)
            elif kind == "lost":
                self.deadlines.pop(event.get("lease_id"), None)
                self._notify(
                    admin.LeaseNotice(
                        kind="lost",
                        lease_id=event.get("lease_id"),
                        server=event.get("server", ""),
                        detail=event.get("why", ""),
                    )
                )
            elif kind == "failed_over":
                for lease_id in event.get("lease_ids", ()):
                    self._notify(
                        admin.LeaseNotice(kind="failed_over", lease_id=lease_id, server=event.get("to_server"))
                    )

    def _answer(self, request_id: int, result: admin.CheckoutResult) -> None:
        waiting = self.waiters.pop(request_id, None)
        if waiting is not None:
            self._to_app(waiting.ask, result)

    def _notify(self, notice: admin.LeaseNotice) -> None:
        self._to_app(0, notice)

    def _notify_deadlines(self, now: float) -> None:
        changed = []
        for lease_id, info in self.core.held(now).items():
            if self.deadlines.get(lease_id) != info.deadline:
                self.deadlines[lease_id] = info.deadline
                changed.append((lease_id, info.server, info.deadline))
        if len(changed) == 1:
            lease_id, server, deadline = changed[0]
            self._notify(admin.LeaseNotice(kind="deadline", lease_id=lease_id, server=server, deadline=deadline))
        elif changed:
            self._notify(admin.LeaseNotice(kind="deadlines", deadlines=tuple(changed)))

    def _to_app(self, ask: int, msg: Any) -> None:
        """To an ask context of the LicenseClient (0: its listener)."""
        assert self.w.shell is not None  # a session model exists only in shell mode
        self.w.push(
            self.w.now + self.w.shell_rng.uniform(*self.w.shell.local_hop),
            "to_app",
            self.client.name,
            self.gen,
            ask,
            msg,
        )


@dataclass
class _Auth:
    lease_id: str
    server: str
    feature: str
    version: str
    deadline: float
    app_rid: int
    lost: bool = False
    released: bool = False
    direct: bool = False
    """Granted to the app's own ask: its release names the server."""


@dataclass
class _Ask:
    """One ``with asys.private() as ctx`` of a checkout attempt."""

    ident: int
    app_rid: int
    feature: str
    version: str
    lease_id: str | None
    request_id: int
    deadline: float
    """Local time the whole checkout gives up (``timeout`` from its start)."""
    pause: float
    queue: bool = False
    """``checkout(queue=True)``: wait in the pool's queue."""
    stage: str = "open"
    """``direct`` (waiting for the server's own answer), ``open`` (waiting for CheckoutResult), ``abandon``
    (waiting for the abandon's reply), ``done``."""
    sent_at: float = 0.0
    """A direct ask: its local send time."""
    server: str = ""
    """A direct ask: the server asked; a fall-back asks the session to ask it first."""
    count: int = 1
    """Seats asked for in one lease (``LicenseClient.checkout(count=...)``)."""
    linger: float = 0.0
    """``LicenseClient.checkout(linger=...)``."""


@dataclass
class ClientProxy:
    """``actors/shell/client_proxy.LicenseClient`` for one app process."""

    w: Any
    client: Any
    timeout: float
    gen: int
    ids: int = 0
    asks: dict[int, _Ask] = field(default_factory=dict)
    auths: dict[str, _Auth] = field(default_factory=dict)
    ask_no: int = 0
    expiry_at: float | None = None
    route: tuple[str, Any] | None = None
    """(server, address) of the latest grant through the session: the next plain checkout asks it directly."""
    direct_off_until: float = -math.inf
    adopts: list[Any] = field(default_factory=list)
    """Direct grants the adopter holds until its window ends (``flush_adopts``)."""

    def local(self) -> float:
        return float(self.client.clock.local(self.w.now))

    # ---- the API ------------------------------------------------------------------------

    def checkout(
        self,
        app_rid: int,
        feature: str,
        version: str,
        lease_id: str | None = None,
        queue: bool = False,
        timeout: float | None = None,
        count: int = 1,
        linger: float = 0.0,
    ) -> None:
        now = self.local()
        self.ids += 1  # one request id for the whole checkout, retries included
        if queue:
            self.client.queued.add(self.ids)
        wait = self.timeout if timeout is None else timeout
        self._attempt(app_rid, feature, version, lease_id, now + wait, _RETRY_FIRST, self.ids, queue, count, linger)

    def release(self, lease_id: str) -> None:
        auth = self.auths.pop(lease_id, None)
        if auth is not None and not auth.released:
            auth.released = True
            self._to_session(0, admin.ReleaseLease(lease_id=lease_id, server=auth.server if auth.direct else ""))

    def held(self) -> dict[str, _Auth]:
        return {lid: x for lid, x in self.auths.items() if not x.lost and not x.released}

    # ---- inside -------------------------------------------------------------------------

    def _attempt(
        self,
        app_rid: int,
        feature: str,
        version: str,
        lease_id: str | None,
        deadline: float,
        pause: float,
        request_id: int,
        queue: bool = False,
        count: int = 1,
        linger: float = 0.0,
        first: str = "",
    ) -> None:
        self.ask_no += 1
        ask = _Ask(
            self.ask_no,
            app_rid,
            feature,
            version,
            lease_id,
            request_id,
            deadline,
            pause,
            queue,
            count=count,
            linger=linger,
        )
        self.asks[ask.ident] = ask
        now = self.local()
        timeout = max(0.0, deadline - now)
        route = self.route
        direct_ok = self.w.shell.direct and not queue and lease_id is None and now >= self.direct_off_until
        if route is not None and direct_ok and not first:
            # client_proxy._checkout_direct: ask the server of the latest grant itself.
            ask.stage, ask.sent_at, ask.server = "direct", now, route[0]
            if self.w.checker is not None:
                self.w.checker.l1.checkout(self.client, request_id, (feature, version), count, direct=True)
            self.w.log(self.client.name, f"app asks {route[0]} directly, request {request_id}")
            self.w.shell_app_direct(
                self.client,
                route,
                CheckoutRequest(
                    client_id=self.client.name,
                    session_id=self.client.session_id,
                    request_id=request_id,
                    feature=feature,
                    version=version,
                    exact_version=False,
                    count=count,
                    linger=linger,
                    direct=True,
                ),
            )
            wait = min(timeout, self.w.timing.client_retry)
            self.w.push(
                self.w.now + wait / self.client.clock.rate,
                "ask_timeout",
                self.client.name,
                self.gen,
                ask.ident,
                "direct",
            )
            return
        # client_proxy: the session answers QUEUE_TIMEOUT a little before the ask gives up.
        wait = max(0.05, timeout - min(1.0, timeout / 10)) if queue else 0.0
        self._to_session(
            ask.ident,
            admin.OpenCheckout(
                request_id=ask.request_id,
                feature=feature,
                version=version,
                lease_id=lease_id,
                queue=queue,
                queue_timeout=wait,
                count=count,
                linger=linger,
                server=first,
            ),
        )
        self.w.push(
            self.w.now + timeout / self.client.clock.rate, "ask_timeout", self.client.name, self.gen, ask.ident, "open"
        )

    def from_server_direct(self, msg: Any) -> None:
        """The server's answer to a direct ask (None of them once the ask gave up: ``_answer`` skips it)."""
        ask = next((a for a in self.asks.values() if a.stage == "direct" and a.request_id == msg.request_id), None)
        if ask is None:
            return
        self._finish(ask)
        if not isinstance(msg, CheckoutGranted) or msg.server != ask.server:
            self._fall_back(ask)
            return
        if self.w.checker is not None:
            # The app is the first to hold a direct grant: L1's wait ends here, not at the adopt (which an app
            # restart may overtake; shell seed 443).
            self.w.checker.l1.granted(self.client, ask.request_id)
        self._adopt(admin.AdoptGrant(grant=msg, sent_at=ask.sent_at))
        deadline = ask.sent_at + self.w.timing.holder_valid_for(msg.ttl)
        self.auths[msg.lease_id] = _Auth(
            msg.lease_id, ask.server, ask.feature, ask.version, deadline, ask.app_rid, direct=True
        )
        self._schedule_expiry()
        self._app_event(
            Event("granted", (("request_id", ask.app_rid), ("lease_id", msg.lease_id), ("server", ask.server)))
        )

    def _adopt(self, adopt: Any) -> None:
        """client_proxy._Adopter: the first grant opens a window of ``adopt_window`` (the app's clock); every
        grant within it goes to the session in one message when it ends."""
        self.adopts.append(adopt)
        if len(self.adopts) == 1:
            self.w.push(
                self.w.now + self.w.shell.adopt_window / self.client.clock.rate,
                "adopt_flush",
                self.client.name,
                self.gen,
            )

    def flush_adopts(self) -> None:
        batch, self.adopts = self.adopts, []
        if batch:
            self._to_session(0, batch[0] if len(batch) == 1 else admin.AdoptGrants(adopts=tuple(batch)))

    def _fall_back(self, ask: _Ask) -> None:
        """No grant from the direct ask: through the session, which asks that server first."""
        self._attempt(
            ask.app_rid,
            ask.feature,
            ask.version,
            None,
            ask.deadline,
            ask.pause,
            ask.request_id,
            False,
            ask.count,
            ask.linger,
            first=ask.server,
        )

    def ask_timeout(self, ident: int, stage: str) -> None:
        ask = self.asks.get(ident)
        if ask is None or ask.stage != stage:
            return
        if stage == "direct":
            self._finish(ask)
            self.direct_off_until = self.local() + _DIRECT_COOLDOWN
            self._fall_back(ask)
            return
        if stage == "open":
            # ctx.ask returned None: ask the session to abandon, in the same context.
            ask.stage = "abandon"
            self._to_session(ask.ident, admin.AbandonCheckout(request_id=ask.request_id))
            self.w.push(
                self.w.now + _ASK / self.client.clock.rate,
                "ask_timeout",
                self.client.name,
                self.gen,
                ask.ident,
                "abandon",
            )
        else:
            self._gave_up(ask, heard=False)

    def from_session(self, ident: int, msg: Any) -> None:
        if ident == 0:
            if isinstance(msg, admin.LeaseNotice):
                self._notice(msg)
            return
        ask = self.asks.get(ident)
        if ask is None:
            return  # the context closed: Thespian drops the message
        if ask.stage == "abandon":
            # client_proxy._answer: only the abandon's own answer ends the wait;
            # a late CheckoutResult (its grant the session releases) is skipped.
            if isinstance(msg, admin.CheckoutAbandoned) and msg.request_id == ask.request_id:
                self._gave_up(ask, heard=msg.heard)
            return
        if not (isinstance(msg, admin.CheckoutResult) and msg.request_id == ask.request_id):
            return  # client_proxy._answer skips it and waits on
        self._finish(ask)
        if msg.granted:
            if msg.route is not None:
                self.route = (msg.server, msg.route)
            self.auths[msg.lease_id] = _Auth(
                msg.lease_id, msg.server, ask.feature, ask.version, msg.deadline, ask.app_rid
            )
            self._schedule_expiry()
            self._app_event(
                Event("granted", (("request_id", ask.app_rid), ("lease_id", msg.lease_id), ("server", msg.server)))
            )
            return
        now = self.local()
        if msg.reason in _TRANSIENT and now + ask.pause < ask.deadline:
            self.w.push(
                self.w.now + ask.pause / self.client.clock.rate,
                "proxy_retry",
                self.client.name,
                self.gen,
                (
                    ask.app_rid,
                    ask.feature,
                    ask.version,
                    ask.lease_id,
                    ask.deadline,
                    min(2 * ask.pause, _RETRY_MAX),
                    ask.request_id,
                    ask.queue,
                    ask.count,
                    ask.linger,
                ),
            )
            return
        self._app_event(Event("denied", (("request_id", ask.app_rid), ("reason", msg.reason))))

    def retry(self, args: tuple[Any, ...]) -> None:
        self._attempt(*args)

    def _gave_up(self, ask: _Ask, heard: bool) -> None:
        self._finish(ask)
        timed_out = DenyReason.QUEUE_TIMEOUT if ask.queue else DenyReason.TIMEOUT
        reason = timed_out if heard else DenyReason.UNREACHABLE
        self.w.log(self.client.name, f"app gave up on request {ask.request_id}: {reason.value}")
        self._app_event(Event("denied", (("request_id", ask.app_rid), ("reason", reason.value))))

    def _finish(self, ask: _Ask) -> None:
        ask.stage = "done"
        self.asks.pop(ask.ident, None)

    def _notice(self, msg: admin.LeaseNotice) -> None:
        if msg.kind == "deadlines":
            for lease_id, server, deadline in msg.deadlines:
                self._notice(admin.LeaseNotice(kind="deadline", lease_id=lease_id, server=server, deadline=deadline))
            return
        auth = self.auths.get(msg.lease_id)
        if auth is None:
            return
        if msg.kind == "deadline":
            auth.deadline = max(auth.deadline, msg.deadline)
            auth.server = msg.server or auth.server
            self._schedule_expiry()
        elif msg.kind == "failed_over":
            auth.server = msg.server
        elif msg.kind == "lost":
            self._lose(auth)

    def _lose(self, auth: _Auth) -> None:
        if auth.lost or auth.released:
            return
        auth.lost = True
        self.auths.pop(auth.lease_id, None)
        self._app_event(Event("lost", (("lease_id", auth.lease_id),)))

    def _schedule_expiry(self) -> None:
        """The listener checks deadlines every 0.1 s (``_expire``)."""
        due = min((x.deadline for x in self.auths.values() if x.deadline), default=None)
        if due is None:
            return
        real = max(self.w.now, self.client.clock.real(due) + 0.1)
        if self.expiry_at is not None and self.w.now <= self.expiry_at <= real:
            return
        self.expiry_at = real
        self.w.push(real, "proxy_expire", self.client.name, self.gen)

    def expire(self) -> None:
        self.expiry_at = None
        now = self.local()
        for auth in list(self.auths.values()):
            if auth.deadline and now >= auth.deadline:
                self._lose(auth)
        self._schedule_expiry()

    def _to_session(self, ident: int, msg: Any) -> None:
        self.w.push(
            self.w.now + self.w.shell_rng.uniform(*self.w.shell.local_hop),
            "to_session",
            self.client.name,
            self.gen,
            ident,
            msg,
        )

    def _app_event(self, ev: Event) -> None:
        self.w.app_event(self.client, ev)


def fresh_rng(seed: int) -> random.Random:
    return random.Random(f"licpool-sim-shell/{seed}")


def late_rng(seed: int) -> random.Random:
    """The draws of ``ShellParams.late_direct`` (apart, so they move no other draw of the seed)."""
    return random.Random(f"licpool-sim-late/{seed}")
