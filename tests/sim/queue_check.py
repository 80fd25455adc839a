"""Q1, first come first served: the checker's view of the pool's queue.

A queued checkout (``queue=True``) keeps the place its first committed
``QueueJoin`` gave it for as long as its app still waits for it: a leader
change, its server's death and its re-registration at another server keep it.
So, whenever a queued checkout is granted, no checkout that joined the same
table's queue before it may still be waiting: its client alive, the same
session, the request still outstanding, and still in the committed queue.

The tracker reads the committed queue of the most advanced live server after
each event.  A waiter that leaves the queue loses its place only when its app
no longer waits (granted, timed out, abandoned, dead, restarted as a new
session) or a fault touched its client or its server lately (a server cannot
tell a cut-off session from a dead app: docs/licenses.md); any other leave
keeps the place it had, so a waiter that a buggy leader dropped and that
re-joins at the tail is still judged by its first place (mutant 26).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.core.pool import PoolState
from actors.core.table import FeatureKey
from tests.sim.checks import InvariantViolation

if TYPE_CHECKING:
    from tests.sim.hosts import ClientHost
    from tests.sim.world import World

__all__ = ["QueueTracker"]


class QueueTracker:
    def __init__(self, world: World) -> None:
        self.w = world
        self.place: dict[str, tuple[FeatureKey, int]] = {}
        """waiter id -> (table, the log index of its first join): its place while its app waits."""
        self.grants: list[str] = []
        """Waiter ids granted since the last check."""
        self.present: dict[str, str] = {}
        """waiter id -> its server, in the committed queue last read."""
        self.last_server: dict[str, str] = {}
        """waiter id -> the server it was last seen queued at."""

    def granted(self, client: ClientHost, request_id: int) -> None:
        if request_id in client.queued:
            self.grants.append(f"{client.session_id}:{request_id}")

    def _waiting(self, wid: str) -> bool:
        """The app of this waiter still waits for it, and no server granted it yet."""
        session, _, rid = wid.rpartition(":")
        name = self.w.owner.get(session)
        client = self.w.clients.get(name) if name else None
        if client is None or not client.alive or client.session_id != session:
            return False
        if int(rid) not in client.core.outstanding():
            return False
        # Granted by a server already, its grant still on its way: not waiting.
        done = (session, int(rid))
        return not any(
            h.node is not None and done in h.node.serving.book.recent_grants for h in self.w.servers.values()
        )

    def _touched(self, wid: str, server: str) -> bool:
        """A fault touched the waiter's client or its server lately."""
        w = self.w
        client = w.owner.get(wid.rpartition(":")[0], "")
        window = 3 * w.timing.failure_timeout * w.bounds.slow + w.net.max_delay
        faults = w.history.active(w.now - window, w.now)
        return any(client in f.subjects or server in f.subjects or f.kind == "lossy" for f in faults)

    def after_event(self) -> None:
        views = [h.node for h in self.w.servers.values() if h.node is not None]
        if not views and not self.grants:
            return
        if views:
            self._observe(max(views, key=lambda n: n.applied).pool)
        grants, self.grants = self.grants, []
        for wid in grants:
            self._check_grant(wid)

    def _observe(self, pool: PoolState) -> None:
        present: dict[str, str] = {}
        for key, queue in pool.queues.items():
            for x in queue:
                present[x.waiter_id] = x.server
                if x.waiter_id not in self.place:
                    self.place[x.waiter_id] = (key, x.joined_index)
        self.present = present
        for wid, (_key, joined) in list(self.place.items()):
            if wid in present or pool.index < joined:
                continue
            if not self._waiting(wid) or self._touched(wid, self.last_server.get(wid, "")):
                del self.place[wid]  # it left for good: a later join is a new place
        self.last_server.update(present)

    def _check_grant(self, wid: str) -> None:
        mine = self.place.pop(wid, None)
        if mine is None:
            return  # granted without waiting in the queue
        key, joined = mine
        if self.w.checker is not None:
            self.w.checker.stats["Q1 queued grants checked"] += 1
        for other, (k, index) in self.place.items():
            if k == key and index < joined and other in self.present and self._waiting(other):
                raise InvariantViolation(
                    "Q1",
                    f"{wid} (joined the {key[0]} {key[1]} queue at {joined}) was granted while {other} "
                    f"(joined at {index}) still waits",
                )
