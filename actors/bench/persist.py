"""Persistence benchmark: checkout throughput with durability on and off, group
commit, the worst compaction pause, and the recovery time of a server holding
100,000 leases.

It drives one server's core (``ServerNode``) the way the shell does
(``actors/shell/server_actor.py``: core, then ``NodeStore.write`` = append + one fsync,
then send, then ``NodeStore.maybe_compact``), on real files in ``--dir``.
A one-server pool keeps the network out of the figures.  "Durability off"
wraps the storage so that ``sync`` does nothing: that switch exists only
here, never in the server or its config.

    python -m actors.bench.persist [--leases 100000] [--ops 2000] [--dir D]

The directory must be on the disk you care about (not tmpfs: fsync is free
there).  The default is a fresh directory under the current one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.bench.echo import machine
from actors.core.codes import load_private_key, sign_license
from actors.core.effects import ClientRef, Ready
from actors.core.leases import LocalLease
from actors.core.node import ServerNode
from actors.core.records import LeaseRecord
from actors.persist import DirStorage, Storage
from actors.protocol import client as client_msgs
from actors.protocol import pool as pool_msgs
from actors.shell.config import load_config, write_default_pool
from actors.shell.persistence import NodeStore
from actors.shell.remote import sign_admin
from actors.shell.views import node_settings

__all__ = ["PAUSE_GOAL", "NoSyncStorage", "compaction_pauses", "main"]


class NoSyncStorage:
    """Benchmark only: a ``Storage`` whose ``sync`` does nothing (durability off).

    ``write_atomic`` (snapshots) still fsyncs, so compactions cost what they cost.
    """

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def sync(self, name: str) -> None:
        """Do not fsync."""


PAUSE_GOAL = 0.05
"""Issue 12: the longest pause a compaction may put inside the actor at 100,000 leases, in seconds."""


@dataclass
class Driver:
    """One server's core and store, driven like the shell drives them."""

    node: ServerNode
    store: NodeStore
    group: int = 1
    """Readies per fsync: 1 is what the shell does (one fsync per message)."""
    pending: list[Any] = field(default_factory=list)
    held: int = 0
    wake: float = 0.0
    pauses: list[tuple[float, int]] = field(default_factory=list)
    """(seconds, leases held) of every compaction."""
    granted: int = 0

    def carry(self, ready: Ready, *, flush: bool = False) -> None:
        self.pending.extend(ready.persist)
        self.held += 1
        if flush or self.held >= self.group:
            self.store.write(self.pending)
            self.pending, self.held = [], 0
            # (the replies of every Ready in the group would be sent here)
            t0 = time.perf_counter()
            if self.store.maybe_compact(self.node.snapshot):
                self.pauses.append((time.perf_counter() - t0, len(self.node.member.leases.leases)))
        self.granted += sum(1 for out in ready.send if isinstance(out.msg, client_msgs.CheckoutGranted))
        if ready.wake_at is not None:
            self.wake = ready.wake_at

    def tick_if_due(self) -> None:
        now = time.monotonic()
        if now >= self.wake:
            self.carry(self.node.tick(now), flush=True)

    def run_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError("the one-server pool did not get there in time")
            self.carry(self.node.tick(time.monotonic()), flush=True)
            time.sleep(0.002)


def _one_server_pool(root: Path, seats: int) -> tuple[Any, str]:
    """A config with one server (``s1``) and a signed license of ``seats`` seats."""
    config = write_default_pool(root)
    text = config.read_text().split("[[server]]")[0]
    text = text.replace("lease_ttl = 30.0", "lease_ttl = 3600.0")
    config.write_text(text + '[[server]]\nname = "s1"\nhost = "127.0.0.1"\nport = 47999\n')
    key = load_private_key((root / "vendor.key").read_bytes())
    code = sign_license(
        key, feature="cad", version="2.0", count=seats, expires="2099-12-31", serial="B1", majority=True
    )
    return load_config(config), code


def _boot(cfg: Any, store: NodeStore, group: int = 1) -> Driver:
    node, ready = ServerNode.boot(node_settings(cfg, "s1"), store.load(), time.monotonic())
    driver = Driver(node, store, group)
    driver.carry(ready, flush=True)
    return driver


def _serving(cfg: Any, store: NodeStore, code: str | None, group: int = 1) -> Driver:
    driver = _boot(cfg, store, group)
    driver.run_until(lambda: driver.node.raft.is_leader and driver.node.rejoined())
    if code is not None:
        admin = ClientRef("admin")
        change = sign_admin(cfg, pool_msgs.AddLicenseCode(sender="bench", epoch=0, request_id="r1", code=code))
        driver.carry(driver.node.from_client(admin, change, time.monotonic()), flush=True)
        driver.run_until(lambda: bool(driver.node.pool.features))
    return driver


def _checkouts(driver: Driver, count: int, start: int) -> float:
    """``count`` checkouts by distinct clients; returns the seconds taken."""
    t0 = time.perf_counter()
    for i in range(start, start + count):
        driver.tick_if_due()
        req = client_msgs.CheckoutRequest(
            client_id=f"c{i}", session_id=f"c{i}", request_id=1, feature="cad", version="2.0"
        )
        driver.carry(driver.node.from_client(ClientRef(f"c{i}"), req, time.monotonic()))
    driver.carry(Ready(), flush=True)
    return time.perf_counter() - t0


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def throughput(base: Path, ops: int) -> list[tuple[str, float, int]]:
    """Checkouts per second through the shell's persist step: durable per
    message, group commit of 10 and 100, and durability off."""
    rows = []
    for label, group, durable in (
        ("durable, one fsync per message (the shell)", 1, True),
        ("durable, group commit of 10", 10, True),
        ("durable, group commit of 100", 100, True),
        ("durability off (no fsync; benchmark only)", 1, False),
    ):
        root = Path(tempfile.mkdtemp(prefix="tput-", dir=base))
        cfg, code = _one_server_pool(root, ops + 10)
        store = NodeStore(cfg.data_dir / "s1")
        if not durable:
            store = NodeStore.over(NoSyncStorage(DirStorage(cfg.data_dir / "s1")))
        driver = _serving(cfg, store, code, group)
        syncs = store.syncs
        seconds = _checkouts(driver, ops, 0)
        if driver.granted < ops:
            raise RuntimeError(f"{label}: only {driver.granted} of {ops} checkouts granted")
        rows.append((label, ops / seconds, store.syncs - syncs if durable else 0))
        store.close()
        shutil.rmtree(root)
    return rows


@dataclass
class Recovery:
    leases: int
    build_s: float
    pauses: list[tuple[float, int]]
    files: dict[str, int]
    recover_tail_s: float
    tail_records: int
    compact_s: float
    recover_snapshot_s: float
    snapshot_bytes: int


def _grant_directly(driver: Driver, leases: int) -> None:
    """Put ``leases`` leases into the server's lease table the way a grant does
    (a lease id from the server's counter, the table's own journal ops), 1000
    per fsync, then let the leader commit its own lease report, so that the
    registry holds them too.

    Not through ``from_client``: 100,000 checkouts with one fsync each would
    take minutes and measure the disk, not the state.
    """
    node = driver.node
    now = time.monotonic()
    for i in range(leases):
        client = f"c{i}"
        lease_id = node.serving.new_lease_id(client)
        lease = LocalLease(lease_id, client, client, "cad", "2.0", now + 3600.0, granted_at=now)
        node.member.leases.grant(lease)
        if i % 1000 == 999 or i == leases - 1:
            driver.carry(Ready(persist=[LeaseRecord(op) for op in node.member.drain()]), flush=True)
    driver.run_until(lambda: len(node.pool.registry.leases) >= leases, timeout=600.0)


def core_cost(base: Path, held: int, ops: int = 500) -> float:
    """Microseconds of core work per checkout while ``held`` leases are held
    (``from_client`` alone: no disk, no network)."""
    root = Path(tempfile.mkdtemp(prefix="core-", dir=base))
    cfg, code = _one_server_pool(root, held + ops + 10)
    store = NodeStore(cfg.data_dir / "s1", compact_every_records=10**9)
    driver = _serving(cfg, store, code)
    if held:
        _grant_directly(driver, held)
    node = driver.node
    t0 = time.perf_counter()
    for i in range(ops):
        node.from_client(
            ClientRef(f"k{i}"),
            client_msgs.CheckoutRequest(
                client_id=f"k{i}", session_id=f"k{i}", request_id=1, feature="cad", version="2.0"
            ),
            time.monotonic(),
        )
    seconds = time.perf_counter() - t0
    store.close()
    shutil.rmtree(root)
    return seconds / ops * 1e6


def compaction_pauses(base: Path, sizes: list[int]) -> list[tuple[int, float, int, float, float, float]]:
    """At each size: (leases, inline pause, snapshot bytes, background: the
    actor's pause at the cut (fork), its pause at the journal swap, and the
    time from the cut to the swap)."""
    rows = []
    for size in sizes:
        root = Path(tempfile.mkdtemp(prefix="pause-", dir=base))
        cfg, code = _one_server_pool(root, size + 10)
        store = NodeStore(cfg.data_dir / "s1", compact_every_records=10**9)
        driver = _serving(cfg, store, code)
        _grant_directly(driver, size)
        while store.compacting:  # one the 16 MiB journal threshold started: never two writers of a snapshot
            store.maybe_compact(driver.node.snapshot)
            time.sleep(0.005)
        t0 = time.perf_counter()
        store.store.compact(driver.node.snapshot())
        inline = time.perf_counter() - t0
        snap_bytes = (cfg.data_dir / "s1" / "node.snap").stat().st_size
        # The same in the background, as the server does it: a cut, records
        # appended while the child writes, the swap when it is done.
        store.compaction = "fork"
        store.compact_every_records = 0
        t0 = time.perf_counter()
        started = store.maybe_compact(driver.node.snapshot)
        cut = time.perf_counter() - t0
        swap = 0.0
        while not started:
            time.sleep(0.005)
            t1 = time.perf_counter()
            started = store.maybe_compact(driver.node.snapshot)
            swap = max(swap, time.perf_counter() - t1)
        total = time.perf_counter() - t0
        rows.append((size, inline, snap_bytes, cut, swap, total))
        store.close()
        shutil.rmtree(root)
    return rows


def recovery(base: Path, leases: int) -> Recovery:
    """A server holding ``leases`` leases: time its recovery from the journal
    alone, a compaction of that state, and the recovery from the snapshot."""
    root = Path(tempfile.mkdtemp(prefix="recover-", dir=base))
    cfg, code = _one_server_pool(root, leases + 10)
    data = cfg.data_dir / "s1"
    store = NodeStore(data, compact_every_records=10**9)
    driver = _serving(cfg, store, code)
    t0 = time.perf_counter()
    _grant_directly(driver, leases)
    built = time.perf_counter() - t0
    store.close()
    files = {f.name: f.stat().st_size for f in data.iterdir() if f.is_file()}

    def recover() -> tuple[float, NodeStore, ServerNode, int]:
        again = NodeStore(data)
        t0 = time.perf_counter()
        durable = again.load()
        node, _ = ServerNode.boot(node_settings(cfg, "s1"), durable, time.monotonic())
        seconds = time.perf_counter() - t0
        if len(node.member.leases.leases) < leases:
            raise RuntimeError(f"recovered only {len(node.member.leases.leases)} leases")
        return seconds, again, node, len(durable[1]) if durable else 0

    tail_s, again, node, tail_records = recover()
    t0 = time.perf_counter()
    again.store.compact(node.snapshot())
    compact_s = time.perf_counter() - t0
    again.close()
    snap_s, again, _, _ = recover()
    again.close()
    result = Recovery(
        leases, built, [], files, tail_s, tail_records, compact_s, snap_s, (data / "node.snap").stat().st_size
    )
    shutil.rmtree(root)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leases", type=int, default=100_000, help="leases held for the recovery figures")
    parser.add_argument("--ops", type=int, default=2000, help="checkouts per throughput run")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: ./.bench-*)")
    args = parser.parse_args(argv)
    from loguru import logger

    logger.remove()
    base = Path(tempfile.mkdtemp(prefix=".bench-persist-", dir=args.dir or Path.cwd()))
    try:
        info = machine()
        info.pop("thespian", None)
        fs = _filesystem(base)
        print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + f", files on {fs}")
        print(f"\ncheckout throughput, {args.ops} checkouts each (one-server pool, core + NodeStore):")
        for label, rate, syncs in throughput(base, args.ops):
            print(f"  {label:<45} {rate:>9,.0f} checkouts/s  ({syncs} fsyncs)")
        print("\ncore work per checkout (ServerNode.from_client alone, no disk), by leases already held:")
        for held in (0, args.leases):
            print(f"  {held:>7,} leases held: {core_cost(base, held):>7,.0f} µs")
        print(
            "\ncompaction pause inside the actor: inline (node.snapshot() + write, fsync, rename, fsync dir) "
            "and in the background (the cut and fork; the journal swap when the child is done); goal <= 50 ms at "
            "100,000 leases"
        )
        for size, inline, size_b, cut, swap, total in compaction_pauses(
            base, [s for s in (1_000, 10_000) if s < args.leases] + [args.leases]
        ):
            worst = max(cut, swap)
            met = "met" if worst <= PAUSE_GOAL else "NOT met"
            goal = f" (goal <= {PAUSE_GOAL * 1000:g} ms: {met})" if size == 100_000 else ""
            print(
                f"  {size:>7,} leases: inline {inline * 1000:>7,.0f} ms; background: fork {cut * 1000:>6,.1f} ms, "
                f"swap {swap * 1000:>6,.1f} ms{goal}, the child done after {total * 1000:>7,.0f} ms  "
                f"(snapshot {size_b:,} B)"
            )
        r = recovery(base, args.leases)
        print(f"\nrecovery of a server holding {r.leases:,} leases (load + ServerNode.boot):")
        files = ", ".join(f"{k} {v:,} B" for k, v in sorted(r.files.items()) if k != "lock")
        print(
            f"  files as the server left them ({files}; {r.tail_records:,} journal records to replay; the 16 MiB "
            f"journal threshold compacts too): {r.recover_tail_s:.2f} s"
        )
        print(f"  from a fresh snapshot alone ({r.snapshot_bytes:,} B): {r.recover_snapshot_s:.2f} s")
        print(f"  (that compaction of the recovered state: {r.compact_s * 1000:,.0f} ms)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _filesystem(path: Path) -> str:
    best = ("?", "")
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                _, point, kind, *_ = line.split()
                if str(path.resolve()).startswith(point) and len(point) >= len(best[1]):
                    best = (kind, point)
    except OSError:
        pass
    return best[0]


if __name__ == "__main__":
    raise SystemExit(main())
