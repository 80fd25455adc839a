"""Vendor-signed license codes and add-ons, distribution criteria, vendor keys.

This module owns the text format of license codes (operations.md, docs/licenses.md):

    LP1.<base64url(canonical JSON payload)>.<base64url(Ed25519 signature)>

with no base64 padding, where the signature covers the exact payload bytes.  It
also owns Sentinel's criteria syntax (``s1:4^s2:3^s3:3``) and the first split of
a code's seats over the servers.

Pure: no clock (the caller passes ``today``), no file I/O (keys go in and out as
PEM bytes), no actor runtime.  Every failure is a ``CodeError`` with a ``CodeProblem``
reason and a one-line message; no raw base64, JSON or cryptography exception
escapes.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "CODE_PREFIX",
    "VERSION_MATCHES",
    "AddOn",
    "CodeError",
    "CodeProblem",
    "LicenseCode",
    "check_criteria",
    "even_split",
    "format_criteria",
    "initial_distribution",
    "load_private_key",
    "load_public_key",
    "parse_criteria",
    "private_key_to_pem",
    "public_key_to_pem",
    "sign_addon",
    "sign_license",
    "verify_code",
]

CODE_PREFIX = "LP1"
"""Format marker: the first dot-separated part of every code."""

_SIGNATURE_BYTES = 64
_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""Server names (as in pool.toml)."""
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
"""Features, versions and serials: no ':' (the CLI's FEATURE:VERSION), no spaces."""
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_COUNT = re.compile(r"[0-9]+")

_LICENSE_KEYS = frozenset({"kind", "feature", "version", "count", "expires", "serial", "majority", "distribution"})
_LICENSE_OPTIONAL = frozenset({"version_match", "weight", "linger"})
"""Signed only when not their default, so such a code reads the same to a licpool that predates the field."""
MAX_LINGER = 86400.0
"""Longest ``linger`` a code may carry, in seconds (a day)."""
"""Fields a license may lack: codes signed before they existed keep verifying."""
VERSION_MATCHES = ("range", "exact")
"""``version_match`` values: ``range`` (the default, also for codes without the
field) serves requests for its version or lower; ``exact`` only its own."""
_ADDON_KEYS = frozenset({"kind", "of", "count", "serial"})


class CodeProblem(enum.StrEnum):
    """Why a code, a criteria string or a key was refused."""

    MALFORMED = "MALFORMED"
    """Truncated or garbled text: not ``LP1.<payload>.<signature>``."""
    BAD_SIGNATURE = "BAD_SIGNATURE"
    """Altered, or signed by a different vendor key."""
    EXPIRED = "EXPIRED"
    """The license's expiry date is before ``today``."""
    BAD_COUNT = "BAD_COUNT"
    """A seat count that is not a positive integer."""
    BAD_CRITERIA = "BAD_CRITERIA"
    """Criteria with bad syntax, unknown servers, or more seats than the total."""
    BAD_FIELD = "BAD_FIELD"
    """Any other field missing, mistyped or out of range."""
    BAD_KEY = "BAD_KEY"
    """A key that is not an Ed25519 key in PEM form."""


class CodeError(ValueError):
    """A refused code, criteria string or key; ``str()`` is one line for humans."""

    def __init__(self, reason: CodeProblem, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[CodeError], tuple[CodeProblem, str]]:
        # Exceptions pickle as cls(*args); ours takes two arguments.
        return (type(self), (self.reason, self.message))


@dataclass(frozen=True)
class LicenseCode:
    """A verified license code: ``count`` seats of (feature, version)."""

    feature: str
    version: str
    count: int
    expires: str
    """Last valid day, ``YYYY-MM-DD`` (inclusive)."""
    serial: str
    majority: bool
    """Majority-ruled unless the vendor issued it with ``--no-majority``."""
    distribution: str | None
    """The criteria as signed, e.g. ``s1:4^s2:3``; None for an even split."""
    text: str
    """The code exactly as verified (without surrounding whitespace)."""
    exact_version: bool = False
    """Signed ``version_match = "exact"``: serves requests for exactly its
    version.  False (``range``, and every code signed without the field): serves
    requests for its version or any lower one (docs/licenses.md, "Versions")."""
    weight: int = 1
    """Token weight (issue 14): seats one checkout of count 1 takes ("a heavy
    app version costs 3 seats"); 1 for every code signed without the field."""
    linger: float = 0.0
    """Seconds a released lease stays held for its client to take back; 0 for
    every code signed without the field."""

    @property
    def version_match(self) -> str:
        return "exact" if self.exact_version else "range"

    @property
    def key(self) -> tuple[str, str]:
        """The distribution table: (feature, version), the version as written.
        Which requests a table serves is ``actors.core.versions``' business."""
        return (self.feature, self.version)

    @property
    def criteria(self) -> tuple[tuple[str, int], ...]:
        """The parsed distribution criteria; empty for an even split."""
        return parse_criteria(self.distribution or "")


@dataclass(frozen=True)
class AddOn:
    """A verified add-on: ``count`` more seats for the code with ``of_serial``."""

    of_serial: str
    count: int
    serial: str
    """The add-on's own serial, so applying it twice is a no-op."""
    text: str


# -- encoding -----------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(part: str, what: str) -> bytes:
    """Strict unpadded base64url: only canonical encodings are accepted, so no
    two texts decode to the same bytes (a changed padding bit is a changed code)."""
    if not _B64URL.fullmatch(part):
        raise CodeError(CodeProblem.MALFORMED, f"license code is garbled: a character in the {what} is not base64url")
    if len(part) % 4 == 1:
        raise CodeError(CodeProblem.MALFORMED, f"license code is truncated or garbled: the {what} has a bad length")
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise CodeError(CodeProblem.MALFORMED, f"license code is garbled: bad base64 in the {what}") from None
    if _b64encode(data) != part:
        raise CodeError(CodeProblem.MALFORMED, f"license code is garbled: non-canonical base64 in the {what}")
    return data


def _canonical_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _sign(private_key: Ed25519PrivateKey, payload: Mapping[str, Any]) -> str:
    data = _canonical_json(payload)
    return f"{CODE_PREFIX}.{_b64encode(data)}.{_b64encode(private_key.sign(data))}"


# -- field checks (shared by signing and verifying) ----------------------------


def _check_token(value: object, field: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise CodeError(
            CodeProblem.BAD_FIELD,
            f"{field} must be 1-64 letters, digits or '_.+-' (no ':' or spaces), got {value!r}",
        )
    return value


def _check_count(value: object, field: str = "count") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CodeError(CodeProblem.BAD_COUNT, f"{field} must be a positive integer, got {value!r}")
    return value


def _check_date(value: object, field: str) -> datetime.date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise CodeError(CodeProblem.BAD_FIELD, f"{field} must be a date YYYY-MM-DD, got {value!r}")


def _check_version_match(value: object) -> bool:
    """True for ``exact``, False for ``range``."""
    if value not in VERSION_MATCHES:
        raise CodeError(CodeProblem.BAD_FIELD, f"version_match must be 'range' or 'exact', got {value!r}")
    return value == "exact"


def _check_distribution(value: object, count: int) -> str | None:
    """The criteria in canonical form (None for none), checked against ``count``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise CodeError(CodeProblem.BAD_CRITERIA, f"distribution must be a criteria string, got {value!r}")
    pairs = parse_criteria(value)
    _check_criteria_total(pairs, count)
    return format_criteria(pairs) or None


# -- signing --------------------------------------------------------------------


def sign_license(
    private_key: Ed25519PrivateKey,
    *,
    feature: str,
    version: str,
    count: int,
    expires: str,
    serial: str,
    majority: bool = True,
    distribution: str | None = None,
    version_match: str = "range",
    weight: int = 1,
    linger: float = 0.0,
) -> str:
    """Issue a license code; refuses (CodeError) anything ``verify_code`` would refuse,
    except expiry, which needs a clock.

    ``version_match="exact"`` signs the field; ``"range"`` (the default) leaves
    it out, so a range code reads the same to a licpool that predates the field."""
    count = _check_count(count)
    _check_date(expires, "expires")
    if not isinstance(majority, bool):
        raise CodeError(CodeProblem.BAD_FIELD, f"majority must be true or false, got {majority!r}")
    payload = {
        "kind": "license",
        "feature": _check_token(feature, "feature"),
        "version": _check_token(version, "version"),
        "count": count,
        "expires": expires,
        "serial": _check_token(serial, "serial"),
        "majority": majority,
        "distribution": _check_distribution(distribution, count),
    }
    if _check_version_match(version_match):
        payload["version_match"] = "exact"
    if _check_count(weight, "weight") != 1:
        payload["weight"] = weight
    if _check_linger(linger):
        payload["linger"] = linger
    return _sign(private_key, payload)


def _check_linger(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_LINGER:
        raise CodeError(CodeProblem.BAD_FIELD, f"linger must be 0..{MAX_LINGER:g} seconds, got {value!r}")
    return float(value)


def sign_addon(private_key: Ed25519PrivateKey, *, of_serial: str, count: int, serial: str) -> str:
    """Issue an add-on: ``count`` more seats for the license code ``of_serial``."""
    payload = {
        "kind": "addon",
        "of": _check_token(of_serial, "of"),
        "count": _check_count(count),
        "serial": _check_token(serial, "serial"),
    }
    if payload["of"] == payload["serial"]:
        raise CodeError(CodeProblem.BAD_FIELD, "an add-on's serial must differ from the code it extends")
    return _sign(private_key, payload)


# -- verifying ------------------------------------------------------------------


def _split(text: str) -> tuple[str, bytes, bytes]:
    if not isinstance(text, str):
        raise CodeError(CodeProblem.MALFORMED, "license code must be text")
    stripped = text.strip()
    if not stripped:
        raise CodeError(CodeProblem.MALFORMED, "license code is empty")
    parts = stripped.split(".")
    if parts[0] != CODE_PREFIX:
        raise CodeError(CodeProblem.MALFORMED, f"not a licpool code: it must start with '{CODE_PREFIX}.'")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise CodeError(
            CodeProblem.MALFORMED,
            f"license code is truncated or garbled: expected {CODE_PREFIX}.<payload>.<signature>",
        )
    payload = _b64decode(parts[1], "payload")
    signature = _b64decode(parts[2], "signature")
    if len(signature) != _SIGNATURE_BYTES:
        raise CodeError(
            CodeProblem.MALFORMED,
            f"license code is truncated or garbled: signature has {len(signature)} bytes, expected {_SIGNATURE_BYTES}",
        )
    return stripped, payload, signature


def _decode_payload(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CodeError(CodeProblem.MALFORMED, "license code payload is not valid JSON") from None
    if not isinstance(obj, dict):
        raise CodeError(CodeProblem.MALFORMED, "license code payload is not a JSON object")
    return obj


def _check_keys(
    obj: Mapping[str, Any], expected: frozenset[str], kind: str, optional: frozenset[str] = frozenset()
) -> None:
    missing = sorted(expected - obj.keys())
    extra = sorted(obj.keys() - expected - optional)
    if missing:
        raise CodeError(CodeProblem.BAD_FIELD, f"{kind} code lacks field(s): {', '.join(missing)}")
    if extra:
        raise CodeError(
            CodeProblem.BAD_FIELD,
            f"{kind} code has unknown field(s) {', '.join(extra)}: it needs a newer licpool",
        )


def verify_code(text: str, public_key: Ed25519PublicKey, *, today: str | None = None) -> LicenseCode | AddOn:
    """Check a code's form and signature, then its fields.

    ``today`` (``YYYY-MM-DD``, from the caller's clock) refuses a license whose
    ``expires`` is earlier; a license is valid through its expiry day.  Add-ons
    carry no expiry: they live as long as the code they extend.
    """
    stripped, payload, signature = _split(text)
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise CodeError(
            CodeProblem.BAD_SIGNATURE,
            "license code signature does not verify: the code was altered or signed by a different vendor key",
        ) from None
    obj = _decode_payload(payload)
    kind = obj.get("kind")
    if kind == "addon":
        _check_keys(obj, _ADDON_KEYS, "add-on")
        return AddOn(
            of_serial=_check_token(obj["of"], "of"),
            count=_check_count(obj["count"]),
            serial=_check_token(obj["serial"], "serial"),
            text=stripped,
        )
    if kind != "license":
        raise CodeError(CodeProblem.BAD_FIELD, f"unknown code kind {kind!r}")
    _check_keys(obj, _LICENSE_KEYS, "license", _LICENSE_OPTIONAL)
    count = _check_count(obj["count"])
    majority = obj["majority"]
    if not isinstance(majority, bool):
        raise CodeError(CodeProblem.BAD_FIELD, f"majority must be true or false, got {majority!r}")
    expires = _check_date(obj["expires"], "expires")
    code = LicenseCode(
        feature=_check_token(obj["feature"], "feature"),
        version=_check_token(obj["version"], "version"),
        count=count,
        expires=obj["expires"],
        serial=_check_token(obj["serial"], "serial"),
        majority=majority,
        distribution=_check_distribution(obj["distribution"], count),
        text=stripped,
        exact_version=_check_version_match(obj.get("version_match", "range")),
        weight=_check_count(obj.get("weight", 1), "weight"),
        linger=_check_linger(obj.get("linger", 0.0)),
    )
    if today is not None and expires < _check_date(today, "today"):
        raise CodeError(
            CodeProblem.EXPIRED,
            f"license code {code.serial} for {code.feature} {code.version} expired on {code.expires}",
        )
    return code


# -- criteria -------------------------------------------------------------------


def parse_criteria(text: str) -> tuple[tuple[str, int], ...]:
    """Parse Sentinel's ``s1:4^s2:3^s3:3``; the empty string means no criteria."""
    if not isinstance(text, str):
        raise CodeError(CodeProblem.BAD_CRITERIA, f"criteria must be text, got {text!r}")
    text = text.strip()
    if not text:
        return ()
    pairs: list[tuple[str, int]] = []
    seen: set[str] = set()
    for entry in text.split("^"):
        name, sep, count = entry.partition(":")
        if not sep or not _NAME.fullmatch(name) or not _COUNT.fullmatch(count):
            raise CodeError(
                CodeProblem.BAD_CRITERIA,
                f"bad criteria entry {entry!r} in {text!r}: expected SERVER:COUNT joined by '^', e.g. s1:4^s2:3",
            )
        if name in seen:
            raise CodeError(CodeProblem.BAD_CRITERIA, f"criteria {text!r} name server {name!r} twice")
        seen.add(name)
        pairs.append((name, int(count)))
    return tuple(pairs)


def format_criteria(pairs: Sequence[tuple[str, int]]) -> str:
    """The inverse of ``parse_criteria``: ``(("s1", 4), ("s2", 3))`` -> ``s1:4^s2:3``."""
    return "^".join(f"{name}:{count}" for name, count in pairs)


def _check_criteria_total(pairs: Sequence[tuple[str, int]], total: int) -> None:
    named = sum(count for _, count in pairs)
    if named > total:
        raise CodeError(
            CodeProblem.BAD_CRITERIA,
            f"criteria {format_criteria(pairs)!r} assign {named} seats but the total is {total}",
        )


def check_criteria(pairs: Sequence[tuple[str, int]], total: int, servers: Sequence[str]) -> None:
    """Refuse criteria that name a server outside ``servers`` or exceed ``total``."""
    unknown = [name for name, _ in pairs if name not in servers]
    if unknown:
        raise CodeError(
            CodeProblem.BAD_CRITERIA,
            f"criteria name server(s) {', '.join(unknown)} not in the pool ({', '.join(servers)})",
        )
    _check_criteria_total(pairs, total)


def even_split(total: int, servers: Sequence[str]) -> dict[str, int]:
    """Split ``total`` seats evenly; the remainder goes to the first servers in
    priority order (10 over 3 -> 4/3/3)."""
    if total < 0:
        raise ValueError(f"cannot split a negative total {total}")
    if not servers:
        raise ValueError("cannot split seats over no servers")
    if len(set(servers)) != len(servers):
        raise ValueError(f"duplicate server names in {list(servers)}")
    share, extra = divmod(total, len(servers))
    return {name: share + (1 if i < extra else 0) for i, name in enumerate(servers)}


def initial_distribution(
    total: int, criteria_pairs: Sequence[tuple[str, int]], servers: Sequence[str]
) -> tuple[dict[str, int], int]:
    """First allocation of a new code: ``({server: seats} for every server, free_pool)``.

    With criteria, the named seats go to their servers and the rest to the free
    pool; with none, the seats are split evenly and the free pool is empty.
    """
    if not criteria_pairs:
        return even_split(total, servers), 0
    check_criteria(criteria_pairs, total, servers)
    table = dict.fromkeys(servers, 0)
    table.update(criteria_pairs)
    return table, total - sum(count for _, count in criteria_pairs)


# -- keys -------------------------------------------------------------------------


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (protect the file instead: 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Parse an unencrypted Ed25519 private key in PEM form."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise CodeError(
            CodeProblem.BAD_KEY, "private key is password-protected; licpool needs an unencrypted key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CodeError(CodeProblem.BAD_KEY, "not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CodeError(CodeProblem.BAD_KEY, "private key is not an Ed25519 key")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse an Ed25519 public key in PEM form."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CodeError(CodeProblem.BAD_KEY, "not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CodeError(CodeProblem.BAD_KEY, "public key is not an Ed25519 key")
    return key
