"""The ``rlsuite`` command: one module per command group, parsing and printing only.

    rlsuite list                              agents (with what each learns from) and environments
    rlsuite train <algo> [options]            any registered agent (rlsuite train <algo> --help)
    rlsuite eval RUN [options]                evaluate any run directory
    rlsuite export RUN --format onnx|torchscript --out FILE
    rlsuite deploy | serve-policy             run an exported policy (see rlsuite.cli.deploy)
    rlsuite data | stl | cop | llm ...        datasets, STL formulas, combinatorial problems, language models

The work itself lives in the library (``rlsuite.agents.train``, ``rlsuite.offline.train``,
``rlsuite.envs.cop.train``, ``rlsuite.runs``, ...); these modules only parse and print.
"""

from __future__ import annotations

import importlib
import logging
import sys

from rlsuite.core.registry import UnknownNameError, unknown_name_message

USAGE = """usage: rlsuite <command> [options]

commands:
  list                      agents (and what each learns from) and environments
  train <algo> [options]    train any agent: ppo, sac, tgpo (env); bc, iql, uni-o4 (--dataset); bq-nco (instances)
                            rlsuite train <algo> --help lists every option with its default
  eval RUN [options]        evaluate a run (returns; instance solvers: cost on fresh instances)
  export RUN --format onnx|torchscript --out FILE   export a run's policy, parity-checked
  deploy --robot sim:ENV --policy FILE   run an exported policy sim-to-sim (--compare-gym, --remote)
  serve-policy FILE --port N            serve an exported policy on loopback (key from file or env)
  data collect|list|info    D4RL-style datasets made locally (Minari format)
  stl check|sample          Signal Temporal Logic: robustness of a formula on a trace, generated tasks
  cop generate|label|solve  combinatorial problems: instances, reference solvers, solving files with BQ-NCO
  llm list|sft|train|eval   language-model policy optimisation on synthetic tasks
"""

# command -> (module under rlsuite.cli, function)
COMMANDS = {
    "list": ("train", "cmd_list"),
    "train": ("train", "cmd_train"),
    "eval": ("train", "cmd_eval"),
    "export": ("deploy", "cmd_export"),
    "deploy": ("deploy", "cmd_deploy"),
    "serve-policy": ("deploy", "cmd_serve_policy"),
    "data": ("data", "cmd_data"),
    "stl": ("stl", "cmd_stl"),
    "cop": ("cop", "cmd_cop"),
    "llm": ("llm", "cmd_llm"),
}


def setup_logging(verbose: bool = False) -> None:
    """Log lines through rich on stderr (the commands' results go to stdout)."""
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)],
        force=True,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    setup_logging(verbose="--verbose" in rest)
    rest = [a for a in rest if a != "--verbose"]
    if cmd not in COMMANDS:
        print(f"error: {unknown_name_message('command', cmd, COMMANDS)}", file=sys.stderr)
        return 2
    module, func = COMMANDS[cmd]
    handler = getattr(importlib.import_module(f"rlsuite.cli.{module}"), func)
    from rlsuite.core.checkpoint import CheckpointError
    from rlsuite.core.run import NothingToDo

    try:
        return handler(rest)
    except NothingToDo as e:
        print(str(e))
        return 0
    except (UnknownNameError, ValueError, FileExistsError, FileNotFoundError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
