"""A real pool of server processes on loopback: forming, checkouts, borrowing,
admin changes through any server, resuming a lease, and the CLI's status.

Each test starts its own pool (``licpool_pool`` in conftest.py) with short
timings; teardown fails the test if any process is left behind.  Waits are
bounded polls of the pool's real status, never fixed sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from actors.client import LicenseDenied
from actors.protocol import pool as pool_msgs
from actors.protocol.client import DenyReason


def _feature(status: Any, feature: str = "cad", version: str = "2.0") -> Any:
    for f in status.features:
        if (f.feature, f.version) == (feature, version):
            return f
    return None


def _use(status: Any, server: str, feature: str = "cad", version: str = "2.0") -> Any:
    f = _feature(status, feature, version)
    return None if f is None else next(u for u in f.servers if u.server == server)


def _licpool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "actors", *args], capture_output=True, text=True, timeout=60)


def test_pool_forms_elects_one_leader_and_status_json_has_the_contract_shape(licpool_pool: Any) -> None:
    pool = licpool_pool()
    formed = pool.wait_formed()
    views = [pool.status(name) for name in pool.names]
    assert {v.leader for v in views} == {formed.leader}, "every server names the same leader"
    assert sum(v.role == "leader" for v in views) == 1
    assert formed.epoch >= 1

    pool.add_license(pool.license(10))
    result = _licpool("status", "--config", str(pool.config), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) >= {"pool", "epoch", "leader", "servers", "features"}
    assert doc["leader"] == formed.leader
    assert [s["name"] for s in doc["servers"]] == list(pool.names)
    assert all(set(s) >= {"name", "address", "up", "leader"} for s in doc["servers"])
    (feature,) = doc["features"]
    assert set(feature) >= {"feature", "version", "total", "free_pool", "servers"}
    assert feature["total"] == 10
    assert sum(x["allocated"] for x in feature["servers"].values()) + feature["free_pool"] == 10
    assert all(set(x) >= {"allocated", "in_use"} for x in feature["servers"].values())


def test_status_exits_2_when_no_server_answers(licpool_pool: Any) -> None:
    pool = licpool_pool(start=False)
    result = _licpool("status", "--config", str(pool.config))
    assert result.returncode == 2
    assert result.stderr.startswith("licpool: error: ") and "Traceback" not in result.stderr


def test_checkout_and_release_show_in_status_and_sessions(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("ws1/cad", prefer="s2")
    t0 = time.monotonic()
    auth = client.checkout("cad", version="2.0", timeout=5.0)
    grant_s = time.monotonic() - t0
    assert auth.server == "s2" and not auth.lost.is_set()
    pool.wait_status(lambda s: _use(s, "s2").in_use == 1, 5.0, "s2 to count the lease", name="s2")
    leases, silent = pool.link.sessions("cad", "2.0")
    assert not silent
    assert [(x.lease_id, x.client_id, x.server) for x in leases] == [(auth.lease_id, "ws1/cad", "s2")]

    with pytest.raises(LicenseDenied) as denied:
        client.checkout("nope", version="1.0", timeout=5.0)
    assert denied.value.reason == DenyReason.UNKNOWN_FEATURE

    auth.release()
    pool.wait_status(lambda s: _use(s, "s2").in_use == 0, 5.0, "the release", name="s2")

    # Throughput of the whole path: app -> session -> server (fsync) -> session -> app.
    n, t0 = 0, time.monotonic()
    held: list[Any] = []
    while time.monotonic() - t0 < 2.0 and len(held) < 3:
        held.append(client.checkout("cad:2.0", timeout=5.0))
        n += 1
    elapsed = time.monotonic() - t0
    print(
        f"\nfirst grant {grant_s * 1000:.1f} ms; {n} checkouts in {elapsed:.3f} s "
        f"({n / elapsed:.0f}/s, {elapsed / n * 1000:.1f} ms each)"
    )
    # Closing the client releases what it still holds at once, long before lease_ttl.
    closed_at = time.monotonic()
    client.close()
    assert all(x.released for x in held)
    pool.wait_status(lambda s: sum(u.in_use for u in _feature(s).servers) == 0, 3.0, "close to release every seat")
    assert time.monotonic() - closed_at < pool.cfg.timing.lease_ttl / 2


def test_a_server_at_its_threshold_borrows_from_the_leader_claim_1(licpool_pool: Any) -> None:
    pool = licpool_pool()
    leader = pool.wait_formed().leader
    borrower = next(n for n in pool.names if n != leader)
    pool.add_license(pool.license(10, distribution=f"{borrower}:3"))  # the rest goes to the free pool
    start = pool.wait_status(
        lambda s: _use(s, borrower) is not None and _use(s, borrower).allocated == 3,
        5.0,
        "the criteria to apply",
        name=borrower,
    )
    free_before = _feature(start).free_pool
    client = pool.client("ws-borrow", prefer=borrower)
    held = [client.checkout("cad:2.0", timeout=5.0) for _ in range(3)]
    assert {x.server for x in held} == {borrower}
    # 3/3 in use is above the 0.9 threshold: the borrower asks the leader, who takes the free pool first.
    after = pool.wait_status(lambda s: _use(s, borrower).allocated > 3, 5.0, f"{borrower} to borrow")
    assert _feature(after).free_pool < free_before
    f = _feature(after)
    assert sum(u.allocated for u in f.servers) + f.free_pool + f.in_flight == f.total == 10
    more = client.checkout("cad:2.0", timeout=5.0)
    assert more.server == borrower


def test_admin_changes_sent_to_a_follower_apply_pool_wide_claims_8_10_12(licpool_pool: Any) -> None:
    pool = licpool_pool()
    leader = pool.wait_formed().leader
    follower = next(n for n in pool.names if n != leader)
    code = pool.license(6, serial="L-ADM")
    reply = pool.add_license(code, via=follower)  # claim 12: add a license code through any server
    assert reply.index > 0
    again = pool.add_license(code, via=follower)
    assert again.already_present

    addon = pool.addon("L-ADM", 3, "A-ADM")  # claim 10: add allocations
    reply = pool.admin(
        lambda rid: pool_msgs.AddAllocations(sender="test", epoch=0, request_id=rid, addon=addon), via=follower
    )
    assert reply.ok, reply
    criteria = f"{pool.names[0]}:1^{pool.names[1]}:2^{pool.names[2]}:3"  # claim 8: distribution criteria
    reply = pool.admin(
        lambda rid: pool_msgs.ChangeDistributionCriteria(
            sender="test", epoch=0, request_id=rid, feature="cad", version="2.0", criteria=criteria
        ),
        via=follower,
    )
    assert reply.ok, reply

    def applied(s: Any) -> bool:
        f = _feature(s)
        return f is not None and f.total == 9 and [u.target for u in f.servers] == [1, 2, 3]

    for name in pool.names:  # every server's own committed view
        view = pool.wait_status(applied, 5.0, f"{name} to apply the changes", name=name)
        f = _feature(view)
        assert sum(u.allocated for u in f.servers) + f.free_pool + f.in_flight == 9


def test_reconnecting_with_a_lease_id_resumes_it_without_a_second_seat(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    first = pool.client("ws7/cad", prefer="s1")
    auth = first.checkout("cad:2.0", timeout=5.0)
    # The app restarts: a new process, a new session, the same client id and lease id.
    again = pool.client("ws7/cad", prefer="s3")
    resumed = again.checkout("cad:2.0", timeout=5.0, lease_id=auth.lease_id)
    assert resumed.lease_id == auth.lease_id

    def one_seat(s: Any) -> bool:
        f = _feature(s)
        return bool(sum(u.in_use for u in f.servers) == 1)

    pool.wait_status(one_seat, 5.0, "the pool to count exactly one seat")
    leases, _ = pool.link.sessions("cad", "2.0")
    assert [x.lease_id for x in leases] == [auth.lease_id]


def test_snapshot_show_reads_a_running_server_and_names_a_damaged_file(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10, serial="L-SNAP"))
    result = _licpool("snapshot", "show", "--name", "s2", "--config", str(pool.config), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["licenses"] == ["L-SNAP"] and doc["features"][0]["total"] == 10
    assert doc["incarnation"] >= 1 and doc["epoch"] >= 1

    pool.procs.stop("s2")
    snap = pool.cfg.data_dir / "s2" / "node.snap"
    snap.write_bytes(b"not a snapshot")
    result = _licpool("snapshot", "show", "--name", "s2", "--config", str(pool.config))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and str(snap) in result.stderr and "Traceback" not in result.stderr
    # A server refuses to start from a damaged file rather than start fresh.
    result = _licpool("server", "--config", str(pool.config), "--name", "s2", "--console-level", "OFF")
    assert result.returncode != 0
    assert result.stderr.startswith("licpool: error: ") and str(snap) in result.stderr


def test_cli_errors_are_one_line(licpool_pool: Any, tmp_path: Any) -> None:
    pool = licpool_pool(start=False)
    for args in (
        ["status", "--config", str(tmp_path / "missing.toml")],
        ["server", "--config", str(pool.config), "--name", "nope"],
        ["server", "--config", str(pool.config)],
        ["license", "add", "garbage", "--config", str(pool.config)],
        ["distribution", "set", "cad:2.0", "s1:x", "--config", str(pool.config)],
    ):
        result = _licpool(*args)
        assert result.returncode != 0, args
        assert result.stderr.startswith("licpool: error: ") and result.stderr.count("\n") == 1, (args, result.stderr)


def test_cli_admin_commands_report_commits_and_repeats(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    code = pool.license(10)
    config = str(pool.config)
    added = _licpool("license", "add", code, "--config", config)
    assert added.returncode == 0 and added.stdout.startswith("license code added (committed at log index"), added
    again = _licpool("license", "add", code, "--config", config)
    assert again.returncode == 0 and again.stdout.startswith("already present: "), again
    moved = _licpool("distribution", "set", "cad", "s1:4^s2:3^s3:3", "--config", config)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("distribution of cad 2.0 set to s1:4^s2:3^s3:3 (committed at log index"), moved
