"""``python -m actors``: the ``licpool`` command line."""

from actors.cli import main

main()
