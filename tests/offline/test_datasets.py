"""Locally made D4RL-style datasets in the Minari format."""

import json
from pathlib import Path

import minari
import numpy as np
import pytest
import torch

from rlsuite.offline import datasets as D

COLLECT_LOGS: dict[str, list[str]] = {}  # the log lines of each level's collection in `made`


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """All five levels for InvertedPendulum-v5 from a briefly trained behaviour agent (plumbing, not quality)."""
    root = tmp_path_factory.mktemp("data")
    levels = D.levels_for("InvertedPendulum-v5")
    assert levels == ("random", "medium", "expert", "medium-replay", "medium-expert")
    logs: dict[str, list[str]] = {lvl: [] for lvl in levels}
    ids = {lvl: D.collect("InvertedPendulum-v5", lvl, 300, seed=0, behaviour_steps=1500, root=root, log=logs[lvl].append)[0]
           for lvl in levels}
    COLLECT_LOGS.update(logs)
    return root, ids


def test_ids_levels_and_scores():
    assert D.dataset_id("Hopper-v5", "medium-replay") == "rlsuite/hopper/medium-replay-v0"
    with pytest.raises(D.DatasetError, match="unknown level 'meduim'"):
        D.dataset_id("Hopper-v5", "meduim")
    with pytest.raises(D.DatasetError, match="no dataset recipe for env 'Foo-v0'"):
        D.dataset_id("Foo-v0", "random")
    lo, hi = D.D4RL_REF["hopper"]
    assert D.normalized_score(hi, lo, hi) == pytest.approx(100.0) and D.normalized_score(lo, lo, hi) == pytest.approx(0.0)
    assert D.normalized_score(1628.0, -20.272305, 3234.3) == pytest.approx(100 * (1628 + 20.272305) / (3234.3 + 20.272305))
    with pytest.raises(D.DatasetError, match="max > min"):
        D.normalized_score(1.0, 5.0, 5.0)


def test_round_trip_identical_arrays_and_metadata(tmp_path):
    eps = D.rollout("InvertedPendulum-v5", D.random_policy("InvertedPendulum-v5", 0), 200, seed=3)
    meta = {"env": "InvertedPendulum-v5", "level": "random", "note": "round trip"}
    D.write_dataset("rlsuite/invertedpendulum/random-v0", "InvertedPendulum-v5", eps, 1.0, 50.0, meta, root=tmp_path)
    ds = D.load_dataset("rlsuite/invertedpendulum/random-v0", tmp_path)
    back = list(ds.iterate_episodes())
    assert len(back) == len(eps)
    for e, b in zip(eps, back, strict=True):
        np.testing.assert_array_equal(np.asarray(b.observations), e["observations"])
        np.testing.assert_array_equal(np.asarray(b.actions), e["actions"])
        np.testing.assert_array_equal(np.asarray(b.rewards), e["rewards"])
        np.testing.assert_array_equal(np.asarray(b.terminations), e["terminations"])
        np.testing.assert_array_equal(np.asarray(b.truncations), e["truncations"])
    md = ds.storage.metadata
    assert md["ref_min_score"] == 1.0 and md["ref_max_score"] == 50.0 and json.loads(md["description"]) == meta
    # other Minari readers see it too
    with D._minari_root(tmp_path):
        assert minari.load_dataset("rlsuite/invertedpendulum/random-v0").total_episodes == len(eps)
    assert minari.get_normalized_score(ds, np.array([50.0]))[0] == pytest.approx(1.0)  # Minari's fraction, no x100


def test_existing_datasets_are_not_overwritten_and_damage_is_reported(tmp_path):
    eps = D.rollout("InvertedPendulum-v5", D.random_policy("InvertedPendulum-v5", 0), 50, seed=0)
    ds_id = "rlsuite/invertedpendulum/random-v0"
    path = D.write_dataset(ds_id, "InvertedPendulum-v5", eps, 0.0, 1.0, {}, root=tmp_path)
    before = sorted(p.read_bytes() for p in path.rglob("*") if p.is_file())
    with pytest.raises(FileExistsError, match="--overwrite"):
        D.write_dataset(ds_id, "InvertedPendulum-v5", eps[:1], 0.0, 1.0, {}, root=tmp_path)
    assert sorted(p.read_bytes() for p in path.rglob("*") if p.is_file()) == before
    data_file = next(p for p in (path / "data").iterdir() if p.suffix in (".hdf5", ".h5"))
    data_file.write_bytes(data_file.read_bytes()[:200])
    with pytest.raises(D.DatasetError, match="truncated or corrupted"):
        D.load_dataset(ds_id, tmp_path)
    with pytest.raises(D.DatasetError, match="no dataset 'rlsuite/hopper/medium-v0'"):
        D.load_dataset("rlsuite/hopper/medium-v0", tmp_path)


def test_every_level_is_made_with_provenance(made):
    root, ids = made
    assert sorted(D.list_datasets(root)) == sorted(ids.values())
    for lvl, ds_id in ids.items():
        ds = D.load_dataset(ds_id, root)
        desc = json.loads(ds.storage.metadata["description"])
        assert desc["level"] == lvl and desc["env"] == "InvertedPendulum-v5"
        b = desc["behaviour"]  # InvertedPendulum has no D4RL constants: references come from our own agents
        assert ds.storage.metadata["ref_min_score"] == pytest.approx(b["random_return"])
        assert ds.storage.metadata["ref_max_score"] == pytest.approx(b["expert_return"])
        assert len(b["sha256"]) == 64 and b["steps"] == 1500
        arr = D.dataset_arrays(ds)
        assert arr["observations"].shape == (desc["transitions"], 4) and arr["actions"].shape == (desc["transitions"], 1)
        np.testing.assert_array_equal(arr["next_observations"][:-1][~(arr["terminals"] | arr["timeouts"])[:-1]],
                                      arr["observations"][1:][~(arr["terminals"] | arr["timeouts"])[:-1]])


def test_expert_reference_and_medium_level(made):
    """The reference is the expert snapshot's return on fresh episodes; the medium policy is the
    snapshot whose return with sampled actions is nearest a third of the way from random to expert."""
    root, ids = made
    b = json.loads(D.load_dataset(ids["medium"], root).storage.metadata["description"])["behaviour"]
    beh = json.loads((Path(b["cache"]) / "behaviour.json").read_text())
    assert beh["reference_episodes"] == 10 and dict(map(tuple, beh["evaluations"]))[beh["expert_step"]] == beh["expert_eval_return"]
    assert beh["expert_eval_return"] == max(r for _, r in beh["evaluations"])
    target = beh["random_return"] + D.MEDIUM_FRACTION * (beh["expert_return"] - beh["random_return"])
    assert beh["medium_target"] == pytest.approx(target)
    sampled = dict(map(tuple, beh["medium_evaluations"]))
    assert sampled[beh["medium_step"]] == beh["medium_return"]
    assert abs(beh["medium_return"] - target) == min(abs(r - target) for r in sampled.values())
    assert beh["medium_step"] <= beh["expert_step"]


def test_collection_reports_progress_and_real_returns(made):
    root, ids = made
    lines = COLLECT_LOGS["random"]  # the first collection trains the behaviour agent
    assert lines[0].startswith("behaviour SAC InvertedPendulum-v5 seed 0: 1500 steps") and "random policy return" in lines[0]
    assert any(line.startswith("behaviour SAC InvertedPendulum-v5: step 1500/1500, evaluation return") for line in lines)
    assert any(line.startswith("expert: the snapshot at step") for line in lines)
    assert any(line.startswith("collected 3") and "/300 transitions" in line for line in lines)
    desc = json.loads(D.load_dataset(ids["random"], root).storage.metadata["description"])
    assert lines[-1].startswith(f"rlsuite/invertedpendulum/random-v0: {desc['episodes']} episodes, {desc['transitions']} transitions, "
                                f"mean return {desc['mean_return']:.1f} (normalized score")
    assert COLLECT_LOGS["medium"][0].startswith("behaviour SAC InvertedPendulum-v5: reusing")  # the cache is trained once
    out: list[str] = []
    eps = D.rollout("InvertedPendulum-v5", D.random_policy("InvertedPendulum-v5", 0), 50, seed=0, log=out.append, log_every=0.0)
    assert len(out) == len(eps) and out[-1].startswith(f"collected {sum(len(e['actions']) for e in eps)}/50 transitions, {len(eps)} episodes")


def test_medium_replay_stops_at_the_medium_snapshot(made):
    root, ids = made
    desc = json.loads(D.load_dataset(ids["medium-replay"], root).storage.metadata["description"])
    assert desc["transitions"] <= desc["behaviour"]["medium_step"]


def test_train_offline_runs_both_phases_and_checks_spaces(made, tmp_path):
    from rlsuite.offline.train import train_offline

    root, ids = made
    out = train_offline("iql", ids["medium"], 300, 300, seed=0, eval_every=300, eval_episodes=2, run_dir=tmp_path / "run", root=root)
    assert [r["phase"] for r in out["rows"]] == ["offline", "online"]
    assert (tmp_path / "run" / "metrics.csv").exists() and (tmp_path / "run" / "checkpoints" / "online" / "meta.json").exists()
    with pytest.raises(D.DatasetError, match="BC has no online phase"):
        train_offline("bc", ids["medium"], 10, 10, root=root)
    # a dataset whose spaces do not match its env
    eps = D.rollout("InvertedPendulum-v5", D.random_policy("InvertedPendulum-v5", 0), 20, seed=0)
    for e in eps:
        e["observations"] = np.concatenate([e["observations"], e["observations"][:, :1]], axis=1)
    with pytest.raises(D.DatasetError, match=r"do not match InvertedPendulum-v5 \(observation \(4,\)"):
        D.write_dataset("rlsuite/invertedpendulum/random-v0", "InvertedPendulum-v5", eps, 0.0, 1.0, {}, root=tmp_path / "bad")
    assert not (tmp_path / "bad" / "rlsuite").exists()  # nothing written


def test_a_crash_online_keeps_the_offline_results(made, tmp_path, monkeypatch):
    """metrics.csv is written after every evaluation and the offline checkpoint before the online
    phase, so a crash online loses neither."""
    from rlsuite.agents.iql import IQL
    from rlsuite.offline.train import read_evaluations, train_offline

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(IQL, "learn_online", crash)
    root, ids = made
    with pytest.raises(KeyboardInterrupt):
        train_offline("iql", ids["medium"], 200, 300, seed=0, eval_every=100, eval_episodes=1, run_dir=tmp_path / "run", root=root)
    rows = read_evaluations(tmp_path / "run")
    assert [(r["phase"], r["step"]) for r in rows] == [("offline", 100), ("offline", 200)]
    assert (tmp_path / "run" / "checkpoints" / "offline" / "meta.json").exists()


def test_resume_after_an_online_crash_matches_an_uninterrupted_run(made, tmp_path, monkeypatch):
    """The offline checkpoint holds the agent, its optimizers and the generators: a run that crashed
    online and was resumed logs exactly what a run that never stopped logs."""
    from rlsuite.agents.iql import IQL
    from rlsuite.core.run import NothingToDo
    from rlsuite.offline.train import read_evaluations, train_offline

    root, ids = made
    kw = dict(seed=0, eval_every=100, eval_episodes=1, root=root)
    whole = train_offline("iql", ids["medium"], 200, 200, run_dir=tmp_path / "whole", **kw)
    real = IQL.learn_online
    calls = {"n": 0}

    def crash_on_second_chunk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(IQL, "learn_online", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        train_offline("iql", ids["medium"], 200, 200, run_dir=tmp_path / "crashed", **kw)
    monkeypatch.setattr(IQL, "learn_online", real)
    with pytest.raises(D.DatasetError, match=r"other settings \(seed: run has 0, received 1"):
        train_offline("iql", ids["medium"], 200, 200, run_dir=tmp_path / "crashed", **{**kw, "seed": 1}, resume=True)
    resumed = train_offline("iql", ids["medium"], 200, 200, run_dir=tmp_path / "crashed", **kw, resume=True)
    assert [(r["phase"], r["step"], r["return"]) for r in resumed["rows"]] == [(r["phase"], r["step"], r["return"]) for r in whole["rows"]]
    assert resumed["offline_seconds"] > 0  # the offline phase's wall-clock, kept in its checkpoint
    assert [(r["phase"], r["step"]) for r in read_evaluations(tmp_path / "crashed")] == [
        ("offline", 100), ("offline", 200), ("online", 300), ("online", 400)]
    assert read_evaluations(tmp_path / "crashed") == read_evaluations(tmp_path / "whole")
    from rlsuite.core.checkpoint import load_checkpoint

    a, _ = load_checkpoint(tmp_path / "whole" / "checkpoints" / "online")
    b, _ = load_checkpoint(tmp_path / "crashed" / "checkpoints" / "online")
    for net in ("actor", "q", "v"):
        for k, v in a["agent"][net].items():
            assert torch.equal(v, b["agent"][net][k]), (net, k)
    before = (tmp_path / "crashed" / "metrics.csv").read_bytes()
    with pytest.raises(NothingToDo, match="already finished"):  # nothing re-evaluated, nothing appended
        train_offline("iql", ids["medium"], 200, 200, run_dir=tmp_path / "crashed", **kw, resume=True)
    with pytest.raises(D.DatasetError, match="finished its online phase after 200 env steps"):
        train_offline("iql", ids["medium"], 200, 300, run_dir=tmp_path / "crashed", **kw, resume=True)
    assert (tmp_path / "crashed" / "metrics.csv").read_bytes() == before
    with pytest.raises(D.DatasetError, match="nothing to resume in .*empty"):
        train_offline("iql", ids["medium"], 200, 200, run_dir=tmp_path / "empty", **kw, resume=True)


# --- the maze levels (a scripted controller, no behaviour agent)
def test_maze_levels_and_refusals(tmp_path):
    assert D.dataset_id("rlsuite/PointMaze-Medium-v0", "waypoint") == "rlsuite/pointmaze-medium/waypoint-v0"
    assert D.levels_for("rlsuite/PointMaze-Large-v0") == ("random", "waypoint", "waypoint-noisy")
    with pytest.raises(D.DatasetError, match=r"level 'waypoint-noisy' drives a scripted waypoint controller through a maze; "
                                             r"the envs that have it are rlsuite/PointMaze-UMaze-v0, .*For Hopper-v5 choose one of random, medium"):
        D.collect("Hopper-v5", "waypoint-noisy", 100, root=tmp_path)
    with pytest.raises(D.DatasetError, match=r"level 'expert' is not made for the maze rlsuite/PointMaze-UMaze-v0.*choose one of "
                                             r"random, waypoint, waypoint-noisy"):
        D.collect("rlsuite/PointMaze-UMaze-v0", "expert", 100, root=tmp_path)
    assert not (tmp_path / "behaviour").exists() and not (tmp_path / "rlsuite").exists()


def test_waypoint_dataset_round_trip(tmp_path):
    from rlsuite.envs.maze import GOAL_RADIUS

    lines: list[str] = []
    ds_id, _ = D.collect("rlsuite/PointMaze-UMaze-v0", "waypoint", 2000, seed=0, root=tmp_path, log=lines.append)
    assert ds_id == "rlsuite/pointmaze-umaze/waypoint-v0"
    ds = D.load_dataset(ds_id, tmp_path)
    md = ds.storage.metadata
    desc = json.loads(md["description"])
    assert (md["ref_min_score"], md["ref_max_score"]) == D.MAZE_REF == (0.0, 1.0) and "success" in desc["reference"]
    assert "behaviour" not in desc and not (tmp_path / "behaviour").exists()  # no SAC agent trained
    c = desc["controller"]
    assert c["name"] == "rlsuite.envs.maze.WaypointController" and (c["kp"], c["kd"], c["noise"]) == (10.0, 1.0, 0.1)
    arr = D.dataset_arrays(ds)
    n = desc["transitions"]
    assert n >= 2000 and arr["observations"].shape == (n, 6) and arr["actions"].shape == (n, 2)
    assert arr["next_observations"].shape == (n, 6) and np.all(np.abs(arr["actions"]) <= 1)
    # terminals are exactly the successes: reward 1, next position within the goal radius, the end of an episode
    np.testing.assert_array_equal(arr["rewards"] == 1.0, arr["terminals"])
    dist = np.linalg.norm(arr["next_observations"][:, :2] - arr["next_observations"][:, 4:6], axis=1)
    np.testing.assert_array_equal(dist <= GOAL_RADIUS, arr["terminals"])
    ends = arr["terminals"] | arr["timeouts"]
    assert ends.sum() == desc["episodes"] and ends[-1]
    assert desc["success_rate"] == pytest.approx(arr["terminals"].sum() / desc["episodes"]) and desc["success_rate"] >= 0.9
    assert desc["mean_return"] == pytest.approx(desc["success_rate"])  # the return is the success
    assert np.all(arr["observations"][:, 4:6] == [-1.0, 1.0])  # the fixed goal: cell (1, 1) of the 5 x 5 U maze
    assert lines[-1].startswith(f"{ds_id}: {desc['episodes']} episodes") and "normalized score" in lines[-1]


def test_random_maze_dataset_times_out(tmp_path):
    ds_id, _ = D.collect("rlsuite/PointMaze-UMaze-v0", "random", 300, seed=0, root=tmp_path)
    arr = D.dataset_arrays(D.load_dataset(ds_id, tmp_path))
    # seed 0's random walk does not reach the goal in 300 steps: one episode, ended by the time limit (a timeout, not a terminal)
    assert len(arr["rewards"]) == 300 and arr["timeouts"][-1] and arr["timeouts"].sum() == 1
    assert not arr["terminals"].any() and arr["rewards"].sum() == 0
