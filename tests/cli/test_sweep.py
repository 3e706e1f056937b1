"""`rlsuite sweep SPEC.yaml` on one local Ray instance (2 CPUs) shared by the module, with PPO on CartPole-v1 at
tiny budgets: a 2x2 grid gives four ordinary run directories that `rlsuite eval` takes; a bad spec exits 2 before
anything is written; a sweep started again skips its finished trials (no byte of them changes) and resumes them
to a larger budget; a trial whose Ray worker is killed (SIGKILL, by its pid) after its first checkpoint resumes
from that checkpoint and ends equal, tensor for tensor, to an unbroken `rlsuite train` with the same flags.

Dataset agents (IQL on a tiny InvertedPendulum dataset written with the production writer): a bad dataset spec exits
2 before anything is written; the trials are what `rlsuite train iql` parses from their command lines; a sweep
finishes, is skipped when started again, reports by dataset, takes its trials online with a larger online budget, and
resumes a trial whose worker is killed from its last offline checkpoint to the weights of an unbroken run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from rlsuite.agents import AGENTS
from rlsuite.cli.train import _parse
from rlsuite.core.checkpoint import load_checkpoint
from rlsuite.core.config import config_to_dict
from rlsuite.offline.train import read_evaluations
from rlsuite.sweep import expand_trials, settings_of, spec_from_dict
from tests.cli.helpers import run_cli
from tests.conftest import TEST_THREADS
from tests.offline.helpers import DS_ID, write_mixed_dataset, write_two_mode_dataset

TINY_PPO = "num_envs: 2\n  num_steps: 64\n  eval_episodes: 1\n  checkpoint_every: 128\n  tensorboard: false"
GRID = f"""\
algo: ppo
env: CartPole-v1
total_steps: 256
seeds: 1
grid:
  learning_rate: [1.0e-3, 3e-4]   # 3e-4 is a string to YAML: read as a number for a float field
  update_epochs: [1, 2]
args:
  {TINY_PPO}
"""


IQL = f"""\
algo: iql
dataset: {DS_ID}
offline_steps: 40
seeds: 2
args:
  data_dir: ROOT
  eval_every: 20
  eval_episodes: 1
  hidden_sizes: [16, 16]
  batch_size: 32
"""
DS_TRIAL = "rlsuite_invertedpendulum_medium-v0__iql"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A tiny InvertedPendulum dataset (and a bandit's, registered in this process only) under one data directory."""
    root = tmp_path_factory.mktemp("sweep-data")
    write_mixed_dataset(root, steps=400)
    write_two_mode_dataset(root, episodes=50)
    return root


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module (its start costs seconds), started as the suite starts it (loopback only);
    `rlsuite sweep` uses the running instance."""
    import ray

    from rlsuite.core.ray_setup import init_ray

    init_ray(ray, None, 2)
    yield ray
    ray.shutdown()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _steps(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f)]


def _sweep(capsys, *argv):
    code, out, err = run_cli(capsys, "sweep", *argv)
    return code, out, " ".join(err.split())


# ----------------------------------------------------------------------------- the spec (no Ray needed)


@pytest.mark.parametrize("text, expected", [
    (GRID.replace("algo: ppo", "algo: ppoo"), ["algo: unknown agent 'ppoo'", "Did you mean 'ppo'?", "Known agents:"]),
    (GRID.replace("update_epochs:", "num_epochs:"), ["grid.num_epochs: unknown ppo setting 'num_epochs'", "Known ppo settings:",
                                                     "update_epochs"]),
    (GRID + "random:\n  samples: 2\n  clip_coef: {normal: [0.1, 0.3]}\n",
     ["random.clip_coef: unknown distribution 'normal'", "Known distributions: choice, loguniform, randint, uniform"]),
    (GRID + "random:\n  samples: 2\n  num_minibatches: {uniform: [2, 8]}\n",
     ["random.num_minibatches.uniform: num_minibatches is an integer; use randint"]),
    (GRID + "random:\n  samples: 2\n  ent_coef: {loguniform: [0, 0.1]}\n", ["loguniform needs low > 0"]),
    (GRID.replace("[1.0e-3, 3e-4]", "[fast, 3e-4]"), ["grid.learning_rate[0]: expected a number, got 'fast'"]),
    (GRID + "budget: 3\n", ["unknown key 'budget'", "Allowed: algo, env, dataset, total_steps, seeds, grid, random, args"]),
    (GRID + "  seed: 3\n", ["args.seed: 'seed' is set by the spec's top-level `seeds:`"]),
    (GRID.replace("algo: ppo\nenv: CartPole-v1", "algo: bc"), ["total_steps: bc learns from a dataset", "received total_steps: 256",
                                                             "`offline_steps:` and `online_steps:`"]),
    (GRID + f"dataset: {DS_ID}\n", ["dataset: ppo learns from an env", f"received dataset: '{DS_ID}'",
                                    "`dataset:` is for agents that learn from a dataset (bc, expo, iql, rlpd, uni-o4)"]),
    ("algo: bq-nco\ntotal_steps: 100\n", ["algo: bq-nco learns from instance sets", "eval/greedy_cost, lower is better",
                                          "run its seeds with rlsuite train bq-nco"]),
    (GRID.replace("CartPole-v1", "CartPole-v9"), ["env: unknown environment 'CartPole-v9'", "Did you mean 'CartPole-v1'?"]),
    (GRID.replace("num_steps: 64", "num_steps: 0"), ["trial CartPole-v1__ppo__learning_rate=0.001,update_epochs=1__0:"]),
])
def test_a_bad_spec_exits_2_before_anything_is_written(text, expected, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _sweep(capsys, _write(tmp_path / "spec.yaml", text), "--out", out)
    assert code == 2 and err.startswith("error: "), stdout + err
    for fragment in expected:
        assert fragment in err, err
    assert not out.exists()


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("medium-v0", "medum-v0"),
     ["dataset: no dataset 'rlsuite/invertedpendulum/medum-v0' under", f"have: {DS_ID}", f"Did you mean '{DS_ID}'?",
      "rlsuite data collect", "rlsuite data list --data-dir", "docs/datasets.md"]),
    (lambda t: t + "env: InvertedPendulum-v5\n", ["env: iql learns from a dataset (which names its env)",
                                                  "received env: 'InvertedPendulum-v5'", "`dataset:`"]),
    (lambda t: t.replace(f"dataset: {DS_ID}\n", ""), ["`dataset:` is required for iql", "rlsuite data list"]),
    (lambda t: t + "  offline_steps: 10\n", ["args.offline_steps: 'offline_steps' is set by the spec's top-level `offline_steps:`"]),
    (lambda t: t.replace("algo: iql", "algo: bc") + "online_steps: 10\n",
     [f"trial {DS_TRIAL.replace('iql', 'bc')}__0: BC has no online phase"]),
])
def test_a_bad_dataset_spec_exits_2_before_anything_is_written(edit, expected, data_root, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _sweep(capsys, _write(tmp_path / "spec.yaml", edit(IQL.replace("ROOT", str(data_root)))), "--out", out)
    assert code == 2 and err.startswith("error: "), stdout + err
    for fragment in expected:
        assert fragment in err, err
    assert not out.exists()


def test_without_ray_the_command_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, _, err = _sweep(capsys, _write(tmp_path / "spec.yaml", GRID), "--out", tmp_path / "out")
    assert code == 2 and "pip install 'rlsuite[distributed]'" in err, err
    assert not (tmp_path / "out").exists()


def test_overwrite_refuses_a_foreign_directory_and_leaves_it_intact(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = _tree(out)
    code, _, err = _sweep(capsys, _write(tmp_path / "spec.yaml", GRID), "--out", out, "--overwrite")
    assert code == 2 and "holds no sweep.json" in err, err
    assert _tree(out) == before and sorted(x.name for x in out.iterdir()) == ["notes.txt"]


def test_overwrite_removes_only_what_the_sweep_made(tmp_path, monkeypatch):
    import rlsuite.sweep as sw

    spec = spec_from_dict(__import__("yaml").safe_load(GRID))
    out = tmp_path / "sweep"
    trials = expand_trials(spec, out)
    for t in trials[:2]:
        (t.run_dir / "checkpoints").mkdir(parents=True)
    (out / "old_trial").mkdir()  # a trial of the spec this sweep ran before
    (out / "logs").mkdir()
    (out / "report").mkdir()
    (out / "sweep.json").write_text(json.dumps({"trials": [{"name": "old_trial"}, {"name": "../escape"}]}))
    (out / "user.txt").write_text("mine")
    (out / "user_dir").mkdir()

    class Stop(Exception):
        pass

    def stop(*a, **k):  # after clearing, before Ray
        assert (out / sw.LOCK_FILE).is_file()
        raise Stop

    monkeypatch.setattr(sw, "_init_ray", stop)
    with pytest.raises(Stop):
        sw.run_sweep(spec, out, overwrite=True)
    assert sorted(x.name for x in out.iterdir()) == ["user.txt", "user_dir"]  # lock released too
    assert (out / "user.txt").read_text() == "mine"


def test_a_live_lock_makes_a_second_sweep_exit_2_without_writing(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / ".sweep.lock").write_text(json.dumps({"pid": os.getpid(), "host": __import__("socket").gethostname()}))
    before = _tree(out)
    code, _, err = _sweep(capsys, _write(tmp_path / "spec.yaml", GRID), "--out", out)
    assert code == 2 and f"pid {os.getpid()}" in err and ".sweep.lock" in err, err
    assert _tree(out) == before


def test_a_stale_lock_is_taken_over_and_released(tmp_path, monkeypatch):
    import rlsuite.sweep as sw

    out = tmp_path / "sweep"
    out.mkdir()
    (out / sw.LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 12345, "host": __import__("socket").gethostname()}))
    monkeypatch.setattr(sw, "_pid_alive", lambda pid: pid == os.getpid())
    lock = sw.acquire_lock(out)
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    sw.release_lock(lock)
    assert list(out.iterdir()) == []


def test_trials_are_what_rlsuite_train_would_parse_from_their_command_lines(tmp_path):
    """Each trial's configs equal what `rlsuite train ppo <its command line>` parses (presets, tuples, switches,
    strings read as floats); random draws are seeded and the names are stable."""
    data = {"algo": "ppo", "env": ["CartPole-v1", "Pendulum-v1"], "total_steps": 512, "seeds": [3, 7],
            "grid": {"hidden-sizes": [[16, 16], [32]]},
            "random": {"samples": 2, "seed": 5, "learning_rate": {"loguniform": ["1e-4", 1.0e-2]},
                       "norm_adv": {"choice": [True, False]}, "num_minibatches": {"randint": [2, 4]}},
            "args": {"eval_episodes": 1, "anneal_lr": False}}
    spec = spec_from_dict(data)
    trials = expand_trials(spec, tmp_path)
    assert len(trials) == 2 * 2 * 2 * 2 and len({t.name for t in trials}) == len(trials)
    assert [t.name for t in expand_trials(spec_from_dict(data), tmp_path)] == [t.name for t in trials]
    assert trials[0].name.startswith("CartPole-v1__ppo__hidden_sizes=16x16,sample0,learning_rate=")
    ppo = AGENTS.get("ppo")
    for t in trials:
        run_cfg, algo_cfg = _parse(ppo, list(t.argv))
        assert config_to_dict(run_cfg) == t.run and config_to_dict(algo_cfg) == t.config, t.argv
        assert 1e-4 <= t.config["learning_rate"] <= 1e-2 and t.config["num_minibatches"] in (2, 3, 4)
    assert trials[-1].run["env"] == "Pendulum-v1" and trials[-1].run["seed"] == 7
    # TGPO nests PPO's config: its fields are set by name, as `rlsuite train tgpo` flags are
    assert settings_of(AGENTS.get("tgpo"))["learning_rate"].path == ("ppo", "learning_rate")


def test_dataset_trials_are_what_rlsuite_train_would_parse_from_their_command_lines(data_root, tmp_path):
    """A dataset agent's trials (datasets x grid x random x seeds) parse, from their command lines, to their configs;
    the budgets are the offline driver's flags (an agent's own default offline steps when the spec gives none)."""
    data = {"algo": "iql", "dataset": [DS_ID, "rlsuite/twomodebandit/mixed-v0"], "offline_steps": 30, "online_steps": 20,
            "seeds": [3, 7], "grid": {"expectile": [0.7, 0.9]},
            "random": {"samples": 2, "seed": 1, "beta": {"loguniform": [1.0, 10.0]}, "normalize_reward": {"choice": [True, False]}},
            "args": {"data_dir": str(data_root), "hidden-sizes": [16], "eval_episodes": 1}}
    spec = spec_from_dict(data)
    assert spec.metric == "eval/normalized_score" and spec.to_dict()["dataset"] == data["dataset"]
    trials = expand_trials(spec, tmp_path)
    assert len(trials) == 2 * 2 * 2 * 2 and len({t.name for t in trials}) == len(trials)
    assert trials[0].name.startswith(f"{DS_TRIAL}__expectile=0.7,sample0,beta=") and trials[0].name.endswith("__3")
    assert trials[-1].name.startswith("rlsuite_twomodebandit_mixed-v0__iql__expectile=0.9,sample1,")
    iql = AGENTS.get("iql")
    for t in trials:
        run_cfg, algo_cfg = _parse(iql, list(t.argv))
        assert config_to_dict(run_cfg) == t.run and config_to_dict(algo_cfg) == t.config, t.argv
        assert (t.run["offline_steps"], t.run["online_steps"], t.run["data_dir"]) == (30, 20, str(data_root))
    assert trials[-1].dataset == "rlsuite/twomodebandit/mixed-v0" and trials[-1].run["seed"] == 7
    no_budget = {"dataset": DS_ID, "args": {"data_dir": str(data_root)}}
    assert spec_from_dict({"algo": "bc", **no_budget}).offline_steps == 100_000
    assert spec_from_dict({"algo": "rlpd", "online_steps": 6000, **no_budget}).offline_steps == 0


# ----------------------------------------------------------------------------- on Ray


def test_a_grid_gives_run_directories_and_a_restart_skips_finished_trials(ray_local, tmp_path, capsys):
    spec, out = _write(tmp_path / "grid.yaml", GRID), tmp_path / "out"
    code, stdout, err = _sweep(capsys, spec, "--out", out, "--max-concurrent", 2)
    assert code == 0, stdout + err
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["status"] == "finished" and len(doc["trials"]) == 4
    runs = sorted(p for p in out.iterdir() if (p / "config.json").is_file())
    assert [p.name for p in runs] == sorted(t["name"] for t in doc["trials"])
    assert {(t["settings"]["learning_rate"], t["settings"]["update_epochs"]) for t in doc["trials"]} == \
        {(0.001, 1), (0.001, 2), (0.0003, 1), (0.0003, 2)}
    for t in doc["trials"]:
        assert t["status"] == "finished" and t["step"] == 256 and t["attempts"] == 1 and t["score"] is not None
    assert "| trial | learning_rate | update_epochs | seed | status | step | eval/mean_return | seconds |" in stdout
    assert "best: CartPole-v1__ppo__" in stdout and (out / "report" / "report.md").is_file()
    for run in runs:  # each trial is an ordinary run
        code, ev, err = run_cli(capsys, "eval", run, "--episodes", "1")
        assert code == 0 and "checkpoint step 256" in ev and "mean_return=" in ev, ev + err

    trials_before = {p.name: _tree(p) for p in runs}
    code, stdout, err = _sweep(capsys, spec, "--out", out, "--max-concurrent", 2)
    assert code == 0, stdout + err
    assert "4 finished already, 0 to resume, 0 new" in err and "no Ray (nothing to run)" in err
    assert {p.name: _tree(p) for p in runs} == trials_before  # no checkpoint, metric or curve written again

    # the spec changed under a sweep: refused before anything runs, naming what differs
    code, stdout, err = _sweep(capsys, _write(tmp_path / "changed.yaml", GRID.replace("num_steps: 64", "num_steps: 32")),
                               "--out", out)
    assert code == 2 and "holds a run with other settings" in err and "config.num_steps: 64 there, 32 in the spec" in err, err
    assert {p.name: _tree(p) for p in runs} == trials_before

    # a larger budget resumes every trial from its final checkpoint: the steps go on
    code, stdout, err = _sweep(capsys, _write(tmp_path / "longer.yaml", GRID.replace("total_steps: 256", "total_steps: 384")),
                               "--out", out, "--max-concurrent", 2, "--no-report")
    assert code == 0 and "0 finished already, 4 to resume, 0 new" in err, stdout + err
    for run in runs:
        assert _steps(run) == [128, 256, 256, 384, 384], _steps(run)  # rollout rows, eval at 256, then the new ones
    assert all(t["start_step"] == 256 and t["step"] == 384 for t in json.loads((out / "sweep.json").read_text())["trials"])


def _ray_worker_pids(title: str) -> list[int]:
    """Pids of the processes whose command line (Ray sets it to ``ray::<task name>`` while a task runs) starts with ``title``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith(title):
                pids.append(int(entry))
    return pids


def _tensors(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _tensors(val, f"{prefix}/{key}").items()}
    return {}


def _sweep_killing_its_worker(capsys, spec: Path, out: Path, name: str) -> tuple[int, str, str, dict[str, int]]:
    """``_sweep(spec --out out --no-report)`` while a thread SIGKILLs the Ray worker of trial ``name`` (by its pid) once
    the trial's first checkpoint is there; the last item says at which step and which pid (empty: none was found)."""
    latest = out / name / "checkpoints" / "latest.json"
    killed: dict[str, int] = {}

    def kill_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not latest.is_file():
            time.sleep(0.005)
        pids: list[int] = []
        while time.monotonic() < deadline and not pids:  # the worker's title is set before the task runs
            pids = _ray_worker_pids(f"ray::rlsuite-trial:{name}")
        if len(pids) == 1:
            killed["step"] = json.loads(latest.read_text())["step"]
            os.kill(pids[0], signal.SIGKILL)
            killed["pid"] = pids[0]

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    code, stdout, err = _sweep(capsys, spec, "--out", out, "--no-report")
    killer.join(timeout=5)
    return code, stdout, err, killed


def _assert_an_unbroken_run_ends_equal(capsys, command: str, run: Path, unbroken: Path, checkpoint: str, threads: int) -> None:
    """An unbroken ``rlsuite train`` of a trial's command line (into ``unbroken``, on ``threads`` torch threads) ends
    with the tensors of the trial's ``run``, checkpoint ``checkpoint``."""
    argv = shlex.split(command)[1:]  # train ALGO --env/--dataset ... --run-dir OUT/NAME ...
    argv[argv.index("--run-dir") + 1] = str(unbroken)
    torch.set_num_threads(threads)
    try:
        code, _, err = run_cli(capsys, *argv)
        assert code == 0, err
    finally:
        torch.set_num_threads(TEST_THREADS)
    (resumed, _), (whole, _) = (load_checkpoint(d / "checkpoints" / checkpoint) for d in (run, unbroken))
    a, b = _tensors(resumed), _tensors(whole)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the Ray worker's pid in /proc")
def test_a_killed_worker_resumes_its_trial_from_the_checkpoint(ray_local, tmp_path, capsys):
    text = f"algo: ppo\nenv: CartPole-v1\ntotal_steps: 2048\nseeds: [0]\nargs:\n  {TINY_PPO}\n  keep_checkpoints: 0\n"
    spec, out = _write(tmp_path / "one.yaml", text), tmp_path / "out"
    name = "CartPole-v1__ppo__0"
    code, stdout, err, killed = _sweep_killing_its_worker(capsys, spec, out, name)
    assert code == 0, stdout + err
    assert "pid" in killed, f"the worker was not found to kill: {err}"
    assert "its worker died" in err and "resuming it from its last checkpoint (retry 1 of 3)" in err, err
    (trial,) = json.loads((out / "sweep.json").read_text())["trials"]
    assert trial["status"] == "finished" and trial["attempts"] == 2 and trial["step"] == 2048
    assert 128 <= trial["start_step"] < 2048 and trial["start_step"] % 128 == 0  # resumed from a checkpoint, not from 0
    log = (out / "logs" / f"{name}.log").read_text()
    assert "attempt 1 on " in log and "attempt 2 on " in log and f"resuming from step {trial['start_step']}" in log, log
    steps = _steps(out / name)
    assert steps == sorted(steps) and steps[-1] == 2048 and len(set(steps[:-1])) == len(steps) - 1  # no row twice

    # an unbroken run of the trial's own command line (it sets --torch-threads) ends with the same tensors and evaluation
    _assert_an_unbroken_run_ends_equal(capsys, trial["command"], out / name, tmp_path / "unbroken", "final", TEST_THREADS)
    with open(out / name / "metrics.csv") as f1, open(tmp_path / "unbroken" / "metrics.csv") as f2:
        last = [[r["eval/mean_return"] for r in csv.DictReader(f) if r.get("eval/mean_return")][-1] for f in (f1, f2)]
    assert last[0] == last[1]


# ----------------------------------------------------------------------------- dataset agents on Ray


def test_a_dataset_sweep_finishes_restarts_reports_by_dataset_and_goes_online(ray_local, data_root, tmp_path, capsys):
    text = IQL.replace("ROOT", str(data_root))
    spec, out = _write(tmp_path / "iql.yaml", text), tmp_path / "out"
    code, stdout, err = _sweep(capsys, spec, "--out", out, "--max-concurrent", 2)
    assert code == 0, stdout + err
    doc = json.loads((out / "sweep.json").read_text())
    names = [f"{DS_TRIAL}__{seed}" for seed in (0, 1)]
    assert doc["status"] == "finished" and [t["name"] for t in doc["trials"]] == names
    assert doc["spec"]["dataset"] == [DS_ID] and doc["metric"] == "eval/normalized_score"
    for t in doc["trials"]:
        assert t["dataset"] == DS_ID and "env" not in t and t["status"] == "finished" and t["step"] == 40
        assert t["attempts"] == 1 and t["score"] is not None and t["command"].startswith(f"rlsuite train iql --dataset {DS_ID} ")
    assert "| trial | seed | status | step | eval/normalized_score | seconds |" in stdout
    with open(out / "report" / "scores.csv", newline="") as f:  # the report's task is the dataset
        assert sorted((r["task"], Path(r["run"]).name) for r in csv.DictReader(f)) == [(DS_ID, n) for n in names]
    code, ev, err = run_cli(capsys, "eval", out / names[0], "--episodes", "1")  # an ordinary run
    assert code == 0 and "mean_return=" in ev, ev + err

    runs = [out / n for n in names]
    before = {p.name: _tree(p) for p in runs}
    code, stdout, err = _sweep(capsys, spec, "--out", out, "--no-report")
    assert code == 0 and "2 finished already, 0 to resume, 0 new" in err and "no Ray (nothing to run)" in err, stdout + err
    assert {p.name: _tree(p) for p in runs} == before

    # an online budget: each trial resumes from its offline checkpoint, as rlsuite train iql --resume RUN --online-steps 30
    code, stdout, err = _sweep(capsys, _write(tmp_path / "online.yaml", text + "online_steps: 30\n"), "--out", out, "--no-report")
    assert code == 0 and "0 finished already, 2 to resume, 0 new" in err, stdout + err
    assert all(t["start_step"] == 40 and t["step"] == 70 for t in json.loads((out / "sweep.json").read_text())["trials"])
    for run in runs:
        assert [(r["phase"], r["step"]) for r in read_evaluations(run)] == \
            [("offline", 20), ("offline", 40), ("online", 60), ("online", 70)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the Ray worker's pid in /proc")
def test_a_killed_dataset_trial_resumes_from_its_last_checkpoint(ray_local, data_root, tmp_path, capsys):
    text = IQL.replace("ROOT", str(data_root)).replace("offline_steps: 40", "offline_steps: 600").replace("seeds: 2", "seeds: [0]")
    spec, out = _write(tmp_path / "one.yaml", text), tmp_path / "out"
    name = f"{DS_TRIAL}__0"
    code, stdout, err, killed = _sweep_killing_its_worker(capsys, spec, out, name)
    assert code == 0, stdout + err
    assert "pid" in killed, f"the worker was not found to kill: {err}"
    assert "resuming it from its last checkpoint (retry 1 of 3)" in err, err
    (trial,) = json.loads((out / "sweep.json").read_text())["trials"]
    assert trial["status"] == "finished" and trial["attempts"] == 2 and trial["step"] == 600, trial
    assert 20 <= trial["start_step"] < 600 and trial["start_step"] % 20 == 0  # from offline_partial, not from 0
    assert f"resuming from step {trial['start_step']}" in (out / "logs" / f"{name}.log").read_text()
    steps = [r["step"] for r in read_evaluations(out / name)]
    assert steps == list(range(20, 601, 20))  # each evaluation once

    # an unbroken run of the trial's command line, on the trial's one torch thread (cpus_per_trial 1), ends with the
    # same tensors
    _assert_an_unbroken_run_ends_equal(capsys, trial["command"], out / name, tmp_path / "unbroken", "offline", 1)
