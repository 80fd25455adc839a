"""What Thespian's TCP transport may unpickle, and which address it listens on.

Thespian 4.0.1 decodes every frame that reaches an admin, actor or client port
with ``pickle.loads`` before it knows who sent it
(``thespian/system/transport/TCPTransport.py``: ``serializer = pickle``, read
each time a ``ReceiveBuffer`` is built). :func:`install` swaps that
module-level ``serializer`` for :data:`SERIALIZER`, whose ``loads`` runs a
``pickle.Unpickler`` that resolves only allowlisted classes and whose ``dumps``
is ``pickle.dumps``. A refused frame raises inside Thespian's own
``try``/``except`` in ``TCPTransport._addedDataToIncoming``: Thespian answers
``ACK+DATAERR``, drops the connection and keeps serving; this module also logs
the refusal with the peer address.

Each decoded frame is also counted, by message class: :func:`received_frames`
(a dict update per frame; the server exports it as
``licpool_frames_received`` / ``licpool_frame_bytes_received``).

Call :func:`install` (and :func:`restrict_bind`) before the first
``ActorSystem(...)`` of the process. The admin, its logger and every actor are
forked from that process (Thespian's default ``'Process Startup Method'`` is
``fork``), so they inherit both. See ``docs/thespian-shell.md``.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import socket
import sys
import threading
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any, Final

from loguru import logger

__all__ = [
    "MAX_FRAME",
    "MalformedFrame",
    "PROTOCOL_PACKAGE",
    "SAFE_STDLIB",
    "SERIALIZER",
    "THESPIAN_CLASSES",
    "RefusedGlobal",
    "allowed",
    "install",
    "installed",
    "loads_sealed",
    "received_frames",
    "require_fork",
    "restrict_bind",
    "unrestrict_bind",
]

PROTOCOL_PACKAGE: Final = "actors.protocol"
"""Classes defined in this package (or its submodules) are always allowed."""

THESPIAN_CLASSES: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        # Addresses: every frame is (sender ActorAddress, message).
        ("thespian.actors", "ActorAddress"),
        ("thespian.system.transport.IPBase", "TCPv4ActorAddress"),
        ("thespian.system.transport.IPBase", "RoutedTCPv4ActorAddress"),
        ("thespian.system.transport.IPBase", "TXOnlyAdminTCPv4ActorAddress"),
        ("thespian.system.transport.TCPTransport", "RoutedTCPv4ActorAddress"),
        ("thespian.system.transport.TCPTransport", "TXOnlyAdminTCPv4ActorAddress"),
        ("socket", "AddressFamily"),
        ("socket", "SocketKind"),
        ("thespian.system.transport", "ForwardMessage"),
        # Actor lifecycle messages.
        ("thespian.actors", "ActorExitRequest"),
        ("thespian.actors", "ChildActorExited"),
        ("thespian.actors", "PoisonMessage"),
        ("thespian.actors", "DeadEnvelope"),
        ("thespian.actors", "ActorSystemConventionUpdate"),
        # Admin protocol (system start, createActor, dead letters, shutdown).
        ("thespian.system.messages.admin", "QueryExists"),
        ("thespian.system.messages.admin", "QueryAck"),
        ("thespian.system.messages.admin", "PendingActor"),
        ("thespian.system.messages.admin", "PendingActorResponse"),
        ("thespian.system.messages.admin", "HandleDeadLetters"),
        ("thespian.system.messages.admin", "CapabilityUpdate"),
        ("thespian.system.messages.admin", "NewCapabilities"),
        ("thespian.system.messages.admin", "NotifyOnSourceAvailability"),
        ("thespian.system.messages.admin", "SystemShutdown"),
        ("thespian.system.messages.admin", "SystemShutdownCompleted"),
        ("thespian.system.messages.multiproc", "EndpointConnected"),
        ("thespian.system.messages.multiproc", "LoggerConnected"),
        # Conventions (multi-host start-up and placement).
        ("thespian.system.messages.convention", "ConventionRegister"),
        ("thespian.system.messages.convention", "ConventionDeRegister"),
        ("thespian.system.messages.convention", "ConventionInvite"),
        ("thespian.system.messages.convention", "NotifyOnSystemRegistration"),
        # Status queries (Thespian_StatusReq and its answers).
        ("thespian.system.messages.status", "Thespian_StatusReq"),
        ("thespian.system.messages.status", "Thespian_SystemStatus"),
        ("thespian.system.messages.status", "Thespian_ActorStatus"),
        ("thespian.system.timing", "ExpirationTimer"),
        # Logging: actors forward LogRecords to the system's logger process.
        ("logging", "LogRecord"),
        ("thespian.system.logdirector", "LoggerExitRequest"),
        ("thespian.system.logdirector", "LogAggregator"),
    }
)
"""Thespian classes seen on the wire by a recording unpickler (see the docs).

Deliberately absent: the source-loading messages (``ValidateSource``,
``ValidatedSource``, ``LoadedSource``, ``UnloadedSource``,
``RegisterSourceAuthority``, ``SourceHashTransferRequest``/``Reply``), which
would let any peer register itself as source authority and load code;
``LoggerFileDup``, which makes the logger append to a peer-chosen path; and
``SetLogging``. licpool uses none of them.
"""

SAFE_STDLIB: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("builtins", "range"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("collections", "OrderedDict"),
        ("collections", "deque"),
    }
)
"""Plain-data classes whose constructors have no side effects.

Everything else (functions such as ``eval``/``getattr``/``__import__``,
``os``/``posix``/``subprocess``, ``copyreg._reconstructor``, exception
classes, ``_codecs.encode`` used by pickle protocols < 3) is refused.
"""


class RefusedGlobal(pickle.UnpicklingError):
    """A frame named a global that is not on the allowlist."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"refused global {module}.{name}")
        self.module = module
        self.name = name


_lock = threading.Lock()
_extra: set[tuple[str, str]] = set()
_installed = False
# Only positive answers are cached: refused names are chosen by peers.
_protocol_classes_seen: set[tuple[str, str]] = set()


def _is_identifier(name: str) -> bool:
    return name.isidentifier() and not name.startswith("_")


def _in_protocol_package(module: str) -> bool:
    return module == PROTOCOL_PACKAGE or module.startswith(PROTOCOL_PACKAGE + ".")


def _protocol_class(module: str, name: str) -> type | None:
    """The class ``module.name`` if it is defined inside the protocol package."""
    if not (_in_protocol_package(module) and _is_identifier(name)):
        return None
    if not all(part.isidentifier() for part in module.split(".")):
        return None
    try:
        obj = getattr(importlib.import_module(module), name)
    except Exception:  # no such module or name, or a module that fails to import
        return None
    # A name re-exported into the package (``from subprocess import Popen``)
    # keeps its own __module__, so it is refused here.
    if isinstance(obj, type) and _in_protocol_package(obj.__module__):
        return obj
    return None


def allowed(module: str, name: str) -> bool:
    """Whether a frame may resolve the global ``module.name``."""
    key = (module, name)
    if key in THESPIAN_CLASSES or key in SAFE_STDLIB or key in _extra or key in _protocol_classes_seen:
        return True
    if _protocol_class(module, name) is None:
        return False
    _protocol_classes_seen.add(key)
    return True


class _AllowlistUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Dotted names (pickle protocol 4 walks them with getattr) and any
        # other name are checked against the allowlist before import.
        if not allowed(module, name):
            raise RefusedGlobal(module, name)
        return super().find_class(module, name)


def _frame_peer(start: FrameType | None) -> str:
    """Best effort: the peer of the socket whose frame is being decoded.

    ``loads`` gets bytes only, so walk up to Thespian's caller
    (``TCPTransport._addedDataToIncoming`` holds the incoming connection,
    ``_check_XMIT_4_done`` the transmit intent) and ask its socket.
    """
    frame = start
    for _ in range(8):
        if frame is None:
            break
        for value in frame.f_locals.values():
            sock = value if isinstance(value, socket.socket) else getattr(value, "socket", None)
            if isinstance(sock, socket.socket):
                try:
                    host, port = sock.getpeername()[:2]
                except OSError:
                    continue
                return f"{host}:{port}"
        frame = frame.f_back
    return "unknown"


class MalformedFrame(pickle.UnpicklingError):
    """A frame decoded to something that is not a Thespian envelope or ACK."""


_CONTROL: Final = frozenset({"ACK", "ACK+DATAERR"})
"""The ACK frames Thespian answers each data frame with (``streamBuffer.ackPacket``)."""


def _good_address(address: Any) -> bool:
    """An ``ActorAddress`` holding a TCP address with a ``(host, port)`` sockname.

    Thespian trusts the envelope's sender: a frame whose sender is a string
    made the receiving actor process exit (measured), so the shape is checked here.
    """
    from thespian.actors import ActorAddress
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    if type(address) is not ActorAddress:
        return False
    details = getattr(address, "addressDetails", None)
    if not isinstance(details, TCPv4ActorAddress):
        return False
    sockname = getattr(details, "sockname", None)
    return (
        isinstance(sockname, tuple)
        and len(sockname) == 2
        and isinstance(sockname[0], str)
        and isinstance(sockname[1], int)
        and not isinstance(sockname[1], bool)
    )


def _check_frame(obj: Any) -> None:
    """Raise ``MalformedFrame`` unless ``obj`` is an ACK or ``(ActorAddress, message)``."""
    if isinstance(obj, str) and obj in _CONTROL:
        return
    if not (isinstance(obj, tuple) and len(obj) == 2 and _good_address(obj[0])):
        raise MalformedFrame("not an (ActorAddress, message) envelope")
    from thespian.system.transport import ForwardMessage

    message = obj[1]
    if isinstance(message, ForwardMessage):
        targets = getattr(message, "fwdTargets", None)
        if not (
            _good_address(getattr(message, "fwdTo", None))
            and _good_address(getattr(message, "fwdFrom", None))
            and isinstance(targets, list)
            and targets
            and all(_good_address(t) for t in targets)
        ):
            raise MalformedFrame("malformed ForwardMessage")


_received: dict[str, list[int]] = {}
"""Per message class name: [frames, bytes] this process decoded (ACKs not counted)."""


def received_frames() -> dict[str, tuple[int, int]]:
    """The frames this process has decoded since it started (or was forked), by the
    message's class name: ``(frames, bytes)``, the bytes being the pickled
    ``(sender, message)`` envelope without Thespian's length prefix.  A forked
    process starts from its parent's counts, so read the deltas."""
    return {name: (n, size) for name, (n, size) in list(_received.items())}


def _count(obj: Any, size: int) -> None:
    if isinstance(obj, tuple) and len(obj) >= 2:
        name = type(obj[1]).__name__
        seen = _received.get(name)
        if seen is None:
            _received[name] = [1, size]
        else:
            seen[0] += 1
            seen[1] += size


class _WireSerializer:
    """Stands in for the ``pickle`` module inside Thespian's TCP transport."""

    dumps = staticmethod(pickle.dumps)

    @staticmethod
    def loads(data: bytes) -> Any:
        try:
            obj = _AllowlistUnpickler(io.BytesIO(data)).load()
            _check_frame(obj)
            _count(obj, len(data))
            return obj
        except RefusedGlobal as refused:
            logger.bind(via="wire").warning(
                "refused Thespian frame from {peer} (pid {pid}): {module}.{name}",
                peer=_frame_peer(sys._getframe(1)),
                pid=os.getpid(),
                module=refused.module,
                name=refused.name,
            )
            raise
        except MalformedFrame as bad:
            logger.bind(via="wire").warning(
                "refused Thespian frame from {peer} (pid {pid}): {why}",
                peer=_frame_peer(sys._getframe(1)),
                pid=os.getpid(),
                why=str(bad),
            )
            raise


SERIALIZER: Final = _WireSerializer()


def loads_sealed(data: bytes) -> Any:
    """The body of a sealed ``PeerEnvelope`` (``actors.shell.peerauth``): the same
    allowlist as a frame, called only once the envelope's MAC is right.  Raises
    ``pickle.UnpicklingError`` (``RefusedGlobal`` for a global off the list) or
    whatever else bad bytes make pickle raise."""
    return _AllowlistUnpickler(io.BytesIO(data)).load()


MAX_FRAME: Final = 32 * 1024 * 1024
"""Largest frame accepted, in bytes; Thespian itself believes any ``<len>``."""

_guarded_buffer: Any = None


def _receive_buffer_class() -> Any:
    """Thespian's ``ReceiveBuffer`` with a checked length prefix.

    ``ReceiveBuffer.addMore`` raises ``ValueError`` on a prefix that is not a
    number (``b'notanumber>'``), outside any ``try`` of the transport: one such
    frame made an admin process exit, taking its whole system down (measured).
    A negative or oversized length (over :data:`MAX_FRAME`) is as bad.  This
    subclass turns all three into an empty frame that fails to decode, so
    Thespian answers ``ACK+DATAERR``, drops the connection and keeps serving.
    """
    global _guarded_buffer
    if _guarded_buffer is not None:
        return _guarded_buffer
    from thespian.system.transport.streamBuffer import ReceiveBuffer

    class GuardedReceiveBuffer(ReceiveBuffer):
        bad = ""

        def addMore(self, buf: bytes) -> None:
            if self.bad:
                return
            try:
                super().addMore(buf)
            except ValueError:
                self._corrupt("a frame length that is not a number")
                return
            size = self._size
            if size is not None and (size < 0 or size > MAX_FRAME):
                self._corrupt(f"a frame length of {size} bytes (limit {MAX_FRAME})")

        def _corrupt(self, why: str) -> None:
            self.bad = why
            self._size, self._buf, self._blen, self._extra = 0, b"", 0, b""

        def completed(self) -> Any:
            if self.bad:
                logger.bind(via="wire").warning(
                    "refused Thespian frame (pid {pid}): {why}", pid=os.getpid(), why=self.bad
                )
                raise MalformedFrame(self.bad)
            return super().completed()

    _guarded_buffer = GuardedReceiveBuffer
    return _guarded_buffer


def _tcp_transport_module() -> Any:
    return importlib.import_module("thespian.system.transport.TCPTransport")


def install(extra_allowed: Iterable[tuple[str, str]] = ()) -> None:
    """Make Thespian's TCP transport in this process use the allowlist.

    Idempotent; each call adds ``extra_allowed`` (module, class name) pairs,
    which must name importable classes. Must run before ``ActorSystem(...)``
    so that forked admin, logger and actor processes inherit it; processes
    already running are not affected.
    """
    global _installed
    extras = [(str(module), str(name)) for module, name in extra_allowed]
    for module, name in extras:
        obj = getattr(importlib.import_module(module), name, None)
        if not isinstance(obj, type):
            raise ValueError(f"extra_allowed entry {module}.{name} is not a class")
    with _lock:
        _extra.update(extras)
        tcp = _tcp_transport_module()
        tcp.serializer = SERIALIZER
        tcp.ReceiveBuffer = _receive_buffer_class()
        _installed = True


def require_fork(capabilities: Mapping[str, Any]) -> None:
    """Refuse capabilities that would start Thespian processes without fork.

    With ``'Process Startup Method'`` set to ``spawn`` or ``forkserver`` the
    admin and actors start from a fresh interpreter and do not inherit
    :func:`install` (measured; see the docs).
    """
    method = capabilities.get("Process Startup Method", "fork")
    if method != "fork":
        raise ValueError(f"'Process Startup Method' must be 'fork' for the wire allowlist, not {method!r}")


def installed() -> bool:
    """Whether this process's TCP transport decodes through the allowlist."""
    tcp = _tcp_transport_module()
    return _installed and tcp.serializer is SERIALIZER and tcp.ReceiveBuffer is _receive_buffer_class()


# --- bind address ----------------------------------------------------------

_bind_host: str | None = None
_original_bind_args: Any = None


def _bind_args(address: Any) -> tuple[tuple[str, int]]:
    host, port = address.bindname[:2]
    return ((host or _bind_host or "", port),)


def restrict_bind(host: str) -> None:
    """Make every Thespian TCP socket of this process listen on ``host`` only.

    Thespian has no bind-address setting: ``IPActorAddress`` binds
    ``('', port)`` for every external address (``IPBase.py``). This sets
    ``THESPIAN_BASE_IPADDR`` (the address Thespian advertises) to ``host`` and
    replaces the ``IPActorAddress.bindArgs`` property, which both
    ``TCPTransport.__init__`` and ``TCPTransport.probeAdmin`` bind with, so
    that an any-address bind becomes a bind on ``host``. Call it before the
    first ``ActorSystem(...)``; one host per process.
    """
    global _bind_host, _original_bind_args
    socket.inet_aton(host)  # an IPv4 literal: Thespian's TCP is IPv4 only
    ip_base = importlib.import_module("thespian.system.transport.IPBase")
    with _lock:
        if _bind_host is not None and _bind_host != host:
            raise RuntimeError(f"bind already restricted to {_bind_host}, not {host}")
        os.environ["THESPIAN_BASE_IPADDR"] = host
        ip_base.thisSystem.add_local_addr(host)
        if _original_bind_args is None:
            _original_bind_args = ip_base.IPActorAddress.__dict__["bindArgs"]
            ip_base.IPActorAddress.bindArgs = property(_bind_args)
        _bind_host = host


def unrestrict_bind() -> None:
    """Undo :func:`restrict_bind` in this process (for tests)."""
    global _bind_host, _original_bind_args
    ip_base = importlib.import_module("thespian.system.transport.IPBase")
    with _lock:
        if _original_bind_args is not None:
            ip_base.IPActorAddress.bindArgs = _original_bind_args
            _original_bind_args = None
        if _bind_host is not None:
            os.environ.pop("THESPIAN_BASE_IPADDR", None)
            _bind_host = None
