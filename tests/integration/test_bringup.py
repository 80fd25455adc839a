"""docs/deployment.md, done as an operator would, on five "hosts" (network namespaces).

Hosts on ``10.79.0.0/24`` (the multihost test uses ``10.77``, chaos ``10.78``):

=====  ============  =====================================================
lic1   10.79.0.1     server s1 (admin port 1950, metrics port 9461)
lic2   10.79.0.2     server s2
lic3   10.79.0.3     server s3
ws17   10.79.0.17    a licensed application (tests/integration/clientapp.py)
ops    10.79.0.100   the operator: keys, config, status, license add
=====  ============  =====================================================

Each host has a directory of its own under the test's tmp dir standing in for
its file system: ``<host>/etc/licpool/`` (pool.toml, admin.key, vendor.pub) and
``<host>/var/lib/licpool`` (its data_dir).  Every step is the CLI run inside the
host's namespace (``ip netns exec NS python -m actors ...``), as the document
says:

1. on ops: ``vendor keygen``, an admin key of mode 0600, ``pool.toml`` copied
   from deploy/pool.example.toml and edited (addresses, shorter timings),
   ``config check``; the vendor issues a code with ``vendor issue``;
2. on each server host in turn: the files installed, ``check --name sN`` (it
   must pass: on lic1 with a warning for each server not yet started, later
   with ``ok`` for the reach, settings and clock of those running), then the
   server started as its systemd unit does, and its "serving on" line;
   ``status`` from ops until a leader and three servers are up;
3. ``license verify`` and ``license add`` from ops;
4. two apps on ws17, with a client pool.toml without the key lines, each
   holding a lease (one at a follower, one at the leader);
5. a rolling restart, the leader last: before each, ``status`` shows all three
   up; the server is stopped as systemd does (SIGTERM to the launcher, then
   the rest of its group) and started again; ``check`` on its host must pass
   with every line ``ok``; ``status`` until it is up as a new incarnation; and
   ``sessions`` until both leases are held again.  Throughout, neither app's
   lease is lost and its id does not change.  A lease that moved to another
   server is not a loss; the moves are printed as a figure.
6. After the restarts, ``check`` on every server host passes with every line
   ``ok`` (reach, settings hash and clock against the running servers).

A second test does section 6, replacing a dead host's disk: the server
rebuilt on an empty data_dir rejoins as a newer incarnation (its boot takes the
wall clock's seconds as a floor) and serves again.

The one line of pool.toml that differs per host is ``data_dir`` (a per-host
path, not part of the settings hash).  Needs root and ``ip netns``; skipped
elsewhere.  Teardown stops the apps and servers, kills whatever still runs in
a namespace, deletes every namespace, and fails the test if it had to kill or
could not delete anything.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Network, netns_unavailable

pytestmark = pytest.mark.multihost

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "pool.example.toml"
SUBNET = "10.79.0"
SERVERS = {"s1": "lic1", "s2": "lic2", "s3": "lic3"}
ADDRESSES = {
    "lic1": f"{SUBNET}.1",
    "lic2": f"{SUBNET}.2",
    "lic3": f"{SUBNET}.3",
    "ws17": f"{SUBNET}.17",
    "ops": f"{SUBNET}.100",
}
TIMING = {
    "heartbeat_interval": 0.2,
    "failure_timeout": 0.8,
    "leader_lease": 1.0,
    "fence_timeout": 1.0,
    "lease_ttl": 10.0,
}
"""The chaos tier's timings (tests/chaos/harness.py): quicker than the
example's, slow enough for two shared cores."""
CLI_TIMEOUT = 60.0


@dataclass
class Bringup:
    """The hosts, their files, the running servers and apps of one bring-up."""

    network: Network
    root: Path
    make_app: Callable[..., Any]
    env: dict[str, str]
    procs: Any = None
    apps: list[Any] = field(default_factory=list)
    calls: list[tuple[str, float]] = field(default_factory=list)

    def etc(self, host: str) -> Path:
        return self.root / host / "etc" / "licpool"

    def config(self, host: str) -> Path:
        return self.etc(host) / "pool.toml"

    def cli(self, host: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``licpool ARGS`` on ``host`` (``python -m actors`` from this worktree)."""
        began = time.monotonic()
        done = subprocess.run(
            [*self.network.exec_prefix(host), sys.executable, "-m", "actors", *args],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            cwd=ROOT,
            env=self.env,
        )
        self.calls.append((args[0], time.monotonic() - began))
        return done

    def app(self, client_id: str, prefer: str) -> Any:
        app = self._app(client_id, prefer)
        self.apps.append(app)
        return app

    def _app(self, client_id: str, prefer: str) -> Any:
        return self.make_app(self.config("ws17"), client_id, prefer, tuple(self.network.exec_prefix("ws17")))

    def close(self) -> list[str]:
        problems = [x for app in reversed(self.apps) for x in app.close()]
        if self.procs is not None:
            self.procs.stop_all(grace=10.0)
            left = self.procs.wait_gone(5.0)
            if left:
                problems.append(f"server processes left behind (killed): {left}")
        deadline = time.monotonic() + 5.0
        while self.network.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        return problems + self.network.destroy()


@pytest.fixture
def bringup(tmp_path: Path, client_apps: Any) -> Iterator[Bringup]:
    """Set up after ``client_apps``, so torn down before it: apps and servers
    stop here, before their namespaces go."""
    why = netns_unavailable()
    if why is not None:
        pytest.skip(why)
    network = Network("lpb")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "THESPLOG_FILE": str(tmp_path / "thespian.log")}
    setup = Bringup(network, tmp_path, client_apps, env)
    try:
        try:
            network.build(ADDRESSES)
        except subprocess.CalledProcessError as exc:
            if not network.created:
                pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
            raise
        yield setup
    finally:
        problems = setup.close()
    if problems:
        pytest.fail("; ".join(problems))


def _ok(done: subprocess.CompletedProcess[str], what: str) -> str:
    assert done.returncode == 0, f"{what}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _checks(done: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """``check --json``'s lines by name: (status, detail); it must have passed."""
    doc = json.loads(_ok(done, "licpool check"))
    assert doc["ok"] is True, doc
    return {c["check"]: (c["status"], c["detail"]) for c in doc["checks"]}


def _poll(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _pool_config() -> str:
    """deploy/pool.example.toml as the operator edits it: the hosts' addresses,
    shorter timings (the rest as shipped)."""
    text = EXAMPLE.read_text()
    for index, host in enumerate(SERVERS.values(), start=1):
        text = text.replace(f'host = "lic{index}.example.net"', f'host = "{ADDRESSES[host]}"')
    for key, value in TIMING.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
        assert n == 1, key
    assert "example.net" not in text
    return text


def _install(setup: Bringup, host: str, text: str, ops: Path, client: bool = False) -> None:
    """Section 2's ``install`` lines (section 4's for a client host): the same
    pool.toml, except its data_dir; the key files with their modes."""
    etc = setup.etc(host)
    etc.mkdir(parents=True)
    data = setup.root / host / "var" / "lib" / "licpool"
    text = re.sub(r"^data_dir = .*$", f'data_dir = "{data}"', text, flags=re.MULTILINE)
    if client:
        text, n = re.subn(r"^(admin_key_file|vendor_public_key) = .*\n", "", text, flags=re.MULTILINE)
        assert n == 2, "the client config keeps neither key line"
    else:
        data.mkdir(parents=True, mode=0o700)
        for name, mode in (("vendor.pub", 0o644), ("admin.key", 0o600)):
            shutil.copyfile(ops / name, etc / name)
            (etc / name).chmod(mode)
    (etc / "pool.toml").write_text(text)
    (etc / "pool.toml").chmod(0o644)


def _start_processes(setup: Bringup) -> Any:
    """Each server as its systemd unit runs it: ``licpool server --config
    /etc/licpool/pool.toml --name %i --console-level WARNING``, in a session of
    its own (the unit's cgroup); the launcher's output stands in for the journal."""
    from actors.shell.launcher import PoolProcesses

    configs = {name: setup.config(host) for name, host in SERVERS.items()}
    network = setup.network

    class Units(PoolProcesses):
        def command(self, name: str) -> list[str]:
            return [
                *network.exec_prefix(SERVERS[name]),
                sys.executable,
                "-m",
                "actors",
                "server",
                "--config",
                str(configs[name]),
                "--name",
                name,
                "--console-level",
                "WARNING",
            ]

    return Units(configs["s1"], quiet=True, output=setup.root / "journal", env=setup.env)


def _journal(setup: Bringup, name: str) -> str:
    path = setup.root / "journal" / f"{name}.out"
    return path.read_text(errors="replace") if path.exists() else ""


def _start(setup: Bringup, name: str) -> None:
    """``systemctl start``, then wait for the "serving on" line (journalctl)."""
    before = _journal(setup, name).count("serving on")
    setup.procs.start(name)

    def serving() -> bool:
        if setup.procs.procs[name].poll() is not None:
            pytest.fail(f"server {name} exited {setup.procs.procs[name].returncode}:\n{_journal(setup, name)}")
        return _journal(setup, name).count("serving on") > before

    _poll(serving, 30.0, f"server {name}'s 'serving on' line")
    line = _journal(setup, name).strip().splitlines()[-1]
    assert re.match(
        rf"licpool: server {name} of pool 'eng-licenses' serving on "
        rf"{re.escape(ADDRESSES[SERVERS[name]])}:1950 .*; metrics on http://",
        line,
    ), line


def _status(setup: Bringup) -> dict[str, Any] | None:
    done = setup.cli("ops", "status", "--config", str(setup.config("ops")), "--json")
    if done.returncode != 0:
        return None
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _all_up(setup: Bringup) -> dict[str, Any] | None:
    s = _status(setup)
    if s is None or s["leader"] is None or s["answered_by"] != s["leader"]:
        return None
    return s if all(x["up"] and x["status"] == "live" for x in s["servers"]) else None


def _sessions(setup: Bringup) -> dict[str, str]:
    """``sessions --json`` from ops: lease id -> server."""
    done = setup.cli("ops", "sessions", "--config", str(setup.config("ops")), "--json")
    return {x["lease_id"]: x["server"] for x in json.loads(_ok(done, "sessions"))}


def _bring_up(setup: Bringup, phase: Callable[[str], None]) -> tuple[Path, str, str]:
    """Sections 1-3: keys and config on ops, check and start on each server
    host, a license; returns ops's directory, the config text and the leader."""
    # 1. Keys and config, on ops; the vendor's key pair and code.
    ops = setup.etc("ops")
    ops.mkdir(parents=True)
    vendor = setup.root / "vendor"
    vendor.mkdir()
    _ok(
        setup.cli(
            "ops",
            "vendor",
            "keygen",
            "--private-key",
            str(vendor / "vendor.key"),
            "--public-key",
            str(vendor / "vendor.pub"),
        ),
        "vendor keygen",
    )
    shutil.copyfile(vendor / "vendor.pub", ops / "vendor.pub")
    (ops / "admin.key").write_text(secrets.token_urlsafe(32) + "\n")
    (ops / "admin.key").chmod(0o600)
    text = _pool_config()
    (ops / "pool.toml").write_text(text)
    said = _ok(setup.cli("ops", "config", "check", "--config", str(ops / "pool.toml")), "config check")
    assert said.startswith(f"OK: {ops / 'pool.toml'}: pool 'eng-licenses', 3 server(s) (s1, s2, s3)"), said
    code = _ok(
        setup.cli(
            "ops",
            "vendor",
            "issue",
            "--private-key",
            str(vendor / "vendor.key"),
            "--feature",
            "cad",
            "--version",
            "2.0",
            "--count",
            "4",
            "--expires",
            "2099-12-31",
            "--serial",
            "CAD-BRINGUP",
        ),
        "vendor issue",
    ).strip()
    phase("keys and config")

    # 2. Each server host: install, check, start.
    for host in SERVERS.values():
        _install(setup, host, text, ops)
    setup.procs = _start_processes(setup)
    running: list[str] = []
    for name, host in SERVERS.items():
        found = _checks(setup.cli(host, "check", "--config", str(setup.config(host)), "--name", name, "--json"))
        others = [n for n in SERVERS if n != name]
        expect = {
            "config": "ok",
            "key admin": "ok",
            "key vendor": "ok",
            "address": "ok",
            "admin port": "ok",
            "metrics port": "ok",
        }
        for other in others:
            expect[f"reach {other}"] = "ok" if other in running else "warn"
            if other in running:
                expect[f"settings {other}"] = expect[f"clock {other}"] = "ok"
        assert {k: v[0] for k, v in found.items()} == expect, found
        for other in others:
            if other not in running:
                assert "does not answer (not started yet" in found[f"reach {other}"][1]
        _start(setup, name)
        running.append(name)
    status = _poll(lambda: _all_up(setup), 30.0, "a leader and three servers up (status from ops)")
    phase("check and start")

    # 3. A license, from ops.
    verified = _ok(setup.cli("ops", "license", "verify", "--config", str(ops / "pool.toml"), code), "license verify")
    assert "feature: cad" in verified and "count: 4" in verified, verified
    added = _ok(setup.cli("ops", "license", "add", "--config", str(ops / "pool.toml"), code), "license add")
    assert added.startswith("license code added (committed at log index"), added

    def licensed() -> dict[str, Any] | None:
        s = _status(setup)
        f = [f for f in (s or {}).get("features", ()) if (f["feature"], f["version"]) == ("cad", "2.0")]
        return s if f and f[0]["total"] == 4 and s and s["licenses"][0]["days_left"] > 0 else None

    status = _poll(licensed, 20.0, "the license in status")
    leader = status["leader"]
    shown = _ok(setup.cli("ops", "status", "--config", str(ops / "pool.toml")), "status").splitlines()
    for name, host in SERVERS.items():
        assert any(re.match(rf"  {name} +{re.escape(ADDRESSES[host])}:1950 +up", x) for x in shown), shown
    assert any(
        re.match(r"license CAD-BRINGUP: cad 2\.0, 4 seats, expires 2099-12-31: \d+ days left", x) for x in shown
    ), shown
    phase("license")
    return ops, text, leader


def test_the_documented_bring_up_and_a_rolling_restart_lose_no_lease(bringup: Bringup) -> None:
    setup = bringup
    began = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = time.monotonic() - began - sum(phases.values())

    ops, text, leader = _bring_up(setup, phase)

    # 4. Two apps on ws17 with a client config; one lease at a follower, one at the leader.
    _install(setup, "ws17", text, ops, client=True)
    follower = next(n for n in SERVERS if n != leader)
    apps = {prefer: setup.app(f"ws17/cad-{prefer}", prefer) for prefer in (follower, leader)}
    held: dict[str, str] = {}
    for prefer, app in apps.items():
        granted = app.checkout(timeout=10.0)
        assert granted["ok"] and granted["server"] == prefer, granted
        held[prefer] = granted["lease_id"]
    _poll(lambda: set(_sessions(setup)) == set(held.values()), 20.0, "both leases in sessions")
    phase("client apps")

    trace: dict[str, list[str]] = {prefer: [prefer] for prefer in apps}
    restarting: list[str] = []
    unforced: list[str] = []
    """Moves seen while another server than the lease's restarted (issue 11
    defect 5: a leader change moves leases off healthy followers)."""

    def watch() -> dict[str, str]:
        """Neither app's lease lost, its id unchanged; note where each lease is."""
        where = {}
        for prefer, app in apps.items():
            (auth,) = app.state()
            assert auth["lease_id"] == held[prefer], auth
            assert not auth["lost"], f"{app.client_id} lost its lease: {auth['lost_reason']}"
            if auth["server"] != trace[prefer][-1]:
                if restarting and trace[prefer][-1] != restarting[-1]:
                    unforced.append(
                        f"{app.client_id} {trace[prefer][-1]} -> {auth['server']} while {restarting[-1]} restarted"
                    )
                trace[prefer].append(auth["server"])
            where[auth["lease_id"]] = auth["server"]
        return where

    def agreed() -> bool:
        """The pool's sessions hold both leases, each where its app says it is."""
        return watch() == _sessions(setup)

    # 5. The rolling restart, the leader last.
    order = [n for n in reversed(SERVERS) if n != leader] + [leader]
    restarts: list[str] = []
    for name in order:
        host = SERVERS[name]
        before = _all_up(setup)
        assert before is not None, f"all three must be up before {name} restarts"
        incarnation = next(x["incarnation"] for x in before["servers"] if x["name"] == name)
        watch()
        restarting.append(name)
        stopped_at = time.monotonic()
        launcher = setup.procs.procs[name]
        launcher.terminate()  # systemd's KillMode=mixed: SIGTERM to the main process first
        assert launcher.wait(20.0) == 0, f"{name} did not stop cleanly on SIGTERM:\n{_journal(setup, name)}"
        setup.procs.stop(name)  # then SIGKILL to whatever is left of the unit
        watch()
        found = _checks(setup.cli(host, "check", "--config", str(setup.config(host)), "--name", name, "--json"))
        assert {v[0] for v in found.values()} == {"ok"}, found
        assert "is free" in found["admin port"][1], found["admin port"]
        assert {f"{kind} {o}" for kind in ("reach", "settings", "clock") for o in SERVERS if o != name} <= set(found), (
            found
        )
        _start(setup, name)

        def rejoined(name: str = name, incarnation: int = incarnation) -> dict[str, Any] | None:
            watch()
            s = _all_up(setup)
            now = next((x["incarnation"] for x in (s or {}).get("servers", ()) if x["name"] == name), None)
            return s if now is not None and now != incarnation else None

        after = _poll(rejoined, 30.0, f"{name} up again as a new incarnation")
        _poll(agreed, 20.0, f"both leases held after {name}'s restart, where the apps say")
        restarts.append(
            f"{name}{' (leader)' if name == leader else ''} {time.monotonic() - stopped_at:.1f} s, "
            f"leader now {after['leader']}"
        )
    phase("rolling restart")

    # 6. check on every server host, against the running servers.
    for name, host in SERVERS.items():
        found = _checks(setup.cli(host, "check", "--config", str(setup.config(host)), "--name", name, "--json"))
        others = [n for n in SERVERS if n != name]
        assert {v[0] for v in found.values()} == {"ok"}, found
        assert {f"{kind} {o}" for kind in ("reach", "settings", "clock") for o in others} <= set(found), found
        for port in ("admin port", "metrics port"):
            assert found[port][1].endswith(f"is in use by server {name}, which is running"), found[port]
    restarting.clear()
    _poll(agreed, 10.0, "both leases where the apps say")
    for app in apps.values():
        state = app.call("state")
        (auth,) = state["auths"]
        assert auth["deadline"] > state["now"] + TIMING["lease_ttl"] / 2, f"{app.client_id}'s lease is not renewed"
    status = _status(setup)
    assert status is not None
    feature = next(f for f in status["features"] if f["feature"] == "cad")
    assert sum(u["in_use"] for u in feature["servers"].values()) == 2, feature
    phase("final checks")

    moves = {app.client_id: app.state()[0]["failovers"] for app in apps.values()}
    calls = len(setup.calls)
    print(
        f"\nbring-up {time.monotonic() - began:.1f} s: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
        + f"; {calls} CLI calls, mean {sum(t for _, t in setup.calls) / calls:.2f} s"
        + f"\nrestarts (leader {leader} last): "
        + "; ".join(restarts)
        + "\nlease moves (fail-overs, not losses): "
        + ", ".join(f"{a.client_id} {moves[a.client_id]} ({' -> '.join(trace[p])})" for p, a in apps.items())
        + f"; {len(unforced)} off a server that was not restarting"
        + "".join(f"\n  {x}" for x in unforced)
    )


def test_a_server_rebuilt_on_an_empty_disk_rejoins_and_serves(bringup: Bringup) -> None:
    """docs/deployment.md section 6: a host dies, its disk is gone; the operator
    declares it down, rebuilds it with an empty data_dir, checks and starts it;
    it must come back as a new incarnation and serve again, and the lease that
    moved off it when it died must not be lost."""
    setup = bringup
    ops, text, leader = _bring_up(setup, lambda _: None)
    dead = next(n for n in reversed(SERVERS) if n != leader)
    host = SERVERS[dead]

    def newer(than: int) -> dict[str, Any] | None:
        s = _all_up(setup)
        now = next((x["incarnation"] for x in (s or {}).get("servers", ()) if x["name"] == dead), 0)
        return s if now > than else None

    # An ordinary restart first, as every server of a pool that ever restarted has had.
    setup.procs.stop(dead)
    _start(setup, dead)
    status = _poll(lambda: newer(1), 30.0, f"{dead} up again as a newer incarnation")
    incarnation = next(x["incarnation"] for x in status["servers"] if x["name"] == dead)

    _install(setup, "ws17", text, ops, client=True)
    holder = setup.app("ws17/cad", dead)
    # "Up as a newer incarnation" in the leader's status comes a heartbeat
    # before the server has applied its Rejoin; a checkout in between is
    # served elsewhere, and the session's next ones go back to it once it
    # serves (fail-back, docs/architecture.md).
    granted = _checkout_at(holder, dead, 30.0)

    def held() -> dict[str, Any]:
        # The app's state lists every auth it was given, those it gave back too.
        auths: list[dict[str, Any]] = [x for x in holder.state() if x["lease_id"] == granted["lease_id"]]
        (auth,) = auths
        assert not auth["lost"], auth
        return auth

    # S2 keeps a lease through its server's death once the pool's registry
    # knows it (a report interval after the grant); before that it can move
    # only onto a free seat, and this pool may have none (docs/reliability.md,
    # S2 exemption (a)).  So the host dies once the lease is committed.
    _poll(lambda: _sessions(setup).get(granted["lease_id"]) == dead, 10.0, f"{dead}'s lease in the registry")
    setup.procs.kill(dead)  # the host dies
    _poll(lambda: held()["server"] != dead, 20.0, f"the lease to leave the dead {dead}")
    declared = _ok(setup.cli("ops", "server", "down", dead, "--config", str(ops / "pool.toml")), "server down")
    assert declared.startswith(f"server {dead} declared down (committed at log index"), declared
    data = setup.root / host / "var" / "lib" / "licpool"
    shutil.rmtree(data)
    data.mkdir(parents=True, mode=0o700)
    found = _checks(setup.cli(host, "check", "--config", str(setup.config(host)), "--name", dead, "--json"))
    assert {v[0] for v in found.values()} == {"ok"}, found
    _start(setup, dead)

    def caught_up() -> bool:
        done = setup.cli(host, "snapshot", "show", "--name", dead, "--config", str(setup.config(host)), "--json")
        doc = json.loads(_ok(done, "snapshot show"))
        return any(f["feature"] == "cad" and f["total"] == 4 for f in doc["features"])

    _poll(caught_up, 20.0, f"{dead}'s new data_dir to hold the license (from the leader)")
    held()
    _poll(lambda: newer(incarnation), 20.0, f"{dead} up as an incarnation newer than {incarnation}")
    fresh = setup.app("ws17/cad-fresh", dead)
    _checkout_at(fresh, dead, 30.0)
    held()


def _checkout_at(app: Any, server: str, seconds: float) -> dict[str, Any]:
    """Check out until ``server`` grants (giving back any seat taken elsewhere)."""
    deadline = time.monotonic() + seconds
    while True:
        granted: dict[str, Any] = app.checkout(timeout=10.0)
        assert granted["ok"], granted
        if granted["server"] == server or time.monotonic() > deadline:
            break
        assert app.call("release", lease_id=granted["lease_id"])["ok"]
        time.sleep(0.5)
    assert granted["server"] == server, granted
    return granted
