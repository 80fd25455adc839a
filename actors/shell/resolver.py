"""The Resolver actor: finds a server's LicenseServer through its host's admin.

Every server runs its LicenseServer under the well-known ``globalName``
``SERVER_GLOBAL_NAME`` in its *own* actor system, whose admin listens on the
config's ``host:port``.  To find it, the Resolver sends Thespian's own
``Thespian_StatusReq`` to that admin address; the admin answers with a
``Thespian_SystemStatus`` whose ``globalActors`` maps the name to the actor's
address.  The lookup has no side effect (unlike a ``globalName`` create, which
would start an actor there), needs no convention, and works in any start
order: a host that is down simply does not answer, and the name is asked for
again every ``retry`` seconds while it stays wanted (docs/discovery.md).

The Resolver is a child of its owner (a LicenseServer or a ClientSession), so
transmits to dead or stopped hosts wait in *its* transport, never in the
owner's.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from typing import Any

from loguru import logger
from thespian.actors import (
    ActorExitRequest,
    ActorTypeDispatcher,
    ChildActorExited,
    PoisonMessage,
    WakeupMessage,
)
from thespian.system.messages.status import Thespian_StatusReq, Thespian_SystemStatus

from actors.protocol.admin import PeerResolved, Resolve, ResolverStart
from actors.shell.system import admin_address

__all__ = ["Resolver", "ask_for_stale"]

_TICK = "licpool-resolver-tick"


def ask_for_stale(actor: Any, book: Any, resolver: Any, now: float) -> None:
    """Have ``resolver`` look up again every peer ``book`` has not heard from lately."""
    if book is not None and resolver is not None:
        stale = book.stale(now)
        if stale:
            actor.send(resolver, Resolve(names=stale))


class Resolver(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner: Any = None
        self.global_name = ""
        self.retry = 1.0
        self.targets: dict[str, tuple[str, int]] = {}
        self.wanted: set[str] = set()
        self.asked_at: dict[str, float] = {}
        self.ticking = False

    def receiveMsg_ResolverStart(self, msg: ResolverStart, sender: Any) -> None:
        self.owner = sender
        self.global_name = msg.global_name
        self.retry = max(0.05, msg.retry)
        for target in msg.targets:
            try:
                ip = socket.gethostbyname(target.host)
            except OSError as exc:
                logger.warning("resolver: cannot resolve host {} of {}: {}", target.host, target.name, exc)
                continue
            self.targets[target.name] = (ip, target.port)

    def receiveMsg_Resolve(self, msg: Resolve, sender: Any) -> None:
        if msg.stop:
            self.wanted.difference_update(msg.names)
            return
        now = time.monotonic()
        for name in msg.names:
            if name in self.targets:
                self.wanted.add(name)
                if now - self.asked_at.get(name, float("-inf")) >= self.retry / 2:
                    self._ask(name, now)
        self._keep_ticking()

    def receiveMsg_Thespian_SystemStatus(self, msg: Thespian_SystemStatus, sender: Any) -> None:
        where = getattr(getattr(sender, "addressDetails", None), "sockname", None)
        names = [n for n, t in self.targets.items() if where is not None and tuple(where[:2]) == t]
        if not names:
            logger.debug("resolver: status from an admin we did not ask: {}", sender)
            return
        found = msg.globalActors.get(self.global_name)
        for name in names:
            if found is None:
                logger.debug("resolver: {} is up but has no {} yet", name, self.global_name)
                continue
            self.wanted.discard(name)
            self.send(self.owner, PeerResolved(name=name, address=found))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        self.ticking = False
        now = time.monotonic()
        for name in sorted(self.wanted):
            if now - self.asked_at.get(name, float("-inf")) >= self.retry:
                self._ask(name, now)
        self._keep_ticking()

    def _ask(self, name: str, now: float) -> None:
        self.asked_at[name] = now
        ip, port = self.targets[name]
        self.send(admin_address(ip, port), Thespian_StatusReq())

    def _keep_ticking(self) -> None:
        if self.wanted and not self.ticking:
            self.ticking = True
            self.wakeupAfter(timedelta(seconds=self.retry), payload=_TICK)

    # ---- lifecycle and the unexpected ------------------------------------------------

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        logger.debug("resolver exiting")

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        pass

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:
        logger.warning("resolver: a message of ours could not be handled: {}", type(msg.poisonMessage).__name__)

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        logger.warning("resolver: dropped unknown message {} from {}", type(msg).__name__, sender)
