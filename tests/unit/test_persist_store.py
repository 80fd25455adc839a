"""Store (snapshot + journal), scenario by scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.persist import (
    CorruptJournal,
    CorruptSnapshot,
    CrashingMemoryStorage,
    DirStorage,
    Journal,
    NotPlainData,
    SimulatedCrash,
    Storage,
    StorageCall,
    Store,
    StoreBroken,
    write_snapshot,
)


def _store(storage: Storage, **kwargs: Any) -> Store:
    kwargs.setdefault("schema_version", 1)
    return Store(storage, "leases", **kwargs)


def test_fresh_store_loads_nothing() -> None:
    assert _store(CrashingMemoryStorage()).load() == (None, [])


def test_synced_records_survive_a_power_cut(tmp_path: Path) -> None:
    for storage in (CrashingMemoryStorage(), DirStorage(tmp_path / "s1")):
        store = _store(storage)
        store.load()
        assert [store.append({"grant": i}) for i in range(3)] == [1, 2, 3]
        store.sync()
        store.append({"grant": "unsynced"})
        if isinstance(storage, CrashingMemoryStorage):
            storage.crash()
            assert _store(storage).load() == (None, [{"grant": 0}, {"grant": 1}, {"grant": 2}])
        else:
            assert _store(DirStorage(tmp_path / "s1")).load().records[-1] == {"grant": "unsynced"}


def test_compaction_then_more_records() -> None:
    mem = CrashingMemoryStorage()
    store = _store(mem)
    store.load()
    for i in range(4):
        store.append(i)
    store.compact([0, 1, 2, 3])  # durable without a sync
    assert (store.records_since_snapshot, store.journal_bytes, store.synced_seq) == (0, 0, 4)
    store.append(4)
    store.sync()
    mem.crash()
    reloaded = _store(mem)
    assert reloaded.load() == ([0, 1, 2, 3], [4])
    assert reloaded.last_seq == 5
    assert mem.list() == ["leases.journal", "leases.snap"]


def test_writes_before_load_are_refused() -> None:
    with pytest.raises(StoreBroken, match="load"):
        _store(CrashingMemoryStorage()).append(1)


def test_needs_compaction_by_records_and_by_bytes() -> None:
    by_count = _store(CrashingMemoryStorage(), compact_every_records=3)
    by_count.load()
    for _ in range(2):
        by_count.append("x")
    assert not by_count.needs_compaction()
    by_count.append("x")
    assert by_count.needs_compaction()
    by_count.compact(["x"] * 3)
    assert not by_count.needs_compaction()
    by_size = _store(CrashingMemoryStorage(), compact_every_bytes=1000)
    by_size.load()
    by_size.append("y" * 2000)
    assert by_size.needs_compaction()


def test_counters_survive_a_reload() -> None:
    mem = CrashingMemoryStorage()
    store = _store(mem, compact_every_records=3)
    store.load()
    for i in range(3):
        store.append(i)
    store.sync()
    again = _store(mem, compact_every_records=3)
    again.load()
    assert again.needs_compaction() and again.journal_bytes == store.journal_bytes


def test_crash_between_snapshot_rename_and_journal_reset_applies_nothing_twice() -> None:
    mem = CrashingMemoryStorage()
    store = _store(mem)
    store.load()
    for i in range(5):
        store.append(i)
    store.sync()

    def crash_at_reset(call: StorageCall) -> None:
        if call.op == "truncate":
            raise SimulatedCrash("after rename, before the journal reset")

    mem.set_hook(crash_at_reset)
    with pytest.raises(SimulatedCrash):
        store.compact([0, 1, 2, 3, 4])
    mem.set_hook(None)
    assert len(Journal(mem, "leases.journal").replay().records) == 5  # the stale journal is still there
    reloaded = _store(mem)
    assert reloaded.load() == ([0, 1, 2, 3, 4], [])
    assert mem.read("leases.journal") == b""  # the interrupted compaction was finished
    assert reloaded.append(5) == 6


def test_store_refuses_use_after_a_failed_write() -> None:
    mem = CrashingMemoryStorage()
    store = _store(mem)
    store.load()
    mem.fail_after(0)
    with pytest.raises(SimulatedCrash):
        store.append(1)
    with pytest.raises(StoreBroken):
        store.append(2)
    with pytest.raises(StoreBroken):
        store.sync()


class _FailingSync(CrashingMemoryStorage):
    def sync(self, name: str) -> None:
        raise OSError(5, "EIO")


def test_failed_fsync_is_never_retried() -> None:
    """After EIO from fsync the dirty pages may be gone: retrying would lie."""
    store = _store(_FailingSync())
    store.load()
    store.append(1)
    with pytest.raises(OSError):
        store.sync()
    with pytest.raises(StoreBroken):
        store.sync()


def test_non_plain_record_or_state_does_not_break_the_store() -> None:
    mem = CrashingMemoryStorage()
    store = _store(mem)
    store.load()
    with pytest.raises(NotPlainData):
        store.append(object())
    with pytest.raises(NotPlainData):
        store.compact({"x": object()})
    assert store.append("ok") == 1
    store.sync()
    assert _store(mem).load() == (None, ["ok"])


def _raw_journal(mem: CrashingMemoryStorage, *items: Any) -> None:
    journal = Journal(mem, "leases.journal")
    for item in items:
        journal.append(item)
    journal.sync()


def test_gap_in_sequence_numbers_is_corruption() -> None:
    mem = CrashingMemoryStorage()
    _raw_journal(mem, (1, 1, "a"), (3, 1, "c"))
    with pytest.raises(CorruptJournal, match="seq 3, expected 2"):
        _store(mem).load()


def test_records_missing_after_the_snapshot_is_corruption() -> None:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "leases.snap", [], schema_version=1, meta={"stream": "leases", "last_seq": 2})
    _raw_journal(mem, (5, 1, "e"))
    with pytest.raises(CorruptJournal, match="missing"):
        _store(mem).load()


def test_record_that_is_not_a_store_record_is_corruption() -> None:
    mem = CrashingMemoryStorage()
    _raw_journal(mem, ["not", "a", "tuple"])
    with pytest.raises(CorruptJournal, match="not \\(seq, schema_version, record\\)"):
        _store(mem).load()


def test_snapshot_of_another_stream_is_refused() -> None:
    mem = CrashingMemoryStorage()
    raft = Store(mem, "raft", schema_version=1)
    raft.load()
    raft.compact({"log": []})
    data = mem.read("raft.snap")
    assert data is not None
    mem.write_atomic("leases.snap", data)
    with pytest.raises(CorruptSnapshot, match="stream 'leases'"):
        _store(mem).load()


def test_records_and_snapshots_are_upgraded_from_older_schemas() -> None:
    mem = CrashingMemoryStorage()
    old = _store(mem, schema_version=1)
    old.load()
    old.append({"lease": "a"})
    old.compact({"leases": ["a"]})
    old.append({"lease": "b"})
    old.sync()
    new = _store(
        mem,
        schema_version=2,
        upgrades={1: lambda s: {**s, "tombstones": []}},
        record_upgrades={1: lambda r: {**r, "seats": 1}},
    )
    assert new.load() == ({"leases": ["a"], "tombstones": []}, [{"lease": "b", "seats": 1}])
    new.append({"lease": "c", "seats": 2})
    new.sync()
    with pytest.raises(CorruptJournal, match="schema_version 2; this build supports up to 1"):
        _store(mem, schema_version=1).load()


def test_future_snapshot_schema_is_refused_by_the_store() -> None:
    mem = CrashingMemoryStorage()
    newer = _store(mem, schema_version=3)
    newer.load()
    newer.compact({})
    with pytest.raises(CorruptSnapshot, match="newer"):
        _store(mem, schema_version=2).load()


@pytest.mark.parametrize("stream", ["", "Leases", "a/b", "x" * 65])
def test_invalid_stream_names(stream: str) -> None:
    with pytest.raises(ValueError):
        Store(CrashingMemoryStorage(), stream, schema_version=1)


def test_two_streams_share_a_directory(tmp_path: Path) -> None:
    storage = DirStorage(tmp_path / "s1")
    raft, leases = Store(storage, "raft", schema_version=1), Store(storage, "leases", schema_version=1)
    raft.load()
    leases.load()
    raft.append("entry")
    leases.append("grant")
    raft.sync()
    leases.sync()
    assert storage.list() == ["leases.journal", "raft.journal"]
    assert Store(storage, "raft", schema_version=1).load() == (None, ["entry"])
