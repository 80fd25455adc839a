"""``python -m actors.cli``: the ``licpool`` command line."""

from actors.cli.main import main

main()
