"""One step, one atomic write (issue 11, defect 4).

``NodeStore`` writes the records of one ``Ready`` as one checksummed journal
frame.  Cut the journal anywhere inside that frame -- at every byte, so at
every record boundary too, with or without a zero-filled tail as a file
system may leave after a power cut -- and the server must come back in the
state before the step or after it, never in between.  Before the fix each
record had its own frame, and a cut after the ``commit`` record but before its
lease ops gave a server whose committed registry holds a lease its table does
not (the split-store mutant below shows the check catches exactly that).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from actors.core.effects import ClientRef, Ready
from actors.core.node import ServerNode
from actors.core.node_settings import NodeSettings
from actors.core.records import CommitRecord, LeaseRecord, Record
from actors.core.timing import Timing
from actors.persist import CrashingMemoryStorage, SimulatedCrash
from actors.protocol import client
from actors.protocol import pool as pool_msgs
from actors.shell.persistence import NodeStore
from tests.factories import LEASE_KEY, license_code, verify

JOURNAL = "node.journal"


def settings() -> NodeSettings:
    nonces = itertools.count()
    return NodeSettings(
        "s1",
        ("s1",),
        Timing(),
        verify,
        LEASE_KEY,
        nonce=lambda: next(nonces).to_bytes(8, "big"),
        today=lambda: "2026-11-28",
    )


def steps_to_a_checkout() -> list[list[Record]]:
    """Every step's records of a one-server pool, from its first boot to the
    step that grants a lease, its last: that one commits the lease report and
    journals the grant after the commit record."""
    node, ready = ServerNode.boot(settings(), None, 0.0)
    steps, now = [ready.persist], 0.0

    def run(step: Ready) -> None:
        steps.append(step.persist)

    for _ in range(40):
        now += 0.25
        run(node.tick(now))
    run(
        node.from_client(
            ClientRef("cli"),
            pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r1", code=license_code(3)),
            now,
        )
    )
    for _ in range(8):
        now += 0.25
        run(node.tick(now))
    run(
        node.from_client(
            ClientRef("a1"),
            client.CheckoutRequest(client_id="a", session_id="a1", request_id=1, feature="cad", version="2.0"),
            now,
        )
    )
    last = steps[-1]
    commit = next(i for i, x in enumerate(last) if isinstance(x, CommitRecord))
    assert any(isinstance(x, LeaseRecord) and x.op[0] == "grant" for x in last[commit:]), last
    return [s for s in steps if s]


def state_after(durable: Any) -> tuple[Any, ...]:
    """What a restarted server holds: its log, its applied table and its lease table."""
    node, _ = ServerNode.boot(settings(), durable, 500.0)
    return (
        node.raft.term,
        node.raft.log.last_index,
        node.applied,
        node.pool.to_plain(),
        node.member.leases.to_plain(),
        dict(node.member.consents),
    )


def written(steps: list[list[Record]]) -> bytes:
    storage = CrashingMemoryStorage(0)
    store = NodeStore.over(storage, compact_every_records=10**9)
    store.load()
    for step in steps:
        store.write(step)
    return storage.read(JOURNAL) or b""


def recovered(journal: bytes) -> tuple[Any, ...]:
    storage = CrashingMemoryStorage(0)
    storage.append(JOURNAL, journal)
    storage.sync(JOURNAL)
    return state_after(NodeStore.over(storage).load())


def cut_states(steps: list[list[Record]]) -> dict[int, tuple[Any, ...]]:
    """The state recovered from the journal cut at every byte of the last
    step's bytes, plain and with the rest of the step zero-filled."""
    base, full = written(steps[:-1]), written(steps)
    assert full.startswith(base)
    states: dict[int, tuple[Any, ...]] = {}
    for cut in range(len(base), len(full) + 1):
        states[cut] = recovered(full[:cut])
        if cut < len(full):
            assert recovered(full[:cut] + bytes(len(full) - cut)) == states[cut]
    return states


def test_a_crash_inside_a_step_recovers_the_state_before_or_after_the_whole_step() -> None:
    steps = steps_to_a_checkout()
    before, after = recovered(written(steps[:-1])), recovered(written(steps))
    assert before != after
    states = cut_states(steps)
    full = max(states)
    assert states[full] == after
    assert all(state == before for cut, state in states.items() if cut < full), "part of a step was replayed"
    assert len(states) > 100  # every byte of the step's frame was a cut point


def test_a_crash_at_each_persist_point_of_a_step_keeps_it_whole_or_not_at_all() -> None:
    steps = steps_to_a_checkout()
    before, after = recovered(written(steps[:-1])), recovered(written(steps))
    outcomes = set()
    for seed in range(40):
        storage = CrashingMemoryStorage(seed, torn_writes=True, zero_fill=bool(seed % 2))
        store = NodeStore.over(storage, compact_every_records=10**9)
        store.load()
        for step in steps[:-1]:
            store.write(step)
        storage.fail_after(seed % 2)  # at the append, or at the fsync
        with pytest.raises(SimulatedCrash):
            store.write(steps[-1])
        state = state_after(NodeStore.over(storage).load())
        assert state in (before, after)
        outcomes.add(state == after)
    assert outcomes == {False, True}


def test_the_check_catches_a_store_that_writes_a_step_record_by_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant: the records of a step in frames of their own (the store before the fix)."""

    def record_by_record(self: NodeStore, step: list[Record]) -> None:
        for record in step:
            original(self, [record])

    original = NodeStore.append
    monkeypatch.setattr(NodeStore, "append", record_by_record)
    steps = steps_to_a_checkout()
    before, after = recovered(written(steps[:-1])), recovered(written(steps))
    torn = {cut: s for cut, s in cut_states(steps).items() if s not in (before, after)}
    assert torn, "a journal cut between the records of a step went unnoticed"
    # Among them: the commit record made it, the grant after it did not, so the
    # committed registry places a lease here that the lease table lacks.
    assert any(pool["registry"]["leases"] and not leases["leases"] for *_, pool, leases, _consents in torn.values())
