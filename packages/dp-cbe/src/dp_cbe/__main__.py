"""``python -m dp_cbe`` runs the ``dp-cbe`` command line."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
