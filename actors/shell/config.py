"""Loading and checking ``pool.toml``, and writing the default loopback pool.

This module owns the pool config file (operations.md): its keys, their types and
defaults, the refusal of anything else, and the one-line ``ConfigError``
``"<file>: <key>: <reason>"``.  The timing rules themselves live in
``actors.core.timing``; this module only applies them.  It also reads the admin
key and vendor public key files a config names, and writes key files with
private permissions.

Warnings (an even server count) are not raised: they are returned on
``PoolConfig.warnings`` as one-line strings, for the caller to print or log.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from actors.core.codes import (
    CodeError,
    load_private_key,
    load_public_key,
    private_key_to_pem,
    public_key_to_pem,
)
from actors.core.timing import MAX_SERVERS, Timing, timing_violations

__all__ = [
    "ADMIN_SECRET_MIN_CHARS",
    "DEFAULT_POOL_DIR",
    "DEFAULT_PORTS",
    "ConfigError",
    "PoolConfig",
    "ServerSpec",
    "default_config_text",
    "load_config",
    "write_default_pool",
    "write_secret_file",
]

ADMIN_SECRET_MIN_CHARS = 32
DEFAULT_POOL_DIR = Path("licpool-pool")
"""Where ``licpool up`` with no ``--config`` keeps its default pool."""
DEFAULT_PORTS = (1950, 1951, 1952)
DEFAULT_BORROW_THRESHOLD = 0.9
DEFAULT_REBALANCE_IDLE = 60.0
DEFAULT_QUEUE_LIMIT = 100
"""Queued checkouts a table's queue holds before QUEUE_FULL (``[pool] queue_limit``)."""

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TIMING_KEYS = tuple(f.name for f in fields(Timing))
_POOL_KEYS = (
    "name",
    *_TIMING_KEYS,
    "leader_preemption",
    "data_dir",
    "vendor_public_key",
    "admin_key_file",
    "borrow_threshold",
    "rebalance_idle",
    "queue_limit",
    "client_port",
)
_SERVER_KEYS = ("name", "host", "port", "borrow_threshold", "metrics_port")


class ConfigError(Exception):
    """A refused config; ``str()`` is one line: ``"<file>: <key>: <reason>"``."""

    def __init__(self, file: str, key: str | None, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str | None, str]]:
        # Exceptions pickle as cls(*args); ours takes three arguments.
        return (type(self), (self.file, self.key, self.reason))


@dataclass(frozen=True)
class ServerSpec:
    """One ``[[server]]`` table; the list's order is the leader priority order."""

    name: str
    host: str
    port: int
    """The server's Thespian admin port."""
    borrow_threshold: float
    """in_use / allocated above which this server borrows (the pool's by default)."""
    metrics_port: int | None = None
    """Where ``licpool server`` serves Prometheus metrics (HTTP, on ``host``); None: off."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PoolConfig:
    """A loaded, checked ``pool.toml``.  Paths are absolute."""

    path: Path
    name: str
    timing: Timing
    leader_preemption: bool
    data_dir: Path
    vendor_public_key: Path | None
    admin_key_file: Path | None
    borrow_threshold: float
    rebalance_idle: float
    """Seconds that seats above a server's target must stay idle before they go
    back to the free pool."""
    client_port: int | None
    """A fixed port for a client's actor system; None lets it pick a free one."""
    servers: tuple[ServerSpec, ...]
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    """Queued checkouts (``queue=True``) one table's queue holds; one more is refused QUEUE_FULL."""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """One-line warnings found while loading (not errors)."""

    @property
    def server_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.servers)

    def server(self, name: str) -> ServerSpec:
        """The server called ``name``; ConfigError if there is none."""
        for spec in self.servers:
            if spec.name == name:
                return spec
        raise ConfigError(
            str(self.path),
            "[[server]]",
            f"no server named {name!r} (servers: {', '.join(self.server_names)})",
        )

    def settings_hash(self) -> str:
        """sha256 of the settings every server must share (leadership.md M12):
        not per-host paths or the client port."""
        shared = {
            "v": 1,
            "name": self.name,
            "timing": asdict(self.timing),
            "leader_preemption": self.leader_preemption,
            "borrow_threshold": self.borrow_threshold,
            "rebalance_idle": self.rebalance_idle,
            "servers": [[s.name, s.host, s.port, s.borrow_threshold] for s in self.servers],
        }
        if self.queue_limit != DEFAULT_QUEUE_LIMIT:
            shared["queue_limit"] = self.queue_limit  # only when set: older pools' hashes stay the same
        canonical = json.dumps(shared, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def admin_secret(self) -> str:
        """The shared admin secret: the stripped content of ``admin_key_file``."""
        key = "[pool] admin_key_file"
        if self.admin_key_file is None:
            raise ConfigError(str(self.path), key, "not set, and this needs the admin key")
        try:
            text = self.admin_key_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(str(self.path), key, f"cannot read {self.admin_key_file}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(str(self.path), key, f"{self.admin_key_file} is not UTF-8 text") from None
        if len(text) < ADMIN_SECRET_MIN_CHARS:
            raise ConfigError(
                str(self.path),
                key,
                f"{self.admin_key_file} holds {len(text)} characters; "
                f"the admin key needs at least {ADMIN_SECRET_MIN_CHARS}",
            )
        return text

    def vendor_key(self) -> Ed25519PublicKey:
        """The vendor's public key from ``vendor_public_key``."""
        key = "[pool] vendor_public_key"
        if self.vendor_public_key is None:
            raise ConfigError(str(self.path), key, "not set, and this needs the vendor key")
        try:
            return load_public_key(self.vendor_public_key.read_bytes())
        except OSError as e:
            raise ConfigError(str(self.path), key, f"cannot read {self.vendor_public_key}: {e.strerror}") from None
        except CodeError as e:
            raise ConfigError(str(self.path), key, f"{self.vendor_public_key}: {e}") from None


# -- loading --------------------------------------------------------------------


class _Checker:
    """Type and range checks that raise ConfigError naming the file and key."""

    def __init__(self, label: str, base_dir: Path) -> None:
        self.label = label
        self.base_dir = base_dir

    def error(self, key: str | None, reason: str) -> ConfigError:
        return ConfigError(self.label, key, reason)

    def known_keys(self, table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
        for key in table:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
                raise self.error(f"{where}{key}", f"unknown key{hint}")

    def text(self, value: object, key: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"must match {pattern.pattern}, got {value!r}")
        return value

    def number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value!r}")
        return float(value)

    def threshold(self, value: object, key: str) -> float:
        number = self.number(value, key)
        if not 0.0 < number <= 1.0:
            raise self.error(key, f"must be a fraction in (0, 1], got {value!r}")
        return number

    def port(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.error(key, f"must be an integer 1..65535, got {value!r}")
        return value

    def flag(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def path(self, value: object, key: str) -> Path:
        path = Path(self.text(value, key)).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def load_config(path: str | os.PathLike[str], *, client: bool = False) -> PoolConfig:
    """Load and check ``pool.toml``; ConfigError (one line) on any problem.

    A client config (``client=True``) needs only ``[pool] name`` and the servers;
    keys it does not need are still checked when present.  A server config also
    needs ``[pool] admin_key_file``.
    """
    given = Path(path)
    label = str(path)
    try:
        doc = tomllib.loads(given.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(label, None, "config file not found") from None
    except OSError as e:
        raise ConfigError(label, None, f"cannot read config file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(label, None, "config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(label, "TOML syntax", str(e)) from None
    absolute = given.absolute()
    return _parse(doc, absolute, _Checker(label, absolute.parent), client=client)


def _parse(doc: Mapping[str, Any], path: Path, check: _Checker, *, client: bool) -> PoolConfig:
    check.known_keys(doc, ("pool", "server"), "")
    pool = doc.get("pool")
    if not isinstance(pool, dict):
        raise check.error("[pool]", "a [pool] table is required" if pool is None else "must be a table")
    check.known_keys(pool, _POOL_KEYS, "[pool] ")
    if "name" not in pool:
        raise check.error("[pool] name", "required")
    name = check.text(pool["name"], "[pool] name", _POOL_NAME)

    timing = Timing(**{k: check.number(pool[k], f"[pool] {k}") for k in _TIMING_KEYS if k in pool})
    broken = timing_violations(timing)
    if broken:
        key, reason = broken[0]
        more = f" (and {len(broken) - 1} more timing rule(s) broken)" if len(broken) > 1 else ""
        raise check.error(f"[pool] {key}", reason + more)

    threshold = DEFAULT_BORROW_THRESHOLD
    if "borrow_threshold" in pool:
        threshold = check.threshold(pool["borrow_threshold"], "[pool] borrow_threshold")
    rebalance_idle = DEFAULT_REBALANCE_IDLE
    if "rebalance_idle" in pool:
        rebalance_idle = check.number(pool["rebalance_idle"], "[pool] rebalance_idle")
        if rebalance_idle <= 0:
            raise check.error("[pool] rebalance_idle", f"must be > 0 seconds, got {rebalance_idle!r}")
    queue_limit = DEFAULT_QUEUE_LIMIT
    if "queue_limit" in pool:
        value = pool["queue_limit"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise check.error("[pool] queue_limit", f"must be an integer >= 1, got {value!r}")
        queue_limit = value
    if not client and "admin_key_file" not in pool:
        raise check.error(
            "[pool] admin_key_file",
            "required for a server (it keys lease ids and admin messages); only a client config may omit it",
        )

    def optional_path(key: str) -> Path | None:
        return check.path(pool[key], f"[pool] {key}") if key in pool else None

    servers, warnings = _parse_servers(doc.get("server"), check, threshold)
    return PoolConfig(
        path=path,
        name=name,
        timing=timing,
        leader_preemption=(
            check.flag(pool["leader_preemption"], "[pool] leader_preemption") if "leader_preemption" in pool else False
        ),
        data_dir=check.path(pool.get("data_dir", "data"), "[pool] data_dir"),
        vendor_public_key=optional_path("vendor_public_key"),
        admin_key_file=optional_path("admin_key_file"),
        borrow_threshold=threshold,
        rebalance_idle=rebalance_idle,
        client_port=(check.port(pool["client_port"], "[pool] client_port") if "client_port" in pool else None),
        servers=servers,
        queue_limit=queue_limit,
        warnings=warnings,
    )


def _parse_servers(
    tables: object, check: _Checker, default_threshold: float
) -> tuple[tuple[ServerSpec, ...], tuple[str, ...]]:
    if tables is None:
        raise check.error("[[server]]", "at least one [[server]] table is required")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise check.error("[[server]]", "must be an array of tables: write [[server]] for each server")
    if not 1 <= len(tables) <= MAX_SERVERS:
        raise check.error("[[server]]", f"a pool has 1 to {MAX_SERVERS} servers, got {len(tables)}")
    specs: list[ServerSpec] = []
    names: set[str] = set()
    addresses: set[tuple[str, int]] = set()
    for index, table in enumerate(tables, start=1):
        where = f"server[{index}]."
        check.known_keys(table, _SERVER_KEYS, where)
        for required in ("name", "host", "port"):
            if required not in table:
                raise check.error(f"{where}{required}", "required")
        name = check.text(table["name"], f"{where}name", _NAME)
        host = check.text(table["host"], f"{where}host")
        if any(c.isspace() for c in host):
            raise check.error(f"{where}host", f"must not contain spaces, got {host!r}")
        port = check.port(table["port"], f"{where}port")
        threshold = default_threshold
        if "borrow_threshold" in table:
            threshold = check.threshold(table["borrow_threshold"], f"{where}borrow_threshold")
        metrics_port = None
        if "metrics_port" in table:
            metrics_port = check.port(table["metrics_port"], f"{where}metrics_port")
            if (host, metrics_port) in addresses or metrics_port == port:
                raise check.error(f"{where}metrics_port", f"{host}:{metrics_port} is already a server's admin port")
        if name in names:
            raise check.error(f"{where}name", f"duplicate server name {name!r}")
        if (host, port) in addresses:
            raise check.error(f"{where}port", f"duplicate address {host}:{port}")
        names.add(name)
        addresses.add((host, port))
        if metrics_port is not None:
            addresses.add((host, metrics_port))
        specs.append(ServerSpec(name, host, port, threshold, metrics_port))
    warnings: tuple[str, ...] = ()
    if len(specs) % 2 == 0:
        n = len(specs)
        warnings = (
            f"{check.label}: [[server]]: {n} servers is an even count: a majority needs "
            f"{n // 2 + 1}, so the pool survives no more failures than with {n - 1}",
        )
    return tuple(specs), warnings


# -- writing ----------------------------------------------------------------------


def write_secret_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Write private material with mode 0600.  FileExistsError unless ``force``."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_TRUNC keeps an existing file's old mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _toml_str(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def default_config_text(
    base_dir: Path | None = None,
    ports: Sequence[int] = DEFAULT_PORTS,
    *,
    name: str = "licpool",
    host: str = "127.0.0.1",
) -> str:
    """A loopback pool config with one server ``s1``, ``s2``, ... per port.

    Paths point into ``base_dir`` (absolute) or, when it is None, are relative to
    the config file: ``data/``, ``vendor.pub`` and ``admin.key``.
    """

    def where(filename: str) -> str:
        return _toml_str(str(base_dir / filename) if base_dir is not None else filename)

    t = Timing()
    lines = [
        "# licpool pool config (see docs/).  Relative paths are relative to this file.",
        "[pool]",
        f"name = {_toml_str(name)}",
        "# Timing, in seconds; the loader refuses values that break the documented",
        "# inequalities between them.",
        f"heartbeat_interval = {t.heartbeat_interval}",
        f"failure_timeout = {t.failure_timeout}",
        f"leader_lease = {t.leader_lease}",
        f"fence_timeout = {t.fence_timeout}",
        f"lease_ttl = {t.lease_ttl}",
        f"clock_drift = {t.clock_drift}",
        "leader_preemption = false",
        f"borrow_threshold = {DEFAULT_BORROW_THRESHOLD}",
        f"rebalance_idle = {DEFAULT_REBALANCE_IDLE}",
        f"data_dir = {where('data')}",
        f"vendor_public_key = {where('vendor.pub')}",
        f"admin_key_file = {where('admin.key')}",
        "",
        "# One table per server, in leader priority order.",
    ]
    for index, port in enumerate(ports, start=1):
        lines += ["[[server]]", f'name = "s{index}"', f"host = {_toml_str(host)}", f"port = {port}", ""]
    return "\n".join(lines)


def write_default_pool(directory: Path) -> Path:
    """Create the default 3-server loopback pool in ``directory``; return its config path.

    Writes ``pool.toml``, ``data/``, a throwaway vendor key pair (``vendor.key``,
    ``vendor.pub``) and a random ``admin.key``.  Files that already exist are kept,
    so a second call reuses the same pool.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(mode=0o700, exist_ok=True)

    private_path, public_path = directory / "vendor.key", directory / "vendor.pub"
    if private_path.exists():
        private_key = load_private_key(private_path.read_bytes())
    else:
        private_key = Ed25519PrivateKey.generate()
        write_secret_file(private_path, private_key_to_pem(private_key))
        public_path.unlink(missing_ok=True)
    if not public_path.exists():
        public_path.write_bytes(public_key_to_pem(private_key.public_key()))

    admin_path = directory / "admin.key"
    if not admin_path.exists():
        write_secret_file(admin_path, (secrets.token_urlsafe(32) + "\n").encode("ascii"))

    config_path = directory / "pool.toml"
    if not config_path.exists():
        config_path.write_text(default_config_text(None, DEFAULT_PORTS), encoding="utf-8")
    return config_path
