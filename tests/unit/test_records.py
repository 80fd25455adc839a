"""The core's typed journal records and their on-disk form (issue 10, item 4).

The core hands its shell ``HardRecord``, ``LogRecord``, ``CommitRecord``,
``InstallRecord`` and ``LeaseRecord``; the store turns them into the plain
tuples every journal so far holds.  A journal written before the records were
typed -- written here as literal tuples, one per frame (store schema 1) -- must
replay exactly as before.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from actors.core import records
from actors.core.node import ServerNode
from actors.core.node_settings import NodeSettings
from actors.core.records import CommitRecord, HardRecord, InstallRecord, LeaseRecord, LogRecord
from actors.core.timing import Timing
from actors.persist import CrashingMemoryStorage, Journal, Store
from actors.protocol import entries
from actors.protocol.raft import LogEntry
from actors.shell.persistence import NodeStore
from tests.factories import LEASE_KEY, license_code, verify

CODE = license_code(3)
LEASE = "s1.1.1.0000000000000000.c03ff9bf33256224dfadb980ea017537"


def _entry(index: int, kind: str, **fields: Any) -> tuple[Any, ...]:
    return ("@", "LogEntry", {"index": index, "epoch": 1, "entry": ("@", kind, fields)})


OLD_JOURNAL: list[tuple[Any, ...]] = [
    # A one-server pool's first boot: vote for itself, win, rejoin, add a
    # 3-seat license, grant one lease and see its report committed.
    ("hard", 0, None, 1),
    ("hard", 1, "s1", 1),
    ("log", 1, [_entry(1, "NoOp", leader="s1")]),
    ("commit", 1),
    ("log", 2, [_entry(2, "Rejoin", server="s1", incarnation=1)]),
    ("commit", 2),
    ("log", 3, [_entry(3, "AddLicense", code=CODE)]),
    ("commit", 3),
    ("lease", ("counter", 1)),
    (
        "lease",
        (
            "grant",
            {
                "lease_id": LEASE,
                "client_id": "a",
                "session_id": "a1",
                "feature": "cad",
                "version": "2.0",
                "expires_at": 42.3,
                "granted_at": 12.0,
                "revoked": False,
                "client_seq": 0,
            },
        ),
    ),
    (
        "log",
        4,
        [
            _entry(
                4,
                "LeaseReport",
                server="s1",
                changes=(
                    (
                        "@",
                        "LeaseChange",
                        {
                            "seq": 1,
                            "kind": "grant",
                            "lease_id": LEASE,
                            "client_id": "a",
                            "feature": "cad",
                            "version": "2.0",
                        },
                    ),
                ),
                watermark=1,
                generation=0,
            )
        ],
    ),
    ("commit", 4),
    ("lease", ("committed", 1)),
]


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


def old_store(journal: list[tuple[Any, ...]]) -> CrashingMemoryStorage:
    """A data directory as the build before typed records left it: one plain tuple per journal record."""
    storage = CrashingMemoryStorage(0)
    store = Store(storage, "node", schema_version=1)
    store.load()
    for record in journal:
        store.append(record)
    store.sync()
    return storage


def test_a_journal_written_before_typed_records_replays() -> None:
    durable = NodeStore.over(old_store(OLD_JOURNAL)).load()
    assert durable is not None
    snapshot, typed = durable
    assert snapshot is None
    assert typed[:4] == [
        HardRecord(0, None, 1),
        HardRecord(1, "s1", 1),
        LogRecord(1, (LogEntry(index=1, epoch=1, entry=entries.NoOp(leader="s1")),)),
        CommitRecord(1),
    ]
    assert typed[-1] == LeaseRecord(("committed", 1))
    node, ready = ServerNode.boot(settings(), durable, 100.0)
    assert (node.raft.term, node.raft.voted_for, node.raft.incarnation) == (1, "s1", 2)
    assert node.applied == 4 and node.raft.log.last_index == 4
    assert sorted(node.pool.licenses) == ["L1"]
    assert list(node.member.leases.leases) == [LEASE]
    assert node.member.leases.counter == 1 and node.member.leases.changes == []
    assert node.pool.registry.holder(LEASE) == "s1"
    assert ready.persist == [HardRecord(1, "s1", 2)]


def test_a_snapshot_and_journal_written_by_the_old_store_load() -> None:
    """Store schema 1 (one record per frame) with a snapshot: the snapshot is
    read as it is, each old frame becomes a step of one record."""
    node, _ = ServerNode.boot(settings(), (None, [records.from_plain(x) for x in OLD_JOURNAL[:8]]), 100.0)
    storage = CrashingMemoryStorage(0)
    old = Store(storage, "node", schema_version=1)
    old.load()
    for record in OLD_JOURNAL[:8]:
        old.append(record)
    old.compact(node.snapshot())
    for record in OLD_JOURNAL[8:]:
        old.append(record)
    old.sync()
    durable = NodeStore.over(storage).load()
    assert durable is not None and durable[0] == node.snapshot()
    assert durable[1] == [records.from_plain(x) for x in OLD_JOURNAL[8:]]
    again, _ = ServerNode.boot(settings(), durable, 100.0)
    whole, _ = ServerNode.boot(settings(), NodeStore.over(old_store(OLD_JOURNAL)).load(), 100.0)
    # The same node, but for the incarnation: the snapshot was taken after one more boot.
    assert {**again.snapshot(), "hard": None} == {**whole.snapshot(), "hard": None}


def test_the_store_writes_typed_records_as_the_old_plain_tuples() -> None:
    storage = CrashingMemoryStorage(0)
    store = NodeStore.over(storage)
    assert store.load() is None
    store.write([records.from_plain(x) for x in OLD_JOURNAL])
    # One frame (schema 2: a step is one list of records), holding exactly the plain tuples of before.
    assert Journal(storage, "node.journal").replay().records == [(1, 2, OLD_JOURNAL)]


@pytest.mark.parametrize(
    "plain",
    [
        *OLD_JOURNAL,
        ("install", 7, 2, {"servers": {}, "features": {}}),
    ],
)
def test_every_record_kind_round_trips_to_the_same_plain_tuple(plain: tuple[Any, ...]) -> None:
    typed = records.from_plain(plain)
    assert records.to_plain(typed) == plain
    assert records.from_plain(list(plain)) == typed


def test_install_records_keep_their_plain_pool_state() -> None:
    state: dict[str, Any] = {"servers": {"s1": {}}, "features": {}}
    assert records.from_plain(("install", 7, 2, state)) == InstallRecord(7, 2, state)


@pytest.mark.parametrize("bad", [("vote", 1), ("hard", 1, "s1"), ("commit",), ()])
def test_an_unknown_record_is_refused(bad: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="not a journal record"):
        records.from_plain(bad)
