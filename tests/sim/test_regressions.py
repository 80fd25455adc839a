"""Named seeds: schedules that once broke a rule stay here as regressions.

A seed names a schedule only for one version of the generator and workload
(faults.py, workload.py, runner.config_for); when those change, re-find the
schedule with ``python -m tests.sim.run`` and update the seed, or turn it into
a named scenario (tests/sim/scenarios), which never drifts.

Seeds marked xfail expose a known bug in the core; the reason says which.
Remove the mark when the bug is fixed (they run with ``strict=False`` so a
fix does not break the build in between).
"""

from __future__ import annotations

import pytest

from tests.sim.runner import run_seed

REGRESSIONS: list[tuple[int, str, str | None]] = [
    # (seed, what it once broke, xfail reason while the bug is open)
    (
        28,
        "simulator: an operator's `server down` retried after the server restarted killed live leases "
        "(now retried only while the server is down, and treated as a fault for S2)",
        None,
    ),
    (
        0,
        "S2: an app restarted and resumed its lease by id; the server answered the new session lost "
        "(fixed: leases are bound to their client, not one session)",
        None,
    ),
    (6, "S2: same as seed 0", None),
    (
        116,
        "S1: c3's resumed lease s2.1.7 handed over from s1, transfer aborted after s1 consented; "
        "s1 then granted its seat to c6 (fixed: a rolled-back handover gives the lease back)",
        None,
    ),
    (
        1454,
        "S2: c6's resume, stale in stalled s2's backlog, moved the lease that s3 had already resumed "
        "(fixed: a holder refuses a handover whose sequence number it has already served)",
        None,
    ),
    (
        67,
        "F1: the leader renewed the serving lease of a server it had just fenced "
        "(fixed: fenced servers get zero-length probe grants)",
        None,
    ),
    (
        165,
        "S2: a server fenced, rejoined and fenced again was reclaimed at once by a stale fence time "
        "(fixed: the reclaim clock restarts at every fence)",
        None,
    ),
    (705, "S2: a lease resumed from a new session was bound to the old one (same fix as seed 0)", None),
    (
        3,
        "L1: NO_SEATS answered before the borrower applied seats already on their way "
        "(fixed: an exhausted reply carries the leader's log index)",
        None,
    ),
    (
        22,
        "L1: a server fenced with a stale echo could never be renewed again "
        "(fixed: probe grants after a fence, Rejoin on a fresh echo)",
        None,
    ),
    (
        216,
        "S1 risk (S3 seen): an app released a lease and restarted; the new session's resume overtook the "
        "old session's release, which then released the resumed lease (fixed: only the lease's current "
        "session may release it)",
        None,
    ),
    (
        307,
        "S1: `server down` of a stopped server freed its majority-ruled seats while a client still held a "
        "lease from it (fixed: ServerDown frees only --no-majority seats; the rest follow the fence rules)",
        None,
    ),
    (
        4712,
        "S3: s3 released c1's lease while cut off, then was fenced, crashed and restarted; the leader "
        "booked s3's report as proposed but dropped it because s3's Rejoin had not committed yet, and never "
        "proposed it again (fixed: the incarnation is checked before the report is booked)",
        None,
    ),
    (6246, "S3: same as seed 4712, on s1", None),
    (
        4971,
        "L1: s5 learned a transfer it gives from a snapshot, never applied the intent, so never consented; "
        "the leader fenced it in the quiet tail and a checkout was denied NO_SEATS (fixed: a giver decides "
        "missing consents after a snapshot install and on every TransferRequest)",
        None,
    ),
    (
        7946,
        "simulator: an app released a lease, restarted from a stale file and resumed it; the resume beat "
        "the release, which then ended the lease, and S2 called it lost (fixed in the checker: a lease the "
        "app released itself is exempt from S2)",
        None,
    ),
    (
        8752,
        "S3: c6 released its lease at s2 while s2, cut off, was being fenced and the lease failed over to "
        "s1; the fail-over seat committed before s2's report of the release, which was then ignored, so the "
        "lease stayed at s1 held by nobody, and c6's restart resumed the released id from a stale file "
        "(fixed: a release kills the lease wherever the registry holds it for that client)",
        None,
    ),
    (
        3526,
        "L1: a seat released at the leader was not committed yet when a follower's borrow found no seat "
        "anywhere; the leader answered 'exhausted' as of its last index, the follower refused NO_SEATS once "
        "it applied it, and the leader's seat stood free (fixed: while a seat of the table is returning the "
        "answer is 'none yet', and the follower asks again)",
        None,
    ),
    (
        52,
        "S2: two fail-over updates in flight; the earlier seated c1's lease at s1, the later handed it on "
        "to s2, and s1 answered c1's heartbeat 'lost' (fixed: HeartbeatAck.moved, the session follows)",
        None,
    ),
]


@pytest.mark.parametrize(
    "seed, what",
    [
        pytest.param(seed, what, marks=pytest.mark.xfail(reason=why, strict=False)) if why else pytest.param(seed, what)
        for seed, what, why in REGRESSIONS
    ],
    ids=[f"seed{seed}" for seed, _, _ in REGRESSIONS],
)
def test_named_seed(seed: int, what: str) -> None:
    result = run_seed(seed)
    if result.violation is not None:
        pytest.fail(f"{what}\n{result.violation.report()}", pytrace=False)


SHELL_REGRESSIONS: list[tuple[int, str, str | None]] = [
    # Seeds of the shell model (``run_seed(seed, shell=True)``, ``python -m tests.sim.run --seed N --shell``).
    (
        126,
        "REGISTRY at 44.1 s: s1, back from a power loss, catches up by InstallSnapshot (index 183) and lacks "
        "c2's s1.1.2, which the registry places there (fixed: an install reconciles the lease table both "
        "ways, issue 11 defect 1)",
        None,
    ),
    (
        155,
        "REGISTRY at 40.3 s: s2, restarted in the quiet tail, installs a snapshot (index 300) and lacks c4's "
        "s5.1.4, which the registry places there (fixed: as seed 126)",
        None,
    ),
    (
        79,
        "simulator: a stale lease file's released id was judged by S3's reconnect rule (fixed in the checker: "
        "only leases the app held count as resumes)",
        None,
    ),
]
SHELL_KNOWN = {seed for seed, _, why in SHELL_REGRESSIONS if why}
"""Shell-model seeds that show an open core bug: the batch in test_sim.py leaves them out."""


@pytest.mark.parametrize(
    "seed, what",
    [
        pytest.param(seed, what, marks=pytest.mark.xfail(reason=why, strict=False)) if why else pytest.param(seed, what)
        for seed, what, why in SHELL_REGRESSIONS
    ],
    ids=[f"shell-seed{seed}" for seed, _, _ in SHELL_REGRESSIONS],
)
def test_named_shell_seed(seed: int, what: str) -> None:
    result = run_seed(seed, shell=True)
    if result.violation is not None:
        pytest.fail(f"{what}\n{result.violation.report()}", pytrace=False)


@pytest.mark.parametrize("seed", [11, 12])
def test_a_seed_replays_exactly(seed: int) -> None:
    first, second = run_seed(seed), run_seed(seed)
    assert (first.trace_hash, first.events, first.stats) == (second.trace_hash, second.events, second.stats)
    assert first.events > 1000


@pytest.mark.parametrize("seed", [11, 12])
def test_a_shell_seed_replays_exactly(seed: int) -> None:
    first, second = run_seed(seed, shell=True), run_seed(seed, shell=True)
    assert (first.trace_hash, first.events, first.stats) == (second.trace_hash, second.events, second.stats)
    assert first.events > 1000
    assert first.trace_hash != run_seed(seed).trace_hash
