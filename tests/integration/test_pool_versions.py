"""Version ranges through real actors (issue 14 item 2): a checkout for 2.0 is
served by a license for 2.5; an exact-version code serves its own version only;
``licpool status`` shows the mode."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from actors.client import LicenseDenied
from actors.protocol.client import DenyReason


def _in_use(status: Any, version: str) -> int:
    (table,) = [f for f in status.features if (f.feature, f.version) == ("cad", version)]
    return sum(u.in_use for u in table.servers)


def test_version_2_0_is_served_by_a_2_5_code(licpool_pool: Any) -> None:
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(2, version="2.5"))
    pool.add_license(pool.license(2, version="3.0", version_match="exact"))
    client = pool.client("ws1/cad", prefer="s2")

    auth = client.checkout("cad", version="2.0", timeout=5.0)
    assert (auth.version, auth.licensed_version) == ("2.0", "2.5")
    pool.wait_status(
        lambda s: _in_use(s, "2.5") == 1 and _in_use(s, "3.0") == 0, 5.0, "the 2.5 table to count the lease", name="s2"
    )
    leases, _silent = pool.link.sessions("cad", "2.5")
    assert [x.lease_id for x in leases] == [auth.lease_id]

    # The exact 3.0 code serves 3.0 requests only; nothing serves 3.1.
    assert client.checkout("cad:3.0", timeout=5.0).licensed_version == "3.0"
    with pytest.raises(LicenseDenied) as denied:
        client.checkout("cad", version="3.1", timeout=5.0)
    assert denied.value.reason == DenyReason.UNKNOWN_FEATURE

    result = subprocess.run(
        [sys.executable, "-m", "actors", "status", "--config", str(pool.config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    modes = {f["version"]: f["version_match"] for f in json.loads(result.stdout)["features"]}
    assert modes == {"2.5": "range", "3.0": "exact"}
    text = subprocess.run(
        [sys.executable, "-m", "actors", "status", "--config", str(pool.config)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert any(line.startswith("cad 3.0:") and "exact version" in line for line in text.splitlines()), text

    auth.release()
    pool.wait_status(lambda s: _in_use(s, "2.5") == 0, 5.0, "the release", name="s2")
