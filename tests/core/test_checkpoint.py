import json
import re

import pytest
import torch

from rlsuite.core.checkpoint import (
    CheckpointError,
    describe_fallback,
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
    (tmp_path / "latest.json").unlink()
    assert find_latest(tmp_path).name == "step_000000020"  # no pointer: the newest on disk
    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": "gone"}))
    # a pointer at a missing checkpoint is an error that says which intact one to resume from
    with pytest.raises(CheckpointError, match=r"points at the checkpoint .*gone'.* is missing\. The previous checkpoint "):
        find_latest(tmp_path)
    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": "../elsewhere"}))
    with pytest.raises(CheckpointError, match="not the name of a directory beside it"):
        find_latest(tmp_path)


def _run_checkpoints(tmp_path, steps=(10, 20, 30)):
    ck = tmp_path / "run" / "checkpoints"
    for step in steps:
        save_checkpoint(ck / f"step_{step:09d}", {"w": torch.full((64,), float(step))}, {"step": step})
        write_latest(ck, f"step_{step:09d}", step)
    return ck


def _resume_hint(path):
    return f"The previous checkpoint {path} is intact: resume from it with --resume {path}."


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        ("truncate", r"tensors\.safetensors' is corrupted or truncated: only \d+ of its \d+ bytes are there"),
        ("flip", r"tensors\.safetensors' is corrupted or truncated: its size is right but its bytes differ"),
        ("header", r"tensors\.safetensors' is corrupted or truncated: its safetensors header is unreadable"),
        ("tiny", r"tensors\.safetensors' is corrupted or truncated: only 5 bytes are there"),
        ("in-header", r"tensors\.safetensors' is corrupted or truncated: only 20 bytes are there, fewer than its header's"),
        ("no-tensors", r"has no tensors\.safetensors; it is incomplete"),
        ("meta", r"meta\.json' is corrupted"),
        ("no-meta", r"has no meta\.json"),
    ],
)
def test_a_corrupted_latest_checkpoint_names_the_file_and_the_flag_for_the_previous_one(tmp_path, damage, what):
    ck = _run_checkpoints(tmp_path)
    latest = find_latest(ck)
    assert latest.name == "step_000000030"
    t, m = latest / "tensors.safetensors", latest / "meta.json"
    data = t.read_bytes()
    if damage == "truncate":
        t.write_bytes(data[: len(data) - 100])
    elif damage == "flip":
        t.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    elif damage == "header":
        t.write_bytes(data[:8] + b"#" + data[9:])
    elif damage == "tiny":
        t.write_bytes(data[:5])
    elif damage == "in-header":
        t.write_bytes(data[:20])
    elif damage == "no-tensors":
        t.unlink()
    elif damage == "meta":
        m.write_text(m.read_text()[:40])
    elif damage == "no-meta":
        m.unlink()
    previous = ck / "step_000000020"
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(latest)
    msg = str(e.value)
    assert re.search(what, msg), msg
    assert _resume_hint(previous) in msg
    state, meta = load_checkpoint(previous)  # the flag's checkpoint does load
    assert meta["step"] == 20 and torch.equal(state["w"], torch.full((64,), 20.0))


def test_the_hint_skips_damaged_older_checkpoints_and_says_when_none_is_left(tmp_path):
    ck = _run_checkpoints(tmp_path)
    for step in (30, 20):
        f = ck / f"step_{step:09d}" / "tensors.safetensors"
        f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(find_latest(ck))
    assert _resume_hint(ck / "step_000000010") in str(e.value)
    f = ck / "step_000000010" / "tensors.safetensors"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="No intact earlier checkpoint is left in"):
        load_checkpoint(find_latest(ck))
    assert describe_fallback(ck, None) == f"no intact earlier checkpoint is left in {str(ck)!r}"


def test_the_hint_never_points_at_a_newer_checkpoint(tmp_path):
    ck = _run_checkpoints(tmp_path)
    f = ck / "step_000000020" / "tensors.safetensors"
    f.write_bytes(f.read_bytes()[:-1])
    hint = describe_fallback(ck, ck / "step_000000020")
    path = ck / "step_000000010"
    assert hint == f"the previous checkpoint {path} is intact: resume from it with --resume {path}"
