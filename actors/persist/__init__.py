"""Durable storage for licpool servers: snapshots, journals and their crash model.

A server keeps, in ``data_dir/<server>/``, one :class:`Store`: the ``node``
stream, a snapshot plus the journal of every record since
(``actors.shell.persistence.NodeStore``). Everything is plain data, written with
cloudpickle and read back with an unpickler that admits only builtin data types. See
``docs/persistence.md`` for formats and recovery.
"""

from .errors import (
    CorruptJournal,
    CorruptSnapshot,
    MalformedPayload,
    NotPlainData,
    PersistError,
    SimulatedCrash,
    StoreBroken,
    UnsafePayload,
)
from .journal import Journal, Replay
from .memory import CrashingMemoryStorage, StorageCall
from .safepickle import ALLOWED_GLOBALS, check_plain, safe_dumps, safe_loads
from .snapshot import SNAPSHOT_MAGIC, Snapshot, Upgrade, read_snapshot, write_snapshot
from .storage import DirStorage, Storage
from .store import Loaded, Store

__all__ = [
    "ALLOWED_GLOBALS",
    "SNAPSHOT_MAGIC",
    "CorruptJournal",
    "CorruptSnapshot",
    "CrashingMemoryStorage",
    "DirStorage",
    "Journal",
    "Loaded",
    "MalformedPayload",
    "NotPlainData",
    "PersistError",
    "Replay",
    "SimulatedCrash",
    "Snapshot",
    "Storage",
    "StorageCall",
    "Store",
    "StoreBroken",
    "UnsafePayload",
    "Upgrade",
    "check_plain",
    "read_snapshot",
    "safe_dumps",
    "safe_loads",
    "write_snapshot",
]
