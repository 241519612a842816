"""`python -m activegen.cli`: the same as the `activegen` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
