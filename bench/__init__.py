"""Benchmarks: raw Thespian echo (the baseline), the pool and persistence.

Run from the repository root, e.g. ``python -m bench.pool``.  They live
outside the ``actors`` package so that the installed wheel carries only what
a pool needs; they import the package like any other program.
"""
