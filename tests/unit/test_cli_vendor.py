"""The vendor CLI, ``license verify`` and ``config check``, in-process and as real processes."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from actors.cli import licpool
from actors.shell.config import write_default_pool

REPO = Path(__file__).resolve().parents[2]


def runner() -> CliRunner:
    # click < 8.2 mixes stderr into stdout unless told not to.
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        # (passed as a dict: the installed click's signature may not have it)
        options: dict[str, Any] = {"mix_stderr": False}
        return CliRunner(**options)
    return CliRunner()


def run(*args: str | Path, stdin: str | None = None) -> Result:
    return runner().invoke(licpool, [str(a) for a in args], input=stdin)


def ok(*args: str | Path) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def fails(*args: str | Path, needle: str = "", code: int | None = None) -> str:
    """Run, expect a one-line ``licpool: error:`` and a non-zero exit; return the line."""
    result = run(*args)
    assert result.exit_code != 0, result.stdout
    if code is not None:
        assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("licpool: error: "), lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "vendor.key", tmp_path / "vendor.pub"
    ok("vendor", "keygen", "--private-key", private, "--public-key", public)
    return private, public


def issue(private: Path, *extra: str) -> str:
    out = ok(
        "vendor",
        "issue",
        "--private-key",
        private,
        "--feature",
        "cad",
        "--version",
        "2.0",
        "--count",
        "10",
        "--expires",
        "2030-01-01",
        *extra,
    )
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("LP1.")
    return lines[0]


# -- keygen ---------------------------------------------------------------------------


def test_keygen_writes_private_key_0600(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()


def test_keygen_refuses_to_overwrite(keys: tuple[Path, Path]) -> None:
    private, public = keys
    before = private.read_bytes()
    fails("vendor", "keygen", "--private-key", private, "--public-key", public, needle="use --force")
    fails(
        "vendor",
        "keygen",
        "--private-key",
        private.with_name("new.key"),
        "--public-key",
        public,
        needle="already exists",
    )
    assert not private.with_name("new.key").exists()
    assert private.read_bytes() == before
    ok("vendor", "keygen", "--private-key", private, "--public-key", public, "--force")
    assert private.read_bytes() != before


def test_keygen_needs_two_files(tmp_path: Path) -> None:
    fails("vendor", "keygen", "--private-key", tmp_path / "k", "--public-key", tmp_path / "k", needle="different")


# -- issue and verify -------------------------------------------------------------------


def test_issue_verify_round_trip(keys: tuple[Path, Path]) -> None:
    private, public = keys
    code = issue(private, "--serial", "LP-7", "--distribution", "s1:4^s2:3", "--no-majority")
    out = ok("license", "verify", code, "--public-key", public)
    assert out.splitlines() == [
        "kind: license",
        "feature: cad",
        "version: 2.0",
        "count: 10",
        "expires: 2030-01-01",
        "serial: LP-7",
        "majority: false",
        "distribution: s1:4^s2:3",
        "version_match: range",
    ]
    fields = json.loads(ok("license", "verify", code, "--public-key", public, "--json"))
    assert fields["majority"] is False and fields["count"] == 10 and fields["version_match"] == "range"


def test_issue_exact_version(keys: tuple[Path, Path]) -> None:
    private, public = keys
    code = issue(private, "--exact-version")
    assert "version_match: exact" in ok("license", "verify", code, "--public-key", public).splitlines()
    fields = json.loads(ok("license", "verify", code, "--public-key", public, "--json"))
    assert fields["version_match"] == "exact" and fields["version"] == "2.0"


def test_default_serials_are_random(keys: tuple[Path, Path]) -> None:
    private, public = keys
    serials = {
        json.loads(ok("license", "verify", issue(private), "--public-key", public, "--json"))["serial"]
        for _ in range(3)
    }
    assert len(serials) == 3 and all(s.startswith("LP-") and len(s) == 15 for s in serials)


def test_verify_reads_stdin(keys: tuple[Path, Path]) -> None:
    private, public = keys
    result = run("license", "verify", "-", "--public-key", public, stdin=issue(private) + "\n")
    assert result.exit_code == 0 and "feature: cad" in result.stdout


@pytest.mark.parametrize("index", [0, 2, 3, 10, 100, -30, -1])
def test_changed_character_is_refused(keys: tuple[Path, Path], index: int) -> None:
    private, public = keys
    code = issue(private)
    i = index % len(code)
    changed = code[:i] + ("A" if code[i] != "A" else "B") + code[i + 1 :]
    fails("license", "verify", changed, "--public-key", public)


def test_truncated_code_is_refused(keys: tuple[Path, Path]) -> None:
    private, public = keys
    code = issue(private)
    fails("license", "verify", code[:60], "--public-key", public, needle="truncated or garbled")
    fails("license", "verify", code[:-5], "--public-key", public, needle="truncated or garbled")


def test_wrong_key_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, _ = keys
    other = tmp_path / "other"
    other.mkdir()
    ok("vendor", "keygen", "--private-key", other / "k", "--public-key", other / "p")
    fails("license", "verify", issue(private), "--public-key", other / "p", needle="does not verify")


def test_expired_code_is_refused(keys: tuple[Path, Path]) -> None:
    private, public = keys
    result = run(
        "vendor",
        "issue",
        "--private-key",
        private,
        "--feature",
        "cad",
        "--version",
        "2.0",
        "--count",
        "10",
        "--expires",
        "2001-01-01",
    )
    assert result.exit_code == 0
    assert "in the past" in result.stderr and result.stdout.startswith("LP1.")
    fails("license", "verify", result.stdout.strip(), "--public-key", public, needle="expired on 2001-01-01")


@pytest.mark.parametrize("count", ["0", "-3"])
def test_nonpositive_count_is_refused(keys: tuple[Path, Path], count: str) -> None:
    private, _ = keys
    fails(
        "vendor",
        "issue",
        "--private-key",
        private,
        "--feature",
        "cad",
        "--version",
        "2.0",
        "--count",
        count,
        "--expires",
        "2030-01-01",
        needle="count must be a positive integer",
    )
    fails(
        "vendor",
        "addon",
        "--private-key",
        private,
        "--of",
        "LP-1",
        "--count",
        count,
        needle="count must be a positive integer",
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--count", "x"], "'x' is not a valid integer"),
        (["--expires", "2030-13-01"], "expires must be a date"),
        (["--feature", "cad:2"], "feature must be"),
        (["--distribution", "s1=4"], "bad criteria entry"),
        (["--distribution", "s1:8^s2:8"], "assign 16 seats but the total is 10"),
    ],
)
def test_bad_issue_arguments(keys: tuple[Path, Path], args: list[str], needle: str) -> None:
    private, _ = keys
    base = {"--feature": "cad", "--version": "2.0", "--count": "10", "--expires": "2030-01-01"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [item for pair in base.items() for item in pair]
    fails("vendor", "issue", "--private-key", private, *flat, needle=needle)


def test_criteria_naming_an_unknown_server_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    config = write_default_pool(tmp_path / "pool")
    shutil.copy(public, tmp_path / "pool" / "vendor.pub")
    good = issue(private, "--distribution", "s1:4^s3:3")
    assert "distribution: s1:4^s3:3" in ok("license", "verify", good, "--config", config)
    bad = issue(private, "--distribution", "s1:4^s9:3")
    fails("license", "verify", bad, "--config", config, needle="s9 not in the pool (s1, s2, s3)")


def test_addon_round_trip(keys: tuple[Path, Path]) -> None:
    private, public = keys
    out = ok("vendor", "addon", "--private-key", private, "--of", "LP-7", "--count", "5", "--serial", "LP-8")
    assert len(out.splitlines()) == 1
    fields = ok("license", "verify", out.strip(), "--public-key", public).splitlines()
    assert fields == ["kind: addon", "of_serial: LP-7", "count: 5", "serial: LP-8"]


# -- bad input in general --------------------------------------------------------------------


def test_missing_key_file(tmp_path: Path) -> None:
    fails(
        "vendor",
        "addon",
        "--private-key",
        tmp_path / "nope",
        "--of",
        "LP-1",
        "--count",
        "1",
        needle="No such file or directory",
    )


def test_garbage_key_file(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("garbage\n")
    fails(
        "vendor",
        "addon",
        "--private-key",
        tmp_path / "k",
        "--of",
        "LP-1",
        "--count",
        "1",
        needle="not a PEM private key",
    )
    fails("license", "verify", "LP1.a.b", "--public-key", tmp_path / "k", needle="not a PEM public key")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bogus"], "No such command 'bogus'"),
        (["--bogus"], "No such option"),
        (["vendor", "issue"], "Missing option '--private-key'"),
        (["license", "verify", "LP1.x.y"], "exactly one of --config and --public-key"),
        (["license", "verify", "LP1.x.y", "--config", "a", "--public-key", "b"], "exactly one of"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], needle: str) -> None:
    fails(*args, needle=needle, code=2)


# -- config check --------------------------------------------------------------------------


def test_config_check(tmp_path: Path) -> None:
    config = write_default_pool(tmp_path)
    out = ok("config", "check", "--config", config)
    assert out.startswith("OK: ") and "3 server(s) (s1, s2, s3)" in out


def test_config_check_prints_warnings(tmp_path: Path) -> None:
    config = write_default_pool(tmp_path)
    text = config.read_text()
    config.write_text(text[: text.rindex("[[server]]")])
    result = run("config", "check", "--config", config)
    assert result.exit_code == 0 and result.stdout.startswith("OK: ")
    assert result.stderr.startswith("licpool: warning: ") and "even count" in result.stderr


def test_config_check_errors_are_one_line(tmp_path: Path) -> None:
    config = write_default_pool(tmp_path)
    config.write_text(config.read_text().replace("lease_ttl = 30.0", "lease_tll = 30.0"))
    line = fails("config", "check", "--config", config, needle="[pool] lease_tll: unknown key")
    assert str(config) in line
    fails("config", "check", "--config", tmp_path / "missing.toml", needle="config file not found")


def test_config_check_reads_the_admin_key(tmp_path: Path) -> None:
    config = write_default_pool(tmp_path)
    (tmp_path / "admin.key").write_text("too short")
    fails("config", "check", "--config", config, needle="at least 32")
    assert ok("config", "check", "--client", "--config", config).startswith("OK: ")


# -- real processes ------------------------------------------------------------------------


def spawn(command: Sequence[str], *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


COMMANDS = [[sys.executable, "-m", "actors"], [sys.executable, "-m", "actors.cli"]]
if shutil.which("licpool"):
    COMMANDS.append(["licpool"])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_round_trip_in_real_processes(tmp_path: Path, command: list[str]) -> None:
    keygen = spawn(command, "vendor", "keygen", "--private-key", "v.key", "--public-key", "v.pub", cwd=tmp_path)
    assert keygen.returncode == 0, keygen.stderr
    issued = spawn(
        command,
        "vendor",
        "issue",
        "--private-key",
        "v.key",
        "--feature",
        "cad",
        "--version",
        "2.0",
        "--count",
        "10",
        "--expires",
        "2030-01-01",
        cwd=tmp_path,
    )
    assert issued.returncode == 0, issued.stderr
    code = issued.stdout.strip()
    assert issued.stdout == code + "\n" and code.startswith("LP1.")

    verified = spawn(command, "license", "verify", code, "--public-key", "v.pub", cwd=tmp_path)
    assert verified.returncode == 0 and "count: 10" in verified.stdout

    index = len(code) // 2
    tampered = code[:index] + ("A" if code[index] != "A" else "B") + code[index + 1 :]
    refused = spawn(command, "license", "verify", tampered, "--public-key", "v.pub", cwd=tmp_path)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("licpool: error: ")
    assert "Traceback" not in refused.stderr


def test_issue_signs_weight_and_linger_and_verify_shows_them(keys: tuple[Path, Path]) -> None:
    private, public = keys
    code = issue(private, "--serial", "LP-W", "--weight", "3", "--linger", "2.5")
    out = ok("license", "verify", code, "--public-key", public)
    assert "weight: 3" in out.splitlines() and "linger: 2.5" in out.splitlines()
    plain = issue(private, "--serial", "LP-P")
    assert "weight" not in ok("license", "verify", plain, "--public-key", public)
