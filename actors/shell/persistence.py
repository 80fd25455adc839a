"""One server's durable state on disk: the ``node`` stream in ``data_dir/<server>/``.

``NodeStore`` is the glue between ``ServerNode`` and ``actors.persist``:

* ``load()`` returns the ``durable`` argument of ``ServerNode.boot``;
* ``write(records)`` appends the records of one ``Ready`` as one journal frame
  and fsyncs -- the shell sends that Ready's messages only after it returns.
  One frame, one checksum: after a crash, replay sees the whole step or none
  of it (issue 11, defect 4: a ``commit`` record without its lease ops was a
  divergent server);
  ``append(records)`` and ``sync()`` are its two halves: the server appends
  the frame of every message of a burst and syncs once (group commit,
  docs/performance.md);
* ``maybe_compact(node.snapshot)`` replaces snapshot and journal with the
  node's snapshot once the journal has grown past its threshold, **off the
  actor's thread**: it cuts the journal (``Store.cut``) and forks a child that
  builds the plain-data snapshot from its copy-on-write image of the node at
  the cut and writes it (tmp file, fsync, rename, fsync dir), then exits.  The
  server goes on appending to the journal meanwhile; a later call sees the
  child's exit and replaces the journal by its part after the cut
  (``Store.finish_cut``).  The actor pays for the fork and that swap only
  (docs/performance.md).  The child keeps the inherited lock: if the server
  dies first, no new server opens the directory until the child is done, so
  an orphaned snapshot can never land over a newer one.
  ``NodeStore.over(storage)`` runs the same cut and swap in steps instead of a
  child (the in-memory crash double cannot be shared with a process), and
  ``LICPOOL_COMPACT=inline`` compacts inside the actor as before (measuring).

The core's typed records (``actors.core.records``) are turned into plain
tuples here and only here, on the way to the journal, and back on load: the
journal holds builtins only, in the same format since schema version 1.

A lock file (``flock``) keeps two processes from serving from one directory.
``NodeStore.over(storage)`` runs the same code on any ``Storage``, without a
lock: the shell crash tests inject ``CrashingMemoryStorage`` this way.
Any failure raises ``PersistError`` or ``OSError``; the server must then stop
serving and recover from disk, never carry on (docs/persistence.md).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from actors.core import records
from actors.core.records import Record
from actors.persist import CorruptJournal, DirStorage, PersistError, Storage, Store
from actors.persist.store import Cut

__all__ = ["STREAM", "DataDirLocked", "NodeStore", "load_readonly"]

STREAM = "node"
SCHEMA_VERSION = 2
"""1: one core record per journal frame.  2: one frame per step, holding the
list of a ``Ready``'s records, so a crash never leaves part of a step on disk
(a torn frame is dropped whole).  Snapshots are the same in both."""
LOCK_FILE = "lock"


def _same_state(state: Any) -> Any:
    return state


def _one_record_step(record: Any) -> list[Any]:
    """A version-1 frame holds one record: a step of its own."""
    return [record]


class DataDirLocked(PersistError):
    """Another process serves from this data directory."""


class NodeStore:
    def __init__(self, directory: Path, *, compact_every_records: int = 2000) -> None:
        self.directory: Path | None = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd: int | None = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise DataDirLocked(f"{directory} is in use by another licpool server process") from None
        os.ftruncate(self._lock_fd, 0)
        os.write(self._lock_fd, f"{os.getpid()}\n".encode())
        self._setup(DirStorage(directory), compact_every_records)

    @classmethod
    def over(cls, storage: Storage, *, compact_every_records: int = 2000) -> NodeStore:
        """The same store on an injected ``Storage`` (no directory, no lock file)."""
        made = cls.__new__(cls)
        made.directory = None
        made._lock_fd = None
        made._setup(storage, compact_every_records)
        return made

    def _setup(self, storage: Storage, compact_every_records: int) -> None:
        self.storage = storage
        self.store = Store(
            self.storage,
            STREAM,
            schema_version=SCHEMA_VERSION,
            upgrades={1: _same_state},
            record_upgrades={1: _one_record_step},
            compact_every_records=compact_every_records,
        )
        self.compact_every_records = compact_every_records
        self.records_since_snapshot = 0
        """Core records (not frames) in the journal: the compaction threshold."""
        self.records_written = 0
        self.syncs = 0
        mode = os.environ.get("LICPOOL_COMPACT", "background")
        self.compaction = "inline" if mode == "inline" else "fork" if self.directory is not None else "steps"
        self._cut: Cut | None = None
        self._child = 0
        """The pid of the child writing the cut's snapshot (fork mode)."""
        self._state: Any = None
        """The cut's snapshot, not yet written (steps mode)."""
        self._records_at_cut = 0

    def load(self) -> tuple[dict[str, Any] | None, list[Record]] | None:
        loaded = self.store.load()
        if loaded.state is None and not loaded.records:
            return None
        where = self.storage.locate(self.store.journal.name)
        steps = [_checked_step(step, where) for step in loaded.records]
        self.records_since_snapshot = sum(len(step) for step in steps)
        try:
            return loaded.state, [records.from_plain(x) for step in steps for x in step]
        except (ValueError, TypeError) as exc:  # passed its CRC, yet no record of this build
            raise CorruptJournal(where, str(exc)) from exc

    def write(self, step: list[Record]) -> None:
        """Persist the records of one ``Ready`` durably (one fsync)."""
        if not step:
            return
        self.append(step)
        self.sync()

    def append(self, step: list[Record]) -> None:
        """Append the records of one ``Ready`` as one journal frame (one
        checksum: replay sees all of them or none); durable only after ``sync``."""
        if not step:
            return
        self.store.append([records.to_plain(record) for record in step])
        self.records_written += len(step)
        self.records_since_snapshot += len(step)

    def sync(self) -> None:
        self.store.sync()
        self.syncs += 1

    def maybe_compact(self, snapshot: Any) -> bool:
        """Start, advance or finish a compaction when due; True when one finished.

        ``snapshot`` is a callable returning ``node.snapshot()``: in fork mode
        it runs in the child, on the node as it was at the cut."""
        if self._cut is not None:
            return self._advance()
        due = (
            self.records_since_snapshot >= self.compact_every_records
            or self.store.journal_bytes >= self.store.compact_every_bytes
        )
        if not due:
            return False
        if self.compaction == "inline":
            self.store.compact(snapshot())
            self.records_since_snapshot = 0
            return True
        cut = self.store.cut()
        self._records_at_cut = self.records_since_snapshot
        if self.compaction == "steps":
            self._cut, self._state = cut, snapshot()
            return False
        pid = os.fork()
        if pid == 0:  # the child: no logging, no Thespian, only the snapshot
            code = 1
            try:
                self.store.write_cut(cut, snapshot())
                code = 0
            finally:
                os._exit(code)
        self._cut, self._child = cut, pid
        return False

    @property
    def compacting(self) -> bool:
        return self._cut is not None

    def _advance(self) -> bool:
        cut = self._cut
        assert cut is not None
        if self.compaction == "steps":
            if self._state is not None:
                state, self._state = self._state, None
                self.store.write_cut(cut, state)
                return False
        else:
            try:
                pid, status = os.waitpid(self._child, os.WNOHANG)
            except ChildProcessError:
                pid, status = self._child, -1
            if pid == 0:
                return False
            self._child = 0
            if status != 0:
                self._cut = None
                raise PersistError(f"the compaction child failed (wait status {status})")
        self._cut = None
        self.store.finish_cut(cut)
        self.records_since_snapshot = max(0, self.records_since_snapshot - self._records_at_cut)
        return True

    def close(self) -> None:
        if self._child:  # its snapshot must not land after a newer one: stop it first
            os.kill(self._child, signal.SIGKILL)
            os.waitpid(self._child, 0)
            self._child = 0
        self._cut = self._state = None
        try:
            self.storage.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _checked_step(step: Any, where: str) -> list[Any]:
    if type(step) is not list:
        raise CorruptJournal(where, f"a step frame holds a {type(step).__name__}, not a list of records")
    return step


def load_readonly(directory: Path) -> tuple[dict[str, Any] | None, list[Record]]:
    """Read a server's persisted state without touching its directory: the
    files are copied aside first (recovery may rewrite a journal).  Errors name
    the real files."""
    if not directory.is_dir():
        raise FileNotFoundError(2, "no data directory (has this server ever run?)", str(directory))
    with tempfile.TemporaryDirectory(prefix="licpool-show-") as tmp:
        for name in (f"{STREAM}.snap", f"{STREAM}.journal"):
            if (directory / name).exists():
                shutil.copy2(directory / name, Path(tmp) / name)
        try:
            with DirStorage(tmp) as storage:
                durable = NodeStore.over(storage).load()
        except PersistError as exc:
            raise PersistError(str(exc).replace(tmp, str(directory))) from None
    return durable if durable is not None else (None, [])
