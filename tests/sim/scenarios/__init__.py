"""Named scenarios: plain data in the ``scenario`` step format.

Each module defines ``SCENARIO``; ``SCENARIOS`` maps names to them.  The
simulator runs them in ``test_scenarios.py``; a real-Thespian harness can
replay the same steps (``dump_json`` gives the portable form).
"""

from __future__ import annotations

from tests.sim.scenario import Scenario
from tests.sim.scenarios import (
    abandon_race,
    borrow_meets_return,
    client_server_kill,
    criteria_under_load,
    direct_release_race,
    disk_lost,
    force_release_held,
    idle_timeout,
    late_direct_ask,
    leader_kill,
    leader_kill_quiet,
    linger_under_load,
    mass_release,
    multi_seat,
    multi_seat_under_load,
    oneway_partition,
    pool_restart,
    pool_restart_under_load,
    queue_app_kill,
    queue_elsewhere,
    queue_leader_kill,
    queue_server_kill,
    reconnect,
    release_at_old_holder,
    release_races_failover,
    release_while_down,
    restart_after_move,
    stall,
    versions_under_load,
)

__all__ = ["SCENARIOS"]

SCENARIOS: dict[str, Scenario] = {
    m.SCENARIO.name: m.SCENARIO
    for m in (
        leader_kill,
        client_server_kill,
        oneway_partition,
        stall,
        pool_restart,
        criteria_under_load,
        reconnect,
        versions_under_load,
        pool_restart_under_load,
        abandon_race,
        leader_kill_quiet,
        release_while_down,
        disk_lost,
        restart_after_move,
        queue_leader_kill,
        queue_server_kill,
        queue_app_kill,
        queue_elsewhere,
        multi_seat,
        multi_seat_under_load,
        linger_under_load,
        idle_timeout,
        release_races_failover,
        force_release_held,
        mass_release,
        direct_release_race,
        borrow_meets_return,
        release_at_old_holder,
        late_direct_ask,
    )
}
