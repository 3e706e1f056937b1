"""The ``rlsuite`` command: one module per command group, parsing and printing only.

    rlsuite list                              agents (with what each learns from) and environments
    rlsuite train <algo> [options]            any registered agent (rlsuite train <algo> --help)
    rlsuite eval RUN [options]                evaluate any run directory
    rlsuite export RUN --format onnx|torchscript --out FILE
    rlsuite deploy | serve-policy             run an exported policy (see rlsuite.cli.deploy)
    rlsuite data | stl | cop | llm ...        datasets, STL formulas, combinatorial problems, language models
    rlsuite presets [ALGO] [--env ID]         tuned values per agent and env, and where they come from
    rlsuite plot RUN_DIR... --out FIG         compare runs: mean and spread across seeds
    rlsuite report PATH...                    aggregate report: IQM, intervals, profiles, P(X > Y)
    rlsuite sweep SPEC.yaml                   settings x seeds as Ray tasks (locally or on a cluster), resumable
    rlsuite --version                         rlsuite's and torch's versions

The work itself lives in the library (``rlsuite.agents.train``, ``rlsuite.offline.train``,
``rlsuite.envs.cop.train``, ``rlsuite.runs``, ...); these modules only parse and print.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

from rlsuite.core.registry import UnknownNameError, unknown_name_message

USAGE = """usage: rlsuite <command> [options]

commands:
  list                      agents (and what each learns from) and environments
  train <algo> [options]    train any agent: ppo, sac, tgpo, subpo, modpo (env); bc, iql, uni-o4 (--dataset); bq-nco (instances)
                            rlsuite train <algo> --help lists every option with its default
  eval RUN [options]        evaluate a run (returns; instance solvers: cost on fresh instances)
  export RUN --format onnx|torchscript --out FILE   export a run's policy, parity-checked
  deploy --robot sim:ENV --policy FILE   run an exported policy sim-to-sim (--compare-gym, --remote)
  serve-policy FILE --port N            serve an exported policy on loopback (key from file or env)
  data collect|list|info    D4RL-style datasets made locally (Minari format)
  stl check|sample          Signal Temporal Logic: robustness of a formula on a trace, generated tasks
  cop generate|label|solve  combinatorial problems: instances, reference solvers, solving files with BQ-NCO
  llm list|sft|train|eval   language-model policy optimisation on synthetic tasks
  presets [ALGO] [--env ID] the tuned values of every agent (per env) and where they come from
  plot RUN_DIR... --out FIG compare runs: one line per config, mean and spread across seeds
  report PATH...            aggregate final scores of many runs: IQM, intervals, profiles, P(X > Y)
  sweep SPEC.yaml           train settings x seeds as Ray tasks, locally or on a cluster (--address); resumable
  --version                 rlsuite's and torch's versions

  --verbose (anywhere on the line) shows debug logs and third-party warnings
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
    "presets": ("presets", "cmd_presets"),
    "plot": ("plot", "cmd_plot"),
    "report": ("report", "cmd_report"),
    "sweep": ("sweep", "cmd_sweep"),
}

# Python warnings of these third-party packages (e.g. torch.onnx's export notes) are not for the user of a
# command: hidden unless --verbose; so are FutureWarning / DeprecationWarning from anywhere (they are addressed
# to the developers of the calling code, not to someone running it)
QUIET_MODULES = ("torch", "onnx", "onnxscript", "onnx_ir", "onnxruntime", "tensorboard", "transformers", "minari")
QUIET_CATEGORIES = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)
# torch's own loggers (they bypass the logging root: torch gives them a handler of their own), as TORCH_LOGS
# spells them: "-onnx" keeps only errors of torch.onnx (e.g. "torchvision is not installed. Skipping ...")
QUIET_TORCH_LOGS = "-onnx"


def setup_logging(verbose: bool = False) -> None:
    """Log lines through rich on stderr (the commands' results go to stdout): rlsuite's at INFO (DEBUG with
    ``verbose``), third-party libraries' from WARNING (everything with ``verbose``)."""
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)],
        force=True,
    )
    logging.getLogger("rlsuite").setLevel(logging.DEBUG if verbose else logging.INFO)


def quiet_third_party() -> None:
    """Hide third-party warnings (see :data:`QUIET_MODULES`) from a command's output; call inside
    ``warnings.catch_warnings()``."""
    for category in QUIET_CATEGORIES:
        warnings.filterwarnings("ignore", category=category)
    for module in QUIET_MODULES:
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
    os.environ.setdefault("TORCH_LOGS", QUIET_TORCH_LOGS)  # read when torch is imported
    if "torch" in sys.modules:  # already imported (e.g. a second command in one process): set the level directly
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)


def version_line() -> str:
    """``rlsuite X (torch Y, Python Z)`` from the installed distributions' metadata (no torch import)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"rlsuite {of('rlsuite')} (torch {of('torch')}, Python {sys.version.split()[0]})"


def _usage_error(e: BaseException) -> bool:
    """Whether ``e`` is an ordinary mistake of the user (printed as ``error: ...``, exit 2), not a bug."""
    from rlsuite.core.checkpoint import CheckpointError
    from rlsuite.core.ray_setup import RayNotInstalled

    return isinstance(e, (UnknownNameError, ValueError, FileExistsError, FileNotFoundError, CheckpointError, RayNotInstalled))


def main(argv: list[str] | None = None) -> int:
    """Run one ``rlsuite`` command; returns its exit status (0 done, 2 usage error, 130 interrupted; a
    command may use others, e.g. ``deploy``'s 3 after a safety stop). A malformed command line exits
    with tyro's message and status 2 (``SystemExit``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(version_line())
        return 0
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    setup_logging(verbose=verbose)
    if cmd not in COMMANDS:
        print(f"error: {unknown_name_message('command', cmd, [*COMMANDS, '--version'])}", file=sys.stderr)
        return 2
    module, func = COMMANDS[cmd]
    with warnings.catch_warnings():
        if not verbose:
            quiet_third_party()
        handler = getattr(importlib.import_module(f"rlsuite.cli.{module}"), func)
        try:
            return handler(rest)
        except KeyboardInterrupt:
            return 130
        except Exception as e:
            from rlsuite.core.run import NothingToDo

            if isinstance(e, NothingToDo):
                print(str(e))
                return 0
            if _usage_error(e):
                print(f"error: {e}", file=sys.stderr)
                return 2
            raise


if __name__ == "__main__":
    sys.exit(main())
