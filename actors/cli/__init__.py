"""The ``licpool`` command line: ``main`` is the console script.

``main.py`` holds the group and the read-only commands, ``pool.py`` the
commands that run or change a pool, ``vendor.py`` the vendor side, and
``demo.py`` the embedded demo.
"""

from actors.cli.main import licpool, main

__all__ = ["licpool", "main"]
