import json

import pytest
import torch

from rlsuite.core.checkpoint import (
    CheckpointError,
    find_latest,
    first_difference,
    flatten_state,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
    write_latest,
)


def _state():
    opt_state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    return {"weights": {"w": torch.arange(6.0).view(2, 3)}, "optim": opt_state, "counters": {"global_step": 7}, "t": (1, "a", None)}


def test_round_trip_keeps_structure_int_keys_and_tensors(tmp_path):
    state = _state()
    save_checkpoint(tmp_path / "ck", state, {"note": "hi"})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"note": "hi"}
    assert torch.equal(loaded["weights"]["w"], state["weights"]["w"])
    assert list(loaded["optim"]["state"]) == [0]  # int key survived JSON
    assert loaded["t"] == (1, "a", None)
    assert loaded["counters"]["global_step"] == 7
    assert first_difference(state, loaded) is None


def test_flatten_rejects_objects():
    with pytest.raises(TypeError, match="cannot store"):
        flatten_state({"x": object()})
    tensors, skel = flatten_state({"a": [torch.zeros(1), 2]})
    assert unflatten_state(skel, tensors)["a"][1] == 2


def test_corrupted_tensor_file_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "ck", _state())
    f = tmp_path / "ck" / "tensors.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(tmp_path / "ck")


def test_truncated_and_missing_files(tmp_path):
    save_checkpoint(tmp_path / "ck", _state())
    f = tmp_path / "ck" / "tensors.safetensors"
    f.write_bytes(f.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="metadata .* is corrupted"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path):
    save_checkpoint(tmp_path / "ck", _state(), {"v": 1})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "ck", {"bad": object()}, {"v": 2})
    _, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temporary debris


def test_first_difference_names_the_first_mismatch():
    a = {"weights": {"l1": torch.zeros(4, 3), "l2": torch.zeros(2)}}
    b = {"weights": {"l1": torch.zeros(4, 5), "l2": torch.zeros(2)}}
    assert first_difference(a, b) == "weights.l1: expected shape (4, 3), checkpoint has (4, 5)"
    assert "lacks key 'l2'" in first_difference(a, {"weights": {"l1": torch.zeros(4, 3)}})


def test_latest_pointer(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path / f"step_{step:09d}", {"x": torch.zeros(1)})
    write_latest(tmp_path, "step_000000010", 10)
    assert find_latest(tmp_path).name == "step_000000010"
    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": "gone"}))
    assert find_latest(tmp_path).name == "step_000000020"  # falls back to the newest on disk
