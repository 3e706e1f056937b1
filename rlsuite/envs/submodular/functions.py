"""Monotone submodular set functions over grid cells, batched over trajectories and incremental.

The ground set is the cells ``0 .. N-1`` of a grid (cell ``y * width + x``). Every function is an object
that evaluates many sets at once on any device:

* ``init_state(batch, device)`` gives the empty set for ``batch`` trajectories (a dict of tensors whose
  first dimension is the batch);
* ``add(state, cells)`` adds one cell per trajectory and returns the new state and the marginal gain
  ``F(S + c) - F(S)`` (float32 ``(B,)``); adding a cell already in the set gains exactly 0;
* ``value(visited)`` evaluates sets given as bool masks ``(B, N)`` from scratch (used for checks, the
  normaliser and the planners' brute force), and ``singletons()`` gives ``F({c})`` for every cell.

No Python loop runs over trajectories or cells: coverage is a scatter into a ``(B, N + 1)`` bool mask
(column ``N`` absorbs the padding), item collection a per-type count, facility location a running
maximum, and the Gaussian-process information gain a rank-one Cholesky update per added cell
(``F(S + x) - F(S) = 1/2 log(1 + sigma_S^2(x) / noise)``, with ``sigma_S^2`` the posterior variance).

Instance helpers: :func:`disc_footprint`, :func:`bimodal_weights`, :func:`gp_density`,
:func:`nest_density`, :func:`matern52_kernel`, :func:`gp_posterior_kernel`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

State = dict[str, Tensor]

# Rows evaluated together by the from-scratch ``value`` of the heavier functions (bounds memory).
_VALUE_CHUNK = 64


def _device(device: torch.device | str | None, default: torch.device) -> torch.device:
    return default if device is None else torch.device(device)


class SetFunction(ABC):
    """A monotone submodular ``F: 2^{0..n-1} -> R`` with ``F(empty) = 0``, batched and incremental."""

    n: int

    @abstractmethod
    def init_state(self, batch: int, device: torch.device | str | None = None, max_size: int | None = None) -> State:
        """The empty set for ``batch`` trajectories. ``max_size``: the most cells that will be added
        (lets :class:`GPInformationGain` preallocate; the others ignore it)."""

    @abstractmethod
    def add(self, state: State, cells: Tensor, inplace: bool = False) -> tuple[State, Tensor]:
        """Add ``cells`` (long ``(B,)``) to the sets; returns ``(new state, gain float32 (B,))``.

        The input state is not modified, unless ``inplace`` (then its tensors are updated and reused:
        no copy of the state per step, which is what the environments do).
        """

    @abstractmethod
    def value(self, visited: Tensor) -> Tensor:
        """``F`` of the sets given as bool masks ``(B, N)``; float32 ``(B,)``."""

    @abstractmethod
    def to(self, device: torch.device | str) -> SetFunction:
        """A copy whose tensors live on ``device``."""

    @property
    def device(self) -> torch.device:
        return self._device_tensor().device

    def _device_tensor(self) -> Tensor:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def singletons(self) -> Tensor:
        """``F({c})`` for every cell, float32 ``(N,)`` (the modular reward of a visit)."""
        out = []
        eye = torch.eye(self.n, dtype=torch.bool, device=self.device)
        for i in range(0, self.n, _VALUE_CHUNK):
            out.append(self.value(eye[i : i + _VALUE_CHUNK]))
        return torch.cat(out)

    def total(self) -> float:
        """``F`` of the whole ground set (an upper bound of every ``F(S)``)."""
        return float(self.value(torch.ones(1, self.n, dtype=torch.bool, device=self.device))[0])

    def _check_cells(self, cells: Tensor, batch: int) -> Tensor:
        cells = torch.as_tensor(cells, device=self.device).long().reshape(-1)
        if cells.shape[0] != batch:
            raise ValueError(f"add() got {cells.shape[0]} cells for a batch of {batch}; pass one cell per trajectory.")
        return cells

    def _check_mask(self, visited: Tensor) -> Tensor:
        visited = torch.as_tensor(visited, device=self.device)
        if visited.dim() != 2 or visited.shape[1] != self.n:
            raise ValueError(f"value() needs a bool mask of shape (B, {self.n}), got {tuple(visited.shape)}.")
        return visited.bool()


def _padded(index: Tensor, n: int) -> Tensor:
    """Replace the ``-1`` padding of an index tensor by ``n`` (a dummy column)."""
    return torch.where(index >= 0, index, torch.full_like(index, n))


class WeightedCoverage(SetFunction):
    """``F(S) = sum of weights[c] over c in the union of footprint[s], s in S``.

    Args:
        weights: float ``(N,)``, non-negative weight of each covered cell.
        footprint: long ``(N, K)``: the cells a visit covers, ``-1`` padded, no repeats within a row.
    """

    def __init__(self, weights: Tensor, footprint: Tensor) -> None:
        weights = torch.as_tensor(weights, dtype=torch.float32)
        footprint = torch.as_tensor(footprint).long()
        n = weights.shape[0]
        if weights.dim() != 1 or (weights < 0).any():
            raise ValueError(f"weights must be a non-negative (N,) tensor, got shape {tuple(weights.shape)} "
                             f"with min {float(weights.min()) if weights.numel() else 'n/a'}.")
        if footprint.dim() != 2 or footprint.shape[0] != n or (footprint < -1).any() or (footprint >= n).any():
            raise ValueError(f"footprint must be (N={n}, K) with cell ids in [0, {n}) or -1, got shape "
                             f"{tuple(footprint.shape)} and values in [{int(footprint.min())}, {int(footprint.max())}].")
        srt = footprint.sort(dim=1).values
        if ((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any():
            raise ValueError("footprint rows must not repeat a cell (a repeat would be counted twice); deduplicate them.")
        self.n = n
        self.weights = weights
        self.footprint = footprint
        self._w = torch.cat([weights, weights.new_zeros(1)])  # (N+1,): the dummy column weighs 0
        self._fp = _padded(footprint, n)  # (N, K)

    def _device_tensor(self) -> Tensor:
        return self.weights

    def to(self, device: torch.device | str) -> WeightedCoverage:
        return WeightedCoverage(self.weights.to(device), self.footprint.to(device))

    def init_state(self, batch: int, device=None, max_size=None) -> State:
        dev = _device(device, self.device)
        return {"covered": torch.zeros(batch, self.n + 1, dtype=torch.bool, device=dev)}

    def add(self, state: State, cells: Tensor, inplace: bool = False) -> tuple[State, Tensor]:
        covered = state["covered"]
        cells = self._check_cells(cells, covered.shape[0])
        idx = self._fp[cells]  # (B, K)
        new = ~covered.gather(1, idx)
        gain = (self._w[idx] * new).sum(1)
        covered = covered.scatter_(1, idx, True) if inplace else covered.scatter(1, idx, True)
        return {"covered": covered}, gain.to(torch.float32)

    def covered_mask(self, visited: Tensor) -> Tensor:
        """bool ``(B, N)``: the cells covered by the visited sets."""
        visited = self._check_mask(visited)
        B = visited.shape[0]
        rows, cells = visited.nonzero(as_tuple=True)  # only the visited cells' footprints are scattered
        flat = (rows[:, None] * (self.n + 1) + self._fp[cells]).reshape(-1)  # (M * K,) into (B * (N + 1),)
        cov = torch.zeros(B * (self.n + 1), dtype=torch.bool, device=visited.device)
        cov[flat] = True
        return cov.view(B, self.n + 1)[:, : self.n]

    def value(self, visited: Tensor) -> Tensor:
        return (self.covered_mask(visited).to(torch.float32) * self.weights).sum(1)

    def singletons(self) -> Tensor:
        return self._w[self._fp].sum(1)


class FacilityLocation(SetFunction):
    """``F(S) = sum_m max_{s in S} similarity[s, m]`` (0 for the empty set).

    Args:
        similarity: float ``(N, M)``, non-negative (monotonicity needs ``max`` over a non-negative floor).
    """

    def __init__(self, similarity: Tensor) -> None:
        similarity = torch.as_tensor(similarity, dtype=torch.float32)
        if similarity.dim() != 2 or (similarity < 0).any():
            raise ValueError(f"similarity must be a non-negative (N, M) tensor, got shape {tuple(similarity.shape)}.")
        self.n = similarity.shape[0]
        self.similarity = similarity

    def _device_tensor(self) -> Tensor:
        return self.similarity

    def to(self, device: torch.device | str) -> FacilityLocation:
        return FacilityLocation(self.similarity.to(device))

    def init_state(self, batch: int, device=None, max_size=None) -> State:
        dev = _device(device, self.device)
        return {"best": torch.zeros(batch, self.similarity.shape[1], dtype=torch.float32, device=dev)}

    def add(self, state: State, cells: Tensor, inplace: bool = False) -> tuple[State, Tensor]:
        best = state["best"]
        cells = self._check_cells(cells, best.shape[0])
        new = torch.maximum(best, self.similarity[cells])
        return {"best": new}, (new - best).sum(1)

    def value(self, visited: Tensor) -> Tensor:
        visited = self._check_mask(visited)
        out = []
        for i in range(0, visited.shape[0], _VALUE_CHUNK):
            v = visited[i : i + _VALUE_CHUNK, :, None].to(torch.float32)
            out.append((v * self.similarity[None]).amax(1).sum(1))
        return torch.cat(out) if out else torch.zeros(0, device=self.device)

    def singletons(self) -> Tensor:
        return self.similarity.sum(1)


class ItemCollection(SetFunction):
    """``F(S) = sum_k min(|S n items_k|, thresholds[k])``: each item type ``k`` is worth collecting up
    to ``thresholds[k]`` times (a concave function of a count: monotone submodular).

    Args:
        items: long ``(K, G)``: the cells holding an item of type ``k``, ``-1`` padded (repeats ignored).
        thresholds: ``(K,)`` positive numbers ``D_k``.
        n: the ground-set size (number of cells).
    """

    def __init__(self, items: Tensor, thresholds: Tensor | Sequence[float], n: int) -> None:
        items = torch.as_tensor(items).long()
        thresholds = torch.as_tensor(thresholds, dtype=torch.float32)
        if items.dim() != 2 or thresholds.shape != (items.shape[0],) or (thresholds <= 0).any():
            raise ValueError(f"items must be (K, G) and thresholds (K,) positive; got {tuple(items.shape)} and "
                             f"{tuple(thresholds.shape)} = {thresholds.tolist()}.")
        if (items < -1).any() or (items >= n).any():
            raise ValueError(f"item cells must be in [0, {n}) or -1 (padding), got values in "
                             f"[{int(items.min())}, {int(items.max())}].")
        self.n = int(n)
        self.items = items
        self.thresholds = thresholds
        K = items.shape[0]
        member = torch.zeros(n + 1, K, dtype=torch.float32, device=items.device)
        member[_padded(items, n), torch.arange(K, device=items.device)[:, None].expand_as(items)] = 1.0
        self.membership = member[:n]  # (N, K): 1 where cell holds an item of type k

    def _device_tensor(self) -> Tensor:
        return self.thresholds

    def to(self, device: torch.device | str) -> ItemCollection:
        return ItemCollection(self.items.to(device), self.thresholds.to(device), self.n)

    def init_state(self, batch: int, device=None, max_size=None) -> State:
        dev = _device(device, self.device)
        return {
            "visited": torch.zeros(batch, self.n, dtype=torch.bool, device=dev),
            "counts": torch.zeros(batch, self.items.shape[0], dtype=torch.float32, device=dev),
        }

    def add(self, state: State, cells: Tensor, inplace: bool = False) -> tuple[State, Tensor]:
        visited, counts = state["visited"], state["counts"]
        cells = self._check_cells(cells, visited.shape[0])
        new = ~visited.gather(1, cells[:, None])  # (B, 1)
        c2 = counts + self.membership[cells] * new
        gain = (torch.minimum(c2, self.thresholds) - torch.minimum(counts, self.thresholds)).sum(1)
        visited = visited.scatter_(1, cells[:, None], True) if inplace else visited.scatter(1, cells[:, None], True)
        return {"visited": visited, "counts": c2}, gain

    def value(self, visited: Tensor) -> Tensor:
        counts = self._check_mask(visited).to(torch.float32) @ self.membership
        return torch.minimum(counts, self.thresholds).sum(1)

    def singletons(self) -> Tensor:
        return torch.minimum(self.membership, self.thresholds).sum(1)


class GPInformationGain(SetFunction):
    """``F(S) = 1/2 logdet(I + K_SS / noise)``: the mutual information between noisy observations at
    ``S`` and a Gaussian process with covariance ``K`` (Bayesian D-optimal design).

    Incremental: ``F(S + x) - F(S) = 1/2 log(1 + sigma_S^2(x) / noise)``; the state keeps the rows
    ``V = L^{-1} K_{S,:}`` of the Cholesky factor of ``K_SS + noise I`` and the posterior variances, and
    each added cell appends one row (``O(|S| N)`` per trajectory). Computed in float64.

    Args:
        kernel: ``(N, N)`` symmetric positive semi-definite covariance.
        noise: observation noise variance (> 0).
    """

    def __init__(self, kernel: Tensor, noise: float) -> None:
        kernel = torch.as_tensor(kernel, dtype=torch.float64)
        if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1]:
            raise ValueError(f"kernel must be a square (N, N) matrix, got shape {tuple(kernel.shape)}.")
        if not noise > 0:
            raise ValueError(f"noise must be > 0 (it keeps the log-determinant finite), got {noise}.")
        self.n = kernel.shape[0]
        self.kernel = kernel
        self.noise = float(noise)
        self._diag = kernel.diagonal().clamp_min(0.0).clone()

    def _device_tensor(self) -> Tensor:
        return self.kernel

    def to(self, device: torch.device | str) -> GPInformationGain:
        return GPInformationGain(self.kernel.to(device), self.noise)

    def init_state(self, batch: int, device=None, max_size=None) -> State:
        dev = _device(device, self.device)
        cap = 8 if max_size is None else max(1, int(max_size))
        state = {
            "visited": torch.zeros(batch, self.n, dtype=torch.bool, device=dev),
            "var": self._diag.to(dev).expand(batch, -1).clone(),
            "rows": torch.zeros(batch, cap, self.n, dtype=torch.float64, device=dev),
            "size": torch.zeros(batch, dtype=torch.int64, device=dev),
        }
        if max_size is None:  # no bound given: add() checks the capacity (a host sync) and grows the rows
            state["growable"] = torch.ones((), dtype=torch.bool)
        return state

    def add(self, state: State, cells: Tensor, inplace: bool = False) -> tuple[State, Tensor]:
        visited, var, rows, size = state["visited"], state["var"], state["rows"], state["size"]
        B = visited.shape[0]
        cells = self._check_cells(cells, B)
        if "growable" in state and size.numel() and int(size.max()) >= rows.shape[1]:
            rows = torch.cat([rows, torch.zeros_like(rows)], dim=1)
        new = ~visited.gather(1, cells[:, None]).squeeze(1)  # (B,)
        var_c = var.gather(1, cells[:, None]).squeeze(1).clamp_min(0.0)  # (B,)
        col = rows.gather(2, cells[:, None, None].expand(B, rows.shape[1], 1))  # (B, cap, 1) = V[:, :, c]
        cov = self.kernel[cells] - torch.bmm(col.transpose(1, 2), rows).squeeze(1)  # (B, N): posterior cov of c
        v = cov / torch.sqrt(var_c + self.noise)[:, None] * new[:, None]
        at = size[:, None, None].expand(B, 1, self.n)
        rows = rows.scatter_(1, at, v[:, None, :]) if inplace else rows.scatter(1, at, v[:, None, :])
        gain = 0.5 * torch.log1p(var_c / self.noise) * new
        out = {
            "visited": visited.scatter_(1, cells[:, None], True) if inplace else visited.scatter(1, cells[:, None], True),
            "var": var.sub_(v * v) if inplace else var - v * v,
            "rows": rows,
            "size": size + new.long(),
        }
        if "growable" in state:
            out["growable"] = state["growable"]
        return out, gain.to(torch.float32)

    def value(self, visited: Tensor) -> Tensor:
        visited = self._check_mask(visited)
        out = []
        eye = torch.eye(self.n, dtype=torch.float64, device=visited.device)
        for i in range(0, visited.shape[0], _VALUE_CHUNK):
            m = visited[i : i + _VALUE_CHUNK].to(torch.float64)
            # rows and columns outside S become identity rows: the determinant is that of I + K_SS / noise
            a = eye + m[:, :, None] * m[:, None, :] * self.kernel / self.noise
            out.append(0.5 * torch.logdet(a))
        return torch.cat(out).to(torch.float32) if out else torch.zeros(0, device=self.device)

    def singletons(self) -> Tensor:
        return (0.5 * torch.log1p(self._diag / self.noise)).to(torch.float32)


class SumOf(SetFunction):
    """``F(S) = sum_i weights[i] * F_i(S)`` (non-negative weights keep it monotone submodular)."""

    def __init__(self, functions: Sequence[SetFunction], weights: Sequence[float] | None = None) -> None:
        functions = list(functions)
        if not functions:
            raise ValueError("SumOf needs at least one set function.")
        sizes = {f.n for f in functions}
        if len(sizes) != 1:
            raise ValueError(f"SumOf's functions must share the ground set; got sizes {sorted(sizes)}.")
        weights = [1.0] * len(functions) if weights is None else [float(w) for w in weights]
        if len(weights) != len(functions) or any(w < 0 for w in weights):
            raise ValueError(f"SumOf needs one non-negative weight per function; got {weights} for {len(functions)}.")
        self.functions, self.weights, self.n = functions, weights, functions[0].n

    def _device_tensor(self) -> Tensor:
        return self.functions[0]._device_tensor()

    def to(self, device: torch.device | str) -> SumOf:
        return SumOf([f.to(device) for f in self.functions], self.weights)

    def init_state(self, batch: int, device=None, max_size=None) -> State:
        return {f"{i}.{k}": v for i, f in enumerate(self.functions) for k, v in f.init_state(batch, device, max_size).items()}

    def _split(self, state: State, i: int) -> State:
        p = f"{i}."
        return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}

    def add(self, state: State, cells: Tensor, inplace: bool = False) -> tuple[State, Tensor]:
        out: State = {}
        total = None
        for i, (f, w) in enumerate(zip(self.functions, self.weights, strict=True)):
            s, g = f.add(self._split(state, i), cells, inplace)
            out.update({f"{i}.{k}": v for k, v in s.items()})
            total = w * g if total is None else total + w * g
        return out, total

    def value(self, visited: Tensor) -> Tensor:
        return sum(w * f.value(visited) for f, w in zip(self.functions, self.weights, strict=True))

    def singletons(self) -> Tensor:
        return sum(w * f.singletons() for f, w in zip(self.functions, self.weights, strict=True))


# ----------------------------------------------------------------------------------------------------
# instance helpers


def grid_xy(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """float64 ``(N, 2)``: the ``(x, y)`` of cell ``y * width + x``."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).to(device or "cpu")


def disc_footprint(height: int, width: int, radius_or_kind: str | float = "2x2") -> Tensor:
    """long ``(N, K)``: the cells covered from each cell, ``-1`` padded (off-grid cells dropped).

    ``"2x2"``: the cell, its right, down and down-right neighbours (the authors' disc); ``"3x3"``: the
    3x3 block centred on the cell; a number ``r``: every cell within Euclidean distance ``r``.
    """
    if radius_or_kind == "2x2":
        offsets = [(0, 0), (1, 0), (0, 1), (1, 1)]
    elif radius_or_kind == "3x3":
        offsets = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    elif isinstance(radius_or_kind, int | float) and not isinstance(radius_or_kind, bool) and radius_or_kind >= 0:
        r = float(radius_or_kind)
        k = int(math.floor(r))
        offsets = [(dx, dy) for dy in range(-k, k + 1) for dx in range(-k, k + 1) if dx * dx + dy * dy <= r * r]
    else:
        raise ValueError(f"radius_or_kind must be '2x2', '3x3' or a radius >= 0, got {radius_or_kind!r}.")
    xy = grid_xy(height, width).long()
    off = torch.tensor(offsets, dtype=torch.long)  # (K, 2)
    tgt = xy[:, None, :] + off[None]  # (N, K, 2)
    ok = (tgt[..., 0] >= 0) & (tgt[..., 0] < width) & (tgt[..., 1] >= 0) & (tgt[..., 1] < height)
    cells = tgt[..., 1] * width + tgt[..., 0]
    return torch.where(ok, cells, torch.full_like(cells, -1))


def bimodal_weights(height: int, width: int) -> Tensor:
    """float32 ``(N,)``: ``sigmoid(x * y)`` with ``x, y`` spanning ``[-1, 1]`` (the authors' bimodal
    weights: high near two opposite corners)."""
    xs = torch.linspace(-1.0, 1.0, width, dtype=torch.float64)
    ys = torch.linspace(-1.0, 1.0, height, dtype=torch.float64)
    return torch.sigmoid(ys[:, None] * xs[None, :]).reshape(-1).to(torch.float32)


def matern52_kernel(xy: Tensor, lengthscale: float, variance: float = 1.0) -> Tensor:
    """float64 ``(N, N)`` Matern-5/2 covariance of the points ``xy`` ``(N, d)``."""
    r = torch.cdist(xy.to(torch.float64), xy.to(torch.float64)) / float(lengthscale)
    s5r = math.sqrt(5.0) * r
    return variance * (1.0 + s5r + 5.0 / 3.0 * r * r) * torch.exp(-s5r)


def _cholesky_sample(kernel: Tensor, generator: torch.Generator) -> Tensor:
    n = kernel.shape[0]
    jitter = 1e-8 * float(kernel.diagonal().mean())
    while True:
        chol, info = torch.linalg.cholesky_ex(kernel + jitter * torch.eye(n, dtype=kernel.dtype))
        if int(info) == 0:
            break
        jitter *= 10.0
    z = torch.randn(n, dtype=torch.float64, generator=generator)
    return chol @ z


def gp_density(height: int, width: int, lengthscale: float = 4.0, seed: int = 0, shift: float = 3.0) -> Tensor:
    """float32 ``(N,)``: one Matern-5/2 GP sample on the grid (lengthscale in cells), shifted positive.

    The sample is shifted by ``+shift`` (the authors' +3); where that leaves a value ``<= 0``, the whole
    map is shifted up further so its minimum is ``0.01`` (the authors' code shifts the wrong
    way there and can produce negative weights, which break monotonicity).
    """
    g = torch.Generator().manual_seed(int(seed))
    f = _cholesky_sample(matern52_kernel(grid_xy(height, width), lengthscale), g) + shift
    floor = 0.01
    if float(f.min()) < floor:
        f = f - float(f.min()) + floor
    return f.to(torch.float32)


def nest_density(height: int, width: int, seed: int = 0, clusters: int = 6, nests_per_cluster: tuple[int, int] = (8, 30),
                 spread: float = 2.5, bandwidth: float = 1.5) -> Tensor:
    """float32 ``(N,)``: a clustered "nest" density for biodiversity monitoring, generated locally.

    ``clusters`` centres are drawn uniformly; each gets a random number of nests scattered around it
    (Gaussian, ``spread`` cells); the density is a sum of Gaussian bumps (``bandwidth`` cells) at the
    nests, scaled to a maximum of 1. (Stands in for the authors' Kagwene gorilla-nest map, which their
    repository does not contain.)
    """
    g = torch.Generator().manual_seed(int(seed))
    centres = torch.rand(clusters, 2, generator=g, dtype=torch.float64) * torch.tensor([width - 1, height - 1], dtype=torch.float64)
    lo, hi = nests_per_cluster
    counts = torch.randint(lo, hi + 1, (clusters,), generator=g)
    nests = torch.cat([c + spread * torch.randn(int(k), 2, generator=g, dtype=torch.float64) for c, k in zip(centres, counts, strict=True)])
    d2 = torch.cdist(grid_xy(height, width), nests).pow(2)
    dens = torch.exp(-0.5 * d2 / bandwidth**2).sum(1)
    return (dens / dens.max()).to(torch.float32)


def gp_posterior_kernel(prior: Tensor, observed: Tensor, noise: float) -> Tensor:
    """float64 ``(N, N)``: the GP covariance after noisy observations at the cells ``observed`` ``(O,)``."""
    k_o = prior[:, observed]  # (N, O)
    k_oo = prior[observed][:, observed] + noise * torch.eye(len(observed), dtype=prior.dtype)
    post = prior - k_o @ torch.linalg.solve(k_oo, k_o.T)
    return 0.5 * (post + post.T)
