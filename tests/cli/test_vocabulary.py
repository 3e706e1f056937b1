"""One vocabulary on every command: the shared flags exist where their concept does, with one meaning.

The command -> options-dataclass table below is the list of every parser the ``rlsuite`` command has
(``test_every_command_is_listed`` fails when a command is added without an entry here). The shared flags
and what they mean are documented once, in docs/cli.md ("Shared flags").
"""

from __future__ import annotations

import dataclasses
import importlib
import typing

import pytest

from rlsuite.cli import COMMANDS

# (command, "module:Class") of every options dataclass the CLI parses with tyro
PARSERS = {
    "train <env agent>": "rlsuite.core.run:RunConfig",
    "train <dataset agent>": "rlsuite.offline.train:OfflineRunConfig",
    "train <instances agent>": "rlsuite.envs.cop.train:InstancesRunConfig",
    "eval": "rlsuite.cli.train:EvalArgs",
    "export": "rlsuite.cli.deploy:ExportArgs",
    "deploy": "rlsuite.cli.deploy:DeployArgs",
    "serve-policy": "rlsuite.cli.deploy:ServeArgs",
    "data collect": "rlsuite.cli.data:CollectArgs",
    "data list": "rlsuite.cli.data:ListArgs",
    "data info": "rlsuite.cli.data:InfoArgs",
    "cop generate": "rlsuite.cli.cop:GenerateArgs",
    "cop label": "rlsuite.cli.cop:LabelArgs",
    "cop solve": "rlsuite.cli.cop:SolveArgs",
    "stl check": "rlsuite.cli.stl:CheckArgs",
    "stl sample": "rlsuite.cli.stl:SampleArgs",
    "llm sft": "rlsuite.cli.llm:SftArgs",
    "llm train": "rlsuite.cli.llm:TrainArgs",
    "llm eval": "rlsuite.cli.llm:EvalArgs",
    "presets": "rlsuite.cli.presets:PresetsArgs",
    "plot": "rlsuite.cli.plot:PlotArgs",
    "report": "rlsuite.cli.report:ReportArgs",
    "sweep": "rlsuite.cli.sweep:SweepArgs",
}
# commands that train and write a run directory
TRAINING = ("train <env agent>", "train <dataset agent>", "train <instances agent>", "llm sft", "llm train")
# commands that write a file or a directory of their own (a run, a dataset, instances, labels, a figure, an export)
WRITING = (*TRAINING, "export", "data collect", "cop generate", "cop label", "plot", "report", "sweep")


def _fields(name: str) -> dict[str, dataclasses.Field]:
    module, cls = PARSERS[name].split(":")
    return {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}


def _default(f: dataclasses.Field) -> object:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def test_every_command_is_listed():
    groups = {name.split()[0] for name in PARSERS}
    assert set(COMMANDS) - {"list"} <= groups, f"commands without an entry in PARSERS: {set(COMMANDS) - groups - {'list'}}"
    for name in PARSERS:
        _fields(name)  # importable, a dataclass


@pytest.mark.parametrize("name", TRAINING)
def test_training_commands_share_the_run_flags(name):
    f = _fields(name)
    # a dataset agent's budget is two: --offline-steps (updates on the dataset) and --online-steps (env steps after)
    budget = ("offline_steps", "online_steps") if name == "train <dataset agent>" else ("total_steps",)
    for flag in ("run_dir", "resume", *budget, "seed", "device", "overwrite"):
        assert flag in f, f"{name}: no --{flag.replace('_', '-')}"
    assert _default(f["run_dir"]) is None and _default(f["resume"]) is None  # both take a directory
    assert typing.get_type_hints(_owner(name))["resume"] == (str | None)
    assert _default(f["device"]) == "auto"
    assert _default(f["overwrite"]) is False
    for old in ("out", "steps", "lr"):
        assert old not in f, f"{name}: --{old} is spelt differently here than on the other commands"


@pytest.mark.parametrize("name", WRITING)
def test_writing_commands_refuse_without_overwrite(name):
    assert _default(_fields(name)["overwrite"]) is False


@pytest.mark.parametrize("name", list(PARSERS))
def test_shared_flags_mean_the_same_everywhere(name):
    f = _fields(name)
    if "device" in f:
        assert _default(f["device"]) == "auto", f"{name}: --device defaults to {_default(f['device'])!r}, not auto"
    if "eval_episodes" in f:
        assert _default(f["eval_episodes"]) == 10, f"{name}: --eval-episodes defaults to {_default(f['eval_episodes'])}"
    if "seed" in f:
        assert isinstance(_default(f["seed"]), int)
    assert "episodes" not in f or name in ("deploy",), f"{name}: --episodes should be --eval-episodes"


def test_algorithm_configs_name_shared_things_alike():
    from rlsuite.agents import AGENTS

    for algo in AGENTS.names():
        names = {f.name for f in dataclasses.fields(AGENTS.get(algo).config_cls)}
        assert "lr" not in names, f"{algo}: --lr; the other algorithms say --learning-rate"
        assert "hidden" not in names, f"{algo}: --hidden; the other algorithms say --hidden-sizes"


def _owner(name: str) -> type:
    module, cls = PARSERS[name].split(":")
    return getattr(importlib.import_module(module), cls)
