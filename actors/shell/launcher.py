"""Running servers: one in this process (``licpool server``), or a whole pool
of server processes (``licpool up``, the demo, the integration tests).

A server *is* its process group: ``run_server`` starts its actor system with
the admin kept in the launcher's group (``start_system(own_group=True)``), so
``os.killpg`` of the launcher's group stops every process of that "host", and
``PoolProcesses`` starts each server with ``start_new_session=True``.  The
launcher runs until SIGINT or SIGTERM, then shuts its system down and kills
whatever outlives the deadline.  If the launcher itself is killed, its
LicenseServer notices within 0.5 s and takes the rest of the group down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from actors.core.timing import Timing
from actors.protocol.admin import ServerStarted, ServerStartFailed, StartServer
from actors.shell import logs
from actors.shell.config import PoolConfig, load_config
from actors.shell.system import SERVER_GLOBAL_NAME, live_members, port_is_free, start_system, stop_system

__all__ = ["LaunchError", "PoolProcesses", "run_server", "transmit_timeout"]

START_TIMEOUT = 30.0


class LaunchError(Exception):
    """A server could not start; ``str()`` is one line."""


def transmit_timeout(timing: Timing) -> float:
    """How long one Thespian transmit may wait for its ACK: a message older
    than ``failure_timeout`` is worthless to every licpool protocol."""
    return max(timing.failure_timeout, 0.25)


def run_server(
    config_path: Path,
    name: str,
    *,
    log_level: str = "INFO",
    console_level: str | None = None,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run server ``name`` of the config until SIGINT/SIGTERM (or ``stop``)."""
    cfg = load_config(config_path)
    spec = cfg.server(name)
    cfg.admin_secret()
    cfg.vendor_key()
    for warning in cfg.warnings:
        print(f"licpool: warning: {warning}", file=sys.stderr)
    try:
        ip = socket.gethostbyname(spec.host)
    except OSError as exc:
        raise LaunchError(f"server {name}: cannot resolve host {spec.host!r}: {exc}") from None
    if not port_is_free(ip, spec.port):
        raise LaunchError(f"{spec.address} is already in use: is server {name} running already?")
    if spec.metrics_port is not None and not port_is_free(ip, spec.metrics_port):
        raise LaunchError(f"metrics port {spec.host}:{spec.metrics_port} of server {name} is already in use")
    data = cfg.data_dir / name
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    logs.configure(json_audit_path=data / "audit.jsonl", level=log_level, log_path=data / "server.log", console=False)
    if console_level != "OFF":
        _console_at(console_level or log_level)
    stop = stop or threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = start_system(
        ip, spec.port, transmit_timeout=transmit_timeout(cfg.timing), own_group=True, log_level=log_level
    )
    endpoint = None
    try:
        from actors.shell.server_actor import LicenseServer

        address = started.asys.createActor(LicenseServer, globalName=SERVER_GLOBAL_NAME)
        reply = started.asys.ask(
            address, StartServer(config_path=str(cfg.path), name=name, launcher_pid=os.getpid()), START_TIMEOUT
        )
        if isinstance(reply, ServerStartFailed):
            raise LaunchError(reply.error)
        if not isinstance(reply, ServerStarted):
            raise LaunchError(f"server {name} did not start within {START_TIMEOUT:.0f} s")
        line = (
            f"licpool: server {name} of pool {cfg.name!r} serving on {spec.address} "
            f"(incarnation {reply.incarnation}, pid {os.getpid()}, data {data})"
        )
        if spec.metrics_port is not None:
            # Started after the actor system, so no forked actor inherits its socket.
            from actors.shell.metrics import MetricsEndpoint

            endpoint = MetricsEndpoint(
                lambda msg, timeout: started.asys.ask(address, msg, timeout),
                cfg.name,
                name,
                ip,
                spec.metrics_port,
                timeout=max(cfg.timing.failure_timeout, 2.0),
            )
            line += f"; metrics on {endpoint.url}"
        print(line, flush=True)
        if ready is not None:
            ready(line)
        while not stop.wait(0.5):
            pass
    finally:
        if endpoint is not None:
            endpoint.close()
        stop_system(started)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _console_at(level: str) -> None:
    """Show ``level`` and above on the console (audit records only in their file)."""
    from loguru import logger

    logger.add(
        sys.stderr,
        level=level,
        format="{time:HH:mm:ss.SSS} | {level: <7} | {message}",
        colorize=False,
        filter=lambda r: r["extra"].get("audit") is not True,
    )


class PoolProcesses:
    """The server processes of one pool, each in its own session and process group."""

    def __init__(
        self,
        config_path: Path,
        *,
        quiet: bool = True,
        log_level: str = "INFO",
        env: dict[str, str] | None = None,
        output: Path | None = None,
    ) -> None:
        self.config_path = Path(config_path).absolute()
        self.cfg: PoolConfig = load_config(self.config_path)
        self.quiet = quiet
        self.log_level = log_level
        root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        self.env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root, **(env or {})}
        self.output = output
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.groups: set[int] = set()

    def command(self, name: str) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "actors",
            "server",
            "--config",
            str(self.config_path),
            "--name",
            name,
            "--log-level",
            self.log_level,
        ]
        if self.quiet:
            cmd += ["--console-level", "OFF"]
        return cmd

    def start(self, name: str) -> subprocess.Popen[bytes]:
        self.cfg.server(name)
        if name in self.procs and self.procs[name].poll() is None:
            raise LaunchError(f"server {name} is already running (pid {self.procs[name].pid})")
        # Quiet servers still keep their launcher's own output (a start-up error,
        # say) in a file: <output>/<name>.out, or data_dir/<name>/launcher.out.
        out: int | None = None
        if self.quiet or self.output is not None:
            where = self.output if self.output is not None else self.cfg.data_dir / name
            where.mkdir(parents=True, exist_ok=True)
            out = os.open(
                where / (f"{name}.out" if self.output is not None else "launcher.out"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                0o600,
            )
        try:
            proc = subprocess.Popen(
                self.command(name),
                start_new_session=True,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        finally:
            if out is not None:
                os.close(out)
        self.procs[name] = proc
        self.groups.add(proc.pid)
        return proc

    def start_all(self, names: Sequence[str] | None = None) -> None:
        for name in names or self.cfg.server_names:
            self.start(name)

    def pgid(self, name: str) -> int:
        return self.procs[name].pid

    def signal(self, name: str, sig: int) -> None:
        """Send ``sig`` to every process of server ``name`` (its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid(name), sig)

    def kill(self, name: str) -> None:
        """SIGKILL the whole server (a host crash); reaps the launcher."""
        self.signal(name, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.procs[name].wait(5)

    def stop(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM the launcher (a clean shutdown), then SIGKILL what is left."""
        proc = self.procs.get(name)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        self.signal(name, signal.SIGCONT)
        self.signal(name, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def stop_all(self, grace: float = 10.0) -> None:
        names = list(self.procs)
        for name in names:
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.signal(name, signal.SIGCONT)
                    proc.terminate()
        for name in names:
            self.stop(name, grace)

    def leftovers(self) -> list[int]:
        """Pids still alive in any process group this object started."""
        return sorted(live_members("group", set(self.groups)))

    def wait_gone(self, timeout: float = 10.0) -> list[int]:
        """Wait for every process of the pool to exit; SIGKILL and report stragglers."""
        deadline = time.monotonic() + timeout
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        return left
