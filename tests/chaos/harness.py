"""A chaos run: a real pool across network namespaces, client apps, a fault schedule.

Hosts (network namespaces on a private bridge, tests/netns.py), on
``10.78.0.0/24`` (the multihost test uses ``10.77.0.0/24``):

=========  ==============  ===================================================
s1 s2 s3   10.78.0.1-3     one ``python -m actors server`` each (its own
                           process group, so a SIGKILL of the group is a crash)
c1 c2      10.78.0.11-12   ``apps_per_host`` apps each (tests/chaos/app.py)
mon        10.78.0.20      the monitor (tests/chaos/monitor.py), never cut
=========  ==============  ===================================================

Everything a run writes goes to its directory: ``pool/`` (config, keys, data),
``apps/<app>.jsonl`` (each app's events, all its incarnations),
``faults.jsonl`` (what the harness did, when), ``monitor.jsonl`` (the
pool's status every 0.5 s), ``meta.json`` (the settings and the phases), and
each process's stderr under ``out/``.  ``tests/chaos/check.py`` reads them.

The phases: the pool forms, a license of ``seats`` seats is added, the apps
start; after ``warmup`` s the faults run for ``fault_seconds``; then the quiet
phase: every app is frozen (SIGUSR1: it keeps what it holds, asks nothing;
apps ``a2`` and ``a4`` of each host first give back what they hold),
the harness waits for the pool's ``in_use`` to match what the apps hold (up to
``lease_ttl + 15`` s, so the checker can measure against ``lease_ttl + 5``),
a fresh client takes every free seat and gives them back, and the apps stop
(SIGTERM: they release and close).  ``close`` stops everything and deletes
every namespace, and says what it had to kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.schedule import Fault, make_schedule
from tests.netns import Network

__all__ = ["CHAOS_TIMING", "FRESH", "ChaosRun", "ChaosSettings", "read_jsonl"]

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "10.78.0"
SERVERS = {"s1": f"{SUBNET}.1", "s2": f"{SUBNET}.2", "s3": f"{SUBNET}.3"}
CLIENT_HOSTS = {"c1": f"{SUBNET}.11", "c2": f"{SUBNET}.12"}
MONITOR_HOST = ("mon", f"{SUBNET}.20")
PORT = 1950
FRESH = "c2-fresh"
"""The fresh client of the quiet phase (in host c2)."""
FEATURE, VERSION = "cad", "2.0"

CHAOS_TIMING = {
    "heartbeat_interval": 0.2,
    "failure_timeout": 0.8,
    "leader_lease": 1.0,
    "fence_timeout": 1.0,
    "lease_ttl": 10.0,
    "clock_drift": 0.01,
}
"""Shorter than the defaults (T = 10 s), slower than the integration tests'
(h = 0.2 s: two shared cores carry 3 servers and 9 client systems here).
``load_config`` checks them against the timing inequalities."""


@dataclass
class ChaosSettings:
    seed: int = 1
    fault_seconds: float = 75.0
    warmup: float = 8.0
    seats: int = 6
    apps_per_host: int = 4
    want: int = 2
    """The most seats one app wants at a time."""
    timing: dict[str, float] = field(default_factory=lambda: dict(CHAOS_TIMING))


def _load_config(path: Path) -> Any:
    from actors.shell.config import load_config

    return load_config(path)


def write_pool(directory: Path, timing: dict[str, float]) -> Path:
    """A pool config for the namespaced servers, with fresh vendor and admin keys."""
    import secrets

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from actors.core.codes import private_key_to_pem, public_key_to_pem

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(mode=0o700, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    for name, data, mode in (
        ("vendor.key", private_key_to_pem(key), 0o600),
        ("vendor.pub", public_key_to_pem(key.public_key()), 0o644),
        ("admin.key", (secrets.token_urlsafe(32) + "\n").encode(), 0o600),
    ):
        path = directory / name
        path.write_bytes(data)
        path.chmod(mode)
    lines = ["[pool]", 'name = "chaos"']
    lines += [f"{k} = {v}" for k, v in timing.items()]
    lines += [
        "borrow_threshold = 0.9",
        "rebalance_idle = 60.0",
        'data_dir = "data"',
        'vendor_public_key = "vendor.pub"',
        'admin_key_file = "admin.key"',
        "",
    ]
    for name, address in SERVERS.items():
        lines += ["[[server]]", f'name = "{name}"', f'host = "{address}"', f"port = {PORT}", ""]
    config = directory / "pool.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    _load_config(config)  # refuses timings that break an inequality
    return config


class _Proc:
    """A process started inside a namespace, in a session of its own."""

    def __init__(self, cmd: list[str], out: Path, env: dict[str, str], stdin: bool = False) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab") as err:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=err,
                stderr=err,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            )

    def send(self, doc: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(doc) + "\n").encode())
        self.proc.stdin.flush()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    def alive(self) -> bool:
        return self.proc.poll() is None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` (a line cut short by a SIGKILL is skipped)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            found.append(json.loads(line))
    return found


class ChaosRun:
    def __init__(self, directory: Path, settings: ChaosSettings, say: Any = None) -> None:
        self.dir = Path(directory)
        self.settings = settings
        self.say = say or (lambda text: None)
        self.network = Network("lpx")
        self.apps: dict[str, _Proc] = {}
        self.incarnation: dict[str, int] = {}
        self.monitor: _Proc | None = None
        self.procs: Any = None
        self.problems: list[str] | None = None
        """What ``close`` had to kill or could not delete (None until it ran)."""
        self.meta: dict[str, Any] = {
            "settings": asdict(settings),
            "seats": settings.seats,
            "servers": list(SERVERS),
            "client_hosts": list(CLIENT_HOSTS),
        }
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "THESPLOG_FILE": str(self.dir / "out" / "thespian.log")}
        self.app_names = tuple(f"{host}-a{i}" for host in CLIENT_HOSTS for i in range(1, settings.apps_per_host + 1))
        self.schedule = make_schedule(
            settings.seed, settings.fault_seconds, tuple(SERVERS), tuple(CLIENT_HOSTS), self.app_names
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self._faults = open(self.dir / "faults.jsonl", "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    # ---- records ---------------------------------------------------------------------

    def record(self, event: str, **fields: Any) -> None:
        self._faults.write(json.dumps({"ts": time.time(), "event": event, **fields}) + "\n")
        self._faults.flush()

    def statuses(self) -> list[dict[str, Any]]:
        return [x for x in read_jsonl(self.dir / "monitor.jsonl") if x.get("event") == "status"]

    def latest_status(self, fresh: float = 3.0) -> dict[str, Any] | None:
        for status in reversed(self.statuses()):
            if time.time() - status["ts"] > fresh:
                return None
            if status.get("ok"):
                found: dict[str, Any] = status
                return found
        return None

    def _wait(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    # ---- set-up ----------------------------------------------------------------------

    def setup(self) -> None:
        from actors.core.codes import load_private_key, sign_license
        from actors.shell.launcher import PoolProcesses

        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "apps").mkdir(exist_ok=True)
        self.network.build({**SERVERS, **CLIENT_HOSTS, MONITOR_HOST[0]: MONITOR_HOST[1]})
        self.config = write_pool(self.dir / "pool", self.settings.timing)
        network = self.network

        class Namespaced(PoolProcesses):
            def command(self, name: str) -> list[str]:
                return [*network.exec_prefix(name), *super().command(name)]

        self.procs = Namespaced(self.config, quiet=True, output=self.dir / "out", env=self.env)
        self.procs.start_all()
        self.record("servers_started")
        self.monitor = _Proc(
            [
                *self.network.exec_prefix(MONITOR_HOST[0]),
                sys.executable,
                "-m",
                "tests.chaos.monitor",
                "--config",
                str(self.config),
                "--log",
                str(self.dir / "monitor.jsonl"),
            ],
            self.dir / "out" / "monitor.err",
            self.env,
            stdin=True,
        )

        def formed() -> bool:
            s = self.latest_status()
            ups = {x["name"] for x in s["servers"] if x["up"] and x["status"] == "live"} if s else set()
            return bool(s and s["leader"] and s["serving"] and ups == set(SERVERS))

        self._wait(formed, 60.0, "the pool to form across the namespaces")
        vendor = load_private_key((self.dir / "pool" / "vendor.key").read_bytes())
        code = sign_license(
            vendor,
            feature=FEATURE,
            version=VERSION,
            count=self.settings.seats,
            expires="2099-12-31",
            serial="CHAOS1",
            majority=True,
        )
        self.monitor.send({"op": "add_license", "code": code})
        admin = self._wait(
            lambda: next((x for x in read_jsonl(self.dir / "monitor.jsonl") if x.get("event") == "admin"), None),
            30.0,
            "the license to be added",
        )
        if not admin["ok"]:
            raise RuntimeError(f"adding the license failed: {admin}")
        self._wait(
            lambda: any(
                f["feature"] == FEATURE and f["total"] == self.settings.seats
                for f in (self.latest_status() or {}).get("features", ())
            ),
            20.0,
            "the license to show in the status",
        )
        for name in self.app_names:
            self.start_app(name)
        self._wait(lambda: all(self._started(n) for n in self.app_names), 90.0, "every app to start")
        self.record("apps_started")
        self.meta["apps"] = list(self.app_names)

    def app_log(self, name: str) -> Path:
        return self.dir / "apps" / f"{name}.jsonl"

    def _started(self, name: str) -> bool:
        inc = self.incarnation[name]
        return any(x["event"] == "start" and x["inc"] == inc for x in read_jsonl(self.app_log(name)))

    def start_app(self, name: str, resume: list[str] | None = None, fill: bool = False) -> None:
        inc = self.incarnation.get(name, 0) + 1
        self.incarnation[name] = inc
        host = name.split("-")[0]
        cmd = [
            *self.network.exec_prefix(host),
            sys.executable,
            "-m",
            "tests.chaos.app",
            "--config",
            str(self.config),
            "--app",
            name,
            "--inc",
            str(inc),
            "--seed",
            str(self.settings.seed),
            "--log",
            str(self.app_log(name)),
            "--resume",
            ",".join(resume or []),
            "--want",
            str(self.settings.want),
        ]
        if fill:
            cmd.append("--fill")
        if name.endswith(("a2", "a4")):
            cmd.append("--release-on-freeze")  # so the fresh client finds free seats
        self.apps[name] = _Proc(cmd, self.dir / "out" / f"{name}.err", self.env)

    def held_by(self, name: str, inc: int | None = None) -> list[str]:
        """The leases app ``name`` (incarnation ``inc``, default the last) holds by its log."""
        held: dict[str, None] = {}
        for x in read_jsonl(self.app_log(name)):
            if inc is not None and x["inc"] != inc:
                continue
            if x["event"] == "start":
                held.clear()
            elif x["event"] == "granted":
                held[x["lease"]] = None
            elif x["event"] in ("releasing", "lost"):
                held.pop(x["lease"], None)
        return list(held)

    # ---- faults ----------------------------------------------------------------------

    def run_faults(self) -> None:
        time.sleep(self.settings.warmup)
        began = time.monotonic()
        self.record("faults_begin")
        for fault in self.schedule:
            wait = began + fault.at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.inject(fault)
        self.record("faults_end")

    def inject(self, fault: Fault) -> None:
        kind, target = fault.kind, fault.target
        record = self.record

        def log_fault(event: str, **fields: Any) -> None:
            record(event, **fields, leader=leader)

        if kind == "leader_kill":
            status = self.latest_status()
            if status is None or status["leader"] is None:
                self.record("fault_skipped", kind=kind, why="no leader known")
                self.say(f"{kind}: skipped, no leader known")
                return
            target = status["leader"]
        status = self.latest_status()
        leader = status["leader"] if status else None
        self.say(f"{kind} {target} for {fault.hold:.1f} s (leader {leader})")
        if kind in ("server_kill", "leader_kill"):
            log_fault("fault", kind=kind, target=target, servers=[target], phase="start")
            self.procs.kill(target)
            time.sleep(fault.hold)
            self.procs.start(target)
        elif kind == "pool_restart":
            log_fault("fault", kind=kind, target=target, servers=list(SERVERS), phase="start")
            for name in SERVERS:
                self.procs.signal(name, signal.SIGKILL)
            for name in SERVERS:
                self.procs.kill(name)
            time.sleep(fault.hold)
            self.procs.start_all()
        elif kind == "link_cut":
            servers = [target] if target in SERVERS else []
            log_fault("fault", kind=kind, target=target, servers=servers, phase="start")
            self.network.cut(target)
            time.sleep(fault.hold)
            self.network.mend(target)
        elif kind == "stall":
            log_fault("fault", kind=kind, target=target, servers=[target], phase="start")
            self.procs.signal(target, signal.SIGSTOP)
            time.sleep(fault.hold)
            self.procs.signal(target, signal.SIGCONT)
        elif kind == "app_kill":
            app = self.apps[target]
            log_fault("fault", kind=kind, target=target, inc=self.incarnation[target], servers=[], phase="start")
            app.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                app.proc.wait(5)
            time.sleep(fault.hold)
            held = self.held_by(target)
            self.start_app(target, resume=held)
            self.record("app_restarted", app=target, inc=self.incarnation[target], resume=held)
        self.record("fault", kind=kind, target=target, phase="end")

    # ---- the quiet phase -------------------------------------------------------------

    def quiet(self) -> None:
        """Freeze the apps, wait for ``in_use`` to match them, let a fresh client fill the pool."""
        t = self.settings.timing
        self.record("quiet")
        with contextlib.suppress(TimeoutError):  # an app restarted last must be up to freeze
            self._wait(lambda: all(self._started(n) for n in self.app_names), 30.0, "every app to start")
        for name in self.app_names:
            self.apps[name].signal(signal.SIGUSR1)
        frozen = {}

        def all_frozen() -> bool:
            for name in self.app_names:
                inc = self.incarnation[name]
                for x in read_jsonl(self.app_log(name)):
                    if x["event"] == "frozen" and x["inc"] == inc:
                        frozen[name] = x
            return len(frozen) == len(self.app_names)

        try:
            self._wait(all_frozen, 30.0, "every app to freeze")
        except TimeoutError as exc:
            self.record("quiet_problem", what=str(exc), missing=sorted(set(self.app_names) - set(frozen)))
        self.record("frozen")

        def matched() -> bool:
            held = sum(len(self.held_by(n)) for n in self.app_names)
            status = self.latest_status(fresh=1.5)
            if status is None:
                return False
            f = next((f for f in status["features"] if f["feature"] == FEATURE), None)
            return f is not None and sum(u["in_use"] for u in f["servers"].values()) == held

        try:
            self._wait(matched, t["lease_ttl"] + 15.0, "in_use to match what the apps hold")
            time.sleep(2.0)  # a few more samples for the checker
        except TimeoutError as exc:
            self.record("quiet_problem", what=str(exc))
        self.record("fill_begin", held={n: self.held_by(n) for n in self.app_names})
        self.start_app(FRESH, fill=True)
        try:
            self.apps[FRESH].proc.wait(90)
        except subprocess.TimeoutExpired:
            self.record("quiet_problem", what="the fresh client did not finish within 90 s")
        self.record("fill_end")

    def stop_apps(self) -> None:
        self.record("apps_stopping")
        for proc in self.apps.values():
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 20.0
        for proc in self.apps.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.proc.wait(max(0.1, deadline - time.monotonic()))
        self.record("apps_stopped")
        # A few status samples after every release, for the checker (drain figure).
        with contextlib.suppress(TimeoutError):
            self._wait(
                lambda: (
                    (s := self.latest_status(fresh=1.5)) is not None
                    and all(sum(u["in_use"] for u in f["servers"].values()) == 0 for f in s["features"])
                ),
                self.settings.timing["lease_ttl"] + 5.0,
                "in_use to drain to 0",
            )
        self.record("drained")
        time.sleep(1.5)  # a few more samples for the checker

    def close(self) -> list[str]:
        """Stop every process, delete every namespace; what had to be killed.
        A second call does nothing and returns the first call's answer."""
        if self.problems is not None:
            return self.problems
        problems: list[str] = []
        for name, proc in self.apps.items():
            if proc.alive():
                problems.append(f"app {name} still ran at teardown (killed)")
                proc.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.proc.wait(5)
        if self.monitor is not None and self.monitor.alive():
            with contextlib.suppress(OSError):
                self.monitor.send({"op": "quit"})
            try:
                self.monitor.proc.wait(15)
            except subprocess.TimeoutExpired:
                problems.append("the monitor did not quit (killed)")
                self.monitor.signal(signal.SIGKILL)
        if self.procs is not None:
            self.procs.stop_all(grace=5.0)
            left = self.procs.wait_gone(5.0)
            if left:
                problems.append(f"server processes left behind (killed): {left}")
        # Apps' actor systems stop themselves within 0.25 s of their app.
        deadline = time.monotonic() + 5.0
        while self.network.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        problems += self.network.destroy()
        self.record("closed", problems=problems)
        self._faults.close()
        self.meta["schedule"] = [asdict(f) for f in self.schedule]
        (self.dir / "meta.json").write_text(json.dumps(self.meta, indent=1))
        self.problems = problems
        return problems
