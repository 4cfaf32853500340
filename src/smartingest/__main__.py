"""``python -m smartingest`` runs the command line."""

from smartingest.cli import main

main()
