"""The status page of a real pool, rendered by headless Chromium (Debian's
``chromium``): the DOM shows the pool's real leader, epoch and seat counts.
Skipped, with the reason, where Chromium is not installed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from actors.cli.web import LiveSource, make_app
from tests.integration.procs import free_port
from tools.web_screenshot import chromium_missing, dump_dom, serving


def test_chromium_renders_the_real_pools_numbers(licpool_pool: Any) -> None:
    why = chromium_missing()
    if why is not None:
        pytest.skip(why)
    pool = licpool_pool()
    pool.wait_formed()
    pool.add_license(pool.license(10))
    client = pool.client("web-client", prefer="s2")
    client.checkout("cad", version="2.0", timeout=5.0)
    client.checkout("cad", version="2.0", timeout=5.0)
    status = pool.wait_status(
        lambda s: sum(u.in_use for f in s.features for u in f.servers) == 2, 10.0, "two leases committed"
    )
    source = LiveSource(pool.cfg)
    try:
        with serving(make_app(source, pool.cfg.name), "127.0.0.1", free_port()) as url:
            dom = dump_dom(url)
    finally:
        source.close()
    assert f'<b id="leader">{status.leader}</b>' in dom
    epoch = re.search(r'<b id="epoch">(\d+)</b>', dom)
    assert epoch is not None and epoch[1] == str(status.epoch)
    (feature,) = status.features
    for u in feature.servers:
        assert f'class="use-{u.server}">{u.in_use} in use / {u.allocated} allocated' in dom, u
    assert "cad 2.0: 10 seats" in dom and '<span class="in-use-total">2</span>' in dom
    sessions = dom.split('id="sessions"')[1].split("</table>")[0]
    assert sessions.count("web-client") == 2 and "T1" in dom
    events = dom.split('id="events"')[1].split("</table>")[0]
    assert "grant" in events  # from the audit logs under the pool's data_dir
    assert "DOWN" not in dom
