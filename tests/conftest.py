"""Shared test set-up: quiet MuJoCo logs, fixed torch threads, helpers."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
#: Torch threads for the whole session (default 2). ``RLSUITE_TEST_THREADS=1 make test`` runs the suite with one
#: thread: another reduction order, much as another CPU gives (see docs/learning_tests.md).
_threads = os.environ.get("RLSUITE_TEST_THREADS", "2")
if not _threads.isdigit() or int(_threads) < 1:
    raise ValueError(f"RLSUITE_TEST_THREADS must be an integer >= 1 (e.g. 1 or 2), got {_threads!r}.")
TEST_THREADS = int(_threads)
torch.set_num_threads(TEST_THREADS)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _chdir_tmp(tmp_path, monkeypatch):
    """Run every test in its own directory so stray files (runs/, MUJOCO_LOG.TXT) never land in the repo."""
    monkeypatch.chdir(tmp_path)
