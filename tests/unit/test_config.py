"""pool.toml loading, checking and the default pool (actors.shell.config)."""

from __future__ import annotations

import pickle
import stat
from pathlib import Path

import pytest

from actors.core.timing import Timing
from actors.shell.config import (
    DEFAULT_PORTS,
    ConfigError,
    PoolConfig,
    default_config_text,
    load_config,
    write_default_pool,
    write_secret_file,
)

ADMIN_KEY = "a" * 40

POOL = """\
[pool]
name = "eng"
data_dir = "data"
admin_key_file = "admin.key"
{pool_extra}

[[server]]
name = "s1"
host = "10.0.0.1"
port = 1900

[[server]]
name = "s2"
host = "10.0.0.2"
port = 1900
{server_extra}

[[server]]
name = "s3"
host = "10.0.0.3"
port = 1900
"""


def write(directory: Path, text: str, name: str = "pool.toml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pool_text(pool_extra: str = "", server_extra: str = "") -> str:
    return POOL.format(pool_extra=pool_extra, server_extra=server_extra)


def load_error(path: Path, *, client: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, client=client)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return info.value


# -- a good config ------------------------------------------------------------------


def test_full_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, pool_text("lease_ttl = 40\nborrow_threshold = 0.8", "borrow_threshold = 0.5")))
    assert cfg.name == "eng"
    assert cfg.timing == Timing(lease_ttl=40.0)
    assert isinstance(cfg.timing.lease_ttl, float)
    assert cfg.server_names == ("s1", "s2", "s3")
    assert [s.borrow_threshold for s in cfg.servers] == [0.8, 0.5, 0.8]
    assert cfg.server("s2").address == "10.0.0.2:1900"
    assert cfg.leader_preemption is False
    assert cfg.rebalance_idle == 60.0
    assert cfg.client_port is None
    assert cfg.vendor_public_key is None
    assert cfg.warnings == ()


def test_unknown_server_lookup_is_an_error(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, pool_text()))
    with pytest.raises(ConfigError, match="no server named 's9'"):
        cfg.server("s9")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = pool_text('vendor_public_key = "../keys/vendor.pub"').replace('"data"', '"state/d"')
    path = write(tmp_path / "etc", text)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("etc/pool.toml"))
    etc = tmp_path / "etc"
    assert cfg.path == etc / "pool.toml"
    assert cfg.data_dir == etc / "state" / "d"
    assert cfg.admin_key_file == etc / "admin.key"
    assert cfg.vendor_public_key is not None
    assert cfg.vendor_public_key.resolve() == (tmp_path / "keys" / "vendor.pub").resolve()
    assert load_config(path) == cfg


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, pool_text().replace('"data"', '"/var/lib/licpool"')))
    assert cfg.data_dir == Path("/var/lib/licpool")


def test_client_config_needs_only_name_and_servers(tmp_path: Path) -> None:
    path = write(tmp_path, '[pool]\nname = "eng"\n[[server]]\nname = "s1"\nhost = "h1"\nport = 1900\n')
    cfg = load_config(path, client=True)
    assert cfg.server_names == ("s1",)
    assert cfg.admin_key_file is None and cfg.vendor_public_key is None
    assert cfg.timing == Timing()
    with pytest.raises(ConfigError, match=r"\[pool\] admin_key_file: not set"):
        cfg.admin_secret()
    with pytest.raises(ConfigError, match=r"\[pool\] vendor_public_key: not set"):
        cfg.vendor_key()


def test_server_config_needs_the_admin_key_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[pool]\nname = "eng"\n[[server]]\nname = "s1"\nhost = "h1"\nport = 1900\n')
    error = load_error(path)
    assert error.key == "[pool] admin_key_file" and "required" in error.reason


def test_client_config_still_checks_keys_it_does_not_need(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, pool_text("lease_ttl = 1")), client=True)
    assert error.key == "[pool] lease_ttl"


# -- errors name the file and the key -------------------------------------------------


@pytest.mark.parametrize(
    ("pool_extra", "server_extra", "key", "reason"),
    [
        ("lease_tll = 30", "", "[pool] lease_tll", "did you mean 'lease_ttl'?"),
        ("", "prot = 1", "server[2].prot", "did you mean 'port'?"),
        ("", "port = 1900", "TOML syntax", "Cannot overwrite a value"),
        ("heartbeat_interval = true", "", "[pool] heartbeat_interval", "must be a finite number, got True"),
        ("lease_ttl = nan", "", "[pool] lease_ttl", "finite number"),
        ("lease_ttl = inf", "", "[pool] lease_ttl", "finite number"),
        ("lease_ttl = '30'", "", "[pool] lease_ttl", "finite number, got '30'"),
        ("failure_timeout = 1.0", "", "[pool] failure_timeout", "must satisfy f >= 3h"),
        ("lease_ttl = 10", "", "[pool] lease_ttl", "must satisfy T(1-rho) >= failover_seat_bound"),
        ("clock_drift = 0.5", "", "[pool] clock_drift", "0 <= rho <= 0.1"),
        ("heartbeat_interval = 0", "", "[pool] heartbeat_interval", "h > 0"),
        ("borrow_threshold = 0", "", "[pool] borrow_threshold", "(0, 1]"),
        ("borrow_threshold = 1.5", "", "[pool] borrow_threshold", "(0, 1]"),
        ("", "borrow_threshold = 0", "server[2].borrow_threshold", "(0, 1]"),
        ("leader_preemption = 'yes'", "", "[pool] leader_preemption", "true or false"),
        ("leader_preemption = 1", "", "[pool] leader_preemption", "true or false"),
        ("rebalance_idle = 0", "", "[pool] rebalance_idle", "> 0"),
        ("client_port = true", "", "[pool] client_port", "integer 1..65535, got True"),
        ("name = 'x'", "", "TOML syntax", ""),
    ],
)
def test_bad_pool_values(tmp_path: Path, pool_extra: str, server_extra: str, key: str, reason: str) -> None:
    path = write(tmp_path, pool_text(pool_extra, server_extra))
    error = load_error(path)
    assert error.key == key
    assert reason in error.reason
    assert str(error) == f"{path}: {key}: {error.reason}"


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ('"10.0.0.2"\nport = 1900', '"10.0.0.2"\nport = "x"', "server[2].port", "must be an integer 1..65535, got 'x'"),
        ('data_dir = "data"', "data_dir = 3", "[pool] data_dir", "non-empty string"),
        ('data_dir = "data"', "data_dir = ''", "[pool] data_dir", "non-empty string"),
        ('"10.0.0.2"\nport = 1900', '"10.0.0.2"\nport = 0', "server[2].port", "1..65535, got 0"),
        ('"10.0.0.2"\nport = 1900', '"10.0.0.2"\nport = 65536', "server[2].port", "1..65535"),
        ('"10.0.0.2"\nport = 1900', '"10.0.0.2"\nport = true', "server[2].port", "got True"),
        ('"10.0.0.2"\nport = 1900', '"10.0.0.2"\nport = 1900.0', "server[2].port", "got 1900.0"),
        ('name = "s2"', 'name = "s1"', "server[2].name", "duplicate server name 's1'"),
        ('name = "s2"', 'name = "s.2"', "server[2].name", "must match"),
        ('name = "s2"', 'name = ""', "server[2].name", "non-empty"),
        ('"10.0.0.2"', '"10.0.0.1"', "server[2].port", "duplicate address 10.0.0.1:1900"),
        ('"10.0.0.2"', '"10.0.0 .2"', "server[2].host", "spaces"),
        ('name = "s2"\n', "", "server[2].name", "required"),
        ('host = "10.0.0.2"\n', "", "server[2].host", "required"),
        ('name = "eng"\n', "", "[pool] name", "required"),
        ('name = "eng"', 'name = "my pool"', "[pool] name", "must match"),
        ("[pool]", "[pools]\n[pool]", "pools", "unknown key"),
    ],
)
def test_bad_structure(tmp_path: Path, old: str, new: str, key: str, reason: str) -> None:
    text = pool_text()
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1))
    error = load_error(path)
    assert error.key == key
    assert reason in error.reason
    assert str(error) == f"{path}: {key}: {error.reason}"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[pool]\nname = "eng"\n', "[[server]]", "at least one"),
        ('server = []\n[pool]\nname = "eng"\n', "[[server]]", "1 to 11 servers, got 0"),
        ('[pool]\nname = "eng"\n[server]\nname = "s1"\n', "[[server]]", "array of tables"),
        ('[[server]]\nname = "s1"\nhost = "h"\nport = 1\n', "[pool]", "required"),
        ("pool = 3\n", "[pool]", "must be a table"),
    ],
)
def test_bad_tables(tmp_path: Path, text: str, key: str, reason: str) -> None:
    error = load_error(write(tmp_path, text), client=True)
    assert error.key == key and reason in error.reason


def test_twelve_servers_are_refused(tmp_path: Path) -> None:
    servers = "".join(f'[[server]]\nname = "s{i}"\nhost = "h"\nport = {2000 + i}\n' for i in range(12))
    error = load_error(write(tmp_path, f'[pool]\nname = "eng"\n{servers}'), client=True)
    assert "1 to 11 servers, got 12" in error.reason


def test_timing_violation_reports_how_many_rules_broke(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, pool_text("heartbeat_interval = 5.0")))
    assert error.key == "[pool] failure_timeout"
    assert "more timing rule(s) broken" in error.reason


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: config file not found"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_bytes(b"\xff\xfe")
    assert "UTF-8" in str(load_error(path))


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "[pool\nname = 1\n"))
    assert error.key == "TOML syntax" and "line 1" in error.reason


# -- warnings --------------------------------------------------------------------------


def test_even_server_count_warns(tmp_path: Path) -> None:
    text = pool_text().split('[[server]]\nname = "s3"')[0]
    cfg = load_config(write(tmp_path, text))
    assert len(cfg.servers) == 2
    assert len(cfg.warnings) == 1
    assert "even count" in cfg.warnings[0] and "[[server]]" in cfg.warnings[0]
    assert "\n" not in cfg.warnings[0]


def test_odd_server_count_does_not_warn(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, pool_text())).warnings == ()


# -- shared settings hash ---------------------------------------------------------------


def _hash(tmp_path: Path, text: str, name: str) -> str:
    return load_config(write(tmp_path, text, name)).settings_hash()


def test_settings_hash_ignores_per_host_settings(tmp_path: Path) -> None:
    base = _hash(tmp_path, pool_text(), "a.toml")
    assert base == _hash(tmp_path / "other", pool_text("client_port = 4000"), "b.toml")
    assert base == _hash(tmp_path, pool_text('vendor_public_key = "v.pub"').replace('"data"', '"x"'), "c.toml")
    assert base == _hash(tmp_path, pool_text("lease_ttl = 30"), "d.toml")  # 30 == 30.0


@pytest.mark.parametrize(
    ("pool_extra", "server_extra"),
    [
        ("lease_ttl = 31", ""),
        ("leader_preemption = true", ""),
        ("borrow_threshold = 0.8", ""),
        ("rebalance_idle = 30", ""),
        ("", "borrow_threshold = 0.5"),
    ],
)
def test_settings_hash_covers_shared_settings(tmp_path: Path, pool_extra: str, server_extra: str) -> None:
    assert _hash(tmp_path, pool_text(), "a.toml") != _hash(tmp_path, pool_text(pool_extra, server_extra), "b.toml")


def test_settings_hash_covers_servers_and_their_order(tmp_path: Path) -> None:
    base = _hash(tmp_path, pool_text(), "a.toml")
    assert base != _hash(tmp_path, pool_text().replace("port = 1900\n", "port = 1901\n", 1), "b.toml")
    swapped = pool_text().replace('"s1"', '"tmp"').replace('"s2"', '"s1"').replace('"tmp"', '"s2"')
    assert base != _hash(tmp_path, swapped, "c.toml")


# -- admin secret ---------------------------------------------------------------------


def test_admin_secret_is_stripped_content(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, pool_text()))
    (tmp_path / "admin.key").write_text(f"  {ADMIN_KEY}\n")
    assert cfg.admin_secret() == ADMIN_KEY


def test_short_admin_secret_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, pool_text())
    (tmp_path / "admin.key").write_text("short\n")
    with pytest.raises(ConfigError) as info:
        load_config(path).admin_secret()
    assert str(info.value).startswith(f"{tmp_path / 'pool.toml'}: [pool] admin_key_file: ")
    assert "at least 32" in str(info.value)


def test_missing_admin_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"admin_key_file: cannot read .*admin.key: No such file"):
        load_config(write(tmp_path, pool_text())).admin_secret()


def test_garbage_vendor_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, pool_text('vendor_public_key = "v.pub"')))
    (tmp_path / "v.pub").write_text("garbage")
    with pytest.raises(ConfigError, match=r"vendor_public_key: .*v.pub: not a PEM public key"):
        cfg.vendor_key()


# -- default pool -----------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_default_pool(tmp_path: Path) -> None:
    directory = tmp_path / "licpool-pool"
    path = write_default_pool(directory)
    assert path == directory / "pool.toml"
    cfg = load_config(path)
    assert isinstance(cfg, PoolConfig)
    assert cfg.warnings == ()
    assert [(s.host, s.port) for s in cfg.servers] == [("127.0.0.1", p) for p in DEFAULT_PORTS]
    assert cfg.server_names == ("s1", "s2", "s3")
    assert cfg.data_dir == directory / "data" and cfg.data_dir.is_dir()
    assert len(cfg.admin_secret()) >= 32
    cfg.vendor_key()
    assert mode(directory / "admin.key") == 0o600
    assert mode(directory / "vendor.key") == 0o600
    assert cfg.timing == Timing()


def test_write_default_pool_keeps_existing_files(tmp_path: Path) -> None:
    path = write_default_pool(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("pool.toml", "admin.key", "vendor.key", "vendor.pub")}
    (tmp_path / "vendor.pub").unlink()
    assert write_default_pool(tmp_path) == path
    after = {name: (tmp_path / name).read_bytes() for name in before}
    assert after == before


def test_default_config_text_with_base_dir_and_ports(tmp_path: Path) -> None:
    text = default_config_text(tmp_path / "state", [4001, 4002, 4003, 4004, 4005], name="demo")
    cfg = load_config(write(tmp_path / "elsewhere", text))
    assert cfg.name == "demo"
    assert [s.port for s in cfg.servers] == [4001, 4002, 4003, 4004, 4005]
    assert cfg.data_dir == tmp_path / "state" / "data"
    assert cfg.admin_key_file == tmp_path / "state" / "admin.key"


def test_default_config_text_escapes_paths(tmp_path: Path) -> None:
    odd = tmp_path / 'we"ird\\dir ü'
    cfg = load_config(write(tmp_path, default_config_text(odd)))
    assert cfg.data_dir == odd / "data"


# -- secret files -----------------------------------------------------------------------


def test_write_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_secret_file(path, b"one")
    assert path.read_bytes() == b"one" and mode(path) == 0o600
    with pytest.raises(FileExistsError):
        write_secret_file(path, b"two")
    path.chmod(0o644)
    write_secret_file(path, b"two", force=True)
    assert path.read_bytes() == b"two" and mode(path) == 0o600


def test_config_errors_survive_pickling(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, pool_text("lease_ttl = 1")))
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ConfigError)
    assert (copy.file, copy.key, copy.reason, str(copy)) == (error.file, error.key, error.reason, str(error))
