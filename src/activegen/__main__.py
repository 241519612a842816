"""`python -m activegen`: the same as the `activegen` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
