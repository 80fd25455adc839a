"""``licpool check``: before a pool runs, against a running pool, and the
failures an operator meets (bad config, an open admin key, a busy port, a
config whose settings differ from the running servers')."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from actors.shell.config import write_default_pool
from tests.integration.procs import free_port

ROOT = Path(__file__).resolve().parents[2]


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", "check", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def _doc(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _status(doc: dict[str, Any], check: str) -> str:
    (found,) = [c["status"] for c in doc["checks"] if c["check"] == check]
    return str(found)


def _fresh_pool(tmp_path: Path) -> Path:
    config = write_default_pool(tmp_path / "pool")
    text = config.read_text()
    for old in ("1950", "1951", "1952"):
        text = text.replace(f"port = {old}", f"port = {free_port()}")
    config.write_text(text)
    return config


def test_before_the_pool_runs_the_host_checks_pass_and_the_silent_peers_are_named(tmp_path: Path) -> None:
    config = _fresh_pool(tmp_path)
    done = _check("--config", str(config), "--name", "s1")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ok    config")
    assert any(re.match(r"ok\s+admin port\s+127\.0\.0\.1:\d+ is free", x) for x in lines), lines
    assert [x.split()[2] for x in lines if x.startswith("warn  reach")] == ["s2", "s3"]
    assert lines[-1].endswith("0 failed, 2 warnings")


def test_bad_input_and_unsafe_hosts_fail_with_one_line_each(tmp_path: Path) -> None:
    missing = _check("--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1 and missing.stdout.count("\n") == 2, missing.stdout
    assert "FAIL  config" in missing.stdout and "config file not found" in missing.stdout
    config = _fresh_pool(tmp_path)
    unknown = _check("--config", str(config), "--name", "s9", "--json")
    assert unknown.returncode == 1 and _status(_doc(unknown), "name") == "FAIL"

    (config.parent / "admin.key").chmod(0o644)
    with socket.socket() as busy:  # s1's admin port held by some other program
        found = re.search(r'name = "s1"\nhost = "127.0.0.1"\nport = (\d+)', config.read_text())
        assert found is not None
        port = int(found[1])
        busy.bind(("127.0.0.1", port))
        busy.listen()
        done = _check("--config", str(config), "--name", "s1", "--json")
    doc = _doc(done)
    assert done.returncode == 1 and doc["ok"] is False
    assert _status(doc, "key admin") == "FAIL" and _status(doc, "admin port") == "FAIL"
    assert "chmod 600" in next(c["detail"] for c in doc["checks"] if c["check"] == "key admin")
    busy_port = next(c["detail"] for c in doc["checks"] if c["check"] == "admin port")
    assert "another program holds it, or s1 is still starting" in busy_port, busy_port
    assert "Traceback" not in done.stderr


def test_against_a_running_pool_every_check_passes_and_a_differing_config_is_caught(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    done = _check("--config", str(pool.config), "--name", "s1", "--json")
    doc = _doc(done)
    assert done.returncode == 0 and doc["ok"], done.stdout
    assert {c["check"]: c["status"] for c in doc["checks"]} == {
        "config": "ok",
        "key admin": "ok",
        "key vendor": "ok",
        "address": "ok",
        "admin port": "ok",
        "reach s2": "ok",
        "reach s3": "ok",
        "settings s2": "ok",
        "settings s3": "ok",
        "clock s2": "ok",
        "clock s3": "ok",
    }
    assert "in use by server s1, which is running" in json.dumps(doc)
    clock = next(c["detail"] for c in doc["checks"] if c["check"] == "clock s2")
    assert re.search(r"offset [+-]\d+\.\d ms, rate \d+\.\d+% ± \d+\.\d+% over 1\.\d s", clock), clock

    other = pool.config.parent / "other.toml"
    other.write_text(pool.config.read_text().replace("heartbeat_interval = 0.1", "heartbeat_interval = 0.05"))
    done = _check("--config", str(other), "--json")
    doc = _doc(done)
    assert done.returncode == 1
    assert {_status(doc, f"settings {n}") for n in pool.names} == {"FAIL"}
    print(f"\n{clock}")
