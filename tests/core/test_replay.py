import pytest
import torch

from rlsuite.core.replay import MixedSampler, ReplayBuffer


def _fill(buf, start, n):
    x = torch.arange(start, start + n, dtype=torch.float32)
    buf.add(x[:, None], x[:, None], x, x[:, None] + 0.5, torch.zeros(n, dtype=torch.bool))


def test_circular_overwrite_and_state_round_trip():
    buf = ReplayBuffer(5, (1,), (1,))
    _fill(buf, 0, 3)
    _fill(buf, 3, 4)  # 7 items into capacity 5: 0 and 1 overwritten
    assert len(buf) == 5 and buf.ptr == 2
    assert sorted(buf.rewards.tolist()) == [2, 3, 4, 5, 6]
    other = ReplayBuffer(5, (1,), (1,))
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.obs, buf.obs) and other.ptr == buf.ptr
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(6, (1,), (1,)).load_state_dict(buf.state_dict())


def test_mixed_sampler_ratio_is_exact():
    off, on = ReplayBuffer(100, (1,), (1,)), ReplayBuffer(100, (1,), (1,))
    _fill(off, 0, 50)  # rewards 0..49
    _fill(on, 1000, 50)  # rewards 1000..1049
    s = MixedSampler(off, on, offline_fraction=0.25).sample(64)
    n_off = int((s["rewards"] < 1000).sum())
    assert n_off == 16 and s["obs"].shape == (64, 1)
    with pytest.raises(ValueError):
        MixedSampler(off, on, 1.5)


def test_mixed_sampler_falls_back_when_online_is_empty():
    off, on = ReplayBuffer(10, (1,), (1,)), ReplayBuffer(10, (1,), (1,))
    _fill(off, 0, 5)
    assert MixedSampler(off, on, 0.5).sample(8)["rewards"].max() < 5


def test_empty_buffer_sampling_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, (1,), (1,)).sample(2)
