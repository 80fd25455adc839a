"""License codes, add-ons, criteria and vendor keys (actors.core.codes)."""

from __future__ import annotations

import base64
import json
import pickle

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given
from hypothesis import strategies as st

from actors.core.codes import (
    AddOn,
    CodeError,
    CodeProblem,
    LicenseCode,
    check_criteria,
    even_split,
    format_criteria,
    initial_distribution,
    load_private_key,
    load_public_key,
    parse_criteria,
    private_key_to_pem,
    public_key_to_pem,
    sign_addon,
    sign_license,
    verify_code,
)

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
OTHER_PUB = Ed25519PrivateKey.generate().public_key()
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def license_text(**overrides: object) -> str:
    fields: dict[str, object] = {
        "feature": "cad",
        "version": "2.0",
        "count": 10,
        "expires": "2030-01-01",
        "serial": "LP-0001",
    }
    fields.update(overrides)
    return sign_license(KEY, **fields)  # type: ignore[arg-type]  # tests pass wrongly typed fields on purpose


CODE = license_text(distribution="s1:4^s2:3")
ADDON = sign_addon(KEY, of_serial="LP-0001", count=5, serial="LP-0002")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_payload(payload: bytes) -> str:
    """A correctly signed code around arbitrary payload bytes."""
    return f"LP1.{b64(payload)}.{b64(KEY.sign(payload))}"


def refused(text: str, reason: CodeProblem | None = None, today: str | None = None) -> CodeError:
    with pytest.raises(CodeError) as info:
        verify_code(text, PUB, today=today)
    error = info.value
    assert "\n" not in str(error) and str(error)
    if reason is not None:
        assert error.reason is reason, str(error)
    return error


# -- round trips ------------------------------------------------------------------


def test_license_round_trip() -> None:
    code = verify_code(CODE, PUB, today="2029-12-31")
    assert code == LicenseCode(
        feature="cad",
        version="2.0",
        count=10,
        expires="2030-01-01",
        serial="LP-0001",
        majority=True,
        distribution="s1:4^s2:3",
        text=CODE,
    )
    assert code.key == ("cad", "2.0")
    assert code.criteria == (("s1", 4), ("s2", 3))


def test_code_format_is_prefix_canonical_json_and_signature() -> None:
    prefix, payload, signature = CODE.split(".")
    assert prefix == "LP1" and "=" not in CODE and "\n" not in CODE
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    obj = json.loads(raw)
    assert raw == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    assert obj == {
        "kind": "license",
        "feature": "cad",
        "version": "2.0",
        "count": 10,
        "expires": "2030-01-01",
        "serial": "LP-0001",
        "majority": True,
        "distribution": "s1:4^s2:3",
    }
    PUB.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), raw)


def test_no_majority_and_no_distribution() -> None:
    code = verify_code(license_text(majority=False, distribution=""), PUB)
    assert isinstance(code, LicenseCode)
    assert code.majority is False and code.distribution is None and code.criteria == ()


def test_addon_round_trip() -> None:
    assert verify_code(ADDON, PUB) == AddOn(of_serial="LP-0001", count=5, serial="LP-0002", text=ADDON)


def test_surrounding_whitespace_is_ignored() -> None:
    assert verify_code(f"  {CODE}\n", PUB).text == CODE


# -- refusals -------------------------------------------------------------------------


def test_wrong_key_is_refused() -> None:
    with pytest.raises(CodeError) as info:
        verify_code(CODE, OTHER_PUB)
    assert info.value.reason is CodeProblem.BAD_SIGNATURE
    assert "signed by a different vendor key" in str(info.value)


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 10, len(CODE) // 2, len(CODE) - 30, len(CODE) - 2, len(CODE) - 1])
def test_truncated_code_is_refused(cut: int) -> None:
    error = refused(CODE[:cut])
    assert error.reason in (CodeProblem.MALFORMED, CodeProblem.BAD_SIGNATURE)


def test_every_prefix_is_refused() -> None:
    for cut in range(len(CODE)):
        refused(CODE[:cut])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("hello", "must start with 'LP1.'"),
        ("LP2" + CODE[3:], "must start with 'LP1.'"),
        ("LP1." + CODE.split(".")[1], "truncated or garbled"),
        (CODE + ".x", "truncated or garbled"),
        ("LP1..", "truncated or garbled"),
        (CODE.replace(".", ".=", 1), "is not base64url"),
        (CODE[:10] + "+" + CODE[11:], "is not base64url"),
        (CODE[:-1], "truncated or garbled"),
    ],
)
def test_garbled_code_is_refused(text: str, needle: str) -> None:
    assert needle in str(refused(text, CodeProblem.MALFORMED))


def test_non_canonical_base64_is_refused() -> None:
    # The signature's last character carries 2 unused bits: flipping them must not
    # give a second spelling of the same code.
    head, last = CODE[:-1], CODE[-1]
    alternatives = [c for c in B64URL if c != last and B64URL.index(c) >> 2 == B64URL.index(last) >> 2]
    assert alternatives
    for c in alternatives:
        assert "non-canonical" in str(refused(head + c, CodeProblem.MALFORMED))


def test_expired_license_is_refused_after_its_last_day() -> None:
    assert verify_code(CODE, PUB, today="2030-01-01").serial == "LP-0001"  # valid through that day
    error = refused(CODE, CodeProblem.EXPIRED, today="2030-01-02")
    assert "expired on 2030-01-01" in str(error) and "cad 2.0" in str(error)


def test_addons_do_not_expire() -> None:
    assert isinstance(verify_code(ADDON, PUB, today="2999-01-01"), AddOn)


def test_bad_today_is_refused() -> None:
    refused(CODE, CodeProblem.BAD_FIELD, today="01/02/2030")


@pytest.mark.parametrize("count", [0, -1, True, 1.5, "3"])
def test_sign_refuses_bad_count(count: object) -> None:
    with pytest.raises(CodeError) as info:
        license_text(count=count)
    assert info.value.reason is CodeProblem.BAD_COUNT
    assert "count must be a positive integer" in str(info.value)
    with pytest.raises(CodeError) as info:
        sign_addon(KEY, of_serial="LP-1", count=count, serial="LP-2")  # type: ignore[arg-type]  # a bad count on purpose
    assert info.value.reason is CodeProblem.BAD_COUNT


def test_verify_refuses_signed_zero_count() -> None:
    payload = json.loads(base64.urlsafe_b64decode(CODE.split(".")[1] + "==="))
    payload["count"] = 0
    refused(signed_payload(json.dumps(payload).encode()), CodeProblem.BAD_COUNT)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("feature", "cad:2"),
        ("feature", ""),
        ("feature", "has space"),
        ("version", "x" * 65),
        ("serial", ""),
        ("expires", "2030-1-1"),
        ("expires", "20300101"),
        ("expires", "2030-02-30"),
        ("majority", "yes"),
    ],
)
def test_sign_refuses_bad_fields(field: str, value: object) -> None:
    with pytest.raises(CodeError) as info:
        license_text(**{field: value})
    assert info.value.reason is CodeProblem.BAD_FIELD
    assert field in str(info.value)


def test_sign_refuses_criteria_above_count() -> None:
    with pytest.raises(CodeError) as info:
        license_text(count=5, distribution="s1:4^s2:3")
    assert info.value.reason is CodeProblem.BAD_CRITERIA
    assert "assign 7 seats but the total is 5" in str(info.value)


def test_addon_serial_must_differ_from_its_code() -> None:
    with pytest.raises(CodeError):
        sign_addon(KEY, of_serial="LP-1", count=1, serial="LP-1")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", CodeProblem.MALFORMED),
        (b"\xff\xfe", CodeProblem.MALFORMED),
        (b"[1, 2]", CodeProblem.MALFORMED),
        (b'{"kind": "coupon"}', CodeProblem.BAD_FIELD),
        (b'{"kind": "addon", "of": "LP-1", "count": 1}', CodeProblem.BAD_FIELD),
        (b'{"kind": "addon", "of": "LP-1", "count": 1, "serial": "LP-2", "hostid": "x"}', CodeProblem.BAD_FIELD),
    ],
)
def test_signed_but_invalid_payloads_are_refused(payload: bytes, reason: CodeProblem) -> None:
    refused(signed_payload(payload), reason)


def test_unknown_field_asks_for_newer_licpool() -> None:
    payload = b'{"kind": "addon", "of": "LP-1", "count": 1, "serial": "LP-2", "hostid": "x"}'
    assert "newer licpool" in str(refused(signed_payload(payload)))


# -- properties -------------------------------------------------------------------


@given(
    st.sampled_from([CODE, ADDON]),
    st.data(),
    st.characters(codec="utf-8"),
)
def test_any_single_character_change_is_refused(code: str, data: st.DataObject, replacement: str) -> None:
    index = data.draw(st.integers(0, len(code) - 1))
    assume(replacement != code[index])
    refused(code[:index] + replacement + code[index + 1 :])


@given(st.sampled_from([CODE, ADDON]), st.data())
def test_any_base64_character_substitution_is_refused(code: str, data: st.DataObject) -> None:
    # The hardest case: the alphabet stays valid, only one symbol changes.
    index = data.draw(st.integers(0, len(code) - 1))
    replacement = data.draw(st.sampled_from(B64URL + "."))
    assume(replacement != code[index])
    refused(code[:index] + replacement + code[index + 1 :])


@given(st.sampled_from([CODE, ADDON]), st.data())
def test_any_single_character_deletion_or_insertion_is_refused(code: str, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(code) - 1))
    refused(code[:index] + code[index + 1 :])
    inserted = data.draw(st.sampled_from(B64URL + ".="))
    refused(code[:index] + inserted + code[index:])


@given(st.text())
def test_arbitrary_text_gives_only_code_errors(text: str) -> None:
    refused(text)


@given(st.binary(max_size=300))
def test_arbitrary_signed_payload_gives_only_code_errors(payload: bytes) -> None:
    try:
        verify_code(signed_payload(payload), PUB)
    except CodeError as e:
        assert "\n" not in str(e)


# -- criteria -------------------------------------------------------------------------


def test_parse_criteria() -> None:
    assert parse_criteria("s1:4^s2:3^s3:3") == (("s1", 4), ("s2", 3), ("s3", 3))
    assert parse_criteria("") == ()
    assert parse_criteria("  ") == ()
    assert parse_criteria("east-1:0") == (("east-1", 0),)


@pytest.mark.parametrize(
    "text",
    [
        "s1",
        "s1:",
        ":3",
        "s1:-1",
        "s1:+1",
        "s1:4^",
        "^s1:4",
        "s1:4^^s2:1",
        "s1 :4",
        "s1:4 ^s2:1",
        "s.1:4",
        "s1:٣",
        "s1:4^s1:2",
        "s1:4:5",
    ],
)
def test_parse_criteria_refuses_bad_syntax(text: str) -> None:
    with pytest.raises(CodeError) as info:
        parse_criteria(text)
    assert info.value.reason is CodeProblem.BAD_CRITERIA
    assert "\n" not in str(info.value)


def test_duplicate_server_in_criteria_is_named() -> None:
    with pytest.raises(CodeError, match="name server 's1' twice"):
        parse_criteria("s1:4^s1:2")


pairs_strategy = st.lists(
    st.tuples(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), st.integers(0, 10**6)),
    unique_by=lambda p: p[0],
    max_size=11,
).map(tuple)


@given(pairs_strategy)
def test_format_then_parse_round_trips(pairs: tuple[tuple[str, int], ...]) -> None:
    assert parse_criteria(format_criteria(pairs)) == pairs


def test_check_criteria_refuses_unknown_server() -> None:
    with pytest.raises(CodeError) as info:
        check_criteria((("s1", 2), ("s9", 1)), 10, ["s1", "s2", "s3"])
    assert info.value.reason is CodeProblem.BAD_CRITERIA
    assert "s9" in str(info.value) and "not in the pool" in str(info.value)


def test_check_criteria_refuses_sum_above_total() -> None:
    with pytest.raises(CodeError, match="assign 11 seats but the total is 10"):
        check_criteria((("s1", 6), ("s2", 5)), 10, ["s1", "s2"])
    check_criteria((("s1", 6), ("s2", 4)), 10, ["s1", "s2"])


def test_even_split_gives_remainder_to_first_servers() -> None:
    assert even_split(10, ["s1", "s2", "s3"]) == {"s1": 4, "s2": 3, "s3": 3}
    assert even_split(2, ["s1", "s2", "s3"]) == {"s1": 1, "s2": 1, "s3": 0}
    assert even_split(0, ["s1"]) == {"s1": 0}
    with pytest.raises(ValueError):
        even_split(3, [])
    with pytest.raises(ValueError):
        even_split(-1, ["s1"])


@given(st.integers(0, 10**6), st.integers(1, 11))
def test_even_split_properties(total: int, n: int) -> None:
    servers = [f"s{i}" for i in range(n)]
    split = even_split(total, servers)
    shares = [split[s] for s in servers]
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1
    assert shares == sorted(shares, reverse=True)


def test_initial_distribution_with_criteria() -> None:
    table, free = initial_distribution(10, (("s1", 4), ("s3", 3)), ["s1", "s2", "s3"])
    assert table == {"s1": 4, "s2": 0, "s3": 3} and free == 3


def test_initial_distribution_without_criteria() -> None:
    assert initial_distribution(10, (), ["s1", "s2", "s3"]) == ({"s1": 4, "s2": 3, "s3": 3}, 0)


def test_initial_distribution_checks_criteria() -> None:
    with pytest.raises(CodeError):
        initial_distribution(10, (("s4", 1),), ["s1", "s2", "s3"])


# -- keys -------------------------------------------------------------------------------


def test_key_pem_round_trip() -> None:
    private = load_private_key(private_key_to_pem(KEY))
    public = load_public_key(public_key_to_pem(PUB))
    code = sign_license(private, feature="f", version="1", count=1, expires="2030-01-01", serial="S1")
    assert isinstance(verify_code(code, public), LicenseCode)


@pytest.mark.parametrize("garbage", [b"", b"hello", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_garbage_keys_are_refused(garbage: bytes) -> None:
    for load in (load_private_key, load_public_key):
        with pytest.raises(CodeError) as info:
            load(garbage)
        assert info.value.reason is CodeProblem.BAD_KEY


def test_other_key_types_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(CodeError, match="not an Ed25519"):
        load_private_key(ec_private)
    with pytest.raises(CodeError, match="not an Ed25519"):
        load_public_key(ec_public)
    with pytest.raises(CodeError, match="not a PEM public key"):
        load_public_key(private_key_to_pem(KEY))


def test_encrypted_private_key_is_refused() -> None:
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(CodeError, match="password-protected"):
        load_private_key(pem)


def test_criteria_are_signed_in_canonical_form() -> None:
    code = verify_code(license_text(distribution=" s1:4^s2:3 "), PUB)
    assert isinstance(code, LicenseCode) and code.distribution == "s1:4^s2:3"
    blank = verify_code(license_text(distribution="  "), PUB)
    assert isinstance(blank, LicenseCode) and blank.distribution is None


def test_code_errors_survive_pickling() -> None:
    error = refused("garbage")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, CodeError)
    assert (copy.reason, str(copy)) == (error.reason, str(error))
