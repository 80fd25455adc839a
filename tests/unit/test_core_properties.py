"""Property tests of the pool core over random operation sequences.

A hypothesis state machine drives three servers (``Member``) that apply one
shared committed log, with a leader planning borrows, fail-overs, transfers and
rebalancing through ``actors.core.planner``.  After every step:

* the table invariant holds on every committed table;
* every server's in-use count is within what it may use;
* no seat is counted in two places: what the servers may use plus the free
  pool never exceeds the licensed total;
* every server holds the same committed state.

Replication faults are the simulator's job (tests/sim); here the log is
delivered to every server at once so the properties isolate the state machine.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.core import planner
from actors.core.member import Grant, Member, Wait
from actors.core.pool import DOWN, FENCED, LIVE, PoolState
from actors.protocol import entries as log_entries
from actors.protocol.client import HeldLease
from tests.factories import addon_code, lease_id, license_code, verify

SERVERS = ("s1", "s2", "s3")
KEYS = (("cad", "2.0"), ("sim", "1"))
server_names = st.sampled_from(SERVERS)
features = st.sampled_from(KEYS)


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.members = {name: Member.new(name, SERVERS, threshold=0.9, ttl_hold=30.0) for name in SERVERS}
        self.leader = "s1"
        self.index = 0
        self.now = 0.0
        self.serials = 0
        self.transfers = 0
        self.licensed: set[tuple[str, str]] = set()
        self.released: list[tuple[str, HeldLease, str]] = []
        """(origin, lease, client) of leases their clients gave back."""

    # ---- plumbing ----------------------------------------------------------------

    def commit(self, *entries: log_entries.Entry) -> None:
        """Append entries to the log; every server applies each one at once, and
        givers' consents are committed as the transfer's second phase."""
        queue = list(entries)
        while queue:
            entry = queue.pop(0)
            self.index += 1
            for member in self.members.values():
                _, consents = member.apply(entry, self.index, 1, verify, self.now)
                queue.extend(log_entries.TransferComplete(transfer_id=c.transfer_id, given=c.given) for c in consents)

    def new_id(self) -> str:
        self.transfers += 1
        return f"t{self.transfers}"

    def spare(self, server: str, key: tuple[str, str]) -> int:
        """The leader knows its own use exactly and the others' only as reported."""
        if server == self.leader:
            return self.members[server].spare(key)
        table = self.pool.features[key]
        return table.allocated(server) - self.pool.registry.in_use(server, key)

    @property
    def pool(self) -> PoolState:
        return self.members[self.leader].pool

    # ---- admin -------------------------------------------------------------------

    @rule(key=features, count=st.integers(1, 8), criteria=st.booleans(), majority=st.booleans())
    def add_license(self, key: tuple[str, str], count: int, criteria: bool, majority: bool) -> None:
        self.serials += 1
        dist = f"s2:{count // 2}" if criteria else None
        code = license_code(count, key[0], key[1], serial=f"L{self.serials}", majority=majority, distribution=dist)
        self.commit(log_entries.AddLicense(code=code))
        self.licensed.add(key)

    @precondition(lambda self: self.serials > 0)
    @rule(of=st.integers(1, 5), count=st.integers(1, 4))
    def add_addon(self, of: int, count: int) -> None:
        self.serials += 1
        self.commit(
            log_entries.AddAddon(
                code=addon_code(f"L{min(of, self.serials - 1) or 1}", count, serial=f"A{self.serials}")
            )
        )

    @rule(key=features, a=st.integers(0, 4), b=st.integers(0, 4))
    def set_criteria(self, key: tuple[str, str], a: int, b: int) -> None:
        self.commit(log_entries.SetCriteria(feature=key[0], version=key[1], targets=(("s1", a), ("s3", b))))

    # ---- the fast path -------------------------------------------------------------

    @rule(requests=st.lists(st.tuples(server_names, features, st.integers(0, 9)), min_size=1, max_size=8))
    def checkouts(self, requests: list[tuple[str, tuple[str, str], int]]) -> None:
        """A burst of checkouts: contention is what the properties are about."""
        for server, key, client in requests:
            self.checkout(server, key, client)

    def checkout(self, server: str, key: tuple[str, str], client: int) -> None:
        member = self.members[server]
        if self.pool.status(server) != LIVE:
            return
        new_id = lease_id(server, member.leases.next_counter(), f"c{client}")
        decision = member.checkout(f"c{client}", f"sess{client}", key, self.now, "2026-01-01", new_id)
        borrow = decision.borrow if isinstance(decision, (Grant, Wait)) else 0
        if borrow:
            self.commit(*planner.plan_borrow(self.pool, self.leader, server, key, borrow, self.spare, self.new_id))

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        held = [(m, lid) for m in self.members.values() for lid in m.leases.leases]
        if held:
            member, lid = data.draw(st.sampled_from(held))
            lease = member.leases.leases[lid]
            member.leases.release(lid, lease.client_id)
            self.released.append(
                (member.name, HeldLease(lease_id=lid, feature=lease.feature, version=lease.version), lease.client_id)
            )

    @rule(step=st.floats(0.5, 40.0))
    def time_passes(self, step: float) -> None:
        self.now += step
        for member in self.members.values():
            member.leases.expire(self.now)

    @rule(server=server_names)
    def report(self, server: str) -> None:
        self.commit(self.members[server].report())

    @rule(data=st.data())
    def fail_over(self, data: st.DataObject) -> None:
        held = [(m.name, lease) for m in self.members.values() for lease in m.leases.leases.values()]
        if not held:
            return
        origin, lease = data.draw(st.sampled_from(held))
        to = data.draw(server_names.filter(lambda s: s != origin))
        if self.pool.status(to) != LIVE:
            return
        plan = planner.plan_failover(
            self.pool,
            self.leader,
            to,
            lease.client_id,
            int(self.now * 1000) + 1,
            (HeldLease(lease_id=lease.lease_id, feature=lease.feature, version=lease.version),),
            self.spare,
            self.new_id,
        )
        self.commit(*plan.entries)

    @precondition(lambda self: self.released)
    @rule(data=st.data(), to=server_names)
    def stale_fail_over(self, data: st.DataObject, to: str) -> None:
        """A fail-over update that lists a lease its client already released
        (a late duplicate): it must never let a seat be used twice."""
        origin, held, client = data.draw(st.sampled_from(self.released))
        if to == origin or self.pool.status(to) != LIVE:
            return
        plan = planner.plan_failover(
            self.pool, self.leader, to, client, int(self.now * 1000) + 1, (held,), self.spare, self.new_id
        )
        self.commit(*plan.entries)

    # ---- the leader's timers --------------------------------------------------------

    @rule()
    def rebalance(self) -> None:
        self.commit(*planner.plan_rebalance(self.pool, lambda s, k: True, lambda s: 0.9, self.spare, self.new_id))

    @rule()
    def seat_pending(self) -> None:
        self.commit(*planner.plan_pending(self.pool, self.leader, self.spare, self.new_id))

    @rule(server=st.sampled_from(SERVERS[1:]))
    def fence(self, server: str) -> None:
        self.commit(log_entries.Fence(server=server, incarnation=1))

    @rule(server=st.sampled_from(SERVERS[1:]))
    def reclaim(self, server: str) -> None:
        if self.pool.status(server) == FENCED:
            self.commit(log_entries.Reclaim(server=server))

    @rule(server=st.sampled_from(SERVERS[1:]))
    def rejoin(self, server: str) -> None:
        if self.pool.status(server) != LIVE:
            self.commit(log_entries.Rejoin(server=server, incarnation=1))

    @rule(server=st.sampled_from(SERVERS[1:]))
    def server_down(self, server: str) -> None:
        if self.pool.status(server) != LIVE:
            self.commit(log_entries.ServerDown(server=server))

    # ---- invariants ---------------------------------------------------------------------

    @invariant()
    def table_invariant(self) -> None:
        assert not self.pool.problems(), self.pool.problems()

    @invariant()
    def same_committed_state_everywhere(self) -> None:
        plains = [m.pool.to_plain() for m in self.members.values()]
        assert all(p == plains[0] for p in plains)

    @invariant()
    def in_use_within_allocation(self) -> None:
        for member in self.members.values():
            if member.pool.status(member.name) == DOWN:
                continue
            for key in member.pool.features:
                # Live leases only: a released seat waiting for its report to
                # commit may sit above a cut allocation, but is never re-granted.
                assert member.leases.held(key) <= member.usable(key), (member.name, key)

    @invariant()
    def no_seat_counted_twice(self) -> None:
        for key, table in self.pool.features.items():
            usable = sum(m.usable(key) for m in self.members.values())
            assert usable + table.free <= table.total, (key, usable, table.free, table.total)
            held = sum(m.leases.held(key) for m in self.members.values())
            assert held <= table.total, (key, held, table.total)

    @invariant()
    def every_registered_lease_is_held_by_its_holder(self) -> None:
        for lease in self.pool.registry.leases.values():
            holder = self.members[lease.holder]
            assert (
                lease.lease_id in holder.leases.leases
                or lease.revoked
                or lease.lease_id in {c.lease_id for c in holder.leases.changes}
            ), lease


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
