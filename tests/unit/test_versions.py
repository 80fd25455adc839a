"""Version ranges (issue 14 item 2): which licensed versions serve a request,
which one it takes, and the codes, tables and servers that carry the rule.

The rule itself is ``actors.core.versions`` (pure); the node tests drive real
``ServerNode`` cores on the perfect network of test_node_smoke.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.core import codes
from actors.core.session import ClientSessionCore
from actors.core.timing import Timing
from actors.core.versions import Offer, choose, parse_version, serves, serving, version_order
from actors.protocol import client as client_msgs
from actors.protocol import entries
from actors.protocol import pool as pool_msgs
from tests.factories import Pool, license_code, vendor_key, verify
from tests.unit.test_node_smoke import Net

# -- the comparison -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("2.9", "2.10"),
        ("2.0", "2.5"),
        ("2", "2.0.1"),
        ("1.99", "2"),
        ("2.0", "10.0"),
        ("0.9", "1"),
    ],
)
def test_versions_compare_as_dotted_numbers_not_strings(low: str, high: str) -> None:
    assert version_order(low) < version_order(high)
    assert serves(high, False, low) and not serves(low, False, high)


@pytest.mark.parametrize(("a", "b"), [("2", "2.0"), ("2.0", "2.0.0"), ("2.01", "2.1"), ("0", "0.0")])
def test_missing_components_are_zero_and_leading_zeros_do_not_count(a: str, b: str) -> None:
    assert parse_version(a) == parse_version(b)
    assert serves(a, False, b) and serves(b, False, a)
    assert serves(a, True, b) and serves(b, True, a)  # exact means equal as versions


@pytest.mark.parametrize("text", ["2.0b", "v3", "2024a", "2..0", ".2", "2.", "", "x" * 10, "1" * 65])
def test_non_numeric_versions_match_their_exact_text_only(text: str) -> None:
    assert parse_version(text) is None
    assert serves(text, False, text) and serves(text, True, text)
    for other in ("0", "1.0", "99", text + "1", "2.0"):
        if other != text:
            assert not serves(text, False, other) and not serves(other, False, text)


def test_exact_codes_serve_their_own_version_only() -> None:
    assert serves("3.0", True, "3") and not serves("3.0", True, "2.0")
    assert serves("3.0", False, "2.0")


def test_a_request_goes_to_the_lowest_serving_version_with_a_seat_here() -> None:
    offers = [Offer("3.0", spare=5), Offer("2.0", spare=1), Offer("1.0", spare=9), Offer("2.5", exact=True, spare=9)]
    assert choose("2.0", offers) == Offer("2.0", spare=1)
    assert serving("2.0", [(o.version, o.exact) for o in offers]) == ["2.0", "3.0"]


def test_the_lowest_version_is_borrowed_for_before_a_higher_one_is_taken() -> None:
    # 2.0 has no seat here but is not known to be exhausted: borrow for it, even
    # though 3.0 has a seat here.
    assert choose("2.0", [Offer("2.0"), Offer("3.0", spare=4)]) == Offer("2.0")
    # Once the pool has no 2.0 seat anywhere, 3.0 serves.
    assert choose("2.0", [Offer("2.0", exhausted=True), Offer("3.0", spare=4)]) == Offer("3.0", spare=4)
    assert choose("2.0", [Offer("2.0", exhausted=True), Offer("3.0", exhausted=True)]) is None
    assert choose("2.0", [Offer("1.0", spare=3), Offer("3.0", exact=True, spare=3)]) is None


offers_strategy = st.lists(
    st.builds(
        Offer,
        st.sampled_from(["1", "1.5", "2", "2.0", "2.9", "2.10", "3", "10.0", "2.0b", "v3"]),
        st.booleans(),
        st.integers(0, 3),
        st.booleans(),
    ),
    max_size=8,
)


@given(st.sampled_from(["0", "1.0", "2", "2.9", "2.10", "3.0", "2.0b", "11"]), offers_strategy)
def test_choice_properties(requested: str, offers: list[Offer]) -> None:
    chosen = choose(requested, offers)
    candidates = [o for o in offers if serves(o.version, o.exact, requested)]
    if chosen is None:
        # Nothing serves it, or every serving table is out of seats everywhere.
        assert all(o.spare == 0 and o.exhausted for o in candidates)
        return
    assert chosen in candidates, "the chosen version always serves the request"
    assert chosen.spare > 0 or not chosen.exhausted
    for o in candidates:
        if version_order(o.version) < version_order(chosen.version):
            # never a higher version while a lower one has a seat here or may get one
            assert o.spare == 0 and o.exhausted
    # the input order does not matter
    again = choose(requested, list(reversed(offers)))
    assert again is not None and version_order(again.version) == version_order(chosen.version)


@given(st.text(max_size=70), st.text(max_size=70), st.booleans())
def test_serves_never_raises_and_equal_text_always_serves(a: str, b: str, exact: bool) -> None:
    assert serves(a, exact, a)
    assert serves(a, exact, b) in (True, False)


@given(st.lists(st.integers(0, 30), min_size=1, max_size=4), st.lists(st.integers(0, 30), min_size=1, max_size=4))
def test_numeric_order_is_componentwise_with_zero_padding(a: list[int], b: list[int]) -> None:
    va, vb = ".".join(map(str, a)), ".".join(map(str, b))
    width = max(len(a), len(b))
    pa, pb = a + [0] * (width - len(a)), b + [0] * (width - len(b))
    assert serves(va, False, vb) == (pa >= pb)
    assert serves(va, True, vb) == (pa == pb)


# -- codes ----------------------------------------------------------------------------


def _payload(code: str) -> dict[str, object]:
    import base64

    part = code.split(".")[1]
    result: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def test_range_codes_are_signed_without_the_field_and_read_as_range() -> None:
    code = license_code(version="2.5")
    assert "version_match" not in _payload(code)  # an older licpool reads it unchanged
    decoded = verify(code)
    assert isinstance(decoded, codes.LicenseCode)
    assert not decoded.exact_version and decoded.version_match == "range"


def test_a_code_signed_before_the_field_existed_still_verifies_as_range() -> None:
    # The exact bytes an older licpool signed: the eight fields, nothing else.
    payload = {
        "count": 3,
        "distribution": None,
        "expires": "2099-12-31",
        "feature": "cad",
        "kind": "license",
        "majority": True,
        "serial": "OLD-1",
        "version": "2.0",
    }
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    import base64

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    text = f"LP1.{b64(data)}.{b64(vendor_key().sign(data))}"
    decoded = verify(text)
    assert isinstance(decoded, codes.LicenseCode) and not decoded.exact_version


def test_exact_codes_sign_the_field_and_round_trip() -> None:
    code = license_code(version="3.0", version_match="exact")
    assert _payload(code)["version_match"] == "exact"
    decoded = verify(code)
    assert isinstance(decoded, codes.LicenseCode) and decoded.exact_version and decoded.version_match == "exact"


def test_a_bad_version_match_is_refused_when_signing_and_verifying() -> None:
    with pytest.raises(codes.CodeError) as info:
        license_code(version_match="above")
    assert info.value.reason is codes.CodeProblem.BAD_FIELD
    payload = {**_payload(license_code()), "version_match": "fuzzy"}
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    import base64

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    with pytest.raises(codes.CodeError) as info:
        verify(f"LP1.{b64(data)}.{b64(vendor_key().sign(data))}")
    assert info.value.reason is codes.CodeProblem.BAD_FIELD


# -- tables -----------------------------------------------------------------------------


def test_tables_stay_keyed_by_feature_and_version_and_carry_the_mode() -> None:
    pool = Pool()
    assert pool.apply(
        entries.AddLicense(code=license_code(4, version="2.0", serial="A")),
        entries.AddLicense(code=license_code(6, version="3.0", serial="B", version_match="exact")),
    ) == [True, True]
    assert set(pool.state.features) == {("cad", "2.0"), ("cad", "3.0")}
    assert not pool.table("cad", "2.0").exact and pool.table("cad", "3.0").exact
    assert pool.table("cad", "2.0").total == 4 and pool.table("cad", "3.0").total == 6
    # A second code for a table must have its mode, like its majority rule.
    assert pool.apply(entries.AddLicense(code=license_code(2, version="3.0", serial="C"))) == [False]
    assert pool.table("cad", "3.0").total == 6
    assert pool.state.count_problems(verify) == []
    again = type(pool.state).from_plain(pool.state.to_plain())
    assert again.features[("cad", "3.0")].exact and not again.features[("cad", "2.0")].exact


# -- servers ----------------------------------------------------------------------------


def _pool(*license_codes: str) -> Net:
    net = Net()
    net.run(8.0)
    leader = net.leader()
    for i, code in enumerate(license_codes):
        net.send("admin", leader.name, pool_msgs.AddLicenseCode(sender="cli", epoch=0, request_id=f"r{i}", code=code))
    net.run(net.now + 1.0)
    assert all(r.ok for r in net.replies("admin", pool_msgs.AdminReply)), net.replies("admin", pool_msgs.AdminReply)
    return net


def _checkout(
    net: Net, client: str, server: str, version: str, request_id: int = 1, exact: bool = False, wait: float = 0.5
) -> client_msgs.CheckoutGranted | client_msgs.CheckoutDenied:
    net.send(
        client,
        server,
        client_msgs.CheckoutRequest(
            client_id=client,
            session_id=client,
            request_id=request_id,
            feature="cad",
            version=version,
            exact_version=exact,
        ),
    )
    net.run(net.now + wait)
    (answer,) = [
        m
        for m in net.inbox.get(client, [])
        if isinstance(m, (client_msgs.CheckoutGranted, client_msgs.CheckoutDenied)) and m.request_id == request_id
    ]
    return answer


def test_a_request_for_2_0_is_served_by_a_2_5_code() -> None:
    net = _pool(license_code(3, version="2.5"))
    grant = _checkout(net, "c1", "s2", "2.0")
    assert isinstance(grant, client_msgs.CheckoutGranted), grant
    assert grant.version == "2.5"
    assert net.nodes["s2"].member.leases.leases[grant.lease_id].key == ("cad", "2.5")


def test_the_lowest_serving_version_is_taken_and_2_10_serves_2_9() -> None:
    net = _pool(
        license_code(3, version="3.0", serial="A"),
        license_code(3, version="2.10", serial="B"),
        license_code(3, version="2.5", serial="C", version_match="exact"),
        license_code(3, version="2.1", serial="D"),
    )
    grant = _checkout(net, "c1", "s1", "2.9")
    assert isinstance(grant, client_msgs.CheckoutGranted) and grant.version == "2.10"
    grant = _checkout(net, "c2", "s1", "2.5")  # the exact 2.5 table is the lowest that serves 2.5
    assert isinstance(grant, client_msgs.CheckoutGranted) and grant.version == "2.5"
    grant = _checkout(net, "c3", "s1", "2.6")  # exact 2.5 does not serve 2.6
    assert isinstance(grant, client_msgs.CheckoutGranted) and grant.version == "2.10"
    denied = _checkout(net, "c4", "s1", "3.1")
    assert isinstance(denied, client_msgs.CheckoutDenied) and denied.reason == client_msgs.DenyReason.UNKNOWN_FEATURE


def test_a_higher_version_is_taken_only_once_the_lower_has_no_seat_anywhere() -> None:
    net = _pool(license_code(3, version="2.0", serial="A"), license_code(3, version="3.0", serial="B"))  # 1/1/1 each
    got = []
    for i in range(4):
        grant = _checkout(net, f"c{i}", "s2", "2.0", wait=3.0)
        assert isinstance(grant, client_msgs.CheckoutGranted), grant
        got.append(grant.version)
    # s2 held one 2.0 seat and one 3.0 seat: it borrowed the other 2.0 seats
    # before touching 3.0, and took 3.0 after the leader found 2.0 exhausted.
    assert got == ["2.0", "2.0", "2.0", "3.0"]
    denied = _checkout(net, "c9", "s2", "3.0", wait=3.0)  # 3.0 still has seats: not denied
    assert isinstance(denied, client_msgs.CheckoutGranted) and denied.version == "3.0"
    for node in net.nodes.values():
        assert node.pool.problems() == []
        assert node.pool.features[("cad", "2.0")].total == 3 and node.pool.features[("cad", "3.0")].total == 3


def test_no_seats_once_every_serving_version_is_exhausted() -> None:
    net = _pool(
        license_code(1, version="2.0", serial="A", distribution="s1:1"),
        license_code(1, version="3.0", serial="B", distribution="s1:1"),
    )
    first = _checkout(net, "c1", "s2", "2.0", wait=3.0)
    second = _checkout(net, "c2", "s2", "2.0", wait=3.0)
    third = _checkout(net, "c3", "s2", "2.0", wait=6.0)
    assert isinstance(first, client_msgs.CheckoutGranted) and first.version == "2.0"
    assert isinstance(second, client_msgs.CheckoutGranted) and second.version == "3.0"
    assert isinstance(third, client_msgs.CheckoutDenied) and third.reason == client_msgs.DenyReason.NO_SEATS


def test_an_older_session_asks_for_its_exact_version() -> None:
    # A CheckoutRequest without the field (an older session) means exact.
    assert client_msgs.CheckoutRequest(
        client_id="c1", session_id="c1", request_id=1, feature="cad", version="2.0"
    ).exact_version
    net = _pool(license_code(3, version="2.5"))
    denied = _checkout(net, "c1", "s1", "2.0", exact=True)
    assert isinstance(denied, client_msgs.CheckoutDenied) and denied.reason == client_msgs.DenyReason.UNKNOWN_FEATURE
    grant = _checkout(net, "c2", "s1", "2.5", exact=True)
    assert isinstance(grant, client_msgs.CheckoutGranted) and grant.version == "2.5"


def test_a_resume_finds_the_lease_under_its_licensed_version() -> None:
    net = _pool(license_code(3, version="2.5"))
    grant = _checkout(net, "c1", "s2", "2.0", wait=2.0)
    assert isinstance(grant, client_msgs.CheckoutGranted)
    # Same server: resumed, no second seat.
    net.send(
        "c1",
        "s2",
        client_msgs.CheckoutRequest(
            client_id="c1",
            session_id="c1b",
            request_id=2,
            feature="cad",
            version="2.0",
            lease_id=grant.lease_id,
            client_seq=5,
            exact_version=False,
        ),
    )
    net.run(net.now + 0.5)
    (again,) = [m for m in net.replies("c1", client_msgs.CheckoutGranted) if m.request_id == 2]
    assert again.resumed and again.lease_id == grant.lease_id and again.version == "2.5"
    # Another server: the lease moves there with its seat of 2.5.
    net.send(
        "c1",
        "s3",
        client_msgs.CheckoutRequest(
            client_id="c1",
            session_id="c1c",
            request_id=3,
            feature="cad",
            version="2.0",
            lease_id=grant.lease_id,
            client_seq=6,
            exact_version=False,
        ),
    )
    net.run(net.now + 3.0)
    (moved,) = [m for m in net.replies("c1", client_msgs.CheckoutGranted) if m.request_id == 3]
    assert moved.lease_id == grant.lease_id and moved.server == "s3" and moved.version == "2.5"
    assert net.nodes["s1"].pool.registry.holder(grant.lease_id) == "s3"
    assert sum(n.member.leases.in_use(("cad", "2.5")) for n in net.nodes.values()) == 1


# -- the session --------------------------------------------------------------------------


def test_the_session_files_a_range_grant_under_the_granted_version() -> None:
    core = ClientSessionCore("c1", "sess", ("s1", "s2"), Timing(), prefer="s1")
    sent = core.checkout("cad", "2.0", 1, 0.0)
    (request,) = [x.msg for x in sent.send if isinstance(x.msg, client_msgs.CheckoutRequest)]
    assert not request.exact_version
    core.receive(
        "s1",
        client_msgs.CheckoutGranted(request_id=1, lease_id="L1", server="s1", feature="cad", version="2.5", ttl=30.0),
        0.01,
    )
    assert core.held(0.02)["L1"].version == "2.5"
    # Its fail-over asks for a seat of the table it came from.
    (beat,) = [x.msg for x in core.tick(0.5).send if isinstance(x.msg, client_msgs.SessionHeartbeat)]
    ready = core.receive("s1", client_msgs.HeartbeatAck(seq=beat.seq, server="s1", fail_over=True), 0.51)
    (update,) = [x.msg for x in ready.send if isinstance(x.msg, client_msgs.FailoverUpdate)]
    assert update.leases == (client_msgs.HeldLease(lease_id="L1", feature="cad", version="2.5"),)
    # A grant of a lower version than asked is not taken: it goes back at once.
    core.checkout("cad", "2.0", 2, 1.0)
    ready = core.receive(
        "s1",
        client_msgs.CheckoutGranted(request_id=2, lease_id="L2", server="s1", feature="cad", version="1.9", ttl=30.0),
        1.01,
    )
    assert "L2" not in core.held(1.02)
    assert any(isinstance(x.msg, client_msgs.ReleaseRequest) and x.msg.lease_id == "L2" for x in ready.send)
