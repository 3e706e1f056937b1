"""Command-line options from frozen dataclasses: one parsing style for every ``rlsuite`` command.

A command declares its options as a frozen dataclass: one field per option (``total_steps`` is
``--total-steps``), a one-line docstring under each field (its help text), ``Literal[...]`` types for
choices, ``X | None = None`` for optional values, and a ``__post_init__`` that refuses values out of
range with the checks below (:func:`at_least`, :func:`above`, :func:`within`), whose messages name the
flag, what was received and what is allowed. :func:`parse` reads the command line with tyro: defaults
are shown in ``--help``, a misspelt flag gets a "Perhaps you meant", a missing required option is named.

    @dataclasses.dataclass(frozen=True)
    class EvalArgs:
        \"\"\"Evaluate any run (deterministic actions).\"\"\"

        run_dir: str
        \"\"\"run directory (its latest checkpoint) or a checkpoint directory\"\"\"
        episodes: int = 10
        \"\"\"episodes to run\"\"\"

        def __post_init__(self) -> None:
            at_least(self, 1, "episodes")

    a = parse(EvalArgs, argv, "rlsuite eval", positional=("run_dir",))

A ``bool`` field is a switch (``stochastic: bool = False`` gives ``--stochastic`` and ``--no-stochastic``);
options of which exactly one must be given share ``tyro.conf.create_mutex_group(required=True)`` in
``Annotated[...]`` (see ``DeployArgs`` in :mod:`rlsuite.cli.deploy`). Define the class at module level
in a source file: tyro reads the field docstrings from the source.

The description defaults to the class docstring. A refused value raises ``ValueError`` from
:func:`parse` (``rlsuite.cli.main`` prints ``error: <message>`` and returns 2); a malformed command
line (unknown flag, missing option, bad choice) exits with status 2 after tyro's message, as
``--help`` exits with 0.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

A = TypeVar("A")


def parse(cls: type[A], argv: Sequence[str], prog: str, description: str | None = None, positional: Sequence[str] = ()) -> A:
    """Parse ``argv`` into an instance of the frozen dataclass ``cls``.

    ``positional`` names the fields read as positional arguments (in that order; metavar: the field name
    in capitals); every other field is a ``--flag``. ``cls.__post_init__`` runs once, after parsing, so
    its ``ValueError`` reaches the caller unchanged.
    """
    import tyro

    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"parse() takes a dataclass type, got {cls!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [n for n in positional if n not in fields]
    if unknown:
        raise TypeError(f"positional {unknown} are not fields of {cls.__name__} (fields: {', '.join(fields)}).")
    doc = inspect.cleandoc(cls.__doc__ or "")
    if description is None and doc and not doc.startswith(f"{cls.__name__}("):  # not dataclass's generated signature
        description = doc
    hints = typing.get_type_hints(cls, include_extras=True)
    # The parsed form: positional fields marked for tyro, validation deferred to the real class below.
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__doc__": description or "",
        "__annotations__": {n: Annotated[hints[n], tyro.conf.Positional] for n in positional},
        "__post_init__": lambda self: None,
    }
    for n in positional:
        f = fields[n]
        if f.default is not dataclasses.MISSING:
            namespace[n] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            namespace[n] = dataclasses.field(default_factory=f.default_factory)
    parsed_cls = dataclasses.dataclass(frozen=cls.__dataclass_params__.frozen, kw_only=True)(type(cls.__name__, (cls,), namespace))
    parsed = tyro.cli(parsed_cls, args=list(argv), prog=prog, description=description,
                      config=(tyro.conf.OmitArgPrefixes, tyro.conf.PositionalMetavarFromFieldName))
    return cls(**{n: getattr(parsed, n) for n, f in fields.items() if f.init})


def flag(name: str) -> str:
    """The command-line spelling of field ``name``: ``total_steps`` -> ``--total-steps``."""
    return "--" + name.replace("_", "-")


def _refuse(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{flag(name)} must be {allowed}, got {value!r}.")


def at_least(cfg: Any, minimum: float, *names: str) -> None:
    """Refuse any of the fields ``names`` of ``cfg`` below ``minimum`` (``None``, an unset option, passes)."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not value >= minimum:  # `not >=` also refuses NaN
            raise _refuse(name, value, f">= {minimum:g}")


def above(cfg: Any, bound: float, *names: str) -> None:
    """Refuse any of the fields ``names`` of ``cfg`` not strictly above ``bound`` (``None`` passes)."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not value > bound:
            raise _refuse(name, value, f"> {bound:g}")


def within(cfg: Any, name: str, low: float, high: float) -> None:
    """Refuse field ``name`` of ``cfg`` outside ``[low, high]`` (``None`` passes)."""
    value = getattr(cfg, name)
    if value is not None and not low <= value <= high:
        raise _refuse(name, value, f"between {low:g} and {high:g}")


def group_usage(group: str, subcommands: dict[str, str], sub: str) -> int:
    """What ``rlsuite <group> <sub>`` does when ``sub`` is not a subcommand; returns the exit status.

    ``--help`` / ``-h`` prints the group's subcommands (with one line each) on stdout and returns 0; nothing
    prints them on stderr and returns 2; an unknown name gets "did you mean" and 2.
    """
    from rlsuite.core.registry import unknown_name_message

    width = max(len(s) for s in subcommands)
    usage = "\n".join([f"usage: rlsuite {group} <command> [options]   (rlsuite {group} <command> --help for its options)", "",
                       "commands:", *(f"  {s:<{width}}  {d}" for s, d in subcommands.items())])
    if sub in ("-h", "--help"):
        print(usage)
        return 0
    if not sub:
        print(usage, file=sys.stderr)
        return 2
    print(f"error: {unknown_name_message(f'{group} subcommand', sub, list(subcommands))}", file=sys.stderr)
    return 2
