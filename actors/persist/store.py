"""A stream of durable state: a snapshot plus the journal of records since it.

Files for stream ``s`` in one :class:`Storage`: ``s.snap`` and ``s.journal``.
Each journal record is ``(seq, schema_version, record)``; ``seq`` rises by one
per record for the whole life of the stream, and the snapshot's meta holds
``last_seq``, the last record its state already includes.

Compaction writes the new snapshot (atomic rename, durable) and only then
empties the journal. A crash between the two leaves a journal whose records are
all ``<= last_seq``; :meth:`Store.load` skips them, so nothing is applied
twice, and finishes the compaction by emptying the journal. Any other gap or
disorder in ``seq`` is reported as corruption, never papered over.

The caller's order of operations: mutate state, ``append``, ``sync``, and only
then send the replies that depend on it.

**Compaction in the background** (:meth:`Store.cut`, :meth:`Store.write_cut`,
:meth:`Store.finish_cut`): the cut notes the last record and the journal's
size; the snapshot of the state at the cut may then be written by another
process (``write_cut`` needs only the storage) while records after the cut
are appended to the same journal; once that snapshot is durable,
``finish_cut`` atomically replaces the journal by its bytes after the cut.
A crash before the snapshot's rename leaves the old snapshot and the whole
journal; after it, a journal whose records up to ``last_seq`` are skipped at
load; the journal's replacement is atomic.  Every state recovers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from .errors import CorruptJournal, CorruptSnapshot, NotPlainData, StoreBroken
from .journal import Journal
from .snapshot import Upgrade, read_snapshot, write_snapshot
from .storage import Storage

__all__ = ["Cut", "Loaded", "Store"]

_STREAM = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class Loaded(NamedTuple):
    """What :meth:`Store.load` recovered."""

    state: Any | None
    """The snapshot's state (upgraded), or None if there is no snapshot yet."""
    records: list[Any]
    """Records appended after that snapshot, in order, to apply on top of it."""


class Cut(NamedTuple):
    """Where a background compaction cut the journal (:meth:`Store.cut`)."""

    last_seq: int
    """The last record the snapshot of this cut includes."""
    journal_offset: int
    """The journal's size at the cut: its records after it start there."""
    records: int
    """Records since the previous snapshot, at the cut."""


class Store:
    """Snapshot-plus-journal persistence for one named stream.

    Call :meth:`load` once before anything else. After any failed write or
    fsync (including a :class:`SimulatedCrash`) the store refuses further use
    with :class:`StoreBroken`: its owner must restart and load again.
    """

    def __init__(
        self,
        storage: Storage,
        stream: str,
        *,
        schema_version: int,
        upgrades: Mapping[int, Upgrade] | None = None,
        record_upgrades: Mapping[int, Upgrade] | None = None,
        compact_every_records: int = 10_000,
        compact_every_bytes: int = 16 * 2**20,
    ) -> None:
        if not _STREAM.fullmatch(stream):
            raise ValueError(f"invalid stream name {stream!r}")
        self.storage = storage
        self.stream = stream
        self.schema_version = schema_version
        self.upgrades = dict(upgrades or {})
        self.record_upgrades = dict(record_upgrades or {})
        self.compact_every_records = compact_every_records
        self.compact_every_bytes = compact_every_bytes
        self.snapshot_name = f"{stream}.snap"
        self.journal = Journal(storage, f"{stream}.journal")
        self._loaded = False
        self._broken = False
        self._seq = 0
        self._synced_seq = 0
        self._records_since_snapshot = 0
        self._journal_bytes = 0

    @property
    def last_seq(self) -> int:
        """Sequence number of the last record appended (durable or not)."""
        return self._seq

    @property
    def synced_seq(self) -> int:
        """Sequence number of the last record known to be durable."""
        return self._synced_seq

    @property
    def records_since_snapshot(self) -> int:
        """Records in the journal that the snapshot does not include."""
        return self._records_since_snapshot

    @property
    def journal_bytes(self) -> int:
        """Size of the journal file in bytes."""
        return self._journal_bytes

    def load(self) -> Loaded:
        """Recover the snapshot state and the records to replay on top of it.

        Raises a :class:`PersistError` rather than returning an empty state
        for anything it cannot trust.
        """
        self._broken = False
        snapshot = read_snapshot(
            self.storage,
            self.snapshot_name,
            schema_version=self.schema_version,
            upgrades=self.upgrades,
        )
        last_seq = 0
        state = None
        if snapshot is not None:
            last_seq = snapshot.meta.get("last_seq", -1)
            if snapshot.meta.get("stream") != self.stream or type(last_seq) is not int or last_seq < 0:
                raise CorruptSnapshot(snapshot.name, f"meta does not belong to stream {self.stream!r}")
            state = snapshot.state
        replay = self.journal.replay()
        records, skipped, next_seq = self._sequence(replay.records, last_seq)
        if skipped and not records:
            # Crashed after the snapshot rename, before the journal was emptied.
            self.journal.reset()
        self._seq = self._synced_seq = next_seq - 1
        self._records_since_snapshot = len(records)
        self._journal_bytes = self.journal.size
        self._loaded = True
        return Loaded(state, records)

    def _sequence(self, raw: list[Any], last_seq: int) -> tuple[list[Any], int, int]:
        """Check seq numbers; return (records after last_seq, skipped, next seq)."""
        where = self.storage.locate(self.journal.name)
        records: list[Any] = []
        skipped = 0
        expected: int | None = None
        for index, item in enumerate(raw):
            if not (type(item) is tuple and len(item) == 3 and type(item[0]) is int and type(item[1]) is int):
                raise CorruptJournal(where, f"record {index} is not (seq, schema_version, record)")
            seq, version, record = item
            if expected is None and seq > last_seq + 1:
                raise CorruptJournal(where, f"first record has seq {seq}; records after {last_seq} are missing")
            if expected is not None and seq != expected:
                raise CorruptJournal(where, f"record {index} has seq {seq}, expected {expected}")
            expected = seq + 1
            if seq <= last_seq:
                skipped += 1
                continue
            records.append(self._upgrade_record(record, version, where, seq))
        return records, skipped, max(last_seq + 1, expected or 0)

    def _upgrade_record(self, record: Any, version: int, where: str, seq: int) -> Any:
        if version > self.schema_version or version < 1:
            raise CorruptJournal(
                where,
                f"record seq {seq} has schema_version {version}; this build supports up to {self.schema_version}",
            )
        while version < self.schema_version:
            step = self.record_upgrades.get(version)
            if step is None:
                raise CorruptJournal(where, f"no record upgrade from schema_version {version}")
            record = step(record)
            version += 1
        return record

    def _check_usable(self) -> None:
        if self._broken:
            raise StoreBroken(f"stream {self.stream!r}: an earlier write failed; reload from disk")
        if not self._loaded:
            raise StoreBroken(f"stream {self.stream!r}: call load() before writing")

    def append(self, record: Any) -> int:
        """Append one plain-data record (not yet durable); return its seq."""
        self._check_usable()
        seq = self._seq + 1
        try:
            written = self.journal.append((seq, self.schema_version, record))
        except NotPlainData:
            raise  # checked before any byte was written: the store is intact
        except BaseException:
            self._broken = True
            raise
        self._seq = seq
        self._records_since_snapshot += 1
        self._journal_bytes += written
        return seq

    def sync(self) -> None:
        """Make every appended record durable (one fsync for all: group commit)."""
        self._check_usable()
        try:
            self.journal.sync()
        except BaseException:
            self._broken = True
            raise
        self._synced_seq = self._seq

    def compact(self, state: Any) -> None:
        """Snapshot ``state``, which must include every record appended so far.

        Also makes those records durable, since the snapshot contains them.
        """
        self._check_usable()
        try:
            write_snapshot(
                self.storage,
                self.snapshot_name,
                state,
                schema_version=self.schema_version,
                meta={"stream": self.stream, "last_seq": self._seq},
            )
        except NotPlainData:
            raise  # checked before the write: the old snapshot is untouched
        except BaseException:
            self._broken = True
            raise
        try:
            self.journal.reset()
        except BaseException:
            self._broken = True
            raise
        self._synced_seq = self._seq
        self._records_since_snapshot = 0
        self._journal_bytes = 0

    def cut(self) -> Cut:
        """Start a background compaction: the state as it is now goes into a
        snapshot written by :meth:`write_cut`, later :meth:`finish_cut`."""
        self._check_usable()
        return Cut(self._seq, self.journal.size, self._records_since_snapshot)

    def write_cut(self, cut: Cut, state: Any) -> None:
        """Write the snapshot of the state at ``cut`` (durable, atomic).  Uses
        only the storage: a forked child may call it while the owner appends."""
        write_snapshot(
            self.storage,
            self.snapshot_name,
            state,
            schema_version=self.schema_version,
            meta={"stream": self.stream, "last_seq": cut.last_seq},
        )

    def finish_cut(self, cut: Cut) -> None:
        """The snapshot of ``cut`` is durable: replace the journal, atomically,
        by its records after the cut (which are durable from then on)."""
        self._check_usable()
        try:
            data = self.storage.read(self.journal.name) or b""
            tail = data[cut.journal_offset :]
            self.storage.write_atomic(self.journal.name, tail)
        except BaseException:
            self._broken = True
            raise
        self.journal.written_durably()
        self._synced_seq = self._seq
        self._records_since_snapshot = max(0, self._records_since_snapshot - cut.records)
        self._journal_bytes = len(tail)

    def needs_compaction(self) -> bool:
        """True once the journal has passed the record or byte threshold."""
        return (
            self._records_since_snapshot >= self.compact_every_records
            or self._journal_bytes >= self.compact_every_bytes
        )
