"""``python -m hpcdist`` is the same as the ``hpcdist`` console script."""

import sys

from hpcdist.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
