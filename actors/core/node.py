"""One license server's whole decision logic, as one pure state machine.

API (the Thespian shell and the simulator are written against it):

    node, ready = ServerNode.boot(settings, durable, now)
    ready = node.receive(sender_server_name, msg, now)   # server -> server
    ready = node.from_client(ClientRef, msg, now)        # session/CLI -> server
    ready = node.tick(now)                               # at ready.wake_at
    image = node.snapshot()                              # plain dict, for compaction

``durable`` is ``None`` on a first start, else ``(snapshot_or_None, records)``:
the last ``snapshot()`` written plus every record persisted after it, in order.
``now`` is the server's own monotonic clock in seconds.  The shell persists
``ready.persist`` durably *before* it sends ``ready.send``.

This module owns the log's committed entries: it applies them in order to the
server's ``Member`` (its pool state and lease table), records what it applied,
and hands the consequences to the leader duties (leading.py) and the client
fast path (serving.py).
"""

from __future__ import annotations

from typing import Any

from actors.core.effects import ClientRef, Ready
from actors.core.expiry import feature_expiries
from actors.core.leases import LocalLeases
from actors.core.node_settings import NodeSettings
from actors.core.pool import PoolState
from actors.core.raft import LEADER
from actors.core.records import CommitRecord, HardRecord, InstallRecord, LeaseRecord, LogRecord, Record
from actors.core.serving import ClientSide
from actors.protocol import client as c
from actors.protocol import codec
from actors.protocol import entries as e
from actors.protocol import pool as p
from actors.protocol import raft as r
from actors.protocol.raft import LogEntry

__all__ = ["ServerNode", "NodeSettings", "SNAPSHOT_SCHEMA"]

SNAPSHOT_SCHEMA = 1

_ADMIN = (p.AddLicenseCode, p.AddAllocations, p.ChangeDistributionCriteria, p.ForceReleaseLease,
          p.DeclareServerDown)


class ServerNode(ClientSide):
    # ---- start and restart ------------------------------------------------------------

    @classmethod
    def boot(
        cls, settings: NodeSettings, durable: tuple[dict[str, Any] | None, list[Record]] | None, now: float
    ) -> tuple[ServerNode, Ready]:
        """Start from what was persisted; a restarted server rejoins as a follower
        and serves nothing until ``Rejoin`` of its new incarnation commits."""
        node = cls(settings)
        if durable is not None:
            snapshot, records = durable
            if snapshot is not None:
                node._load_snapshot(snapshot, now)
            for record in records:
                node._replay(record, now)
            node.member.prune_consents()
            node.member.leases.restart(now, node.member.ttl_hold)
        problems = node.member.pool.count_problems(node.verify_cached)
        if problems:
            raise ValueError("the persisted pool state is refused: " + "; ".join(problems)[:500])
        node.raft.incarnation += 1
        node.raft.commit_index = node.applied
        node.raft.election_due = now + node.raft.election_timeout()
        ready = Ready(persist=[node.raft.hard_record()])
        ready.event("boot", incarnation=node.raft.incarnation, epoch=node.raft.term, applied=node.applied)
        ready.wake_at = node.raft.election_due
        return node, ready

    def _load_snapshot(self, snap: dict[str, Any], now: float) -> None:
        raft = self.raft
        raft.term, raft.voted_for, raft.incarnation = snap["hard"]
        log = snap["log"]
        raft.log.snap_index, raft.log.snap_epoch = log["snap_index"], log["snap_epoch"]
        raft.log.entries = [codec.from_plain(x) for x in log["entries"]]
        raft.snapshot_state = log.get("snap_pool", {})
        self.member.pool = PoolState.from_plain(snap["pool"])
        self.member.leases = LocalLeases.from_plain(snap["leases"])
        self.member.consents = dict(snap.get("consents", {}))
        self.applied = snap["applied"]

    def _replay(self, record: Record, now: float) -> None:
        match record:
            case HardRecord(term, voted_for, incarnation):
                self.raft.term, self.raft.voted_for, self.raft.incarnation = term, voted_for, incarnation
            case LogRecord(start, entries):
                self.raft.log.truncate_after(start - 1)
                self.raft.log.entries.extend(x for x in entries if x.index > self.raft.log.snap_index)
            case CommitRecord(index):
                while self.applied < index:
                    item = self.raft.log.entry(self.applied + 1)
                    self.member.pool.apply(item.entry, item.index, item.epoch, self.settings.verify)
                    self.applied = item.index
            case InstallRecord(index, epoch, state):
                # The same reconciliation as when it was installed: the lease
                # records after it (same step, same frame) then find it done.
                self._install(index, epoch, state, now)
            case LeaseRecord(op):
                self.member.replay(op, now)

    def snapshot(self) -> dict[str, Any]:
        """Everything durable, as plain data: replaces every record so far."""
        log = self.raft.log
        return {
            "schema": SNAPSHOT_SCHEMA,
            "hard": (self.raft.term, self.raft.voted_for, self.raft.incarnation),
            "log": {"snap_index": log.snap_index, "snap_epoch": log.snap_epoch,
                    "entries": [codec.to_plain(x) for x in log.entries], "snap_pool": self.raft.snapshot_state},
            "applied": self.applied,
            "pool": self.member.pool.to_plain(),
            "leases": self.member.leases.to_plain(),
            "consents": dict(self.member.consents),
        }

    # ---- inputs ---------------------------------------------------------------------------

    def tick(self, now: float) -> Ready:
        ready = Ready()
        self.raft.tick(now, ready)
        for lease in self.member.leases.expire(now):
            ready.event("expiry", lease_id=lease.lease_id, client_id=lease.client_id, feature=lease.feature)
        for warn in self.expiry_watch.check(feature_expiries(self.pool.features), self.settings.today()):
            ready.event("expiry_warning", feature=warn.feature, version=warn.version, expires=warn.expires,
                        days_left=warn.days_left)
        if self.waiting:
            self.retry_waiting(now, ready)
        return self._finish(now, ready)

    def receive(self, sender: str, msg: Any, now: float) -> Ready:
        """A message from another server of the pool."""
        ready = Ready()
        if isinstance(msg, r.DistributionCriteriaSync):
            self.raft.pending_report = self._report_to_send()
            self.raft.on_sync(msg, now, ready)
        elif isinstance(msg, r.SyncReply):
            self._on_sync_reply(msg, now, ready)
        elif isinstance(msg, r.VoteRequest):
            self.raft.on_vote_request(msg, now, ready)
        elif isinstance(msg, r.VoteReply):
            self.raft.on_vote_reply(msg, now, ready)
        elif isinstance(msg, r.InstallSnapshot):
            self._on_install_snapshot(msg, now, ready)
        elif getattr(msg, "epoch", self.raft.term) < self.raft.term:
            ready.event("stale_message", sender=sender, message=type(msg).__name__, epoch=msg.epoch)
        elif isinstance(msg, p.BorrowRequest):
            self.on_borrow(msg, now, ready)
        elif isinstance(msg, p.BorrowReply):
            self.on_borrow_reply(msg, now, ready)
        elif isinstance(msg, p.TransferRequest):
            self.on_transfer_request(msg, ready)
        elif isinstance(msg, p.TransferConfirm):
            self.on_confirm(msg)
        elif isinstance(msg, p.FailoverForward):
            self.on_failover_forward(msg, now, ready)
        elif isinstance(msg, p.ReleaseForward):
            self.on_release_forward(msg, now, ready)
        elif isinstance(msg, p.FailoverOutcome):
            self.on_failover_outcome(msg, now, ready)
        elif isinstance(msg, _ADMIN):
            self.on_admin(msg, msg.sender, now, ready)
        elif isinstance(msg, p.AdminReply):
            self.relay_admin_reply(msg, ready)
        else:
            ready.event("unknown_message", sender=sender, message=type(msg).__name__)
        return self._finish(now, ready)

    def from_client(self, ref: ClientRef, msg: Any, now: float) -> Ready:
        """A message from a client session or an admin command."""
        ready = Ready()
        if isinstance(msg, c.CheckoutRequest):
            self.on_checkout(ref, msg, now, ready)
        elif isinstance(msg, c.SessionHeartbeat):
            self.on_heartbeat(ref, msg, now, ready)
        elif isinstance(msg, c.ReleaseRequest):
            self.on_release(ref, msg, now, ready)
        elif isinstance(msg, c.FailoverUpdate):
            self.on_failover_update(ref, msg, now, ready)
        elif isinstance(msg, _ADMIN):
            self.admin_from(ref, msg, now, ready)
        else:
            ready.event("unknown_message", sender=ref.session_id, message=type(msg).__name__)
        return self._finish(now, ready)

    # ---- the log ----------------------------------------------------------------------

    def _report_to_send(self) -> e.LeaseReport | None:
        report = self.member.report()
        return report if report.changes or report.watermark > self.pool.registry.watermark.get(self.name, 0) else None

    def _on_sync_reply(self, msg: r.SyncReply, now: float, ready: Ready) -> None:
        self.raft.on_sync_reply(msg, now, ready)
        if self.raft.role != LEADER or msg.epoch != self.raft.term:
            return
        if msg.success:
            self.raft.catch_up(msg.sender, now, ready)
        self.reset_book()
        self.book.incarnations[msg.sender] = msg.incarnation
        if self.raft.leader_active(now) and self.pool.servers[msg.sender].incarnation == msg.incarnation:
            # Check the incarnation first: on_report books the report as proposed,
            # and a report booked but never proposed is never proposed again
            # (seeds 4712, 6246: a release made while fenced leaked its seat).
            entry = self.on_report(msg.report)
            if entry is not None:
                self.propose([entry], ready)

    def _on_install_snapshot(self, msg: r.InstallSnapshot, now: float, ready: Ready) -> None:
        if msg.epoch < self.raft.term:
            return
        self.raft.on_sync(r.DistributionCriteriaSync(msg.sender, msg.epoch, 0, 0, (), 0, msg.round), now, Ready())
        checked = self.checked_snapshot(msg.state) if msg.state else None
        refused = checked[1] if checked is not None else []
        if self.older_table(msg.last_index):
            ready.event("stale_snapshot", index=msg.last_index, applied=self.applied)
        elif refused:
            # Counts come only from signed codes: a snapshot that says otherwise is not installed.
            ready.event("refused_snapshot", sender=msg.sender, index=msg.last_index, problems="; ".join(refused)[:500])
            ready.to(msg.sender, r.SyncReply(self.name, self.raft.term, False, self.applied, msg.round,
                                             self.raft.last_grant_id, 0, self.raft.incarnation,
                                             self.settings.settings_hash))
            return
        elif msg.state:
            ready.persist.append(InstallRecord(msg.last_index, msg.last_epoch, msg.state))
            self._install(msg.last_index, msg.last_epoch, msg.state, now, checked[0] if checked else None, ready)
            for consent in self.member.missing_consents():
                ready.event("consent", transfer_id=consent.transfer_id, given=consent.given)
                ready.to(msg.sender, p.TransferConfirm(self.name, self.raft.term, consent.transfer_id, consent.given))
        ready.to(msg.sender, r.SyncReply(self.name, self.raft.term, True, self.raft.log.last_index, msg.round,
                                         self.raft.last_grant_id, 0, self.raft.incarnation,
                                         self.settings.settings_hash))

    def checked_snapshot(self, state: Any) -> tuple[PoolState | None, list[str]]:
        """A pool state in plain form, decoded, and why it must not be installed:
        it does not decode, or its seats are not exactly what its signed codes
        grant (``PoolState.count_problems``)."""
        try:
            pool = PoolState.from_plain(state)
            problems = pool.count_problems(self.verify_cached)
        except Exception as err:  # any malformed plain data
            return None, [f"malformed pool state ({type(err).__name__})"]
        if list(pool.servers) != list(self.settings.servers):
            problems.append("its servers are not the configured ones")
        return pool, problems

    def verify_cached(self, text: str) -> Any:
        """``settings.verify``, remembered per code text (a signature check is
        pure, and a lagging server may be sent many snapshots)."""
        cache: dict[str, Any] = self.__dict__.setdefault("_verified", {})
        found = cache.get(text)
        if found is None:
            if len(cache) > 10_000:
                cache.clear()
            found = cache[text] = self.settings.verify(text)  # CodeError is not cached: it is raised
        return found

    def older_table(self, index: int) -> bool:
        """The committed table never goes backwards (S4)."""
        return index <= self.applied

    def _install(self, index: int, epoch: int, state: dict[str, Any], now: float, pool: PoolState | None = None,
                 ready: Ready | None = None) -> None:
        self.member.pool = pool if pool is not None else PoolState.from_plain(state)
        self.raft.log.compact_to(index, epoch)
        self.raft.snapshot_state = state
        self.applied = max(self.applied, index)
        self.raft.commit_index = max(self.raft.commit_index, index)
        self.member.prune_consents()
        adopted = self.member.reconcile_installed(now)
        if ready is not None:
            for lease_id in adopted:
                self.lease_arrived(lease_id, ready)  # a fail-over asked here is answered: seated

    def applicable_index(self) -> int:
        """Only committed entries are applied: borrowed seats are used after the commit."""
        return min(self.raft.commit_index, self.raft.log.last_index)

    def _apply_committed(self, now: float, ready: Ready) -> None:
        self._now = now
        target = self.applicable_index()
        if target <= self.applied:
            return
        grew = False
        while self.applied < target:
            item: LogEntry = self.raft.log.entry(self.applied + 1)
            before = self._allocation()
            moving = self.member.pool.transfers.get(getattr(item.entry, "transfer_id", ""))
            applied, consents = self.member.apply(item.entry, item.index, item.epoch, self.settings.verify, now)
            self.applied = item.index
            grew = grew or self._allocation() > before
            self._after_apply(item, applied.ok, applied.note, moving.lease_id if moving else None, ready)
            for consent in consents:
                ready.event("consent", transfer_id=consent.transfer_id, given=consent.given)
                if self.raft.is_leader:
                    self.book.confirms[consent.transfer_id] = consent.given
                else:
                    self.send_leader(p.TransferConfirm(self.name, self.raft.term, consent.transfer_id,
                                                       consent.given), ready)
        ready.persist.append(CommitRecord(self.applied))
        if grew and self.waiting:
            self.retry_waiting(now, ready)
        if len(self.raft.log.entries) > self.settings.compact_every:
            self.raft.log.compact_to(self.applied, self.raft.log.epoch_at(self.applied) or 0)
            self.raft.snapshot_state = self.member.pool.to_plain()

    def _allocation(self) -> int:
        return sum(t.allocated(self.name) for t in self.member.pool.features.values())

    def _after_apply(self, item: LogEntry, ok: bool, note: str, moved: str | None, ready: Ready) -> None:
        entry = item.entry
        if isinstance(entry, e.FailoverSeat):
            moved = entry.lease_id
        if ok and moved is not None and moved in self.member.leases.leases:
            self.lease_arrived(moved, ready)
        if isinstance(entry, e.Rejoin) and ok and entry.server == self.name:
            self._reconcile_on_rejoin()
        if isinstance(entry, e.Rejoin) and ok and self.raft.is_leader:
            self.book.live_since[entry.server] = self._now
            self.book.fenced_seen.pop(entry.server, None)  # a later fence starts a new clock
        if isinstance(entry, (e.Fence, e.Reclaim, e.Rejoin, e.ServerDown)) and ok:
            ready.event(type(entry).__name__.lower(), server=entry.server)
        if self.raft.is_leader:
            self.book.seating = {lid: i for lid, i in self.book.seating.items() if i > item.index}
            waiting = self.book.admin.pop(item.index, None)
            if waiting is not None:
                via, request_id = waiting
                self.admin_reply(via, request_id, ok, "" if ok else note, index=item.index, ready=ready)

    def _reconcile_on_rejoin(self) -> None:
        """DESIGN.md 2b item 6: keep every unexpired lease except those that
        moved or were tombstoned, including leases never reported."""
        self.member.drop_moved_away()

    def _finish(self, now: float, ready: Ready) -> Ready:
        self._apply_committed(now, ready)
        if self.released_here and now >= self.releases_sent_at + self.timing.heartbeat_interval:
            self.releases_sent_at = now
            self.forward_releases(now, ready)
        if self.raft.is_leader:
            self.lead(now, ready)
            self._apply_committed(now, ready)
            if any(isinstance(x, LogRecord) for x in ready.persist):
                self.raft.broadcast(now, ready)
        for op in self.member.drain():
            ready.persist.append(LeaseRecord(op))
        wake = self.raft.next_wake(now)
        expiry = self.member.leases.next_expiry()
        if expiry is not None:
            wake = min(wake, expiry)
        if self.waiting:
            wake = min(wake, now + self.timing.heartbeat_interval)
        if self.raft.is_leader:
            wake = min(wake, now + self.timing.heartbeat_interval)
        ready.wake_at = wake if ready.wake_at is None else min(ready.wake_at, wake)
        return ready
