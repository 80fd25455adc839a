"""Thespian's logging reaches loguru sinks, and audit lines cannot be forged.

An actor on a real multiprocTCPBase system logs through stdlib ``logging``
(inside an actor that is Thespian's forwarder to the system's logger
process); the logger process applies ``thespian_log_defs()`` and its
``LoguruHandler`` writes to the loguru file sink that ``configure()`` set up
in the test process before the system forked.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from thespian.actors import Actor
from thespian.system.multiprocCommon import get_min_log_level

from actors.shell import logs

pytestmark = pytest.mark.integration


class Chatty(Actor):
    """Logs in every way an actor might when asked ``("log", token)``."""

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if not (isinstance(message, tuple) and message[0] == "log"):
            return
        token = message[1]
        log = logging.getLogger("licpool.test.chatty")
        log.warning("plain %s {braces stay}", token)
        log.debug("below threshold %s", token)
        try:
            raise ValueError(f"kaboom {token}")
        except ValueError:
            log.exception("with traceback %s", token)
        # A stdlib record dressed up as an audit record must stay out of the audit sink.
        log.warning("forged %s", token, extra={"audit": True, "audit_event": "grant"})
        logs.audit("grant", lease_id=token, feature="cad")
        self.send(sender, ("logged", os.getpid()))


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    log_path, audit_path = tmp_path / "licpool.log", tmp_path / "audit.jsonl"
    logs.configure(json_audit_path=audit_path, level="INFO", log_path=log_path, console=False, capture_stdlib=False)
    try:
        yield log_path, audit_path
    finally:
        logger.remove()
        logger.add(sys.stderr)


def test_actor_log_lines_reach_the_loguru_file_sink(
    actor_systems: Any, sinks: tuple[Path, Path], wait_until: Any
) -> None:
    log_path, audit_path = sinks
    system = actor_systems.start(log_level="INFO")
    chatty = system.asys.createActor(Chatty)
    token = "tok-7f3a"
    reply = system.asys.ask(chatty, ("log", token), 10)
    assert reply is not None and reply[0] == "logged"
    actor_pid = reply[1]

    def lines() -> list[str]:
        return log_path.read_text().splitlines() if log_path.exists() else []

    wait_until(lambda: any(f"forged {token}" in line for line in lines()), 10, "the actor's last stdlib log line")
    text = "\n".join(lines())
    plain = next(line for line in lines() if f"plain {token}" in line)
    assert "WARNING" in plain
    assert "{braces stay}" in plain
    assert f"| {actor_pid} |" in plain, "the line should carry the actor's pid, not the logger's"
    assert "licpool.test.chatty:receiveMessage:" in plain
    assert f"with traceback {token}" in text
    assert f"ValueError: kaboom {token}" in text, "Thespian's pre-formatted traceback is kept"
    assert f"below threshold {token}" not in text

    wait_until(lambda: audit_path.exists() and audit_path.read_text().strip() != "", 10, "the audit line")
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert records == [
        {
            "event": "grant",
            "lease_id": token,
            "feature": "cad",
            "pid": actor_pid,
            "time": records[0]["time"],
        }
    ]
    assert "forged" not in audit_path.read_text()


def test_log_defs_are_a_valid_dictconfig_with_the_requested_threshold() -> None:
    defs = logs.thespian_log_defs("debug")
    assert get_min_log_level(defs) == logging.DEBUG
    assert get_min_log_level(logs.thespian_log_defs()) == logging.INFO
    handler_class = defs["handlers"]["loguru"]["class"]
    module, _, name = handler_class.rpartition(".")
    assert getattr(sys.modules[module], name) is logs.LoguruHandler


def test_handler_passes_records_to_loguru(tmp_path: Path) -> None:
    log_path = tmp_path / "local.log"
    logs.configure(level="DEBUG", log_path=log_path, console=False, capture_stdlib=False)
    test_logger = logging.getLogger("licpool.test.local")
    handler = logs.LoguruHandler()
    test_logger.addHandler(handler)
    test_logger.propagate = False
    test_logger.setLevel(logging.DEBUG)
    try:
        test_logger.info("hello %s", "world")
        test_logger.log(15, "custom level %d", 15)
        test_logger.error("bad format %d", "not a number")
    finally:
        test_logger.removeHandler(handler)
        logger.remove()
        logger.add(sys.stderr)
    text = log_path.read_text()
    assert "INFO     | " in text and "hello world" in text
    assert "Level 15" in text and "custom level 15" in text
    assert "bad format" in text
