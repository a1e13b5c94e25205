"""``python -m reachwatch.streams.cli``: the ``reachwatch`` command."""

from reachwatch.streams.cli.main import main

main()
