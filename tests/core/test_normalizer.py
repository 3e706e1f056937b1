import numpy as np
import torch

from rlsuite.core.normalizer import RunningNorm


def test_running_norm_matches_full_batch_statistics_whatever_the_split():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(1000, 3, generator=g) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -1.0, 0.0])
    norm = RunningNorm((3,))
    for chunk in torch.split(data, [1, 10, 300, 689]):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0, unbiased=False).numpy(), rtol=1e-4)
    assert norm.count.item() == 1000
    z = norm(data)
    np.testing.assert_allclose(z.mean(0).numpy(), 0.0, atol=1e-4)


def test_running_norm_is_saved_with_the_module_and_clips():
    norm = RunningNorm((2,), clip=5.0)
    norm.update(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))
    sd = norm.state_dict()
    assert set(sd) == {"mean", "var", "count"}
    other = RunningNorm((2,), clip=5.0)
    other.load_state_dict(sd)
    x = torch.tensor([[1.0, 100.0]])
    assert torch.equal(other(x), norm(x))
    assert norm(x)[0, 1].item() == 5.0  # (100 - 1) / 1 clipped to 5
