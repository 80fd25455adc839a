"""The journal: framing, group commit, torn-tail recovery, hostile records."""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from actors.persist import (
    CorruptJournal,
    CrashingMemoryStorage,
    DirStorage,
    Journal,
    NotPlainData,
    UnsafePayload,
    safe_dumps,
)


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    messages: list[str] = []
    handler = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING", format="{message}")
    yield messages
    logger.remove(handler)


def _frame(payload: bytes) -> bytes:
    """One record framed from the documented layout alone."""
    length = struct.pack(">I", len(payload))
    return length + struct.pack(">I", zlib.crc32(length + payload)) + payload


RECORDS = [{"grant": "l1", "seats": 1}, ("release", "l1"), [1, 2.5, None, b"\x00"]]


def test_round_trip_on_real_files(tmp_path: Path) -> None:
    journal = Journal(DirStorage(tmp_path / "s1"), "leases.journal")
    for record in RECORDS:
        journal.append(record)
    journal.sync()
    assert Journal(DirStorage(tmp_path / "s1"), "leases.journal").replay() == (RECORDS, 0)


def test_layout_matches_the_documented_format() -> None:
    mem = CrashingMemoryStorage()
    journal = Journal(mem, "j")
    assert journal.append(RECORDS[0]) == len(_frame(safe_dumps(RECORDS[0])))
    assert mem.read("j") == _frame(safe_dumps(RECORDS[0]))


def test_empty_and_missing_journals() -> None:
    mem = CrashingMemoryStorage()
    assert Journal(mem, "j").replay() == ([], 0)
    mem.append("j", b"")
    assert Journal(mem, "j").replay() == ([], 0)


def test_group_commit_is_one_fsync() -> None:
    mem = CrashingMemoryStorage(record_calls=True)
    journal = Journal(mem, "j")
    for i in range(50):
        journal.append({"i": i})
    journal.sync()
    journal.sync()  # nothing new: no second fsync
    assert [c.op for c in mem.calls].count("sync") == 1
    mem.crash()
    assert len(Journal(mem, "j").replay().records) == 50


def _three_records() -> tuple[CrashingMemoryStorage, bytes, int]:
    mem = CrashingMemoryStorage()
    journal = Journal(mem, "leases.journal")
    for record in RECORDS[:2]:
        journal.append(record)
    boundary = journal.size
    journal.append(RECORDS[2])
    data = mem.read("leases.journal")
    assert data is not None
    return mem, data, boundary


def test_torn_last_record_is_truncated_with_a_warning(warnings_logged: list[str]) -> None:
    mem, data, boundary = _three_records()
    for cut in range(boundary + 1, len(data)):
        warnings_logged.clear()
        mem.write_atomic("leases.journal", data[:cut])
        assert Journal(mem, "leases.journal").replay() == (RECORDS[:2], cut - boundary)
        assert mem.read("leases.journal") == data[:boundary]
        assert len(warnings_logged) == 1
        assert "mem:leases.journal" in warnings_logged[0] and f"{cut - boundary} bytes" in warnings_logged[0]


def test_appends_after_recovery_follow_the_last_good_record() -> None:
    mem, data, boundary = _three_records()
    mem.write_atomic("leases.journal", data[: boundary + 5])
    journal = Journal(mem, "leases.journal")
    journal.replay()
    journal.append("after")
    journal.sync()
    assert Journal(mem, "leases.journal").replay() == ([*RECORDS[:2], "after"], 0)


@pytest.mark.parametrize("tail", [bytes(3), bytes(8), bytes(100), b"\xff" * 20])
def test_zero_or_garbage_tail_is_dropped(tail: bytes, warnings_logged: list[str]) -> None:
    mem, data, _ = _three_records()
    mem.write_atomic("leases.journal", data + tail)
    assert Journal(mem, "leases.journal").replay() == (RECORDS, len(tail))
    assert mem.read("leases.journal") == data
    assert warnings_logged


def test_crc_mismatch_drops_from_the_damaged_record_on(warnings_logged: list[str]) -> None:
    mem, data, _ = _three_records()
    damaged = bytearray(data)
    damaged[12] ^= 0x40  # inside the first record's payload
    mem.write_atomic("leases.journal", bytes(damaged))
    assert Journal(mem, "leases.journal").replay() == ([], len(data))
    assert "CRC mismatch" in warnings_logged[0]


def test_damaged_length_field_is_caught_by_the_crc() -> None:
    mem, data, boundary = _three_records()
    damaged = bytearray(data)
    damaged[boundary + 3] ^= 0x01  # the third record's length, still inside the file
    mem.write_atomic("leases.journal", bytes(damaged))
    assert Journal(mem, "leases.journal").replay() == (RECORDS[:2], len(data) - boundary)


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_hostile_record_with_valid_crc_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    storage = DirStorage(tmp_path / "s1")
    journal = Journal(storage, "leases.journal")
    journal.append({"grant": "l1"})
    journal.sync()
    hostile = _frame(pickle.dumps((2, 1, _RunsShell(f"touch {marker}")), protocol=5))
    storage.append("leases.journal", hostile)
    storage.sync("leases.journal")
    before = storage.read("leases.journal")
    with pytest.raises(UnsafePayload) as caught:
        Journal(storage, "leases.journal").replay()
    assert not marker.exists()
    assert "system" in caught.value.global_name
    assert storage.read("leases.journal") == before  # evidence kept, not truncated away


def test_valid_crc_but_undecodable_record_stops_recovery() -> None:
    mem, data, _ = _three_records()
    mem.write_atomic("leases.journal", data + _frame(b"\x80\x05not a pickle"))
    with pytest.raises(CorruptJournal, match="passed its CRC but does not decode"):
        Journal(mem, "leases.journal").replay()


def test_non_plain_record_leaves_the_file_untouched() -> None:
    mem, data, _ = _three_records()
    with pytest.raises(NotPlainData):
        Journal(mem, "leases.journal").append({"bad": object()})
    assert mem.read("leases.journal") == data


def test_reset_empties_durably() -> None:
    mem, _, _ = _three_records()
    journal = Journal(mem, "leases.journal")
    journal.reset()
    mem.crash()
    assert journal.replay() == ([], 0)
    Journal(mem, "missing.journal").reset()  # nothing to do
    assert mem.read("missing.journal") is None
