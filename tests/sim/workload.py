"""The simulated application behind each client session.

It checks a feature out, holds it for a random while, releases it, rests, and
starts again; some apps hold two leases at once (one session, several leases,
still one heartbeat per server).  Now and then an app restarts while holding
leases and resumes them by id from a new session.  A checkout nobody answered within
``timeout`` is abandoned, as ``LicenseClient.checkout(timeout=...)`` would.
More apps than seats make real contention.  App timers run on real time: the
app's behaviour is workload, not something the rules depend on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from actors.core.effects import Event

__all__ = ["App", "Action"]

Action = tuple[str, ...]
"""``("checkout", feature, version, request_id)``, ``("queue", feature, version,
request_id, timeout)``, ``("abandon", request_id)``,
``("release", lease_id)``, ``("reconnect",)``."""


@dataclass
class App:
    rng: random.Random
    features: list[tuple[str, str]]
    max_hold: int = 1
    timeout: float = 10.0
    hold: tuple[float, float] = (1.0, 15.0)
    rest: tuple[float, float] = (0.2, 4.0)
    burst: tuple[float, float] | None = None
    """Pause between checkouts while it holds fewer than ``max_hold`` (None: ``rest``)."""
    reconnect_rate: float = 0.02
    """Chance per timer, while holding, that the app process restarts and
    resumes its leases by id in a new session (FlexNet's double-seat case)."""
    start_at: float = 0.0
    queue_rate: float = 0.0
    """Chance that a checkout waits in the pool's queue (``queue=True``, for
    most of ``timeout``); 0 draws nothing, so schedules without it are unchanged."""
    max_seats: int = 1
    """Above 1: each checkout asks for 1..max_seats seats in one lease (issue 14)."""
    linger: float = 0.0
    """Above 0: each checkout asks its seats to linger that long after the release (issue 14)."""
    enabled: bool = True
    request_no: int = 0
    waiting: dict[int, float] = field(default_factory=dict)
    """request id -> real time to give up."""
    holding: dict[str, float] = field(default_factory=dict)
    """lease id -> real time to release."""
    next_try: float = 0.0

    def __post_init__(self) -> None:
        self.next_try = self.start_at

    def next_due(self) -> float | None:
        if not self.enabled:
            return None
        times = [*self.waiting.values(), *self.holding.values()]
        if not self.waiting and len(self.holding) < self.max_hold:
            times.append(self.next_try)
        return min(times) if times else None

    def act(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for rid, give_up in sorted(self.waiting.items()):
            if now >= give_up:
                del self.waiting[rid]
                actions.append(("abandon", str(rid)))
                self.next_try = now + self.rng.uniform(*self.rest)
        for lid, at in sorted(self.holding.items()):
            if now >= at:
                del self.holding[lid]
                actions.append(("release", lid))
                self.next_try = max(self.next_try, now + self.rng.uniform(*self.rest))
        if self.enabled and self.holding and not self.waiting and self.rng.random() < self.reconnect_rate:
            actions.append(("reconnect",))
            return actions
        if self.enabled and not self.waiting and len(self.holding) < self.max_hold and now >= self.next_try:
            self.request_no += 1
            feature, version = self.rng.choice(self.features)
            self.waiting[self.request_no] = now + self.timeout
            if self.queue_rate and self.rng.random() < self.queue_rate:
                wait = f"{0.9 * self.timeout:.3f}"
                actions.append(("queue", feature, version, str(self.request_no), wait))
            elif self.max_seats > 1 or self.linger > 0:
                count = self.rng.randint(1, self.max_seats) if self.max_seats > 1 else 1
                actions.append(("checkout", feature, version, str(self.request_no), str(count), str(self.linger)))
            else:
                actions.append(("checkout", feature, version, str(self.request_no)))
        return actions

    def resume(self, lease_id: str, now: float) -> int:
        """After a reconnect: wait for ``lease_id`` to be resumed under a new request."""
        self.holding.pop(lease_id, None)
        self.request_no += 1
        self.waiting[self.request_no] = now + self.timeout
        return self.request_no

    def on_event(self, ev: Event, now: float) -> None:
        if ev.kind == "granted":
            rid = ev.get("request_id")
            if self.waiting.pop(rid, None) is not None or ev.get("lease_id") not in self.holding:
                self.holding[ev.get("lease_id")] = now + self.rng.uniform(*self.hold)
            if self.burst is not None and len(self.holding) < self.max_hold:
                self.next_try = now + self.rng.uniform(*self.burst)
        elif ev.kind == "denied":
            if self.waiting.pop(ev.get("request_id"), None) is not None:
                self.next_try = now + self.rng.uniform(*self.rest)
        elif ev.kind in ("lost", "released") and self.holding.pop(ev.get("lease_id"), None) is not None:
            self.next_try = max(self.next_try, now + self.rng.uniform(*self.rest))
