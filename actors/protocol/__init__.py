"""licpool's wire protocol: one frozen dataclass per message.

Submodules by conversation:

* ``client``  -- client session <-> license server (the fast path);
* ``pool``    -- license server <-> leader (borrows, transfers, admin changes);
* ``raft``    -- elections and the distribution criteria sync (the log);
* ``entries`` -- the entries of the replicated pool log;
* ``admin``   -- the Thespian shell's own messages: peer envelopes, address
  lookups, status and sessions queries, app <-> client session.

Only classes defined in this package (and a short list of Thespian's own) may be
unpickled from the network; see ``docs/security.md``.
"""

from actors.protocol import admin, client, entries, pool, raft
from actors.protocol.admin import *  # noqa: F403
from actors.protocol.client import *  # noqa: F403
from actors.protocol.entries import *  # noqa: F403
from actors.protocol.pool import *  # noqa: F403
from actors.protocol.raft import *  # noqa: F403

__all__ = [*admin.__all__, *client.__all__, *entries.__all__, *pool.__all__, *raft.__all__]
