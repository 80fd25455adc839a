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

``ServerNode`` owns the server's ``Raft`` (the log, votes, leases of time),
its ``Member`` (pool state and lease table) and two role objects: the leader's
duties (``LeaderDuties``, leading.py) and the client fast path (``ClientSide``,
serving.py).  It routes each input to the part it is for, through a table by
message type, applies committed entries in order to the ``Member``, records
what it applied, and hands the consequences to the roles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.core import adminauth
from actors.core.effects import ClientRef, Message, Ready
from actors.core.expiry import ExpiryWatch, feature_expiries
from actors.core.leading import LeaderDuties
from actors.core.leases import LocalLeases
from actors.core.member import Member
from actors.core.node_settings import NodeSettings
from actors.core.pool import DOWN, LIVE, PoolState
from actors.core.raft import LEADER, Raft
from actors.core.records import CommitRecord, HardRecord, InstallRecord, LeaseRecord, LogRecord, Record
from actors.core.serving import ClientSide
from actors.core.table import FeatureTable
from actors.core.timing import Timing
from actors.protocol import client, codec
from actors.protocol.entries import (
    AdminNonce,
    FailoverSeat,
    Fence,
    LeaseReport,
    QueueJoin,
    QueueLeave,
    Reclaim,
    Rejoin,
    ServerDown,
)
from actors.protocol.pool import (
    AddAllocations,
    AddLicenseCode,
    AdminAuth,
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
from actors.protocol.raft import (
    DistributionCriteriaSync,
    InstallSnapshot,
    LogEntry,
    SyncReply,
    VoteReply,
    VoteRequest,
)

__all__ = ["ServerNode", "NodeSettings", "SNAPSHOT_SCHEMA"]

SNAPSHOT_SCHEMA = 1

_ADMIN = (
    AddLicenseCode,
    AddAllocations,
    ChangeDistributionCriteria,
    ForceReleaseLease,
    DeclareServerDown,
    SetIdleTimeout,
)


class ServerNode:
    """One server of the pool: its Raft, its Member and its two roles."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.raft = Raft(
            settings.name, settings.servers, settings.timing, settings.settings_hash, max_batch=settings.max_batch
        )
        self.member = Member.new(
            settings.name,
            settings.servers,
            settings.threshold(settings.name),
            settings.timing.grantor_valid_for(settings.timing.lease_ttl),
        )
        self.applied = 0
        """The index of the last committed entry applied to ``member``."""
        self.rejoined_as = 0
        """The incarnation whose own ``Rejoin`` this node applied and took (``_own_rejoin``)."""
        self.committed_unheard: int | None = None
        """The commit index a leader showed before this incarnation first told
        one (its first ``SyncReply``): no entry up to it is this incarnation's."""
        self._verified: dict[str, Any] = {}
        """``settings.verify``'s result per code text (``verify_cached``)."""
        self.queue_seen: dict[str, float] = {}
        """waiter id -> when this node applied its join (volatile: the age ``status`` and ``sessions`` show)."""
        self.expiry_watch = ExpiryWatch()
        """Which expiry warnings (30, 7, 1 days left) this incarnation gave."""
        self.serving_before = False
        """Whether this server held a serving lease at the end of its last step (``_finish``)."""
        self.leading = LeaderDuties(self)
        self.serving = ClientSide(self, self.leading)
        # The grantor side of serving leases is the leader's: Raft asks it.
        self.raft.may_renew = self.leading.may_renew
        self.raft.may_serve = self.leading.may_serve

    # ---- views ----------------------------------------------------------------------

    @property
    def timing(self) -> Timing:
        return self.settings.timing

    @property
    def pool(self) -> PoolState:
        return self.member.pool

    @property
    def epoch(self) -> int:
        return self.raft.term

    @property
    def role(self) -> str:
        return self.raft.role

    @property
    def leader(self) -> str | None:
        return self.raft.leader

    def rejoined(self) -> bool:
        """The committed log shows this incarnation back in the pool."""
        me = self.member.pool.servers[self.name]
        return me.incarnation == self.raft.incarnation and me.status != DOWN

    def serve_problem(self, table: FeatureTable | None, now: float) -> client.DenyReason | None:
        """Why this server may not serve ``table``'s feature now (None: it may).

        Majority-ruled features need this incarnation rejoined, live and under
        a serving lease.  A ``--no-majority`` feature needs only the rejoin: a
        fenced server keeps serving its own seats of it (leadership.md M11).
        """
        me = self.member.pool.servers[self.name]
        if me.incarnation != self.raft.incarnation:
            return client.DenyReason.NOT_SERVING
        if table is not None and not table.majority and not me.all_reclaimed:
            return None
        if me.status != LIVE:
            return client.DenyReason.NOT_SERVING
        if not self.raft.holds_serving_lease(now):
            return client.DenyReason.NO_MAJORITY
        return None

    # ---- what both roles use -------------------------------------------------------------

    def send_leader(self, msg: Message, ready: Ready) -> bool:
        """Send to the leader, if one is known and it is not us."""
        if self.raft.leader is None or self.raft.leader == self.name:
            return False
        ready.to(self.raft.leader, msg)
        return True

    def admin_problem(self, msg: object, hop: str, ready: Ready) -> tuple[AdminAuth | None, str]:
        """Check an admin change's signature, timestamp and nonce (``adminauth``).

        Returns its ``AdminAuth`` and ``""``, or ``None`` and the one-line
        reason, which is also recorded as an ``admin_refused`` event (an audit
        line).  ``hop`` is ``received`` (from the CLI) or ``leader``.  The
        nonces checked are the committed ones and those in the log not yet
        applied, so a replay is refused also across a leader change.
        """
        key, wall = self.settings.admin_key, self.settings.wall
        if key is None or wall is None:
            return None, ""  # simulator and unit tests: an authenticated operator is modelled
        used = set(self.member.pool.admin_nonces)
        for item in self.raft.log.entries:
            if item.index > self.applied and isinstance(item.entry, AdminNonce):
                used.add(item.entry.nonce)
        try:
            return adminauth.check(key, msg, wall(), used), ""
        except adminauth.AdminRefused as refused:
            ready.event(
                "admin_refused",
                hop=hop,
                message=type(msg).__name__,
                request_id=str(getattr(msg, "request_id", ""))[:64],
                via=str(getattr(msg, "sender", ""))[:64],
                reason=str(refused),
            )
            return None, str(refused)

    # ---- the leader's replies to its own server (``LeaderHost``) --------------------------

    def on_borrow_reply(self, msg: BorrowReply, now: float, ready: Ready) -> None:
        self.serving.on_borrow_reply(msg, now, ready)

    def on_failover_outcome(self, msg: FailoverOutcome, now: float, ready: Ready) -> None:
        self.serving.on_failover_outcome(msg, now, ready)

    def on_queue_full(self, msg: QueueFull, now: float, ready: Ready) -> None:
        self.serving.on_queue_full(msg, now, ready)

    def relay_admin_reply(self, reply: AdminReply, ready: Ready) -> None:
        self.serving.relay_admin_reply(reply, ready)

    # ---- start and restart ------------------------------------------------------------

    @classmethod
    def boot(
        cls, settings: NodeSettings, durable: tuple[dict[str, Any] | None, list[Record]] | None, now: float
    ) -> tuple[ServerNode, Ready]:
        """Start from what was persisted; a restarted server rejoins as a follower
        and serves nothing until ``Rejoin`` of its new incarnation commits.  The
        incarnation is above the persisted one and at least the settings' floor
        (a disk lost with the incarnation on it: docs/leadership.md, "Rejoin")."""
        node = cls(settings)
        node.member.empty_boot = durable is None
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
        node.raft.incarnation = max(node.raft.incarnation + 1, settings.incarnation_floor)
        node.raft.commit_index = node.applied
        node.raft.election_due = now + node.raft.election_timeout()
        # It may have acknowledged a lease round just before it went down, and
        # that is not persisted: no vote for f from its boot (leadership.md M17).
        node.raft.acked_at = now
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
            "log": {
                "snap_index": log.snap_index,
                "snap_epoch": log.snap_epoch,
                "entries": [codec.to_plain(x) for x in log.entries],
                "snap_pool": self.raft.snapshot_state,
            },
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
            ready.event(
                "expiry_warning",
                feature=warn.feature,
                version=warn.version,
                expires=warn.expires,
                days_left=warn.days_left,
            )
        if self.serving.book.waiting or self.serving.book.queue_leaving or self.pool.queues:
            self.serving.retry_waiting(now, ready)
        return self._finish(now, ready)

    def receive(self, sender: str, msg: Any, now: float) -> Ready:
        """A message from another server of the pool.

        Raft's own messages go to Raft, which answers an older epoch itself (so
        its sender learns the newer one).  Any other message of an older epoch
        is dropped before it reaches a role.
        """
        ready = Ready()
        raft_handler = _RAFT_HANDLERS.get(type(msg))
        if raft_handler is not None:
            raft_handler(self, msg, now, ready)
        elif getattr(msg, "epoch", self.raft.term) < self.raft.term:
            ready.event("stale_message", sender=sender, message=type(msg).__name__, epoch=msg.epoch)
        elif (handler := _PEER_HANDLERS.get(type(msg))) is not None:
            handler(self, msg, now, ready)
        else:
            ready.event("unknown_message", sender=sender, message=type(msg).__name__)
        return self._finish(now, ready)

    def from_client(self, ref: ClientRef, msg: Any, now: float) -> Ready:
        """A message from a client session or an admin command."""
        ready = Ready()
        handler = _CLIENT_HANDLERS.get(type(msg))
        if handler is not None:
            handler(self, ref, msg, now, ready)
        else:
            ready.event("unknown_message", sender=ref.session_id, message=type(msg).__name__)
        return self._finish(now, ready)

    def _on_sync(self, msg: DistributionCriteriaSync, now: float, ready: Ready) -> None:
        self.raft.pending_report = self._report_to_send()
        self.raft.table_lost = self.member.table_lost()
        self.raft.empty_boot = self.member.empty_boot
        if self.committed_unheard is None and msg.epoch >= self.raft.term:
            self.committed_unheard = msg.commit_index
        self.raft.on_sync(msg, now, ready)

    # ---- the log ----------------------------------------------------------------------

    def _report_to_send(self) -> LeaseReport | None:
        report = self.member.report()
        return report if report.changes or report.watermark > self.pool.registry.watermark.get(self.name, 0) else None

    def _on_sync_reply(self, msg: SyncReply, now: float, ready: Ready) -> None:
        self.raft.on_sync_reply(msg, now, ready)
        # What the leader decides below reads the applied state: apply what just committed first.
        self._apply_committed(now, ready)
        if self.raft.role != LEADER or msg.epoch != self.raft.term:
            return
        if msg.success:
            self.raft.catch_up(msg.sender, now, ready)
        self.leading.on_sync_reply(msg, now, ready)

    def _on_install_snapshot(self, msg: InstallSnapshot, now: float, ready: Ready) -> None:
        if msg.epoch < self.raft.term:
            return
        self.raft.on_sync(
            DistributionCriteriaSync(
                sender=msg.sender,
                epoch=msg.epoch,
                prev_index=0,
                prev_epoch=0,
                entries=(),
                commit_index=0,
                round=msg.round,
            ),
            now,
            Ready(),
        )
        if self.committed_unheard is None:
            self.committed_unheard = msg.last_index
        checked = self.checked_snapshot(msg.state) if msg.state else None
        refused = checked[1] if checked is not None else []
        if self.older_table(msg.last_index):
            ready.event("stale_snapshot", index=msg.last_index, applied=self.applied)
        elif refused:
            # Counts come only from signed codes: a snapshot that says otherwise is not installed.
            ready.event("refused_snapshot", sender=msg.sender, index=msg.last_index, problems="; ".join(refused)[:500])
            ready.to(
                msg.sender,
                SyncReply(
                    sender=self.name,
                    epoch=self.raft.term,
                    success=False,
                    match_index=self.applied,
                    round=msg.round,
                    echo_grant=self.raft.last_grant_id,
                    renewal=0,
                    incarnation=self.raft.incarnation,
                    settings_hash=self.settings.settings_hash,
                    table_lost=self.member.table_lost(),
                    empty_boot=self.member.empty_boot,
                ),
            )
            return
        elif msg.state:
            ready.persist.append(InstallRecord(msg.last_index, msg.last_epoch, msg.state))
            self._install(msg.last_index, msg.last_epoch, msg.state, now, checked[0] if checked else None, ready)
            for consent in self.member.missing_consents():
                ready.event("consent", transfer_id=consent.transfer_id, given=consent.given)
                ready.to(
                    msg.sender,
                    TransferConfirm(
                        sender=self.name, epoch=self.raft.term, transfer_id=consent.transfer_id, given=consent.given
                    ),
                )
        ready.to(
            msg.sender,
            SyncReply(
                sender=self.name,
                epoch=self.raft.term,
                success=True,
                match_index=self.raft.log.last_index,
                round=msg.round,
                echo_grant=self.raft.last_grant_id,
                renewal=0,
                incarnation=self.raft.incarnation,
                settings_hash=self.settings.settings_hash,
                table_lost=self.member.table_lost(),
                empty_boot=self.member.empty_boot,
            ),
        )

    def checked_snapshot(self, state: Any) -> tuple[PoolState | None, list[str]]:
        """A pool state in plain form, decoded, and why it must not be installed:
        it does not decode, or its seats are not exactly what its signed codes
        grant (``PoolState.count_problems``)."""
        try:
            decoded = PoolState.from_plain(state)
            problems = decoded.count_problems(self.verify_cached)
        except Exception as err:  # any malformed plain data
            return None, [f"malformed pool state ({type(err).__name__})"]
        if list(decoded.servers) != list(self.settings.servers):
            problems.append("its servers are not the configured ones")
        return decoded, problems

    def verify_cached(self, text: str) -> Any:
        """``settings.verify``, remembered per code text (a signature check is
        pure, and a lagging server may be sent many snapshots)."""
        cache = self._verified
        found = cache.get(text)
        if found is None:
            if len(cache) > 10_000:
                cache.clear()
            found = cache[text] = self.settings.verify(text)  # CodeError is not cached: it is raised
        return found

    def older_table(self, index: int) -> bool:
        """The committed table never goes backwards (S4)."""
        return index <= self.applied

    def _install(
        self,
        index: int,
        epoch: int,
        state: dict[str, Any],
        now: float,
        decoded: PoolState | None = None,
        ready: Ready | None = None,
    ) -> None:
        self.member.pool = decoded if decoded is not None else PoolState.from_plain(state)
        self.raft.log.compact_to(index, epoch)
        self.raft.snapshot_state = state
        self.applied = max(self.applied, index)
        self.raft.commit_index = max(self.raft.commit_index, index)
        self.member.prune_consents()
        adopted = self.member.reconcile_installed(now)
        if ready is not None:
            for lease_id in adopted:
                self.serving.lease_arrived(lease_id, ready)  # a fail-over asked here is answered: seated
            self._check_incarnation(ready)

    def applicable_index(self) -> int:
        """Only committed entries are applied: borrowed seats are used after the commit."""
        return min(self.raft.commit_index, self.raft.log.last_index)

    def _apply_committed(self, now: float, ready: Ready) -> None:
        target = self.applicable_index()
        if target <= self.applied:
            return
        grew = False
        while self.applied < target:
            item: LogEntry = self.raft.log.entry(self.applied + 1)
            before = self._allocation()
            moving = self.member.pool.transfers.get(getattr(item.entry, "transfer_id", ""))
            mine = isinstance(item.entry, Rejoin) and item.entry.server == self.name
            lost, prior = (self.member.table_lost(), self.pool.servers[self.name].status) if mine else (False, "")
            applied, consents = self.member.apply(item.entry, item.index, item.epoch, self.settings.verify, now)
            self.applied = item.index
            grew = grew or self._allocation() > before or isinstance(item.entry, (QueueJoin, QueueLeave))
            if mine and applied.ok and isinstance(item.entry, Rejoin):
                self._own_rejoin(item, lost, prior, now, ready)
            self._after_apply(item, applied.ok, applied.note, moving.lease_id if moving else None, now, ready)
            for consent in consents:
                ready.event("consent", transfer_id=consent.transfer_id, given=consent.given)
                if self.raft.is_leader:
                    self.leading.consented(consent.transfer_id, consent.given)
                else:
                    self.send_leader(
                        TransferConfirm(
                            sender=self.name, epoch=self.raft.term, transfer_id=consent.transfer_id, given=consent.given
                        ),
                        ready,
                    )
        ready.persist.append(CommitRecord(self.applied))
        self._check_incarnation(ready)
        if grew and self.serving.book.waiting:
            self.serving.retry_waiting(now, ready)
        if self._log_compaction_due(now):
            self.raft.log.compact_to(self.applied, self.raft.log.epoch_at(self.applied) or 0)
            self.raft.snapshot_state = self.member.pool.to_plain()

    def _log_compaction_due(self, now: float) -> bool:
        """The in-memory log holds more than ``compact_every`` entries and, while
        leading, every peer heard from within ``failure_timeout`` has matched the
        applied index.  A follower behind the compaction point is sent the whole
        table (``InstallSnapshot``: every lease) instead of the entries it lacks;
        compacting while a live follower lagged by one sync sent such an install
        at nearly every compaction of a checkout burst, and each cost every
        process that carried it more than its entries would have (performance.md,
        "The 30-session run loses its leader under load").  Past four times
        ``compact_every`` entries it compacts anyway: a follower that never
        catches up gets the snapshot, as before."""
        kept = len(self.raft.log.entries)
        if kept <= self.settings.compact_every:
            return False
        if kept > 4 * self.settings.compact_every or not self.raft.is_leader:
            return True
        heard = now - self.raft.timing.failure_timeout
        return all(p.match_index >= self.applied for p in self.raft.peers.values() if p.last_heard >= heard)

    def _allocation(self) -> int:
        return sum(t.allocated(self.name) for t in self.member.pool.features.values())

    def _after_apply(self, item: LogEntry, ok: bool, note: str, moved: str | None, now: float, ready: Ready) -> None:
        entry = item.entry
        if isinstance(entry, QueueJoin) and ok:
            self.queue_seen.setdefault(entry.waiter_id, now)
        elif isinstance(entry, QueueLeave) and ok:
            self.queue_seen.pop(entry.waiter_id, None)
        if isinstance(entry, FailoverSeat):
            moved = entry.lease_id
        if ok and moved is not None and moved in self.member.leases.leases:
            self.serving.lease_arrived(moved, ready)
        if isinstance(entry, Rejoin) and ok and entry.server == self.name:
            self._reconcile_on_rejoin()
        if isinstance(entry, (Fence, Reclaim, Rejoin, ServerDown)) and ok:
            ready.event(type(entry).__name__.lower(), server=entry.server)
        if self.raft.is_leader:
            self.leading.applied_entry(item, ok, note, now, ready)

    def _own_rejoin(self, item: LogEntry, lost: bool, prior: str, now: float, ready: Ready) -> None:
        """A ``Rejoin`` of this server.  It is this incarnation's only if it names
        it, the record took it, and it was committed after this incarnation first
        told a leader its number (an earlier life may have had the same number:
        a lost disk, a clock set back).  When the lease table was lost with a
        disk (``lost``) it is taken only once the earlier incarnation was
        reclaimed (``prior`` status down): until then a client may still hold a
        lease of that incarnation on a seat this table shows free.  A Rejoin not
        taken leaves the record at this incarnation's number or above it, so
        ``_check_incarnation`` moves above it, and the leader fences and
        reclaims first (docs/leadership.md, "Rejoin after a lost disk")."""
        entry = item.entry
        assert isinstance(entry, Rejoin)
        if (
            entry.incarnation != self.raft.incarnation
            or self.pool.servers[self.name].incarnation != entry.incarnation
            or item.index <= (self.committed_unheard or 0)
        ):
            return
        if lost and prior != DOWN:
            ready.event("rejoin_refused", incarnation=entry.incarnation, status=prior)
            return
        self.rejoined_as = entry.incarnation
        if lost:
            for lease_id in self.member.recover_lost_table(now):
                self.serving.lease_arrived(lease_id, ready)
        else:
            self.member.empty_boot = False

    def _check_incarnation(self, ready: Ready) -> None:
        """The pool's record of this server names this incarnation or a later
        one, and not through a Rejoin this node took: an earlier life of it had
        that number (a lost disk, a clock set back).  Serving under it would
        mix the two lives' lease ids and reports, so move above the record,
        persisted before anything is sent, and be rejoined as that."""
        recorded = self.pool.servers[self.name].incarnation
        if recorded < self.raft.incarnation or recorded == self.rejoined_as == self.raft.incarnation:
            return
        self.raft.incarnation = recorded + 1
        ready.persist.append(self.raft.hard_record())
        ready.event("incarnation_moved", incarnation=self.raft.incarnation, recorded=recorded)

    def _reconcile_on_rejoin(self) -> None:
        """leadership.md M6: keep every unexpired lease except those that
        moved or were tombstoned, including leases never reported."""
        self.member.drop_moved_away()

    def _finish(self, now: float, ready: Ready) -> Ready:
        self._apply_committed(now, ready)
        client_book = self.serving.book
        serving = self.raft.holds_serving_lease(now)
        if serving and not self.serving_before and client_book.waiting:
            self.serving.serving_again(now, ready)
        self.serving_before = serving
        if client_book.released_here and now >= client_book.releases_sent_at + self.timing.heartbeat_interval:
            client_book.releases_sent_at = now
            self.serving.forward_releases(now, ready)
        if self.raft.is_leader:
            self.leading.lead(now, ready)
            self._apply_committed(now, ready)
            if self.raft.urgent:  # lease reports alone wait for the next heartbeat
                self.raft.broadcast(now, ready)
            self.raft.tell_commit(now, ready)
        for op in self.member.drain():
            ready.persist.append(LeaseRecord(op))
        wake = self.raft.next_wake(now)
        expiry = self.member.leases.next_expiry()
        if expiry is not None:
            wake = min(wake, expiry)
        if client_book.waiting or client_book.queue_leaving or self.pool.queues:
            wake = min(wake, now + self.timing.heartbeat_interval)
        if self.raft.is_leader:
            wake = min(wake, now + self.timing.heartbeat_interval)
        ready.wake_at = wake if ready.wake_at is None else min(ready.wake_at, wake)
        return ready


PeerHandler = Callable[[ServerNode, Any, float, Ready], None]
ClientHandler = Callable[[ServerNode, ClientRef, Any, float, Ready], None]

_RAFT_HANDLERS: dict[type, PeerHandler] = {
    DistributionCriteriaSync: lambda node, msg, now, ready: node._on_sync(msg, now, ready),
    SyncReply: lambda node, msg, now, ready: node._on_sync_reply(msg, now, ready),
    VoteRequest: lambda node, msg, now, ready: node.raft.on_vote_request(msg, now, ready),
    VoteReply: lambda node, msg, now, ready: node.raft.on_vote_reply(msg, now, ready),
    InstallSnapshot: lambda node, msg, now, ready: node._on_install_snapshot(msg, now, ready),
}
"""Raft's messages, by type: Raft checks their epoch itself."""

_PEER_HANDLERS: dict[type, PeerHandler] = {
    BorrowRequest: lambda node, msg, now, ready: node.leading.on_borrow(msg, now, ready),
    BorrowReply: lambda node, msg, now, ready: node.serving.on_borrow_reply(msg, now, ready),
    TransferRequest: lambda node, msg, now, ready: node.serving.on_transfer_request(msg, ready),
    TransferConfirm: lambda node, msg, now, ready: node.leading.on_confirm(msg),
    FailoverForward: lambda node, msg, now, ready: node.leading.on_failover_forward(msg, now, ready),
    ReleaseForward: lambda node, msg, now, ready: node.leading.on_release_forward(msg, now, ready),
    QueueJoinRequest: lambda node, msg, now, ready: node.leading.on_queue_join(msg, now, ready),
    QueueLeaveRequest: lambda node, msg, now, ready: node.leading.on_queue_leave(msg, now, ready),
    QueueFull: lambda node, msg, now, ready: node.serving.on_queue_full(msg, now, ready),
    FailoverOutcome: lambda node, msg, now, ready: node.serving.on_failover_outcome(msg, now, ready),
    **{kind: lambda node, msg, now, ready: node.leading.on_admin(msg, msg.sender, now, ready) for kind in _ADMIN},
    AdminReply: lambda node, msg, now, ready: node.serving.relay_admin_reply(msg, ready),
}
"""The pool's messages between servers, by type (past the stale-epoch check)."""

_CLIENT_HANDLERS: dict[type, ClientHandler] = {
    client.CheckoutRequest: lambda node, ref, msg, now, ready: node.serving.on_checkout(ref, msg, now, ready),
    client.SessionHeartbeat: lambda node, ref, msg, now, ready: node.serving.on_heartbeat(ref, msg, now, ready),
    client.ReleaseRequest: lambda node, ref, msg, now, ready: node.serving.on_release(ref, msg, now, ready),
    client.FailoverUpdate: lambda node, ref, msg, now, ready: node.serving.on_failover_update(ref, msg, now, ready),
    **{kind: lambda node, ref, msg, now, ready: node.serving.admin_from(ref, msg, now, ready) for kind in _ADMIN},
}
"""Messages from client sessions and admin commands, by type."""
