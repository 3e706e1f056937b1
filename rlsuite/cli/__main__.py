"""``python -m rlsuite.cli``: the same as the ``rlsuite`` command."""

import sys

from rlsuite.cli import main

sys.exit(main())
