"""deploy/: the systemd template unit passes ``systemd-analyze verify``; the
example config loads, documents every key the loader knows, and comments each."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from actors.shell import config as config_module
from actors.shell.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "systemd" / "licpool-server@.service"
EXAMPLE = DEPLOY / "pool.example.toml"


def _unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("["):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_the_named_server_as_its_own_user_and_stops_the_whole_host() -> None:
    unit = _unit_settings()
    assert unit["ExecStart"] == [
        "/usr/local/bin/licpool server --config /etc/licpool/pool.toml --name %i --console-level WARNING"
    ]
    assert unit["KillMode"] == ["mixed"] and unit["Restart"] == ["on-failure"]
    assert unit["User"] == ["licpool"] and unit["StateDirectory"] == ["licpool/%i"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["CapabilityBoundingSet"] == [""]
    # Thespian forks and signals its own group: the filter must allow that.
    assert unit["SystemCallFilter"] == ["@system-service"]
    assert "MemoryDenyWriteExecute" not in unit and "PrivateNetwork" not in unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    # verify checks that ExecStart's program exists: point it at an installed
    # licpool, or this interpreter (`python -m actors` is the same command).
    installed = shutil.which("licpool")
    program = installed if installed else f"{sys.executable} -m actors"
    instance = tmp_path / "licpool-server@s1.service"
    instance.write_text(UNIT.read_text().replace("/usr/local/bin/licpool", program))
    done = subprocess.run([tool, "verify", str(instance)], capture_output=True, text=True, timeout=60)
    # Only what it says about this unit counts (it may grumble about the host's own units).
    said = [line for line in (done.stdout + done.stderr).splitlines() if instance.name in line]
    assert done.returncode == 0 and not said, (done.returncode, done.stdout, done.stderr)


def test_the_example_config_loads_and_comments_every_key_the_loader_knows() -> None:
    cfg = load_config(EXAMPLE)
    assert len(cfg.servers) == 3 and not cfg.warnings
    assert all(s.metrics_port for s in cfg.servers)
    text = EXAMPLE.read_text()
    written = set(re.findall(r"^#? ?([a-z_]+) = ", text, re.MULTILINE))
    assert set(config_module._POOL_KEYS) <= written, set(config_module._POOL_KEYS) - written
    assert set(config_module._SERVER_KEYS) <= written, set(config_module._SERVER_KEYS) - written
    lines = text.splitlines()
    first_server = next(i for i, line in enumerate(lines) if line == "[[server]]")
    for i, line in enumerate(lines[: first_server + 6]):  # [pool] and the first [[server]]: every key explained
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("#"), f"pool.example.toml line {i + 1} ({line}) has no comment"
    for needed in ("admin.key", "vendor.pub", "ephemeral", "metrics_port", "1950"):
        assert needed in text
