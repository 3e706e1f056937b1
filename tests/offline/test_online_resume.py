"""Mid-online resume of the dataset driver (rlsuite.offline.train) for agents whose state holds their
online replay (``online_resumable``: RLPD, EXPO): ``checkpoints/online_partial`` after every online
evaluation but the last; a run killed right after the second one and resumed ends as an unbroken run,
tensor for tensor and evaluation for evaluation; a resume with another online budget is refused."""

from __future__ import annotations

import json

import pytest

import rlsuite.core.checkpoint as ckpt_mod
import rlsuite.core.run as run_mod
from rlsuite.agents import AGENTS
from rlsuite.core.checkpoint import load_checkpoint, read_checkpoint_meta
from rlsuite.core.logger import read_metrics
from rlsuite.offline.datasets import DatasetError
from rlsuite.offline.train import train_offline
from tests.offline.helpers import write_mixed_dataset
from tests.test_agent_protocol import _assert_same_state

SMALL = {"start_training": 10, "hidden_sizes": (16, 16), "batch_size": 16, "num_qs": 3, "utd": 2}
# per algorithm: config overrides (sizes of tests/test_agent_protocol.py's RECIPES) and offline updates
# (EXPO pretrains its base for 20 updates, so the online steps are numbered after them)
CASES = {
    "rlpd": (SMALL, 0),
    "expo": ({**SMALL, "denoiser_width": 16, "denoiser_blocks": 1, "time_dim": 8, "diffusion_steps": 3, "num_base_samples": 3,
              "num_edit_samples": 2}, 20),
}
ONLINE, EVERY = 60, 20
EVAL_COLUMNS = ("step", "train/phase", "eval/mean_return", "eval/normalized_score")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("online-resume-data")
    return root, write_mixed_dataset(root, steps=1500)


class Killed(Exception):
    pass


def _kill_after_second_online_partial(monkeypatch) -> list[tuple[str, int]]:
    """The run raises right after writing ``online_partial`` and pointing latest.json at it, the second time."""
    real, calls = ckpt_mod.write_latest, []

    def write_then_maybe_die(checkpoint_dir, name, step):
        real(checkpoint_dir, name, step)
        calls.append((name, step))
        if name == "online_partial" and [n for n, _ in calls].count("online_partial") == 2:
            raise Killed(f"killed after writing {name} at step {step}")

    for mod in (ckpt_mod, run_mod):
        monkeypatch.setattr(mod, "write_latest", write_then_maybe_die)
    return calls


def _train(algo, data_root, run_dir, online=ONLINE, resume=False):
    root, ds = data_root
    cfg, offline = CASES[algo]
    return train_offline(algo, ds, offline, online, seed=0, eval_every=EVERY, eval_episodes=1, run_dir=run_dir, root=root,
                         config=cfg, resume=resume, tensorboard=False)


def _eval_rows(run_dir):
    return [{k: r.get(k, "") for k in EVAL_COLUMNS} for r in read_metrics(run_dir / "metrics.csv") if r.get("eval/mean_return", "")]


def _rows_but_timings(run_dir):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_metrics(run_dir / "metrics.csv")]


@pytest.mark.parametrize("algo", sorted(CASES))
def test_a_run_killed_mid_online_resumes_bit_for_bit(algo, data_root, tmp_path, monkeypatch):
    offline = CASES[algo][1]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    summary = _train(algo, data_root, whole)
    assert [(r["phase"], r["step"]) for r in summary["rows"] if r["phase"] == "online"] == \
        [("online", offline + s) for s in (20, 40, 60)]
    # a finished run keeps its final checkpoint only: online_partial (a second copy of the replay) is removed
    assert not (whole / "checkpoints" / "online_partial").exists()

    calls = _kill_after_second_online_partial(monkeypatch)
    with pytest.raises(Killed, match="online_partial"):
        _train(algo, data_root, broken)
    assert [s for n, s in calls if n == "online_partial"] == [offline + 20, offline + 40]  # after the evaluations at 20 and 40
    assert "online" not in [n for n, _ in calls]
    monkeypatch.undo()
    latest = json.loads((broken / "checkpoints" / "latest.json").read_text())
    assert latest == {"checkpoint": "online_partial", "step": offline + 40}
    assert not (broken / "checkpoints" / "online").exists()
    meta = read_checkpoint_meta(broken / "checkpoints" / "online_partial")["meta"]
    assert meta["phase"] == "online_partial" and meta["step"] == offline + 40 and meta["online_done"] == 40

    # another online budget: refused, naming the value to pass, and nothing touched
    before = (broken / "metrics.csv").read_text()
    with pytest.raises(DatasetError, match=f"resume it with --online-steps {ONLINE} \\(received 80\\)"):
        _train(algo, data_root, broken, online=80, resume=True)
    assert (broken / "metrics.csv").read_text() == before

    # the resumed run continues after the checkpoint: one chunk of 20 env steps, not the whole online phase again
    cls = AGENTS.get(algo).agent_cls
    real_learn_online, chunks = cls.learn_online, []

    def counting(self, env_id, steps, *args, **kwargs):
        chunks.append(steps)
        return real_learn_online(self, env_id, steps, *args, **kwargs)

    monkeypatch.setattr(cls, "learn_online", counting)
    resumed = _train(algo, data_root, broken, resume=True)
    assert chunks == [EVERY]
    assert [(r["phase"], r["step"]) for r in resumed["rows"]] == [(r["phase"], r["step"]) for r in summary["rows"]]
    state_whole, meta_whole = load_checkpoint(whole / "checkpoints" / "online")
    state_broken, meta_broken = load_checkpoint(broken / "checkpoints" / "online")
    assert meta_whole["step"] == meta_broken["step"] == offline + ONLINE
    _assert_same_state(state_whole["agent"], state_broken["agent"])
    assert _eval_rows(broken) == _eval_rows(whole) and len(_eval_rows(whole)) == len(summary["rows"])
    assert _rows_but_timings(broken) == _rows_but_timings(whole)  # the losses logged online too


def test_a_kill_before_the_first_online_checkpoint_leaves_no_duplicate_rows(data_root, tmp_path, monkeypatch):
    """RLPD has no offline phase, so its resume point is checkpoints/offline at step 0: the evaluation row logged
    at step 20 before the kill (its online_partial was never written) must go, not be logged twice."""
    real = ckpt_mod.save_checkpoint

    def die_before_online_partial(path, state, meta=None):
        if str(path).endswith("online_partial"):
            raise Killed("killed before writing online_partial")
        return real(path, state, meta)

    monkeypatch.setattr(ckpt_mod, "save_checkpoint", die_before_online_partial)
    with pytest.raises(Killed):
        _train("rlpd", data_root, tmp_path / "broken")
    assert [r["step"] for r in _eval_rows(tmp_path / "broken")] == ["20"]
    monkeypatch.undo()
    _train("rlpd", data_root, tmp_path / "broken", resume=True)
    _train("rlpd", data_root, tmp_path / "whole")
    assert _rows_but_timings(tmp_path / "broken") == _rows_but_timings(tmp_path / "whole")
