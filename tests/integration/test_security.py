"""Security of a running licpool pool: every port, garbage frames, signed admin changes.

test_wire.py proves the allowlist on plain Thespian systems; here the same raw
frames (``b'<len>>' + pickle``) go to every listening port of real
``licpool server`` processes (admin, logger, LicenseServer, Resolver,
LeaderRole: whatever the server's processes listen on, found in /proc) and of
a ``LicenseClient``'s actor system (its admin, logger and ClientSession).

* Hostile pickles leave no marker, are answered ``ACK+DATAERR``, and the pool
  keeps serving and keeps its leases.  Positive controls: an allowlisted
  frame with the same framing to the same port is answered ``ACK`` (decoded),
  and the same hostile bytes sent to a throwaway system started *without*
  the hook do create their markers.
* Every one of those ports listens on the configured address only.
* Random, truncated and garbage frames, and well-pickled messages with wrong
  field types, change nothing and crash nothing.
* Admin changes from the CLI: signed ones apply; a missing key file, a wrong
  key, an unsigned or a replayed change is refused with one line, non-zero
  exit, at the receiving server and at the leader.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from actors.protocol import admin as admin_msgs
from actors.protocol import client as client_msgs
from actors.protocol import pool as pool_msgs
from actors.shell.peerauth import derive_peer_key, seal
from tests.integration.test_wire import (
    ACK,
    ACK_DATAERR,
    LOOPBACK,
    NO_MARKER_WAIT_S,
    RawPeer,
    frame,
    hostile_payloads,
    sender_address,
)

pytestmark = pytest.mark.integration


def _licpool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "actors", *args], capture_output=True, text=True, timeout=60)


def _server_ports(actor_systems: Any, port: int) -> tuple[set[int], set[int]]:
    """The pids of the system whose admin listens on ``port``, and every port they listen on."""
    holders = actor_systems.listening_pids(port)
    assert holders, f"nothing listens on {port}"
    sessions = {os.getsid(pid) for pid in holders}
    pids = set().union(*(actor_systems.session_members(s) for s in sessions))
    ports = set().union(*(actor_systems.listening_ports(pid) for pid in pids))
    return pids, ports


def _pool_ports(pool: Any, actor_systems: Any, client: Any) -> dict[str, int]:
    targets: dict[str, int] = {}
    for spec in pool.cfg.servers:
        _, ports = _server_ports(actor_systems, spec.port)
        for port in sorted(ports):
            targets[f"{spec.name}:{port}{' (admin)' if port == spec.port else ''}"] = port
    client_pids, client_ports = _server_ports(actor_systems, client._started.port)
    assert os.getpid() not in client_pids, "the client's admin runs in its own process"
    for port in sorted(client_ports):
        targets[f"client:{port}"] = port
    return targets


def _exchange(port: int, payload: bytes, answer: bool = True) -> str:
    peer = RawPeer(port)
    try:
        peer.send(payload)
        return peer.answer() if answer else ""
    finally:
        peer.close()


def _unread_endpoints(pool: Any, actor_systems: Any) -> set[int]:
    """Ports of endpoints that decode only while their process asks, tells or
    listens (docs/thespian-shell.md section 5): each ``licpool server``
    launcher's own endpoint, and this test process's (the LicenseClient's,
    the PoolLink's).  Thespian's forked processes inherit these listening
    sockets, so they show up among every process's ports."""
    launchers = [proc.pid for proc in pool.procs.procs.values()]
    return set().union(*(actor_systems.listening_ports(pid) for pid in [*launchers, os.getpid()]))


def _feature(status: Any) -> Any:
    return next(f for f in status.features if (f.feature, f.version) == ("cad", "2.0"))


def test_hostile_pickles_to_every_port_of_a_pool_and_a_client_run_nothing(
    licpool_pool: Any, actor_systems: Any, tmp_path: Path, wait_until: Any
) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("ws-sec", prefer="s2")
    auth = client.checkout("cad:2.0", timeout=5.0)
    targets = _pool_ports(pool, actor_systems, client)
    # 3 servers x (admin, logger, LicenseServer, Resolver) at least, + LeaderRole; the client's admin,
    # logger and ClientSession.
    assert len([t for t in targets if not t.startswith("client")]) >= 13, targets
    assert len([t for t in targets if t.startswith("client")]) >= 3, targets
    allowed = pickle.dumps((sender_address(pool.cfg.servers[0].port), admin_msgs.StatusQuery(request_id="raw-control")))
    unread = _unread_endpoints(pool, actor_systems)
    markers = tmp_path / "markers"
    markers.mkdir()
    answered = 0
    for label, port in targets.items():
        where = markers / label.replace(":", "-").replace(" ", "")
        where.mkdir()
        read = port not in unread
        for name, payload in hostile_payloads(where).items():
            assert _exchange(port, payload, read) == (ACK_DATAERR if read else ""), f"{name} to {label}"
        if read:
            # Positive control, same framing, same port: an allowlisted message decodes.
            assert _exchange(port, allowed) == ACK, f"allowlisted frame to {label}"
            answered += 1
    print(f"\n{len(targets)} ports, {answered} answered, unread endpoints {sorted(unread & set(targets.values()))}")
    assert answered >= 15 and len(unread & set(targets.values())) <= 5, (answered, unread)
    time.sleep(NO_MARKER_WAIT_S)
    ran = sorted(str(x.relative_to(markers)) for x in markers.rglob("*") if x.is_file())
    assert ran == [], f"hostile frames ran code: {ran}"
    # Still serving, and the lease is kept.
    assert not auth.lost.is_set()
    second = client.checkout("cad:2.0", timeout=5.0)
    leases, silent = pool.link.sessions("cad", "2.0")
    assert not silent and {auth.lease_id, second.lease_id} <= {x.lease_id for x in leases}
    # Every port listens on the configured address (127.0.0.1) only.
    for label, port in targets.items():
        assert actor_systems.listen_addresses(port) == {LOOPBACK}, f"{label} listens on more than 127.0.0.1"
    refusals = "".join((pool.cfg.data_dir / n / "server.log").read_text() for n in pool.names)
    assert "refused Thespian frame from 127.0.0.1:" in refusals


def test_control_the_same_frames_run_code_on_a_system_without_the_hook(
    actor_systems: Any, tmp_path: Path, wait_until: Any
) -> None:
    """Positive control for the test above: remove the hook and the same bytes do run."""
    bare = actor_systems.start(hooked=False)
    payloads = hostile_payloads(tmp_path)
    for payload in payloads.values():
        peer = RawPeer(bare.admin_port)
        try:
            peer.send(payload)
        finally:
            peer.close()
    wait_until(lambda: {x.name for x in tmp_path.iterdir()} >= set(payloads), 5, "every marker file")


def _spray(port: int, frames: Iterable[bytes]) -> int:
    """Send each frame on a fresh connection, read whatever comes back; returns the count."""
    sent = 0
    for data in frames:
        peer = RawPeer(port)
        try:
            peer.sock.sendall(data)
            peer.sock.settimeout(0.05)
            with contextlib.suppress(OSError):
                peer.sock.recv(4096)
        finally:
            peer.close()
        sent += 1
    return sent


def _garbage_frames(rng: random.Random, sender: Any) -> list[bytes]:
    """Raw bytes to write to a port: framed and unframed, truncated, random, ill-typed."""
    good = pickle.dumps((sender, admin_msgs.StatusQuery(request_id="garbage")))
    ill_typed = [
        client_msgs.CheckoutRequest(client_id=["x"], session_id={"y": 1}, request_id="one", feature=5, version=None),  # type: ignore[arg-type]  # ill-typed on purpose
        client_msgs.SessionHeartbeat(client_id="c", session_id="s", seq=1, lease_ids=("a", ["nested"])),  # type: ignore[arg-type]  # ill-typed on purpose
        client_msgs.ReleaseRequest(client_id=None, lease_id=-1, request_id=2**70),  # type: ignore[arg-type]  # ill-typed on purpose
        pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id="r", code="LP1.AAAA.BBBB"),
        pool_msgs.DeclareServerDown(
            sender="cli",
            epoch=0,
            request_id="r",
            server="s1",
            auth=pool_msgs.AdminAuth(timestamp=1.0, nonce="0" * 32, mac="0" * 64),
        ),
        pool_msgs.BorrowRequest(
            sender="s9", epoch=10**6, feature="cad", version="2.0", count=-5, in_use=-1, allocated=-1, request_no=1
        ),
        admin_msgs.PeerEnvelope(
            pool="other-pool", sender="s1", address=sender, body=admin_msgs.PeerHello(incarnation=1)
        ),
        admin_msgs.PeerEnvelope(pool=["pool"], sender="s1", address=sender, body="body"),  # type: ignore[arg-type]  # ill-typed on purpose
        "just a string",
        {"a": [1, 2, (3,)]},
    ]
    frames: list[bytes] = []
    for msg in ill_typed:
        frames.append(frame(pickle.dumps((sender, msg))))
    frames.append(frame(pickle.dumps(("not an address", admin_msgs.StatusQuery(request_id="x")))))
    frames.append(frame(pickle.dumps(None)))
    for _ in range(12):
        n = rng.randrange(1, 200)
        frames.append(frame(b"\x80\x04" + rng.randbytes(n)))  # random opcodes
        frames.append(frame(rng.randbytes(n)))  # random payload
        frames.append(rng.randbytes(n))  # no framing at all
        cut = rng.randrange(1, len(good))
        frames.append(frame(good)[:cut])  # truncated frame, then the connection closes
        frames.append(frame(good[:cut]))  # complete frame holding a truncated pickle
        frames.append(b"%d>" % rng.choice([10**9, 2**62, -5, 0]) + rng.randbytes(8))  # lying lengths
        frames.append(b"notanumber>" + good)
    return frames


def test_garbage_frames_crash_nothing_and_change_nothing(licpool_pool: Any, actor_systems: Any, tmp_path: Path) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("ws-garbage", prefer="s3")
    auth = client.checkout("cad:2.0", timeout=5.0)
    before = pool.status()
    pids: set[int] = set()
    ports: dict[int, str] = {}
    for spec in pool.cfg.servers:
        server_pids, server_ports = _server_ports(actor_systems, spec.port)
        pids |= server_pids
        ports.update(dict.fromkeys(server_ports, spec.name))
    for port in _unread_endpoints(pool, actor_systems):
        ports.pop(port, None)  # nothing decodes there until its process asks (see the test above)
    sender = sender_address(pool.cfg.servers[0].port)
    rng = random.Random(20260601)
    sent = 0
    for port in sorted(ports):
        sent += _spray(port, _garbage_frames(rng, sender))
    assert sent > 500 and len(ports) >= 12, (sent, ports)
    # Every process is still there, the pool serves, the table and the lease are unchanged.
    alive = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
    assert alive == pids, f"processes gone: {sorted(pids - alive)}"
    after = pool.wait_formed()
    assert (_feature(after).total, after.leader) == (_feature(before).total, before.leader)
    assert not auth.lost.is_set()
    assert client.checkout("cad:2.0", timeout=5.0).lease_id != auth.lease_id
    audit = "".join((pool.cfg.data_dir / n / "audit.jsonl").read_text() for n in pool.names)
    assert '"bad_message"' in audit
    assert "admin change refused" not in audit or '"admin_refused"' in audit
    for name in pool.names:
        log = (pool.cfg.data_dir / name / "server.log").read_text()
        assert "restarting the core" not in log, f"{name} restarted its core"


def _wrong_key_config(pool: Any, tmp_path: Path, key_text: str | None) -> Path:
    """A copy of the pool's config whose admin_key_file holds ``key_text`` (None: no such file)."""
    key = tmp_path / f"other-admin-{uuid.uuid4().hex[:6]}.key"
    if key_text is not None:
        key.write_text(key_text)
    lines = []
    for line in pool.config.read_text().splitlines():
        if line.split("=")[0].strip() == "admin_key_file":
            line = f"admin_key_file = {json.dumps(str(key))}"
        elif line.split("=")[0].strip() in ("data_dir", "vendor_public_key"):
            name, _, value = line.partition("=")
            value = json.loads(value.strip())
            line = f"{name.strip()} = {json.dumps(str((pool.config.parent / value).resolve()))}"
        lines.append(line)
    out = tmp_path / f"pool-{uuid.uuid4().hex[:6]}.toml"
    out.write_text("\n".join(lines) + "\n")
    return out


def test_cli_admin_changes_are_signed_and_bad_ones_refused_with_one_line(licpool_pool: Any, tmp_path: Path) -> None:
    pool = licpool_pool()
    leader = pool.wait_formed().leader
    follower = next(n for n in pool.names if n != leader)
    ok = _licpool("license", "add", pool.license(10), "--config", str(pool.config))
    assert ok.returncode == 0 and "license code added" in ok.stdout, ok.stderr

    for key_text, expect in [
        ("w" * 40, "bad signature (wrong admin key"),
        (None, "admin_key_file"),
        ("short", "admin_key_file"),
    ]:
        config = _wrong_key_config(pool, tmp_path, key_text)
        result = _licpool("server", "down", follower, "--config", str(config))
        assert result.returncode != 0, result
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("licpool: error: "), result.stderr
        assert expect in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert all(s.status == "live" for s in pool.status().servers)

    # Unsigned, through a non-leader: refused there, never forwarded.
    reply = pool.link.ask(
        follower, pool_msgs.DeclareServerDown(sender="test", epoch=0, request_id="u1", server=follower), 5.0
    )
    assert isinstance(reply, pool_msgs.AdminReply) and not reply.ok and "not signed" in reply.error

    # A signed change, captured and replayed: to the same server, another, and the leader.
    captured = pool.link.sign(
        pool_msgs.AddAllocations(sender="test", epoch=0, request_id="c1", addon=pool.addon("T1", 5, "A1"))
    )
    first = pool.link.ask(follower, captured, 5.0)
    assert first is not None and first.ok, first
    pool.wait_applied(first.index)
    for to in (follower, leader, *pool.names):
        again = pool.link.ask(to, captured, 5.0)
        assert isinstance(again, pool_msgs.AdminReply) and not again.ok and "replayed" in again.error, (to, again)
    assert _feature(pool.status()).total == 15

    # A forged forward straight to the leader (as if from the follower), without the
    # peer MAC: dropped before anything reads it.
    change = pool_msgs.DeclareServerDown(sender=follower, epoch=99, request_id="f1", server=follower)
    follower_at = pool.link.resolve(follower)
    pool.link.asys.tell(
        pool.link.resolve(leader),
        admin_msgs.PeerEnvelope(pool=pool.cfg.name, sender=follower, address=follower_at, body=change),
    )
    _wait_audit(
        pool.cfg.data_dir / leader / "audit.jsonl",
        lambda r: r.get("event") == "peer_refused" and r.get("claimed") == follower,
        "peer_refused",
    )
    # Sealed with the peer key (someone who holds the admin key file), but the change
    # itself is unsigned: the leader checks the admin signature too.
    key = derive_peer_key(pool.cfg.admin_secret(), pool.cfg.name)
    pool.link.asys.tell(pool.link.resolve(leader), seal(key, pool.cfg.name, follower, follower_at, change))
    _wait_audit(
        pool.cfg.data_dir / leader / "audit.jsonl",
        lambda r: r.get("event") == "admin_refused" and r.get("hop") == "leader",
        "admin_refused",
    )
    follower_audit = [json.loads(x) for x in (pool.cfg.data_dir / follower / "audit.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "admin_refused" and r.get("hop") == "received" for r in follower_audit)
    assert all(s.status == "live" for s in pool.status().servers)


def _wait_audit(path: Any, match: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(match(json.loads(x)) for x in path.read_text().splitlines()):
            return
        time.sleep(0.05)
    pytest.fail(f"no {what} audit record in {path}")


def test_garbage_frames_keep_an_admin_and_its_logger_alive(actor_systems: Any) -> None:
    """Regression: a ``notanumber>`` length prefix made Thespian's admin exit
    (``ReceiveBuffer.addMore`` raises outside the transport's ``try``), and a
    str sender made an actor exit; ``wire.install`` guards both."""
    system = actor_systems.start()
    rng = random.Random(7)
    sender = sender_address(system.admin_port)
    for port in (system.admin_port, system.logger_port):
        _spray(port, _garbage_frames(rng, sender))  # ConnectionRefusedError: the process died
    assert Path(f"/proc/{system.admin_pid}").exists() and Path(f"/proc/{system.logger_pid}").exists()
    peer = RawPeer(system.admin_port)
    try:
        peer.sock.sendall(b"notanumber>" + pickle.dumps((sender, admin_msgs.StatusQuery(request_id="x"))))
        assert peer.answer() == ACK_DATAERR
    finally:
        peer.close()
    assert _exchange(system.admin_port, pickle.dumps((sender, admin_msgs.StatusQuery(request_id="x")))) == ACK
