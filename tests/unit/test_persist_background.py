"""Compaction off the actor's thread (issue 12, lever 6).

``Store.cut`` / ``write_cut`` / ``finish_cut`` let a snapshot of the state at
a cut be written while records after the cut are appended; ``NodeStore``
writes it in a forked child.  The crash double crashes at every persist point
of a background compaction with appends and fsyncs in between: every record
synced before the crash is recovered, in order, exactly once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from actors.core.records import CommitRecord
from actors.persist import CorruptJournal, CrashingMemoryStorage, SimulatedCrash, Store
from actors.shell.persistence import NodeStore


def _store(storage: Any) -> Store:
    return Store(storage, "node", schema_version=1, compact_every_records=5)


def _recovered(storage: CrashingMemoryStorage) -> list[int]:
    loaded = _store(storage).load()
    return list(loaded.state or []) + list(loaded.records)


def _background_compaction(store: Store, synced: list[int], swap_first: bool = False) -> None:
    """Records 0..9 synced, a cut, 10..14 while the snapshot is written,
    15..19 after it, the journal swapped, 20..24 after the swap."""

    def add(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            store.append(i)
        store.sync()
        synced[:] = list(range(hi))

    add(0, 10)
    cut = store.cut()
    state = list(range(10))  # the state at the cut
    add(10, 15)
    if swap_first:  # the mutant: the journal loses its head before the snapshot holds it
        store.finish_cut(cut)
    store.write_cut(cut, state)
    add(15, 20)
    if not swap_first:
        store.finish_cut(cut)
    synced[:] = list(range(20))  # the swap makes the tail durable
    add(20, 25)


@pytest.mark.parametrize("torn", [False, True])
def test_a_crash_at_every_point_of_a_background_compaction_loses_no_synced_record(torn: bool) -> None:
    points = 0
    for k in range(200):
        for seed in range(3 if torn else 1):
            storage = CrashingMemoryStorage(seed, torn_writes=torn, zero_fill=torn)
            store = _store(storage)
            store.load()
            storage.fail_after(k)
            synced: list[int] = []
            try:
                _background_compaction(store, synced)
            except SimulatedCrash:
                recovered = _recovered(storage)
                assert recovered == list(range(len(recovered))), (k, recovered)  # in order, once each
                assert len(recovered) >= len(synced), (k, synced, recovered)
                # and the recovered store carries on
                again = _store(storage)
                again.load()
                again.append(len(recovered))
                again.sync()
                assert _recovered(storage) == list(range(len(recovered) + 1))
                continue
            assert _recovered(storage) == list(range(25))
            points = k
            break
        else:
            continue
        break
    assert points > 10, "the run never got past the compaction's persist points"


def test_the_check_catches_a_swap_before_the_snapshot_is_durable() -> None:
    caught = 0
    for k in range(40):
        storage = CrashingMemoryStorage()
        store = _store(storage)
        store.load()
        storage.fail_after(k)
        synced: list[int] = []
        try:
            _background_compaction(store, synced, swap_first=True)
        except SimulatedCrash:
            try:
                recovered = _recovered(storage)
            except CorruptJournal:  # records missing after the snapshot: caught too
                caught += 1
                continue
            caught += recovered != list(range(len(recovered))) or len(recovered) < len(synced)
    assert caught


def test_the_journal_after_the_swap_holds_only_the_records_after_the_cut() -> None:
    storage = CrashingMemoryStorage()
    store = _store(storage)
    store.load()
    _background_compaction(store, [])
    loaded = _store(storage).load()
    assert loaded.state == list(range(10))
    assert loaded.records == list(range(10, 25))
    assert store.records_since_snapshot == 15


def test_nodestore_writes_the_snapshot_in_a_child_while_the_journal_grows(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "s1", compact_every_records=10)
    assert store.compaction == "fork"
    store.load()
    store.write([CommitRecord(i) for i in range(10)])
    parent = os.getpid()
    built_in = tmp_path / "built-in"

    def snapshot() -> dict[str, Any]:
        built_in.write_text(str(os.getpid()))
        return {"records": 10}

    assert not store.maybe_compact(snapshot)  # cut and fork: returns at once
    assert store.compacting
    store.write([CommitRecord(i) for i in range(10, 13)])
    for _ in range(500):
        if store.maybe_compact(snapshot):
            break
        time.sleep(0.01)
    else:
        pytest.fail("the compaction child never finished")
    assert not store.compacting
    assert built_in.read_text() != str(parent), "the snapshot was built in the actor's own process"
    store.write([CommitRecord(13)])
    store.close()
    again = NodeStore(tmp_path / "s1")
    assert again.load() == ({"records": 10}, [CommitRecord(i) for i in range(10, 14)])
    again.close()


def test_closing_the_store_stops_a_running_child_and_the_files_still_load(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "s1", compact_every_records=5)
    store.load()
    store.write([CommitRecord(i) for i in range(5)])

    def slow_snapshot() -> dict[str, Any]:
        time.sleep(30)
        return {}

    store.maybe_compact(slow_snapshot)
    child = store._child
    assert child
    store.write([CommitRecord(5)])
    store.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # already reaped: it was stopped
    again = NodeStore(tmp_path / "s1")
    loaded = again.load()
    assert loaded is not None and loaded[1] == [CommitRecord(i) for i in range(6)]
    again.close()
