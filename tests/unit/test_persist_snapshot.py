"""Snapshot files: round trips, every kind of damage, schema versions, hostile payloads."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import pytest

from actors.persist import (
    SNAPSHOT_MAGIC,
    CorruptSnapshot,
    CrashingMemoryStorage,
    DirStorage,
    NotPlainData,
    UnsafePayload,
    read_snapshot,
    safe_dumps,
    write_snapshot,
)

STATE = {"features": {("cad", "2.0"): {"total": 10, "alloc": {"s1": 4, "s2": 3}}}, "tomb": frozenset({"l1"})}


def _frame(schema_version: int, payload: bytes) -> bytes:
    """Build a snapshot file by hand, from the documented layout alone."""
    fields = SNAPSHOT_MAGIC + struct.pack(">IQ", schema_version, len(payload))
    return fields + hashlib.sha256(fields + payload).digest() + payload


def test_round_trip_on_real_files(tmp_path: Path) -> None:
    storage = DirStorage(tmp_path / "s1")
    size = write_snapshot(storage, "raft.snap", STATE, schema_version=3, meta={"last_seq": 9})
    assert size == os.path.getsize(tmp_path / "s1" / "raft.snap")
    snap = read_snapshot(DirStorage(tmp_path / "s1"), "raft.snap", schema_version=3)
    assert snap is not None
    assert (snap.state, snap.meta, snap.schema_version, snap.stored_version) == (STATE, {"last_seq": 9}, 3, 3)
    assert snap.name == str(tmp_path / "s1" / "raft.snap")


def test_missing_snapshot_is_none() -> None:
    assert read_snapshot(CrashingMemoryStorage(), "raft.snap", schema_version=1) is None


def test_layout_matches_the_documented_format() -> None:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "a.snap", [1, 2], schema_version=4, meta={"k": 1})
    data = mem.read("a.snap")
    assert data is not None
    assert data[:7] == b"LPSNAP\n"
    assert struct.unpack(">IQ", data[7:19]) == (4, len(data) - 51)
    assert data == _frame(4, safe_dumps({"schema_version": 4, "meta": {"k": 1}, "state": [1, 2]}))


def _written() -> tuple[CrashingMemoryStorage, bytes]:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "leases.snap", STATE, schema_version=2)
    data = mem.read("leases.snap")
    assert data is not None
    return mem, data


def _assert_corrupt(mem: CrashingMemoryStorage, data: bytes, reason: str | None = None) -> CorruptSnapshot:
    mem.write_atomic("leases.snap", data)
    with pytest.raises(CorruptSnapshot, match=reason) as caught:
        read_snapshot(mem, "leases.snap", schema_version=2)
    message = str(caught.value)
    assert "mem:leases.snap" in message and "\n" not in message
    assert caught.value.name == "mem:leases.snap"
    return caught.value


def test_every_flipped_byte_is_detected() -> None:
    mem, good = _written()
    for index in range(len(good)):
        for bit in (0x01, 0x80):
            damaged = bytearray(good)
            damaged[index] ^= bit
            _assert_corrupt(mem, bytes(damaged))


def test_every_short_file_is_detected() -> None:
    mem, good = _written()
    for length in range(len(good)):
        error = _assert_corrupt(mem, good[:length])
        assert error.reason.startswith(("short file", "length mismatch", "bad magic"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short file"),
        (b"LPSNAP\n", "short file"),
        (b"not a snapshot at all, just some text, long enough to pass the header size", "bad magic"),
        (b"LPJRNL\n" + bytes(60), "bad magic"),
    ],
)
def test_wrong_magic_or_empty(data: bytes, reason: str) -> None:
    mem, _ = _written()
    _assert_corrupt(mem, data, reason)


def test_trailing_bytes_are_detected() -> None:
    mem, good = _written()
    _assert_corrupt(mem, good + b"\0", "length mismatch")


def test_valid_checksum_but_undecodable_payload() -> None:
    mem, _ = _written()
    _assert_corrupt(mem, _frame(2, b"\x80\x05garbage"), "does not decode")


@pytest.mark.parametrize(
    "body",
    [
        [1, 2, 3],
        {"schema_version": 1, "meta": {}, "state": 1},  # disagrees with the header's 2
        {"schema_version": 2, "meta": [], "state": 1},
        {"schema_version": 2, "state": 1},
    ],
)
def test_valid_checksum_but_wrong_body(body: Any) -> None:
    mem, _ = _written()
    _assert_corrupt(mem, _frame(2, safe_dumps(body)), "does not match|not a snapshot body")


def test_future_schema_version_is_refused() -> None:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "raft.snap", STATE, schema_version=5)
    with pytest.raises(CorruptSnapshot, match="schema_version 5 is newer than this build supports \\(4\\)"):
        read_snapshot(mem, "raft.snap", schema_version=4)


def test_older_schema_versions_are_upgraded_step_by_step() -> None:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "raft.snap", {"seats": 3}, schema_version=1, meta={"last_seq": 4})
    upgrades = {
        1: lambda s: {**s, "free_pool": 0},
        2: lambda s: {"table": s, "pending": []},
    }
    snap = read_snapshot(mem, "raft.snap", schema_version=3, upgrades=upgrades)
    assert snap is not None
    assert snap.state == {"table": {"seats": 3, "free_pool": 0}, "pending": []}
    assert (snap.schema_version, snap.stored_version, snap.meta) == (3, 1, {"last_seq": 4})


def test_missing_or_failing_upgrade_is_reported() -> None:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "raft.snap", {"seats": 3}, schema_version=1)
    with pytest.raises(CorruptSnapshot, match="no upgrade from schema_version 2 to 3"):
        read_snapshot(mem, "raft.snap", schema_version=3, upgrades={1: dict})

    def broken(state: Any) -> Any:
        raise KeyError("free_pool")

    with pytest.raises(CorruptSnapshot, match="upgrade from schema_version 1 failed"):
        read_snapshot(mem, "raft.snap", schema_version=2, upgrades={1: broken})


def test_without_a_build_version_the_state_is_returned_as_stored() -> None:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "raft.snap", [1], schema_version=9)
    snap = read_snapshot(mem, "raft.snap")
    assert snap is not None and (snap.state, snap.schema_version) == ([1], 9)


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_hostile_snapshot_with_valid_checksum_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    body = {"schema_version": 1, "meta": {}, "state": _RunsShell(f"touch {marker}")}
    storage = DirStorage(tmp_path / "s1")
    (tmp_path / "s1" / "leases.snap").write_bytes(_frame(1, pickle.dumps(body, protocol=5)))
    with pytest.raises(UnsafePayload) as caught:
        read_snapshot(storage, "leases.snap", schema_version=1)
    assert not marker.exists()
    assert str(tmp_path / "s1" / "leases.snap") in str(caught.value)


def test_non_plain_state_never_replaces_a_good_snapshot() -> None:
    mem = CrashingMemoryStorage()
    write_snapshot(mem, "raft.snap", STATE, schema_version=1)
    before = mem.read("raft.snap")
    with pytest.raises(NotPlainData):
        write_snapshot(mem, "raft.snap", {"oops": object()}, schema_version=1)
    with pytest.raises(NotPlainData):
        write_snapshot(mem, "raft.snap", STATE, schema_version=1, meta={"m": object()})
    assert mem.read("raft.snap") == before


@pytest.mark.parametrize("version", [0, -1, 2**32])
def test_schema_version_must_fit_the_header(version: int) -> None:
    with pytest.raises(ValueError):
        write_snapshot(CrashingMemoryStorage(), "raft.snap", STATE, schema_version=version)
