"""A licpool client app in its own process, driven line by line over stdin.

Tests that need the client somewhere else than the pytest process (in another
network namespace, or as an app that is SIGKILLed and restarted) run::

    python tests/integration/clientapp.py CONFIG CLIENT_ID [PREFER] [TOKEN]

It holds one ``LicenseClient`` (and, once asked for status or an admin change,
one ``PoolLink``), prints ``{"ready": true, "pid": ...}`` and then answers each
JSON command on stdin with one JSON line on stdout:

=========================================  ================================================
``{"op": "checkout", "feature", "version",  ``{"ok": true, "lease_id", "server", "deadline"}``
``"timeout", "lease_id"}``                  or ``{"ok": false, "reason", "detail"}``
``{"op": "release", "lease_id"}``           ``{"ok": true}``
``{"op": "state"}``                         ``{"ok": true, "now", "auths": [{lease_id, server,``
                                            ``lost, released, deadline, failovers}]}``
``{"op": "status", "name"}``                the ``status --json`` document plus ``role``,
                                            ``applied``, ``serving``; or ``{"ok": false}``
``{"op": "add_license", "code"}``           ``{"ok": ..., "index", "error"}``
``{"op": "quit"}``                          closes everything and exits 0
=========================================  ================================================

``deadline`` and ``now`` are this process's monotonic clock.  TOKEN only marks
the command line, so that a test can find every process of this app (Thespian's
forks keep the command line) and kill it whatever happens.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    from actors.client import LicenseClient, LicenseDenied
    from actors.protocol import pool
    from actors.shell.config import load_config
    from actors.shell.remote import PoolLink, status_json

    config, client_id = argv[0], argv[1]
    prefer = argv[2] if len(argv) > 2 and argv[2] != "-" else None
    client = LicenseClient.from_config(config, client_id=client_id, prefer=prefer)
    auths: dict[str, Any] = {}
    link: PoolLink | None = None

    def reply(doc: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "pid": os.getpid()})
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                break
            if op == "checkout":
                try:
                    auth = client.checkout(
                        cmd["feature"], cmd["version"], timeout=cmd.get("timeout", 10.0), lease_id=cmd.get("lease_id")
                    )
                except LicenseDenied as exc:
                    reply({"ok": False, "reason": exc.reason.value, "detail": exc.detail})
                    continue
                auths[auth.lease_id] = auth
                reply({"ok": True, "lease_id": auth.lease_id, "server": auth.server, "deadline": auth.deadline})
            elif op == "release":
                auths[cmd["lease_id"]].release()
                reply({"ok": True})
            elif op == "state":
                reply(
                    {
                        "ok": True,
                        "now": time.monotonic(),
                        "auths": [
                            {
                                "lease_id": x.lease_id,
                                "server": x.server,
                                "lost": x.lost.is_set(),
                                "released": x.released,
                                "deadline": x.deadline,
                                "failovers": x.failovers,
                                "lost_reason": x.lost_reason,
                            }
                            for x in auths.values()
                        ],
                    }
                )
            elif op in ("status", "add_license"):
                if link is None:
                    link = PoolLink(load_config(config), timeout=1.0)
                if op == "status":
                    name = cmd.get("name")
                    status = link.status() if name is None else link.status_of(name)
                    if status is None:
                        reply({"ok": False})
                    else:
                        reply(
                            {
                                "ok": True,
                                **status_json(status),
                                "role": status.role,
                                "applied": status.applied,
                                "serving": status.serving,
                            }
                        )
                else:
                    answer = link.admin(
                        lambda rid, code=cmd["code"]: pool.AddLicenseCode(
                            sender="test", epoch=0, request_id=rid, code=code
                        )
                    )
                    reply({"ok": answer.ok, "index": answer.index, "error": answer.error})
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
    finally:
        try:
            client.close()
        finally:
            if link is not None:
                link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
