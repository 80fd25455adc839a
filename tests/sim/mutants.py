"""Mutants: each breaks one critical guard of the core, to check the checker.

A simulator that cannot catch these proves nothing.  Each mutant is a function
that patches the core through pytest's ``monkeypatch`` (or returns simulator
overrides) and names the rules its violation may show up as.  The numbering
follows the issue: docs/simulator.md lists what each guard protects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.core import leading, member, node, pool, raft, registry, serving
from actors.core import session as client_session
from actors.core.effects import Ready
from actors.core.records import HardRecord
from actors.core.timing import Timing
from actors.protocol.client import DenyReason, ReleaseAck
from actors.protocol.entries import Reclaim
from actors.shell.persistence import NodeStore
from tests.sim.net import NetParams
from tests.sim.scenario import Scenario
from tests.sim.scenarios import (
    abandon_race,
    borrow_meets_return,
    direct_release_race,
    force_release_held,
    late_direct_ask,
    leader_kill_quiet,
    mass_release,
    multi_seat_under_load,
    queue_leader_kill,
    release_at_old_holder,
    release_races_failover,
    release_while_down,
    restart_after_move,
)

__all__ = ["Mutant", "MUTANTS"]

Patch = Callable[[pytest.MonkeyPatch], dict[str, Any]]


@dataclass(frozen=True)
class Mutant:
    number: int
    name: str
    patch: Patch
    seeds: range = range(400)
    first: int = 0
    """The seed the search starts at: the one that caught the mutant when its
    entry was last checked (``LICPOOL_MUTANT_SEARCH=1`` starts at 0 instead).
    A checker that stopped catching it there still searches on."""
    budget: float = 120.0
    equivalent: str = ""
    """Why no schedule can show this mutant (the test then requires that none did)."""
    servers: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    scenario: Callable[[int], Scenario] | None = None
    """Run this seeded scenario instead of the random fault schedules."""


def _no_leader_wait(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(raft.Raft, "new_leader_wait", lambda self, won_at: won_at)
    return {}


def _wait_one_rho_short(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """leadership.md M17 without the old lease's drift: L - f instead of L(1+rho) - f."""
    mp.setattr(
        raft.Raft,
        "new_leader_wait",
        lambda self, won_at: won_at + max(0.0, self.timing.leader_lease - self.timing.failure_timeout),
    )
    return {}


def _restarted_voter_votes_at_once(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """leadership.md M17 without the boot's guard: a restarted server votes at
    once, though it may have acknowledged the old leader's last round just
    before it went down."""
    original = node.ServerNode.boot.__func__  # type: ignore[attr-defined]

    def forgetful(cls: type[node.ServerNode], *args: Any, **kwargs: Any) -> Any:
        booted, ready = original(cls, *args, **kwargs)
        booted.raft.acked_at = float("-inf")
        return booted, ready

    mp.setattr(node.ServerNode, "boot", classmethod(forgetful))
    return {}


def _acts_before_its_noop_commits(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A new leader acts on its applied state before its first entry commits,
    which may lack an older entry (a Fence) that is about to commit."""

    def active(self: raft.Raft, now: float) -> bool:
        if self.role != raft.LEADER or now < self.active_after:
            return False
        return len(self.servers) == 1 or now < self.lease_until

    mp.setattr(raft.Raft, "leader_active", active)
    return {}


def _older_table_applied(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(node.ServerNode, "older_table", lambda self, index: False)
    return {}


def _uncommitted_seats_used(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(node.ServerNode, "applicable_index", lambda self: self.raft.log.last_index)
    return {}


def _transfer_without_consent(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    original = leading.LeaderDuties._transfers

    def eager(self: leading.LeaderDuties, now: float, ready: Any) -> None:
        for t in self.pool.transfers.values():
            self.book.confirms.setdefault(t.transfer_id, t.count)
        original(self, now, ready)

    mp.setattr(leading.LeaderDuties, "_transfers", eager)
    return {}


def _fence_before_expiry(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    def early(self: leading.LeaderDuties, server: str, now: float) -> bool:
        peer = self.raft.peers.get(server)
        return peer is not None and now - peer.last_heard > self.timing.heartbeat_interval * 2

    mp.setattr(leading.LeaderDuties, "fence_due", early)
    return {}


def _no_tombstone(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(registry.LeaseRegistry, "is_dead", lambda self, lease_id: False)
    return {}


def _timed_from_receive(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(
        raft.Raft, "serving_lease_end", lambda self, sent, received, d: received + self.timing.holder_valid_for(d)
    )

    def lease_from_ack(self: raft.Raft) -> None:
        rounds = sorted([self.round] + [p.acked_round for p in self.peers.values()], reverse=True)
        if rounds[self.majority - 1] in self.round_sent:
            latest = max(p.last_heard for p in self.peers.values())
            self.lease_until = max(self.lease_until, latest + self.timing.holder_valid_for(self.timing.leader_lease))

    mp.setattr(raft.Raft, "_extend_lease", lease_from_ack)
    return {}


def _vote_before_persist(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """The vote (and the term it moves to) is answered at once and written
    later, with the next hard-state record: a crash in between forgets it."""
    original = raft.Raft.on_vote_request

    def unsaved(self: raft.Raft, msg: Any, now: float, ready: Any) -> None:
        before = len(ready.persist)
        original(self, msg, now, ready)
        ready.persist[before:] = [x for x in ready.persist[before:] if not isinstance(x, HardRecord)]

    mp.setattr(raft.Raft, "on_vote_request", unsaved)
    return {}


def _serve_before_rejoin(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """Both halves of "serve only after Rejoin" are gone: the server serves on
    any serving lease, and the leader grants real ones to servers that are not
    live.  (The server's half alone is an equivalent mutant: a server that is
    not live only ever gets zero-length probe grants, so it holds no serving
    lease to serve under; docs/simulator.md.)"""
    mp.setattr(leading.LeaderDuties, "may_serve", lambda self, peer: peer in self.member.pool.servers)

    def lax(self: node.ServerNode, table: Any, now: float) -> Any:
        if table is not None and not table.majority:
            return None
        return None if self.raft.holds_serving_lease(now) else DenyReason.NO_MAJORITY

    mp.setattr(node.ServerNode, "serve_problem", lax)
    return {}


def _second_seat_on_reconnect(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    original = member.Member.checkout

    def ignore_resume(self: member.Member, *args: Any, **kwargs: Any) -> Any:
        args = (*args[:6], None, *args[7:]) if len(args) > 6 else args
        kwargs.pop("resume_id", None)
        return original(self, *args, **kwargs)

    mp.setattr(member.Member, "checkout", ignore_resume)
    return {}


def _cut_without_consent(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    original = member.Member._consent

    def yes(self: member.Member, intent: Any) -> Any:
        if intent.reason in ("rebalance", "borrow") and intent.lease_id is None:
            self.consents[intent.transfer_id] = intent.count
            return member.Consent(intent.transfer_id, intent.count)
        return original(self, intent)

    mp.setattr(member.Member, "_consent", yes)
    return {}


def _serving_past_leader_lease(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(raft.Raft, "serving_duration", lambda self, now: self.timing.fence_timeout)
    return {}


def _reclaim_at_fence(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(leading.LeaderDuties, "reclaim_delay", lambda self: 0.0)
    return {}


def _keep_reclaimed_leases(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(member.Member, "_drop_leases", lambda self, matches: None)
    return {}


def _no_up_to_date_check(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(raft.Raft, "log_up_to_date", lambda self, last_index, last_epoch: True)
    return {}


def _figure_8(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(raft.Raft, "may_commit", lambda self, index: True)
    return {}


def _drop_unreported_on_rejoin(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """The reconciliation at a Rejoin (and after a snapshot install) drops
    every lease the registry does not place here, unreported ones too."""

    def forgetful(self: member.Member) -> None:
        reg = self.pool.registry
        for lid in list(self.leases.leases):
            if reg.holder(lid) != self.name:
                self.leases.drop(lid)

    mp.setattr(member.Member, "drop_moved_away", forgetful)
    return {}


def _reclaim_after_rejoin(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """Both checks that a Rejoin came first are gone: the leader keeps the
    fence's reclaim clock running across the Rejoin and proposes the Reclaim
    anyway, and the state machine applies it to a live server.  (Breaking the
    apply check alone is an equivalent mutant here: the leader proposes a
    Reclaim only for a server its table shows fenced, so a Reclaim can follow
    a Rejoin only when both were in flight together, and then it commits
    before the rejoined server can serve.  docs/simulator.md says so.)"""
    original = leading.LeaderDuties._membership

    def stale_clock(self: leading.LeaderDuties, now: float, ready: Any) -> None:
        clocks: dict[str, float] = self.book.__dict__.setdefault("first_fenced", {})
        for name, seen in self.book.fenced_seen.items():
            clocks.setdefault(name, seen)
        original(self, now, ready)
        for name, seen in list(clocks.items()):
            server = self.pool.servers.get(name)
            if (
                server is not None
                and server.status == "live"
                and now >= seen + self.reclaim_delay()
                and not self._in_flight(self.book.reclaim_proposed, name)
            ):
                self.book.reclaim_proposed[name] = self.propose([Reclaim(server=name)], ready)
                del clocks[name]

    mp.setattr(leading.LeaderDuties, "_membership", stale_clock)

    def reclaim_anyway(self: pool.PoolState, entry: Any, _verify: Any) -> Any:
        server = self.servers.get(entry.server)
        if server is None:
            return pool.Applied(False, "unknown server")
        return self._take_down(server)

    mp.setitem(pool._HANDLERS, Reclaim, reclaim_anyway)
    return {}


def _renew_without_echo(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(raft.Raft, "echo_ok", lambda self, peer, echo, now: True)
    return {}


def _split_step_on_disk(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """The store writes the records of a step in frames of their own (as it
    did before issue 11, defect 4): a cut inside the step can keep its commit
    record and lose the lease ops after it."""
    original = NodeStore.append

    def record_by_record(self: NodeStore, step: list[Any]) -> None:
        for record in step:
            original(self, [record])

    mp.setattr(NodeStore, "append", record_by_record)
    return {}


def _install_without_adopt(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A snapshot install only drops the leases that moved away (as before
    issue 11, defect 1): a lease moved here by an entry folded into the
    snapshot stays out of the table."""

    def drop_only(self: member.Member, now: float) -> list[str]:
        self.drop_moved_away()
        return []

    mp.setattr(member.Member, "reconcile_installed", drop_only)
    return {}


def _failover_on_no_majority(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """The old rule: a server between leaders (no serving lease) sends its
    clients away, so a leader change moves every lease in the pool."""
    mp.setattr(
        serving.ClientSide,
        "heartbeat_answer",
        lambda self, problem: serving.RENEW if problem is None else serving.REFUSE,
    )
    return {}


def _abandoned_grant_kept(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """``abandon`` only stops waiting (as before issue 11, defect 3): a grant
    that reached the session before the app's AbandonCheckout stays held and
    renewed, though its app never learned of it."""

    def stop_waiting(self: client_session.ClientSessionCore, request_id: int, now: float) -> Ready:
        self._checkouts.pop(request_id, None)
        return self._finish(Ready(), now)

    mp.setattr(client_session.ClientSessionCore, "abandon", stop_waiting)
    return {}


def _release_not_retried(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A release is sent once (as before issue 11, defect 3): one sent while
    its server is down is lost, and the seat stays taken until the lease
    expires."""

    def send_once(
        self: client_session.ClientSessionCore,
        lease_id: str,
        server: str,
        until: float,
        now: float,
        ready: Ready,
        awaiting: frozenset[str] = frozenset(),
    ) -> None:
        for to in sorted({server, *awaiting}):
            self._send_release(to, lease_id, now, ready)

    mp.setattr(client_session.ClientSessionCore, "_keep_release", send_once)
    return {}


def _exhausted_while_returning(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """The leader answers a borrow that finds no seat "exhausted" even while a
    seat of the table is on its way back (released at the leader, or in a
    report past the commit index): the asker refuses NO_SEATS once it applied
    the index, though the seat comes free at the leader (seed 3526)."""
    mp.setattr(leading.LeaderDuties, "seat_returning", lambda self, key: False)
    return {}


def _unadopted_release_dropped(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """The session ignores the release of a lease it has not adopted yet (a
    direct grant whose ``AdoptGrant`` the app's ``ReleaseLease`` overtook):
    nothing goes to the server, and the adopt that follows keeps the lease,
    renewed for an app that gave it back (lever 4 of issue 12)."""
    original = client_session.ClientSessionCore.release

    def session_only(self: client_session.ClientSessionCore, lease_id: str, now: float, server: str = "") -> Ready:
        return original(self, lease_id, now)

    mp.setattr(client_session.ClientSessionCore, "release", session_only)
    return {}


def _release_not_followed(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A release goes on to the lease's server alone (as before the chaos run's
    "releases no server recorded", issue 11): not to the server the lease was
    failing over to, nor to where a server says it moved; a "not released"
    from the lease's server ends it, one from another server only marks the
    id killed.  A release that reached the fail-over target just before the
    lease did never reaches it again, and the seat stays taken there until
    the lease expires."""
    original = client_session.ClientSessionCore._keep_release

    def to_its_server(
        self: client_session.ClientSessionCore,
        lease_id: str,
        server: str,
        until: float,
        now: float,
        ready: Ready,
        awaiting: frozenset[str] = frozenset(),
    ) -> None:
        for to in sorted(awaiting):  # sent there once, never again
            self._send_release(to, lease_id, now, ready)
        original(self, lease_id, server, until, now, ready)

    def old_ack(self: client_session.ClientSessionCore, server: str, msg: ReleaseAck, now: float, ready: Ready) -> None:
        rel = self._releases.get(msg.lease_id)
        if rel is not None and (msg.released or server == rel.server):
            del self._releases[msg.lease_id]
            self._send_waiting_releases(rel.server, now, ready)
        elif rel is not None:
            rel.killed = True

    mp.setattr(client_session.ClientSessionCore, "_keep_release", to_its_server)
    mp.setattr(client_session.ClientSessionCore, "_on_release_ack", old_ack)
    return {}


def _releases_unpaced(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every release goes out at once, however many its server has not
    answered yet (as before the mass release was diagnosed): a burst of 1,800
    fills the servers' mailboxes past the transport's bound."""
    mp.setattr(client_session, "RELEASE_WINDOW", 1_000_000)
    return {}


def _partial_multi_seat_hold(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A multi-seat checkout is granted when any seat is spare, not all of
    them (issue 14): the lease holds seats the server does not have."""
    mp.setattr(member.Member, "can_seat", lambda self, key, seats: self.spare(key) > 0)
    return {}


def _partial_failover_hold(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A multi-seat lease that moves (fail-over, handover) is taken at its new
    server as a one-seat lease: the taker counts fewer seats in use than its
    clients hold, and sells the difference again."""
    original = member.Member._lease_moved

    def one_seat(
        self: member.Member,
        lease_id: str,
        client_id: str,
        key: Any,
        to: str,
        now: float,
        client_seq: int = 0,
        seats: int = 1,
    ) -> None:
        original(self, lease_id, client_id, key, to, now, client_seq, 1)

    mp.setattr(member.Member, "_lease_moved", one_seat)
    return {}


def _seq_base_dropped(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """The session actor numbers a restarted app's updates from 1 again (issue 11 defect 2)."""
    return {"seq_base": False}


def _release_elsewhere_ignored(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A release reported by a server the lease has moved from is ignored
    (seed 8752): the lease stays held, by nobody, where it went, and a stale
    resume gets the released id back."""
    mp.setattr(pool.PoolState, "_released_elsewhere", lambda self, change: False)
    return {}


def _queue_lost_on_leader_change(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A new leader starts with an empty queue, as if the queue lived in the
    leader's memory: every waiter that joined under an earlier leader is
    dropped, and its server (which still holds the checkout) joins it again,
    at the tail."""
    original = leading.LeaderDuties._queues

    def forgetful(self: leading.LeaderDuties, now: float, ready: Ready) -> None:
        dropped: set[str] = self.book.__dict__.setdefault("mutant_dropped", set())
        for key, queue in list(self.pool.queues.items()):
            for w in queue:
                joined_in = self.raft.log.epoch_at(w.joined_index)
                if w.waiter_id not in dropped and (joined_in is None or joined_in < self.raft.term):
                    dropped.add(w.waiter_id)
                    self._propose_leave(w.waiter_id, key, "gone", "", ready)
        original(self, now, ready)

    mp.setattr(leading.LeaderDuties, "_queues", forgetful)
    return {}


def _late_direct_takes_a_seat(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A server judges an app's direct ask as its session's repeat (as before
    round 2, session 7): one that comes after its fall-back's grant was given
    back takes a seat again, held by nobody until T, and one that finds the
    fall-back still waiting takes its answer to the app's closed ask."""
    original = serving.ClientSide.on_checkout

    def as_the_sessions(self: serving.ClientSide, ref: Any, req: Any, now: float, ready: Ready) -> None:
        original(self, ref, dataclasses.replace(req, direct=False), now, ready)

    mp.setattr(serving.ClientSide, "on_checkout", as_the_sessions)
    return {}


def _digest_unchecked(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """A server renews on a heartbeat's digest without checking that it is the
    digest of its own table for that session: it renews what it holds and
    echoes the digest, so the session renews every lease of its list, those
    the server no longer holds (force-released, moved, lost) too."""
    mp.setattr(
        serving.ClientSide,
        "digest_holds",
        lambda self, hb: self.member.leases.bound_to(hb.client_id, hb.session_id),
    )
    return {}


DRIFTED = Timing(
    heartbeat_interval=0.5, failure_timeout=1.5, leader_lease=10.0, fence_timeout=3.0, lease_ttl=40.0, clock_drift=0.1
)
"""A leader lease far longer than f, and the largest drift the loader allows."""


MUTANTS: tuple[Mutant, ...] = (
    # With the default timing (L(1+rho) <= f) the wait is zero anyway
    # (leadership.md M17); a leader lease far longer than f needs it.
    Mutant(
        1,
        "new leader does not wait out the old leader's lease",
        _no_leader_wait,
        overrides={
            "timing": Timing(
                heartbeat_interval=0.5,
                failure_timeout=1.5,
                leader_lease=6.0,
                fence_timeout=6.0,
                lease_ttl=30.0,
                clock_drift=0.01,
            )
        },
        scenario=lambda seed: old_leader_cut_off(seed),
    ),
    # Stale snapshot installs need duplicated and late messages.
    Mutant(
        2,
        "an older table is applied",
        _older_table_applied,
        first=3,
        overrides={"net": NetParams(drop_rate=0.005, dup_rate=0.05, long_rate=0.05, long_max=2.0), "compact_every": 40},
    ),
    Mutant(3, "borrowed seats used before the commit", _uncommitted_seats_used, first=12),
    Mutant(4, "transfer skips the giver's confirmation", _transfer_without_consent),
    Mutant(5, "a down server's seats reused before its serving lease expired", _fence_before_expiry, first=6),
    Mutant(6, "a released lease is resumed (no tombstone)", _no_tombstone, first=7),
    Mutant(7, "leases timed from the receive instead of the send", _timed_from_receive, first=41),
    Mutant(8, "a vote is answered before it is persisted", _vote_before_persist, scenario=lambda seed: lost_vote(seed)),
    Mutant(
        9,
        "a healed server serves before applying the current table",
        _serve_before_rejoin,
        first=35,
        scenario=lambda seed: healed_server_asked(seed),
    ),
    Mutant(10, "a reconnect takes a second seat", _second_seat_on_reconnect, first=7),
    Mutant(11, "a cut applied without the holder's consent", _cut_without_consent),
    # A fence timeout longer than the leader lease, so a serving lease can
    # outlast the leader lease by much (the LEASE rule sees it).
    Mutant(
        12,
        "a serving lease granted past the end of the leader lease",
        _serving_past_leader_lease,
        overrides={
            "timing": Timing(
                heartbeat_interval=0.5,
                failure_timeout=1.5,
                leader_lease=3.0,
                fence_timeout=6.0,
                lease_ttl=30.0,
                clock_drift=0.01,
            )
        },
        scenario=lambda seed: old_leader_cut_off(seed),
    ),
    Mutant(13, "a fenced server's spare seats freed at the fence", _reclaim_at_fence, first=38),
    Mutant(
        14,
        "a rejoining server resumes a lease whose seat was reclaimed",
        _keep_reclaimed_leases,
        first=6,
        scenario=lambda seed: reclaimed_then_resumed(seed),
    ),
    Mutant(15, "a candidate wins without the up-to-date check", _no_up_to_date_check, first=68),
    # One entry per sync message, so a lagging follower can hold the old
    # leader's entries without the new leader's own (Raft's Figure 8).
    Mutant(
        16,
        "older-epoch replicas counted as committed (Figure 8)",
        _figure_8,
        first=18,
        overrides={"max_batch": 1},
        scenario=lambda seed: figure_8(seed),
    ),
    Mutant(17, "a rejoining server drops an unreported, unexpired lease", _drop_unreported_on_rejoin, first=115),
    Mutant(
        18, "a Reclaim applied after a Rejoin", _reclaim_after_rejoin, scenario=lambda seed: rejoin_at_reclaim(seed)
    ),
    Mutant(
        19,
        "a serving lease renewed without the echo of the previous grant",
        _renew_without_echo,
        overrides={"net": NetParams(drop_rate=0.005, dup_rate=0.05, long_rate=0.05, long_max=2.0)},
        budget=30.0,
        equivalent=(
            "a holder asks for renewals only in replies to the leader's syncs, and every sync that reaches "
            "it carries the current grant or follows one within a heartbeat, so its echo is never stale "
            "when a renewal arrives; a stale echo needs a late duplicate, and the grant it then earns is "
            "timed from the holder's own (old) send, which the holder has already discarded"
        ),
    ),
    Mutant(
        20,
        "a step's records split on disk (split step)",
        _split_step_on_disk,
        scenario=lambda seed: crash_adopting(seed),
    ),
    # Frequent compactions, so the lagging server needs a snapshot to catch up.
    Mutant(
        21,
        "a snapshot install adopts nothing (install without adopt)",
        _install_without_adopt,
        first=9,
        overrides={"compact_every": 5},
        scenario=lambda seed: handover_to_a_lagging_server(seed),
    ),
    Mutant(
        22,
        "fail-over on NO_MAJORITY (a leader change moves leases off live servers)",
        _failover_on_no_majority,
        scenario=lambda seed: dataclasses.replace(
            leader_kill_quiet.SCENARIO, name=f"leader_kill_quiet/{seed}", seed=seed
        ),
    ),
    Mutant(
        23,
        "an abandoned grant kept (the ask-timeout race)",
        _abandoned_grant_kept,
        seeds=range(1, 41),
        first=1,
        scenario=lambda seed: dataclasses.replace(abandon_race.SCENARIO, name=f"abandon_race/{seed}", seed=seed),
    ),
    Mutant(
        24,
        "a release not retried (sent while its server is down)",
        _release_not_retried,
        seeds=range(1, 41),
        first=1,
        scenario=lambda seed: dataclasses.replace(
            release_while_down.SCENARIO, name=f"release_while_down/{seed}", seed=seed
        ),
    ),
    # The shell model's session actor is the one that passes seq_base.
    Mutant(
        25,
        "a restarted app's updates numbered from 1 again (seq_base dropped)",
        _seq_base_dropped,
        seeds=range(1, 41),
        first=1,
        overrides={"shell": True},
        scenario=lambda seed: dataclasses.replace(
            restart_after_move.SCENARIO, name=f"restart_after_move/{seed}", seed=seed
        ),
    ),
    Mutant(
        26,
        "queue lost on leader change (a new leader starts with an empty queue)",
        _queue_lost_on_leader_change,
        seeds=range(1, 41),
        first=1,
        scenario=lambda seed: dataclasses.replace(
            queue_leader_kill.SCENARIO, name=f"queue_leader_kill/{seed}", seed=seed
        ),
    ),
    Mutant(
        27,
        "a new leader's wait one rho too short (L - f instead of L(1+rho) - f)",
        _wait_one_rho_short,
        overrides={"timing": DRIFTED},
        scenario=lambda seed: drifted_leader_cut_off(seed),
    ),
    Mutant(
        28,
        "a restarted server votes at once",
        _restarted_voter_votes_at_once,
        scenario=lambda seed: restarted_voter(seed),
    ),
    Mutant(29, "a new leader acts before its NoOp commits", _acts_before_its_noop_commits, first=71),
    Mutant(
        30,
        "a partial multi-seat hold (granted when only some of its seats are spare)",
        _partial_multi_seat_hold,
        seeds=range(1, 41),
        first=1,
        scenario=lambda seed: dataclasses.replace(
            multi_seat_under_load.SCENARIO, name=f"multi_seat_under_load/{seed}", seed=seed
        ),
    ),
    Mutant(
        31,
        "a moved multi-seat lease seated with one seat (a partial hold across a fail-over)",
        _partial_failover_hold,
        seeds=range(1, 41),
        first=13,
        scenario=lambda seed: dataclasses.replace(
            multi_seat_under_load.SCENARIO, name=f"multi_seat_under_load/{seed}", seed=seed
        ),
    ),
    Mutant(
        32,
        "a release at the server a lease moved from is ignored",
        _release_elsewhere_ignored,
        # The 10,000-seed run found it once (seed 8752); after the commit push of round 2, session 6
        # moved every trace, no classic seed of 0-3,999 did.  The scenario sets the race up; the
        # checker's "release unknowable" exemption ends once the releasing server's report commits.
        seeds=range(1, 41),
        first=1,
        scenario=lambda seed: dataclasses.replace(
            release_at_old_holder.SCENARIO, name=f"release_at_old_holder/{seed}", seed=seed
        ),
    ),
    Mutant(
        37,
        "a borrow is answered exhausted while a seat of the table is returning",
        _exhausted_while_returning,
        # The 10,000-seed run found it once (seed 3526), after the mass-release change moved its
        # timing; after the commit push and the hold between leaders (round 2, session 6) no classic
        # seed below 4,000 did.  The scenario aims at the window: seeds 8 and 12 of 1-40 land in it.
        seeds=range(1, 41),
        first=8,
        scenario=lambda seed: dataclasses.replace(
            borrow_meets_return.SCENARIO, name=f"borrow_meets_return/{seed}", seed=seed
        ),
    ),
    # Random schedules rarely hold a lease long enough past a force-release of
    # another lease of the same session at the same server (see docs/simulator.md).
    Mutant(
        33,
        "a heartbeat's digest renews without matching the server's table",
        _digest_unchecked,
        seeds=range(1, 41),
        first=1,
        scenario=lambda seed: dataclasses.replace(
            force_release_held.SCENARIO, name=f"force_release_held/{seed}", seed=seed
        ),
    ),
    Mutant(
        36,
        "a release not followed to where its lease went (sent to the lease's old server alone)",
        _release_not_followed,
        seeds=range(1, 41),
        first=1,
        scenario=lambda seed: dataclasses.replace(
            release_races_failover.SCENARIO, name=f"release_races_failover/{seed}", seed=seed
        ),
    ),
    # An app checks out at its server directly and releases before its session adopted the grant.
    Mutant(
        35,
        "the release of a direct grant the session has not adopted yet is dropped",
        _unadopted_release_dropped,
        seeds=range(1, 11),
        first=2,
        scenario=lambda seed: dataclasses.replace(
            direct_release_race.SCENARIO, name=f"direct_release_race/{seed}", seed=seed
        ),
    ),
    # 20 apps give 1,800 of 2,000 leases back at once on a loaded pool (service time x5).
    Mutant(
        34,
        "releases not paced (a burst of releases sent at once)",
        _releases_unpaced,
        seeds=range(1, 4),
        first=1,
        budget=60.0,
        overrides={"max_events": 400_000},
        scenario=lambda seed: dataclasses.replace(mass_release.SCENARIO, name=f"mass_release/{seed}", seed=seed),
    ),
    # An app's direct ask, 3 s late in transit, reaches its server after the fall-back's seat was given back.
    Mutant(
        38,
        "a late direct ask is judged as its session's repeat (it takes a seat after a give-back)",
        _late_direct_takes_a_seat,
        seeds=range(1, 11),
        first=1,
        scenario=lambda seed: dataclasses.replace(late_direct_ask.SCENARIO, name=f"late_direct_ask/{seed}", seed=seed),
    ),
)


def drifted_leader_cut_off(seed: int) -> Scenario:
    """Leadership.md M17 at its edge: the leader's clock runs slow by rho and
    the two followers' fast by rho, and the leader is cut off from both.  s2
    (rank 1) wins f + h after its last acknowledgement of the old leader's
    round, and waits L(1+rho) - f; one rho less and it acts while the old
    leader still does (mutant 27).  Run with a long leader lease and rho = 0.1
    so the gap is wider than the priority stagger h (``DRIFTED``)."""
    return Scenario(
        name=f"drifted_leader_cut_off/{seed}",
        description=drifted_leader_cut_off.__doc__ or "",
        servers=3,
        clients=4,
        seats=4,
        duration=70.0,
        workload=True,
        seed=seed,
        steps=[
            ("at", 6.0, "clock", "s1", 0.9),
            ("at", 6.0, "clock", "s2", 1.1),
            ("at", 6.0, "clock", "s3", 1.1),
            ("at", 12.0 + 0.013 * (seed % 40), "partition", ["$leader"], ["$rest"]),
            ("at", 40.0, "heal"),
            ("expect", 69.0, "all_live"),
        ],
    )


def restarted_voter(seed: int) -> Scenario:
    """s2 leads (s1 was down at the start).  s1 is cut off from s2 1.5 s
    before s2 is cut off from everyone; at that moment s3, which has just
    acknowledged s2's round, crashes and restarts at once.  s1 (rank 0) stands
    f after its own last acknowledgement, before s2's lease ends; a restarted
    server that votes at once elects it while s2 still leads (mutant 28)."""
    k = 20.0 + 0.021 * (seed % 40)
    return Scenario(
        name=f"restarted_voter/{seed}",
        description=restarted_voter.__doc__ or "",
        servers=3,
        clients=2,
        seats=4,
        duration=80.0,
        seed=seed,
        steps=[
            ("at", 0.5, "kill", "s1"),
            ("at", 5.0, "restart", "s1"),
            ("at", 8.0, "checkout", "c1", "cad", "2.0"),
            ("at", 8.0, "checkout", "c2", "cad", "2.0"),
            ("at", k - 1.5, "partition", ["s2"], ["s1"]),
            ("at", k, "partition", ["s2"], ["s1", "s3"]),
            ("at", k, "kill", "s3"),
            ("at", k + 0.01, "restart", "s3"),
            ("at", 45.0, "heal"),
            ("expect", 79.0, "all_live"),
        ],
    )


def crash_adopting(seed: int) -> Scenario:
    """Six clients take two seats each; the server holding c1's first lease
    dies, its clients fail over and their leases move, with their seats, to
    the servers they reach.  The first server to
    adopt one dies inside that step (``crash_on adopt``), and both come back.
    A store that splits a step's records on disk can keep the commit of the
    move without the adopt: the registry then places a lease at a server whose
    table lacks it (mutant 20)."""
    return Scenario(
        name=f"crash_adopting/{seed}",
        description=crash_adopting.__doc__ or "",
        servers=3,
        clients=6,
        seats=9,
        duration=80.0,
        workload=False,
        seed=seed,
        steps=[
            *[("at", 8.0 + 0.1 * k, "checkout", f"c{k}", "cad", "2.0") for k in range(1, 7)],
            *[("at", 9.0 + 0.1 * k, "checkout", f"c{k}", "cad", "2.0") for k in range(1, 7)],
            ("at", 14.0, "crash_on", "adopt"),
            ("at", 14.0, "kill", "$holder:c1"),
            ("at", 34.0, "restart", "$down"),
            ("at", 36.0, "restart", "$down"),
            ("at", 44.0, "quiet"),
            ("expect", 79.0, "all_live"),
        ],
    )


def handover_to_a_lagging_server(seed: int) -> Scenario:
    """Six clients take two seats each.  The clients lose the leader (s1) and
    s3, and a moment later s2 stops hearing the leader; the clients fail over
    to s2, which, still serving for a while, forwards their updates: their
    leases are handed over to s2, which never sees those entries.  After the heal s2 catches up by
    snapshot (frequent compactions), and must then hold every lease the
    registry places there (mutant 21)."""
    clients = [f"c{k}" for k in range(1, 7)]
    return Scenario(
        name=f"handover_to_a_lagging_server/{seed}",
        description=handover_to_a_lagging_server.__doc__ or "",
        servers=3,
        clients=6,
        seats=12,
        duration=80.0,
        workload=False,
        seed=seed,
        steps=[
            *[("at", 8.0 + 0.1 * k, "checkout", f"c{k}", "cad", "2.0") for k in range(1, 7)],
            *[("at", 9.0 + 0.1 * k, "checkout", f"c{k}", "cad", "2.0") for k in range(1, 7)],
            ("at", 14.0, "partition", ["$leader", "s3"], clients),
            ("at", 15.5, "oneway", ["$leader"], ["s2"]),
            ("at", 28.0, "heal"),
            ("at", 44.0, "quiet"),
            ("expect", 79.0, "all_live"),
        ],
    )


def old_leader_cut_off(seed: int) -> Scenario:
    """The leader and one follower are cut off from the other three servers for
    longer than the lease time, while every client reaches every server and
    contends for the seats: the cut-off pair keeps serving under the leases it
    holds, and its seats come back only through ``Reclaim``.  This is the
    schedule where a new leader that does not wait out the old leader's lease
    (mutant 1) fences the pair while it still serves."""
    return Scenario(
        name=f"old_leader_cut_off/{seed}",
        description=old_leader_cut_off.__doc__ or "",
        servers=5,
        clients=9,
        seats=4,
        duration=90.0,
        workload=True,
        seed=seed,
        steps=[
            ("at", 20.0, "partition", ["s1", "s2"], ["s3", "s4", "s5"]),
            ("at", 70.0, "heal"),
        ],
    )


def lost_vote(seed: int) -> Scenario:
    """The leader is cut off; of the two others one campaigns and the other
    votes for it.  Then the new leader is cut off, and the other two crash and
    restart.  A voter that answered before persisting has forgotten its vote
    and its term, so it can win the same epoch again with the old leader's
    vote: two leaders in one epoch (mutant 8)."""
    return Scenario(
        name=f"lost_vote/{seed}",
        description=lost_vote.__doc__ or "",
        servers=3,
        clients=2,
        seats=4,
        duration=60.0,
        seed=seed,
        steps=[
            ("at", 5.0, "checkout", "c1", "cad", "2.0"),
            ("at", 5.0, "checkout", "c2", "cad", "2.0"),
            ("at", 10.0, "partition", ["$leader"], ["$rest"]),
            ("at", 16.0, "heal"),
            ("at", 16.0, "partition", ["$leader"], ["$rest"]),
            ("at", 16.1, "kill", "$follower"),
            ("at", 16.2, "kill", "$follower"),
            ("at", 17.0, "restart", "$down"),
            ("at", 17.0, "restart", "$down"),
            ("at", 30.0, "heal"),
            ("expect", 59.0, "all_live"),
        ],
    )


def reclaimed_then_resumed(seed: int) -> Scenario:
    """c1's server dies a moment after granting it a lease, before reporting
    it, while c1 is cut off from every server.  The server stays down past its
    Reclaim, so c1's seat goes to c4; then it restarts (its leases get a fresh
    grace), rejoins, and c1's app restarts and asks to resume the lease it lost.
    A server that kept its reclaimed leases resumes it: five seats held of four
    (mutant 14)."""
    return Scenario(
        name=f"reclaimed_then_resumed/{seed}",
        description=reclaimed_then_resumed.__doc__ or "",
        servers=3,
        clients=5,
        seats=4,
        duration=110.0,
        seed=seed,
        steps=[
            ("at", 7.0, "checkout", "c2", "cad", "2.0"),
            ("at", 7.0, "checkout", "c3", "cad", "2.0"),
            ("at", 7.0, "checkout", "c4", "cad", "2.0"),
            ("at", 9.0, "checkout", "c1", "cad", "2.0"),
            ("at", 9.03 + 0.003 * (seed % 20), "partition", ["c1"], ["s1", "s2", "s3"]),
            ("at", 9.03 + 0.003 * (seed % 20), "kill", "$holder:c1"),
            ("at", 11.0, "checkout", "c5", "cad", "2.0"),
            ("at", 60.0, "checkout", "c5", "cad", "2.0"),
            ("at", 70.0, "restart", "$down"),
            ("at", 80.0, "heal"),
            ("at", 82.0, "reconnect", "c1"),
            ("expect", 109.0, "all_live"),
        ],
    )


def rejoin_at_reclaim(seed: int) -> Scenario:
    """The leader is cut off and fenced, and the partition heals well before
    its Reclaim is due: it rejoins and serves again under contention.  A
    Reclaim applied after the Rejoin takes its seats back while its clients
    hold them (mutant 18)."""
    return Scenario(
        name=f"rejoin_at_reclaim/{seed}",
        description=rejoin_at_reclaim.__doc__ or "",
        servers=3,
        clients=6,
        seats=4,
        duration=100.0,
        workload=True,
        seed=seed,
        steps=[
            ("at", 8.0, "partition", ["$leader"], ["$rest"]),
            ("at", 25.0, "heal"),
            ("expect", 99.0, "all_live"),
        ],
    )


def figure_8(seed: int) -> Scenario:
    """Raft's Figure 8 on five servers.  The leader and one follower are cut
    off, and the leader appends entries (lease reports) that only that follower
    gets.  The other three elect a leader, which persists its first entry and
    dies before sending it.  The old leader dies too; after the heal its
    follower wins and ships the old entries one per message; it dies as soon
    as its commit index first moves.  Then the server that died holding the
    newer-epoch entry comes back and wins.  Had the old entries been committed by counting replicas,
    it would now overwrite a committed entry (mutant 16)."""
    return Scenario(
        name=f"figure_8/{seed}",
        description=figure_8.__doc__ or "",
        servers=5,
        clients=7,
        seats=6,
        duration=90.0,
        workload=True,
        seed=seed,
        steps=[
            ("at", 8.0, "crash_on", "leader"),
            ("at", 8.0, "partition", ["$leader", "$follower"], ["$rest"]),
            # s1 leads first (priority order): the old leader goes, so the
            # follower holding its entries is the one that wins after the heal.
            ("at", 14.9, "kill", "s1"),
            ("at", 15.0, "crash_on", "commit"),
            ("at", 15.0, "heal"),
            ("at", 25.0, "restart", "s3"),
            ("at", 25.0, "restart", "s4"),
            ("at", 25.0, "restart", "s5"),
            ("at", 45.0, "quiet"),
            ("expect", 89.0, "all_live"),
        ],
    )


def healed_server_asked(seed: int) -> Scenario:
    """The leader and every client are cut off from the other two servers; the
    leader is fenced and, after the heal, catches up and rejoins.  Right after
    the heal the clients, still at that server, ask for seats one after the
    other: it must not serve before its Rejoin commits (mutant 9)."""
    clients = [f"c{i}" for i in range(1, 9)]
    asks = [("at", 25.0 + 0.04 * k, "checkout", c, "cad", "2.0") for k, c in enumerate(clients, start=1)]
    return Scenario(
        name=f"healed_server_asked/{seed}",
        description=healed_server_asked.__doc__ or "",
        servers=3,
        clients=len(clients),
        seats=12,
        duration=80.0,
        seed=seed,
        steps=[
            ("at", 8.0, "partition", ["$leader", *clients], ["$rest"]),
            ("at", 25.0, "heal"),
            *asks,
            ("expect", 79.0, "all_live"),
        ],
    )
