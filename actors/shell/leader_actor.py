"""The LeaderRole actor: the Raft leader's role, as a child of its LicenseServer.

The server whose core becomes leader creates it, and stops it when the core
steps down or loses its leader lease.  Every *decision* stays in the server's
one core state machine (single writer: the log, the table, the leases); the
LeaderRole owns the leader's outbound fan-out.  The server hands it all
peer-bound messages of one core ``Ready`` in one local ``FanOut`` and it sends
them, one per peer.

Why: the leader sends the most peer traffic (a distribution criteria sync to
every server each heartbeat), and a transmit to a dead or stopped peer waits in
the transport of the actor that sent it.  With the fan-out here, such waits
are in this process, and the server's own transport stays free for its
clients (docs/operations.md has the measurements).
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from thespian.actors import ActorExitRequest, ActorTypeDispatcher, ChildActorExited, PoisonMessage

from actors.protocol.admin import FanOut

__all__ = ["LeaderRole"]


class LeaderRole(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch = 0
        self.sent = 0

    def receiveMsg_FanOut(self, msg: FanOut, sender: Any) -> None:
        if msg.epoch != self.epoch:
            if self.epoch:
                logger.info("leader role: now epoch {}", msg.epoch)
            self.epoch = msg.epoch
        for out in msg.sends:
            self.send(out.address, out.message)
        self.sent += len(msg.sends)

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        logger.debug("leader role of epoch {} exiting after {} sends", self.epoch, self.sent)

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        pass

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:
        logger.warning("leader role: a message it sent could not be handled: {}", type(msg.poisonMessage).__name__)

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        logger.warning("leader role: dropped unknown message {} from {}", type(msg).__name__, sender)
