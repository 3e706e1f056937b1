"""Signal Temporal Logic tasks: the specification language, batched robustness, task generator.

- :mod:`rlsuite.envs.stl.spec`: formula tree, parser (rtamt-style and short forms), printer.
- :mod:`rlsuite.envs.stl.robustness`: hard and smooth robustness traces, batched in torch.
- :mod:`rlsuite.envs.stl.tasks`: seeded task generator after the TeLoGraF families.
"""

from rlsuite.envs.stl.robustness import robustness
from rlsuite.envs.stl.spec import ParseError, parse, to_text

__all__ = ["ParseError", "parse", "robustness", "to_text"]
