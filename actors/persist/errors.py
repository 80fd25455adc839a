"""Exceptions raised by the persistence layer.

Every failure to read back durable state is a :class:`PersistError`. A server
that gets one on start-up must refuse to start: silently starting fresh would
forget leases that clients still hold, which is how seats get over-used.
:class:`SimulatedCrash` is deliberately *not* a ``PersistError`` (nor even an
``Exception``) so that no ``except Exception`` in a handler can swallow the
simulated death of a process.
"""

from __future__ import annotations

__all__ = [
    "CorruptJournal",
    "CorruptSnapshot",
    "MalformedPayload",
    "NotPlainData",
    "PersistError",
    "SimulatedCrash",
    "StoreBroken",
    "UnsafePayload",
]


class PersistError(Exception):
    """Base class: durable state could not be written or read back safely."""


class UnsafePayload(PersistError):
    """A pickle referenced a global outside the plain-data allowlist.

    Raised *before* the global is looked up, so no code from the payload runs.
    ``global_name`` is ``"module.name"`` as written in the pickle; ``source``
    names the file it came from when known.
    """

    def __init__(self, global_name: str, source: str | None = None) -> None:
        self.global_name = global_name
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"refused unsafe global {global_name!r}{where}")


class MalformedPayload(PersistError):
    """A payload passed its checksum but is not a valid plain-data pickle."""


class NotPlainData(PersistError, TypeError):
    """The caller tried to persist something that is not plain data.

    Caught at write time, because the safe reader would refuse it at load time,
    and by then the only copy of the state would be unreadable.
    """


class _CorruptFile(PersistError):
    """Common shape of the corrupt-file errors: the file name and one reason."""

    kind = "file"

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{self.kind} {name}: {reason}")


class CorruptSnapshot(_CorruptFile):
    """A snapshot file cannot be trusted (bad magic, short, checksum, schema).

    Never answered by starting fresh: the operator must look at the file.
    """

    kind = "snapshot"


class CorruptJournal(_CorruptFile):
    """A journal record passed its CRC but is unusable, or records are out of order.

    Torn or CRC-failing tails are *not* reported this way: they are truncated
    (see :meth:`actors.persist.Journal.replay`). This error means tampering or a
    bug, so recovery stops instead of guessing.
    """

    kind = "journal"


class StoreBroken(PersistError):
    """A write or fsync failed earlier; the store refuses further use.

    After a failed ``fsync`` the kernel may have dropped the dirty pages, so
    retrying could report durability that does not exist. The owner must crash
    and recover from disk.
    """


class SimulatedCrash(BaseException):
    """Raised by :class:`CrashingMemoryStorage` at an injected crash point.

    A ``BaseException`` on purpose: it models the process dying, which no
    handler may catch and carry on from.
    """
