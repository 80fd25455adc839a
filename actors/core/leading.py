"""The leader's duties: everything it proposes, and the replies it owes.

Timers only *propose* entries; what they decide happens when the entry commits
(leadership.md M1).  The leader proposes only while it may act: past its
new-leader wait and inside a majority-acknowledged lease.

* fencing: a live server whose serving lease has certainly expired (grantor
  side) is fenced; ``Reclaim`` follows ``T(1+rho)`` after the leader saw the
  fence committed, unless it rejoined first; ``Rejoin`` once a server that
  restarted or was fenced has applied the current log;
* serving grants: which peers ``Raft`` may renew and grant a real serving
  lease (``may_renew``, ``may_serve``);
* lease reports, appended as they arrive in heartbeats;
* transfers: the giver's consent completes them; a giver that fell out of the
  pool aborts them;
* borrows (claims 1, 3, 5), fail-over updates (claims 13-15), pending updates,
  idle rebalancing (claim 32) and the admin changes (claims 7-12).

``LeaderDuties`` is one of the two role objects a ``ServerNode`` owns; it keeps
its state in a ``LeaderBook`` and reads its server through ``LeaderHost``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from actors.core import codes, planner
from actors.core.effects import Ready
from actors.core.leases import GRANT
from actors.core.pool import DOWN, FENCED, LIVE, ServerState, Waiter
from actors.core.roles import LeaderBook, RoleView, ServerView
from actors.core.table import FeatureKey
from actors.protocol.client import HeldLease
from actors.protocol.entries import (
    AddAddon,
    AddLicense,
    AdminNonce,
    Entry,
    Fence,
    ForceRelease,
    LeaseReport,
    QueueJoin,
    QueueLeave,
    Reclaim,
    Rejoin,
    ServerDown,
    SetCriteria,
    SetIdlePolicy,
    TransferAbort,
    TransferComplete,
)
from actors.protocol.pool import (
    AddAllocations,
    AddLicenseCode,
    AdminReply,
    BorrowReply,
    BorrowRequest,
    ChangeDistributionCriteria,
    DeclareServerDown,
    FailoverForward,
    FailoverOutcome,
    ForceReleaseLease,
    QueueFull,
    QueueJoinRequest,
    QueueLeaveRequest,
    ReleaseForward,
    SetIdleTimeout,
    TransferConfirm,
    TransferRequest,
)
from actors.protocol.raft import LogEntry, SyncReply

__all__ = ["AdminRequest", "LeaderDuties", "LeaderHost"]

AdminRequest = (
    AddLicenseCode
    | AddAllocations
    | ChangeDistributionCriteria
    | ForceReleaseLease
    | DeclareServerDown
    | SetIdleTimeout
)


class LeaderHost(ServerView, Protocol):
    """The server the leader's duties run on.  Besides its state, it takes the
    replies the leader owes a server when that server is the leader itself: a
    borrow, a fail-over or an admin change asked for through its own client side."""

    def on_borrow_reply(self, msg: BorrowReply, now: float, ready: Ready) -> None: ...

    def on_failover_outcome(self, msg: FailoverOutcome, now: float, ready: Ready) -> None: ...

    def relay_admin_reply(self, reply: AdminReply, ready: Ready) -> None: ...

    def on_queue_full(self, msg: QueueFull, now: float, ready: Ready) -> None: ...


class LeaderDuties(RoleView):
    """What one server does while it leads; idle while it follows."""

    def __init__(self, node: LeaderHost) -> None:
        super().__init__(node)
        self.node = node
        self.book = LeaderBook()

    # ---- views and helpers -------------------------------------------------------------

    def propose(self, entries: list[Entry], ready: Ready) -> int:
        """Append entries as leader; returns the index of the last one (0: none)."""
        if not entries:
            return 0
        return self.raft.append(entries, ready)

    def spare_of(self, server: str, key: FeatureKey) -> int:
        """Exact for the leader itself; as reported for the others."""
        if server == self.name:
            return self.member.spare(key)
        table = self.pool.features.get(key)
        if table is None:
            return 0
        return table.allocated(server) - self.pool.registry.in_use(server, key)

    def seat_returning(self, key: FeatureKey) -> bool:
        """A seat of ``key`` is being given back: released at this server and
        not yet committed (M2 counts it in use until then), or released in a
        report (a release or an expiry) in the log past the commit index."""
        if key in self.member.leases.releasing.values():
            return True
        log = self.raft.log
        for index in range(max(self.raft.commit_index, log.snap_index) + 1, log.last_index + 1):
            entry = log.entry(index).entry
            if isinstance(entry, LeaseReport) and any(
                c.kind != GRANT and (c.feature, c.version) == key for c in entry.changes
            ):
                return True
        return False

    def new_transfer_id(self) -> str:
        """``epoch.n``, n counted in this leader's book: unique, because an
        epoch has one leader, and a server that led an epoch can lead again
        only in a later one (its vote and epoch are durable)."""
        self.book.transfer_seq += 1
        return f"{self.raft.term}.{self.book.transfer_seq}"

    def may_renew(self, peer: str, now: float) -> bool:
        """A holder that leaves a cut unanswered for a few heartbeats is not
        renewed, so it is fenced and the fence rules finish the cut."""
        limit = 4 * self.timing.heartbeat_interval
        for t in self.member.pool.transfers.values():
            seen = self.book.intent_seen.get(t.transfer_id)
            if t.giver == peer and t.transfer_id not in self.book.confirms and seen is not None and now - seen > limit:
                return False
        return True

    def may_serve(self, peer: str) -> bool:
        """Only a live server, with no fence on its way, gets a serving lease."""
        state = self.member.pool.servers.get(peer)
        fencing = self.book.fence_proposed.get(peer, 0) > self.applied
        return state is not None and state.status == LIVE and not fencing

    def reset_book(self) -> None:
        if self.book.epoch != self.raft.term:
            self.book = LeaderBook(epoch=self.raft.term)

    def reclaim_delay(self) -> float:
        return self.timing.reclaim_delay

    def fence_due(self, server: str, now: float) -> bool:
        """The holder's serving lease has certainly expired, grantor side."""
        peer = self.raft.peers.get(server)
        if peer is None:
            return False
        # A server that just became live (a new leader, or its Rejoin) gets f to
        # ask for its first grant before its silence counts against it.
        since = max(self.raft.active_after, self.book.live_since.get(server, float("-inf")))
        return now >= since + self.timing.failure_timeout and now > peer.serving_until

    # ---- the periodic duties ---------------------------------------------------------

    def lead(self, now: float, ready: Ready) -> None:
        """Run every duty once; called on each tick and after commits."""
        if not self.raft.leader_active(now):
            return
        self.reset_book()
        self._membership(now, ready)
        self._own_report(ready)
        self._transfers(now, ready)
        self._pending(ready)
        if self.pool.queues:
            self._queues(now, ready)
        if now >= self.book.next_rebalance:
            self.book.next_rebalance = now + 2 * self.timing.heartbeat_interval
            self._rebalance(now, ready)

    def _membership(self, now: float, ready: Ready) -> None:
        book = self.book
        for name, server in self.pool.servers.items():
            inc = self.raft.incarnation if name == self.name else book.incarnations.get(name, 0)
            lost = self.member.table_lost() if name == self.name else self._peer_table_lost(name, server)
            # A new incarnation rebuilt on an empty disk: its earlier one is fenced
            # and reclaimed before it rejoins (leadership.md, "Rejoin after a lost disk").
            wait = lost and inc > server.incarnation and server.status != DOWN
            if self._in_flight(book.fence_proposed, name):
                continue
            if server.status == LIVE and (wait or (name != self.name and self.fence_due(name, now))):
                book.fence_proposed[name] = self.propose([Fence(server=name, incarnation=server.incarnation)], ready)
                continue
            if server.status == LIVE:
                # The reclaim clock starts at each fence this leader sees, never earlier.
                book.fenced_seen.pop(name, None)
            elif name != self.name:
                self.raft.restart_grants(name, now)
            if server.status == FENCED:
                seen = book.fenced_seen.setdefault(name, now)
                if now >= seen + self.reclaim_delay() and not self._in_flight(book.reclaim_proposed, name):
                    book.reclaim_proposed[name] = self.propose([Reclaim(server=name)], ready)
            rejoin = (server.status != LIVE or inc > server.incarnation) and not wait and self._caught_up(name, now)
            if rejoin and not self._in_flight(book.rejoin_proposed, name):
                # leadership.md M5: only a *committed* Rejoin stops the Reclaim; one
                # proposed here may still be followed by a Reclaim, which the state
                # machine then ignores (PoolState._reclaim).
                book.rejoin_proposed[name] = self.propose([Rejoin(server=name, incarnation=inc)], ready)

    def _peer_table_lost(self, name: str, server: ServerState) -> bool:
        """A follower's table may lack leases of an earlier incarnation: it says
        so (``table_lost``), or it booted empty where the pool recorded an
        earlier incarnation.  The second is judged here, on the leader's record:
        the follower's own flag waits until it has applied that record, and a
        reply sent before would let the leader rejoin it too early."""
        book = self.book
        return book.table_lost.get(name, False) or (book.empty_boot.get(name, False) and server.incarnation > 0)

    def _in_flight(self, proposed: dict[str, int], name: str) -> bool:
        """A proposal for ``name`` is in the log but not applied yet."""
        return proposed.get(name, 0) > self.applied

    def _caught_up(self, name: str, now: float) -> bool:
        if name == self.name:
            return self.applied >= self.raft.commit_index
        # Caught up, and echoing a recent grant of ours: the link works both ways.
        peer = self.raft.peers.get(name)
        if peer is None or now - peer.last_heard >= self.timing.failure_timeout:
            return False
        return peer.two_way and peer.match_index >= self.raft.commit_index

    def on_report(self, report: LeaseReport | None) -> Entry | None:
        """A lease report from a heartbeat: propose it if it says anything new."""
        if report is None or report.server not in self.pool.servers:
            return None
        reg = self.pool.registry
        done = self._reported_upto(report.server)
        mark = max(reg.watermark.get(report.server, 0), self.book.watermark_proposed.get(report.server, 0))
        last = max((c.seq for c in report.changes), default=0)
        if last <= done and report.watermark <= mark:
            return None  # nothing new, or already in the log and not committed yet
        self.book.report_proposed[report.server] = max(last, done)
        self.book.watermark_proposed[report.server] = max(report.watermark, mark)
        return report

    def _reported_upto(self, server: str) -> int:
        """The last change number of ``server`` the pool has applied or this term's log holds."""
        return max(self.pool.registry.report_seq.get(server, 0), self.book.report_proposed.get(server, 0))

    def _own_report(self, ready: Ready) -> None:
        """Propose this server's own lease changes that this term's log does not
        hold yet.  ``lead`` runs after every step, so a cumulative report (every
        change not yet committed, as a follower sends it) would put each change
        in every entry until the commit: the entries, and the work to persist,
        send and check them, grew with the uncommitted changes at each checkout
        here.  The changes already proposed this term are in earlier entries of
        this leader's log, which commit before, or are dropped with, a later one;
        a new term's book starts empty, so its first report is cumulative again."""
        done = self._reported_upto(self.name)
        report = self.member.report()
        if self.on_report(report) is not None:
            fresh = tuple(c for c in report.changes if c.seq > done)
            self.propose([replace(report, changes=fresh) if len(fresh) < len(report.changes) else report], ready)

    def _transfers(self, now: float, ready: Ready) -> None:
        book = self.book
        for t in self.pool.transfers.values():
            tid = t.transfer_id
            book.intent_seen.setdefault(tid, now)
            if tid in book.completing:
                continue
            if self.pool.servers[t.giver].status != LIVE:
                book.completing.add(tid)
                entries: list[Entry] = [TransferAbort(transfer_id=tid)]
                if t.lease_id is not None:
                    # The giver was fenced mid-handover: re-plan the fail-over at
                    # once (the lease now moves with its seat from a fenced holder).
                    held = (HeldLease(lease_id=t.lease_id, feature=t.feature, version=t.version, seats=t.count),)
                    shadow = self.pool.planning_copy()
                    shadow.apply(entries[0], shadow.index + 1, self.raft.term, self.settings.verify)
                    plan = planner.plan_failover(
                        shadow, self.name, t.taker, t.client_id, t.client_seq, held, self.spare_of, self.new_transfer_id
                    )
                    entries.extend(plan.entries)
                self.propose(entries, ready)
            elif tid in book.confirms:
                book.completing.add(tid)
                self.propose([TransferComplete(transfer_id=tid, given=book.confirms[tid])], ready)
                ready.event(
                    "transfer",
                    transfer_id=tid,
                    giver=t.giver,
                    taker=t.taker or "free pool",
                    given=book.confirms[tid],
                    reason=t.reason,
                )
            elif t.giver == self.name:
                given = self.member.consents.get(tid)
                if given is not None:
                    book.confirms[tid] = given
            elif now - book.asked_at.get(tid, float("-inf")) >= 2 * self.timing.heartbeat_interval:
                book.asked_at[tid] = now
                ready.to(
                    t.giver,
                    TransferRequest(
                        sender=self.name,
                        epoch=self.raft.term,
                        transfer_id=tid,
                        feature=t.feature,
                        version=t.version,
                        count=t.count,
                        lease_id=t.lease_id,
                    ),
                )

    def on_confirm(self, msg: TransferConfirm) -> None:
        if msg.epoch == self.raft.term and msg.transfer_id in self.pool.transfers:
            self.book.confirms[msg.transfer_id] = msg.given

    def _pending(self, ready: Ready) -> None:
        if not self.pool.registry.pending:
            return
        fresh = {lid for lid, idx in self.book.seating.items() if idx > self.applied}
        entries = [
            x
            for x in planner.plan_pending(self.pool, self.name, self.spare_of, self.new_transfer_id)
            if getattr(x, "lease_id", None) not in fresh
        ]
        index = self.propose(entries, ready)
        for x in entries:
            self.book.seating[getattr(x, "lease_id", "")] = index

    def _rebalance(self, now: float, ready: Ready) -> None:
        book = self.book
        for name in self.pool.servers:
            for key, table in self.pool.features.items():
                use = (self.pool.registry.in_use(name, key), table.allocated(name))
                if book.last_use.get((name, key)) != use or use[1] <= table.targets.get(name, 0):
                    book.last_use[(name, key)] = use
                    book.last_busy[(name, key)] = now
        if self.applied < book.rebalance_index or any(t.reason == "rebalance" for t in self.pool.transfers.values()):
            return

        def idle(server: str, key: FeatureKey) -> bool:
            return now - book.last_busy.get((server, key), now) >= self.settings.rebalance_idle

        entries = planner.plan_rebalance(self.pool, idle, self.settings.threshold, self.spare_of, self.new_transfer_id)
        if entries:
            book.rebalance_index = self.propose(entries, ready)
            ready.event("rebalance", entries=len(entries))

    # ---- requests from servers --------------------------------------------------------

    def on_borrow(self, msg: BorrowRequest, now: float, ready: Ready) -> None:
        if not self.raft.leader_active(now) or msg.sender not in self.pool.servers:
            return
        self.reset_book()
        key = (msg.feature, msg.version)
        if self.book.borrowing.get((msg.sender, key), 0) > self.applied:
            return  # the previous borrow's entries are not applied yet
        entries = planner.plan_borrow(
            self.pool, self.name, msg.sender, key, msg.count, self.spare_of, self.new_transfer_id
        )
        if not entries:
            # No seat anywhere now.  "Exhausted" tells the asker to refuse once
            # it has applied this index; but a seat of ``key`` on its way back
            # (released here, or in a report appended and not yet committed)
            # comes free at the leader or its reporter, not at the asker, so
            # then the answer is "none yet" and the asker asks again in 2h
            # (seed 3526: NO_SEATS while the leader's released seat was free).
            reply = BorrowReply(
                sender=self.name,
                epoch=self.raft.term,
                feature=msg.feature,
                version=msg.version,
                request_no=msg.request_no,
                granted=0,
                index=self.raft.log.last_index,
                exhausted=not self.seat_returning(key),
            )
            if msg.sender == self.name:
                self.node.on_borrow_reply(reply, now, ready)
            else:
                ready.to(msg.sender, reply)
            return
        self.book.borrowing[(msg.sender, key)] = self.propose(entries, ready)
        ready.event(
            "borrow",
            server=msg.sender,
            feature=msg.feature,
            version=msg.version,
            count=msg.count,
            sources=[type(x).__name__ for x in entries],
        )

    def on_failover_forward(self, msg: FailoverForward, now: float, ready: Ready) -> None:
        if not self.raft.leader_active(now) or msg.sender not in self.pool.servers:
            return
        self.reset_book()
        moving = {t.lease_id for t in self.pool.transfers.values() if t.lease_id}
        fresh = {lid for lid, idx in self.book.seating.items() if idx > self.applied}
        killing = {lid for lid, idx in self.book.killing.items() if idx > self.applied}
        refused = tuple(x.lease_id for x in msg.leases if x.lease_id in killing)
        leases = tuple(
            x for x in msg.leases if x.lease_id not in moving and x.lease_id not in fresh and x.lease_id not in killing
        )
        plan = planner.plan_failover(
            self.pool, self.name, msg.sender, msg.client_id, msg.client_seq, leases, self.spare_of, self.new_transfer_id
        )
        index = self.propose(plan.entries, ready)
        for lid in plan.seated + plan.moving + plan.pending:
            self.book.seating[lid] = index
        outcome = FailoverOutcome(
            sender=self.name,
            epoch=self.raft.term,
            client_id=msg.client_id,
            client_seq=msg.client_seq,
            pending=tuple(plan.pending),
            refused=tuple(plan.refused) + refused,
        )
        ready.event(
            "failover",
            server=msg.sender,
            client_id=msg.client_id,
            seated=len(plan.seated),
            moving=len(plan.moving),
            pending=len(plan.pending),
            refused=len(plan.refused),
        )
        if msg.sender == self.name:
            self.node.on_failover_outcome(outcome, now, ready)
        else:
            ready.to(msg.sender, outcome)

    def on_release_forward(self, msg: ReleaseForward, now: float, ready: Ready) -> None:
        """A client released a lease at a server that does not hold it: kill the id."""
        if not self.raft.leader_active(now) or self.pool.registry.is_killed(msg.lease_id):
            return  # the sender resends until the id is dead or revoked
        self.reset_book()
        if self.book.killing.get(msg.lease_id, 0) <= self.applied:
            self.book.killing[msg.lease_id] = self.propose([ForceRelease(lease_id=msg.lease_id)], ready)

    # ---- the queue of waiting checkouts (docs/licenses.md, "Queued checkouts") --------

    def on_queue_join(self, msg: QueueJoinRequest, now: float, ready: Ready) -> None:
        """Queue a waiter (or move it to its new server, keeping its place)."""
        if not self.raft.leader_active(now) or msg.sender not in self.pool.servers:
            return
        self.reset_book()
        key = (msg.feature, msg.version)
        joining = self.book.queue_joining.get(msg.waiter_id)
        if joining is not None and joining[1] > self.applied:
            return  # its join is in the log already; the sender re-sends if it does not commit
        found = self.pool.waiter(key, msg.waiter_id)
        if found is not None and found[1].server == msg.sender:
            return
        if found is None:
            in_flight = sum(1 for k, i in self.book.queue_joining.values() if k == key and i > self.applied)
            if len(self.pool.queue(key)) + in_flight >= self.settings.queue_limit:
                full = QueueFull(
                    sender=self.name, epoch=self.raft.term, waiter_id=msg.waiter_id, limit=self.settings.queue_limit
                )
                if msg.sender == self.name:
                    self.node.on_queue_full(full, now, ready)
                else:
                    ready.to(msg.sender, full)
                return
        entry = QueueJoin(
            waiter_id=msg.waiter_id,
            client_id=msg.client_id,
            feature=msg.feature,
            version=msg.version,
            server=msg.sender,
            seats=msg.seats,
            timeout=msg.timeout,
        )
        self.book.queue_joining[msg.waiter_id] = (key, self.propose([entry], ready))

    def on_queue_leave(self, msg: QueueLeaveRequest, now: float, ready: Ready) -> None:
        """Take a waiter out of the queue, as its server asks."""
        if not self.raft.leader_active(now) or msg.sender not in self.pool.servers:
            return
        self.reset_book()
        found = self.pool.waiter((msg.feature, msg.version), msg.waiter_id)
        if found is None or found[1].server != msg.sender:
            return
        self._propose_leave(msg.waiter_id, (msg.feature, msg.version), msg.reason, msg.sender, ready)

    def _propose_leave(self, wid: str, key: FeatureKey, reason: str, server: str, ready: Ready) -> None:
        if self.book.queue_leaving.get(wid, 0) > self.applied:
            return
        leave = QueueLeave(waiter_id=wid, feature=key[0], version=key[1], reason=reason, server=server)
        self.book.queue_leaving[wid] = self.propose([leave], ready)
        ready.event("queue_leave", waiter=wid, feature=key[0], version=key[1], reason=reason)

    def _queues(self, now: float, ready: Ready) -> None:
        """Each queue's backstops, and a seat for its oldest waiter: a waiter
        whose server stayed down past ``2f`` never re-registered, one past its
        timeout (plus ``f``, timed from when this leader first saw it) was
        left by its server; the head's server gets a seat by the borrow and
        transfer machinery when it has none spare."""
        f = self.timing.failure_timeout
        for key, queue in list(self.pool.queues.items()):
            for w in queue:
                seen = self.book.queue_seen.setdefault(w.waiter_id, now)
                live = self.pool.servers[w.server].status == LIVE
                if live:
                    self.book.queue_server_lost.pop(w.waiter_id, None)
                lost = not live and now - self.book.queue_server_lost.setdefault(w.waiter_id, now) >= 2 * f
                if lost:
                    self._propose_leave(w.waiter_id, key, "server_lost", w.server, ready)
                elif w.timeout > 0 and now - seen >= w.timeout + f:
                    self._propose_leave(w.waiter_id, key, "timeout", "", ready)
            self._seat_for_head(key, queue[0], ready)

    def _seat_for_head(self, key: FeatureKey, head: Waiter, ready: Ready) -> None:
        server = head.server
        if self.pool.servers[server].status != LIVE or self.spare_of(server, key) >= head.seats:
            return
        if self.book.borrowing.get((server, key), 0) > self.applied:
            return
        entries = planner.plan_borrow(
            self.pool, self.name, server, key, head.seats, self.spare_of, self.new_transfer_id
        )
        if entries:
            self.book.borrowing[(server, key)] = self.propose(entries, ready)
            ready.event("queue_seat", server=server, feature=key[0], version=key[1], waiter=head.waiter_id)

    # ---- admin changes (claims 7-12) ---------------------------------------------------

    def on_admin(self, msg: AdminRequest, via: str, now: float, ready: Ready) -> None:
        """Validate and propose an admin change; the reply goes out on commit."""
        if not self.raft.leader_active(now):
            self.admin_reply(
                via, msg.request_id, False, "no active leader yet (election in progress); retry", ready=ready
            )
            return
        self.reset_book()
        auth, refused = self.node.admin_problem(msg, "leader", ready)
        if refused:
            self.admin_reply(via, msg.request_id, False, refused, ready=ready)
            return
        entry, problem, present = self._admin_entry(msg)
        if entry is None:
            self.admin_reply(via, msg.request_id, present, problem, already_present=present, ready=ready)
            return
        # The nonce goes first in the same append: the change never commits without it.
        nonce = [] if auth is None else [AdminNonce(nonce=auth.nonce, stamp=float(auth.timestamp))]
        index = self.propose([*nonce, entry], ready)
        self.book.admin[index] = (via, msg.request_id)

    def _admin_entry(self, msg: AdminRequest) -> tuple[Entry | None, str, bool]:
        """The entry an admin change proposes, or ``None`` with why not; the flag
        says the change is already in the pool."""
        try:
            if isinstance(msg, AddLicenseCode):
                return self._license_entry(msg)
            if isinstance(msg, AddAllocations):
                return self._addon_entry(msg)
            if isinstance(msg, ChangeDistributionCriteria):
                return self._criteria_entry(msg)
        except codes.CodeError as err:
            return None, str(err), False
        state = self.pool
        if isinstance(msg, SetIdleTimeout):
            return self._idle_entry(msg)
        if isinstance(msg, ForceReleaseLease):
            if state.registry.is_dead(msg.lease_id):
                return None, f"lease {msg.lease_id} is not live", False
            return ForceRelease(lease_id=msg.lease_id), "", False
        if msg.server not in state.servers:
            return None, f"no server named {msg.server!r} in the pool", False
        if msg.server == self.name:
            return None, f"{msg.server} is the leader and running; stop it first", False
        return ServerDown(server=msg.server), "", False

    def _license_entry(self, msg: AddLicenseCode) -> tuple[Entry | None, str, bool]:
        state = self.pool
        code = self.settings.verify(msg.code)
        if not isinstance(code, codes.LicenseCode):
            return None, "that is an add-on, not a license code (use allocations add)", False
        if code.expires < self.settings.today():
            return None, f"license code {code.serial} expired on {code.expires}", False
        if code.serial in state.licenses:
            return None, f"license code {code.serial} is already in the pool", True
        codes.check_criteria(code.criteria, code.count, list(state.servers))
        table = state.features.get(code.key)
        if table is not None and table.majority != code.majority:
            return None, (f"{code.feature} {code.version} is already in the pool with the other majority rule"), False
        if table is not None and table.exact != code.exact_version:
            return (
                None,
                (
                    f"{code.feature} {code.version} is already in the pool with "
                    f"version_match {'exact' if table.exact else 'range'}"
                ),
                False,
            )
        if table is not None and (table.weight, table.linger) != (code.weight, code.linger):
            return (
                None,
                f"{code.feature} {code.version} is already in the pool with weight {table.weight}, linger "
                f"{table.linger:g} s",
                False,
            )
        return AddLicense(code=msg.code), "", False

    def _addon_entry(self, msg: AddAllocations) -> tuple[Entry | None, str, bool]:
        state = self.pool
        addon = self.settings.verify(msg.addon)
        if not isinstance(addon, codes.AddOn):
            return None, "that is a license code, not an add-on (use license add)", False
        if addon.serial in state.addons:
            return None, f"add-on {addon.serial} is already in the pool", True
        if addon.of_serial not in state.licenses:
            return None, (f"add-on {addon.serial} extends serial {addon.of_serial}, which is not in the pool"), False
        return AddAddon(code=msg.addon), "", False

    def _criteria_entry(self, msg: ChangeDistributionCriteria) -> tuple[Entry | None, str, bool]:
        table = self.pool.features.get((msg.feature, msg.version))
        if table is None:
            return None, f"no license for {msg.feature} {msg.version} in the pool", False
        pairs = codes.parse_criteria(msg.criteria)
        codes.check_criteria(pairs, table.total, list(self.pool.servers))
        return SetCriteria(feature=msg.feature, version=msg.version, targets=pairs), "", False

    def _idle_entry(self, msg: SetIdleTimeout) -> tuple[Entry | None, str, bool]:
        if (msg.feature, msg.version) not in self.pool.features:
            return None, f"no license for {msg.feature} {msg.version} in the pool", False
        limit = msg.idle_timeout
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 <= limit < float("inf"):
            return None, f"idle_timeout must be a number of seconds >= 0, got {limit!r}", False
        return SetIdlePolicy(feature=msg.feature, version=msg.version, idle_timeout=float(limit)), "", False

    def admin_reply(
        self,
        via: str,
        request_id: str,
        ok: bool,
        error: str = "",
        *,
        already_present: bool = False,
        index: int = 0,
        ready: Ready,
    ) -> None:
        reply = AdminReply(
            sender=self.name,
            epoch=self.raft.term,
            request_id=request_id,
            ok=ok,
            already_present=already_present,
            error=error,
            index=index,
        )
        if via == self.name:
            self.node.relay_admin_reply(reply, ready)
        else:
            ready.to(via, reply)

    # ---- what its server hands the leader -----------------------------------------------

    def on_sync_reply(self, msg: SyncReply, now: float, ready: Ready) -> None:
        """A follower's reply in this epoch (Raft has taken its part already)."""
        self.reset_book()
        self.book.incarnations[msg.sender] = msg.incarnation
        self.book.table_lost[msg.sender] = msg.table_lost
        self.book.empty_boot[msg.sender] = msg.empty_boot
        if self.raft.leader_active(now) and self.pool.servers[msg.sender].incarnation == msg.incarnation:
            # Check the incarnation first: on_report books the report as proposed,
            # and a report booked but never proposed is never proposed again
            # (seeds 4712, 6246: a release made while fenced leaked its seat).
            entry = self.on_report(msg.report)
            if entry is not None:
                self.propose([entry], ready)

    def consented(self, transfer_id: str, given: int) -> None:
        """The leader's own server consented to a transfer it gives."""
        self.book.confirms[transfer_id] = given

    def applied_entry(self, item: LogEntry, ok: bool, note: str, now: float, ready: Ready) -> None:
        """An entry was applied while this server leads: the bookkeeping it ends."""
        entry = item.entry
        if isinstance(entry, Rejoin) and ok:
            self.book.live_since[entry.server] = now
            self.book.fenced_seen.pop(entry.server, None)  # a later fence starts a new clock
        self.book.seating = {lid: i for lid, i in self.book.seating.items() if i > item.index}
        waiting = self.book.admin.pop(item.index, None)
        if waiting is not None:
            via, request_id = waiting
            self.admin_reply(via, request_id, ok, "" if ok else note, index=item.index, ready=ready)
