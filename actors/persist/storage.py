"""The file-level storage interface and its real implementation.

Everything above this module (snapshots, journals, stores) talks to a
:class:`Storage`: a flat directory of named files with exactly the operations
whose durability we reason about. Keeping the interface this small is what lets
:class:`~actors.persist.memory.CrashingMemoryStorage` model a power cut
precisely and the simulator crash a server at any persist point.

Durability contract, shared by every implementation:

* ``write_atomic`` is durable when it returns, and a crash leaves either the old
  or the new content, never a mix.
* ``append`` is visible to ``read`` at once but durable only after ``sync``.
* ``truncate`` and ``remove`` are durable when they return.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["DirStorage", "Storage", "validate_name"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_TMP_SUFFIX = ".tmp"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a plain file name we may use, else raise ValueError.

    No separators, no leading dot (reserved for temporary files), no ``.tmp``
    suffix: a name can never escape the directory or collide with a temp file.
    """
    if not _NAME.fullmatch(name) or name.endswith(_TMP_SUFFIX):
        raise ValueError(f"invalid storage file name {name!r}")
    return name


@runtime_checkable
class Storage(Protocol):
    """Files in one directory, with explicit durability (see module docstring)."""

    def read(self, name: str) -> bytes | None:
        """Return the whole visible content of ``name``, or None if it does not exist."""

    def write_atomic(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data`` atomically and durably."""

    def append(self, name: str, data: bytes) -> None:
        """Append ``data`` to ``name`` (created if missing); durable only after sync."""

    def sync(self, name: str) -> None:
        """Make every append to ``name`` durable. FileNotFoundError if it is missing."""

    def truncate(self, name: str, size: int) -> None:
        """Shrink ``name`` to ``size`` bytes, durably. Never grows a file."""

    def remove(self, name: str) -> None:
        """Delete ``name`` durably; a missing file is not an error."""

    def size(self, name: str) -> int | None:
        """Return the visible size of ``name`` in bytes, or None if missing."""

    def list(self) -> list[str]:
        """Return the names of all files, sorted, without temporary files."""

    def locate(self, name: str) -> str:
        """Return a human-readable location of ``name`` for error messages."""

    def close(self) -> None:
        """Release open handles. Unsynced appends stay unsynced."""


class DirStorage:
    """:class:`Storage` on a real directory, with real ``fsync`` calls.

    New directory entries (a renamed snapshot, a journal created by its first
    append) are made durable by fsyncing the directory, without which a power
    cut can lose a file whose contents were fsynced. Appends go through
    unbuffered file objects, so they sit in the OS page cache, visible to
    ``read``, until ``sync``. Not thread-safe: one actor owns one directory.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self.path.mkdir(parents=True, exist_ok=True)
        for created in reversed(missing):  # make each new directory entry durable
            _fsync_dir(created.parent)
        self._handles: dict[str, BinaryIO] = {}
        self._dir_dirty: set[str] = set()
        self._remove_stale_temps()

    def __enter__(self) -> DirStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _file(self, name: str) -> Path:
        return self.path / validate_name(name)

    def _remove_stale_temps(self) -> None:
        # A temp file left by a crash mid-write_atomic is never the truth: the
        # rename is the commit point, and it did not happen.
        for entry in self.path.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(_TMP_SUFFIX):
                entry.unlink()

    def _drop_handle(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.close()

    def read(self, name: str) -> bytes | None:
        """Return the visible content of ``name`` or None."""
        try:
            return self._file(name).read_bytes()
        except FileNotFoundError:
            return None

    def write_atomic(self, name: str, data: bytes) -> None:
        """Write a temp file, fsync it, rename it over ``name``, fsync the directory."""
        target = self._file(name)
        self._drop_handle(name)
        tmp = self.path / f".{name}{_TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        _fsync_dir(self.path)
        self._dir_dirty.discard(name)

    def append(self, name: str, data: bytes) -> None:
        """Append to the page cache; the first append to a new file marks the dir dirty."""
        handle = self._handles.get(name)
        if handle is None:
            path = self._file(name)
            if not path.exists():
                self._dir_dirty.add(name)
            handle = open(path, "ab", buffering=0)  # noqa: SIM115 - cached handle
            self._handles[name] = handle
        view = memoryview(data)
        while view:
            written = handle.write(view)
            view = view[written or 0 :]

    def sync(self, name: str) -> None:
        """fsync ``name``, and the directory too if the file is new."""
        handle = self._handles.get(name)
        if handle is not None:
            os.fsync(handle.fileno())
        else:
            fd = os.open(self._file(name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if name in self._dir_dirty:
            _fsync_dir(self.path)
            self._dir_dirty.discard(name)

    def truncate(self, name: str, size: int) -> None:
        """ftruncate and fsync ``name``; refuses to grow it."""
        self._drop_handle(name)
        fd = os.open(self._file(name), os.O_RDWR)
        try:
            current = os.fstat(fd).st_size
            if size < 0 or size > current:
                raise ValueError(f"cannot truncate {name} ({current} bytes) to {size}")
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        if name in self._dir_dirty:
            _fsync_dir(self.path)
            self._dir_dirty.discard(name)

    def remove(self, name: str) -> None:
        """Unlink ``name`` and fsync the directory."""
        self._drop_handle(name)
        try:
            self._file(name).unlink()
        except FileNotFoundError:
            return
        self._dir_dirty.discard(name)
        _fsync_dir(self.path)

    def size(self, name: str) -> int | None:
        """Return the size of ``name`` or None."""
        try:
            return self._file(name).stat().st_size
        except FileNotFoundError:
            return None

    def list(self) -> list[str]:
        """Return the sorted file names, skipping temporary files."""
        return sorted(entry.name for entry in self.path.iterdir() if entry.is_file() and not entry.name.startswith("."))

    def locate(self, name: str) -> str:
        """Return the full path of ``name``."""
        return str(self.path / name)

    def close(self) -> None:
        """Close cached append handles."""
        for name in list(self._handles):
            self._drop_handle(name)


def _fsync_dir(path: Path) -> None:
    """fsync a directory so that creations, renames and unlinks in it survive."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
