"""The Thespian shell's helpers: actor systems, addresses, persistence glue,
queries and launching.  The actors themselves are ``actors.server``,
``actors.leader`` and ``actors.session``; the pure decisions are in
``actors.core``."""
