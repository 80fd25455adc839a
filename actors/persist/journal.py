"""An append-only journal of plain-data records with torn-tail recovery.

Each record is framed as (big-endian)::

    length  u32   bytes of payload, >= 1
    crc32   u32   zlib.crc32 over the 4 length bytes, then the payload
    payload       cloudpickle (protocol 5) of one plain-data record

The CRC covers the length field too, so a damaged length cannot make garbage
look like a record, and an all-zero region (what a file system may leave after
a power cut) fails the zero-length check.

Appends reach the page cache only; :meth:`Journal.sync` makes them durable, one
fsync for any number of records (group commit). Recovery
(:meth:`Journal.replay`) keeps records up to the first torn or CRC-failing one,
truncates the file there so new appends follow a valid record, and reports
what it dropped. A record that passes its CRC but will not decode is not a torn
write; that stops recovery with an error instead of being discarded.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, NamedTuple

from loguru import logger

from .errors import CorruptJournal, MalformedPayload
from .safepickle import safe_dumps, safe_loads
from .storage import Storage

__all__ = ["Journal", "Replay", "frame_record"]

_FRAME = struct.Struct(">II")
_LENGTH = struct.Struct(">I")
_MAX_RECORD = 2**32 - 1


class Replay(NamedTuple):
    """What :meth:`Journal.replay` recovered."""

    records: list[Any]
    """The intact records, in append order."""
    dropped_bytes: int
    """Bytes cut off the end of the file (0 when it was clean)."""


def frame_record(payload: bytes) -> bytes:
    """Frame an already-serialised payload as one journal record."""
    if not 1 <= len(payload) <= _MAX_RECORD:
        raise ValueError(f"journal payload must be 1..{_MAX_RECORD} bytes, got {len(payload)}")
    length = _LENGTH.pack(len(payload))
    return length + _LENGTH.pack(zlib.crc32(payload, zlib.crc32(length))) + payload


class Journal:
    """One journal file in a :class:`Storage`."""

    def __init__(self, storage: Storage, name: str) -> None:
        self.storage = storage
        self.name = name
        self._dirty = False

    @property
    def size(self) -> int:
        """Current visible size of the journal file in bytes."""
        return self.storage.size(self.name) or 0

    def append(self, record: Any) -> int:
        """Append ``record`` (not yet durable); return the bytes written.

        The record is checked and serialised before anything is written, so a
        non-plain record leaves the file untouched.
        """
        framed = frame_record(safe_dumps(record))
        self._dirty = True
        self.storage.append(self.name, framed)
        return len(framed)

    def sync(self) -> None:
        """Make every appended record durable with one fsync; no-op if none."""
        if self._dirty:
            self.storage.sync(self.name)
            self._dirty = False

    def written_durably(self) -> None:
        """The file was just replaced durably (``Store.finish_cut``): nothing to sync."""
        self._dirty = False

    def reset(self) -> None:
        """Empty the journal durably (after its records went into a snapshot)."""
        if self.storage.size(self.name) is not None:
            self.storage.truncate(self.name, 0)
        self._dirty = False

    def replay(self) -> Replay:
        """Read back every intact record; truncate a torn or corrupt tail.

        A tail is dropped with a loguru warning saying how many bytes and why.
        Raises :class:`CorruptJournal` for a record that passes its CRC but does
        not decode, and :class:`~actors.persist.errors.UnsafePayload` for one
        that references code; neither is a torn write.
        """
        data = self.storage.read(self.name)
        self._dirty = False
        if not data:
            return Replay([], 0)
        where = self.storage.locate(self.name)
        records: list[Any] = []
        offset = 0
        problem = ""
        while offset < len(data):
            if len(data) - offset < _FRAME.size:
                problem = "partial record header"
                break
            length, crc = _FRAME.unpack_from(data, offset)
            start = offset + _FRAME.size
            if length == 0:
                problem = "zero-length record"
                break
            if start + length > len(data):
                problem = f"record of {length} bytes runs past the end of the file"
                break
            payload = data[start : start + length]
            if zlib.crc32(payload, zlib.crc32(data[offset : offset + 4])) != crc:
                problem = "CRC mismatch"
                break
            try:
                records.append(safe_loads(payload, source=where))
            except MalformedPayload as exc:
                raise CorruptJournal(
                    where, f"record at offset {offset} passed its CRC but does not decode: {exc}"
                ) from exc
            offset = start + length
        dropped = len(data) - offset
        if dropped:
            logger.warning(
                "journal {}: dropping {} bytes at offset {} ({}); kept {} records",
                where,
                dropped,
                offset,
                problem,
                len(records),
            )
            self.storage.truncate(self.name, offset)
        return Replay(records, dropped)
