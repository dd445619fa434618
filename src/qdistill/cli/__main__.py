"""``python -m qdistill.cli``."""

from qdistill.cli import main

main()
