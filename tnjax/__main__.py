"""``python -m tnjax``: the command line (see :mod:`tnjax.cli`)."""

import sys

from tnjax.cli import main

if __name__ == "__main__":
    sys.exit(main())
