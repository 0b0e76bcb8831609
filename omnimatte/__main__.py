"""`python -m omnimatte`: the same command as `omnimatte`."""

import sys

from omnimatte.cli import main

sys.exit(main())
