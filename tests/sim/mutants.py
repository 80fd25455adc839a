"""Mutants: each breaks one critical guard of the core, to check the checker.

A simulator that cannot catch these proves nothing.  Each mutant is a function
that patches the core through pytest's ``monkeypatch`` (or returns simulator
overrides) and names the rules its violation may show up as.  The numbering
follows the issue: docs/simulator.md lists what each guard protects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.core import leading, member, node, nodebase, pool, raft, registry
from actors.core.timing import Timing
from tests.sim.net import NetParams
from tests.sim.scenario import Scenario

__all__ = ["Mutant", "MUTANTS"]

Patch = Callable[[pytest.MonkeyPatch], dict[str, Any]]


@dataclass(frozen=True)
class Mutant:
    number: int
    name: str
    patch: Patch
    seeds: range = range(400)
    budget: float = 120.0
    servers: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    scenario: Callable[[int], Scenario] | None = None
    """Run this seeded scenario instead of the random fault schedules."""


def _no_leader_wait(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(raft.Raft, "new_leader_wait", lambda self, won_at: won_at)
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
    mp.setattr(raft.Raft, "serving_lease_end",
               lambda self, sent, received, d: received + self.timing.holder_valid_for(d))

    def lease_from_ack(self: raft.Raft) -> None:
        rounds = sorted([self.round] + [p.acked_round for p in self.peers.values()], reverse=True)
        if rounds[self.majority - 1] in self.round_sent:
            latest = max(p.last_heard for p in self.peers.values())
            self.lease_until = max(self.lease_until, latest + self.timing.holder_valid_for(self.timing.leader_lease))

    mp.setattr(raft.Raft, "_extend_lease", lease_from_ack)
    return {}


def _vote_before_persist(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"durable_before_send": False}


def _serve_before_rejoin(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    def lax(self: nodebase.NodeBase, table: Any, now: float) -> Any:
        if table is not None and not table.majority:
            return None
        return None if self.raft.holds_serving_lease(now) else nodebase.DenyReason.NO_MAJORITY

    mp.setattr(nodebase.NodeBase, "serve_problem", lax)
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
    def forgetful(self: node.ServerNode) -> None:
        reg = self.member.pool.registry
        for lid in list(self.member.leases.leases):
            if reg.holder(lid) != self.name:
                self.member.leases.drop(lid)

    mp.setattr(node.ServerNode, "_reconcile_on_rejoin", forgetful)
    return {}


def _reclaim_after_rejoin(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    def reclaim_anyway(self: pool.PoolState, entry: Any, _verify: Any) -> Any:
        server = self.servers.get(entry.server)
        if server is None:
            return pool.Applied(False, "unknown server")
        return self._take_down(server, everything=False)

    mp.setitem(pool._HANDLERS, pool.e.Reclaim, reclaim_anyway)
    return {}


def _renew_without_echo(mp: pytest.MonkeyPatch) -> dict[str, Any]:
    mp.setattr(raft.Raft, "echo_ok", lambda self, peer, echo, now: True)
    return {}


MUTANTS: tuple[Mutant, ...] = (
    # With the default timing a new leader's fence grace (f after its election,
    # itself f after the old leader's last contact) already outlasts the old
    # lease; a longer leader lease exposes the wait on its own.
    Mutant(1, "new leader does not wait out the old leader's lease", _no_leader_wait,
           overrides={"timing": Timing(heartbeat_interval=0.5, failure_timeout=1.5, leader_lease=6.0,
                                       fence_timeout=6.0, lease_ttl=30.0, clock_drift=0.01)},
           scenario=lambda seed: old_leader_cut_off(seed)),
    # Stale snapshot installs need duplicated and late messages.
    Mutant(2, "an older table is applied", _older_table_applied,
           overrides={"net": NetParams(drop_rate=0.005, dup_rate=0.05, long_rate=0.05, long_max=2.0),
                      "compact_every": 40}),
    Mutant(3, "borrowed seats used before the commit", _uncommitted_seats_used),
    Mutant(4, "transfer skips the giver's confirmation", _transfer_without_consent),
    Mutant(5, "a down server's seats reused before its serving lease expired", _fence_before_expiry),
    Mutant(6, "a released lease is resumed (no tombstone)", _no_tombstone),
    Mutant(7, "leases timed from the receive instead of the send", _timed_from_receive),
    Mutant(8, "a vote is answered before it is persisted", _vote_before_persist),
    Mutant(9, "a healed server serves before applying the current table", _serve_before_rejoin),
    Mutant(10, "a reconnect takes a second seat", _second_seat_on_reconnect),
    Mutant(11, "a cut applied without the holder's consent", _cut_without_consent),
    Mutant(12, "a serving lease granted past the end of the leader lease", _serving_past_leader_lease),
    Mutant(13, "a fenced server's spare seats freed at the fence", _reclaim_at_fence),
    Mutant(14, "a rejoining server resumes a lease whose seat was reclaimed", _keep_reclaimed_leases),
    Mutant(15, "a candidate wins without the up-to-date check", _no_up_to_date_check),
    Mutant(16, "older-epoch replicas counted as committed (Figure 8)", _figure_8),
    Mutant(17, "a rejoining server drops an unreported, unexpired lease", _drop_unreported_on_rejoin),
    Mutant(18, "a Reclaim applied after a Rejoin", _reclaim_after_rejoin),
    Mutant(19, "a serving lease renewed without the echo of the previous grant", _renew_without_echo),
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
