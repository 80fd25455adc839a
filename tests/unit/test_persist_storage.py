"""Both Storage implementations: the shared contract, fsync order, the crash model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.persist import CrashingMemoryStorage, DirStorage, SimulatedCrash, Storage, StorageCall


@pytest.fixture(params=["dir", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    made: Storage = DirStorage(tmp_path / "s1") if request.param == "dir" else CrashingMemoryStorage(0)
    yield made
    made.close()


def test_implementations_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(DirStorage(tmp_path), Storage)
    assert isinstance(CrashingMemoryStorage(), Storage)


def test_missing_file(storage: Storage) -> None:
    assert storage.read("a") is None
    assert storage.size("a") is None
    assert storage.list() == []
    storage.remove("a")  # not an error
    with pytest.raises(FileNotFoundError):
        storage.sync("a")
    with pytest.raises(FileNotFoundError):
        storage.truncate("a", 0)


def test_write_atomic_replaces(storage: Storage) -> None:
    storage.write_atomic("a.snap", b"one")
    storage.write_atomic("a.snap", b"two!")
    assert storage.read("a.snap") == b"two!"
    assert storage.size("a.snap") == 4
    assert storage.list() == ["a.snap"]


def test_append_is_visible_before_sync(storage: Storage) -> None:
    storage.append("j", b"ab")
    assert storage.read("j") == b"ab"
    storage.append("j", b"cd")
    storage.sync("j")
    storage.append("j", b"e")
    assert storage.read("j") == b"abcde"
    assert storage.size("j") == 5


def test_truncate_and_remove(storage: Storage) -> None:
    storage.append("j", b"abcdef")
    storage.truncate("j", 2)
    assert storage.read("j") == b"ab"
    storage.append("j", b"Z")
    assert storage.read("j") == b"abZ"
    with pytest.raises(ValueError):
        storage.truncate("j", 10)
    storage.remove("j")
    assert storage.read("j") is None
    assert storage.list() == []


def test_write_atomic_over_an_appended_file(storage: Storage) -> None:
    storage.append("x", b"journal")
    storage.write_atomic("x", b"snap")
    storage.append("x", b"+")
    assert storage.read("x") == b"snap+"


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x.tmp", "a\0b", "x" * 200])
def test_names_cannot_escape_or_collide_with_temp_files(storage: Storage, name: str) -> None:
    with pytest.raises(ValueError):
        storage.write_atomic(name, b"")
    with pytest.raises(ValueError):
        storage.append(name, b"")


def test_dir_storage_survives_reopen_and_cleans_stale_temps(tmp_path: Path) -> None:
    with DirStorage(tmp_path / "s1") as first:
        first.write_atomic("a.snap", b"A")
        first.append("a.journal", b"J")
        first.sync("a.journal")
    (tmp_path / "s1" / ".a.snap.tmp").write_bytes(b"half written")
    second = DirStorage(tmp_path / "s1")
    assert second.read("a.snap") == b"A"
    assert second.read("a.journal") == b"J"
    assert second.list() == ["a.journal", "a.snap"]
    assert not (tmp_path / "s1" / ".a.snap.tmp").exists()
    assert second.locate("a.snap") == str(tmp_path / "s1" / "a.snap")


def test_dir_storage_fsync_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """File data is fsynced before the rename, and the directory after it."""
    store = DirStorage(tmp_path / "s1")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.write_atomic("a.snap", b"data")
    assert events == [("fsync", ".a.snap.tmp"), ("rename", "a.snap"), ("fsync", "s1")]
    events.clear()
    store.append("a.journal", b"x")
    assert events == []  # an append is not durable by itself
    store.sync("a.journal")
    assert events == [("fsync", "a.journal"), ("fsync", "s1")]  # new file: its dir entry too
    events.clear()
    store.append("a.journal", b"y")
    store.sync("a.journal")
    assert events == [("fsync", "a.journal")]
    events.clear()
    store.remove("a.journal")
    assert events == [("fsync", "s1")]


def test_dir_storage_appends_survive_a_process_kill(tmp_path: Path) -> None:
    """Appends live in the page cache, not in a Python buffer that dies with us."""
    script = textwrap.dedent(
        f"""
        import os
        from actors.persist import DirStorage
        storage = DirStorage({str(tmp_path / "s1")!r})
        storage.append("j", b"synced")
        storage.sync("j")
        storage.append("j", b"+cached")
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2])
    assert DirStorage(tmp_path / "s1").read("j") == b"synced+cached"


# -- the crash model ----------------------------------------------------------


def test_power_cut_loses_unsynced_appends_only() -> None:
    mem = CrashingMemoryStorage(1)
    mem.append("j", b"durable")
    mem.sync("j")
    mem.append("j", b"-lost")
    mem.write_atomic("s", b"snap")
    mem.append("new", b"never synced")
    mem.crash()
    assert mem.read("j") == b"durable"
    assert mem.read("s") == b"snap"
    assert mem.read("new") is None
    assert mem.list() == ["j", "s"]


def test_truncate_and_remove_are_durable() -> None:
    mem = CrashingMemoryStorage(1)
    mem.append("j", b"abcdef")
    mem.truncate("j", 3)
    mem.append("gone", b"x")
    mem.sync("gone")
    mem.remove("gone")
    mem.crash()
    assert mem.read("j") == b"abc"
    assert mem.read("gone") is None


def test_process_crash_keeps_the_page_cache() -> None:
    mem = CrashingMemoryStorage(1)
    mem.append("j", b"cached")
    mem.crash(power_loss=False)
    mem.crash()  # written back by then: a later power cut keeps it
    assert mem.read("j") == b"cached"


def test_torn_writes_keep_a_prefix_of_the_unsynced_tail() -> None:
    lengths = set()
    for seed in range(60):
        mem = CrashingMemoryStorage(seed, torn_writes=True)
        mem.append("j", b"0123")
        mem.sync("j")
        mem.append("j", b"456789")
        mem.append("j", b"abcdef")
        mem.crash()
        kept = mem.read("j")
        assert kept is not None and b"0123456789abcdef".startswith(kept) and len(kept) >= 4
        lengths.add(len(kept))
    assert len(lengths) > 5  # really torn at different places, not all-or-nothing


def test_zero_fill_tears_are_prefix_then_zeros() -> None:
    zeroed = 0
    for seed in range(60):
        mem = CrashingMemoryStorage(seed, torn_writes=True, zero_fill=True)
        mem.append("j", b"X" * 40)
        mem.crash()
        kept = mem.read("j") or b""
        assert kept == b"X" * len(kept.rstrip(b"\0")) + bytes(len(kept) - len(kept.rstrip(b"\0")))
        zeroed += kept.endswith(b"\0")
    assert zeroed > 0


def _scenario(seed: int) -> tuple[dict[str, bytes], int]:
    mem = CrashingMemoryStorage(seed, torn_writes=True, zero_fill=True)
    for i in range(20):
        mem.append(f"f{i % 3}", bytes([i]) * (i + 1))
        if i % 4 == 0:
            mem.sync(f"f{i % 3}")
    mem.fail_after(5)
    try:
        for i in range(20):
            mem.append("f0", b"y" * i)
    except SimulatedCrash:
        pass
    return mem.durable_view(), mem.persist_points


def test_crash_model_is_deterministic_given_its_seed() -> None:
    assert _scenario(7) == _scenario(7)
    assert any(_scenario(7) != _scenario(seed) for seed in range(8, 12))


def test_fail_after_crashes_at_the_chosen_persist_point() -> None:
    mem = CrashingMemoryStorage(0, record_calls=True)
    mem.append("j", b"a")
    mem.sync("j")
    mem.fail_after(2)
    mem.append("j", b"b")  # 1st: allowed
    mem.read("j")  # reads are not persist points
    mem.sync("j")  # 2nd: allowed
    with pytest.raises(SimulatedCrash):
        mem.append("j", b"c")
    assert mem.read("j") == b"ab"
    assert [c.op for c in mem.calls] == ["append", "sync", "append", "sync", "append"]
    assert mem.persist_points == 5
    mem.append("j", b"d")  # disarmed after firing: the "rebooted" disk works
    assert mem.read("j") == b"abd"


def test_crash_hook_sees_every_persist_point_and_may_crash() -> None:
    mem = CrashingMemoryStorage(0)
    seen: list[StorageCall] = []

    def hook(call: StorageCall) -> None:
        seen.append(call)
        if call.op == "truncate":
            raise SimulatedCrash("at truncate")

    mem.set_hook(hook)
    mem.write_atomic("s", b"1")
    mem.append("j", b"abc")
    with pytest.raises(SimulatedCrash):
        mem.truncate("j", 0)
    assert seen == [StorageCall(0, "write_atomic", "s"), StorageCall(1, "append", "j"), StorageCall(2, "truncate", "j")]
    assert mem.read("j") is None  # the append was never synced, the truncate never ran
    assert mem.read("s") == b"1"


def test_interrupted_durable_calls_are_all_or_nothing() -> None:
    outcomes = set()
    for seed in range(30):
        mem = CrashingMemoryStorage(seed, torn_writes=True)
        mem.write_atomic("s", b"old")
        mem.fail_after(0)
        with pytest.raises(SimulatedCrash):
            mem.write_atomic("s", b"new")
        outcomes.add(mem.read("s"))
    assert outcomes == {b"old", b"new"}


def test_simulated_crash_cannot_be_swallowed_by_except_exception() -> None:
    assert not issubclass(SimulatedCrash, Exception)
