"""Where each server of the pool lives now, and when to look it up again.

An ``AddressBook`` maps server names to Thespian actor addresses for one
LicenseServer (its peers) or one ClientSession (every server).  Addresses come
from two places (docs/discovery.md): the ``Resolver`` (a lookup through the
server's host admin) and the traffic itself (every ``PeerEnvelope`` carries its
sender's address).  Pure: no Thespian, no clock; ``now`` is passed in.

A name is *stale*, and is looked up again, when it has no address, or when it
has stayed silent for ``failure_timeout`` after something was sent to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AddressBook"]


@dataclass
class AddressBook:
    names: tuple[str, ...]
    failure_timeout: float
    addresses: dict[str, Any] = field(default_factory=dict)
    last_heard: dict[str, float] = field(default_factory=dict)
    unanswered_since: dict[str, float] = field(default_factory=dict)
    """name -> local time of the oldest send it has not answered since."""
    resolving: set[str] = field(default_factory=set)
    """Names the Resolver is currently looking up."""
    asked_at: dict[str, float] = field(default_factory=dict)

    def address(self, name: str) -> Any | None:
        return self.addresses.get(name)

    def name_of(self, address: Any) -> str | None:
        for name, known in self.addresses.items():
            if known == address:
                return name
        return None

    def learn(self, name: str, address: Any, now: float, *, resolved: bool = False) -> bool:
        """Record ``name``'s address; True when it is new or changed."""
        if name not in self.names:
            return False
        if resolved:
            self.resolving.discard(name)
        changed = bool(self.addresses.get(name) != address)
        self.addresses[name] = address
        if changed:
            self.unanswered_since.pop(name, None)
        return changed

    def heard(self, name: str, now: float) -> None:
        self.last_heard[name] = now
        self.unanswered_since.pop(name, None)
        self.resolving.discard(name)

    def sent(self, name: str, now: float) -> None:
        self.unanswered_since.setdefault(name, now)

    def silent(self, name: str, now: float) -> bool:
        since = self.unanswered_since.get(name)
        return since is not None and now - since >= self.failure_timeout

    def stale(self, now: float) -> tuple[str, ...]:
        """Names to hand to the Resolver now (at most once per failure_timeout each)."""
        out = []
        for name in self.names:
            if name in self.resolving:
                continue
            if name in self.addresses and not self.silent(name, now):
                continue
            if now - self.asked_at.get(name, float("-inf")) < self.failure_timeout:
                continue
            self.asked_at[name] = now
            self.resolving.add(name)
            out.append(name)
        return tuple(out)

    def up(self, name: str, now: float) -> bool:
        """Heard from within ``failure_timeout``."""
        return now - self.last_heard.get(name, float("-inf")) < self.failure_timeout
