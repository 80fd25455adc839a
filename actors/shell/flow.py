"""Flow control for the leader's syncs to each peer.

The core broadcasts a ``DistributionCriteriaSync`` to every peer whenever it
appends to the log, so a burst of checkouts at the leader (each one a lease
report entry) asks for a burst of syncs.  Thespian sends one message per target
at a time and waits for its ACK, so such a burst piles up in the transport:
measured, 150 checkouts in a row at the leader left syncs queued past the
transmit timeout, the followers' replies came late, and the leader lost its
lease (NO_MAJORITY for everyone).

``SyncWindow`` keeps at most ``window`` syncs per peer unanswered.  A sync
offered beyond that is *held*, replacing any sync held before it: a later sync
to the same peer supersedes an earlier one (it is built from the same or a
later ``next_index``, with a later commit index and round).  A serving grant
in the superseded one is carried into its successor.  Holding is safe for the
leader lease, which the core times from its own, earlier, send time.  A held
sync goes out when the peer answers, or after ``max_hold`` at the latest, so a
silent peer still gets one sync per ``max_hold``.  Pure: ``now`` is passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from actors.protocol.raft import DistributionCriteriaSync

__all__ = ["SyncWindow"]


@dataclass
class SyncWindow:
    window: int
    max_hold: float
    sent: dict[str, list[int]] = field(default_factory=dict)
    """peer -> rounds sent and not yet answered (oldest first)."""
    last_send: dict[str, float] = field(default_factory=dict)
    held: dict[str, DistributionCriteriaSync] = field(default_factory=dict)
    coalesced: int = 0

    def offer(self, peer: str, msg: Any, now: float) -> Any | None:
        """The message to send now (``msg`` itself, or a merged sync), or None: held."""
        if not isinstance(msg, DistributionCriteriaSync):
            return msg
        before = self.held.pop(peer, None)
        if before is not None:
            self.coalesced += 1
            if before.epoch == msg.epoch and msg.serving is None and before.serving is not None:
                msg = dataclasses.replace(msg, serving=before.serving)
        if len(self.sent.get(peer, ())) < self.window or now - self.last_send.get(peer, float("-inf")) >= self.max_hold:
            return self._sending(peer, msg, now)
        self.held[peer] = msg
        return None

    def answered(self, peer: str, round_: int, now: float) -> DistributionCriteriaSync | None:
        """A reply for ``round_`` came from ``peer``: a held sync to send now, if any."""
        self.sent[peer] = [r for r in self.sent.get(peer, []) if r > round_]
        if peer in self.held and len(self.sent[peer]) < self.window:
            return self._sending(peer, self.held.pop(peer), now)
        return None

    def due(self, now: float) -> list[tuple[str, DistributionCriteriaSync]]:
        """Held syncs whose peer has been waiting ``max_hold``."""
        out = []
        for peer in list(self.held):
            if now - self.last_send.get(peer, float("-inf")) >= self.max_hold:
                out.append((peer, self._sending(peer, self.held.pop(peer), now)))
        return out

    def next_due(self) -> float | None:
        if not self.held:
            return None
        return min(self.last_send.get(p, 0.0) for p in self.held) + self.max_hold

    def reset(self) -> None:
        """A new term or a step-down: nothing is outstanding any more."""
        self.sent.clear()
        self.held.clear()

    def _sending(self, peer: str, msg: DistributionCriteriaSync, now: float) -> DistributionCriteriaSync:
        rounds = self.sent.setdefault(peer, [])
        rounds.append(msg.round)
        del rounds[: max(0, len(rounds) - 4 * self.window)]
        self.last_send[peer] = now
        return msg
