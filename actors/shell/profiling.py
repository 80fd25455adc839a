"""An opt-in cProfile hook for a running server process (for measuring only).

``LICPOOL_PROFILE=<dir>`` in a server's environment turns it on: the
``LicenseServer`` starts a ``cProfile.Profile`` when it starts (the actor's
process is single-threaded, so Thespian's transport loop, the allowlisted
unpickling, the core and the disk writes are all in it).  Whenever a file
``<dir>/<name>.dump`` exists at a housekeeping pass (at least every
``heartbeat_interval``), the cumulative stats so far are written to
``<dir>/<name>.prof`` and the request file is removed; ``actors.bench.profile``
takes two dumps around a measured phase and subtracts them.  Without the
variable nothing here runs.  ``LICPOOL_PROFILE_CLOCK=cpu`` times with the
process's CPU clock instead of the wall clock (a loaded machine then shows
no descheduled time, but an fsync shows only its CPU part).
"""

from __future__ import annotations

import cProfile
import os
import time
from pathlib import Path

__all__ = ["ServerProfile", "from_environment"]

ENV = "LICPOOL_PROFILE"
CLOCK_ENV = "LICPOOL_PROFILE_CLOCK"


class ServerProfile:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        cpu = os.environ.get(CLOCK_ENV, "wall") == "cpu"
        self.profile = cProfile.Profile(time.process_time) if cpu else cProfile.Profile()
        directory.mkdir(parents=True, exist_ok=True)
        self.profile.enable()

    def maybe_dump(self) -> None:
        request = self.directory / f"{self.name}.dump"
        if not request.exists():
            return
        self.profile.disable()
        try:
            target = self.directory / f"{self.name}.prof"
            partial = target.with_suffix(".prof.tmp")
            self.profile.dump_stats(str(partial))
            os.replace(partial, target)
            request.unlink(missing_ok=True)
        finally:
            self.profile.enable()


def from_environment(name: str) -> ServerProfile | None:
    where = os.environ.get(ENV, "")
    return ServerProfile(Path(where), name) if where else None
