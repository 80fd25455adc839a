"""Durable storage for licpool servers: snapshots, journals and their crash model.

A server keeps, in ``data_dir/<server>/``, one :class:`Store` per stream (the
replicated log as ``raft``, the local lease journal as ``leases``) plus its Raft
:class:`HardState`. Everything is plain data, written with cloudpickle and read
back with an unpickler that admits only builtin data types. See
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
from .hardstate import HARD_STATE_FILE, HardState, load_hard_state, save_hard_state
from .journal import Journal, Replay
from .memory import CrashingMemoryStorage, StorageCall
from .safepickle import ALLOWED_GLOBALS, check_plain, safe_dumps, safe_loads
from .snapshot import SNAPSHOT_MAGIC, Snapshot, Upgrade, read_snapshot, write_snapshot
from .storage import DirStorage, Storage
from .store import Loaded, Store

__all__ = [
    "ALLOWED_GLOBALS",
    "HARD_STATE_FILE",
    "SNAPSHOT_MAGIC",
    "CorruptJournal",
    "CorruptSnapshot",
    "CrashingMemoryStorage",
    "DirStorage",
    "HardState",
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
    "load_hard_state",
    "read_snapshot",
    "safe_dumps",
    "safe_loads",
    "save_hard_state",
    "write_snapshot",
]
