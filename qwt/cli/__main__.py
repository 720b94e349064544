"""``python -m qwt.cli``: the same as the ``qwt`` console script."""

import sys

from qwt.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
