"""Persistence with real server processes (issue 5, docs/persistence.md).

* Damaged files through the real start-up: a torn last journal record is cut
  off with a log line saying what was dropped; a flipped byte in the snapshot,
  or a hostile pickle in it, keeps the server from starting with a one-line
  error naming the file (the pickle never runs); ``licpool snapshot show``
  reads the same files and gives the same error.
* The whole pool restarts within ``lease_ttl``: every lease is still held, and
  a restored lease whose client is gone gets one fresh ``lease_ttl`` of grace,
  then expires.
* Crash under load: 50 leases taken over 3 servers, every server's process
  group SIGKILLed at once at a random moment, restart; every grant a client saw
  is still held and every table adds up.  ``LICPOOL_CRASH_ROUNDS`` kill
  moments (default 3; the issue's 20 are run by hand and recorded in
  docs/performance.md), each with its own recorded seed
  (``LICPOOL_CRASH_SEED`` replays one).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from actors.protocol.admin import SessionsQuery, SessionsReply

SNAPSHOT = "node.snap"
JOURNAL = "node.journal"


# ---- helpers ----------------------------------------------------------------------------------


def _feature_ok(status: Any) -> list[str]:
    problems = []
    for f in status.features:
        allocated = sum(u.allocated for u in f.servers)
        if allocated + f.free_pool + f.in_flight != f.total:
            problems.append(
                f"{status.answered_by}: {f.feature} {f.version}: allocated {allocated} + free "
                f"{f.free_pool} + in flight {f.in_flight} != {f.total}"
            )
    return problems


def _wait_until_held(pool: Any, lease_id: str, timeout: float = 10.0) -> tuple[set[str], list[str]]:
    """``_held_by_servers`` once ``lease_id`` shows in a server's table (a lease
    that failed over while its server was down may still be on its way)."""
    deadline = time.monotonic() + timeout
    while True:
        held, silent = _held_by_servers(pool)
        if (lease_id in held and not silent) or time.monotonic() > deadline:
            return held, silent
        time.sleep(0.2)


def _held_by_servers(pool: Any, registry: set[str] | None = None) -> tuple[set[str], list[str]]:
    """Lease ids in the servers' own lease tables, and who did not answer.  Ids
    in the committed registries (a lease on its way between servers) are added
    to ``registry`` when given."""
    held: set[str] = set()
    silent = []
    for name in pool.names:
        reply = pool.link.ask(name, SessionsQuery(feature="", version=""), 3.0)
        if not isinstance(reply, SessionsReply):
            silent.append(name)
            continue
        held.update(x.lease_id for x in reply.leases)
        if registry is not None:
            registry.update(x.lease_id for x in reply.registry)
    return held, silent


def _wait_held(pool: Any, auths: list[Any], timeout: float) -> tuple[set[str], float]:
    """Wait until every id is in some server's lease table.  A lease handed over
    from one server to another (a client's fail-over after the restart) sits
    in neither table between the giver's consent and the commit of its
    completion, but it is in the committed registry, and its client keeps it:
    that is checked at every poll.  Returns (missing, seconds waited)."""
    t0 = time.monotonic()
    while True:
        # A lease its client has dropped is not renewed and expires on its own.
        lease_ids = {a.lease_id for a in auths if not a.lost.is_set()}
        registry: set[str] = set()
        held, silent = _held_by_servers(pool, registry)
        unknown = lease_ids - held - registry
        assert not unknown and not silent, f"known to no server: {sorted(unknown)}; silent: {silent}"
        missing = lease_ids - held
        if not missing or time.monotonic() - t0 > timeout:
            return missing, time.monotonic() - t0
        time.sleep(0.2)


def _snapshot_show(pool: Any, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", "snapshot", "show", "--config", str(pool.config), "--name", name, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env=pool.procs.env,
        check=False,
    )


def _kill_all_at_once(pool: Any) -> None:
    """SIGKILL every server's process group, then reap the launchers."""
    for name in pool.names:
        pool.procs.signal(name, signal.SIGKILL)
    for name in pool.names:
        proc = pool.procs.procs.get(name)
        if proc is not None:
            proc.wait(10)


def _incarnation(status: Any, name: str) -> int:
    return int(next(x.incarnation for x in status.servers if x.name == name))


def _restart(pool: Any, name: str, before: int) -> None:
    """Start ``name`` and wait until the pool shows a newer incarnation of it, live."""
    pool.start(name)
    pool.wait_status(
        lambda s: (
            _incarnation(s, name) > before
            and all(x.up and x.status == "live" for x in s.servers)
            and s.leader is not None
        ),
        30.0,
        f"{name} to rejoin as a new incarnation",
    )


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if "error" in line.lower()]


def _start_output(pool: Any, name: str) -> str:
    return str((pool.root / "out" / f"{name}.out").read_text(errors="replace"))


def _hostile_snapshot(marker: Path) -> bytes:
    """A well-framed snapshot (right magic, length and sha256) whose payload runs a command."""

    class RunsShell:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(
        {"schema_version": 1, "meta": {"stream": "node", "last_seq": 0}, "state": RunsShell()}, protocol=5
    )
    fields = b"LPSNAP\n" + struct.pack(">IQ", 1, len(payload))
    return fields + hashlib.sha256(fields + payload).digest() + payload


def _wait_start_fails(pool: Any, name: str, timeout: float = 40.0) -> int:
    proc = pool.procs.procs[name]
    try:
        return int(proc.wait(timeout))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} started (or hung) instead of refusing its damaged data")


# ---- damaged files through the real start-up ----------------------------------------------------


def test_torn_journal_flipped_snapshot_and_hostile_pickle_through_the_real_start_up(
    licpool_pool: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LICPOOL_COMPACT_EVERY", "10")  # so that a snapshot exists early
    # s2 stays down through three refused starts: a lease_ttl longer than all of
    # that keeps the client's lease alive whichever server ends up holding it.
    pool = licpool_pool(timing={"lease_ttl": 30.0})
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("ws-files", prefer="s2")
    auth = client.checkout("cad:2.0", timeout=5.0)
    name = auth.server
    data = pool.cfg.data_dir / name
    deadline = time.monotonic() + 20.0
    while not (data / SNAPSHOT).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (data / SNAPSHOT).exists(), f"{name} wrote no snapshot"

    shown = _snapshot_show(pool, name, "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["snapshot"] is True and auth.lease_id in {x["lease_id"] for x in doc["leases"]}
    text = _snapshot_show(pool, name)
    assert text.returncode == 0 and f"server {name}: data" in text.stdout, text.stderr

    # 1. A torn last record: a header promising 200 bytes, then 50 of them.
    incarnation = _incarnation(pool.wait_formed(), name)
    pool.procs.kill(name)
    torn = struct.pack(">II", 200, 12345) + b"x" * 50
    with open(data / JOURNAL, "ab") as journal:
        journal.write(torn)
    _restart(pool, name, incarnation)
    assert torn not in (data / JOURNAL).read_bytes(), "the torn tail is still there"
    log = (data / "server.log").read_text(errors="replace")
    dropped = [line for line in log.splitlines() if "dropping 58 bytes" in line]
    assert dropped, "no log line says what was dropped"
    assert str(data / JOURNAL) in dropped[-1] and "runs past the end of the file" in dropped[-1]
    held, silent = _wait_until_held(pool, auth.lease_id)
    assert not silent and auth.lease_id in held
    assert not auth.lost.is_set(), auth.lost_reason

    # 2. One flipped byte in the snapshot: a clear one-line error, no start, no fresh state.
    incarnation = _incarnation(pool.wait_formed(), name)
    pool.procs.kill(name)
    good = (data / SNAPSHOT).read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0x20
    (data / SNAPSHOT).write_bytes(bytes(damaged))
    pool.start(name)
    assert _wait_start_fails(pool, name) != 0
    expected = f"snapshot {data / SNAPSHOT}: checksum mismatch (sha256): the file is damaged"
    errors = _errors(_start_output(pool, name))
    assert errors and errors[-1] == f"licpool: error: {expected}", _start_output(pool, name)
    assert (data / SNAPSHOT).read_bytes() == bytes(damaged), "the damaged file was replaced"
    for extra in ((), ("--json",)):
        shown = _snapshot_show(pool, name, *extra)
        assert shown.returncode != 0 and shown.stdout == ""
        assert shown.stderr.strip().splitlines() == [f"licpool: error: {expected}"], shown.stderr

    # 3. A hostile pickle, well framed: refused by name, and it never runs.
    marker = tmp_path / "MARKER"
    (data / SNAPSHOT).write_bytes(_hostile_snapshot(marker))
    pool.start(name)
    assert _wait_start_fails(pool, name) != 0
    errors = _errors(_start_output(pool, name))
    assert errors[-1] == f"licpool: error: refused unsafe global 'posix.system' in {data / SNAPSHOT}"
    shown = _snapshot_show(pool, name, "--json")
    assert shown.returncode != 0 and "refused unsafe global 'posix.system'" in shown.stderr
    assert not marker.exists(), "the hostile pickle ran"

    # The good file back: the server starts and holds the lease again.
    (data / SNAPSHOT).write_bytes(good)
    _restart(pool, name, incarnation)
    held, silent = _wait_until_held(pool, auth.lease_id)
    assert not silent and auth.lease_id in held
    assert not marker.exists()


# ---- the whole pool restarts within lease_ttl ------------------------------------------------------


def test_whole_pool_restart_within_lease_ttl_keeps_leases_and_gives_one_fresh_grace(licpool_pool: Any) -> None:
    from actors.shell.system import live_members

    ttl = 12.0
    pool = licpool_pool(timing={"lease_ttl": ttl})
    rho = pool.cfg.timing.clock_drift
    pool.wait_formed()
    pool.add_license(pool.license(10))
    keeper = pool.client("ws-keeper", prefer="s1")
    kept = [keeper.checkout("cad:2.0", timeout=5.0) for _ in range(2)]
    gone = pool.client("ws-gone", prefer="s2")
    orphan = gone.checkout("cad:2.0", timeout=5.0)

    # The orphan's app dies (its whole actor system): nobody renews that lease again.
    assert gone._started is not None
    for pid in live_members("session", {gone._started.helper}):
        os.kill(pid, signal.SIGKILL)
    t_dead = time.monotonic()
    time.sleep(ttl / 2)

    _kill_all_at_once(pool)
    for name in pool.names:
        pool.start(name)
    pool.wait_formed(timeout=30.0)
    t_back = time.monotonic()
    assert t_back - t_dead < ttl * (1 - rho), "the restart took longer than the test allows"
    held, silent = _held_by_servers(pool)
    assert not silent
    assert {a.lease_id for a in kept} | {orphan.lease_id} <= held, "a lease did not survive the restart"

    # Its first lease_ttl, counted from the client's last renewal, is over: a
    # fresh grace from the restart keeps it.
    time.sleep(max(0.0, t_dead + ttl * (1 + rho) + 1.5 - time.monotonic()))
    held, _ = _held_by_servers(pool)
    assert orphan.lease_id in held, "the restored lease did not get a fresh lease_ttl of grace"

    # ... and only one: it expires within lease_ttl of the restart (plus the tick and margin).
    limit = t_back + ttl * (1 + rho) + pool.cfg.timing.failure_timeout + 2.0
    while orphan.lease_id in held and time.monotonic() < limit:
        time.sleep(0.2)
        held, _ = _held_by_servers(pool)
    freed = time.monotonic()
    assert orphan.lease_id not in held, "the orphaned lease outlived its one grace period"
    assert {a.lease_id for a in kept} <= held and not any(a.lost.is_set() for a in kept)
    status = pool.status()
    assert status is not None and not _feature_ok(status)
    print(
        f"\nwhole pool back {t_back - t_dead - ttl / 2:.2f} s after the kill; the orphaned lease was freed "
        f"{freed - t_back:.2f} s after the pool was back ({freed - t_dead:.2f} s after its client died); "
        f"the kept leases are still held"
    )


# ---- crash under load --------------------------------------------------------------------------

LEASES = 50
CLIENTS = 6


def _rounds() -> int:
    return int(os.environ.get("LICPOOL_CRASH_ROUNDS", "3"))


def _seeds() -> list[int]:
    fixed = os.environ.get("LICPOOL_CRASH_SEED")
    if fixed:
        return [int(fixed)]
    base = int(os.environ.get("LICPOOL_CRASH_BASE_SEED", str(int(time.time()) % 100_000 * 100)))
    return [base + i for i in range(_rounds())]


class Load:
    """CLIENTS LicenseClients in threads, taking LEASES leases between them."""

    def __init__(self, clients: list[Any]) -> None:
        self.clients = clients
        self.confirmed: list[Any] = []
        self.lock = threading.Lock()
        self.grant = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        quotas = [LEASES // CLIENTS + (1 if i < LEASES % CLIENTS else 0) for i in range(CLIENTS)]
        self.threads = [
            threading.Thread(target=self._take, args=(c, q), daemon=True)
            for c, q in zip(self.clients, quotas, strict=True)
        ]
        for t in self.threads:
            t.start()

    def _take(self, client: Any, quota: int) -> None:
        from actors.client import LicenseDenied

        mine = 0
        while mine < quota and not self.stop.is_set():
            try:
                auth = client.checkout("cad:2.0", timeout=3.0)
            except LicenseDenied:
                time.sleep(0.05)
                continue
            except Exception as exc:  # the test fails on it below
                self.errors.append(repr(exc))
                return
            mine += 1
            with self.grant:
                self.confirmed.append(auth)
                self.grant.notify_all()

    def wait_for(self, count: int, timeout: float) -> int:
        with self.grant:
            self.grant.wait_for(lambda: len(self.confirmed) >= count, timeout)
            return len(self.confirmed)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.stop.set()
        for t in self.threads:
            t.join(5.0)


LEASE_TTL = 15.0


def test_sigkill_every_server_at_a_random_moment_under_load(licpool_pool: Any) -> None:
    pool = licpool_pool(timing={"lease_ttl": LEASE_TTL})
    pool.wait_formed()
    pool.add_license(pool.license(LEASES + 10))
    clients = [pool.client(f"ws-load-{i}", prefer=pool.names[i % len(pool.names)]) for i in range(CLIENTS)]
    rows = []
    client_losses: list[str] = []
    for seed in _seeds():
        rng = random.Random(seed)
        kill_after = rng.randint(1, LEASES - 1)
        jitter = rng.uniform(0.0, 0.02)
        load = Load(clients)
        try:
            load.start()
            at_kill = load.wait_for(kill_after, 30.0)
            time.sleep(jitter)
            t0 = time.monotonic()
            _kill_all_at_once(pool)
            with load.lock:
                seen_at_kill = len(load.confirmed)
            for name in pool.names:
                pool.start(name)
            status = pool.wait_formed(timeout=40.0)
            back = time.monotonic() - t0
            # Persistence: right after the restart every grant confirmed so far is
            # known to a server (its lease table, or the registry while it moves).
            with load.lock:
                so_far = [a.lease_id for a in load.confirmed]
            registry: set[str] = set()
            held, silent = _held_by_servers(pool, registry)
            unknown = set(so_far) - held - registry
            assert not unknown and not silent, f"seed {seed}: confirmed grants known to no server: {sorted(unknown)}"
            load.join(40.0)
        finally:
            load.stop.set()
        assert not load.errors, load.errors
        confirmed = list(load.confirmed)
        assert at_kill >= kill_after and len(confirmed) == LEASES, (seed, at_kill, len(confirmed))
        # Every grant its client still holds settles in a lease table.
        missing, settled = _wait_held(pool, confirmed, 20.0)
        assert not missing, f"seed {seed}: confirmed grants in no server's lease table: {sorted(missing)}"
        held, _ = _held_by_servers(pool)
        for name in pool.names:
            one = pool.status(name)
            assert one is not None and not _feature_ok(one), (seed, name, _feature_ok(one) if one else None)
        total = next(f.total for f in status.features if f.feature == "cad")
        assert len(held) <= total
        # S2 (docs/reliability.md): a pool back well within lease_ttl loses no
        # lease of a running app.  Before issue 11's fixes the fail-over storm
        # after a whole-pool restart made clients drop leases a server still
        # held (up to 12 of 50 in a round).  A pool that took longer than half
        # of lease_ttl to form (a machine far too loaded) is exempt, and warned of.
        lost = [a for a in confirmed if a.lost.is_set()]
        losses = [f"seed {seed}: {a.lease_id} at {a.server}: {a.lost_reason}" for a in lost]
        if back < LEASE_TTL / 2:
            assert not losses, f"leases dropped by their client after a whole-pool restart: {losses}"
        client_losses.extend(losses)
        rows.append(
            f"seed {seed}: killed after {seen_at_kill} confirmed grants (target {kill_after}, "
            f"+{jitter * 1000:.0f} ms), pool back in {back:.2f} s, {len(confirmed)} held afterwards "
            f"(all in lease tables after {settled:.1f} s more); {len(lost)} dropped by their client"
        )
        for auth in confirmed:
            auth.release()
        # Dropped leases are no longer renewed: they expire after lease_ttl on their own.
        stranded = {a.lease_id for a in lost}
        deadline = time.monotonic() + 20.0
        while (left := _held_by_servers(pool)[0] - stranded) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"seed {seed}: released leases still held: {sorted(left)[:5]}"
    print("\n" + "\n".join(rows))
    if client_losses:
        warnings.warn(
            "leases dropped by their client after a pool that took over lease_ttl/2 to form (exempt): "
            + "; ".join(client_losses),
            stacklevel=1,
        )
