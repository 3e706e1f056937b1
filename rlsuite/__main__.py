"""``python -m rlsuite ...``: the ``rlsuite`` command (see :mod:`rlsuite.cli`)."""

import sys

from rlsuite.cli import main

sys.exit(main())
