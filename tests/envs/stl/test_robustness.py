"""Robustness traces: hand-computed examples, rtamt as the oracle (property test), smooth semantics."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlsuite.envs.stl.robustness import robustness
from rlsuite.envs.stl.spec import Always, And, Eventually, Implies, Not, Or, Predicate, Until, to_text

INF = math.inf
X = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
Y = torch.tensor([[1.0, -1.0, 0.5, 2.0, -3.0]])
XY = torch.stack([X, Y], -1)  # (1, 5, 2)


@pytest.mark.parametrize("formula,expected", [
    ("x > 1", [-1, 0, 1, 2, 3]),
    ("x - y <= 0.5", [1.5, -1.5, -1.0, -0.5, -6.5]),
    ("G[0,2] y > 0", [-1, -1, -3, -3, -3]),
    ("F[0,2] x > 3", [-1, 0, 1, 1, 1]),              # windows cut at the end of the trace
    ("F[2,10] x > 3", [1, 1, 1, -INF, -INF]),        # empty window: -inf
    ("G[1,10] x > -1", [2, 3, 4, 5, INF]),           # empty window: +inf
    ("x > 1 U[0,2] y > 1", [0, 0, 1, 1, -4]),        # left operand on [t, t')
    ("y > 0 U[1,3] x > 2", [-1, -1, 0.5, 2, -INF]),
    ("!(x > 1) -> y <= 0.5", [-0.5, 1.5, 1, 2, 3.5]),
    ("G x > -1", [1, 2, 3, 4, 5]),
    ("F y > 0", [2, 2, 2, 2, -3]),
])
def test_hand_computed_traces(formula, expected):
    """Values worked out by hand (and identical to rtamt 0.4's discrete-time offline monitor)."""
    rho = robustness(formula, XY, ["x", "y"])
    np.testing.assert_allclose(rho[0].numpy(), np.array(expected, dtype=np.float64), atol=1e-6)


def test_batch_dimension_and_errors():
    x = torch.randn(7, 12, 2)
    rho = robustness("F[0,3](x > 0) & G(y < 1)", x, ["x", "y"])
    assert rho.shape == (7, 12)
    for b in range(7):
        torch.testing.assert_close(rho[b : b + 1], robustness("F[0,3](x > 0) & G(y < 1)", x[b : b + 1], ["x", "y"]))
    with pytest.raises(ValueError, match="not among the trace's"):
        robustness("z > 0", x, ["x", "y"])
    with pytest.raises(ValueError, match=r"\(batch, time, signals\)"):
        robustness("x > 0", x[0], ["x", "y"])
    with pytest.raises(ValueError, match="allowed: hard, smooth"):
        robustness("x > 0", x, ["x", "y"], mode="soft")


def test_smooth_robustness_brackets_and_converges_to_hard():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 20, 2, generator=g)
    f = "F[0,5](x > 0.5) | G[2,8](y < 0)"
    hard = robustness(f, x, ["x", "y"])[:, 0]
    prev = None
    for temp in (1.0, 0.1, 0.01, 0.001):
        soft = robustness(f, x, ["x", "y"], mode="smooth", temperature=temp)[:, 0]
        err = (soft - hard).abs().max().item()
        assert prev is None or err <= prev + 1e-6
        prev = err
    assert prev < 0.01


def test_smooth_robustness_has_gradients_everywhere():
    x = torch.randn(4, 10, 1, requires_grad=True)
    rho = robustness("G[0,5](F[0,2](x > 0))", x, ["x"], mode="smooth", temperature=0.5)[:, 0]
    rho.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs() > 0).sum() > 10


# --- against rtamt ----------------------------------------------------------------------------------------

rtamt = pytest.importorskip("rtamt")
NAMES = ["x", "y"]


def _rtamt_trace(formula_text: str, x: np.ndarray) -> np.ndarray:
    spec = rtamt.StlDiscreteTimeSpecification()
    for n in NAMES:
        spec.declare_var(n, "float")
    spec.spec = formula_text
    spec.parse()
    data = {"time": list(range(x.shape[0]))}
    for i, n in enumerate(NAMES):
        data[n] = [float(v) for v in x[:, i]]
    return np.array([v for _, v in spec.evaluate(data)], dtype=np.float64)


def _interval(draw, allow_unbounded: bool):
    a = draw(st.integers(0, 4))
    if allow_unbounded and a == 0 and draw(st.booleans()):
        return 0, None
    return a, a + draw(st.integers(0, 5))


@st.composite
def formulas(draw, depth=3):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        terms = draw(st.sampled_from([(("x", 1.0),), (("y", 1.0),), (("x", -1.0),), (("x", 1.0), ("y", -2.0)), (("x", 0.5), ("y", 1.0))]))
        return Predicate(terms, draw(st.sampled_from([-1.5, -0.5, 0.0, 0.25, 1.0])))
    kind = draw(st.sampled_from(["not", "and", "or", "implies", "G", "F", "U"]))
    sub = lambda: draw(formulas(depth - 1))  # noqa: E731
    if kind == "not":
        return Not(sub())
    if kind in ("and", "or"):
        kids = tuple(sub() for _ in range(draw(st.integers(2, 3))))
        return And(kids) if kind == "and" else Or(kids)
    if kind == "implies":
        return Implies(sub(), sub())
    a, b = _interval(draw, allow_unbounded=True)
    if kind == "G":
        return Always(a, b, sub())
    if kind == "F":
        return Eventually(a, b, sub())
    return Until(a, b, sub(), sub())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas(), st.integers(2, 14), st.integers(0, 2**31 - 1))  # rtamt fails on one-sample traces
def test_agrees_with_rtamt_on_random_formulas_and_traces(formula, length, seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(length, 2)) * 2, 3)
    ours = robustness(formula, torch.tensor(x[None], dtype=torch.float64), NAMES)[0].numpy()
    oracle = _rtamt_trace(to_text(formula, style="rtamt"), x)
    np.testing.assert_allclose(ours, oracle, atol=1e-5, err_msg=to_text(formula))
