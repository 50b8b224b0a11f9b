"""``python -m deep_potential`` runs the ``deep-potential`` command line."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
