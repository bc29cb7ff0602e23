"""``python -m backend.cli``: the same as the ``citizen`` console script."""

import sys

from backend.cli import main

sys.exit(main())
