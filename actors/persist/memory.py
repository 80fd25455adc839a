"""An in-memory :class:`Storage` that models the OS page cache and power cuts.

The deterministic simulator and the crash tests run servers on this double.
Each file keeps two versions: what reads see now, and what a disk would hold
after a power cut. ``append`` changes only the first; ``sync``,
``write_atomic``, ``truncate`` and ``remove`` make the file durable, as their
real counterparts in :class:`~actors.persist.storage.DirStorage` do.

:meth:`CrashingMemoryStorage.crash` throws away what was not synced. With
``torn_writes`` a seeded ``random.Random`` decides how much of each file's
unsynced tail survives (a prefix, optionally with a zero-filled end, as ext4
can leave after a cut), and whether a call interrupted by an injected crash
took effect. Every persist point (a mutating call) is numbered, so a test can
crash at each one in turn with :meth:`fail_after` or a hook.
Given the same seed and the same calls, the outcome is always the same.
"""

from __future__ import annotations

import builtins
import random
from collections.abc import Callable
from dataclasses import dataclass

from .errors import SimulatedCrash
from .storage import validate_name

__all__ = ["CrashingMemoryStorage", "StorageCall"]


@dataclass(frozen=True)
class StorageCall:
    """One persist point, as passed to a crash hook."""

    index: int
    """0-based count of persist points on this storage so far."""
    op: str
    """``write_atomic``, ``append``, ``sync``, ``truncate`` or ``remove``."""
    name: str
    """The file the call is about."""


@dataclass
class _File:
    data: bytearray
    """What reads see now."""
    durable: bytes | None
    """What survives a power cut; None: the file itself would be gone."""


class CrashingMemoryStorage:
    """:class:`Storage` in memory, able to lose unsynced writes on demand."""

    def __init__(
        self,
        rng: random.Random | int | None = None,
        *,
        torn_writes: bool = False,
        zero_fill: bool = False,
        record_calls: bool = False,
    ) -> None:
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.torn_writes = torn_writes
        self.zero_fill = zero_fill
        self.persist_points = 0
        self.crashes = 0
        self.calls: builtins.list[StorageCall] = []
        self._record_calls = record_calls
        self._files: dict[str, _File] = {}
        self._crash_at: int | None = None
        self._hook: Callable[[StorageCall], None] | None = None

    # -- crash control -------------------------------------------------------

    def fail_after(self, n: int | None) -> None:
        """Let ``n`` more persist points succeed, then crash at the next one.

        ``None`` disarms. The crashing call raises :class:`SimulatedCrash` after
        the loss of unsynced data has been applied.
        """
        self._crash_at = None if n is None else self.persist_points + n

    def set_hook(self, hook: Callable[[StorageCall], None] | None) -> None:
        """Call ``hook`` before every persist point; it may raise SimulatedCrash.

        A ``SimulatedCrash`` from the hook is handled like one from
        :meth:`fail_after`: unsynced data is lost before it propagates.
        """
        self._hook = hook

    def crash(self, *, power_loss: bool = True) -> None:
        """Model a crash between two storage calls.

        With ``power_loss`` (a machine crash) unsynced appends are lost, except
        for a random prefix when ``torn_writes`` is set. Without it (only the
        process died) the page cache survives and is written back.
        """
        self.crashes += 1
        for name in sorted(self._files):
            entry = self._files[name]
            if not power_loss:
                entry.durable = bytes(entry.data)
                continue
            base = entry.durable or b""
            kept = self._torn_tail(bytes(entry.data[len(base) :]))
            if entry.durable is None and not kept:
                del self._files[name]
                continue
            entry.durable = base + kept
            entry.data = bytearray(entry.durable)

    def _torn_tail(self, unsynced: bytes) -> bytes:
        if not self.torn_writes or not unsynced:
            return b""
        kept = unsynced[: self.rng.randint(0, len(unsynced))]
        if self.zero_fill and kept and self.rng.random() < 0.5:
            cut = self.rng.randint(0, len(kept))
            kept = kept[:cut] + bytes(len(kept) - cut)
        return kept

    def _persist_point(self, op: str, name: str) -> bool:
        """Count a persist point; crash here if armed. True: the crash is pending."""
        call = StorageCall(self.persist_points, op, name)
        self.persist_points += 1
        if self._record_calls:
            self.calls.append(call)
        if self._hook is not None:
            try:
                self._hook(call)
            except SimulatedCrash:
                return True
        if self._crash_at is not None and call.index >= self._crash_at:
            self._crash_at = None
            return True
        return False

    def _interrupted_call_applied(self) -> bool:
        """Decide whether a call cut short by a crash still reached the disk.

        A real call can die before or after its effect became durable; with
        ``torn_writes`` the seeded rng picks one, otherwise it never applies.
        """
        return self.torn_writes and self.rng.random() < 0.5

    def _crash_now(self) -> None:
        self.crash(power_loss=True)
        raise SimulatedCrash("injected crash")

    # -- Storage -------------------------------------------------------------

    def read(self, name: str) -> bytes | None:
        """Return the visible content of ``name`` or None."""
        entry = self._files.get(validate_name(name))
        return None if entry is None else bytes(entry.data)

    def write_atomic(self, name: str, data: bytes) -> None:
        """Replace ``name``; durable at once, as the real one fsyncs itself."""
        validate_name(name)
        pending = self._persist_point("write_atomic", name)
        if pending and not self._interrupted_call_applied():
            self._crash_now()
        self._files[name] = _File(bytearray(data), bytes(data))
        if pending:
            self._crash_now()

    def append(self, name: str, data: bytes) -> None:
        """Append to the visible content only."""
        validate_name(name)
        pending = self._persist_point("append", name)
        entry = self._files.get(name)
        if entry is None:
            entry = self._files[name] = _File(bytearray(), None)
        if pending:
            # Part of an interrupted write may reach the page cache; crash()
            # then decides how much of it survives.
            if self.torn_writes:
                entry.data += data[: self.rng.randint(0, len(data))]
            self._crash_now()
        entry.data += data

    def sync(self, name: str) -> None:
        """Make the visible content of ``name`` durable."""
        entry = self._files.get(validate_name(name))
        if entry is None:
            raise FileNotFoundError(name)
        pending = self._persist_point("sync", name)
        if pending and not self._interrupted_call_applied():
            self._crash_now()
        entry.durable = bytes(entry.data)
        if pending:
            self._crash_now()

    def truncate(self, name: str, size: int) -> None:
        """Shrink ``name`` durably."""
        entry = self._files.get(validate_name(name))
        if entry is None:
            raise FileNotFoundError(name)
        if size < 0 or size > len(entry.data):
            raise ValueError(f"cannot truncate {name} ({len(entry.data)} bytes) to {size}")
        pending = self._persist_point("truncate", name)
        if pending and not self._interrupted_call_applied():
            self._crash_now()
        del entry.data[size:]
        entry.durable = bytes(entry.data)
        if pending:
            self._crash_now()

    def remove(self, name: str) -> None:
        """Delete ``name`` durably."""
        validate_name(name)
        if name not in self._files:
            return
        pending = self._persist_point("remove", name)
        if pending and not self._interrupted_call_applied():
            self._crash_now()
        del self._files[name]
        if pending:
            self._crash_now()

    def size(self, name: str) -> int | None:
        """Return the visible size of ``name`` or None."""
        entry = self._files.get(validate_name(name))
        return None if entry is None else len(entry.data)

    def list(self) -> builtins.list[str]:
        """Return the sorted file names."""
        return sorted(self._files)

    def locate(self, name: str) -> str:
        """Return ``mem:<name>``."""
        return f"mem:{name}"

    def close(self) -> None:
        """Nothing to release."""

    # -- inspection for tests ------------------------------------------------

    def durable_view(self) -> dict[str, bytes]:
        """Return what a power cut right now would leave on disk (torn tails aside)."""
        return {n: f.durable for n, f in sorted(self._files.items()) if f.durable is not None}
