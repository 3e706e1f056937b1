"""The shared option parser of the command modules (rlsuite.cli.args) and the checks of their numeric options."""

import dataclasses
import re
import typing

import pytest

from rlsuite.cli import main
from rlsuite.cli.args import at_least, parse
from tests.cli.helpers import run_cli as _run


@pytest.mark.parametrize("argv,message", [
    (["cop", "generate", "--problem", "tsp", "--size", "10", "--count", "-1", "--out", "x"], "--count must be >= 1, got -1."),
    (["cop", "generate", "--problem", "tsp", "--size", "0", "--count", "5", "--out", "x"], "--size must be >= 1, got 0."),
    (["cop", "label", "d", "--solver", "lkh", "--time-limit", "0"], "--time-limit must be > 0, got 0.0."),
    (["cop", "solve", "f.tsp", "--problem", "tsp", "--beam", "0"], "--beam must be >= 1, got 0."),
    (["deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", "p.pt", "--episodes", "0"], "--episodes must be >= 1, got 0."),
    (["deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", "p.pt", "--duration", "-2"], "--duration must be > 0, got -2.0."),
    (["serve-policy", "p.pt", "--port", "70000"], "--port must be between 1 and 65535, got 70000."),
    (["export", "run", "--format", "onnx", "--out", "p.onnx", "--opset", "0"], "--opset must be >= 1, got 0."),
    (["data", "collect", "--env", "Hopper-v5", "--level", "medium", "--steps", "-5"], "--steps must be >= 1, got -5."),
    (["stl", "sample", "--horizon", "0"], "--horizon must be >= 1, got 0."),
    (["stl", "check", "F(x > 1)", "--trace", "t.csv", "--temperature", "nan"], "--temperature must be > 0, got nan."),
    (["llm", "train", "--init", "a", "--run-dir", "b", "--dataset-reset-prob", "1.5"],
     "--dataset-reset-prob must be between 0 and 1, got 1.5."),
])
def test_out_of_range_options_are_refused_naming_the_flag(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and err.strip() == f"error: {message}" and out == ""


def test_a_misspelt_flag_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as e:
        main(["cop", "generate", "--problem", "tsp", "--size", "10", "--count", "5", "--out", "x", "--seeed", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--seeed" in err and "Perhaps you meant" in err and "--seed INT" in err


HELP = [["export"], ["deploy"], ["serve-policy"], ["data", "collect"], ["data", "list"], ["data", "info"], ["stl", "check"],
        ["stl", "sample"], ["cop", "generate"], ["cop", "label"], ["cop", "solve"], ["llm", "sft"], ["llm", "train"], ["llm", "eval"],
        ["eval"], ["plot"], ["presets"], *(["train", algo] for algo in ("ppo", "sac", "tgpo", "bc", "iql", "uni-o4", "bq-nco", "subpo", "modpo"))]


def _help(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())  # the text, boxes and wrapping removed


def test_train_usage_lists_every_registered_algorithm(capsys):
    from rlsuite.agents import AGENTS

    assert main(["train", "--help"]) == 0
    usage = capsys.readouterr().out
    assert main(["train"]) == 2  # no algorithm given
    assert all(f"{name} (" in usage for name in AGENTS.names()), usage
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert all(name in top for name in AGENTS.names()), top  # the top-level usage names them too


@pytest.mark.parametrize("argv", HELP, ids=" ".join)
def test_help_shows_defaults(capsys, argv):
    text = _help(capsys, argv)
    assert f"usage: rlsuite {' '.join(argv)}" in text and ("(default: " in text or argv == ["data", "info"])
    if argv == ["data", "collect"]:  # argparse used to hide this one
        assert re.search(r"--behaviour-steps INT .*\(default: 300000\)", text)


def test_help_names_the_library_choices(capsys):
    """The choices spelt out in the command modules (so that --help imports no torch) are the library's."""
    from rlsuite.cli import cop, data, llm, stl
    from rlsuite.envs.cop.problems import PROBLEMS
    from rlsuite.envs.cop.solvers import SOLVERS
    from rlsuite.envs.stl.tasks import FAMILIES
    from rlsuite.llm.tasks import TASKS
    from rlsuite.llm.trainer import METHODS
    from rlsuite.offline.datasets import ENV_NAMES, LEVELS

    assert typing.get_args(cop.Problem) == PROBLEMS and typing.get_args(cop.Solver) == tuple(SOLVERS)
    assert typing.get_args(data.Level) == LEVELS
    assert typing.get_args(stl.Family) == (*FAMILIES, "mixed")
    assert typing.get_args(llm.Task) == TASKS
    text = _help(capsys, ["data", "collect"])
    assert all(f" {env}" in text for env in ENV_NAMES), text
    text = _help(capsys, ["llm", "train"])
    assert all(re.search(rf"\b{m}\b", text) for m in METHODS), text


@dataclasses.dataclass(frozen=True)
class _Args:
    """Toy command."""

    name: str
    """a positional name"""
    count: int = 3
    """how many"""
    calls: list = dataclasses.field(default_factory=list, compare=False)
    """not an option really: records the validations"""

    def __post_init__(self) -> None:
        self.calls.append(self.count)
        at_least(self, 1, "count")


def test_parse_reads_positionals_and_validates_once_after_parsing():
    a = parse(_Args, ["x", "--count", "2"], "toy", positional=("name",))
    assert type(a) is _Args and (a.name, a.count) == ("x", 2) and a.calls == [2]  # validated once, on the real class
    with pytest.raises(ValueError, match=r"^--count must be >= 1, got 0\.$"):  # reaches the caller, not tyro's exit
        parse(_Args, ["x", "--count", "0"], "toy", positional=("name",))
    with pytest.raises(TypeError, match="not fields of _Args"):
        parse(_Args, ["x"], "toy", positional=("nme",))
