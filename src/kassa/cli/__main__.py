"""`python -m kassa.cli …`: the same as the `kassa` console script."""

from kassa.cli import main

main()
