"""Heartbeat bytes against the leases a session holds (issue 12, "Scale").

    python -m actors.bench.heartbeat [--leases 1 10 100 1000]

One real ``ClientSessionCore`` per row holds N leases at a one-server pool
(a real ``ServerNode``, driven as ``actors.bench.persist`` drives it, durability off:
only the messages matter here).  The bench takes the session's heartbeats to
the server and the server's acks, and prints the bytes Thespian's TCP
transport would carry for each: the pickled ``(sender address, message)``
envelope, through the wire's own serializer (``actors.shell.wire.SERIALIZER``),
without the length prefix and the transport's ACK, as the servers' metric
``licpool_frame_bytes_received_total`` counts them.

* **first**: the first heartbeat after the grants, and its ack;
* **steady**: the fifth, when nothing has changed since.

It uses only what every version of the session and server has, so the same
file run against older code (``PYTHONPATH=<older tree>``) gives the "before".
It is a benchmark, not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from thespian.actors import ActorAddress
from thespian.system.transport.IPBase import TCPv4ActorAddress

from actors.bench.persist import Driver, NoSyncStorage, _one_server_pool, _serving
from actors.core.effects import ClientRef, Ready
from actors.core.session import ClientSessionCore
from actors.persist import DirStorage
from actors.protocol.client import CheckoutGranted, HeartbeatAck, SessionHeartbeat
from actors.shell import wire
from actors.shell.persistence import NodeStore

__all__ = ["main", "measure"]

SESSION_ADDRESS = ActorAddress(TCPv4ActorAddress("127.0.0.1", 47001, external=True))
SERVER_ADDRESS = ActorAddress(TCPv4ActorAddress("127.0.0.1", 47999, external=True))
STEADY = 5
"""The heartbeat taken as the steady one (the first is the full list)."""


def frame_bytes(sender: Any, msg: Any) -> int:
    """What Thespian's TCP transport sends for ``msg`` from ``sender``: ``dumps((sender, msg))``."""
    return len(wire.SERIALIZER.dumps((sender, msg)))


def _to_session(core: ClientSessionCore, ready: Ready, now: float) -> list[Any]:
    """Deliver the server's replies to the session; return them."""
    replies = [out.msg for out in ready.send if isinstance(out.to, ClientRef)]
    for msg in replies:
        core.receive("s1", msg, now)
    return replies


def measure(driver: Driver, count: int, h: float) -> list[tuple[int, int, int]]:
    """(heartbeat bytes, ack bytes, lease ids listed) of the first ``STEADY``
    heartbeats of a session holding ``count`` leases at the driver's server."""
    node = driver.node
    core = ClientSessionCore(f"app{count}", f"app{count}/1", ("s1",), node.settings.timing, prefer="s1")
    clock = 0.0
    for request_id in range(1, count + 1):
        driver.tick_if_due()
        ready = node.from_client(
            ClientRef(core.session_id), _only(core.checkout("cad", "2.0", request_id, clock)), time.monotonic()
        )
        driver.carry(ready, flush=True)
        replies = _to_session(core, ready, clock)
        if not any(isinstance(m, CheckoutGranted) for m in replies):
            raise RuntimeError(f"checkout {request_id} of {count} was not granted: {replies}")
    rows: list[tuple[int, int, int]] = []
    while len(rows) < STEADY:
        clock += h
        beats = [out.msg for out in core.tick(clock).send if isinstance(out.msg, SessionHeartbeat)]
        for hb in beats:
            driver.tick_if_due()
            ready = node.from_client(ClientRef(core.session_id), hb, time.monotonic())
            driver.carry(ready, flush=True)
            [ack] = [m for m in ready.send if isinstance(m.msg, HeartbeatAck)]
            rows.append((frame_bytes(SESSION_ADDRESS, hb), frame_bytes(SERVER_ADDRESS, ack.msg), len(hb.lease_ids)))
            _to_session(core, ready, clock)
    if len(core.held(clock)) != count:
        raise RuntimeError(f"the session holds {len(core.held(clock))} leases, not {count}")
    return rows


def _only(ready: Ready) -> Any:
    [out] = ready.send
    return out.msg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leases", type=int, nargs="+", default=[1, 10, 100, 1000])
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="hb-bench-"))
    try:
        cfg, code = _one_server_pool(root, sum(args.leases) + 10)
        store = NodeStore.over(NoSyncStorage(DirStorage(cfg.data_dir / "s1")))
        driver = _serving(cfg, store, code)
        h = driver.node.settings.timing.heartbeat_interval
        print("leases | first hb + ack (ids listed) | steady hb + ack (ids listed) | steady bytes/s, one session")
        base: tuple[int, int] | None = None
        for count in args.leases:
            rows = measure(driver, count, h)
            (fh, fa, fl), (sh, sa, sl) = rows[0], rows[STEADY - 1]
            print(f"{count:>6} | {fh:>7} + {fa:>7} ({fl}) | {sh:>7} + {sa:>7} ({sl}) | {(sh + sa) / h:,.0f}")
            if base is None:
                base = (count, sh + sa)
            elif count > base[0]:
                per = (sh + sa - base[1]) / (count - base[0])
                print(f"         steady bytes per lease id (both ways), against {base[0]} lease(s): {per:.2f}")
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
