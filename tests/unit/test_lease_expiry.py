"""``LocalLeases`` finds its next expiry from a lazy heap instead of a scan of
every lease; it must agree with the scan after any sequence of changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.leases import LocalLease, LocalLeases

IDS = [f"s1.1.{i}.a.b" for i in range(1, 7)]

op = st.one_of(
    st.tuples(st.just("grant"), st.sampled_from(IDS), st.floats(1, 50)),
    st.tuples(st.just("renew"), st.sampled_from(IDS), st.floats(1, 80)),
    st.tuples(st.just("release"), st.sampled_from(IDS), st.just(0.0)),
    st.tuples(st.just("drop"), st.sampled_from(IDS), st.just(0.0)),
    st.tuples(st.just("adopt"), st.sampled_from(IDS), st.floats(1, 50)),
    st.tuples(st.just("expire"), st.just(""), st.floats(0, 80)),
    st.tuples(st.just("restart"), st.just(""), st.floats(0, 40)),
)


def _scan(table: LocalLeases) -> float | None:
    return min((x.expires_at for x in table.leases.values()), default=None)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_next_expiry_and_expire_agree_with_a_full_scan(ops: list[tuple[str, str, float]]) -> None:
    table = LocalLeases("s1")
    for kind, lease_id, at in ops:
        held = lease_id in table.leases
        if kind in ("grant", "adopt") and not held:
            getattr(table, kind)(LocalLease(lease_id, "c1", "c1/1", "cad", "2.0", expires_at=at))
        elif kind == "renew":
            table.renew("c1", "c1/1", (lease_id,), at)
        elif kind == "release":
            table.release(lease_id, "c1")
        elif kind == "drop":
            table.drop(lease_id)
        elif kind == "expire":
            due = {lid for lid, x in table.leases.items() if x.expires_at <= at}
            assert {x.lease_id for x in table.expire(at)} == due
            assert all(x.expires_at > at for x in table.leases.values())
        elif kind == "restart":
            table.restart(at, 30.0)
        assert table.next_expiry() == _scan(table)
