"""``python -m smpcloud``: the same as the ``smpcloud`` command."""

from smpcloud.cli import main

main()
