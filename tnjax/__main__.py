"""``python -m tnjax``: the command line (see :mod:`tnjax.cli`)."""

import sys

from tnjax.cli import main

sys.exit(main())
