"""The leader's duties: everything it proposes, and the replies it owes.

Timers only *propose* entries; what they decide happens when the entry commits
(DESIGN.md 2b item 1).  The leader proposes only while it may act: past its
new-leader wait and inside a majority-acknowledged lease.

* fencing: a live server whose serving lease has certainly expired (grantor
  side) is fenced; ``Reclaim`` follows ``T(1+rho)`` after the leader saw the
  fence committed, unless it rejoined first; ``Rejoin`` once a server that
  restarted or was fenced has applied the current log;
* lease reports, appended as they arrive in heartbeats;
* transfers: the giver's consent completes them; a giver that fell out of the
  pool aborts them;
* borrows (claims 1, 3, 5), fail-over updates (claims 13-15), pending updates,
  idle rebalancing (claim 32) and the admin changes (claims 7-12).
"""

from __future__ import annotations

from actors.core import codes, planner
from actors.core.effects import ClientRef, Ready
from actors.core.nodebase import LeaderBook, NodeBase
from actors.core.pool import DOWN, FENCED, LIVE, PoolState
from actors.core.table import FeatureKey
from actors.protocol import entries as e
from actors.protocol import pool as p
from actors.protocol.client import HeldLease

__all__ = ["LeaderDuties"]

AdminRequest = (
    p.AddLicenseCode | p.AddAllocations | p.ChangeDistributionCriteria | p.ForceReleaseLease | p.DeclareServerDown
)


class LeaderDuties(NodeBase):
    # ---- helpers -------------------------------------------------------------------

    def spare_of(self, server: str, key: FeatureKey) -> int:
        """Exact for the leader itself; as reported for the others."""
        if server == self.name:
            return self.member.spare(key)
        table = self.pool.features.get(key)
        if table is None:
            return 0
        return table.allocated(server) - self.pool.registry.in_use(server, key)

    def new_transfer_id(self) -> str:
        self.raft.grant_seq += 1
        return f"{self.raft.term}.{self.raft.grant_seq}"

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
        if now >= self.book.next_rebalance:
            self.book.next_rebalance = now + 2 * self.timing.heartbeat_interval
            self._rebalance(now, ready)

    def _membership(self, now: float, ready: Ready) -> None:
        book, pool = self.book, self.pool
        for name, server in pool.servers.items():
            inc = self.raft.incarnation if name == self.name else book.incarnations.get(name, 0)
            if self._in_flight(book.fence_proposed, name):
                continue
            if server.status == LIVE and name != self.name and self.fence_due(name, now):
                book.fence_proposed[name] = self.propose([e.Fence(name, server.incarnation)], ready)
                continue
            if server.status == LIVE:
                # The reclaim clock starts at each fence this leader sees, never earlier.
                book.fenced_seen.pop(name, None)
            elif name != self.name:
                self.raft.restart_grants(name, now)
            if server.status == FENCED:
                seen = book.fenced_seen.setdefault(name, now)
                if now >= seen + self.reclaim_delay() and not self._in_flight(book.reclaim_proposed, name):
                    book.reclaim_proposed[name] = self.propose([e.Reclaim(name)], ready)
            rejoin = (server.status != LIVE or inc > server.incarnation) and self._caught_up(name, now)
            if rejoin and not self._in_flight(book.rejoin_proposed, name):
                # DESIGN 2b item 5: only a *committed* Rejoin stops the Reclaim; one
                # proposed here may still be followed by a Reclaim, which the state
                # machine then ignores (PoolState._reclaim).
                book.rejoin_proposed[name] = self.propose([e.Rejoin(name, inc)], ready)

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

    def on_report(self, report: e.LeaseReport | None) -> e.Entry | None:
        """A lease report from a heartbeat: propose it if it says anything new."""
        if report is None or report.server not in self.pool.servers:
            return None
        reg = self.pool.registry
        done = max(reg.report_seq.get(report.server, 0), self.book.report_proposed.get(report.server, 0))
        mark = max(reg.watermark.get(report.server, 0), self.book.watermark_proposed.get(report.server, 0))
        last = max((c.seq for c in report.changes), default=0)
        if last <= done and report.watermark <= mark:
            return None  # nothing new, or already in the log and not committed yet
        self.book.report_proposed[report.server] = max(last, done)
        self.book.watermark_proposed[report.server] = max(report.watermark, mark)
        return report

    def _own_report(self, ready: Ready) -> None:
        entry = self.on_report(self.member.report())
        if entry is not None:
            self.propose([entry], ready)

    def _transfers(self, now: float, ready: Ready) -> None:
        book = self.book
        for t in self.pool.transfers.values():
            tid = t.transfer_id
            book.intent_seen.setdefault(tid, now)
            if tid in book.completing:
                continue
            if self.pool.servers[t.giver].status != LIVE:
                book.completing.add(tid)
                entries: list[e.Entry] = [e.TransferAbort(tid)]
                if t.lease_id is not None:
                    # The giver was fenced mid-handover: re-plan the fail-over at
                    # once (the lease now moves with its seat from a fenced holder).
                    held = (HeldLease(t.lease_id, t.feature, t.version),)
                    shadow = PoolState.from_plain(self.pool.to_plain())
                    shadow.apply(entries[0], shadow.index + 1, self.raft.term, self.settings.verify)
                    plan = planner.plan_failover(shadow, self.name, t.taker, t.client_id, t.client_seq, held,
                                                 self.spare_of, self.new_transfer_id)
                    entries.extend(plan.entries)
                self.propose(entries, ready)
            elif tid in book.confirms:
                book.completing.add(tid)
                self.propose([e.TransferComplete(tid, book.confirms[tid])], ready)
                ready.event("transfer", transfer_id=tid, giver=t.giver, taker=t.taker or "free pool",
                            given=book.confirms[tid], reason=t.reason)
            elif t.giver == self.name:
                given = self.member.consents.get(tid)
                if given is not None:
                    book.confirms[tid] = given
            elif now - book.asked_at.get(tid, float("-inf")) >= 2 * self.timing.heartbeat_interval:
                book.asked_at[tid] = now
                ready.to(t.giver, p.TransferRequest(self.name, self.raft.term, tid, t.feature, t.version,
                                                   t.count, t.lease_id))

    def on_confirm(self, msg: p.TransferConfirm) -> None:
        if msg.epoch == self.raft.term and msg.transfer_id in self.pool.transfers:
            self.book.confirms[msg.transfer_id] = msg.given

    def _pending(self, ready: Ready) -> None:
        if not self.pool.registry.pending:
            return
        fresh = {lid for lid, idx in self.book.seating.items() if idx > self.applied}
        entries = [
            x for x in planner.plan_pending(self.pool, self.name, self.spare_of, self.new_transfer_id)
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

        entries = planner.plan_rebalance(self.pool, idle, self.settings.threshold, self.spare_of,
                                         self.new_transfer_id)
        if entries:
            book.rebalance_index = self.propose(entries, ready)
            ready.event("rebalance", entries=len(entries))

    # ---- requests from servers --------------------------------------------------------

    def on_borrow(self, msg: p.BorrowRequest, now: float, ready: Ready) -> None:
        if not self.raft.leader_active(now) or msg.sender not in self.pool.servers:
            return
        self.reset_book()
        key = (msg.feature, msg.version)
        if self.book.borrowing.get((msg.sender, key), 0) > self.applied:
            return  # the previous borrow's entries are not applied yet
        entries = planner.plan_borrow(self.pool, self.name, msg.sender, key, msg.count, self.spare_of,
                                      self.new_transfer_id)
        if not entries:
            reply = p.BorrowReply(self.name, self.raft.term, msg.feature, msg.version, msg.request_no, 0,
                                  index=self.raft.log.last_index, exhausted=True)
            if msg.sender == self.name:
                self.on_borrow_reply(reply, now, ready)
            else:
                ready.to(msg.sender, reply)
            return
        self.book.borrowing[(msg.sender, key)] = self.propose(entries, ready)
        ready.event("borrow", server=msg.sender, feature=msg.feature, version=msg.version,
                    count=msg.count, sources=[type(x).__name__ for x in entries])

    def on_failover_forward(self, msg: p.FailoverForward, now: float, ready: Ready) -> None:
        if not self.raft.leader_active(now) or msg.sender not in self.pool.servers:
            return
        self.reset_book()
        moving = {t.lease_id for t in self.pool.transfers.values() if t.lease_id}
        fresh = {lid for lid, idx in self.book.seating.items() if idx > self.applied}
        killing = {lid for lid, idx in self.book.killing.items() if idx > self.applied}
        refused = tuple(x.lease_id for x in msg.leases if x.lease_id in killing)
        leases = tuple(x for x in msg.leases
                       if x.lease_id not in moving and x.lease_id not in fresh and x.lease_id not in killing)
        plan = planner.plan_failover(self.pool, self.name, msg.sender, msg.client_id, msg.client_seq, leases,
                                     self.spare_of, self.new_transfer_id)
        index = self.propose(plan.entries, ready)
        for lid in plan.seated + plan.moving + plan.pending:
            self.book.seating[lid] = index
        outcome = p.FailoverOutcome(self.name, self.raft.term, msg.client_id, msg.client_seq,
                                    pending=tuple(plan.pending), refused=tuple(plan.refused) + refused)
        ready.event("failover", server=msg.sender, client_id=msg.client_id, seated=len(plan.seated),
                    moving=len(plan.moving), pending=len(plan.pending), refused=len(plan.refused))
        if msg.sender == self.name:
            self.on_failover_outcome(outcome, now, ready)
        else:
            ready.to(msg.sender, outcome)

    def on_release_forward(self, msg: p.ReleaseForward, now: float, ready: Ready) -> None:
        """A client released a lease at a server that does not hold it: kill the id."""
        if not self.raft.leader_active(now) or self.pool.registry.is_dead(msg.lease_id):
            return  # the sender resends until the id is dead
        self.reset_book()
        if self.book.killing.get(msg.lease_id, 0) <= self.applied:
            self.book.killing[msg.lease_id] = self.propose([e.ForceRelease(msg.lease_id)], ready)

    # ---- admin changes (claims 7-12) ---------------------------------------------------

    def on_admin(self, msg: AdminRequest, via: str, now: float, ready: Ready) -> None:
        """Validate and propose an admin change; the reply goes out on commit."""
        if not self.raft.leader_active(now):
            self.admin_reply(via, msg.request_id, False, "no active leader yet (election in progress); retry",
                             ready=ready)
            return
        self.reset_book()
        auth, refused = self.admin_problem(msg, "leader", ready)
        if refused:
            self.admin_reply(via, msg.request_id, False, refused, ready=ready)
            return
        entry, problem, present = self._admin_entry(msg)
        if entry is None:
            self.admin_reply(via, msg.request_id, present, problem, already_present=present, ready=ready)
            return
        # The nonce goes first in the same append: the change never commits without it.
        nonce = [] if auth is None else [e.AdminNonce(auth.nonce, float(auth.timestamp))]
        index = self.propose([*nonce, entry], ready)
        self.book.admin[index] = (via, msg.request_id)

    def _admin_entry(self, msg: AdminRequest) -> tuple[e.Entry | None, str, bool]:
        pool = self.pool
        try:
            if isinstance(msg, p.AddLicenseCode):
                code = self.settings.verify(msg.code)
                if not isinstance(code, codes.LicenseCode):
                    return None, "that is an add-on, not a license code (use allocations add)", False
                if code.expires < self.settings.today():
                    return None, f"license code {code.serial} expired on {code.expires}", False
                if code.serial in pool.licenses:
                    return None, f"license code {code.serial} is already in the pool", True
                codes.check_criteria(code.criteria, code.count, list(pool.servers))
                table = pool.features.get(code.key)
                if table is not None and table.majority != code.majority:
                    return None, (f"{code.feature} {code.version} is already in the pool "
                                  "with the other majority rule"), False
                if table is not None and table.exact != code.exact_version:
                    return None, (f"{code.feature} {code.version} is already in the pool with "
                                  f"version_match {'exact' if table.exact else 'range'}"), False
                return e.AddLicense(msg.code), "", False
            if isinstance(msg, p.AddAllocations):
                addon = self.settings.verify(msg.addon)
                if not isinstance(addon, codes.AddOn):
                    return None, "that is a license code, not an add-on (use license add)", False
                if addon.serial in pool.addons:
                    return None, f"add-on {addon.serial} is already in the pool", True
                if addon.of_serial not in pool.licenses:
                    return None, (f"add-on {addon.serial} extends serial {addon.of_serial}, "
                                  "which is not in the pool"), False
                return e.AddAddon(msg.addon), "", False
            if isinstance(msg, p.ChangeDistributionCriteria):
                table = pool.features.get((msg.feature, msg.version))
                if table is None:
                    return None, f"no license for {msg.feature} {msg.version} in the pool", False
                pairs = codes.parse_criteria(msg.criteria)
                codes.check_criteria(pairs, table.total, list(pool.servers))
                return e.SetCriteria(msg.feature, msg.version, pairs), "", False
        except codes.CodeError as err:
            return None, str(err), False
        if isinstance(msg, p.ForceReleaseLease):
            if pool.registry.is_dead(msg.lease_id):
                return None, f"lease {msg.lease_id} is not live", False
            return e.ForceRelease(msg.lease_id), "", False
        if msg.server not in pool.servers:
            return None, f"no server named {msg.server!r} in the pool", False
        if msg.server == self.name:
            return None, f"{msg.server} is the leader and running; stop it first", False
        return e.ServerDown(msg.server), "", False

    def admin_reply(self, via: str, request_id: str, ok: bool, error: str = "", *, already_present: bool = False,
                    index: int = 0, ready: Ready) -> None:
        reply = p.AdminReply(self.name, self.raft.term, request_id, ok, already_present, error, index)
        if via == self.name:
            self.relay_admin_reply(reply, ready)
        else:
            ready.to(via, reply)

    def relay_admin_reply(self, reply: p.AdminReply, ready: Ready) -> None:
        ref = self.admin_refs.pop(reply.request_id, None)
        if ref is not None:
            ready.to(ref, reply)

    # ---- provided by the client side --------------------------------------------------

    def on_borrow_reply(self, msg: p.BorrowReply, now: float, ready: Ready) -> None:
        raise NotImplementedError

    def on_failover_outcome(self, msg: p.FailoverOutcome, now: float, ready: Ready) -> None:
        raise NotImplementedError

    def admin_from(self, ref: ClientRef, msg: AdminRequest, now: float, ready: Ready) -> None:
        raise NotImplementedError

    def status_of(self, name: str) -> str:
        server = self.pool.servers.get(name)
        return "unknown" if server is None else ("down" if server.status == DOWN else server.status)
