"""The ClientSession actor: one per app process, in the app's own actor system.

A thin shell around ``ClientSessionCore`` (actors/core/session.py), which makes
every decision: checkouts and their retries, one heartbeat per server per
interval for all leases held there, fail-over, and each lease's deadline.  The
shell carries out its ``Ready`` (send, then wake up at ``wake_at``) and owns:

* **addresses**: server names -> LicenseServer addresses, through its
  ``Resolver`` child; a message for a server not found yet waits (briefly) in
  a small buffer, and a server that stays silent is looked up again;
* **the app**: who waits for which checkout, and the ``LicenseClient``
  listener that gets ``LeaseNotice``s (deadline, lost, failed_over);
* **the app's life**: when the app process dies, the session stops its whole
  actor system, so its leases stop being renewed and their seats come back
  within ``lease_ttl + failure_timeout``.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from collections.abc import Callable
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

from actors.core.effects import Ready
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.protocol import admin
from actors.protocol import client as client_msgs
from actors.shell.book import AddressBook
from actors.shell.resolver import Resolver, ask_for_stale
from actors.shell.system import SERVER_GLOBAL_NAME, process_alive

__all__ = ["ClientSession", "new_session_core"]

_TICK = "licpool-session-tick"
_BUFFER = 64
"""Messages kept per server while its address is being found."""


def new_session_core(msg: admin.SessionStart, wall: float) -> ClientSessionCore:
    """The decisions of a session started by ``msg`` at wall-clock time ``wall`` (s).

    Its sequence numbers start at ``wall`` in milliseconds.  They order a
    client's fail-over updates and resumes across its sessions too, so a
    restarted app must number above anything its earlier sessions used, or its
    resume of a lease that moved is taken for a stale copy and the lease is
    lost (issue 11, defect 2).  A session numbers far fewer than 1,000 messages
    a second (one heartbeat per server per ``heartbeat_interval``, plus its
    updates and resumes), so a later start is always above an earlier one, as
    long as the wall clock is not set back by more than the time between the
    two starts; the simulator's driver does the same with its own clock."""
    timing = Timing(*msg.timing)
    names = tuple(s.name for s in msg.servers)
    return ClientSessionCore(msg.client_id, msg.session_id, names, timing, msg.prefer, seq_base=int(wall * 1000))


class ClientSession(ActorTypeDispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: ClientSessionCore | None = None
        self.start: admin.SessionStart | None = None
        self.book: AddressBook | None = None
        self.resolver: Any = None
        self.listener: Any = None
        self.waiters: dict[int, tuple[Any, float]] = {}
        self.heard_at = float("-inf")
        self.buffered: dict[str, list[Any]] = {}
        self.deadlines: dict[str, float] = {}
        self.wake_gen = 0
        self.wake_due = float("inf")
        self.next_watch = 0.0
        self.closed = False

    # ---- from the app ------------------------------------------------------------------

    def receiveMsg_SessionStart(self, msg: admin.SessionStart, sender: Any) -> None:
        if self.core is None:
            _quiet_below(msg.log_level)
            timing = Timing(*msg.timing)
            names = tuple(s.name for s in msg.servers)
            self.start = msg
            self.core = new_session_core(msg, time.time())
            self.book = AddressBook(names, timing.failure_timeout)
            self.resolver = self.createActor(Resolver)
            self.send(
                self.resolver,
                admin.ResolverStart(targets=msg.servers, global_name=SERVER_GLOBAL_NAME, retry=timing.failure_timeout),
            )
            ask_for_stale(self, self.book, self.resolver, time.monotonic())
            self._schedule(None, time.monotonic())
        self.send(sender, admin.SessionReady(session_id=msg.session_id))

    def receiveMsg_Subscribe(self, msg: admin.Subscribe, sender: Any) -> None:
        self.listener = sender
        self.send(sender, admin.LeaseNotice(kind="subscribed"))

    def receiveMsg_OpenCheckout(self, msg: admin.OpenCheckout, sender: Any) -> None:
        core = self.core
        if core is None or self.closed:
            self.send(
                sender,
                admin.CheckoutResult(
                    request_id=msg.request_id,
                    granted=False,
                    reason=client_msgs.DenyReason.UNREACHABLE.value,
                    detail="the client session is not running",
                ),
            )
            return
        now = time.monotonic()
        self.waiters[msg.request_id] = (sender, now)
        self._run(
            lambda t: core.checkout(
                msg.feature,
                msg.version,
                msg.request_id,
                t,
                msg.lease_id,
                queue=msg.queue,
                timeout=msg.queue_timeout,
                count=msg.count,
                linger=msg.linger,
                server=msg.server or None,
            )
        )
        if msg.request_id not in core.outstanding():
            self.waiters.pop(msg.request_id, None)  # abandoned before it came: the app waits no more

    def receiveMsg_AdoptGrant(self, msg: admin.AdoptGrant, sender: Any) -> None:
        # The app checked out at the server itself (lever 4): renew it from now on.
        core = self.core
        if core is not None:
            self._run(lambda t: core.adopt(msg.grant.server, msg.grant, msg.sent_at, t))

    def receiveMsg_AdoptGrants(self, msg: admin.AdoptGrants, sender: Any) -> None:
        # The app's adopter coalesced several direct grants: one step adopts them all, in order.
        core = self.core
        if core is not None and msg.adopts:
            self._run(lambda t: core.adopt_all(((a.grant, a.sent_at) for a in msg.adopts), t))

    def receiveMsg_MarkIdle(self, msg: admin.MarkIdle, sender: Any) -> None:
        if self.core is not None:
            self.core.set_idle(msg.lease_id, msg.idle)

    def receiveMsg_AbandonCheckout(self, msg: admin.AbandonCheckout, sender: Any) -> None:
        # The app gave up: the core releases the grant if it came already (its
        # CheckoutResult may be on its way to the app's closed ask) and any
        # grant that comes later, so no seat stays taken (issue 11, defect 3).
        waiting = self.waiters.pop(msg.request_id, None)
        core = self.core
        if core is not None:
            self._run(lambda t: core.abandon(msg.request_id, t))
        # No waiter: its answer went out already, so a server did answer.
        heard = waiting is None or self.heard_at >= waiting[1]
        self.send(sender, admin.CheckoutAbandoned(request_id=msg.request_id, heard=heard))

    def receiveMsg_ReleaseLease(self, msg: admin.ReleaseLease, sender: Any) -> None:
        core = self.core
        if core is not None:
            self.deadlines.pop(msg.lease_id, None)
            self._run(lambda t: core.release(msg.lease_id, t, msg.server))
        self.send(sender, admin.LeaseReleased(lease_id=msg.lease_id))

    def receiveMsg_CloseSession(self, msg: admin.CloseSession, sender: Any) -> None:
        core = self.core
        released = 0
        if core is not None and not self.closed:
            released = len(core.held(time.monotonic()))
            self._run(lambda t: core.close(t))
        self.closed = True
        self.send(sender, admin.SessionClosed(released=released))

    # ---- from servers ---------------------------------------------------------------

    def _from_server(self, msg: Any, sender: Any, named: str = "") -> None:
        core, book = self.core, self.book
        if core is None or book is None:
            return
        name = book.name_of(sender) or named
        if name not in book.names:
            logger.debug("session: {} from an unknown server {}", type(msg).__name__, sender)
            return
        now = time.monotonic()
        book.heard(name, now)
        self.heard_at = now
        self._run(lambda t: core.receive(name, msg, t))

    def receiveMsg_CheckoutGranted(self, msg: client_msgs.CheckoutGranted, sender: Any) -> None:
        self._from_server(msg, sender, msg.server)

    def receiveMsg_CheckoutDenied(self, msg: client_msgs.CheckoutDenied, sender: Any) -> None:
        self._from_server(msg, sender, msg.server)

    def receiveMsg_CheckoutQueued(self, msg: client_msgs.CheckoutQueued, sender: Any) -> None:
        self._from_server(msg, sender, msg.server)

    def receiveMsg_HeartbeatAck(self, msg: client_msgs.HeartbeatAck, sender: Any) -> None:
        self._from_server(msg, sender, msg.server)

    def receiveMsg_FailoverReply(self, msg: client_msgs.FailoverReply, sender: Any) -> None:
        self._from_server(msg, sender, msg.server)

    def receiveMsg_ReleaseAck(self, msg: client_msgs.ReleaseAck, sender: Any) -> None:
        self._from_server(msg, sender)

    def receiveMsg_PeerResolved(self, msg: admin.PeerResolved, sender: Any) -> None:
        if self.book is None:
            return
        if self.book.learn(msg.name, msg.address, time.monotonic(), resolved=True):
            logger.debug("session: found {} at {}", msg.name, msg.address)
        for out in self.buffered.pop(msg.name, []):
            self.send(msg.address, out)

    # ---- time ------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        payload = msg.payload
        if not (isinstance(payload, tuple) and payload[0] == _TICK and payload[1] == self.wake_gen):
            return
        self.wake_due = float("inf")
        now = time.monotonic()
        self._watch_app(now)
        ask_for_stale(self, self.book, self.resolver, now)
        core = self.core
        if core is not None:
            self._run(lambda t: core.tick(t))

    def _schedule(self, wake_at: float | None, now: float) -> None:
        assert self.core is not None
        latest = now + self.core.timing.heartbeat_interval
        wake_at = latest if wake_at is None else min(wake_at, latest)
        if wake_at < self.wake_due - 0.0005:
            self.wake_gen += 1
            self.wake_due = wake_at
            self.wakeupAfter(timedelta(seconds=max(0.0, wake_at - now)), payload=(_TICK, self.wake_gen))

    def _watch_app(self, now: float) -> None:
        if now < self.next_watch or self.start is None:
            return
        self.next_watch = now + 0.25
        if not process_alive(self.start.app_pid, self.start.app_start):
            logger.warning(
                "session {}: the app (pid {}) is gone; stopping its actor system",
                self.start.session_id,
                self.start.app_pid,
            )
            # Thespian's setsid made this system's processes one group of their own.
            os.killpg(os.getpgrp(), signal.SIGKILL)

    # ---- carrying out a Ready ----------------------------------------------------------

    def _run(self, step: Callable[[float], Ready]) -> None:
        """Carry out one core step, whole or not at all.  The core updates its
        state in place, so a step that raises may leave it half done (a lease
        taken, its notice never sent): the state from before the step is put
        back, the exception logged, and the message dropped.  The state is kept
        pickled, not deep-copied: 0.13 ms instead of 1.3 ms with 200 leases
        held (docs/performance.md, "Lever 4"), and unpickled only after a raise."""
        now = time.monotonic()
        before = pickle.dumps(self.core, pickle.HIGHEST_PROTOCOL)
        try:
            ready = step(now)
        except Exception:
            logger.exception("session: the core raised; its step is undone and the message dropped")
            self.core = pickle.loads(before)  # this process's own bytes, never received from anyone
            return
        self._send_all(ready, now)
        self._events(ready, now)
        self._notify_deadlines(now)
        if not self.closed:
            self._schedule(ready.wake_at, now)

    def _send_all(self, ready: Ready, now: float) -> None:
        assert self.book is not None
        for out in ready.send:
            name = out.to if isinstance(out.to, str) else out.to.session_id
            self.book.sent(name, now)
            address = self.book.address(name)
            if address is None:
                queue = self.buffered.setdefault(name, [])
                if len(queue) < _BUFFER:
                    queue.append(out.msg)
                continue
            self.send(address, out.msg)

    def _events(self, ready: Ready, now: float) -> None:
        assert self.core is not None
        for event in ready.events:
            kind = event.kind
            if kind == "granted":
                self._answer(
                    event.get("request_id"),
                    admin.CheckoutResult(
                        request_id=event.get("request_id"),
                        granted=True,
                        lease_id=event.get("lease_id"),
                        server=event.get("server"),
                        deadline=self._deadline_of(event.get("lease_id"), now),
                        version=event.get("version", ""),
                        seats=event.get("seats", 1),
                        route=self.book.address(event.get("server")) if self.book is not None else None,
                    ),
                )
            elif kind == "denied":
                self._answer(
                    event.get("request_id"),
                    admin.CheckoutResult(
                        request_id=event.get("request_id"),
                        granted=False,
                        reason=event.get("reason"),
                        detail=event.get("detail", ""),
                    ),
                )
            elif kind == "adopted":
                # The app timed this deadline itself, as the core did: no notice.
                lid = event.get("lease_id")
                self.deadlines[lid] = self._deadline_of(lid, now)
            elif kind == "released":
                self.deadlines.pop(event.get("lease_id"), None)
            elif kind == "lost":
                self.deadlines.pop(event.get("lease_id"), None)
                logger.warning("session: lease {} lost: {}", event.get("lease_id"), event.get("why"))
                self._notify(
                    admin.LeaseNotice(
                        kind="lost",
                        lease_id=event.get("lease_id"),
                        server=event.get("server", ""),
                        detail=event.get("why", ""),
                        reason=event.get("reason", ""),
                    )
                )
            elif kind == "failed_over":
                for lease_id in event.get("lease_ids", ()):
                    self._notify(
                        admin.LeaseNotice(kind="failed_over", lease_id=lease_id, server=event.get("to_server"))
                    )
                logger.info("session: failed over from {} to {}", event.get("from_server"), event.get("to_server"))

    def _deadline_of(self, lease_id: str, now: float) -> float:
        assert self.core is not None
        return self.core.deadline_of(lease_id, now)

    def _answer(self, request_id: int, result: admin.CheckoutResult) -> None:
        waiting = self.waiters.pop(request_id, None)
        if waiting is not None:
            self.send(waiting[0], result)

    def _notify(self, notice: admin.LeaseNotice) -> None:
        if self.listener is not None:
            self.send(self.listener, notice)

    def _notify_deadlines(self, now: float) -> None:
        assert self.core is not None
        changed = []
        for lease_id, info in self.core.held(now).items():
            if self.deadlines.get(lease_id) != info.deadline:
                self.deadlines[lease_id] = info.deadline
                changed.append((lease_id, info.server, info.deadline))
        # One message for all of them: a renewal renews every lease held at a
        # server, and a notice per lease cost the session one Thespian send per
        # lease per heartbeat (measured: ~150 leases saturated it).
        if len(changed) == 1:
            lease_id, server, deadline = changed[0]
            self._notify(admin.LeaseNotice(kind="deadline", lease_id=lease_id, server=server, deadline=deadline))
        elif changed:
            self._notify(admin.LeaseNotice(kind="deadlines", deadlines=tuple(changed)))

    # ---- lifecycle and the unexpected ------------------------------------------------

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if msg.childAddress == self.resolver and self.start is not None and not self.closed:
            self.resolver = self.createActor(Resolver)
            timing = Timing(*self.start.timing)
            self.send(
                self.resolver,
                admin.ResolverStart(
                    targets=self.start.servers, global_name=SERVER_GLOBAL_NAME, retry=timing.failure_timeout
                ),
            )
            if self.book is not None:
                self.book.resolving.clear()

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        logger.debug("session exiting")
        self.closed = True

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:
        logger.warning("session: a message it sent could not be handled: {}", type(msg.poisonMessage).__name__)

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        logger.warning("session: dropped unknown message {} from {}", type(msg).__name__, sender)


def _quiet_below(level: str) -> None:
    """This process inherited the app's loguru sinks; keep only lines at
    ``level`` and above from it (the app's own process is not touched)."""
    logger.remove()
    logger.add(
        sys.stderr, level=level.upper(), format="{time:HH:mm:ss.SSS} | {level: <7} | licpool session | {message}"
    )
