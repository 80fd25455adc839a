"""The client fast path of one server (leadership.md M2; claims 3, 13, 30, 31).

A server grants, renews and releases leases from its own committed allocation
under its serving lease, with no log round trip.  When it has no spare seat it
holds the checkout and borrows from the leader; when a client fails over to it
it forwards the update to the leader and answers as seats are committed.
Pure: ``now`` is the server's clock.

``ClientSide`` is one of the two role objects a ``ServerNode`` owns; it keeps
its state in a ``ClientBook``, reads its server through ``ClientHost`` and
hands what is the leader's to the server's ``LeaderDuties`` when the server
leads (else it sends it to the leader).
"""

from __future__ import annotations

from typing import Protocol

from actors.core import codes, expiry, leaseid, versions
from actors.core.effects import ClientRef, Message, Ready
from actors.core.leading import AdminRequest, LeaderDuties
from actors.core.member import Deny, Grant, Wait
from actors.core.roles import ClientBook, RoleView, ServerView, WaitingCheckout
from actors.core.table import FeatureKey, FeatureTable
from actors.protocol import client
from actors.protocol.pool import (
    AdminReply,
    BorrowReply,
    BorrowRequest,
    FailoverForward,
    FailoverOutcome,
    QueueFull,
    QueueJoinRequest,
    QueueLeaveRequest,
    ReleaseForward,
    TransferConfirm,
    TransferRequest,
)

__all__ = [
    "ClientHost",
    "ClientSide",
    "RENEW",
    "HOLD",
    "REFUSE",
    "FORWARD_BATCH",
    "RECENT_GRANTS_KEEP",
    "RECENT_GRANTS_MAX",
    "waiter_id",
]

RENEW, HOLD, REFUSE = "renew", "hold", "refuse"
"""A heartbeat's answers for one lease (``ClientSide.heartbeat_answer``)."""

QUEUED = "QUEUED"
"""``ClientBook.unmet``: a checkout held here while this server borrows (a queued wait)."""

IDLE = "IDLE"
"""``HeartbeatAck.reasons``: the lease was reclaimed by its feature's ``idle_timeout``."""

FORWARD_BATCH = 16
"""Releases made here (for leases held elsewhere) resent to the leader in one pass (``forward_releases``)."""

RECENT_GRANTS_KEEP, RECENT_GRANTS_MAX = 4096, 65536
"""``ClientBook.recent_grants`` keeps the last ``KEEP`` grants whatever their
age, and older ones for ``Timing.app_transmit``, but never more than ``MAX``:
at 2,000 grants a second (twice what one server reaches) that is T = 30 s."""


def waiter_id(req: client.CheckoutRequest) -> str:
    """A queued checkout's id in the pool's queue: the same for every retry and
    re-registration of the checkout (one request id per checkout and session)."""
    return f"{req.session_id}:{req.request_id}"


class ClientHost(ServerView, Protocol):
    """The server the client side runs on."""

    def serve_problem(self, table: FeatureTable | None, now: float) -> client.DenyReason | None:
        """Why this server may not serve ``table``'s feature now (None: it may)."""
        ...

    def send_leader(self, msg: Message, ready: Ready) -> bool:
        """Send to the leader, if one is known and it is not this server."""
        ...


class ClientSide(RoleView):
    """What one server does for the client sessions connected to it."""

    def __init__(self, node: ClientHost, leader: LeaderDuties) -> None:
        super().__init__(node)
        self.node = node
        self.leader = leader
        """This server's own leader duties: used while it leads."""
        self.book = ClientBook()
        self.decided_key: FeatureKey | None = None
        """The table the last ``_decide`` chose (read by a queued checkout that must wait)."""

    def hold_limit(self) -> float:
        """How long a checkout may wait for a borrow before NO_SEATS."""
        return 2 * self.timing.failure_timeout

    # ---- checkout ------------------------------------------------------------------

    def on_checkout(self, ref: ClientRef, req: client.CheckoutRequest, now: float, ready: Ready) -> None:
        # A repeat of a request (a session's retry, a LicenseClient's retry: one
        # request id per checkout) gets the same grant, never a second seat; a
        # repeat of one still being decided is ignored (it gets the answer).
        key = (req.session_id, req.request_id)
        done = self.book.recent_grants.get(key)
        if done is not None:
            held = self.member.leases.leases.get(done[0].lease_id)
            if held is not None and not held.lingering:
                ready.to(ref, done[0])
                return
            if req.direct:
                # An app sends one direct ask per request, first: this one is
                # late (its transmit may wait up to T, Timing.app_transmit), and
                # the grant its fall-back got is given back.  No second seat;
                # an app still waiting falls back to its session at once.
                detail = f"request {req.request_id} was answered here already; ask through the session"
                ready.to(ref, self._denied(req.request_id, client.DenyReason.NOT_SERVING, detail))
                ready.event("stale_direct", client_id=req.client_id, request_id=req.request_id)
                return
            # Given back (or expired) since: its session released the grant
            # nobody waited for, so a repeat may take a seat again.
            del self.book.recent_grants[key]
        for w in self.book.waiting:
            if w.request.session_id == req.session_id and w.request.request_id == req.request_id:
                if req.direct:
                    # A late direct ask finds its session's fall-back still
                    # waiting: the answer stays the session's (the app gave
                    # this ask up; docs/performance.md, "Late direct asks").
                    return
                # The answer goes to whoever asked last: an app whose direct ask
                # gave up asks again through its session (docs/performance.md, "Lever 4").
                w.client = ref
                if req.queue:
                    self._still_queued(w, req, now, ready)
                return
        if (
            req.lease_id is not None
            and req.lease_id not in self.member.leases.leases
            and not self.pool.registry.is_dead(req.lease_id)
            and req.lease_id not in self.book.released_here
            and leaseid.lease_id_valid_for(self.settings.lease_key, req.lease_id, req.client_id)
        ):
            # Reconnecting with a lease held elsewhere: move it here, never a second seat.
            self.book.failover_refs[req.lease_id] = (ref, req.client_seq, True, req.request_id)
            forward = FailoverForward(
                sender=self.name,
                epoch=self.raft.term,
                client_id=req.client_id,
                client_seq=req.client_seq,
                leases=(
                    client.HeldLease(
                        lease_id=req.lease_id,
                        feature=req.feature,
                        version=self._resume_version(req),
                        seats=self._resume_seats(req),
                    ),
                ),
            )
            self._forward_failover(forward, now, ready)
            return
        if req.queue:
            self._queue_checkout(ref, req, now, ready)
        elif not self._decide(ref, req, now, ready):
            self.book.waiting.append(WaitingCheckout(ref, req, now))
            self.book.unmet[(req.feature, req.version, QUEUED)] += 1
            ready.event(
                "queued",
                client_id=req.client_id,
                feature=req.feature,
                version=req.version,
                reason=QUEUED,
                **({"seats": max(1, req.count)} if req.count != 1 else {}),
            )

    def _waiting_for(self, key: FeatureKey) -> int:
        """Seats asked by the checkouts held for a borrow that ``key`` may serve."""
        return sum(self.seats_of(w.request, key) for w in self.book.waiting if key in self.serving_tables(w.request))

    def seats_of(self, req: client.CheckoutRequest, key: FeatureKey) -> int:
        """Seats a checkout takes of ``key``: its ``count`` times the table's token weight."""
        table = self.pool.features.get(key)
        return max(1, req.count) * (table.weight if table is not None else 1)

    def _resume_seats(self, req: client.CheckoutRequest) -> int:
        lease = self.pool.registry.leases.get(req.lease_id or "")
        if lease is not None and lease.client_id == req.client_id:
            return lease.seats
        return self.seats_of(req, (req.feature, self._resume_version(req)))

    def serving_tables(self, req: client.CheckoutRequest) -> list[FeatureKey]:
        """The tables that may grant ``req``, lowest version first (one at most
        for an ``exact_version`` request: the table of exactly its version)."""
        if req.exact_version:
            key = (req.feature, req.version)
            return [key] if key in self.pool.features else []
        found = [(t.version, t.exact) for t in self.pool.features.values() if t.feature == req.feature]
        return [(req.feature, v) for v in versions.serving(req.version, found)]

    def _resume_version(self, req: client.CheckoutRequest) -> str:
        """The licensed version of a lease being resumed from another server:
        the log's, when it knows this client's lease under a version that
        serves the request (a session asks for the version the app asked for)."""
        lease = self.pool.registry.leases.get(req.lease_id or "")
        if lease is not None and lease.client_id == req.client_id and lease.key in self.serving_tables(req):
            return lease.version
        return req.version

    def _pick_table(
        self, req: client.CheckoutRequest, keys: list[FeatureKey], today: str, exhausted: dict[FeatureKey, int]
    ) -> FeatureKey:
        """Which of the serving tables ``keys`` this checkout goes to (issue 14
        item 2): the client's own lease when it resumes one held here; else the
        lowest version with a seat here, or without one but not known to be
        exhausted pool-wide (borrow for it); past every exhausted one, to the
        highest, whose Wait ends in NO_SEATS (``retry_waiting``).  An expired
        table is passed over unless every one is expired (EXPIRED)."""
        held = self.member.leases.leases.get(req.lease_id or "")
        if held is not None and held.client_id == req.client_id and held.key in keys:
            return held.key
        live = [k for k in keys if not expiry.expired(self.pool.features[k].expires, today)]
        if len(live) <= 1:
            return (live or keys)[0]
        offers = [
            versions.Offer(
                k[1], self.pool.features[k].exact, self.member.spare(k), k in exhausted and self.applied >= exhausted[k]
            )
            for k in live
        ]
        chosen = versions.choose(req.version, offers)
        return (req.feature, chosen.version) if chosen is not None else live[-1]

    def _no_seat_anywhere(self, w: WaitingCheckout) -> bool:
        """Every table that serves ``w`` was found exhausted, as of an index applied here."""
        keys = self.serving_tables(w.request)
        return bool(keys) and all(k in w.exhausted and self.applied >= w.exhausted[k] for k in keys)

    def _decide(
        self,
        ref: ClientRef,
        req: client.CheckoutRequest,
        now: float,
        ready: Ready,
        waiting: int | None = None,
        exhausted: dict[FeatureKey, int] | None = None,
        queue_key: FeatureKey | None = None,
    ) -> bool:
        """Answer a checkout if possible; False means it must wait for a borrow
        (or, queued, for its turn).  ``waiting``: requests already held for a
        borrow (None: count them); ``queue_key``: the table a queued checkout
        waits for."""
        keys = self.serving_tables(req)
        problems = [self.node.serve_problem(self.pool.features[k], now) for k in keys]
        servable = [k for k, problem in zip(keys, problems, strict=True) if problem is None]
        problem = problems[0] if keys and not servable else None if keys else self.node.serve_problem(None, now)
        if problem is None and not servable:
            problem = client.DenyReason.UNKNOWN_FEATURE
        if problem is not None:
            self._deny(ref, req, problem, ready)
            return True
        key = self._pick_table(req, servable, self.settings.today(), exhausted or {})
        if queue_key in servable:
            key = queue_key
        self.decided_key = key
        if req.lease_id is None and not self._queue_admits(key, req):
            if req.queue:
                return False  # not its turn: it waits in the queue
            queued = len(self.pool.queue(key))
            self._deny(ref, req, client.DenyReason.NO_SEATS, ready, f"{queued} queued checkout(s) wait for a seat")
            return True
        if waiting is None:
            waiting = self._waiting_for(key)
        seats = self.seats_of(req, key)
        table = self.pool.features[key]
        # A checkout's own linger wins when set; never longer than a code may sign.
        linger = min(req.linger, codes.MAX_LINGER) if req.linger > 0 else table.linger
        retake = self.member.leases.find_lingering(req.client_id, key, seats) is not None
        new_id = self.new_lease_id(req.client_id) if self.member.can_seat(key, seats) or retake else ""
        decision = self.member.checkout(
            req.client_id,
            req.session_id,
            key,
            now,
            self.settings.today(),
            new_id,
            req.lease_id,
            waiting,
            req.client_seq,
            seats,
            linger,
        )
        if isinstance(decision, Deny):
            self._deny(ref, req, decision.reason, ready, decision.detail)
            return True
        if isinstance(decision, Wait):
            if not (req.queue and self.pool.waiter(key, waiter_id(req))):
                self._ask_borrow(key, decision.borrow, now, ready)  # a committed waiter's seat is the leader's to move
            return False
        self._grant(ref, req, decision, now, ready)
        return True

    def new_lease_id(self, client_id: str) -> str:
        counter = self.member.leases.next_counter()
        return leaseid.make_lease_id(
            self.settings.lease_key,
            server=self.name,
            incarnation=self.raft.incarnation,
            counter=counter,
            nonce=self.settings.nonce(),
            client_id=client_id,
        )

    def _grant(self, ref: ClientRef, req: client.CheckoutRequest, decision: Grant, now: float, ready: Ready) -> None:
        lease = decision.lease
        reply = client.CheckoutGranted(
            request_id=req.request_id,
            lease_id=lease.lease_id,
            server=self.name,
            feature=lease.feature,
            version=lease.version,
            ttl=self.timing.lease_ttl,
            resumed=decision.resumed,
            seats=lease.seats,
        )
        self._remember_grant((req.session_id, req.request_id), reply, now)
        ready.to(ref, reply)
        ready.event(
            "grant",
            lease_id=lease.lease_id,
            client_id=req.client_id,
            feature=lease.feature,
            version=lease.version,
            resumed=decision.resumed,
            **({"seats": lease.seats} if lease.seats != 1 else {}),
        )
        if decision.borrow:
            self._ask_borrow(lease.key, decision.borrow, now, ready)

    def _deny(
        self, ref: ClientRef, req: client.CheckoutRequest, reason: client.DenyReason, ready: Ready, detail: str = ""
    ) -> None:
        ready.to(ref, self._denied(req.request_id, reason, detail))
        self.book.unmet[(req.feature, req.version, reason.value)] += 1
        ready.event("denial", client_id=req.client_id, feature=req.feature, version=req.version, reason=reason.value)

    def _denied(self, request_id: int, reason: client.DenyReason, detail: str) -> client.CheckoutDenied:
        return client.CheckoutDenied(request_id=request_id, reason=reason, detail=detail, server=self.name)

    def _remember_grant(self, key: tuple[str, int], reply: client.CheckoutGranted, now: float) -> None:
        """Keep ``reply`` for repeats of its request for ``app_transmit``, then forget it (oldest first)."""
        recent = self.book.recent_grants
        recent[key] = (reply, now)
        recent.move_to_end(key)  # a request granted again (its first grant was given back)
        horizon = now - self.timing.app_transmit
        while len(recent) > RECENT_GRANTS_MAX or (
            len(recent) > RECENT_GRANTS_KEEP and next(iter(recent.values()))[1] < horizon
        ):
            recent.popitem(last=False)

    def _ask_borrow(self, key: FeatureKey, count: int, now: float, ready: Ready) -> None:
        if now - self.book.borrow_asked.get(key, float("-inf")) < 2 * self.timing.heartbeat_interval:
            return
        self.book.borrow_asked[key] = now
        self.book.borrow_no += 1
        msg = BorrowRequest(
            sender=self.name,
            epoch=self.raft.term,
            feature=key[0],
            version=key[1],
            count=count,
            in_use=self.member.leases.in_use(key),
            allocated=self.member.usable(key),
            request_no=self.book.borrow_no,
        )
        if self.raft.is_leader:
            self.leader.on_borrow(msg, now, ready)
        else:
            self.node.send_leader(msg, ready)

    def retry_waiting(self, now: float, ready: Ready) -> None:
        """Seats may have arrived (or the hold ran out): answer what can be."""
        still: list[WaitingCheckout] = []
        for w in self.book.waiting:
            if w.queue_key is not None:
                if self._retry_queued(w, now, ready):
                    still.append(w)
                continue
            ahead = sum(max(1, x.request.count) for x in still)  # seats asked ahead of it
            if now - w.since < self.hold_limit() and self._between_leaders(w.request, now):
                # Only the serving lease is missing (a leader change): keep holding it, as a
                # queued checkout is kept, until the hold's limit; ``ServerNode._finish``
                # retries it the moment this server serves again.
                still.append(w)
                continue
            if not self._decide(w.client, w.request, now, ready, ahead, w.exhausted):
                if self._no_seat_anywhere(w):
                    self._deny(
                        w.client, w.request, client.DenyReason.NO_SEATS, ready, "every seat in the pool is in use"
                    )
                elif now - w.since >= self.hold_limit():
                    self._deny(w.client, w.request, client.DenyReason.NO_SEATS, ready, "no seat came free in time")
                else:
                    still.append(w)
        self.book.waiting = still
        if self.book.queue_leaving or self.pool.queues:
            self.queue_upkeep(now, ready)

    def serving_again(self, now: float, ready: Ready) -> None:
        """This server serves again (it leads now, or a new leader renewed it):
        answer or re-ask the borrows of the checkouts held meanwhile now, not at
        the next tick.  A borrow asked before went to a leader that may be gone:
        ask afresh, not 2h later."""
        self.book.borrow_asked.clear()
        self.retry_waiting(now, ready)

    def _between_leaders(self, req: client.CheckoutRequest, now: float) -> bool:
        """Every table that may serve ``req`` is refused here only for want of a
        serving lease (``NO_MAJORITY``): the pool is between leaders, or this
        server is cut off from the majority for a moment."""
        if self.raft.holds_serving_lease(now):
            return False  # the common case, without a look at every table
        keys = self.serving_tables(req)
        return bool(keys) and all(
            self.node.serve_problem(self.pool.features[k], now) is client.DenyReason.NO_MAJORITY for k in keys
        )

    def on_borrow_reply(self, msg: BorrowReply, now: float, ready: Ready) -> None:
        if not msg.exhausted:
            return
        # Seats the leader already moved here may not be applied yet: deny
        # only once this server has applied the log as far as the leader had.
        key = (msg.feature, msg.version)
        for w in self.book.waiting:
            if key not in w.exhausted and key in self.serving_tables(w.request):
                w.exhausted[key] = msg.index
        self.retry_waiting(now, ready)

    # ---- queued checkouts (docs/licenses.md, "Queued checkouts") ----------------------

    def _queue_admits(self, key: FeatureKey, req: client.CheckoutRequest) -> bool:
        """First come, first served across the pool: while a table's committed
        queue is not empty, a seat of it goes only to its oldest waiters.  A
        waiter may take one here when every waiter ahead of it waits here too
        and there is a spare seat for each of them and for it."""
        queue = self.pool.queue(key)
        if not queue:
            return True
        found = self.pool.waiter(key, waiter_id(req)) if req.queue else None
        if found is None:
            return False
        ahead = queue[: found[0] + 1]
        return all(w.server == self.name for w in ahead) and sum(w.seats for w in ahead) <= self.member.spare(key)

    def _queued_key(self, req: client.CheckoutRequest) -> FeatureKey | None:
        """The table a checkout is queued for already (a re-registration), if any."""
        wid = waiter_id(req)
        for key in self.serving_tables(req):
            if self.pool.waiter(key, wid) is not None:
                return key
        return None

    def _queue_checkout(self, ref: ClientRef, req: client.CheckoutRequest, now: float, ready: Ready) -> None:
        """A ``queue=True`` checkout: granted now if a seat is free and it is its
        turn, else it joins (or, re-registered, keeps its place in) the queue."""
        self.decided_key = None
        known = self._queued_key(req)
        if self._decide(ref, req, now, ready, queue_key=known):
            return
        key = known or self.decided_key
        if key is None:
            return
        w = WaitingCheckout(ref, req, now, queue_key=key, deadline=now + (req.queue_timeout or 0.0), seen=now)
        self.book.waiting.append(w)
        self.book.queue_leaving.pop(waiter_id(req), None)
        self.book.queue_orphans.pop(waiter_id(req), None)
        self._send_join(w, now, ready)
        self._reply_queued(w, ready)
        ready.event("queued", client_id=req.client_id, feature=key[0], version=key[1], waiter=waiter_id(req))

    def _still_queued(self, w: WaitingCheckout, req: client.CheckoutRequest, now: float, ready: Ready) -> None:
        """The session re-sent a queued checkout: it still waits.  A server that
        may not serve (fenced, rejoining) sends it on: the next server
        re-registers it, and it keeps its place."""
        if w.queue_key is None:
            return
        if self.node.serve_problem(self.pool.features.get(w.queue_key), now) is client.DenyReason.NOT_SERVING:
            self.book.waiting.remove(w)
            self._deny(w.client, req, client.DenyReason.NOT_SERVING, ready, "this server is not serving")
            return
        w.seen = now
        w.request = req  # the latest send: the reply echoes its queue_timeout
        w.deadline = now + (req.queue_timeout or 0.0)
        queued = self.pool.waiter(w.queue_key, waiter_id(req))
        if queued is not None and queued[1].server != self.name and now - w.join_sent >= self.timing.heartbeat_interval:
            self._send_join(w, now, ready)  # its session came back here: the waiter moves back, keeping its place
        self._reply_queued(w, ready)

    def _reply_queued(self, w: WaitingCheckout, ready: Ready) -> None:
        found = self.pool.waiter(w.queue_key, waiter_id(w.request)) if w.queue_key else None
        ready.to(
            w.client,
            client.CheckoutQueued(
                request_id=w.request.request_id,
                server=self.name,
                position=found[0] + 1 if found else 0,
                queue_timeout=w.request.queue_timeout,
            ),
        )

    def _send_join(self, w: WaitingCheckout, now: float, ready: Ready) -> None:
        assert w.queue_key is not None
        w.join_sent = now
        msg = QueueJoinRequest(
            sender=self.name,
            epoch=self.raft.term,
            waiter_id=waiter_id(w.request),
            client_id=w.request.client_id,
            feature=w.queue_key[0],
            version=w.queue_key[1],
            timeout=max(0.0, w.deadline - now),
        )
        if self.raft.is_leader:
            self.leader.on_queue_join(msg, now, ready)
        else:
            self.node.send_leader(msg, ready)

    def _retry_queued(self, w: WaitingCheckout, now: float, ready: Ready) -> bool:
        """One queued checkout on a retry; False when it is answered (or gone)."""
        assert w.queue_key is not None
        wid = waiter_id(w.request)
        if now >= w.deadline:
            self._deny(w.client, w.request, client.DenyReason.QUEUE_TIMEOUT, ready, "no seat came free in time")
            self._leave(wid, w.queue_key, "timeout", now)
            return False
        if now - w.seen >= self.timing.failure_timeout:
            ready.event("queue_gone", client_id=w.request.client_id, waiter=wid)
            self._leave(wid, w.queue_key, "gone", now)
            return False
        if self.node.serve_problem(self.pool.features.get(w.queue_key), now) is not None:
            return True  # between leaders (or fenced): it keeps its place and waits
        if self._decide(w.client, w.request, now, ready, queue_key=w.queue_key):
            done = (w.request.session_id, w.request.request_id) in self.book.recent_grants
            self._leave(wid, w.queue_key, "granted" if done else "gone", now)
            return False
        if self.pool.waiter(w.queue_key, wid) is None and now - w.join_sent >= 2 * self.timing.heartbeat_interval:
            self._send_join(w, now, ready)  # not committed yet (or lost with a leader): ask again
        return True

    def _leave(self, wid: str, key: FeatureKey, reason: str, now: float) -> None:
        """Ask the queue to let a waiter go (sent by ``queue_upkeep`` until it is gone)."""
        self.book.queue_leaving[wid] = (key, reason, now, float("-inf"))

    def on_queue_full(self, msg: QueueFull, now: float, ready: Ready) -> None:
        """The leader refused a join: the queue is full."""
        still: list[WaitingCheckout] = []
        for w in self.book.waiting:
            if w.queue_key is not None and waiter_id(w.request) == msg.waiter_id:
                detail = f"the queue holds {msg.limit} waiters already" if msg.limit else "the queue is full"
                self._deny(w.client, w.request, client.DenyReason.QUEUE_FULL, ready, detail)
            else:
                still.append(w)
        self.book.waiting = still

    def queue_upkeep(self, now: float, ready: Ready) -> None:
        """Keep the committed queue true for this server: re-send each leave
        until the waiter is gone from it, and ask out a committed waiter here
        whose checkout is not waiting here (a restart lost it, a late join)
        once ``failure_timeout`` shows its session is not asking again."""
        here = {waiter_id(w.request) for w in self.book.waiting if w.queue_key is not None}
        queued: dict[str, FeatureKey] = {}
        for key, queue in self.pool.queues.items():
            for x in queue:
                if x.server == self.name:
                    queued[x.waiter_id] = key
        for wid, key in queued.items():
            if wid in here or wid in self.book.queue_leaving:
                self.book.queue_orphans.pop(wid, None)
            elif now - self.book.queue_orphans.setdefault(wid, now) >= self.timing.failure_timeout:
                del self.book.queue_orphans[wid]
                self._leave(wid, key, "gone", now)
        for wid in [w for w in self.book.queue_orphans if w not in queued]:
            del self.book.queue_orphans[wid]
        for wid, (key, reason, asked, sent) in list(self.book.queue_leaving.items()):
            if wid not in queued:
                if now - asked >= self.timing.failure_timeout:
                    del self.book.queue_leaving[wid]  # long gone: a late join would be an orphan
                continue
            if now - sent < 2 * self.timing.heartbeat_interval:
                continue
            self.book.queue_leaving[wid] = (key, reason, asked, now)
            msg = QueueLeaveRequest(
                sender=self.name, epoch=self.raft.term, waiter_id=wid, feature=key[0], version=key[1], reason=reason
            )
            if self.raft.is_leader:
                self.leader.on_queue_leave(msg, now, ready)
            else:
                self.node.send_leader(msg, ready)

    # ---- heartbeats and releases ----------------------------------------------------

    def on_heartbeat(self, ref: ClientRef, hb: client.SessionHeartbeat, now: float, ready: Ready) -> None:
        """Renew, hold or refuse each listed lease (docs/leadership.md, M14).

        Under a serving lease every lease of this client held here is renewed.
        Without one (between leaders) it is held, not renewed: its deadline is
        not extended, and the session is not sent away.  A server that may not
        serve at all (fenced, not rejoined, an old incarnation) sends the
        session to another server.  A lease not held here for this client is
        lost (or moved), whatever the server's state: that is committed fact;
        except at a server rebuilt on an empty disk and not rejoined yet, which
        sends the session away (docs/leadership.md, "Rejoin after a lost disk").

        A digest stands for the list only once this server has checked it
        against its own table (``digest_holds``): if it does not match, nothing
        is renewed and the session is asked for the full list (``resend``).
        An answer that renews every lease says so with the list's digest
        (``renewed`` then left out when the heartbeat sent the digest).
        """
        lease_ids = hb.lease_ids
        if hb.digest:
            verified = self.digest_holds(hb)
            if verified is None:
                ready.to(
                    ref,
                    client.HeartbeatAck(
                        seq=hb.seq,
                        server=self.name,
                        ttl=self.timing.lease_ttl,
                        serving=self.node.serve_problem(None, now) is None,
                        resend=True,
                    ),
                )
                return
            lease_ids = verified
        servable: list[str] = []
        held: list[str] = []
        refused: list[str] = []
        today = self.settings.today()
        for lid in lease_ids:
            lease = self.member.leases.leases.get(lid)
            if lease is None and self.member.empty_boot:
                refused.append(lid)  # this table was lost with a disk: not holding a lease says nothing
                continue
            if lease is None:
                servable.append(lid)  # renew() reports it lost, or moved
                continue
            table = self.pool.features.get(lease.key)
            if table is not None and expiry.expired(table.expires, today):
                continue  # neither renewed nor lost: the lease ends at its deadline (docs/operations.md)
            answer = self.heartbeat_answer(self.node.serve_problem(table, now))
            if answer == HOLD and (lease.client_id != hb.client_id or lease.revoked):
                answer = RENEW  # not this client's, or revoked: renew() reports it lost
            {RENEW: servable, HOLD: held, REFUSE: refused}[answer].append(lid)
        reclaimed = self._idle_reclaims(hb, servable, now, ready)
        hold = now + self.member.ttl_hold
        renewed, lost = self.member.leases.renew(hb.client_id, hb.session_id, tuple(servable), hold, hb.seq)
        moved = {lid: to for lid in lost if (to := self._moved_to(lid)) is not None}
        gone = tuple(lid for lid in lost if lid not in moved) + tuple(reclaimed)
        whole = bool(lease_ids) and len(renewed) == len(lease_ids)
        digest = (hb.digest or leaseid.ids_digest(lease_ids)) if whole else ""
        ready.to(
            ref,
            client.HeartbeatAck(
                seq=hb.seq,
                server=self.name,
                renewed=() if whole and hb.digest else tuple(renewed),
                lost=gone,
                fail_over=bool(refused),
                ttl=self.timing.lease_ttl,
                moved=tuple(moved.items()),
                held=tuple(held),
                serving=self.node.serve_problem(None, now) is None,
                reasons=tuple((lid, IDLE) for lid in reclaimed),
                digest=digest,
            ),
        )

    def digest_holds(self, hb: client.SessionHeartbeat) -> tuple[str, ...] | None:
        """The leases a digest heartbeat stands for, if its digest and count are
        those of this server's own table for its client and session
        (``LocalLeases.bound_to``); None if not: nothing may be renewed then."""
        mine = self.member.leases.bound_to(hb.client_id, hb.session_id)
        if len(mine) != hb.count or leaseid.ids_digest(mine) != hb.digest:
            return None
        return mine

    def _idle_reclaims(self, hb: client.SessionHeartbeat, servable: list[str], now: float, ready: Ready) -> list[str]:
        """Track which listed leases the app marked idle, and reclaim (release)
        each one idle for its feature's ``idle_timeout``: it is taken out of
        ``servable`` and reported lost with the reason ``IDLE`` (issue 14)."""
        idle = set(hb.idle)
        reclaimed: list[str] = []
        for lid in list(servable):
            lease = self.member.leases.leases.get(lid)
            if lease is None or lease.client_id != hb.client_id or lease.lingering or lease.revoked:
                continue
            if lid not in idle:
                lease.idle_since = None
                continue
            if lease.idle_since is None:
                lease.idle_since = now
            table = self.pool.features.get(lease.key)
            limit = table.idle_timeout if table is not None else 0.0
            if limit > 0 and now - lease.idle_since >= limit:
                lease.linger = 0.0  # reclaimed: its seats free, no linger
                self.member.leases.release(lid, lease.client_id, now)
                servable.remove(lid)
                reclaimed.append(lid)
                ready.event(
                    "idle_reclaim",
                    lease_id=lid,
                    client_id=lease.client_id,
                    feature=lease.feature,
                    version=lease.version,
                )
        return reclaimed

    def heartbeat_answer(self, problem: client.DenyReason | None) -> str:
        """What a heartbeat gets for a lease held here, given ``serve_problem``:
        ``RENEW`` under a serving lease; ``HOLD`` (not renewed, no fail-over)
        when only the serving lease is missing, as between leaders; ``REFUSE``
        (the session fails over) when this server may not serve at all."""
        if problem is None:
            return RENEW
        if problem is client.DenyReason.NO_MAJORITY:
            return HOLD
        return REFUSE

    def _moved_to(self, lease_id: str) -> str | None:
        """Where a lease I no longer hold was handed over to (in flight or committed)."""
        for t in self.pool.transfers.values():
            if t.lease_id == lease_id and t.taker != self.name:
                return t.taker
        holder = self.pool.registry.holder(lease_id)
        return holder if holder is not None and holder != self.name else None

    def on_release(self, ref: ClientRef, msg: client.ReleaseRequest, now: float, ready: Ready) -> None:
        held = self.member.leases.leases.get(msg.lease_id)
        if held is not None and held.session_id and msg.session_id and held.session_id != msg.session_id:
            # A restarted app resumed this lease from a new session before its old
            # session's release arrived: the lease is the new session's now.
            ready.to(ref, client.ReleaseAck(request_id=msg.request_id, lease_id=msg.lease_id, released=False))
            return
        released = self.member.leases.release(msg.lease_id, msg.client_id, now)
        elsewhere = (
            not released
            and msg.lease_id not in self.member.leases.leases
            and leaseid.lease_id_valid_for(self.settings.lease_key, msg.lease_id, msg.client_id)
        )
        # Not here: say where it is, so the release follows it (docs/reliability.md,
        # "A release is delivered"); only to its own client.
        moved_to = (self._moved_to(msg.lease_id) or "") if elsewhere else ""
        ready.to(
            ref,
            client.ReleaseAck(request_id=msg.request_id, lease_id=msg.lease_id, released=released, moved_to=moved_to),
        )
        if released:
            lingering = self.member.leases.leases.get(msg.lease_id)
            extra = {"linger": lingering.linger} if lingering is not None else {}
            ready.event("release", lease_id=msg.lease_id, client_id=msg.client_id, **extra)
        elif elsewhere and msg.lease_id not in self.book.released_here and not self._release_known(msg.lease_id):
            # Its holder may be cut off with the release unreported: have the id
            # killed in the log, or a stale resume could bring it back (S3).
            # Forwarded now, this one only (a repeat of it is on its way already).
            self.book.released_here[msg.lease_id] = (msg.client_id, now)
            self.book.release_forwarded[msg.lease_id] = now
            self._forward_release(msg.lease_id, msg.client_id, now, ready)

    def _release_known(self, lease_id: str) -> bool:
        """The pool knows, or will know from this server, that ``lease_id`` is
        over: the committed registry shows it dead or revoked, or it was this
        server's, which no longer holds it: the registry places it here, or
        this server's own report of its end (release, expiry) is on its way
        (not after a lost disk, whose table says nothing).  A repeat of a
        release this server already made is such a case (a session re-sends a
        release whose answer is late): it needs no forward to the leader, which
        would propose a ``ForceRelease`` for every copy."""
        registry = self.pool.registry
        if registry.is_killed(lease_id):
            return True
        if self.member.table_lost():
            return False
        leases = self.member.leases
        return registry.holder(lease_id) == self.name or any(c.lease_id == lease_id for c in leases.changes)

    def forward_releases(self, now: float, ready: Ready) -> None:
        """Resend the releases made here until the log shows their ids dead or
        revoked: each at most every ``2h``, and at most ``FORWARD_BATCH`` at a
        time, those forwarded longest ago first.  Each was sent at once when it
        came (``on_release``); a burst of them must not become a burst of bursts
        at the leader (docs/performance.md, "The mass release")."""
        forwarded = self.book.release_forwarded
        due: list[tuple[float, str]] = []
        for lid, (_, at) in list(self.book.released_here.items()):
            if self.pool.registry.is_killed(lid) or now - at > 2 * self.timing.lease_ttl:
                del self.book.released_here[lid]
                forwarded.pop(lid, None)
            elif now - forwarded.get(lid, at) >= self.timing.client_retry:
                due.append((forwarded.get(lid, at), lid))
        for _, lid in sorted(due)[:FORWARD_BATCH]:
            forwarded[lid] = now
            self._forward_release(lid, self.book.released_here[lid][0], now, ready)

    def _forward_release(self, lease_id: str, client_id: str, now: float, ready: Ready) -> None:
        forward = ReleaseForward(sender=self.name, epoch=self.raft.term, client_id=client_id, lease_id=lease_id)
        if self.raft.is_leader:
            self.leader.on_release_forward(forward, now, ready)
        else:
            self.node.send_leader(forward, ready)

    # ---- fail-over (claims 13-15) -------------------------------------------------------

    def on_failover_update(self, ref: ClientRef, upd: client.FailoverUpdate, now: float, ready: Ready) -> None:
        if self.node.serve_problem(None, now) is not None:
            return  # not serving: silence sends the client on to the next server
        seated, refused, forward = [], [], []
        for held in upd.leases:
            lease = self.member.leases.leases.get(held.lease_id)
            if (
                not leaseid.lease_id_valid_for(self.settings.lease_key, held.lease_id, upd.client_id)
                or held.lease_id in self.book.released_here
            ):
                refused.append(held.lease_id)
            elif lease is not None and lease.client_id == upd.client_id:
                table = self.pool.features.get(lease.key)
                if table is None or not expiry.expired(table.expires, self.settings.today()):
                    lease.expires_at = max(lease.expires_at, now + self.member.ttl_hold)
                lease.client_seq = max(lease.client_seq, upd.seq)
                if not lease.session_id:
                    lease.session_id = upd.session_id
                seated.append(held.lease_id)
            else:
                forward.append(held)
                self.book.failover_refs[held.lease_id] = (ref, upd.seq, False, 0)
        ready.to(
            ref,
            client.FailoverReply(
                seq=upd.seq,
                server=self.name,
                seated=tuple(seated),
                pending=(),
                refused=tuple(refused),
                ttl=self.timing.lease_ttl,
            ),
        )
        if forward:
            msg = FailoverForward(
                sender=self.name,
                epoch=self.raft.term,
                client_id=upd.client_id,
                client_seq=upd.seq,
                leases=tuple(forward),
            )
            self._forward_failover(msg, now, ready)

    def _forward_failover(self, msg: FailoverForward, now: float, ready: Ready) -> None:
        if self.raft.is_leader:
            self.leader.on_failover_forward(msg, now, ready)
        elif not self.node.send_leader(msg, ready):
            self.on_failover_outcome(
                FailoverOutcome(
                    sender=self.name,
                    epoch=self.raft.term,
                    client_id=msg.client_id,
                    client_seq=msg.client_seq,
                    pending=tuple(x.lease_id for x in msg.leases),
                ),
                now,
                ready,
            )

    def on_failover_outcome(self, msg: FailoverOutcome, now: float, ready: Ready) -> None:
        for lid in msg.pending + msg.refused:
            entry = self.book.failover_refs.get(lid)
            if entry is None:
                continue
            ref, seq, as_checkout, request_id = entry
            if lid in msg.refused:
                del self.book.failover_refs[lid]
            if as_checkout:
                if lid in msg.refused:
                    ready.to(ref, self._denied(request_id, client.DenyReason.NOT_SERVING, "lease is dead"))
                continue
            pending, refused = ((lid,), ()) if lid in msg.pending else ((), (lid,))
            ready.to(
                ref,
                client.FailoverReply(
                    seq=seq, server=self.name, seated=(), pending=pending, refused=refused, ttl=self.timing.lease_ttl
                ),
            )

    def lease_arrived(self, lease_id: str, ready: Ready) -> None:
        """A lease was committed to this server: answer the client that asked."""
        entry = self.book.failover_refs.pop(lease_id, None)
        if entry is None:
            return
        ref, seq, as_checkout, request_id = entry
        lease = self.member.leases.leases.get(lease_id)
        if lease is None:
            return
        if as_checkout:
            ready.to(
                ref,
                client.CheckoutGranted(
                    request_id=request_id,
                    lease_id=lease_id,
                    server=self.name,
                    feature=lease.feature,
                    version=lease.version,
                    ttl=self.timing.lease_ttl,
                    resumed=True,
                    seats=lease.seats,
                ),
            )
        else:
            ready.to(
                ref,
                client.FailoverReply(
                    seq=seq, server=self.name, seated=(lease_id,), pending=(), refused=(), ttl=self.timing.lease_ttl
                ),
            )

    # ---- transfers this server gives (claim 33) ----------------------------------------

    def on_transfer_request(self, msg: TransferRequest, ready: Ready) -> None:
        if msg.transfer_id not in self.member.consents:
            self.member.missing_consents()
        given = self.member.consents.get(msg.transfer_id)
        if given is not None:
            ready.to(
                msg.sender,
                TransferConfirm(sender=self.name, epoch=self.raft.term, transfer_id=msg.transfer_id, given=given),
            )

    # ---- admin changes go to the leader ------------------------------------------------

    def admin_from(self, ref: ClientRef, msg: AdminRequest, now: float, ready: Ready) -> None:
        self.book.admin_refs[msg.request_id] = ref
        if not self.raft.is_leader:
            # The receiving server checks too: a bad change never reaches the leader.
            _auth, refused = self.node.admin_problem(msg, "received", ready)
            if refused:
                self.relay_admin_reply(
                    AdminReply(
                        sender=self.name, epoch=self.raft.term, request_id=msg.request_id, ok=False, error=refused
                    ),
                    ready,
                )
                return
        if self.raft.is_leader:
            self.leader.on_admin(msg, self.name, now, ready)
            return
        forwarded = type(msg)(**{**msg.__dict__, "sender": self.name, "epoch": self.raft.term})
        if not self.node.send_leader(forwarded, ready):
            self.relay_admin_reply(
                AdminReply(
                    sender=self.name,
                    epoch=self.raft.term,
                    request_id=msg.request_id,
                    ok=False,
                    error="no leader is known yet (election in progress); retry",
                ),
                ready,
            )

    def relay_admin_reply(self, reply: AdminReply, ready: Ready) -> None:
        ref = self.book.admin_refs.pop(reply.request_id, None)
        if ref is not None:
            ready.to(ref, reply)
