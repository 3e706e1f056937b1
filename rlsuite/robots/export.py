"""Export a policy to ONNX or TorchScript, with a parity check against the torch module.

The module handed in maps ``obs (B, obs_dim) -> actions`` with everything a deploy needs inside it:
the observation normaliser, the deterministic action and the scaling or clipping to the action bounds
(``PPO.deploy_module()``, ``SAC.deploy_module()``, :func:`sb3_deploy_module`). So an artifact never
needs side files of statistics (a known source of "garbage on the robot" with exported SB3 policies).

- ONNX: ``torch.onnx.export`` with the dynamo exporter made explicit and a pinned opset (18 by
  default), input ``obs``, output ``actions``, a dynamic batch dimension; metadata in
  ``metadata_props``; checked by ``onnx.checker``.
- TorchScript: ``torch.jit.script``, falling back to ``torch.jit.trace``; metadata in ``_extra_files``.
- :func:`verify_parity` runs both on the same random observations (float32) and fails above
  ``atol`` (1e-5 by default), reporting the largest absolute difference.

Every file is written through :func:`rlsuite.core.atomic.atomic_path` (temporary name in the same
directory, fsync, rename), so an interrupted export leaves nothing half written. Loading TorchScript runs code from the file: only load artifacts you trust.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlsuite.core.atomic import atomic_path

FORMATS = ("onnx", "torchscript")


class ParityError(RuntimeError):
    """An exported artifact does not reproduce the torch policy."""


def export_torchscript(module: nn.Module, path: str | os.PathLike, obs_dim: int, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``module`` as TorchScript (scripted, else traced on a ``(1, obs_dim)`` example)."""
    path = Path(path)
    module = module.eval().cpu()
    try:
        scripted = torch.jit.script(module)
    except Exception:  # noqa: BLE001 - modules that script does not understand are traced instead
        scripted = torch.jit.trace(module, torch.zeros(1, obs_dim))
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={"rlsuite.json": json.dumps(metadata or {})})
    return path


def export_onnx(module: nn.Module, path: str | os.PathLike, obs_dim: int, opset: int = 18, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``module`` as ONNX (input ``obs`` ``(batch, obs_dim)``, output ``actions``)."""
    import onnx

    path = Path(path)
    module = module.eval().cpu()
    example = (torch.zeros(2, obs_dim),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(module, example, dynamo=True, opset_version=opset, input_names=["obs"], output_names=["actions"],
                                dynamic_shapes=({0: batch},), verbose=False)
    model = program.model_proto
    for k, v in {"producer": "rlsuite", **{k: json.dumps(v) for k, v in (metadata or {}).items()}}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def load_runner(path: str | os.PathLike, fmt: str | None = None):
    """A callable ``obs -> actions`` for an exported artifact: a float32 ``(B, obs_dim)`` batch gives
    ``(B, act_dim)``, a single ``(obs_dim,)`` observation gives ``(act_dim,)`` (the batch dimension the
    artifact needs is added and stripped here). Its attribute ``obs_dim`` is the input width where the file
    records it (the ONNX input shape; the TorchScript metadata of ``rlsuite export``), else None; ``format``
    is ``onnx`` or ``torchscript``. Loading TorchScript runs code from the file: only load artifacts you trust."""
    path = Path(path)
    fmt = fmt or ("onnx" if path.suffix == ".onnx" else "torchscript")
    obs_dim = None
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        shape = session.get_inputs()[0].shape
        obs_dim = shape[-1] if len(shape) == 2 and isinstance(shape[-1], int) else None

        def batch(obs: np.ndarray) -> np.ndarray:
            return session.run(["actions"], {"obs": obs})[0]
    elif fmt == "torchscript":
        extra = {"rlsuite.json": ""}
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
        try:
            space = json.loads(extra["rlsuite.json"] or "{}").get("observation_space") or {}
            if space.get("type") == "Box" and len(space.get("shape", ())) == 1:
                obs_dim = int(space["shape"][0])
        except (ValueError, TypeError, AttributeError):
            obs_dim = None

        def batch(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.as_tensor(obs)).numpy()
    else:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}.")

    def run(obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim == 1:
            return np.asarray(batch(x[None]))[0]
        return batch(x)

    run.obs_dim, run.format = obs_dim, fmt
    return run


def verify_parity(module: nn.Module, path: str | os.PathLike, obs_dim: int, fmt: str | None = None, n: int = 256,
                  seed: int = 0, atol: float = 1e-5, obs_scale: float = 3.0) -> float:
    """Largest absolute difference between ``module`` and the artifact on ``n`` random observations
    (normal, std ``obs_scale``, batch of ``n`` and one at a time for the first 8); raises
    :class:`ParityError` above ``atol``."""
    rng = np.random.default_rng(seed)
    obs = (rng.standard_normal((n, obs_dim)) * obs_scale).astype(np.float32)
    with torch.no_grad():
        ref = module.eval().cpu()(torch.as_tensor(obs)).numpy()
    run = load_runner(path, fmt)
    got = np.asarray(run(obs))
    singles = np.concatenate([np.asarray(run(obs[i : i + 1])) for i in range(min(8, n))])
    diff = max(float(np.max(np.abs(got.astype(np.float64) - ref))), float(np.max(np.abs(singles.astype(np.float64) - ref[: len(singles)]))))
    if not diff <= atol:
        raise ParityError(f"{path}: exported policy differs from the torch policy by up to {diff:.3g} (allowed {atol:g}).")
    return diff


def export_policy(module: nn.Module, path: str | os.PathLike, fmt: str, obs_dim: int, metadata: dict[str, Any] | None = None,
                  opset: int = 18, atol: float = 1e-5) -> tuple[Path, float]:
    """Export and check parity; returns ``(path, max_abs_diff)``. A failed parity check removes the file."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}.")
    out = export_onnx(module, path, obs_dim, opset, metadata) if fmt == "onnx" else export_torchscript(module, path, obs_dim, metadata)
    try:
        diff = verify_parity(module, out, obs_dim, fmt, atol=atol)
    except ParityError:
        out.unlink(missing_ok=True)
        raise
    return out, diff


class _SB3Deploy(nn.Module):
    """SB3's deterministic action written out layer by layer (its ``_predict`` goes through distribution
    objects with data-dependent branches that the ONNX exporter cannot follow)."""

    def __init__(self, policy: nn.Module, low: np.ndarray | None, high: np.ndarray | None, squash: bool,
                 obs_mean: np.ndarray | None, obs_var: np.ndarray | None, clip_obs: float, eps: float) -> None:
        super().__init__()
        self.policy, self.squash = policy, squash
        self.bounded = low is not None
        self.normalize = obs_mean is not None
        self.clip_obs, self.eps = clip_obs, eps
        if low is not None:
            self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        if obs_mean is not None:
            self.register_buffer("mean", torch.as_tensor(obs_mean, dtype=torch.float32))
            self.register_buffer("var", torch.as_tensor(obs_var, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            obs = torch.clamp((obs - self.mean) / torch.sqrt(self.var + self.eps), -self.clip_obs, self.clip_obs)
        action = self._deterministic(obs)
        if self.bounded:
            if self.squash:  # SAC / TD3 policies act in [-1, 1]
                return self.low + 0.5 * (action + 1.0) * (self.high - self.low)
            return torch.max(torch.min(action, self.high), self.low)
        return action

    def _deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        p = self.policy
        if hasattr(p, "mlp_extractor"):  # on-policy ActorCriticPolicy (PPO, A2C)
            latent = p.mlp_extractor.forward_actor(p.extract_features(obs, p.pi_features_extractor))
            out = p.action_net(latent)
            return out.argmax(-1) if not self.bounded else out
        actor = p.actor  # off-policy (SAC, TD3)
        features = actor.extract_features(obs, actor.features_extractor)
        if hasattr(actor, "latent_pi"):  # SAC: tanh of the Gaussian mean
            return torch.tanh(actor.mu(actor.latent_pi(features)))
        return actor.mu(features)  # TD3: the network ends in tanh


def sb3_deploy_module(model: Any, vec_normalize: Any = None) -> nn.Module:
    """A deploy module from a stable-baselines3 model (PPO, A2C, SAC, TD3): deterministic action, the
    rescaling (squashed policies) or clipping (Gaussian policies) SB3's ``predict`` applies, and
    ``VecNormalize`` observation statistics when given, all inside the module."""
    import gymnasium as gym

    policy = model.policy.eval().cpu()
    space = model.action_space
    low = high = None
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
    mean = var = None
    clip_obs, eps = 10.0, 1e-8
    if vec_normalize is not None and getattr(vec_normalize, "norm_obs", False):
        mean, var = vec_normalize.obs_rms.mean, vec_normalize.obs_rms.var
        clip_obs, eps = float(vec_normalize.clip_obs), float(vec_normalize.epsilon)
    return _SB3Deploy(policy, low, high, bool(getattr(policy, "squash_output", False)), mean, var, clip_obs, eps).eval()
