"""The public Python client API (the client actor proxy for apps).

    from actors.client import LicenseClient, LicenseDenied
    with LicenseClient.from_config("pool.toml", client_id="ws17/cad") as client:
        with client.checkout("cad", version="2.0", timeout=5.0) as auth:
            ...  # auth.lease_id, auth.server, auth.lost (threading.Event)

This module is the stable import path that apps rely on; the proxy itself is
``actors.shell.client_proxy`` and the session actor it starts is
``actors.shell.session_actor``.
"""

from actors.shell.client_proxy import Authorization, DenyReason, LicenseClient, LicenseDenied

__all__ = ["Authorization", "DenyReason", "LicenseClient", "LicenseDenied"]
