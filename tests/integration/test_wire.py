"""The allowlisting unpickler guards every Thespian port of a real system.

Raw frames (``b'<len>>' + pickle``, ``thespian/system/transport/streamBuffer.py``)
are written straight to the admin port, the logger's port, an actor's port and
the test's own client endpoint. Hostile frames whose decoding would create a marker file
must be refused (Thespian answers ``ACK+DATAERR``) and leave no marker, the
refusal must be logged with the peer address, and the system must keep
answering. Positive controls use the same framing and the same ports: a frame
naming a class that the test allowlists is decoded (its constructor writes a
file carrying the decoding process's pid), and a frame carrying a Thespian
envelope with an allowlisted message is delivered to the actor.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from thespian.actors import (
    Actor,
    ActorAddress,
    ActorExitRequest,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    WakeupMessage,
)
from thespian.system.messages.status import Thespian_ActorStatus, Thespian_StatusReq, Thespian_SystemStatus
from thespian.system.transport import ForwardMessage
from thespian.system.transport.IPBase import TCPv4ActorAddress

from actors.shell import logs, wire

pytestmark = pytest.mark.integration

ACK = "ACK"
ACK_DATAERR = "ACK+DATAERR"
NO_MARKER_WAIT_S = 1.0
LOOPBACK = "127.0.0.1"


# --- test-only classes ---------------------------------------------------------


class MarkerWriter:
    """Decoding this class has a visible side effect: it writes ``path``.

    Allowlisted only in these tests, it plays the role of a payload that the
    allowlist lets through, to show that frames really are decoded.
    """

    def __init__(self, path: str) -> None:
        Path(path).write_text(str(os.getpid()))


class _BuildsMarkerWriter:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (MarkerWriter, (self.path,))


@dataclass(frozen=True)
class Ping:
    """A stand-in for a licpool protocol message, allowlisted by the test."""

    token: str


class Recorder(Actor):
    """Remembers the tokens of the ``Ping`` messages it receives."""

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if isinstance(message, Ping):
            self.tokens = [*getattr(self, "tokens", []), message.token]
        elif message == "tokens?":
            self.send(sender, list(getattr(self, "tokens", [])))
        elif message == "pid?":
            self.send(sender, os.getpid())


class Echo(Actor):
    def receiveMessage(self, message: Any, sender: Any) -> None:
        if not isinstance(message, ActorExitRequest):
            self.send(sender, message)


class Boom(Actor):
    """Fails on every message, so Thespian returns a PoisonMessage."""

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if not isinstance(message, ActorExitRequest):
            raise RuntimeError(f"boom on {message!r}")


class Parent(Actor):
    """Drives children through creation, logging, a wakeup, poison and exit."""

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if message == "go":
            self.requester = sender
            self.echo = self.createActor(Echo)
            self.boom = self.createActor(Boom)
            logging.getLogger("licpool.test.parent").info("children %s %s", self.echo, self.boom)
            try:
                raise ValueError("logged with a traceback")
            except ValueError:
                logging.getLogger("licpool.test.parent").exception("as expected")
            self.send(self.echo, {"k": [1, 2.5, (3,), {4}, frozenset([5]), b"x", None, True, timedelta(1)]})
            self.wakeupAfter(timedelta(milliseconds=10), payload="wake")
        elif isinstance(message, WakeupMessage):
            self.send(self.boom, "boom")
        elif isinstance(message, PoisonMessage):
            self.send(self.echo, ActorExitRequest())
        elif (
            isinstance(message, ChildActorExited)
            and message.childAddress == self.echo
            and not getattr(self, "reported", False)  # Thespian may report one exit twice
        ):
            self.reported = True
            self.send(self.requester, "done")


class DeadLetters(Actor):
    def receiveMessage(self, message: Any, sender: Any) -> None:
        if message == "register":
            self.handleDeadLetters()
            self.send(sender, "registered")
        elif isinstance(message, DeadEnvelope):
            self.count = getattr(self, "count", 0) + 1
        elif message == "count?":
            self.send(sender, getattr(self, "count", 0))


class Placed(Actor):
    """Lands only on a system whose ``role`` capability is ``member``."""

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: dict[str, Any]) -> bool:
        return bool(capabilities.get("role") == requirements.get("role") == "member")

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if not isinstance(message, ActorExitRequest):
            self.send(sender, ("placed", os.getpid(), message))


EXTRA_ALLOWED = ((MarkerWriter.__module__, "MarkerWriter"), (Ping.__module__, "Ping"))


# --- raw frames ----------------------------------------------------------------


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def global_call(module: str, name: str, *args: str) -> bytes:
    """A pickle that calls ``module.name(*args)`` when loaded (protocol 4 header)."""
    return (
        b"\x80\x04c"
        + module.encode()
        + b"\n"
        + name.encode()
        + b"\n("
        + b"".join(_unicode(arg) for arg in args)
        + b"tR."
    )


def hostile_payloads(marker_dir: Path) -> dict[str, bytes]:
    """Frames whose decoding, by plain pickle, creates a file in ``marker_dir``."""
    return {
        "open": global_call("io", "open", str(marker_dir / "open"), "w"),
        "exec": global_call("builtins", "exec", f"open({str(marker_dir / 'exec')!r}, 'w').close()"),
        "eval": global_call("builtins", "eval", f"open({str(marker_dir / 'eval')!r}, 'w')"),
        "posix.system": global_call("posix", "system", f"touch {marker_dir / 'posix.system'}"),
        # Protocol 4 resolves dotted names with getattr: wire.os is the os module.
        "dotted": global_call("actors.shell.wire", "os.system", f"touch {marker_dir / 'dotted'}"),
    }


def frame(payload: bytes) -> bytes:
    return b"%d>" % len(payload) + payload


class RawPeer:
    """A bare TCP client that writes one frame and reads Thespian's answer."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=5)
        host, port = self.sock.getsockname()[:2]
        self.local = f"{host}:{port}"

    def send(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def answer(self) -> str:
        """The ack Thespian sends back: ``ACK`` or ``ACK+DATAERR``."""
        buf = b""
        while b">" not in buf:
            buf += self._recv()
        size, _, rest = buf.partition(b">")
        while len(rest) < int(size):
            rest += self._recv()
        answer: str = pickle.loads(rest[: int(size)])  # from the system under test: trusted
        return answer

    def _recv(self) -> bytes:
        chunk = self.sock.recv(4096)
        if not chunk:
            raise ConnectionError("peer closed without answering")
        return chunk

    def close(self) -> None:
        self.sock.close()


def sender_address(port: int) -> Any:
    return ActorAddress(TCPv4ActorAddress(LOOPBACK, port, external=True))


def port_of(address: Any) -> int:
    port: int = address.addressDetails.sockname[1]
    return port


# --- fixtures ------------------------------------------------------------------


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """loguru writes to this file in the test process and every forked process."""
    path = tmp_path / "licpool.log"
    logs.configure(level="DEBUG", log_path=path, console=False, capture_stdlib=False)
    try:
        yield path
    finally:
        logger.remove()
        logger.add(sys.stderr)


@pytest.fixture
def system(actor_systems: Any, log_file: Path) -> Any:
    return actor_systems.start(extra_allowed=EXTRA_ALLOWED)


@pytest.fixture
def recorder(system: Any) -> Any:
    return system.asys.createActor(Recorder)


def _targets(system: Any, recorder: Any) -> dict[str, int]:
    return {"admin": system.admin_port, "logger": system.logger_port, "actor": port_of(recorder)}


def _decoders(system: Any, recorder: Any) -> dict[str, int]:
    """The pid of the process behind each of :func:`_targets`."""
    return {"admin": system.admin_pid, "logger": system.logger_pid, "actor": system.asys.ask(recorder, "pid?", 5)}


# --- tests ---------------------------------------------------------------------


def test_payloads_are_hostile_without_the_allowlist(tmp_path: Path, wait_until: Any) -> None:
    """Control: plain ``pickle.loads`` runs every payload used below."""
    for payload in hostile_payloads(tmp_path).values():
        pickle.loads(payload)
    wait_until(
        lambda: {p.name for p in tmp_path.iterdir()} >= set(hostile_payloads(tmp_path)),
        5,
        "every payload's marker file",
    )


def test_allowed_covers_thespian_protocol_and_refuses_gadgets() -> None:
    assert wire.allowed("thespian.actors", "ActorAddress")
    assert wire.allowed("thespian.system.messages.admin", "PendingActor")
    assert wire.allowed("logging", "LogRecord")
    assert wire.allowed("datetime", "timedelta")
    for module, name in [
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("io", "open"),
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
        ("thespian.actors", "ValidateSource"),
        ("thespian.system.messages.admin", "RegisterSourceAuthority"),
        ("thespian.system.logdirector", "LoggerFileDup"),
        ("actors.shell.wire", "os.system"),
        ("actors.protocol", "__builtins__"),
        ("actors.protocol.nonexistent", "Anything"),
        ("actors.protocol..x", "Y"),
    ]:
        assert not wire.allowed(module, name), f"{module}.{name} must be refused"


def test_protocol_package_classes_are_allowed_and_its_imports_are_not() -> None:
    import importlib
    import pkgutil

    import actors.protocol as protocol

    checked = 0
    for info in pkgutil.iter_modules(protocol.__path__, protocol.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            ours = isinstance(obj, type) and obj.__module__.startswith(protocol.__name__ + ".")
            assert wire.allowed(info.name, name) == ours, f"{info.name}.{name}"
            if ours:
                assert wire.SERIALIZER.loads(pickle.dumps((sender_address(19999), obj)))[1] is obj
                checked += 1
    assert checked > 0
    assert not wire.allowed("actors.protocol.client", "Enum")
    assert not wire.allowed("actors.protocol.client", "dataclass")


def test_install_is_idempotent_and_rejects_non_classes() -> None:
    wire.install()
    wire.install()
    assert wire.installed()
    with pytest.raises(ValueError):
        wire.install([("os", "system")])
    assert not wire.allowed("os", "system")


def test_hostile_frames_are_refused_by_admin_logger_and_actor(
    system: Any, recorder: Any, tmp_path: Path, log_file: Path, wait_until: Any
) -> None:
    decoders = _decoders(system, recorder)
    for target, port in _targets(system, recorder).items():
        marker_dir = tmp_path / f"hostile-{target}"
        marker_dir.mkdir()
        for name, payload in hostile_payloads(marker_dir).items():
            peer = RawPeer(port)
            try:
                peer.send(payload)
                assert peer.answer() == ACK_DATAERR, f"{name} frame to {target}"
            finally:
                peer.close()
            line = f"refused Thespian frame from {peer.local} (pid {decoders[target]})"
            wait_until(lambda line=line: line in log_file.read_text(), 5, f"log line {line!r} for {name} to {target}")
        time.sleep(NO_MARKER_WAIT_S)
        assert list(marker_dir.iterdir()) == [], f"hostile frame ran code in the {target} process"
        assert system.asys.ask(recorder, "tokens?", 5) == [], f"system dead after hostile frames to {target}"


def test_allowlisted_frames_are_decoded_by_admin_logger_and_actor(
    system: Any, recorder: Any, tmp_path: Path, wait_until: Any
) -> None:
    """Positive control: same framing and ports, an allowlisted class decodes."""
    decoders = _decoders(system, recorder)
    sender = sender_address(system.admin_port)
    for target, port in _targets(system, recorder).items():
        marker = tmp_path / f"decoded-by-{target}"
        peer = RawPeer(port)
        try:
            peer.send(pickle.dumps((sender, _BuildsMarkerWriter(marker))))
            assert peer.answer() == ACK
        finally:
            peer.close()
        wait_until(marker.exists, 5, f"{target} to decode the allowlisted frame")
        assert int(marker.read_text()) == decoders[target], f"decoded in the wrong process for {target}"


def test_allowlisted_envelope_reaches_the_actor(system: Any, recorder: Any, wait_until: Any) -> None:
    """Positive control: a raw frame with (sender, Ping) is delivered to the actor."""
    peer = RawPeer(port_of(recorder))
    try:
        peer.send(pickle.dumps((sender_address(system.admin_port), Ping("raw-1"))))
        assert peer.answer() == ACK
    finally:
        peer.close()
    wait_until(lambda: system.asys.ask(recorder, "tokens?", 5) == ["raw-1"], 5, "the actor to receive Ping")


def test_client_system_port_is_guarded(system: Any, recorder: Any, tmp_path: Path) -> None:
    """The test process's own system endpoint decodes through the allowlist too."""
    client_port = port_of(system.asys._systemBase.transport.myAddress)
    hostile = RawPeer(client_port)
    friendly = RawPeer(client_port)
    answers: dict[str, str] = {}
    try:
        hostile.send(global_call("io", "open", str(tmp_path / "client-marker"), "w"))
        friendly.send(pickle.dumps((sender_address(system.admin_port), _BuildsMarkerWriter(tmp_path / "client-ok"))))
        for peer, key in ((hostile, "hostile"), (friendly, "friendly")):
            peer.sock.settimeout(0.05)
            deadline = time.monotonic() + 5
            while key not in answers and time.monotonic() < deadline:
                system.asys.ask(recorder, "tokens?", 0.2)  # the client reads its port only while it runs
                try:
                    answers[key] = peer.answer()
                except (TimeoutError, BlockingIOError):
                    continue
    finally:
        hostile.close()
        friendly.close()
    assert answers == {"hostile": ACK_DATAERR, "friendly": ACK}
    assert int((tmp_path / "client-ok").read_text()) == os.getpid()
    time.sleep(NO_MARKER_WAIT_S)
    assert not (tmp_path / "client-marker").exists()


def test_every_socket_listens_on_the_configured_address_only(system: Any, recorder: Any, actor_systems: Any) -> None:
    client_port = port_of(system.asys._systemBase.transport.myAddress)
    for what, port in [*_targets(system, recorder).items(), ("client", client_port)]:
        assert actor_systems.listen_addresses(port) == {LOOPBACK}, f"{what} port {port}"


def test_unknown_message_class_is_bad_packet_at_the_sender(system: Any, recorder: Any) -> None:
    """A class missing from the allowlist fails loudly for an external sender."""
    from thespian.actors import ActorSystemFailure

    with pytest.raises(ActorSystemFailure, match="BadPacket"):
        system.asys.ask(recorder, _NotAllowed(), 5)
    assert system.asys.ask(recorder, "tokens?", 5) == []


@dataclass(frozen=True)
class _NotAllowed:
    """Not on any allowlist."""


def test_refusal_keeps_serving_under_a_burst(system: Any, recorder: Any, tmp_path: Path) -> None:
    payload = global_call("io", "open", str(tmp_path / "burst"), "w")
    peers = [RawPeer(system.admin_port) for _ in range(50)]
    try:
        for peer in peers:
            peer.send(payload)
        assert {peer.answer() for peer in peers} == {ACK_DATAERR}
    finally:
        for peer in peers:
            peer.close()
    assert system.asys.ask(recorder, "tokens?", 5) == []
    assert not (tmp_path / "burst").exists()


def test_pickle_stream_is_unchanged_for_allowed_messages() -> None:
    message = (sender_address(19999), Ping("x"))
    data = wire.SERIALIZER.dumps(message)
    assert data == pickle.dumps(message)
    assert wire.SERIALIZER.loads(data)[1] == Ping("x")
    assert io.BytesIO(data).read(2) == b"\x80\x04"


def test_thespian_own_traffic_passes_the_allowlist(actor_systems: Any, log_file: Path, wait_until: Any) -> None:
    """Regression guard for the class list: a busy two-system convention, no refusal.

    Covers createActor, asks and tells, actor logging (LogRecord), wakeups,
    PoisonMessage, ChildActorExited, dead letters, globalName, capability
    updates, status queries, convention registration and placement.
    """
    leader = actor_systems.start({"role": "leader"}, extra_allowed=EXTRA_ALLOWED)
    member = actor_systems.start(
        {"role": "member", "Convention Address.IPv4": f"{LOOPBACK}:{leader.admin_port}"}, extra_allowed=EXTRA_ALLOWED
    )
    asys = leader.asys
    assert asys.ask(asys.createActor(Parent), "go", 10) == "done"

    dead_letters = asys.createActor(DeadLetters)
    assert asys.ask(dead_letters, "register", 5) == "registered"
    doomed = asys.createActor(Echo)
    asys.tell(doomed, ActorExitRequest())
    wait_until(lambda: _tell_and_count(asys, doomed, dead_letters) > 0, 10, "a DeadEnvelope")

    named = asys.createActor(Echo, globalName="licpool-test-echo")
    assert asys.createActor(Echo, globalName="licpool-test-echo") == named
    asys.updateCapability("licpool-test", "yes")
    assert isinstance(asys.ask(asys._systemBase.adminAddr, Thespian_StatusReq(), 5), Thespian_SystemStatus)
    assert isinstance(asys.ask(named, Thespian_StatusReq(), 5), Thespian_ActorStatus)

    placed = _create_when_possible(asys, Placed, {"role": "member"})
    reply = member.asys.ask(placed, "hello", 5)
    assert reply is not None and reply[0] == "placed" and reply[2] == "hello"
    assert reply[1] in actor_systems.session_members(member.session), "Placed should run on the member system"

    refusals = [line for line in log_file.read_text().splitlines() if "refused Thespian frame" in line]
    assert refusals == []


def _tell_and_count(asys: Any, doomed: Any, dead_letters: Any) -> int:
    asys.tell(doomed, "to a dead actor")
    count: int = asys.ask(dead_letters, "count?", 5)
    return count


def _create_when_possible(asys: Any, actor_class: type, requirements: dict[str, Any]) -> Any:
    """createActor, retried until the convention member that can host it has joined."""
    from thespian.actors import NoCompatibleSystemForActor

    deadline = time.monotonic() + 15
    while True:
        try:
            return asys.createActor(actor_class, requirements)
        except NoCompatibleSystemForActor:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_malformed_envelopes_are_refused_and_the_actor_lives(
    system: Any, recorder: Any, log_file: Path, wait_until: Any
) -> None:
    """Thespian trusts the envelope: a sender that is not an ActorAddress made the
    actor process exit (measured before ``wire._check_frame``).  Now it is refused."""
    sender = sender_address(system.admin_port)
    bogus_forward = ForwardMessage(Ping("fwd"), "not an address", sender)
    cases = {
        "str sender": pickle.dumps(("not an address", Ping("a"))),
        "no envelope": pickle.dumps(None),
        "three items": pickle.dumps((sender, Ping("b"), 3)),
        "bare ACK-like text": pickle.dumps("ACKNOWLEDGED"),
        "forward to a str": pickle.dumps((sender, bogus_forward)),
    }
    for name, payload in cases.items():
        peer = RawPeer(port_of(recorder))
        try:
            peer.send(payload)
            assert peer.answer() == ACK_DATAERR, name
        finally:
            peer.close()
        assert system.asys.ask(recorder, "tokens?", 5) == [], f"actor dead after {name}"
    wait_until(lambda: "not an (ActorAddress, message) envelope" in log_file.read_text(), 5, "the refusal line")
