"""Benchmarks: raw Thespian echo (the baseline), the pool and persistence.

``python -m actors.bench.pool`` (issue 12's command), ``actors.bench.echo``,
``actors.bench.persist``, ``actors.bench.heartbeat``, ``actors.bench.profile``.
They ship with the package, so an operator can measure a pool's machine
with the installed ``licpool``; no pool code imports them.
"""
