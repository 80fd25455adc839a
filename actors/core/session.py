"""The client session's decisions: checkouts, renewals, fail-over, deadlines.

One ``ClientSessionCore`` per app process (leadership.md M10, claims 13-15
and 27-29).  It owns what the session believes it holds and when each belief
ends, and it says what to send; the Thespian actor (or the simulator) carries
out the returned ``Ready`` and calls ``tick`` at ``wake_at``.

* **Deadlines are timed from the send.**  A lease's deadline is the local send
  time of its last *acknowledged* renewal plus ``T(1-rho)``: the checkout for a
  grant, the heartbeat whose ack lists it as renewed, the fail-over update whose
  reply lists it as seated.  A pending fail-over reply never extends it.  At the
  deadline the lease is reported ``lost`` and forgotten.
* **One heartbeat per server per interval** renews every lease held there, so
  the cost follows client processes, not leases.  Its bytes do too: once a
  server has renewed the whole list and echoed its digest, the heartbeats to it
  carry only that digest while the list stays the same, and the server renews
  on it only if its own table gives the same digest (docs/architecture.md,
  "Renewal").
* **Fail-over** (docs/leadership.md, M14).  A server is suspected when it stays
  silent for ``failure_timeout`` while something was outstanding, or when its
  ack says ``fail_over`` (``NOT_SERVING``: fenced, not rejoined, an old
  incarnation).  Every lease held there goes, in one ``FailoverUpdate``, to the
  next server of the fail-over list (the config order rotated to the start
  server); a target silent for ``2h`` is replaced by the next one, and a
  ``pending`` answer is re-sent to the same target every ``2h``.  A server
  between leaders answers "held, not renewed": the session stays, and only a
  lease whose remaining time falls to ``failover_seat_bound`` moves on (the
  timing rules leave that much time to seat it).  A lease that a server
  reports ``lost`` or ``refused`` is dead and is never failed over.
* Checkouts retry at the next server after ``2h`` of silence or a
  ``NOT_SERVING``/``NO_MAJORITY`` denial, with the same request id (a server
  answers a repeat idempotently: the same grant, never a second seat).  A
  grant nobody waits for any more is released at once, so no seat leaks.
* **A checkout the app gave up on ends with no seat held** (issue 11 defect 3),
  whatever the timing: ``abandon`` releases the grant if it already came (the
  session remembers which lease each recent request got), and a grant that
  arrives later, or a repeat of it from another server, finds no checkout
  waiting and is released too.  The decision is the session's
  alone, in one step, so no interleaving of the grant, the app's timeout and
  its ``AbandonCheckout`` leaves a seat behind (docs/reliability.md).
* **A release is delivered** (issue 11 defect 3): each one is kept until a
  server releases the lease, until no server may hold it any more, or until
  the lease's deadline passes.  It is re-sent every ``2h`` to every server
  that may hold the lease: its server (one that comes back frees the seat at
  once), the servers it was failing over to (a fail-over seat committed after
  the release reached one still brings it there), and any server a "not
  here" answer names as the lease's (``ReleaseAck.moved_to``): the release
  follows the lease.  A place that answers is sent no copy of a release
  still in its backlog: the copy goes only once the place has answered a
  message sent ``h`` or more after the release (so it, or its answer, was
  lost), or has been silent for ``2h``.  Once its server has been silent for
  ``f`` it goes to the next server of the fail-over list too (one more each
  ``2h`` until one answers), which has the leader kill the id in the log:
  the lease is then never renewed nor resumed, wherever it went.
* **Releases are paced** (docs/performance.md, "The mass release"): at most
  ``RELEASE_WINDOW`` are unanswered at the lease's server; the rest wait in
  the session, oldest first, and each answer lets the next one go.  A burst
  of releases (an app giving 90 leases back at once) then reaches a server as
  fast as it answers: it never fills the server's mailbox past the
  transport's bound, which drops messages, the leader's among them.
  ``close`` sends every release at once: the session ends with it.

Events for the app (``Ready.events``): ``granted``, ``denied``, ``lost``,
``failed_over``, ``released``.  Pure: ``now`` is the client's own monotonic
clock; nothing here reads a clock, a file or the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from actors.core import versions
from actors.core.effects import Ready
from actors.core.leaseid import ids_digest
from actors.core.timing import Timing, failover_seat_bound
from actors.protocol.client import (
    CheckoutDenied,
    CheckoutGranted,
    CheckoutQueued,
    CheckoutRequest,
    DenyReason,
    FailoverReply,
    FailoverUpdate,
    HeartbeatAck,
    HeldLease,
    ReleaseAck,
    ReleaseRequest,
    SessionHeartbeat,
)

__all__ = ["HeldInfo", "ClientSessionCore", "start_server", "RETRY_ELSEWHERE", "TERMINAL_DENIALS", "RELEASE_WINDOW"]

RETRY_ELSEWHERE = frozenset({DenyReason.NOT_SERVING, DenyReason.NO_MAJORITY})
"""Denials that say "not here": the checkout moves on to the next server."""
TERMINAL_DENIALS = frozenset({DenyReason.NO_SEATS, DenyReason.UNKNOWN_FEATURE, DenyReason.EXPIRED})
"""Denials that hold for the whole pool: the app hears them at once."""
RELEASE_WINDOW = 2
"""Releases a session keeps sent and unanswered at one server; more wait in the
session until that server answers one (docs/performance.md, "The mass release")."""

_NEVER = float("inf")


def start_server(client_id: str, servers: tuple[str, ...], prefer: str | None = None) -> str:
    """The first server a client tries: ``prefer`` if given, else a stable hash
    of ``client_id`` (sha256, so every process and host agrees)."""
    if prefer is not None:
        if prefer not in servers:
            raise ValueError(f"prefer={prefer!r} is not one of the servers {servers}")
        return prefer
    digest = hashlib.sha256(client_id.encode("utf-8")).digest()
    return servers[int.from_bytes(digest[:8], "big") % len(servers)]


@dataclass(frozen=True)
class HeldInfo:
    """A lease the session believes it holds, as shown to the app."""

    lease_id: str
    feature: str
    version: str
    server: str
    """Where it was last seated (it may be failing over from there)."""
    deadline: float
    """Local time at which the app must stop using it."""
    granted_at: float
    failing_over: bool = False
    seats: int = 1
    """Seats the lease holds (a multi-seat checkout, times the token weight)."""


@dataclass
class _Lease:
    lease_id: str
    feature: str
    version: str
    server: str
    deadline: float
    granted_at: float
    placed_seq: int
    """Session seq when it was placed at ``server``: older acks say nothing about it."""
    seats: int = 1
    idle: bool = False
    """The app marked it idle (``auth.idle()``); heartbeats say so."""


@dataclass(frozen=True)
class _Sent:
    """What a session sequence number was sent as, and when."""

    kind: str
    """``"hb"`` or ``"fo"``."""
    server: str
    at: float
    lease_ids: tuple[str, ...]
    digest: str = ""
    """A heartbeat sent as this digest of ``lease_ids`` (not the list)."""


@dataclass
class _Renewed:
    """A list of leases a server renewed whole and said so with its digest: the
    session's heartbeats to it may send the digest instead, while the list stays."""

    lease_ids: tuple[str, ...]
    digest: str
    not_before: float = 0.0
    """After a ``resend`` for this list: full lists until then."""


@dataclass
class _Failover:
    """Leases on their way from a suspected server to a new one."""

    from_server: str
    lease_ids: list[str]
    targets: tuple[str, ...]
    """The fail-over list after ``from_server``, cycled through."""
    target_index: int = 0
    seq: int = 0
    """Seq of the latest update sent."""
    next_at: float = 0.0
    """When to act again: re-send (after pending) or try the next target (silence)."""
    answered: bool = False
    """The latest update got a reply (pending): re-send to the same target."""

    @property
    def target(self) -> str:
        return self.targets[self.target_index % len(self.targets)]


@dataclass
class _Release:
    """A release no server has done yet."""

    lease_id: str
    until: float
    """The lease's deadline: past it every server has let the lease go anyway."""
    server: str
    """Where the lease was when the app released it."""
    others: tuple[str, ...]
    """The fail-over list after ``server``: where it goes too once ``server`` is silent."""
    next_at: float
    """When to send it again (``inf`` while it waits for its first send)."""
    since: float
    """The first send (``inf`` while it waits for it)."""
    places: set[str] = field(default_factory=set)
    """Every server that may hold the lease, each sent the release every ``2h``:
    ``server``, the servers it was failing over to, and any a server said it
    moved to.  A place that does not hold it leaves the set; the retries end
    when a server releases it, or when no place is left."""
    awaiting: frozenset[str] = frozenset()
    """The servers it was failing over to: a fail-over seat committed after the
    release reached one may still bring it there, so each stays a place until
    it releases the lease or knows it live nowhere (an empty ``moved_to``)."""
    asked: set[str] = field(default_factory=set)
    """The places it has been sent to so far."""
    sent_at: dict[str, float] = field(default_factory=dict)
    """place -> its latest send there."""
    replied: set[str] = field(default_factory=set)
    """The places that answered its latest send there (not released: ask again in ``2h``)."""
    sent_elsewhere: int = 0
    killed: bool = False
    """A server that does not hold it acknowledged it: the id is being killed in
    the log (no renewal, no resume); the seat itself comes back when the server
    holding the lease releases it."""

    @property
    def waiting(self) -> bool:
        """Not sent yet: ``server`` has ``RELEASE_WINDOW`` releases unanswered."""
        return self.since == _NEVER

    @property
    def unanswered_at_server(self) -> bool:
        """Sent, and its server has neither released it nor said it does not hold it."""
        return not self.waiting and self.server in self.places


@dataclass
class _Checkout:
    request_id: int
    feature: str
    version: str
    lease_id: str | None
    server: str
    """The server the request was last sent to."""
    retry_at: float
    sends: list[tuple[str, float]] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    denials: dict[str, DenyReason] = field(default_factory=dict)
    client_seq: int = 0
    """For a resume: one sequence number for the request and all its retries."""
    queue: bool = False
    """Wait in the pool's queue instead of a NO_SEATS denial, until ``deadline``."""
    deadline: float = float("inf")
    """A queued checkout: when the session answers QUEUE_TIMEOUT itself."""
    queued_at: float | None = None
    """A queued checkout: when ``server`` last said it waits there (``CheckoutQueued``)."""
    position: int = 0
    """A queued checkout: its 1-based place in the pool's queue, as last told (0: not committed yet)."""
    queue_sends: dict[float, float] = field(default_factory=dict)
    """A queued checkout: the ``queue_timeout`` of each send -> its local send time."""
    answered: dict[str, float] = field(default_factory=dict)
    """A queued checkout: server -> the send time of the latest send it answered ``CheckoutQueued``; a grant from
    it is timed from there (the server granted after answering that send), not from the first send."""
    count: int = 1
    """Seats asked for in one lease."""
    linger: float = 0.0


class ClientSessionCore:
    """One client session: see the module docstring."""

    def __init__(
        self,
        client_id: str,
        session_id: str,
        servers: tuple[str, ...],
        timing: Timing,
        prefer: str | None = None,
        seq_base: int = 0,
    ) -> None:
        """``seq_base``: where this session's sequence numbers start.  They order
        a client's fail-over updates across its sessions too, so a restarted app
        must start above its last session (the shell passes wall-clock ms)."""
        if not servers:
            raise ValueError("a session needs at least one server")
        self.client_id = client_id
        self.session_id = session_id
        self.timing = timing
        first = start_server(client_id, servers, prefer)
        start = servers.index(first)
        self.order: tuple[str, ...] = servers[start:] + servers[:start]
        """The fail-over list: the start server, then the config order rotated from it."""
        self.current = first
        """Where new checkouts go."""
        self.home = first
        """The start server.  New checkouts go back to it once it answers that it serves again (fail-back)."""
        self._probe_at: float | None = None
        """When to ask ``home`` next whether it serves again, while new checkouts go elsewhere."""
        self.seat_bound = failover_seat_bound(timing, len(servers))
        """A lease whose remaining time falls to this fails over, wherever it is:
        the worst time to seat a fail-over update in a pool of this size."""
        self._seq = seq_base
        self._sent: dict[int, _Sent] = {}
        self._leases: dict[str, _Lease] = {}
        self._failovers: list[_Failover] = []
        self._checkouts: dict[int, _Checkout] = {}
        self._last_hb: dict[str, float] = {}
        self._renewed_whole: dict[str, _Renewed] = {}
        """server -> the list it last renewed whole, with its digest (it takes digests)."""
        self._awaiting: dict[str, float] = {}
        """server -> local time of the oldest send it has not answered since its last message."""
        self._heard: dict[str, float] = {}
        """server -> local time of its last message."""
        self._answered: dict[str, float] = {}
        """server -> local send time of the latest heartbeat, update or release it has answered."""
        self._closing = False
        """``close`` ran: every release goes at once, whatever the window."""
        self._release_no = 0
        self._releases: dict[str, _Release] = {}
        """lease id -> its release, until a server acknowledges it."""
        self._granted: dict[int, tuple[str, float]] = {}
        """request id -> (lease id, local time) of recent grants: an abandon after the grant releases it."""
        self._abandoned: dict[int, float] = {}
        """request id -> local time: checkouts the app gave up on before this session opened them (its
        ``AbandonCheckout`` overtook its ``OpenCheckout``, a fall-back from a direct ask sent with no time left).
        Opened later, the request is sent once and not kept: a grant made for it comes back and is given back."""
        self._gone: dict[str, float] = {}
        """lease id -> local time: leases the app released before this session adopted them (a direct grant's
        ``adopt`` and the app's release travel apart); an ``adopt`` that comes later gives the lease back."""

    # ---- queries ---------------------------------------------------------------

    def held(self, now: float) -> dict[str, HeldInfo]:
        """Leases this session may use at ``now``: deadline not passed."""
        moving = {lid for fo in self._failovers for lid in fo.lease_ids}
        return {
            lid: HeldInfo(lid, x.feature, x.version, x.server, x.deadline, x.granted_at, lid in moving, x.seats)
            for lid, x in self._leases.items()
            if x.deadline > now
        }

    def deadline_of(self, lease_id: str, now: float) -> float:
        """``held(now)[lease_id].deadline`` without building ``held``: 0.0 when not held."""
        lease = self._leases.get(lease_id)
        return lease.deadline if lease is not None and lease.deadline > now else 0.0

    def outstanding(self) -> tuple[int, ...]:
        """Request ids of checkouts still waiting for an answer."""
        return tuple(self._checkouts)

    def releasing(self) -> tuple[str, ...]:
        """Lease ids whose release no server has acknowledged yet."""
        return tuple(self._releases)

    # ---- app calls -------------------------------------------------------------

    def checkout(
        self,
        feature: str,
        version: str,
        request_id: int,
        now: float,
        lease_id: str | None = None,
        *,
        queue: bool = False,
        timeout: float = 0.0,
        count: int = 1,
        linger: float = 0.0,
        server: str | None = None,
    ) -> Ready:
        """Ask the current server for ``count`` seats in one lease (or to
        resume ``lease_id``); ``linger``: seconds they stay held after release.
        ``queue``: wait up to ``timeout`` seconds in the pool's queue for a
        seat instead of a NO_SEATS denial (docs/licenses.md, "Queued checkouts").
        ``server``: ask it first instead of the current server: the app asked
        it directly already (``adopt``), and it answers a repeat of the request
        id with the grant it made, never a second seat."""
        ready = Ready()
        if request_id in self._checkouts:
            raise ValueError(f"request {request_id} is already outstanding")
        if queue and timeout <= 0:
            raise ValueError(f"a queued checkout needs a timeout > 0 seconds, got {timeout!r}")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if queue and count > 1:
            raise ValueError("a queued checkout takes one seat: queue=True with count > 1 is not supported")
        if linger < 0:
            raise ValueError(f"linger must not be negative, got {linger}")
        first = server if server in self.order else self.current
        co = _Checkout(request_id, feature, version, lease_id, first, now, count=count, linger=linger)
        if queue:
            co.queue, co.deadline = True, now + timeout
        if lease_id is not None:
            co.client_seq = self._next_seq()
        if self._abandoned.pop(request_id, None) is None:
            self._checkouts[request_id] = co
        self._send_checkout(co, first, now, ready)
        return self._finish(ready, now)

    def abandon(self, request_id: int, now: float) -> Ready:
        """The app gave up on a checkout: no seat may stay taken for it.  A grant
        that already came is released now (the app never learned of it); one
        that comes later is released when it arrives (``_on_granted``)."""
        ready = Ready()
        # Not outstanding any more: a grant for it that comes later finds no
        # checkout and is released (``_on_granted``), from whichever server.
        if self._checkouts.pop(request_id, None) is None and request_id not in self._granted:
            self._abandoned[request_id] = now  # before it was opened here: see ``checkout``
        granted = self._granted.pop(request_id, None)
        if granted is not None and granted[0] in self._leases:
            self._release(granted[0], now, ready)
        return self._finish(ready, now)

    def adopt(self, server: str, grant: CheckoutGranted, sent_at: float, now: float) -> Ready:
        """A grant the app got from ``server`` itself: its direct checkout, sent
        at local time ``sent_at`` (docs/performance.md, "Lever 4").  From now on
        the session renews it, fails it over and releases it like its own
        grants; its deadline is timed from the app's send, as the app's is.  A
        lease the app released before this came (``release`` with its server),
        or a closing session, gives it back instead."""
        ready = Ready()
        self._expire(now, ready)
        self._adopt(server, grant, sent_at, now, ready)
        return self._finish(ready, now)

    def adopt_all(self, grants: Iterable[tuple[CheckoutGranted, float]], now: float) -> Ready:
        """``adopt`` of each (grant, the app's send time), in order, as one step:
        the app's adopter tells its session of the grants of a few milliseconds
        at once (``AdoptGrants``).  The look over every lease held (expiry, the
        next wake-up) is made once for the batch, not once per grant."""
        ready = Ready()
        self._expire(now, ready)
        for grant, sent_at in grants:
            self._adopt(grant.server, grant, sent_at, now, ready)
        return self._finish(ready, now)

    def _adopt(self, server: str, grant: CheckoutGranted, sent_at: float, now: float, ready: Ready) -> None:
        lid = grant.lease_id
        if server not in self.order or lid in self._leases or grant.request_id in self._checkouts:
            # Known already, or the request is the session's own (a fall-back):
            # the session's path gets the same grant from the server.
            return
        if lid in self._releases or lid in self._gone or self._closing:
            if lid not in self._releases:
                self._keep_release(lid, server, sent_at + self._ttl(grant.ttl), now, ready)
            return
        self._hold(server, grant, sent_at, now, ready, "adopted")

    def release(self, lease_id: str, now: float, server: str = "") -> Ready:
        """Give a lease back.  It is dead for ever: forgotten here at once, and
        the release is re-sent until a server acknowledges it.  ``server``: where
        the app was told the lease is; a lease the session does not know (a
        direct grant whose ``adopt`` has not come) is released there."""
        ready = Ready()
        if lease_id not in self._leases and lease_id not in self._releases and server in self.order:
            self._gone[lease_id] = now
            self._keep_release(lease_id, server, now + self._ttl(0.0), now, ready)
            ready.event("released", lease_id=lease_id, before_adopt=True)
            return self._finish(ready, now)
        self._release(lease_id, now, ready)
        return self._finish(ready, now)

    def _release(self, lease_id: str, now: float, ready: Ready) -> None:
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        targets = {lease.server}
        for fo in self._failovers:
            if lease_id in fo.lease_ids:
                targets.add(fo.target)
        self._keep_release(
            lease_id, lease.server, lease.deadline, now, ready, awaiting=frozenset(targets - {lease.server})
        )
        self._forget(lease_id)
        ready.event("released", lease_id=lease_id)

    def close(self, now: float) -> Ready:
        """Release everything and abandon every checkout (the session ends)."""
        ready = Ready()
        for request_id in list(self._checkouts):
            ready.merge(self.abandon(request_id, now))
        self._closing = True  # nothing is sent after this step: nothing may wait
        for lease_id in list(self._leases):
            ready.merge(self.release(lease_id, now))
        ready.wake_at = None
        return ready

    # ---- messages from servers -------------------------------------------------

    def receive(self, server: str, msg: Any, now: float) -> Ready:
        """A message from ``server`` (by config name)."""
        ready = Ready()
        # A deadline that passed stays passed, whatever a late ack says.
        self._expire(now, ready)
        self._awaiting.pop(server, None)
        self._heard[server] = now
        if isinstance(msg, CheckoutGranted):
            self._on_granted(server, msg, now, ready)
        elif isinstance(msg, CheckoutDenied):
            self._on_denied(server, msg, now, ready)
        elif isinstance(msg, CheckoutQueued):
            self._on_queued(server, msg, now, ready)
        elif isinstance(msg, HeartbeatAck):
            self._on_heartbeat_ack(server, msg, now, ready)
        elif isinstance(msg, FailoverReply):
            self._on_failover_reply(server, msg, now, ready)
        elif isinstance(msg, ReleaseAck):
            self._on_release_ack(server, msg, now, ready)
        return self._finish(ready, now)

    def _on_release_ack(self, server: str, msg: ReleaseAck, now: float, ready: Ready) -> None:
        """A release ends where the lease is: a place that does not hold it is
        dropped (a fail-over target only once it knows the lease live nowhere),
        and the server it names as the lease's (``moved_to``) becomes a place,
        sent the release at once."""
        rel = self._releases.get(msg.lease_id)
        if rel is None:
            return
        if server in rel.sent_at:
            self._note_answered(server, rel.sent_at[server])
            rel.replied.add(server)
        if msg.released:
            del self._releases[msg.lease_id]
            self._send_waiting_releases(rel.server, now, ready)
            return
        rel.killed = True  # recorded by a server that does not hold it: the id dies
        to = msg.moved_to if msg.moved_to in self.order and msg.moved_to != server else ""
        if server not in rel.awaiting or not to:
            rel.places.discard(server)
        if to:
            rel.places.add(to)
            if to not in rel.asked:
                # Sent at once the first time only: two servers whose views lag
                # each other may name each other, and the retries are every 2h.
                rel.asked.add(to)
                rel.sent_at[to] = now
                rel.replied.discard(to)
                self._send_release(to, msg.lease_id, now, ready)
        if not rel.places:
            del self._releases[msg.lease_id]  # no server holds it any more
        self._send_waiting_releases(rel.server, now, ready)

    def _note_answered(self, server: str, sent_at: float) -> None:
        self._answered[server] = max(self._answered.get(server, -_NEVER), sent_at)

    def _ttl(self, ttl: float) -> float:
        return self.timing.holder_valid_for(ttl if ttl > 0 else self.timing.lease_ttl)

    def _on_granted(self, server: str, msg: CheckoutGranted, now: float, ready: Ready) -> None:
        co = self._checkouts.get(msg.request_id)
        lease = self._leases.get(msg.lease_id)
        # A grant may be of a higher licensed version than asked (a range match);
        # the lease is filed under the granted one, which a fail-over must ask for.
        if co is not None and msg.lease_id in self._releases:
            return  # a repeat of a grant this session already gave back: the lease is dead, keep asking
        if co is None or co.feature != msg.feature or not versions.serves(msg.version, False, co.version):
            if lease is None and msg.lease_id not in self._releases:
                # Nobody waits for this seat any more (the app gave up on it, or
                # it repeats a request another server granted): give it back.
                self._keep_release(msg.lease_id, server, now + self._ttl(msg.ttl), now, ready)
            return
        del self._checkouts[msg.request_id]
        sends = [at for to, at in co.sends if to == server] or [at for _, at in co.sends]
        self._hold(server, msg, co.answered.get(server, min(sends)), now, ready, "granted", resumed=msg.resumed)

    def _hold(
        self, server: str, msg: CheckoutGranted, renewed_at: float, now: float, ready: Ready, kind: str, **extra: Any
    ) -> None:
        """``msg``'s lease is held at ``server`` from ``renewed_at`` on (the send it answers): a grant to this
        session's ask (``granted``) or to the app's own (``adopted``)."""
        self._granted[msg.request_id] = (msg.lease_id, now)
        deadline = renewed_at + self._ttl(msg.ttl)
        lease = self._leases.get(msg.lease_id)
        if lease is None:
            lease = _Lease(msg.lease_id, msg.feature, msg.version, server, deadline, now, self._seq, msg.seats)
            self._leases[msg.lease_id] = lease
        else:
            self._drop_from_failovers(msg.lease_id)
            lease.server, lease.placed_seq = server, self._seq
            lease.deadline = max(lease.deadline, deadline)
        # The checkout counts as this server's renewal: the next heartbeat is h after it.
        self._last_hb.setdefault(server, renewed_at)
        self.current = server
        ready.event(
            kind,
            request_id=msg.request_id,
            lease_id=msg.lease_id,
            server=server,
            feature=msg.feature,
            version=msg.version,
            **extra,
            **({"seats": msg.seats} if msg.seats != 1 else {}),
        )

    def set_idle(self, lease_id: str, idle: bool) -> None:
        """The app marked a lease idle (``auth.idle()``) or busy again: the next
        heartbeats to its server say so (an ``idle_timeout`` may reclaim it)."""
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.idle = idle

    def _on_denied(self, server: str, msg: CheckoutDenied, now: float, ready: Ready) -> None:
        co = self._checkouts.get(msg.request_id)
        if co is None:
            return
        reason = DenyReason(msg.reason)
        co.denials[server] = reason
        co.tried.add(server)
        if reason in RETRY_ELSEWHERE and not co.tried.issuperset(self.order):
            if server == co.server:
                nxt = self._next_server(co.server, exclude=co.tried)
                self._send_checkout(co, nxt, now, ready)
            return
        del self._checkouts[msg.request_id]
        ready.event("denied", request_id=msg.request_id, reason=reason.value, server=server, detail=msg.detail)

    def _on_queued(self, server: str, msg: CheckoutQueued, now: float, ready: Ready) -> None:
        """The server holds a queued checkout: re-send it there every ``2h``
        (so it knows the app still waits); only a silence of ``f`` sends it on."""
        co = self._checkouts.get(msg.request_id)
        if co is None or not co.queue or server != co.server:
            return
        if co.queued_at is None or co.position != msg.position:
            ready.event("queued", request_id=co.request_id, server=server, position=msg.position)
        co.queued_at, co.position = now, msg.position
        co.tried.discard(server)
        sent = co.queue_sends.get(msg.queue_timeout) if msg.queue_timeout is not None else None
        if sent is not None:
            co.answered[server] = max(co.answered.get(server, sent), sent)
            co.queue_sends = {left: at for left, at in co.queue_sends.items() if at >= sent}  # older: answered

    def _on_heartbeat_ack(self, server: str, msg: HeartbeatAck, now: float, ready: Ready) -> None:
        sent = self._sent.get(msg.seq)
        if sent is None or sent.kind != "hb" or sent.server != server:
            return
        self._note_answered(server, sent.at)
        if msg.serving and server == self.home:
            self.current = server  # fail-back: the start server serves again
        renewed = self._renewed_by(server, sent, msg, now, ready)
        if renewed is None:
            return
        moving = self._moving()
        listed = set(sent.lease_ids)
        until = sent.at + self._ttl(msg.ttl)
        for lid in renewed:
            lease = self._leases.get(lid)
            if lease is not None and lid in listed and lease.server == server and msg.seq > lease.placed_seq:
                lease.deadline = max(lease.deadline, until)
        for lid in msg.lost:
            lease = self._leases.get(lid)
            # A moving lease may have been handed over by its server: only the
            # fail-over reply decides its fate.
            if lease is None or lid not in listed or lease.server != server or lid in moving:
                continue
            if msg.seq > lease.placed_seq:
                self._forget(lid)
                reason = dict(msg.reasons).get(lid)
                extra = {"reason": reason} if reason else {}
                ready.event("lost", lease_id=lid, why=f"{server} says lost", server=server, **extra)
        for lid, to in msg.moved:
            lease = self._leases.get(lid)
            if (
                lease is None
                or lid not in listed
                or lease.server != server
                or lid in moving
                or msg.seq <= lease.placed_seq
                or to not in self.order
            ):
                continue
            # A later update of ours handed it over while an earlier one seated
            # it here: follow it to its new server instead of losing it.
            targets = (to, *(s for s in self._rotated_after(to) if s != to))
            fo = _Failover(server, [lid], targets)
            self._failovers.append(fo)
            ready.event("failing_over", from_server=server, to_server=to, lease_ids=(lid,), why="moved")
            self._send_failover(fo, now, ready)
        if msg.fail_over:
            self._suspect(server, now, ready, why="fail_over")

    def _renewed_by(
        self, server: str, sent: _Sent, msg: HeartbeatAck, now: float, ready: Ready
    ) -> tuple[str, ...] | None:
        """The leases an ack renews, read through the digests (None: it renews
        nothing and the full list has been sent again).

        An ack that echoes the digest of a full list, with every lease in
        ``renewed``, lets the next heartbeats send that digest while the list
        stays the same.  An ack that echoes a digest heartbeat's digest renews
        its whole list.  ``resend`` (the server's table does not match), or an
        answer to a digest that names no lease (a server that does not read
        digests), renews nothing and the full list goes at once.  After a
        ``resend`` no digest of that list goes to that server for ``2f``; a
        server that did not read one gets digests again only once it echoes
        one."""
        if not sent.digest:
            if msg.digest and msg.digest == ids_digest(sent.lease_ids) and set(msg.renewed) == set(sent.lease_ids):
                known = self._renewed_whole.get(server)
                if known is None or known.lease_ids != sent.lease_ids:
                    self._renewed_whole[server] = _Renewed(sent.lease_ids, msg.digest)
            return msg.renewed
        if msg.digest == sent.digest:
            return sent.lease_ids
        named = msg.renewed or msg.lost or msg.moved or msg.held or msg.fail_over
        if not msg.resend and named:
            return msg.renewed  # the digest was checked, and each lease has its own answer
        known = self._renewed_whole.get(server)
        if msg.resend and known is not None and known.digest == sent.digest:
            known.not_before = now + self.home_probe_every
        elif not msg.resend:
            self._renewed_whole.pop(server, None)
        moving = self._moving()
        if server in self._homes(moving):
            self._send_heartbeat(server, moving, now, ready)
        return None

    def _on_failover_reply(self, server: str, msg: FailoverReply, now: float, ready: Ready) -> None:
        sent = self._sent.get(msg.seq)
        if sent is None or sent.kind != "fo" or sent.server != server:
            return
        self._note_answered(server, sent.at)
        listed = set(sent.lease_ids)
        until = sent.at + self._ttl(msg.ttl)
        seated: dict[str, list[str]] = {}
        for lid in msg.seated:
            lease = self._leases.get(lid)
            if lease is None or lid not in listed or msg.seq <= lease.placed_seq:
                continue
            seated.setdefault(lease.server, []).append(lid)
            self._drop_from_failovers(lid)
            lease.server, lease.placed_seq = server, msg.seq
            lease.deadline = max(lease.deadline, until)
        for from_server, lids in sorted(seated.items()):
            self._last_hb.setdefault(server, sent.at)
            self.current = server
            ready.event("failed_over", from_server=from_server, to_server=server, lease_ids=tuple(lids))
        for fo in list(self._failovers):
            if fo.seq != msg.seq:
                continue  # a stale reply: a newer update is on its way
            for lid in msg.refused:
                if lid in fo.lease_ids:
                    self._forget(lid)
                    ready.event("lost", lease_id=lid, why=f"{server} refused the fail-over", server=server)
            if fo.lease_ids:
                fo.answered = True
                fo.next_at = self._sent[fo.seq].at + self.timing.client_retry

    # ---- time ------------------------------------------------------------------

    def tick(self, now: float) -> Ready:
        """Run every timer due at ``now``: deadlines, suspicion, retries, heartbeats."""
        ready = Ready()
        self._expire(now, ready)
        self._suspect_silent(now, ready)
        self._fail_over_near_deadline(now, ready)
        self._retry_failovers(now, ready)
        self._retry_releases(now, ready)
        self._retry_checkouts(now, ready)
        self._heartbeat_due(now, ready)
        self._probe_home(now, ready)
        self._prune(now)
        return self._finish(ready, now)

    def _suspect_silent(self, now: float, ready: Ready) -> None:
        """A server that has not answered for ``failure_timeout`` is suspected."""
        for server in self._homes(self._moving()):
            since = self._awaiting.get(server)
            if since is not None and now >= since + self.timing.failure_timeout:
                self._suspect(server, now, ready, why="silent")

    def _fail_over_near_deadline(self, now: float, ready: Ready) -> None:
        """A lease whose remaining time falls to the seat bound fails over (leadership.md M14)."""
        moving = self._moving()
        for server in self._homes(moving):
            due = sorted(
                lid
                for lid, x in self._leases.items()
                if x.server == server and lid not in moving and x.deadline - now <= self.seat_bound
            )
            if due:
                self._fail_over(server, due, now, ready, why="seat_bound")

    def _retry_failovers(self, now: float, ready: Ready) -> None:
        for fo in list(self._failovers):
            if now >= fo.next_at:
                if not fo.answered:
                    fo.target_index += 1
                self._send_failover(fo, now, ready)

    def _retry_releases(self, now: float, ready: Ready) -> None:
        """Resend each release no server has done to the places that may have
        lost it, until the lease's deadline; once its server has been silent
        for ``f``, to the next server too."""
        freed: set[str] = set()
        for rel in list(self._releases.values()):
            if now >= rel.until:
                del self._releases[rel.lease_id]
                freed.add(rel.server)
            elif now >= rel.next_at:
                for server in sorted(rel.places):
                    if self._release_due(rel, server, now):
                        rel.sent_at[server] = now
                        rel.replied.discard(server)
                        self._send_release(server, rel.lease_id, now, ready)
                # Silent: nothing heard from it since the release was sent.  A
                # server that answers is only slow (a burst of releases in its
                # backlog), and the next server would only add to the load.
                silent_since = max(rel.since, self._heard.get(rel.server, rel.since))
                if rel.others and not rel.killed and now >= silent_since + self.timing.failure_timeout:
                    # Its server is silent: have the next server kill the id too.
                    self._send_release(rel.others[rel.sent_elsewhere % len(rel.others)], rel.lease_id, now, ready)
                    rel.sent_elsewhere += 1
                rel.next_at = now + self.timing.client_retry
        for server in sorted(freed):
            self._send_waiting_releases(server, now, ready)

    def _release_due(self, rel: _Release, server: str, now: float) -> bool:
        """Send ``rel`` to the place ``server`` again?  If the place answered
        its latest send (not released there: the lease may still come, so it
        is asked again), if the place answered something sent ``h`` or more
        after it (so it, or its answer, was lost; ``h`` leaves room for
        messages that overtake each other), or if the place has been silent
        for ``2h`` (down, restarting, cut off).  Not to a place that answers
        only older messages: it is working through its backlog, the release
        among them, and a copy would only lengthen the backlog."""
        if server in rel.replied:
            return True
        h = self.timing.heartbeat_interval
        sent_at = rel.sent_at.get(server, -_NEVER)
        return self._answered.get(server, -_NEVER) >= sent_at + h or now >= self._heard.get(server, -_NEVER) + 2 * h

    def _retry_checkouts(self, now: float, ready: Ready) -> None:
        for co in list(self._checkouts.values()):
            if co.queue and now >= co.deadline:
                del self._checkouts[co.request_id]
                ready.event(
                    "denied",
                    request_id=co.request_id,
                    reason=DenyReason.QUEUE_TIMEOUT.value,
                    server=co.server,
                    detail="no seat came free in time",
                )
                continue
            if now < co.retry_at:
                continue
            if co.queued_at is not None and now - co.queued_at < self.timing.failure_timeout:
                self._send_checkout(co, co.server, now, ready)  # still waiting there: say so again
                continue
            co.queued_at = None  # silent past f (or never queued there): the next server re-registers it
            co.tried.add(co.server)
            self._send_checkout(co, self._next_server(co.server, exclude=set()), now, ready)

    def _heartbeat_due(self, now: float, ready: Ready) -> None:
        """One heartbeat per server per interval renews every lease held there."""
        moving = self._moving()
        for server in self._homes(moving):
            if now >= self._last_hb.get(server, now) + self.timing.heartbeat_interval:
                self._send_heartbeat(server, moving, now, ready)

    def _probe_home(self, now: float, ready: Ready) -> None:
        """While new checkouts go elsewhere, ask the start server every
        ``home_probe_every`` whether it serves again: an empty heartbeat, whose
        ack says ``serving`` (``_on_heartbeat_ack`` then sends new checkouts
        home).  Not while a lease is settled there: its own heartbeats ask."""
        if self._probe_at is not None and now >= self._probe_at:
            seq = self._next_seq()
            self._sent[seq] = _Sent("hb", self.home, now, ())
            ready.to(self.home, SessionHeartbeat(client_id=self.client_id, session_id=self.session_id, seq=seq))
            self._probe_at = now + self.home_probe_every

    def _arm_probe(self, now: float, moving: set[str]) -> None:
        """Probe the start server while new checkouts go elsewhere and no lease is settled there."""
        if self.current == self.home or self.home in self._homes(moving):
            self._probe_at = None
        elif self._probe_at is None:
            self._probe_at = now + self.home_probe_every

    @property
    def home_probe_every(self) -> float:
        """2f: how often a session whose checkouts left its start server asks it again."""
        return 2.0 * self.timing.failure_timeout

    def _expire(self, now: float, ready: Ready) -> None:
        for lid, lease in list(self._leases.items()):
            if lease.deadline <= now:
                self._forget(lid)
                ready.event("lost", lease_id=lid, why="deadline", server=lease.server)

    def _finish(self, ready: Ready, now: float) -> Ready:
        """Attach the next wake-up: the earliest timer still running."""
        times: list[float] = [lease.deadline for lease in self._leases.values()]
        moving = self._moving()
        h, f = self.timing.heartbeat_interval, self.timing.failure_timeout
        times.extend(x.deadline - self.seat_bound for lid, x in self._leases.items() if lid not in moving)
        for server in self._homes(moving):
            times.append(self._last_hb.get(server, now) + h)
            if server in self._awaiting:
                times.append(self._awaiting[server] + f)
        times.extend(fo.next_at for fo in self._failovers)
        self._arm_probe(now, moving)
        if self._probe_at is not None:
            times.append(self._probe_at)
        times.extend(min(co.retry_at, co.deadline) for co in self._checkouts.values())
        times.extend(min(rel.next_at, rel.until) for rel in self._releases.values())
        ready.wake_at = min(times) if times else None
        return ready

    # ---- sending ---------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _note_send(self, server: str, now: float) -> None:
        self._awaiting.setdefault(server, now)

    def _send_checkout(self, co: _Checkout, server: str, now: float, ready: Ready) -> None:
        co.server, co.retry_at = server, now + self.timing.client_retry
        co.sends.append((server, now))
        self.current = server
        self._note_send(server, now)
        left = max(0.0, co.deadline - now) if co.queue else None
        if left is not None:
            co.queue_sends[left] = now
        # A resume carries its own sequence number, the same on every retry:
        # the first server to seat it wins, a later retry never moves it again.
        ready.to(
            server,
            CheckoutRequest(
                client_id=self.client_id,
                session_id=self.session_id,
                request_id=co.request_id,
                feature=co.feature,
                version=co.version,
                lease_id=co.lease_id,
                client_seq=co.client_seq,
                exact_version=False,
                queue=co.queue,
                queue_timeout=left,
                count=co.count,
                linger=co.linger,
            ),
        )

    def _send_heartbeat(self, server: str, moving: set[str], now: float, ready: Ready) -> None:
        """The leases settled at ``server``: their digest when it renewed this
        same list whole before (and no ``resend`` for it is recent), else the list."""
        lids = tuple(sorted(lid for lid, x in self._leases.items() if x.server == server and lid not in moving))
        known = self._renewed_whole.get(server)
        digest = known.digest if known is not None and known.lease_ids == lids and now >= known.not_before else ""
        seq = self._next_seq()
        self._sent[seq] = _Sent("hb", server, now, lids, digest)
        self._last_hb[server] = now
        self._note_send(server, now)
        idle = tuple(lid for lid in lids if self._leases[lid].idle)
        ready.to(
            server,
            SessionHeartbeat(
                client_id=self.client_id,
                session_id=self.session_id,
                seq=seq,
                lease_ids=() if digest else lids,
                idle=idle,
                digest=digest,
                count=len(lids) if digest else 0,
            ),
        )

    def _send_failover(self, fo: _Failover, now: float, ready: Ready) -> None:
        target = fo.target
        seq = self._next_seq()
        lids = tuple(fo.lease_ids)
        self._sent[seq] = _Sent("fo", target, now, lids)
        fo.seq, fo.answered, fo.next_at = seq, False, now + self.timing.client_retry
        self._note_send(target, now)
        held = tuple(
            HeldLease(
                lease_id=lid,
                feature=self._leases[lid].feature,
                version=self._leases[lid].version,
                seats=self._leases[lid].seats,
            )
            for lid in lids
        )
        ready.to(target, FailoverUpdate(client_id=self.client_id, session_id=self.session_id, seq=seq, leases=held))

    def _send_release(self, server: str, lease_id: str, now: float, ready: Ready) -> None:
        self._release_no += 1
        ready.to(
            server,
            ReleaseRequest(
                client_id=self.client_id, lease_id=lease_id, request_id=self._release_no, session_id=self.session_id
            ),
        )

    def _keep_release(
        self,
        lease_id: str,
        server: str,
        until: float,
        now: float,
        ready: Ready,
        awaiting: frozenset[str] = frozenset(),
    ) -> None:
        """Keep a release for ``server`` (and the fail-over targets ``awaiting``)
        until a server releases the lease or none holds it, and send it now
        unless ``RELEASE_WINDOW`` releases are unanswered at ``server``."""
        others = tuple(s for s in self._rotated_after(server) if s != server)
        self._releases[lease_id] = _Release(
            lease_id,
            until,
            server,
            others,
            _NEVER,
            _NEVER,
            places={server, *awaiting},
            awaiting=awaiting,
            asked={server, *awaiting},
        )
        self._send_waiting_releases(server, now, ready)

    def _send_waiting_releases(self, server: str, now: float, ready: Ready) -> None:
        """Send the releases waiting for ``server``, oldest first, while fewer
        than ``RELEASE_WINDOW`` are unanswered there.  A burst of releases
        reaches a server as fast as it answers, not faster: a server that lags
        past the transport's bound drops messages, and copies of every late
        release kept it lagging, a congestion collapse that starved the leader
        of its own messages for ``lease_ttl`` (docs/performance.md)."""
        mine = [rel for rel in self._releases.values() if rel.server == server]
        unanswered = sum(1 for rel in mine if rel.unanswered_at_server)
        for rel in mine:
            if unanswered >= RELEASE_WINDOW and not self._closing:
                return
            if rel.waiting:
                for to in sorted(rel.places):
                    rel.sent_at[to] = now
                    self._send_release(to, rel.lease_id, now, ready)
                rel.since, rel.next_at = now, now + self.timing.client_retry
                unanswered += 1

    # ---- fail-over -------------------------------------------------------------

    def _suspect(self, server: str, now: float, ready: Ready, why: str) -> None:
        """Move every lease settled at ``server`` to the next server, in one update."""
        moving = self._moving()
        lids = sorted(lid for lid, x in self._leases.items() if x.server == server and lid not in moving)
        self._awaiting.pop(server, None)
        if self.current == server:
            self.current = self._next_server(server, exclude=set())
        if lids:
            self._fail_over(server, lids, now, ready, why)

    def _fail_over(self, server: str, lids: list[str], now: float, ready: Ready, why: str) -> None:
        """Send the settled leases ``lids`` at ``server`` on to the next server, in one update."""
        targets = tuple(s for s in self._rotated_after(server) if s != server) or (server,)
        fo = _Failover(server, lids, targets)
        self._failovers.append(fo)
        ready.event("failing_over", from_server=server, to_server=fo.target, lease_ids=tuple(lids), why=why)
        self._send_failover(fo, now, ready)

    def _drop_from_failovers(self, lease_id: str) -> None:
        for fo in self._failovers:
            if lease_id in fo.lease_ids:
                fo.lease_ids.remove(lease_id)
        self._failovers = [fo for fo in self._failovers if fo.lease_ids]

    def _forget(self, lease_id: str) -> None:
        self._leases.pop(lease_id, None)
        self._drop_from_failovers(lease_id)

    def _moving(self) -> set[str]:
        return {lid for fo in self._failovers for lid in fo.lease_ids}

    def _homes(self, moving: set[str]) -> list[str]:
        """Servers holding at least one settled (not moving) lease, in config order."""
        homes = {x.server for lid, x in self._leases.items() if lid not in moving}
        return [s for s in self.order if s in homes]

    def _rotated_after(self, server: str) -> tuple[str, ...]:
        i = self.order.index(server) if server in self.order else -1
        return self.order[i + 1 :] + self.order[: i + 1]

    def _next_server(self, server: str, exclude: set[str]) -> str:
        for candidate in self._rotated_after(server):
            if candidate not in exclude:
                return candidate
        return self._rotated_after(server)[0]

    def _prune(self, now: float) -> None:
        """Forget send records too old for any reply to extend a deadline."""
        horizon = now - 2.0 * self.timing.lease_ttl
        live = {fo.seq for fo in self._failovers}
        for seq in [s for s, x in self._sent.items() if x.at < horizon and s not in live]:
            del self._sent[seq]
        for rid in [r for r, (_, at) in self._granted.items() if at < horizon]:
            del self._granted[rid]
        for lid in [x for x, at in self._gone.items() if at < horizon]:
            del self._gone[lid]
        for rid in [r for r, at in self._abandoned.items() if at < horizon]:
            del self._abandoned[rid]
