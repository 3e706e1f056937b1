"""Property tests (hypothesis) of core numerics against reference loops."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsuite.core.normalizer import RunningNorm
from rlsuite.core.rollout import compute_gae


@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 12), N=st.integers(1, 4), gamma=st.floats(0.0, 1.0), lam=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_gae_equals_reference_loop(T, N, gamma, lam, seed):
    g = torch.Generator().manual_seed(seed)
    r, v, nv = (torch.randn(T, N, generator=g, dtype=torch.float64) for _ in range(3))
    term = torch.rand(T, N, generator=g) < 0.2
    trunc = (torch.rand(T, N, generator=g) < 0.2) & ~term
    adv, ret = compute_gae(r, v, nv, term, trunc, gamma, lam)
    ref = np.zeros((T, N))
    for n in range(N):
        a = 0.0
        for t in reversed(range(T)):
            boot = 0.0 if term[t, n] else float(nv[t, n])
            a = float(r[t, n]) + gamma * boot - float(v[t, n]) + (0.0 if (term[t, n] or trunc[t, n]) else gamma * lam * a)
            ref[t, n] = a
    np.testing.assert_allclose(adv.numpy(), ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ret.numpy(), ref + v.numpy(), rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=6), seed=st.integers(0, 10_000))
def test_running_norm_is_split_invariant(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(sum(sizes), 2, generator=g) * 3 + 1
    norm = RunningNorm((2,))
    for chunk in torch.split(data, sizes):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0, unbiased=False).numpy(), rtol=1e-3, atol=1e-4)
