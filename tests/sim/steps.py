"""Carrying out scenario steps in the simulated world (format: ``scenario``).

Each action changes the world and records what it did in the fault history
(for the liveness checks) and the trace; each expectation is checked on the
spot and raises ``InvariantViolation("EXPECT", ...)`` when it fails.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tests import factories
from tests.sim.checks import InvariantViolation
from tests.sim.hosts import ADMIN
from tests.sim.scenario import Step

if TYPE_CHECKING:
    from tests.sim.world import World

__all__ = ["run_step", "resolve"]


def resolve(w: World, name: Any) -> Any:
    """``$leader``, ``$follower``, ``$down``, ``$holder:C`` -> a server name (None
    if there is none); ``$rest`` -> every other server than the leader, spliced
    into the list it appears in."""
    if isinstance(name, list):
        out: list[Any] = []
        for x in (resolve(w, n) for n in name):
            out.extend(x if isinstance(x, list) else [] if x is None else [x])
        return out
    if not isinstance(name, str) or not name.startswith("$"):
        return name
    leader = w.leader()
    if name == "$leader":
        return leader
    if name == "$follower":
        return next((n for n, h in w.servers.items() if h.up and n != leader), None)
    if name == "$down":
        return next((n for n, h in w.servers.items() if not h.up), None)
    if name == "$rest":
        return [n for n in w.servers if n != leader]
    if name.startswith("$holder:"):
        client = w.clients[name.split(":", 1)[1]]
        held = client.core.held(client.clock.local(w.now))
        first = min(held.values(), key=lambda x: (x.granted_at, x.lease_id), default=None)
        return first.server if first else None
    raise ValueError(f"unknown name {name}")


def run_step(w: World, step: Step) -> None:
    kind, what, args = step[0], step[2], [resolve(w, a) for a in step[3:]]
    if any(a is None for a in args if not isinstance(a, list)) and what not in ("license",):
        w.log("step", f"SKIPPED {step!r}: a name did not resolve")
        return
    w.log("step", f"{kind} {what} {args}")
    if kind == "expect":
        _expect(w, what, args, step)
    else:
        ACTIONS[what](w, *args)


def _kill(w: World, name: str) -> None:
    host = w.servers[name]
    if w.shell is not None:
        w.shell_kill(host)
        return
    if host.up:
        host.crash(w.now)
        w.history.open("down", {name}, w.now)
        w.topology_changed()


def _restart(w: World, name: str) -> None:
    if not w.servers[name].up:
        w.history.close("down", w.now, name)
        w._on_boot(name)


def _wipe(w: World, name: str) -> None:
    """The stopped server's disk is replaced by an empty one (docs/deployment.md
    section 6); its next ``restart`` boots on it."""
    host = w.servers[name]
    if host.up and w.shell is not None and host.kill_armed:
        # The shell model's kill may wait for a step with records (it is armed);
        # an operator replaces the disk of a stopped host, so the kill lands first.
        w._on_shell_kill(name, host.gen)
    if host.up:
        raise ValueError(f"wipe {name}: only a stopped server")
    old = host.storage
    host.storage = type(old)(old.rng, torn_writes=old.torn_writes, zero_fill=old.zero_fill)
    w.log(name, "WIPE the disk is replaced by an empty one")


def _stall(w: World, name: str, duration: float) -> None:
    host = w.servers[name]
    if host.up and not host.stalled:
        host.stalled_until = w.now + duration
        w.history.open("stall", {name}, w.now, math.inf)
        w.push(w.now + duration, "resume", name, host.gen)
        w.topology_changed()


def _crash_on(w: World, point: str) -> None:
    if point not in ("leader", "commit", "adopt"):
        raise ValueError(f"crash_on takes leader, commit or adopt, not {point!r}")
    w.crash_armed[point] = max((h.node.epoch for h in w.servers.values() if h.node is not None), default=0)


def _partition(w: World, side_a: list[str], side_b: list[str]) -> None:
    side_b = [n for n in side_b if n not in side_a]
    w.net.partition(side_a, side_b)
    w.history.open("cut", set(side_a) | set(side_b), w.now)
    w.topology_changed()


def _oneway(w: World, srcs: list[str], dsts: list[str]) -> None:
    dsts = [n for n in dsts if n not in srcs]
    w.net.oneway(srcs, dsts)
    w.history.open("cut", set(srcs) | set(dsts), w.now)
    w.topology_changed()


def _heal(w: World) -> None:
    w.net.heal()
    w.history.close("cut", w.now)
    if w.net.params.drop_rate <= w.base_loss:
        w.history.close("lossy", w.now)
    w.topology_changed()


def _lossy(w: World, rate: float) -> None:
    w.net.params.drop_rate = rate
    w.history.close("lossy", w.now)
    if rate > w.base_loss:
        w.history.open("lossy", set(), w.now)
    w.topology_changed()


def _clock(w: World, name: str, rate: float) -> None:
    rho = w.timing.clock_drift
    host = w.servers.get(name) or w.clients[name]
    host.clock.set_rate(w.now, min(1 + rho, max(1 - rho, rate)))
    host.wake_real = None
    host.wake_gen += 1
    w.push(w.now, "wake", name, host.wake_gen)  # timers were set on the old rate


def _checkout(w: World, client_name: str, feature: str, version: str) -> None:
    client = w.clients[client_name]
    if client.alive:
        w.apps[client_name].request_no += 1
        w.client_action(client, ("checkout", feature, version, str(w.apps[client_name].request_no)))


def _queue(w: World, client_name: str, feature: str, version: str, timeout: float) -> None:
    client = w.clients[client_name]
    if client.alive:
        w.apps[client_name].request_no += 1
        rid = str(w.apps[client_name].request_no)
        w.client_action(client, ("queue", feature, version, rid, str(timeout)))


def _checkout_n(w: World, client_name: str, feature: str, version: str, count: int) -> None:
    client = w.clients[client_name]
    if client.alive:
        w.apps[client_name].request_no += 1
        rid = str(w.apps[client_name].request_no)
        w.client_action(client, ("checkout", feature, version, rid, str(count)))


def _release(w: World, client_name: str, feature: str, version: str) -> None:
    client = w.clients[client_name]
    if client.proxy is not None:
        # The shell model: the app releases what its LicenseClient gave it (a
        # direct grant before its session adopted it too).
        mine = sorted(lid for lid, x in client.proxy.held().items() if (x.feature, x.version) == (feature, version))
    else:
        held = client.core.held(client.clock.local(w.now))
        mine = sorted(lid for lid, x in held.items() if (x.feature, x.version) == (feature, version))
    if client.alive and mine:
        w.client_action(client, ("release", mine[0]))


def _crash_client(w: World, client_name: str) -> None:
    client = w.clients[client_name]
    if client.alive:
        client.alive, client.crashed_at = False, w.now
        w._touched_clients.add(client_name)
        if w.checker is not None:
            w.checker.s3.client_crashed(client)
            for ident in [k for k in w.checker.l1.open if k[0] == client_name]:
                del w.checker.l1.open[ident]


def _reconnect(w: World, client_name: str) -> None:
    client = w.clients[client_name]
    if client.alive:
        w.reconnect(client)


def _license(w: World, feature: str, version: str, count: int, serial: str, dist: str | None) -> None:
    from actors.protocol.pool import AddLicenseCode

    code = factories.license_code(count=count, feature=feature, version=version, serial=serial, distribution=dist)
    w.admin_submit(lambda rid: AddLicenseCode(sender=ADMIN, epoch=0, request_id=rid, code=code))


def _addon(w: World, of_serial: str, count: int, serial: str) -> None:
    from actors.protocol.pool import AddAllocations

    code = factories.addon_code(of_serial=of_serial, count=count, serial=serial)
    w.admin_submit(lambda rid: AddAllocations(sender=ADMIN, epoch=0, request_id=rid, addon=code))


def _criteria(w: World, feature: str, version: str, spec: str) -> None:
    from actors.protocol.pool import ChangeDistributionCriteria

    w.admin_submit(
        lambda rid: ChangeDistributionCriteria(
            sender=ADMIN, epoch=0, request_id=rid, feature=feature, version=version, criteria=spec
        )
    )


def _force_release(w: World, client_name: str) -> None:
    from actors.protocol.pool import ForceReleaseLease

    client = w.clients[client_name]
    held = sorted(client.core.held(client.clock.local(w.now)))
    if held:
        w.forced.add(held[0])
        w.admin_submit(lambda rid: ForceReleaseLease(sender=ADMIN, epoch=0, request_id=rid, lease_id=held[0]))


def _idle_timeout(w: World, feature: str, version: str, seconds: float) -> None:
    from actors.protocol.pool import SetIdleTimeout

    w.admin_submit(
        lambda rid: SetIdleTimeout(
            sender=ADMIN, epoch=0, request_id=rid, feature=feature, version=version, idle_timeout=float(seconds)
        )
    )


def _idle(w: World, client_name: str) -> None:
    """The app marks its first lease idle (``auth.idle()``)."""
    client = w.clients[client_name]
    held = sorted(client.core.held(client.clock.local(w.now)))
    if held:
        w.idled.add(held[0])
        client.core.set_idle(held[0], True)


def _server_down(w: World, name: str) -> None:
    from actors.protocol.pool import DeclareServerDown

    if not w.servers[name].up:
        # The assertion may still commit a while after the operator stops
        # sending it (a copy in flight, a forward): its fault lasts that long.
        fault = w.history.open("server_down", {name}, w.now)

        def done() -> None:
            fault.end = w.now + w.bounds.fence

        w.admin_submit(
            lambda rid: DeclareServerDown(sender=ADMIN, epoch=0, request_id=rid, server=name),
            valid=lambda: not w.servers[name].up,
            done=done,
        )


def _quiet(w: World) -> None:
    w.quiet_at = w.now
    w.net.heal()
    w.net.params.drop_rate = 0.0
    w.net.params.long_rate = 0.0
    for name, host in w.servers.items():
        if host.kill_armed:
            w.shell_kill(host, armed_ok=False)
        if host.stalled:
            host.stalled_until = w.now
            w.push(w.now, "resume", name, host.gen)
        if not host.up:
            w._on_boot(name)
    for rid, request in list(w.admin_pending.items()):
        if type(request.msg).__name__ == "DeclareServerDown":
            w.admin_finished(rid)  # the operator stops asserting it
    for fault in w.history.faults:
        if fault.kind != "server_down":
            fault.end = min(fault.end, w.now)
    w.topology_changed()


ACTIONS: dict[str, Any] = {
    "kill": _kill,
    "restart": _restart,
    "stall": _stall,
    "partition": _partition,
    "oneway": _oneway,
    "heal": _heal,
    "lossy": _lossy,
    "clock": _clock,
    "checkout": _checkout,
    "queue": _queue,
    "checkout_n": _checkout_n,
    "release": _release,
    "crash_client": _crash_client,
    "reconnect": _reconnect,
    "license": _license,
    "addon": _addon,
    "criteria": _criteria,
    "force_release": _force_release,
    "idle_timeout": _idle_timeout,
    "idle": _idle,
    "server_down": _server_down,
    "quiet": _quiet,
    "crash_on": _crash_on,
    "wipe": _wipe,
}


def _expect(w: World, what: str, args: list[Any], step: Step) -> None:
    ok = True
    detail = ""
    if what in ("held", "held_at_least"):
        client = w.clients[args[0]]
        n = len(client.core.held(client.clock.local(w.now))) if client.alive else 0
        ok = n == args[1] if what == "held" else n >= args[1]
        detail = f"{args[0]} holds {n}"
    elif what == "seats":
        client = w.clients[args[0]]
        held = client.core.held(client.clock.local(w.now)) if client.alive else {}
        n = sum(x.seats for x in held.values())
        ok, detail = n == args[1], f"{args[0]} holds {n} seats in {len(held)} leases"
    elif what == "lost":
        n = len(w.clients[args[0]].lost)
        ok, detail = n == args[1], f"{args[0]} lost {n}: {w.clients[args[0]].lost}"
    elif what == "granted":
        n = w.clients[args[0]].grants
        ok, detail = n == args[1], f"{args[0]} was granted {n} times"
    elif what == "leader":
        ok, detail = w.leader() is not None, "no leader"
    elif what == "all_live":
        leader = w.leader()
        status = {n: st.status for n, st in w.servers[leader].node.pool.servers.items()} if leader else {}
        ok, detail = bool(status) and set(status.values()) == {"live"}, f"leader {leader} shows {status}"
    elif what == "stat_at_most":
        n = w.checker.stats.get(args[0], 0) if w.checker is not None else 0
        ok, detail = n <= args[1], f"{args[0]} is {n}"
    elif what == "queue_order":
        wanted = [c for c in args[0].split(",") if c]
        order = [name for _, name in sorted(w.queue_grants)]
        ok, detail = order == wanted, f"queued checkouts granted in the order {order}"
    elif what == "queued":
        leader = w.leader()
        n = len(w.servers[leader].node.pool.queue((args[0], args[1]))) if leader else -1
        ok, detail = n == args[2], f"the leader's queue holds {n}"
    elif what == "leader_not":
        ok, detail = w.leader() != args[0], f"{args[0]} leads"
    if not ok:
        raise InvariantViolation("EXPECT", f"{step!r} failed: {detail}")
