"""The replicated log: Raft's elections, replication and commit rule, plus the
leader lease and the serving lease (leadership.md M1, M3 and M4).

Raft rules kept here, each for a reason docs/leadership.md gives:

* epochs are terms; a vote is a persisted record before its reply is sent
  (the shell persists ``Ready.persist`` before it sends);
* a voter grants only a candidate whose log is at least as up to date;
* a leader commits only entries of its own epoch by majority; older entries
  commit indirectly (Raft's Figure 8);
* PreVote, and leader stickiness: a server that heard from a leader within
  ``failure_timeout`` ignores votes, so a partitioned server rejoining cannot
  depose a healthy leader; CheckQuorum: a leader whose lease lapsed steps down;
* the config's priority only staggers election timeouts; it never gates votes;
* leases are timed from the holder's send: the leader lease from the send of
  the heartbeat round a majority acknowledged, the serving lease from the
  follower's send of the reply that asked for it;
* a server votes (pre-votes included) and stands only ``failure_timeout``
  after it last acknowledged a lease round, its own rounds as leader and its
  boot included (leadership.md M17); so a new leader acts only
  ``max(0, leader_lease * (1 + rho) - failure_timeout)`` after it won;
* entries that only report grants ride on the next heartbeat round; any other
  entry, a report of a release or an expiry too (it frees a seat), is sent at
  once (``urgent``): one sync fan-out per checkout at the leader was most of
  its cost (docs/performance.md).

The class is pure: the caller passes ``now`` (its local clock) and carries out
the returned records and messages.  It knows nothing of seats; ``node.py``
applies committed entries to the pool state.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.core.effects import Ready
from actors.core.records import HardRecord, LogRecord
from actors.core.timing import Timing
from actors.protocol import entries as log_entries
from actors.protocol.raft import (
    DistributionCriteriaSync,
    InstallSnapshot,
    LogEntry,
    ServingGrant,
    SyncReply,
    VoteReply,
    VoteRequest,
)

__all__ = ["FOLLOWER", "PRE_CANDIDATE", "CANDIDATE", "LEADER", "RaftLog", "Raft", "MAX_BATCH", "awaited", "urgent"]

FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = "follower", "pre-candidate", "candidate", "leader"
MAX_BATCH = 64
"""Log entries per sync message."""


def awaited(entry: log_entries.Entry) -> bool:
    """A server may be waiting for this entry's commit (a borrow's ``Grant``, a
    transfer, a fail-over seat, a fence, an admin change): the leader tells
    every follower of its commit at once instead of at the next heartbeat round.
    Lease reports change no other server's seats."""
    return not isinstance(entry, log_entries.LeaseReport)


def urgent(entry: log_entries.Entry) -> bool:
    """Sent at once when appended; a report of grants only waits for the next
    heartbeat round (it frees no seat and moves none)."""
    return not isinstance(entry, log_entries.LeaseReport) or any(change.kind != "grant" for change in entry.changes)


@dataclass
class RaftLog:
    """The log after the last snapshot: ``entries[i].index == snap_index + 1 + i``."""

    snap_index: int = 0
    snap_epoch: int = 0
    entries: list[LogEntry] = field(default_factory=list)

    @property
    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.snap_index

    @property
    def last_epoch(self) -> int:
        return self.entries[-1].epoch if self.entries else self.snap_epoch

    def epoch_at(self, index: int) -> int | None:
        if index == self.snap_index:
            return self.snap_epoch
        if index < self.snap_index or index > self.last_index:
            return None
        return self.entries[index - self.snap_index - 1].epoch

    def entry(self, index: int) -> LogEntry:
        return self.entries[index - self.snap_index - 1]

    def slice(self, start: int, limit: int = MAX_BATCH) -> tuple[LogEntry, ...]:
        lo = max(start, self.snap_index + 1) - self.snap_index - 1
        return tuple(self.entries[lo : lo + limit])

    def truncate_after(self, index: int) -> None:
        del self.entries[max(0, index - self.snap_index) :]

    def compact_to(self, index: int, epoch: int) -> None:
        """Drop entries up to ``index`` (they are in a snapshot now)."""
        keep = [x for x in self.entries if x.index > index]
        self.snap_index, self.snap_epoch, self.entries = index, epoch, keep


def log_record(start: int, new: list[LogEntry]) -> LogRecord:
    """Journal record: truncate the log after ``start - 1`` and append ``new``."""
    return LogRecord(start, tuple(new))


@dataclass
class _Peer:
    next_index: int = 1
    match_index: int = 0
    acked_round: int = 0
    last_heard: float = float("-inf")
    # serving lease (grantor side)
    last_grant: int | None = None
    """The latest grant id issued to it; None: no grant from this leader yet."""
    issued: dict[int, float] = field(default_factory=dict)
    """grant id -> when it was issued, for the grants of the last ``fence_timeout``."""
    renewal: int | None = None
    """A renewal request waiting to be answered in the next sync."""
    serving_until: float = float("-inf")
    """Grantor-side end of its serving lease (``now + d(1+rho)`` at the grant)."""
    incarnation: int = 0
    """A restarted server has no grant to echo: its first request is answered."""
    two_way: bool = False
    """Its latest heartbeat echoed a recent grant of ours: the link works both ways."""


class Raft:
    def __init__(
        self,
        name: str,
        servers: tuple[str, ...],
        timing: Timing,
        settings_hash: str = "",
        may_renew: Callable[[str, float], bool] | None = None,
        may_serve: Callable[[str], bool] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.name, self.servers, self.timing, self.settings_hash = name, servers, timing, settings_hash
        self.max_batch = max_batch
        """Most entries per sync message (a lagging follower catches up in batches)."""
        self.may_renew: Callable[[str, float], bool] = may_renew or (lambda peer, now: True)
        self.may_serve: Callable[[str], bool] = may_serve or (lambda peer: True)
        """False for a server that is fenced, or about to be: its grants are
        probes of zero duration, echoed to show the link works both ways."""
        self.snapshot_state: dict[str, Any] = {}
        """The pool state at ``log.snap_index``, sent to servers that lag behind it."""
        self.peers_names = tuple(s for s in servers if s != name)
        self.rank = servers.index(name)
        self.majority = len(servers) // 2 + 1
        # persistent
        self.term = 0
        self.voted_for: str | None = None
        self.incarnation = 0
        self.log = RaftLog()
        # volatile
        self.role = FOLLOWER
        self.leader: str | None = None
        self.commit_index = 0
        self.last_leader_contact = float("-inf")
        self.acked_at = float("-inf")
        """When this server last acknowledged a lease round (leadership.md M17):
        a leader's sync it answered, its own round as leader (at the send), or
        its boot (``ServerNode.boot``: a restarted server may have acknowledged
        one just before it went down).  It votes and stands only f later."""
        self.election_due = 0.0
        self.votes: set[str] = set()
        # leader
        self.peers: dict[str, _Peer] = {}
        self.round = 0
        self.round_sent: dict[int, float] = {}
        self.lease_until = float("-inf")
        self.active_after = float("inf")
        self.won_at = float("-inf")
        self.noop_index = 0
        """The index of this leader's first entry, its NoOp: it acts only once
        that has committed (leadership.md M17)."""
        self.grant_seq = 0
        # follower serving lease (holder side)
        self.renewal_no = 0
        self.renewal_sent: dict[int, float] = {}
        self.last_grant_id = 0
        self.serving_until = float("-inf")
        self.next_heartbeat = 0.0
        # hooks the node fills
        self.pending_report: log_entries.LeaseReport | None = None
        self.table_lost = False
        """Sent in every ``SyncReply`` (``Member.table_lost``), set by the node like ``pending_report``."""
        self.empty_boot = False
        """Sent in every ``SyncReply`` (``Member.empty_boot``), set by the node like ``table_lost``."""
        self.urgent = False
        """An entry other than a lease report was appended since the last round."""
        self.commit_news = False
        """The commit index passed an ``awaited`` entry since the last sync fan-out (``tell_commit``)."""

    # ---- timing rules (small functions: the mutant tests replace them one by one) -----

    def election_timeout(self) -> float:
        """Priority only staggers timeouts: rank r waits f + r*h."""
        return self.timing.failure_timeout + self.rank * self.timing.heartbeat_interval

    def new_leader_wait(self, won_at: float) -> float:
        """leadership.md M17: the voters waited f since their last acknowledgement."""
        return won_at + self.timing.new_leader_wait

    def may_vote(self, now: float) -> bool:
        """leadership.md M17: f has passed since this server last acknowledged a
        lease round, so the rounds it acknowledged were sent at least f (on its
        clock) before any vote it gives or asks for."""
        return now - self.acked_at >= self.timing.failure_timeout

    def restart_grants(self, peer_name: str, now: float) -> None:
        """Let a server we no longer rely on ask afresh: once it is fenced, a
        stale echo must not keep it fenced for ever after its link heals."""
        peer = self.peers.get(peer_name)
        if peer is None or peer.last_grant is None:
            return
        latest = max(peer.issued.values(), default=float("-inf"))
        if now - latest > self.timing.fence_timeout:
            peer.last_grant, peer.issued = None, {}

    def serving_duration(self, now: float) -> float:
        """min(F, what remains of the leader lease): never past the leader lease.

        The remainder is divided by (1+rho): the holder measures the grant on
        its own clock, which may run slower than ours by that much."""
        remaining = (self.lease_until - now) / (1.0 + self.timing.clock_drift)
        return max(0.0, min(self.timing.fence_timeout, remaining))

    def serving_lease_end(self, renewal_sent_at: float, received_at: float, duration: float) -> float:
        """Holder side: from its own send of the request, ``d(1-rho)``."""
        return renewal_sent_at + self.timing.holder_valid_for(duration)

    def echo_ok(self, peer: _Peer, echo: int, now: float) -> bool:
        """A serving lease is renewed only by a heartbeat that echoes a grant of
        this leader issued within ``fence_timeout``: when the leader's messages
        stop reaching the holder, its echo ages and renewals stop, so a one-way
        link fences in either direction.  (One lost grant is tolerated.)"""
        if peer.last_grant is None:
            return True
        issued = peer.issued.get(echo)
        return issued is not None and now - issued <= self.timing.fence_timeout

    def log_up_to_date(self, last_index: int, last_epoch: int) -> bool:
        return (last_epoch, last_index) >= (self.log.last_epoch, self.log.last_index)

    def may_commit(self, index: int) -> bool:
        """Figure 8: only entries of the leader's own epoch commit by counting."""
        return self.log.epoch_at(index) == self.term

    # ---- queries ---------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    def leader_active(self, now: float) -> bool:
        """The leader may act: past its wait, within a majority-acknowledged
        lease, and with its NoOp committed, so the state it acts on holds every
        entry an earlier leader committed, and every older one a majority holds
        (leadership.md M17: with no wait, a Fence proposed by the old leader
        could otherwise commit after this one renewed that server)."""
        if self.role != LEADER or now < self.active_after or self.commit_index < self.noop_index:
            return False
        return len(self.servers) == 1 or now < self.lease_until

    def holds_serving_lease(self, now: float) -> bool:
        if self.role == LEADER:
            return self.leader_active(now)
        return now < self.serving_until

    def heard_from_leader(self, now: float) -> bool:
        return self.leader is not None and now - self.last_leader_contact < self.timing.failure_timeout

    # ---- persistence -------------------------------------------------------------------

    def hard_record(self) -> HardRecord:
        return HardRecord(self.term, self.voted_for, self.incarnation)

    def _become_follower(self, term: int, leader: str | None, ready: Ready) -> None:
        if term > self.term:
            self.term, self.voted_for = term, None
            ready.persist.append(self.hard_record())
        if self.role == LEADER:
            ready.event("step_down", epoch=self.term)
        self.role, self.leader, self.votes = FOLLOWER, leader, set()
        self.peers.clear()
        self.lease_until = float("-inf")

    # ---- time ---------------------------------------------------------------------------

    def tick(self, now: float, ready: Ready) -> None:
        if self.role == LEADER:
            if len(self.servers) > 1 and now >= self.won_at + self.timing.failure_timeout and now >= self.lease_until:
                # CheckQuorum: no majority acknowledged us within a lease.
                ready.event("leader_lease_lost", epoch=self.term)
                self._become_follower(self.term, None, ready)
                self.election_due = now + self.election_timeout()
            elif now >= self.next_heartbeat:
                self.broadcast(now, ready)
        elif now >= self.election_due and self.may_vote(now):
            self._start_pre_vote(now, ready)
        ready.wake_at = self.next_wake(now)

    def next_wake(self, now: float) -> float:
        if self.role == LEADER:
            if len(self.servers) == 1:
                return self.next_heartbeat
            return min(
                self.next_heartbeat, max(self.lease_until, self.active_after, self.won_at + self.timing.failure_timeout)
            )
        return max(self.election_due, self.acked_at + self.timing.failure_timeout)

    def _start_pre_vote(self, now: float, ready: Ready) -> None:
        self.role, self.votes, self.leader = PRE_CANDIDATE, {self.name}, None
        self.election_due = now + self.election_timeout()
        if len(self.votes) >= self.majority:
            self._start_election(now, ready)
            return
        msg = VoteRequest(
            sender=self.name,
            epoch=self.term + 1,
            last_index=self.log.last_index,
            last_epoch=self.log.last_epoch,
            pre_vote=True,
        )
        for peer in self.peers_names:
            ready.to(peer, msg)

    def _start_election(self, now: float, ready: Ready) -> None:
        self.term += 1
        self.voted_for, self.role, self.votes = self.name, CANDIDATE, {self.name}
        ready.persist.append(self.hard_record())
        self.election_due = now + self.election_timeout()
        if len(self.votes) >= self.majority:
            self._become_leader(now, ready)
            return
        msg = VoteRequest(
            sender=self.name, epoch=self.term, last_index=self.log.last_index, last_epoch=self.log.last_epoch
        )
        for peer in self.peers_names:
            ready.to(peer, msg)

    def _become_leader(self, now: float, ready: Ready) -> None:
        self.role, self.leader = LEADER, self.name
        self.won_at = now
        self.active_after = self.new_leader_wait(now)
        self.lease_until = float("-inf")
        self.peers = {p: _Peer(next_index=self.log.last_index + 1) for p in self.peers_names}
        ready.event("leader", epoch=self.term, leader=self.name)
        self.noop_index = self.append([log_entries.NoOp(leader=self.name)], ready)
        self.broadcast(now, ready)

    # ---- votes ----------------------------------------------------------------------------

    def on_vote_request(self, msg: VoteRequest, now: float, ready: Ready) -> None:
        if (
            msg.epoch < self.term
            or self.heard_from_leader(now)
            or (self.role == LEADER and self.lease_until > now)
            or not self.may_vote(now)
        ):
            # Stale, or we still follow a live leader: stickiness keeps a rejoining
            # server from deposing it (and its term does not leak into ours).  And
            # no vote within f of our last acknowledged lease round, whoever led
            # it, even after a restart or a step-down (M17).
            ready.to(msg.sender, VoteReply(sender=self.name, epoch=self.term, granted=False, pre_vote=msg.pre_vote))
            return
        up_to_date = self.log_up_to_date(msg.last_index, msg.last_epoch)
        if msg.pre_vote:
            ready.to(msg.sender, VoteReply(sender=self.name, epoch=msg.epoch, granted=up_to_date, pre_vote=True))
            return
        if msg.epoch > self.term:
            self._become_follower(msg.epoch, None, ready)
        granted = up_to_date and self.voted_for in (None, msg.sender)
        if granted:
            self.voted_for = msg.sender
            ready.persist.append(self.hard_record())
            self.election_due = now + self.election_timeout()
        ready.to(msg.sender, VoteReply(sender=self.name, epoch=self.term, granted=granted))

    def on_vote_reply(self, msg: VoteReply, now: float, ready: Ready) -> None:
        if msg.pre_vote:
            if self.role == PRE_CANDIDATE and msg.epoch == self.term + 1 and msg.granted:
                self.votes.add(msg.sender)
                if len(self.votes) >= self.majority:
                    self._start_election(now, ready)
            return
        if msg.epoch > self.term:
            self._become_follower(msg.epoch, None, ready)
            self.election_due = now + self.election_timeout()
            return
        if self.role == CANDIDATE and msg.epoch == self.term and msg.granted:
            self.votes.add(msg.sender)
            if len(self.votes) >= self.majority:
                self._become_leader(now, ready)

    # ---- the leader's side of replication -------------------------------------------

    def append(self, new: list[log_entries.Entry], ready: Ready) -> int:
        start = self.log.last_index + 1
        items = [LogEntry(index=start + i, epoch=self.term, entry=x) for i, x in enumerate(new)]
        self.urgent = self.urgent or any(urgent(x) for x in new)
        self.log.entries.extend(items)
        ready.persist.append(log_record(start, items))
        if len(self.servers) == 1:
            self.commit_index = self.log.last_index
        return self.log.last_index

    def broadcast(self, now: float, ready: Ready) -> None:
        self.round += 1
        self.urgent = self.commit_news = False
        self.round_sent[self.round] = now
        self.acked_at = now  # the leader acknowledges its own round (M17)
        self.round_sent = {r: t for r, t in self.round_sent.items() if r > self.round - 64}
        self.next_heartbeat = now + self.timing.heartbeat_interval
        for name, peer in self.peers.items():
            ready.to(name, self.sync_for(name, peer, now))

    def sync_for(
        self, name: str, peer: _Peer, now: float, renew: bool = True
    ) -> DistributionCriteriaSync | InstallSnapshot:
        if peer.next_index <= self.log.snap_index:
            return InstallSnapshot(
                sender=self.name,
                epoch=self.term,
                last_index=self.log.snap_index,
                last_epoch=self.log.snap_epoch,
                state=self.snapshot_state,
                round=self.round,
            )
        prev = peer.next_index - 1
        grant = None
        if renew and peer.renewal is not None and self.leader_active(now) and self.may_renew(name, now):
            serve = self.may_serve(name)
            duration = self.serving_duration(now) if serve else 0.0
            if duration > 0 or not serve:
                # Unique across leaders, so an old leader's grant never echoes as ours.
                self.grant_seq += 1
                grant_id = self.term * 1_000_000_000 + self.grant_seq
                grant = ServingGrant(grant_id=grant_id, request=peer.renewal, duration=duration)
                peer.last_grant = grant_id
                horizon = now - self.timing.fence_timeout
                peer.issued = {g: t for g, t in peer.issued.items() if t >= horizon}
                peer.issued[grant_id] = now
                peer.serving_until = max(peer.serving_until, now + self.timing.grantor_valid_for(duration))
            peer.renewal = None
        return DistributionCriteriaSync(
            sender=self.name,
            epoch=self.term,
            prev_index=prev,
            prev_epoch=self.log.epoch_at(prev) or 0,
            entries=self.log.slice(peer.next_index, self.max_batch),
            commit_index=self.commit_index,
            round=self.round,
            serving=grant,
            settings_hash=self.settings_hash,
        )

    def on_sync_reply(self, msg: SyncReply, now: float, ready: Ready) -> bool:
        """Returns True when the commit index advanced."""
        if msg.epoch > self.term:
            self._become_follower(msg.epoch, None, ready)
            self.election_due = now + self.election_timeout()
            return False
        if self.role != LEADER or msg.epoch < self.term or msg.sender not in self.peers:
            return False
        peer = self.peers[msg.sender]
        peer.last_heard = now
        if msg.settings_hash and self.settings_hash and msg.settings_hash != self.settings_hash:
            ready.event("settings_mismatch", server=msg.sender)
            return False
        if msg.incarnation != peer.incarnation:
            peer.incarnation, peer.last_grant, peer.issued = msg.incarnation, None, {}
        peer.acked_round = max(peer.acked_round, msg.round)
        self._extend_lease()
        issued = peer.issued.get(msg.echo_grant)
        peer.two_way = issued is not None and now - issued <= self.timing.fence_timeout
        if msg.renewal and self.echo_ok(peer, msg.echo_grant, now):
            peer.renewal = msg.renewal
        if msg.success:
            peer.match_index = max(peer.match_index, msg.match_index)
            peer.next_index = peer.match_index + 1
        else:
            peer.next_index = max(1, min(peer.next_index - 1, msg.match_index + 1))
        return self._advance_commit()

    def catch_up(self, peer_name: str, now: float, ready: Ready) -> None:
        """A follower acknowledged a batch and still lags by a full batch, or by
        an urgent entry: send it the next one now instead of at the next
        heartbeat (no serving grant rides on it).  Reports of grants alone
        wait for the heartbeat, or every reply would be answered at once while
        checkouts append reports (a sync per checkout again)."""
        peer = self.peers.get(peer_name)
        if self.role != LEADER or peer is None or peer.next_index > self.log.last_index:
            return
        behind = self.log.slice(peer.next_index, self.max_batch)
        if len(behind) >= self.max_batch or any(urgent(x.entry) for x in behind):
            ready.to(peer_name, self.sync_for(peer_name, peer, now, renew=False))

    def tell_commit(self, now: float, ready: Ready) -> None:
        """The commit index passed an entry a server may be waiting for (a
        borrower for its ``Grant``): tell every follower now, in a sync that
        renews nothing, instead of at the next heartbeat round, up to ``h``
        later (docs/performance.md, "Leader fail-over")."""
        if self.role != LEADER or not self.commit_news:
            return
        self.commit_news = False
        for name, peer in self.peers.items():
            ready.to(name, self.sync_for(name, peer, now, renew=False))

    def _extend_lease(self) -> None:
        rounds = sorted([self.round] + [p.acked_round for p in self.peers.values()], reverse=True)
        acked = rounds[self.majority - 1]
        sent = self.round_sent.get(acked)
        if sent is not None:
            self.lease_until = max(self.lease_until, sent + self.timing.holder_valid_for(self.timing.leader_lease))

    def _advance_commit(self) -> bool:
        for index in range(self.log.last_index, self.commit_index, -1):
            replicas = 1 + sum(1 for p in self.peers.values() if p.match_index >= index)
            if replicas >= self.majority and self.may_commit(index):
                passed = self.log.slice(self.commit_index + 1, index - self.commit_index)
                self.commit_news = self.commit_news or any(awaited(x.entry) for x in passed)
                self.commit_index = index
                return True
        return False

    # ---- the follower's side ------------------------------------------------------------

    def on_sync(self, msg: DistributionCriteriaSync, now: float, ready: Ready) -> None:
        if msg.epoch < self.term:
            ready.to(
                msg.sender,
                SyncReply(
                    sender=self.name, epoch=self.term, success=False, match_index=self.log.last_index, round=msg.round
                ),
            )
            return
        if msg.settings_hash and self.settings_hash and msg.settings_hash != self.settings_hash:
            ready.event("settings_mismatch", server=msg.sender)
            return
        if msg.epoch > self.term or self.role != FOLLOWER or self.leader != msg.sender:
            self._become_follower(msg.epoch, msg.sender, ready)
        self.last_leader_contact = self.acked_at = now  # the reply below acknowledges msg.round (M17)
        self.election_due = now + self.election_timeout()
        success = self._accept(msg, ready)
        if msg.serving is not None and msg.serving.request in self.renewal_sent:
            sent = self.renewal_sent[msg.serving.request]
            self.serving_until = max(self.serving_until, self.serving_lease_end(sent, now, msg.serving.duration))
            self.last_grant_id = msg.serving.grant_id
            self.renewal_sent = {r: t for r, t in self.renewal_sent.items() if r > msg.serving.request}
        self.renewal_no += 1
        self.renewal_sent[self.renewal_no] = now
        match = msg.prev_index + len(msg.entries) if success else min(self.log.last_index, msg.prev_index - 1)
        ready.to(
            msg.sender,
            SyncReply(
                sender=self.name,
                epoch=self.term,
                success=success,
                match_index=match,
                round=msg.round,
                echo_grant=self.last_grant_id,
                renewal=self.renewal_no,
                incarnation=self.incarnation,
                settings_hash=self.settings_hash,
                report=self.pending_report,
                table_lost=self.table_lost,
                empty_boot=self.empty_boot,
            ),
        )

    def _accept(self, msg: DistributionCriteriaSync, ready: Ready) -> bool:
        # A leader sends consecutive entries of epochs up to its own; anything else
        # is forged or corrupt and would break the log's index arithmetic.
        epochs = [item.epoch for item in msg.entries]
        if (
            msg.prev_index < 0
            or any(item.index != msg.prev_index + 1 + i for i, item in enumerate(msg.entries))
            or any(x > y for x, y in itertools.pairwise(epochs))
            or any(x < msg.prev_epoch or x > msg.epoch for x in epochs)
        ):
            ready.event("refused_sync", sender=msg.sender, reason="entries not consecutive or of later epochs")
            return False
        if msg.prev_index < self.log.snap_index:
            # Entries up to our snapshot are committed: skip the overlap.
            skip = self.log.snap_index - msg.prev_index
            if skip > len(msg.entries):
                return False
            msg = DistributionCriteriaSync(
                sender=msg.sender,
                epoch=msg.epoch,
                prev_index=self.log.snap_index,
                prev_epoch=self.log.snap_epoch,
                entries=msg.entries[skip:],
                commit_index=msg.commit_index,
                round=msg.round,
            )
        if self.log.epoch_at(msg.prev_index) != msg.prev_epoch:
            return False
        first_new = None
        for item in msg.entries:
            have = self.log.epoch_at(item.index)
            if have is None or have != item.epoch:
                first_new = item.index
                break
        if first_new is not None:
            if first_new <= self.commit_index:
                # Never in a correct pool (Raft's log matching); a forged sync.  Refuse, don't crash.
                ready.event("refused_sync", sender=msg.sender, reason="it would overwrite a committed entry")
                return False
            self.log.truncate_after(first_new - 1)
            new = [x for x in msg.entries if x.index >= first_new]
            self.log.entries.extend(new)
            ready.persist.append(log_record(first_new, new))
        last_new = msg.prev_index + len(msg.entries)
        self.commit_index = max(self.commit_index, min(msg.commit_index, last_new))
        return True
