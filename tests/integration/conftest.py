"""Fixtures for tests that start real Thespian actor systems on 127.0.0.1.

- :func:`actor_systems` starts systems and, at teardown, shuts each down and
  fails the test if any process of its session outlives a short deadline
  (after killing it).
- :func:`licpool_pool` and :func:`client_apps` start server processes and
  client app processes, and fail the test if any outlives its teardown.
- :func:`no_leftover_processes` (autouse) also fails a test that leaves any
  new forked copy of the test process behind, whatever started it.

The classes behind them are in ``harness.py``; the /proc helpers in ``procs.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import FAST_TIMING, ActorSystems, ClientApp, PoolHarness
from tests.integration.procs import EXIT_DEADLINE_S, all_procs, kill_all, wait_until


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves a new forked copy of the test process running."""
    me = os.getpid()
    my_cmdline = Path(f"/proc/{me}/cmdline").read_bytes()

    def forked_copies() -> set[int]:
        return {p.pid for p in all_procs() if p.cmdline == my_cmdline and p.pid != me}

    before = forked_copies()
    yield
    deadline = time.monotonic() + EXIT_DEADLINE_S
    while (left := forked_copies() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        kill_all(left)
        pytest.fail(f"processes left behind (killed now): {sorted(left)}")


@pytest.fixture(scope="session", autouse=True)
def _thespian_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep Thespian's internal log out of /tmp/thespian.log."""
    os.environ.setdefault("THESPLOG_FILE", str(tmp_path_factory.mktemp("thesplog") / "thespian.log"))


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[[Callable[[], bool], float, str], None]:
    """``wait_until(predicate, timeout_s, what)``: a bounded poll that fails with ``what``."""
    return wait_until


@pytest.fixture
def actor_systems() -> Iterator[ActorSystems]:
    """Start systems with ``actor_systems.start()``; all are shut down and checked."""
    systems = ActorSystems()
    try:
        yield systems
    finally:
        problems = systems.shutdown_all()
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def licpool_pool(tmp_path: Path) -> Iterator[Callable[..., PoolHarness]]:
    """``licpool_pool(servers=3)`` starts a pool with FAST_TIMING; all of it is
    stopped and checked for leftovers at teardown."""
    import thespian.system.transport as transport
    import thespian.system.transport.asyncTransportBase as async_base

    # Clients and links tune this process's transport (actors.shell.system); keep
    # that from leaking into the other integration tests of the session.
    saved = (transport.DEFAULT_MAX_TRANSMIT_PERIOD, async_base.MAX_PENDING_TRANSMITS)
    made: list[PoolHarness] = []

    def make(
        servers: int = 3,
        start: bool = True,
        timing: dict[str, float] | None = None,
        rebalance_idle: float = 60.0,
        **placement: Any,
    ) -> PoolHarness:
        harness = PoolHarness(
            tmp_path / f"pool{len(made)}", servers, {**FAST_TIMING, **(timing or {})}, rebalance_idle, **placement
        )
        made.append(harness)
        if start:
            harness.start()
        return harness

    try:
        yield make
    finally:
        problems = [x for h in made for x in h.close()]
        transport.DEFAULT_MAX_TRANSMIT_PERIOD, async_base.MAX_PENDING_TRANSMITS = saved
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def client_apps(tmp_path: Path) -> Iterator[Callable[..., ClientApp]]:
    """``client_apps(config, client_id, prefer=None, prefix=())`` starts a client
    app process; every one is closed and checked for leftovers at teardown."""
    started: list[ClientApp] = []

    def make(config: Path, client_id: str, prefer: str | None = None, prefix: tuple[str, ...] = ()) -> ClientApp:
        app = ClientApp(config, client_id, prefer, tmp_path / "apps" / f"{client_id}-{len(started)}.err", prefix)
        started.append(app)
        return app.wait_ready()

    try:
        yield make
    finally:
        problems = [x for app in reversed(started) for x in app.close()]
    if problems:
        pytest.fail("; ".join(problems))
