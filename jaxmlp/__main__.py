"""``python -m jaxmlp``: the command line (see :mod:`jaxmlp.cli`)."""

import sys

from jaxmlp.cli import main

if __name__ == "__main__":
    sys.exit(main())
