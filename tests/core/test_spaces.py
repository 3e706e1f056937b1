"""Flattening of structured spaces: layout, bounds, agreement with gymnasium's own flatten, devices."""

from collections import OrderedDict

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.core.spaces import flat_dim, flatten_obs, flatten_space, is_flat

S = gym.spaces


def nested_space() -> S.Dict:
    return S.Dict(
        {
            "z_pos": S.Box(-2.0, 3.0, (2, 2), np.float32),
            "a_kind": S.Discrete(3, start=1),
            "m": S.MultiDiscrete([2, 4]),
            "bits": S.MultiBinary(3),
            "inner": S.Dict({"y": S.Box(0.0, 1.0, (1,), np.float32), "b": S.Discrete(2)}),
            "tup": S.Tuple((S.Discrete(2), S.Box(-1.0, 1.0, (2,), np.float32))),
        }
    )


def test_hand_computed_layout_sorted_keys_one_hots():
    space = S.Dict({"b": S.Box(-1.0, 1.0, (2,), np.float32), "a": S.Discrete(3), "c": S.MultiDiscrete([2, 3])})
    obs = {"b": np.array([[0.5, -0.5]]), "a": np.array([2]), "c": np.array([[1, 0]])}
    # sorted keys: a (one-hot of 2 over 3) | b (values) | c (one-hot of 1 over 2, of 0 over 3)
    expected = [[0, 0, 1, 0.5, -0.5, 0, 1, 1, 0, 0]]
    assert flatten_obs(space, obs).tolist() == expected
    box = flatten_space(space)
    assert box.shape == (10,) and flat_dim(space) == 10
    assert box.low.tolist() == [0, 0, 0, -1, -1, 0, 0, 0, 0, 0]
    assert box.high.tolist() == [1] * 10


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_gymnasium_flatten_row_by_row(seed):
    space = nested_space()
    space.seed(seed)
    samples = [space.sample() for _ in range(6)]
    batch = gym.vector.utils.concatenate(space, samples, gym.vector.utils.create_empty_array(space, 6))
    ours = flatten_obs(space, batch)
    ref = np.stack([gym.spaces.flatten(space, s) for s in samples]).astype(np.float32)
    assert ours.shape == (6, flat_dim(space)) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref)
    flat = flatten_space(space)
    assert all(flat.contains(row) for row in ours.numpy())
    ref_space = gym.spaces.flatten_space(space)
    np.testing.assert_array_equal(flat.low, ref_space.low)
    np.testing.assert_array_equal(flat.high, ref_space.high)


def test_dict_keys_are_sorted_even_when_the_space_keeps_insertion_order():
    space = S.Dict(OrderedDict([("b", S.Discrete(2)), ("a", S.Box(0.0, 1.0, (1,), np.float32))]))
    out = flatten_obs(space, {"b": np.array([1]), "a": np.array([[0.25]])})
    assert out.tolist() == [[0.25, 0.0, 1.0]]  # "a" first, then "b" one-hot


def test_torch_inputs_stay_on_their_device_and_device_argument_moves_numpy():
    space = S.Dict({"x": S.Box(0.0, 1.0, (3,), np.float32), "k": S.Discrete(4)})
    obs = {"x": torch.rand(5, 3, dtype=torch.float64), "k": torch.tensor([0, 1, 2, 3, 0])}
    out = flatten_obs(space, obs)
    assert out.dtype == torch.float32 and out.device == obs["x"].device
    assert out[:, :4].argmax(1).tolist() == [0, 1, 2, 3, 0]
    moved = flatten_obs(space, {k: v.numpy() for k, v in obs.items()}, device="cpu")
    torch.testing.assert_close(moved, out)


def test_box_and_is_flat():
    box = S.Box(-1.0, 1.0, (2, 3), np.float32)
    assert not is_flat(box) and is_flat(flatten_space(box))
    x = torch.arange(12.0).reshape(2, 2, 3)
    assert torch.equal(flatten_obs(box, x), x.reshape(2, 6))


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="supported: Box, Discrete"):
        flatten_space(S.Text(5))
    space = S.Dict({"a": S.Discrete(2), "b": S.Discrete(2)})
    with pytest.raises(ValueError, match=r"lacks the keys \['b'\]"):
        flatten_obs(space, {"a": np.array([0])})
    with pytest.raises(ValueError, match="components per row"):
        flatten_obs(S.MultiDiscrete([2, 2]), np.zeros((3, 3), dtype=np.int64))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flatten_on_cuda():
    space = nested_space()
    space.seed(0)
    samples = [space.sample() for _ in range(4)]
    batch = gym.vector.utils.concatenate(space, samples, gym.vector.utils.create_empty_array(space, 4))
    cpu = flatten_obs(space, batch)
    gpu = flatten_obs(space, batch, device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
