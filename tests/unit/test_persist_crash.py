"""Crash at every persist point: nothing confirmed is lost, nothing applied twice.

The workload is what a server does: mutate its state, ``append`` a record,
``sync`` (after which it may reply), and now and then ``compact``. A record is
*confirmed* once a ``sync`` or ``compact`` that followed it has returned. After
a crash (power cut, optionally with torn writes and interrupted calls taking
effect), the recovered state must be exactly the first k records issued, in
order, for some k >= the number confirmed; and the recovered store must go on
working, through further crashes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.persist import CrashingMemoryStorage, SimulatedCrash, Store

SCRIPT = "aasaaacasssaaaacaasacsaaaac"  # a: append, s: sync, c: compact
AFTER = "aasacaas"


@dataclass
class Server:
    """A model server whose whole state is the list of record values applied."""

    store: Store
    issued: list[int]
    confirmed: int = 0
    values: itertools.count[int] = field(default_factory=itertools.count)

    def run(self, script: str) -> None:
        for op in script:
            if op == "a":
                value = next(self.values)
                self.issued.append(value)  # mutate state first...
                self.store.append(value)  # ...then journal it
            elif op == "s":
                self.store.sync()
                self.confirmed = len(self.issued)  # replies may be sent now
            else:
                self.store.compact(list(self.issued))
                self.confirmed = len(self.issued)


def _open(storage: CrashingMemoryStorage) -> tuple[Store, list[int]]:
    store = Store(storage, "leases", schema_version=1, compact_every_records=4)
    state, records = store.load()
    return store, [*(state or []), *records]


def _check_recovery(server: Server, storage: CrashingMemoryStorage) -> Server:
    """Reload after a crash, check the invariants, return the restarted server."""
    store, recovered = _open(storage)
    assert recovered == server.issued[: len(recovered)], "reordered, duplicated or invented records"
    assert len(recovered) >= server.confirmed, "a confirmed record was lost"
    assert store.last_seq >= len(recovered)
    _, again = _open(storage)  # recovery is idempotent
    assert again == recovered
    return Server(store, recovered, confirmed=len(recovered), values=server.values)


def _points_in(script: str) -> int:
    storage = CrashingMemoryStorage(0)
    server = Server(_open(storage)[0], [])
    before = storage.persist_points
    server.run(script)
    return storage.persist_points - before


def _crash_during(server: Server, storage: CrashingMemoryStorage, script: str, point: int) -> None:
    storage.fail_after(point)
    try:
        server.run(script)
    except SimulatedCrash:
        return
    storage.fail_after(None)
    storage.crash()  # crash after the script: the last fsync must have held


@pytest.mark.parametrize(
    ("torn", "seeds"),
    [(False, [0]), (True, range(6))],
    ids=["clean-cuts", "torn-writes"],
)
def test_crash_at_every_persist_point(torn: bool, seeds: range | list[int]) -> None:
    total = _points_in(SCRIPT)
    after = _points_in(AFTER)
    assert total > 20
    for seed in seeds:
        for point in range(total + 1):
            storage = CrashingMemoryStorage(seed * 1000 + point, torn_writes=torn, zero_fill=torn)
            server = Server(_open(storage)[0], [])
            _crash_during(server, storage, SCRIPT, point)
            server = _check_recovery(server, storage)
            # The recovered store keeps working, and survives a second crash.
            _crash_during(server, storage, AFTER, (point * 7) % (after + 1))
            _check_recovery(server, storage)


@settings(max_examples=150, deadline=None)
@given(
    rounds=st.lists(
        st.tuples(st.text(alphabet="aaaasc", max_size=25), st.integers(min_value=0, max_value=60)),
        min_size=1,
        max_size=5,
    ),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    torn=st.booleans(),
)
def test_random_workloads_with_repeated_crashes(rounds: list[tuple[str, int]], seed: int, torn: bool) -> None:
    storage = CrashingMemoryStorage(seed, torn_writes=torn, zero_fill=torn)
    server = Server(_open(storage)[0], [])
    for script, point in rounds:
        _crash_during(server, storage, script, point)
        server = _check_recovery(server, storage)


def test_a_process_crash_loses_nothing_appended() -> None:
    """kill -9 without a power cut: the page cache, so every append, survives."""
    storage = CrashingMemoryStorage(0)
    server = Server(_open(storage)[0], [])
    server.run("aasaa")
    storage.crash(power_loss=False)
    _, recovered = _open(storage)
    assert recovered == server.issued
