import csv
import random

import numpy as np
import pytest
import torch

from rlsuite.core.logger import Logger
from rlsuite.core.registry import Registry, UnknownNameError
from rlsuite.core.seeding import get_rng_state, resolve_device, seed_everything, set_rng_state


def test_registry_did_you_mean():
    r = Registry("agent")
    r.register("ppo", 1)
    r.register("sac", 2)
    assert r.get("sac") == 2
    with pytest.raises(UnknownNameError) as e:
        r.get("PPO2")
    assert "Did you mean 'ppo'?" in str(e.value) and "Known agents: ppo, sac" in str(e.value)
    with pytest.raises(ValueError, match="already registered"):
        r.register("ppo", 3)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="allowed: auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_rng_state_round_trip():
    seed_everything(3)
    tensors, meta = get_rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(tensors, meta)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(ValueError):
        seed_everything(-1)


def test_logger_namespaces_csv_growth_and_truncation(tmp_path):
    lg = Logger(tmp_path, total_steps=100, tensorboard=False, progress=False)
    lg.log(10, {"rollout/ep_return": 1.0})
    lg.log(20, {"rollout/ep_return": 2.0, "train/loss": torch.tensor(0.5)})
    with pytest.raises(ValueError, match="must start with one of"):
        lg.log(30, {"loss": 1.0})
    lg.close()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["step"] for r in rows] == ["10", "20"]
    assert rows[0]["train/loss"] == "" and float(rows[1]["train/loss"]) == 0.5
    resumed = Logger(tmp_path, total_steps=100, start_step=15, tensorboard=False, progress=False)
    resumed.close()
    assert [r["step"] for r in csv.DictReader(open(tmp_path / "metrics.csv"))] == ["10"]
