"""Snapshot files: one checksummed, versioned, plain-data state per file.

Layout (all integers big-endian)::

    magic           7 bytes   b"LPSNAP\\n"
    schema_version  u32       version of the caller's state schema, >= 1
    payload_length  u64       bytes of payload that follow the header
    sha256          32 bytes  over magic + schema_version + payload_length + payload
    payload         payload_length bytes: cloudpickle (protocol 5) of
                    {"schema_version": int, "meta": dict, "state": plain data}

SHA-256 rather than CRC32 because a snapshot can be megabytes, is written
rarely, and CRC32's guarantees weaken with length; a checksum is not a MAC,
though: tampering is stopped by the safe unpickler, not by the digest. A change
of the envelope itself would get a new magic.

Reading never falls back to "no state": a file that exists but cannot be
trusted raises :class:`CorruptSnapshot` naming the file, and the server does
not start. Older schema versions are upgraded one step at a time by caller
hooks; newer ones are refused, since an old build would drop fields it does not
know.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CorruptSnapshot, MalformedPayload
from .safepickle import safe_dumps, safe_loads
from .storage import Storage

__all__ = ["SNAPSHOT_MAGIC", "Snapshot", "Upgrade", "read_snapshot", "write_snapshot"]

SNAPSHOT_MAGIC = b"LPSNAP\n"
_FIELDS = struct.Struct(">IQ")
_DIGEST_SIZE = 32
_HEADER_SIZE = len(SNAPSHOT_MAGIC) + _FIELDS.size + _DIGEST_SIZE
_MAX_U32 = 2**32 - 1

#: Turns a state of schema version ``v`` into one of version ``v + 1``.
Upgrade = Callable[[Any], Any]


@dataclass(frozen=True)
class Snapshot:
    """A snapshot as read back, after any schema upgrades."""

    name: str
    """Where it was read from (the storage's ``locate``)."""
    schema_version: int
    """Version of ``state`` as returned (the build's version when upgraded)."""
    stored_version: int
    """Version found in the file, before upgrades."""
    state: Any
    """The caller's plain-data state."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Plain-data bookkeeping stored beside the state (e.g. ``last_seq``)."""


def write_snapshot(
    storage: Storage,
    name: str,
    state: Any,
    *,
    schema_version: int,
    meta: Mapping[str, Any] | None = None,
) -> int:
    """Write ``state`` to ``name`` atomically and durably; return the file size.

    ``state`` and ``meta`` must be plain data (checked before anything is
    written, so a bad object cannot replace a good snapshot).
    """
    if not 1 <= schema_version <= _MAX_U32:
        raise ValueError(f"schema_version must be in 1..{_MAX_U32}, got {schema_version}")
    payload = safe_dumps({"schema_version": schema_version, "meta": dict(meta or {}), "state": state})
    fields = SNAPSHOT_MAGIC + _FIELDS.pack(schema_version, len(payload))
    digest = hashlib.sha256(fields)
    digest.update(payload)
    data = fields + digest.digest() + payload
    storage.write_atomic(name, data)
    return len(data)


def read_snapshot(
    storage: Storage,
    name: str,
    *,
    schema_version: int | None = None,
    upgrades: Mapping[int, Upgrade] | None = None,
) -> Snapshot | None:
    """Read ``name``; None only if the file does not exist.

    ``schema_version`` is the version this build writes: newer files are
    refused, older ones are upgraded with ``upgrades[v]`` for each step
    ``v -> v + 1``. Without it the state is returned as stored (for tools such
    as ``licpool snapshot show``).

    Raises :class:`CorruptSnapshot` for any damage, and
    :class:`~actors.persist.errors.UnsafePayload` for a payload that tries to
    reference code.
    """
    data = storage.read(name)
    if data is None:
        return None
    where = storage.locate(name)
    stored_version, meta, state = _decode(data, where)
    if schema_version is not None and stored_version > schema_version:
        raise CorruptSnapshot(
            where,
            f"schema_version {stored_version} is newer than this build supports "
            f"({schema_version}); refusing to read it with an older version",
        )
    version = stored_version
    target = stored_version if schema_version is None else schema_version
    while version < target:
        step = (upgrades or {}).get(version)
        if step is None:
            raise CorruptSnapshot(where, f"no upgrade from schema_version {version} to {version + 1}")
        try:
            state = step(state)
        except Exception as exc:
            raise CorruptSnapshot(where, f"upgrade from schema_version {version} failed: {exc!r}") from exc
        version += 1
    return Snapshot(where, version, stored_version, state, meta)


def _decode(data: bytes, where: str) -> tuple[int, dict[str, Any], Any]:
    """Check the envelope of a snapshot file and return (version, meta, state)."""
    if len(data) < _HEADER_SIZE:
        if not SNAPSHOT_MAGIC.startswith(data[: len(SNAPSHOT_MAGIC)]):
            raise CorruptSnapshot(where, "bad magic: not a licpool snapshot")
        raise CorruptSnapshot(where, f"short file: {len(data)} bytes, the header alone needs {_HEADER_SIZE}")
    if data[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC:
        raise CorruptSnapshot(where, "bad magic: not a licpool snapshot")
    fields_end = len(SNAPSHOT_MAGIC) + _FIELDS.size
    version, length = _FIELDS.unpack(data[len(SNAPSHOT_MAGIC) : fields_end])
    stored_digest = data[fields_end:_HEADER_SIZE]
    payload = data[_HEADER_SIZE:]
    if length != len(payload):
        raise CorruptSnapshot(where, f"length mismatch: header says {length} payload bytes, file has {len(payload)}")
    digest = hashlib.sha256(data[:fields_end])
    digest.update(payload)
    if digest.digest() != stored_digest:
        raise CorruptSnapshot(where, "checksum mismatch (sha256): the file is damaged")
    if version < 1:
        raise CorruptSnapshot(where, f"invalid schema_version {version}")
    try:
        body = safe_loads(payload, source=where)
    except MalformedPayload as exc:
        raise CorruptSnapshot(where, f"payload does not decode: {exc}") from exc
    if (
        type(body) is not dict
        or set(body) != {"schema_version", "meta", "state"}
        or body["schema_version"] != version
        or type(body["meta"]) is not dict
    ):
        raise CorruptSnapshot(where, "payload is not a snapshot body matching its header")
    return version, body["meta"], body["state"]
