"""The chaos run's observer: polls the pool's status and carries out admin changes.

    python3 -m tests.chaos.monitor --config F --log PATH [--token T]

Runs in a namespace of its own (never cut), with one ``PoolLink``.  Every
``--period`` seconds it writes the pool's status (the ``licpool status
--json`` document of the leader, when one answers, plus ``role``,
``serving`` and ``applied``) as a JSON line ``{"ts", "event": "status", ...}``
to PATH; a poll nobody answered is ``{"event": "status", "ok": false}``.
Commands come as JSON lines on stdin, between polls:

``{"op": "add_license", "code": C}``   logs ``{"event": "admin", "ok", "index", "error"}``
``{"op": "quit"}``                     closes the link and exits 0
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time
from typing import Any


def _load_config(path: str) -> Any:
    from actors.shell.config import load_config

    return load_config(path)


def main(argv: list[str]) -> int:
    from actors.protocol import pool as pool_msgs
    from actors.shell.remote import PoolLink, status_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--token", default="")
    args = parser.parse_args(argv)
    out = open(args.log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - kept for the process's life

    def log(event: str, **fields: Any) -> None:
        out.write(json.dumps({"ts": time.time(), "event": event, **fields}) + "\n")
        out.flush()

    link = PoolLink(_load_config(args.config), timeout=1.0)
    log("start")
    try:
        while True:
            began = time.time()
            status = link.status()
            if status is None:
                log("status", ok=False, asked=began)
            else:
                log(
                    "status",
                    ok=True,
                    asked=began,
                    **status_json(status),
                    role=status.role,
                    serving=status.serving,
                    applied=status.applied,
                )
            wait = max(0.0, args.period - (time.time() - began))
            ready, _, _ = select.select([sys.stdin], [], [], wait)
            if not ready:
                continue
            line = sys.stdin.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            if cmd["op"] == "add_license":
                answer = link.admin(
                    lambda rid, code=cmd["code"]: pool_msgs.AddLicenseCode(
                        sender="chaos", epoch=0, request_id=rid, code=code
                    )
                )
                log("admin", ok=answer.ok, index=answer.index, error=answer.error)
    finally:
        link.close()
        log("stopped")
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
