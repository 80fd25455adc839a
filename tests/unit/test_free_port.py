"""``free_port`` picks ports the kernel never hands out on its own, so a port
chosen for a server cannot be taken by another process's ``bind(0)`` before
the server binds it."""

from __future__ import annotations

import socket

import pytest

from actors.shell.system import _ephemeral_range, free_port, port_is_free


def test_free_ports_are_outside_the_ephemeral_range_and_free() -> None:
    low, high = _ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert all(not low <= port <= high and port >= 1024 for port in ports), (low, high, sorted(ports))
    assert all(port_is_free("127.0.0.1", port) for port in ports)
    assert len(ports) > 40  # random, not one port handed out twice


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import actors.shell.system as system

    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        held.listen()
        taken: int = held.getsockname()[1]
        other = free_port()
        picks = iter([taken, other])

        class Scripted:
            def randrange(self, start: int, stop: int) -> int:
                return next(picks)

        monkeypatch.setattr(system, "random", type("ScriptedRandom", (), {"SystemRandom": Scripted}))
        assert free_port() == other
