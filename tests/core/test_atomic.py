"""Atomic writes: a failure at any point leaves the previous content and no temporary debris."""

import json
import os
import stat

import pytest
import torch

from rlsuite.core import atomic
from rlsuite.core.atomic import (
    atomic_dir,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from rlsuite.core.checkpoint import (
    CheckpointError,
    find_latest,
    load_checkpoint,
    save_checkpoint,
    write_latest,
)
from rlsuite.core.logger import CSVWriter, read_metrics


class Boom(RuntimeError):
    pass


def _listing(d):
    return sorted(p.name for p in d.iterdir())


def _fail(*args, **kwargs):
    raise Boom("injected failure")


def test_writes_replace_the_content_and_leave_only_the_file(tmp_path):
    f = tmp_path / "sub" / "a.json"  # the parent is created
    atomic_write_json(f, {"x": 1})
    assert json.loads(f.read_text()) == {"x": 1}
    atomic_write_text(f, "two")
    atomic_write_bytes(f, b"three")
    assert f.read_bytes() == b"three"
    assert _listing(f.parent) == ["a.json"]


def test_a_new_file_gets_the_umask_mode_and_an_existing_one_keeps_its_mode(tmp_path):
    f = tmp_path / "a.txt"
    atomic_write_text(f, "x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0o600
    f.chmod(0o640)
    atomic_write_text(f, "y")
    assert stat.S_IMODE(f.stat().st_mode) == 0o640


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_failed_file_write_keeps_the_old_file(tmp_path, monkeypatch, where):
    f = tmp_path / "a.txt"
    f.write_text("old")
    if where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", _fail)
    elif where == "replace":
        monkeypatch.setattr(atomic.os, "replace", _fail)
    with pytest.raises(Boom):
        if where == "write":
            with atomic_path(f) as tmp:
                tmp.write_text("half")
                _fail()
        else:
            atomic_write_text(f, "new")
    assert f.read_text() == "old"
    assert _listing(tmp_path) == ["a.txt"]


def test_atomic_path_serves_writers_that_want_a_file_name(tmp_path):
    from safetensors.torch import load_file, save_file

    f = tmp_path / "model.safetensors"
    with atomic_path(f) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.safetensors.") and tmp.suffix == ".safetensors"
        save_file({"w": torch.arange(3.0)}, str(tmp))
        assert not f.exists()  # nothing at the final name until the body is done
    assert torch.equal(load_file(str(f))["w"], torch.arange(3.0))
    # a writer that fails half way (here: after writing) leaves the old file
    with pytest.raises(Boom), atomic_path(f) as tmp:
        save_file({"w": torch.zeros(5)}, str(tmp))
        _fail()
    assert torch.equal(load_file(str(f))["w"], torch.arange(3.0))
    assert _listing(tmp_path) == ["model.safetensors"]


def test_atomic_path_refuses_a_writer_that_left_no_file(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"old")
    with pytest.raises(FileNotFoundError, match="left no file"), atomic_path(f) as tmp:
        tmp.unlink()
    assert f.read_bytes() == b"old" and _listing(tmp_path) == ["a.bin"]


def _write_tree(d, tag):
    (d / "inner").mkdir()
    (d / "a.txt").write_text(tag)
    (d / "inner" / "b.txt").write_text(tag * 2)


def _read_tree(d):
    return (d / "a.txt").read_text(), (d / "inner" / "b.txt").read_text()


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_atomic_dir_creates_and_replaces_a_directory(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    d = tmp_path / "ds"
    with atomic_dir(d) as tmp:
        _write_tree(tmp, "v1")
        assert not d.exists()
    assert _read_tree(d) == ("v1", "v1v1")
    with atomic_dir(d) as tmp:
        _write_tree(tmp, "v2")
        assert _read_tree(d) == ("v1", "v1v1")  # the old one is untouched while the new one is written
    assert _read_tree(d) == ("v2", "v2v2")
    assert _listing(tmp_path) == ["ds"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
@pytest.mark.parametrize("where", ["body", "fsync", "rename"])
def test_a_failed_directory_write_keeps_the_old_directory(tmp_path, monkeypatch, exchange, where):
    d = tmp_path / "ds"
    with atomic_dir(d) as tmp:
        _write_tree(tmp, "v1")
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    if where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", _fail)
    elif where == "rename":  # exchange: the swap fails; two renames: the second one (old already moved aside)
        if exchange:
            monkeypatch.setattr(atomic, "_exchange", _fail)
        else:
            real = os.replace
            calls = []

            def replace(a, b):
                calls.append((a, b))
                if len(calls) == 2:
                    raise Boom("injected failure")
                return real(a, b)

            monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(Boom), atomic_dir(d) as tmp:
        _write_tree(tmp, "v2")
        if where == "body":
            _fail()
    assert _read_tree(d) == ("v1", "v1v1")
    assert _listing(tmp_path) == ["ds"]


def test_atomic_dir_will_not_replace_a_file(tmp_path):
    f = tmp_path / "ds"
    f.write_text("a file")
    with pytest.raises(FileExistsError, match="not a directory"), atomic_dir(f) as tmp:
        (tmp / "x").write_text("x")
    assert f.read_text() == "a file" and _listing(tmp_path) == ["ds"]


# ----------------------------------------------------------------------------- checkpoints


def test_a_crash_while_saving_a_checkpoint_keeps_the_previous_one_and_latest(tmp_path, monkeypatch):
    ck = tmp_path / "checkpoints"
    save_checkpoint(ck / "step_000000010", {"w": torch.ones(3)}, {"step": 10})
    write_latest(ck, "step_000000010", 10)
    # the tensor writer dies half way through the next checkpoint
    import rlsuite.core.checkpoint as checkpoint

    def dying_save_file(tensors, filename):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 7)
        raise Boom("killed while writing")

    monkeypatch.setattr(checkpoint, "save_file", dying_save_file)
    with pytest.raises(Boom):
        save_checkpoint(ck / "step_000000020", {"w": torch.zeros(3)}, {"step": 20})
    # ... and the same over an existing checkpoint name
    with pytest.raises(Boom):
        save_checkpoint(ck / "step_000000010", {"w": torch.zeros(3)}, {"step": 10})
    monkeypatch.undo()
    # latest.json's own rewrite fails at the rename
    monkeypatch.setattr(atomic.os, "replace", _fail)
    with pytest.raises(Boom):
        write_latest(ck, "step_000000020", 20)
    monkeypatch.undo()
    assert _listing(ck) == ["latest.json", "step_000000010"]
    state, meta = load_checkpoint(find_latest(ck))
    assert torch.equal(state["w"], torch.ones(3)) and meta == {"step": 10}


# ----------------------------------------------------------------------------- metrics.csv


def test_metrics_csv_rewrites_are_atomic_and_a_torn_last_line_is_dropped(tmp_path, monkeypatch, caplog):
    path = tmp_path / "metrics.csv"
    w = CSVWriter(path)
    w.write(1, {"train/a": 1.0})
    w.write(2, {"train/a": 2.0})
    before = path.read_bytes()
    monkeypatch.setattr(atomic.os, "replace", _fail)
    with pytest.raises(Boom):
        w.write(3, {"train/a": 3.0, "train/b": 4.0})  # a new column rewrites the file: it fails whole
    monkeypatch.undo()
    assert path.read_bytes() == before and _listing(tmp_path) == ["metrics.csv"]
    # a crash in the middle of an append leaves a torn last line: readers skip it, a writer removes it
    with open(path, "a", newline="") as f:
        f.write("3,3.")
    assert [r["step"] for r in read_metrics(path)] == ["1", "2"]
    w2 = CSVWriter(path)
    assert "cut off" in caplog.text
    w2.write(3, {"train/a": 3.5})
    assert [(r["step"], r["train/a"]) for r in read_metrics(path)] == [("1", "1.0"), ("2", "2.0"), ("3", "3.5")]
    w2.truncate_after(2)
    assert [r["step"] for r in read_metrics(path)] == ["1", "2"]


# ----------------------------------------------------------------------------- callers


def test_exports_contracts_and_instance_sets_leave_the_old_file_on_failure(tmp_path, monkeypatch):
    from rlsuite.envs.cop.dataset import load_instances, save_instances
    from rlsuite.robots.contract import ActionSpec, ObsTerm, PolicyContract

    c = PolicyContract(obs_terms=(ObsTerm("q", 2),), joint_names=("a", "b"), robot_joint_map=(0, 1),
                       action=ActionSpec("joint_torque", 1.0, (0.0, 0.0)), policy_dt=0.02, sim_dt=0.01, decimation=2)
    c.save(tmp_path / "contract.json")
    inst = {"locs": torch.rand(4, 5, 2)}
    save_instances(tmp_path / "set", "tsp", inst, {"seed": 0})
    monkeypatch.setattr(atomic.os, "replace", _fail)
    with pytest.raises(Boom):
        c.save(tmp_path / "contract.json")
    with pytest.raises(Boom):
        save_instances(tmp_path / "set", "tsp", {"locs": torch.rand(9, 5, 2)}, {"seed": 1}, overwrite=True)
    monkeypatch.undo()
    assert PolicyContract.load(tmp_path / "contract.json") == c
    assert _listing(tmp_path) == ["contract.json", "set"]
    # the set was being replaced: its marker went first, so it reads as absent, never as a mix
    assert _listing(tmp_path / "set") == ["instances.safetensors"]
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        load_instances(tmp_path / "set")


def test_a_failed_torchscript_export_keeps_the_previous_artifact(tmp_path, monkeypatch):
    from rlsuite.robots.export import export_torchscript, load_runner

    net = torch.nn.Linear(3, 2)
    export_torchscript(net, tmp_path / "p.pt", obs_dim=3)
    before = (tmp_path / "p.pt").read_bytes()

    def dying_save(module, filename, _extra_files=None):
        with open(filename, "wb") as f:
            f.write(b"PK\x03")
        raise Boom("killed while exporting")

    monkeypatch.setattr(torch.jit, "save", dying_save)
    with pytest.raises(Boom):
        export_torchscript(torch.nn.Linear(3, 2), tmp_path / "p.pt", obs_dim=3)
    monkeypatch.undo()
    assert (tmp_path / "p.pt").read_bytes() == before and _listing(tmp_path) == ["p.pt"]
    x = torch.rand(4, 3)
    assert torch.allclose(torch.as_tensor(load_runner(tmp_path / "p.pt")(x.numpy())), net(x), atol=1e-6)


def test_find_latest_and_load_name_the_broken_file(tmp_path):
    ck = tmp_path / "checkpoints"
    save_checkpoint(ck / "step_000000010", {"w": torch.ones(3)}, {"step": 10})
    write_latest(ck, "step_000000010", 10)
    (ck / "latest.json").write_text('{"checkpoint": "step_0')
    with pytest.raises(CheckpointError, match=r"latest\.json' is corrupted .* --resume .*step_000000010"):
        find_latest(ck)
