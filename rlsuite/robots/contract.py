"""The policy contract: everything a deployed policy assumes about its inputs and outputs, as JSON.

A contract travels with an exported policy (``policy.onnx`` + ``policy.contract.json``). It says, in
order, which observation terms the policy reads and how each is scaled, offset and clipped; how many
past frames it sees and how the history is filled and ordered; the policy's joint names and where each
sits in the robot's joint order; how actions become joint targets; the rates; the quaternion convention;
the artifact's input / output names and hash; and the versions that produced it.

Loading validates the schema and every field; :meth:`PolicyContract.check_compatible` refuses a pairing
(e.g. the contract a robot driver expects vs the one shipped with the policy) with a message naming
the first term that differs. These are the mismatches behind most "works in sim, wrong on the robot"
reports: a term of another size, a different joint order, another quaternion convention.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.core.atomic import atomic_write_json
from rlsuite.core.checkpoint import sha256_file

SCHEMA = "rlsuite.policy_contract/1"
HISTORY_FILLS = ("zeros", "first")
HISTORY_ORDERS = ("oldest_first", "newest_first")
QUATERNIONS = ("wxyz", "xyzw")
ACTION_TYPES = ("joint_position_offset", "joint_position", "joint_torque", "normalized")


class ContractError(ValueError):
    """A contract that is malformed or does not match what it is used with."""


@dataclasses.dataclass(frozen=True)
class ObsTerm:
    """One observation term: ``clip((raw - offset) * scale, -clip, clip)``, ``dim`` numbers."""

    name: str
    dim: int
    scale: float = 1.0
    offset: float = 0.0
    clip: float | None = None


@dataclasses.dataclass(frozen=True)
class History:
    """``length`` frames (1 = no history); ``fill`` for the frames before the first (zeros | first);
    ``order`` of the frames in the policy input (oldest_first | newest_first)."""

    length: int = 1
    fill: str = "zeros"
    order: str = "oldest_first"


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """How actions become joint targets: ``joint_position_offset`` means ``q_des = default_q + scale * a``
    (policy joint order), after clipping ``a`` to ``[-clip, clip]``; ``joint_torque`` means a torque
    ``tau = scale * a`` (e.g. a MuJoCo motor's gear)."""

    type: str
    scale: float
    default_q: tuple[float, ...]
    clip: float | None = None


@dataclasses.dataclass(frozen=True)
class PolicyContract:
    """See the module docstring. ``robot_joint_map[i]`` is the robot-order index of policy joint ``i``."""

    obs_terms: tuple[ObsTerm, ...]
    joint_names: tuple[str, ...]
    robot_joint_map: tuple[int, ...]
    action: ActionSpec
    policy_dt: float
    history: History = History()
    sim_dt: float | None = None
    decimation: int | None = None
    quaternion: str = "wxyz"
    inputs: tuple[str, ...] = ("obs",)
    outputs: tuple[str, ...] = ("actions",)
    artifact: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        self.validate()

    # --- sizes
    @property
    def frame_dim(self) -> int:
        return sum(t.dim for t in self.obs_terms)

    @property
    def obs_dim(self) -> int:
        return self.frame_dim * self.history.length

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    # --- validation
    def validate(self) -> None:
        if self.schema != SCHEMA:
            raise ContractError(f"contract schema {self.schema!r} is not supported; this rlsuite reads {SCHEMA!r}.")
        if not self.obs_terms:
            raise ContractError("a contract needs at least one observation term.")
        names = [t.name for t in self.obs_terms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ContractError(f"observation terms {dup} appear twice; term names must be unique.")
        for t in self.obs_terms:
            if t.dim < 1 or t.scale == 0 or (t.clip is not None and t.clip <= 0):
                raise ContractError(f"observation term {t.name!r}: dim must be >= 1, scale != 0, clip > 0 (got {t}).")
        h = self.history
        if h.length < 1 or h.fill not in HISTORY_FILLS or h.order not in HISTORY_ORDERS:
            raise ContractError(f"history {h}: length >= 1, fill in {HISTORY_FILLS}, order in {HISTORY_ORDERS}.")
        n = len(self.joint_names)
        if len(set(self.joint_names)) != n:
            raise ContractError("joint_names must be unique.")
        if len(self.robot_joint_map) != n or sorted(self.robot_joint_map) != sorted(set(self.robot_joint_map)) or min(self.robot_joint_map, default=0) < 0:
            raise ContractError(f"robot_joint_map must give a distinct robot index for each of the {n} policy joints, got {list(self.robot_joint_map)}.")
        a = self.action
        if a.type not in ACTION_TYPES or len(a.default_q) != n or a.scale == 0:
            raise ContractError(f"action: type in {ACTION_TYPES}, one default_q per joint ({n}), scale != 0; got {a}.")
        if self.policy_dt <= 0 or (self.sim_dt is not None and self.sim_dt <= 0) or (self.decimation is not None and self.decimation < 1):
            raise ContractError("policy_dt and sim_dt must be > 0 and decimation >= 1.")
        if self.quaternion not in QUATERNIONS:
            raise ContractError(f"quaternion must be one of {QUATERNIONS}, got {self.quaternion!r}.")

    def check_compatible(self, other: PolicyContract) -> None:
        """Raise :class:`ContractError` naming the first field in which ``other`` differs (artifact and
        versions aside)."""
        if len(self.obs_terms) != len(other.obs_terms):
            first = next((i for i, (a, b) in enumerate(zip(self.obs_terms, other.obs_terms, strict=False)) if a != b),
                         min(len(self.obs_terms), len(other.obs_terms)))
            raise ContractError(f"observation terms differ at position {first}: {len(self.obs_terms)} terms vs {len(other.obs_terms)} "
                                f"({_term_at(self, first)} vs {_term_at(other, first)}).")
        for i, (a, b) in enumerate(zip(self.obs_terms, other.obs_terms, strict=True)):
            if a != b:
                field = next(f.name for f in dataclasses.fields(ObsTerm) if getattr(a, f.name) != getattr(b, f.name))
                raise ContractError(f"observation term {i} ({a.name!r}) differs in {field}: {getattr(a, field)!r} vs {getattr(b, field)!r}.")
        for f in ("history", "joint_names", "robot_joint_map", "action", "policy_dt", "quaternion", "inputs", "outputs"):
            x, y = getattr(self, f), getattr(other, f)
            if x != y:
                if f in ("joint_names", "robot_joint_map"):
                    j = next((k for k, (u, v) in enumerate(zip(x, y, strict=False)) if u != v), min(len(x), len(y)))
                    raise ContractError(f"{f} differ at joint {j}: {list(x)[j:j + 1]} vs {list(y)[j:j + 1]}.")
                raise ContractError(f"{f} differs: {x!r} vs {y!r}.")

    # --- actions
    def clip_action(self, action: np.ndarray) -> np.ndarray:
        """``action`` as float32, clipped to ``[-action.clip, action.clip]`` when the contract sets a clip."""
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        return np.clip(a, -self.action.clip, self.action.clip) if self.action.clip is not None else a

    def action_to_targets(self, action: np.ndarray, robot_dof: int, robot_default_q: np.ndarray) -> np.ndarray:
        """Joint position targets ``(robot_dof,)`` in robot order from a policy action ``(action_dim,)``;
        robot joints the policy does not drive keep ``robot_default_q`` (for ``joint_torque``: torques,
        0 on joints the policy does not drive)."""
        a = self.clip_action(action)
        if a.shape[0] != self.action_dim:
            raise ContractError(f"action has {a.shape[0]} numbers; the contract's policy drives {self.action_dim} joints.")
        if self.action.type == "joint_position_offset":
            q = np.asarray(self.action.default_q, np.float32) + self.action.scale * a
        elif self.action.type == "joint_position":
            q = self.action.scale * a
        elif self.action.type == "joint_torque":
            tau = np.zeros(robot_dof, dtype=np.float32)
            tau[list(self.robot_joint_map)] = self.action.scale * a
            return tau
        else:
            raise ContractError("a 'normalized' action needs the robot's limits: use joint_position_offset or joint_position.")
        out = np.asarray(robot_default_q, np.float32).copy()
        out[list(self.robot_joint_map)] = q
        if out.shape[0] != robot_dof:
            raise ContractError(f"the robot has {robot_dof} joints but the default pose has {out.shape[0]}.")
        return out

    # --- JSON
    def to_json(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if dataclasses.is_dataclass(v):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
            if isinstance(v, (tuple, list)):
                return [conv(x) for x in v]
            return v

        return conv(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> PolicyContract:
        if not isinstance(data, dict):
            raise ContractError(f"a contract is a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(PolicyContract)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ContractError(f"unknown contract field(s) {unknown}; known: {sorted(known)}.")
        required = [f.name for f in dataclasses.fields(PolicyContract)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise ContractError(f"contract is missing the field {missing[0]!r} (required: {required}).")
        try:
            d = dict(data)
            d["obs_terms"] = tuple(ObsTerm(**t) for t in d["obs_terms"])
            d["history"] = History(**d.get("history", {}))
            act = dict(d["action"])
            act["default_q"] = tuple(float(x) for x in act["default_q"])
            d["action"] = ActionSpec(**act)
            for k in ("joint_names", "robot_joint_map", "inputs", "outputs"):
                if k in d:
                    d[k] = tuple(d[k])
            return PolicyContract(**d)
        except KeyError as e:
            raise ContractError(f"contract is missing the field {e.args[0]!r}.") from None
        except TypeError as e:
            raise ContractError(f"malformed contract: {e}.") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (:func:`rlsuite.core.atomic.atomic_write_json`)."""
        path = Path(path)
        atomic_write_json(path, self.to_json(), sort_keys=True)
        return path

    @staticmethod
    def load(path: str | os.PathLike) -> PolicyContract:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ContractError(f"{path} is not valid JSON: {e}.") from None
        return PolicyContract.from_json(data)


def _term_at(c: PolicyContract, i: int) -> str:
    return repr(c.obs_terms[i].name) if i < len(c.obs_terms) else "none"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (the artifact hash a contract records)."""
    return sha256_file(path)


class ObservationBuilder:
    """Turns raw term values into the policy input the contract describes; keeps the history.

    The training wrapper and the deploy loop both use this class, so the two cannot drift apart.
    ``push(terms)`` takes a dict ``name -> array`` with every contract term, returns ``(obs_dim,)``.
    """

    def __init__(self, contract: PolicyContract) -> None:
        self.contract = contract
        self.frames: list[np.ndarray] = []

    def reset(self) -> None:
        self.frames = []

    def frame(self, terms: dict[str, Any]) -> np.ndarray:
        parts = []
        for t in self.contract.obs_terms:
            if t.name not in terms:
                raise ContractError(f"observation term {t.name!r} is missing; got {sorted(terms)}.")
            raw = np.asarray(terms[t.name], dtype=np.float32).reshape(-1)
            if raw.shape[0] != t.dim:
                raise ContractError(f"observation term {t.name!r} has {raw.shape[0]} numbers; the contract says {t.dim}.")
            v = (raw - t.offset) * t.scale
            if t.clip is not None:
                v = np.clip(v, -t.clip, t.clip)
            parts.append(v)
        return np.concatenate(parts).astype(np.float32)

    def push(self, terms: dict[str, Any]) -> np.ndarray:
        h = self.contract.history
        f = self.frame(terms)
        if not self.frames:
            pad = f if h.fill == "first" else np.zeros_like(f)
            self.frames = [pad] * (h.length - 1)
        self.frames.append(f)
        self.frames = self.frames[-h.length :]
        frames = self.frames if h.order == "oldest_first" else self.frames[::-1]
        return np.concatenate(frames).astype(np.float32)
