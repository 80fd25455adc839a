"""The Thespian shell's helpers: actor systems, addresses, persistence glue,
queries and launching.  The actors themselves are ``actors.shell.server_actor``,
``actors.shell.leader_actor`` and ``actors.shell.session_actor``; the pure decisions are in
``actors.core``."""
