"""``licpool demo``, run as a new user runs it: the README's first command.

It must exit 0, keep every client lease through the leader's SIGKILL, move
no lease off a server that stayed up (leadership.md M14), and leave no
process behind (the demo checks its own ports; the autouse fixture checks
for forked copies of this process, and the token in the environment finds
anything the demo's own processes left).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from tests.integration.procs import EXIT_DEADLINE_S, all_procs, kill_all


def test_the_demo_keeps_every_lease_and_moves_none_off_a_live_server() -> None:
    token = f"LICPOOL_DEMO_TEST={os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "LICPOOL_DEMO_TEST": token.split("=", 1)[1]}
    done = subprocess.run(
        [sys.executable, "-m", "actors", "demo"], capture_output=True, text=True, timeout=240, env=env
    )
    out = done.stdout
    assert done.returncode == 0, f"demo exited {done.returncode}\n{out}\n{done.stderr[-2000:]}"
    kept = re.search(r"(\d+) of (\d+) client leases kept through the crash", out)
    assert kept is not None and kept.group(1) == kept.group(2) and int(kept.group(2)) >= 4, out
    moved = re.search(r"leases moved off servers that stayed up: (\d+)", out)
    assert moved is not None and moved.group(1) == "0", out
    assert "LOST" not in out, out
    assert re.search(r"ws9/viewer: no seat free, waits in the queue \(#1, at s\d\)", out), out
    assert re.search(r"ws9/viewer: queued checkout granted at s\d", out), out
    assert "every process stopped, every port free" in out, out

    def leftovers() -> set[int]:
        found = set()
        for proc in all_procs():
            try:
                with open(f"/proc/{proc.pid}/environ", "rb") as f:
                    if token.encode() in f.read():
                        found.add(proc.pid)
            except OSError:
                continue
        return found

    deadline = time.monotonic() + EXIT_DEADLINE_S
    while (left := leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        kill_all(left)
        raise AssertionError(f"the demo left processes behind (killed now): {sorted(left)}")
