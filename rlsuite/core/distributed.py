"""Data-parallel learners over ``torch.distributed``: one process per rank, launched by ``torchrun``.

Every rank builds the same agent, steps its own envs (seeded ``seed + rank``, so each rank collects other
data) and computes gradients on its own batches. :func:`make_data_parallel` keeps the ranks' weights
identical without touching the agent's code:

1. once the agent is built, every tensor of every ``nn.Module`` found on it (parameters and buffers), every
   optimiser parameter that no module holds (SAC's ``log_alpha``) and every optimiser state tensor are
   broadcast from rank 0;
2. every ``torch.optim.Optimizer`` found on it gets a step pre-hook that, before each ``step()``, replaces the
   gradients of its parameters by their mean over the ranks: one flattened all-reduce per step (per device
   the parameters live on), not one per tensor. The same hook checks that every rank is at the same step;
3. running statistics merge their batch moments over the ranks inside their own update
   (:class:`rlsuite.core.normalizer.RunningNorm` asks :func:`stats_context` whether a data-parallel agent is
   active), so every rank normalises with the statistics of all ranks' samples.

The agent is walked through its attributes and the dicts, lists, tuples and rlsuite objects below them
(TGPO's inner PPO, for instance); environments are not entered. Identical weights, identical gradients and
identical optimiser states give identical updates, so the ranks stay bit-identical as long as nothing
else changes the weights: :meth:`DataParallel.check_in_sync` compares a fingerprint of every module and
optimiser across the ranks (the env driver calls it after the first iteration, after the first one with an
optimiser step, at every checkpoint and at the end) and names what differs.

What the averaging does not cover, and so cannot be trained this way (each is detected, not silently run):
an agent with no optimiser (closed-form updates: DR-RPO, LSVI-UCB; refused at the start); weights changed
outside ``optimizer.step()`` or from one rank's own data (SubPO's natural-gradient step; robust-MBRL's
dynamics ensemble, fitted with an optimiser made inside a method; OSPO's KL target, a copy of the policy
taken when the rank's own evaluation improves; caught by the fingerprint check); a number of optimiser
steps that depends on one rank's own data (OSPO's KL gate; caught by the step check). Gradients are
averaged at ``step()``, after any clipping the agent does on its own rank's gradients (PPO's
``max_grad_norm``): the update is the mean of the clipped gradients, which for equal batches equals the
gradient of the mean loss whenever no clip bites.

Launch (see docs/scale.md)::

    torchrun --nproc-per-node 2 -m rlsuite train ppo --env CartPole-v1 --total-steps 100000

:func:`init` reads what torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``); gloo on the CPU, NCCL for CUDA devices (rank ``r`` on ``cuda:LOCAL_RANK``). Without
``MASTER_ADDR`` the rendezvous is on 127.0.0.1; with a loopback ``MASTER_ADDR``, gloo's and NCCL's sockets
are put on the loopback interface (``GLOO_SOCKET_IFNAME`` / ``NCCL_SOCKET_IFNAME``, unless set), and a
rendezvous store this module hosts itself listens on ``MASTER_ADDR`` only.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import logging
import os
import socket
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch
import torch.distributed as dist
from torch import nn

from rlsuite.core.checkpoint import flatten_state, storable_tensors, unflatten_state

log = logging.getLogger("rlsuite")

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
STEP_MODULUS = 1 << 16  # step counters travel in the gradients' float buffer: exact in float32 for up to 256 ranks


# ----------------------------------------------------------------------------- launch and process group


@dataclasses.dataclass(frozen=True)
class LaunchEnv:
    """What the launcher (torchrun) says about this process."""

    rank: int
    """Global rank, ``0 <= rank < world_size``."""
    world_size: int
    """Number of processes of the run."""
    local_rank: int
    """Rank on this machine (the GPU index for NCCL)."""
    local_world_size: int
    """Processes on this machine."""
    master_addr: str
    """Host of the rendezvous store (127.0.0.1 when unset)."""
    master_port: int
    """Port of the rendezvous store."""
    agent_store: bool
    """torchrun's agent hosts the store (``TORCHELASTIC_USE_AGENT_STORE``); otherwise rank 0 hosts it."""


def _int_var(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = environ.get(name)
    if text is None or text == "":
        if default is not None:
            return default
        raise ValueError(f"WORLD_SIZE is {environ.get('WORLD_SIZE')} but {name} is not set. Launch with torchrun, which sets "
                         f"{', '.join(LAUNCH_VARS)}, or set them all yourself.")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r} (torchrun sets {', '.join(LAUNCH_VARS)}).") from None


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """The launch variables of this process, or None when it is not one of several (no ``WORLD_SIZE``, or 1).

    Raises:
        ValueError: a variable is missing, not an integer, or out of range (the message names it).
    """
    environ = os.environ if environ is None else environ
    if not environ.get("WORLD_SIZE"):
        return None
    world = _int_var(environ, "WORLD_SIZE")
    if world < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {world}.")
    if world == 1:
        return None
    rank = _int_var(environ, "RANK")
    if not 0 <= rank < world:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE) = [0, {world}), got {rank}.")
    local_rank = _int_var(environ, "LOCAL_RANK", rank)
    local_world = _int_var(environ, "LOCAL_WORLD_SIZE", world)
    port = _int_var(environ, "MASTER_PORT")
    if not 0 < port < 65536:
        raise ValueError(f"MASTER_PORT must be a port number in 1..65535, got {port}.")
    return LaunchEnv(rank, world, local_rank, local_world, environ.get("MASTER_ADDR") or "127.0.0.1", port,
                     environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) resolves to loopback addresses only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def loopback_interface() -> str | None:
    """The name of the loopback network interface (``lo`` on Linux, ``lo0`` on macOS), None if not found."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((n for n in names if n in ("lo", "lo0")), next((n for n in names if n.startswith("lo")), None))


def device_and_backend(device: str | torch.device, local_rank: int, local_world_size: int) -> tuple[torch.device, str]:
    """``(device, backend)`` of a rank: gloo on the CPU, NCCL on ``cuda:LOCAL_RANK`` (``auto``: CUDA when there is one).

    Raises:
        ValueError: CUDA asked for but absent, fewer GPUs than ranks on this machine, or ``cuda:N`` with several
            ranks per machine (NCCL needs one GPU per rank).
    """
    from rlsuite.core.seeding import resolve_device

    spec = str(device).strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = resolve_device(spec)  # raises for an unknown name or CUDA without CUDA
    if resolved.type == "cpu":
        return resolved, "gloo"
    if resolved.type != "cuda":
        raise ValueError(f"data-parallel training runs on cpu (gloo) or cuda (NCCL); got --device {device}.")
    if resolved.index is not None:
        if local_world_size > 1:
            raise ValueError(f"--device {spec} would put the {local_world_size} ranks of this machine on one GPU; NCCL needs one "
                             "GPU per rank. Use --device cuda (rank r takes cuda:LOCAL_RANK) or --device cpu (gloo).")
        return resolved, "nccl"
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(f"LOCAL_RANK {local_rank} needs cuda:{local_rank} but this machine has {count} GPU(s); start at most "
                         f"{count} processes per machine (torchrun --nproc-per-node {count}) or use --device cpu (gloo).")
    return torch.device("cuda", local_rank), "nccl"


@dataclasses.dataclass
class Context:
    """The process group of a data-parallel run, as this rank sees it.

    Attributes:
        rank, world_size, local_rank: this rank, the number of ranks, the rank on this machine.
        backend: ``gloo`` or ``nccl``.
        device: where this rank's agent lives (``cuda:LOCAL_RANK`` for NCCL).
        owns_group: :func:`init` made the process group (and :meth:`close` destroys it); False when the
            launcher had made it already (Ray Train).
        cpu_group: the group CPU tensors travel in (a gloo group beside NCCL; None: the default group).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    owns_group: bool = False
    cpu_group: Any = None

    @property
    def is_root(self) -> bool:
        """Rank 0: the rank that writes the run directory."""
        return self.rank == 0

    def group_for(self, device: torch.device) -> Any:
        """The process group for tensors on ``device`` (CPU tensors go through gloo even beside NCCL)."""
        return self.cpu_group if device.type == "cpu" else None

    def describe(self) -> str:
        return f"rank {self.rank}/{self.world_size} ({self.backend} on {self.device})"

    def close(self) -> None:
        """Destroy the process group if :func:`init` made it."""
        deactivate()
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # ------------------------------------------------------------------ small transfers (CPU, no pickle)
    def broadcast_float(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        t = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(t, 0, group=self.cpu_group)
        return float(t.item())

    def broadcast_text(self, text: str) -> str:
        """Rank 0's ``text`` on every rank."""
        data = torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8) if self.is_root and text else torch.zeros(0, dtype=torch.uint8)
        size = torch.tensor([data.numel()], dtype=torch.int64)
        dist.broadcast(size, 0, group=self.cpu_group)
        buf = data if self.is_root else torch.empty(int(size.item()), dtype=torch.uint8)
        if buf.numel():
            dist.broadcast(buf, 0, group=self.cpu_group)
        return bytes(buf.numpy()).decode("utf-8")

    def gather_states(self, state: Any) -> list[Any] | None:
        """Every rank's nested ``state`` (a checkpoint's kind: tensors, dicts, lists, numbers, strings) on rank 0, in
        rank order; None on the other ranks. Sent as safetensors bytes and JSON, never pickled."""
        group = self.cpu_group
        if not self.is_root:
            payload = encode_state(state)
            dist.send(torch.tensor([payload.numel()], dtype=torch.int64), 0, group=group)
            dist.send(payload, 0, group=group)
            return None
        out = [state]
        for r in range(1, self.world_size):
            size = torch.zeros(1, dtype=torch.int64)
            dist.recv(size, r, group=group)
            buf = torch.empty(int(size.item()), dtype=torch.uint8)
            dist.recv(buf, r, group=group)
            out.append(decode_state(buf))
        return out


def encode_state(state: Any) -> torch.Tensor:
    """A nested state as one ``uint8`` tensor: 8-byte length, the JSON skeleton, the safetensors bytes."""
    from safetensors.torch import save

    tensors, skeleton = flatten_state(state)
    header = json.dumps(skeleton).encode("utf-8")
    data = struct.pack("<Q", len(header)) + header + save(storable_tensors(tensors))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_state(payload: torch.Tensor) -> Any:
    """The inverse of :func:`encode_state`."""
    from safetensors.torch import load

    data = bytes(payload.numpy())
    (n,) = struct.unpack("<Q", data[:8])
    return unflatten_state(json.loads(data[8 : 8 + n].decode("utf-8")), load(data[8 + n :]))


def _host_store(launch: LaunchEnv, timeout: datetime.timedelta) -> dist.TCPStore:
    """The rendezvous store: torchrun's (a client of it), or hosted by rank 0 on ``MASTER_ADDR`` only."""
    host, port, world = launch.master_addr, launch.master_port, launch.world_size
    if launch.agent_store or launch.rank != 0:
        return dist.TCPStore(host, port, world, False, timeout)
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ValueError(f"rank 0 cannot host the rendezvous store on MASTER_ADDR:MASTER_PORT = {host}:{port} ({e.strerror}); "
                         "pick a free port (MASTER_PORT, torchrun --master-port).") from None
    return dist.TCPStore(host, port, world, True, timeout, master_listen_fd=sock.detach())  # the store owns the socket now


def init(device: str | torch.device = "auto", environ: Mapping[str, str] | None = None,
         timeout: datetime.timedelta = datetime.timedelta(minutes=30)) -> Context | None:
    """Join the data-parallel run this process was launched into; None for a single process.

    A process group made before (Ray Train's ``TorchTrainer`` makes one) is used as it is. Otherwise the launch
    variables (:func:`launch_env`) say whether there is one to make: gloo for ``device`` cpu, NCCL for cuda.

    Args:
        device: ``--device`` (auto | cpu | cuda | cuda:N).
        environ: the launch variables (default ``os.environ``).
        timeout: how long a collective waits for the other ranks before failing.

    Raises:
        ValueError: bad launch variables or device (see :func:`launch_env`, :func:`device_and_backend`).
    """
    environ = os.environ if environ is None else environ
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() == 1:
            return None
        backend = str(dist.get_backend())
        local_rank = _int_var(environ, "LOCAL_RANK", dist.get_rank())
        if backend == "nccl":
            dev = torch.device("cuda", torch.cuda.current_device())
        else:
            dev = device_and_backend(device, local_rank, 1)[0]
            if dev.type != "cpu":
                raise ValueError(f"the process group's backend is {backend}; it averages CPU tensors: use --device cpu.")
        cpu_group = dist.new_group(backend="gloo") if backend != "gloo" else None
        return Context(dist.get_rank(), dist.get_world_size(), local_rank, backend, dev, False, cpu_group)
    launch = launch_env(environ)
    if launch is None:
        return None
    if not dist.is_available():
        raise ValueError(f"WORLD_SIZE is {launch.world_size} but this torch ({torch.__version__}) has no torch.distributed.")
    dev, backend = device_and_backend(device, launch.local_rank, launch.local_world_size)
    if is_loopback(launch.master_addr):
        iface = loopback_interface()
        if iface is not None:
            for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
                os.environ.setdefault(var, iface)
    else:
        log.info("MASTER_ADDR %s is not a loopback address: the ranks talk over the network (gloo/NCCL sockets and the "
                 "rendezvous store are unauthenticated); run on a trusted network (docs/scale.md).", launch.master_addr)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    store = _host_store(launch, timeout)
    dist.init_process_group(backend, store=store, rank=launch.rank, world_size=launch.world_size, timeout=timeout)
    cpu_group = dist.new_group(backend="gloo") if backend != "gloo" else None
    return Context(launch.rank, launch.world_size, launch.local_rank, backend, dev, True, cpu_group)


# ----------------------------------------------------------------------------- running statistics

_ACTIVE: Context | None = None


def stats_context() -> Context | None:
    """The data-parallel context whose running statistics are merged over the ranks, None when there is none
    (a single process: statistics are updated exactly as before)."""
    return _ACTIVE


def activate(ctx: Context) -> None:
    """Merge running statistics over ``ctx``'s ranks from now on (:func:`make_data_parallel` calls it)."""
    global _ACTIVE
    _ACTIVE = ctx


def deactivate() -> None:
    """Stop merging running statistics over ranks."""
    global _ACTIVE
    _ACTIVE = None


def merge_moments(x: torch.Tensor, ctx: Context) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Count, mean and population variance of the union of every rank's batch ``x`` ``(n_r, *shape)``.

    One all-gather of each rank's ``(n_r, mean_r, var_r)`` (float64); every rank then merges them in rank order
    (``mean = sum n_r mean_r / n``, ``var = sum n_r (var_r + (mean_r - mean)^2) / n``), so every rank gets the same
    bits. A rank with an empty batch takes part with ``n_r = 0``.

    Returns:
        ``(n, mean, var)`` with ``n = sum n_r`` and ``mean``, ``var`` of shape ``shape`` in ``x``'s dtype (zeros when ``n = 0``).
    """
    n, d = x.shape[0], x.shape[1:].numel()
    flat = x.reshape(n, d).to(torch.float64)
    packed = torch.zeros(1 + 2 * d, dtype=torch.float64, device=x.device)
    packed[0] = n
    if n:
        packed[1 : 1 + d] = flat.mean(0)
        packed[1 + d :] = flat.var(0, unbiased=False)
    parts = [torch.empty_like(packed) for _ in range(ctx.world_size)]
    dist.all_gather(parts, packed, group=ctx.group_for(x.device))
    table = torch.stack(parts)  # (W, 1 + 2 d)
    counts, means, variances = table[:, :1], table[:, 1 : 1 + d], table[:, 1 + d :]
    total = counts.sum()
    if total.item() == 0:
        zeros = torch.zeros(x.shape[1:], dtype=x.dtype, device=x.device)
        return 0, zeros, zeros.clone()
    mean = (counts * means).sum(0) / total
    var = (counts * (variances + (means - mean).pow(2))).sum(0) / total
    return int(total.item()), mean.to(x.dtype).reshape(x.shape[1:]), var.to(x.dtype).reshape(x.shape[1:])


def average(t: torch.Tensor) -> torch.Tensor:
    """``t`` averaged over the ranks of the active data-parallel run (``t`` itself in a single process): for a
    decision that every rank must take alike, such as PPO's early stop on the KL."""
    ctx = _ACTIVE
    if ctx is None:
        return t
    out = t.detach().clone()
    dist.all_reduce(out, group=ctx.group_for(out.device))
    return out / ctx.world_size


# ----------------------------------------------------------------------------- the agent's parts


def find_parts(agent: Any) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, torch.optim.Optimizer]], dict[int, str]]:
    """The modules and optimisers on ``agent``, each with its attribute path (``agent.policy``), in attribute order.

    Walks the agent's attributes, and below them dicts, lists, tuples and objects of rlsuite classes; a module
    or optimiser is not entered (a module's state dict covers its submodules), nor an environment.

    Returns:
        ``(modules, optimizers, tensor_names)``: ``tensor_names`` maps ``id`` of plain tensors met on the way
        (``log_alpha``) to their paths, to name optimiser parameters that no module holds.
    """
    modules: list[tuple[str, nn.Module]] = []
    optimizers: list[tuple[str, torch.optim.Optimizer]] = []
    tensor_names: dict[int, str] = {}
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, nn.Module):
            modules.append((path, obj))
        elif isinstance(obj, torch.optim.Optimizer):
            optimizers.append((path, obj))
        elif isinstance(obj, torch.Tensor):
            tensor_names.setdefault(id(obj), path)
        elif isinstance(obj, gym.Env | gym.vector.VectorEnv):
            return
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}[{k!r}]", depth + 1)
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]", depth + 1)
        elif type(obj).__module__.startswith("rlsuite.") and hasattr(obj, "__dict__"):
            for k, v in vars(obj).items():
                walk(v, f"{path}.{k}", depth + 1)

    for k, v in vars(agent).items():
        walk(v, f"agent.{k}", 1)
    return modules, optimizers, tensor_names


def _fingerprint(t: torch.Tensor) -> torch.Tensor:
    """An int64 checksum of ``t``'s bytes (position-weighted, so swapped values change it)."""
    b = t.detach().contiguous().reshape(-1).view(torch.uint8).to(torch.int64)
    w = torch.arange(b.numel(), device=b.device, dtype=torch.int64) % 65521 + 1
    return (b * w).sum()


def _count(n: int) -> str:
    return f"{n:,}"


class DataParallel:
    """An agent made data-parallel by :func:`make_data_parallel`: what is synchronised, the checks, and undo.

    Attributes:
        modules: ``(path, module)`` broadcast from rank 0 and fingerprinted.
        optimizers: ``(path, optimizer)`` whose gradients are averaged before each step.
        norms: paths of the running statistics merged over the ranks.
    """

    def __init__(self, agent: Any, ctx: Context) -> None:
        self.agent, self.ctx = agent, ctx
        self.modules, self.optimizers, self._names = find_parts(agent)
        self.norms = [f"{path}.{name}" if name else path for path, m in self.modules for name, sub in m.named_modules()
                      if hasattr(sub, "merges_over_ranks")]
        self._handles: list[Any] = []
        self._steps: dict[int, int] = {}

    @property
    def steps_taken(self) -> int:
        """Optimiser steps taken since :func:`make_data_parallel`, summed over the optimisers."""
        return sum(self._steps.values())

    # ------------------------------------------------------------------ what is synchronised
    def owners(self) -> list[tuple[str, list[torch.Tensor]]]:
        """``(path, tensors)`` of every module (parameters and buffers), of every optimiser's parameters that no
        module holds, and of every optimiser's state tensors; each tensor once, in a fixed order."""
        seen: set[int] = set()
        out: list[tuple[str, list[torch.Tensor]]] = []

        def take(ts: list[torch.Tensor]) -> list[torch.Tensor]:
            kept = [t for t in ts if id(t) not in seen]
            seen.update(id(t) for t in kept)
            return kept

        for path, m in self.modules:
            out.append((path, take(list(m.state_dict(keep_vars=True).values()))))
        for path, opt in self.optimizers:
            params = [p for g in opt.param_groups for p in g["params"]]
            loose = take(params)
            if loose:
                out.append((", ".join(self._names.get(id(p), f"{path} parameter {i}") for i, p in enumerate(loose)), loose))
            state = [v for p in params for _, v in sorted(opt.state.get(p, {}).items()) if isinstance(v, torch.Tensor)]
            out.append((f"{path} state", take(state)))
        return [(p, ts) for p, ts in out if ts]

    def describe(self) -> str:
        """One line: what this rank broadcasts, averages and merges."""
        ctx = self.ctx
        mods = ", ".join(f"{p.removeprefix('agent.')} ({_count(sum(t.numel() for t in m.state_dict().values()))} values)" for p, m in self.modules)
        opts = ", ".join(f"{p.removeprefix('agent.')} ({type(o).__name__}, {_count(sum(p_.numel() for g in o.param_groups for p_ in g['params']))} "
                         "values)" for p, o in self.optimizers)
        norms = ", ".join(n.removeprefix("agent.") for n in self.norms) or "none on this agent"
        return (f"{ctx.describe()}: weights broadcast from rank 0: {mods or 'none'}; gradients averaged over the {ctx.world_size} "
                f"ranks before every step of {opts}, one all-reduce per step; running statistics merged over the ranks: {norms}")

    # ------------------------------------------------------------------ set-up
    def _check_same_agent(self) -> None:
        sig = "|".join(f"{path}:{type(m).__name__}:" + ",".join(f"{tuple(t.shape)}{t.dtype}" for t in m.state_dict().values())
                       for path, m in self.modules)
        sig += "|" + "|".join(f"{path}:{type(o).__name__}:" + ",".join(f"{tuple(p.shape)}" for g in o.param_groups for p in g["params"])
                              for path, o in self.optimizers)
        mine = torch.tensor([zlib.crc32(sig.encode()), len(self.modules), len(self.optimizers)], dtype=torch.int64)
        parts = [torch.empty_like(mine) for _ in range(self.ctx.world_size)]
        dist.all_gather(parts, mine, group=self.ctx.cpu_group)
        differ = [r for r, p in enumerate(parts) if not torch.equal(p, parts[0])]
        if differ:
            raise ValueError(f"ranks {differ} built another agent than rank 0 (other modules, shapes or optimisers; this rank has "
                             f"{len(self.modules)} modules and {len(self.optimizers)} optimisers). Every rank must run the same "
                             "command with the same options.")

    @torch.no_grad()
    def broadcast(self) -> None:
        """Copy rank 0's weights, optimiser parameters and optimiser states to every rank (one broadcast per
        device and dtype)."""
        buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for _, ts in self.owners():
            for t in ts:
                buckets.setdefault((t.device, t.dtype), []).append(t)
        for (device, _), ts in buckets.items():
            flat = torch.cat([t.detach().reshape(-1).view(torch.uint8) for t in ts])
            dist.broadcast(flat, 0, group=self.ctx.group_for(device))
            offset = 0
            for t in ts:
                n = t.numel() * t.element_size()
                t.copy_(flat[offset : offset + n].view(t.dtype).view(t.shape))
                offset += n

    def _hook_optimizers(self) -> None:
        for path, opt in self.optimizers:
            self._steps[id(opt)] = 0

            def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any, path: str = path) -> None:
                self.average_gradients(optimizer, path)

            self._handles.append(opt.register_step_pre_hook(hook))

    @torch.no_grad()
    def average_gradients(self, opt: torch.optim.Optimizer, path: str = "optimizer") -> None:
        """Replace the gradients of ``opt``'s parameters by their mean over the ranks (one all-reduce per device).

        A parameter without a gradient on every rank keeps none; one with a gradient on some ranks only gets the
        mean with zeros for the others. Also checks that every rank is at the same step of ``opt``.

        Raises:
            RuntimeError: the ranks are at different steps of ``opt`` (their numbers of updates differ).
            ValueError: a sparse gradient.
        """
        world = self.ctx.world_size
        step = self._steps.get(id(opt), 0) % STEP_MODULUS
        self._steps[id(opt)] = self._steps.get(id(opt), 0) + 1
        by_device: dict[torch.device, list[torch.Tensor]] = {}
        for g in opt.param_groups:
            for p in g["params"]:
                by_device.setdefault(p.device, []).append(p)
        for device, params in by_device.items():
            dtype = torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32
            parts = []
            for p in params:
                if p.grad is not None and p.grad.is_sparse:
                    raise ValueError(f"{path} has a sparse gradient; data-parallel averaging supports dense gradients only.")
                parts.append(p.grad.reshape(-1).to(dtype) if p.grad is not None else torch.zeros(p.numel(), dtype=dtype, device=device))
            parts.append(torch.tensor([float(p.grad is not None) for p in params] + [float(step)], dtype=dtype, device=device))
            flat = torch.cat(parts)
            dist.all_reduce(flat, group=self.ctx.group_for(device))
            steps = flat[-1].item()
            if steps != world * step:
                raise RuntimeError(f"{path}: this rank ({self.ctx.rank}) is at step {step} (mod {STEP_MODULUS}) but the {world} ranks' "
                                   f"steps sum to {steps:.0f}: the ranks call step() a different number of times (a decision "
                                   "taken from one rank's own data, such as an early stop on its own KL), so their gradients "
                                   "no longer pair up. Train this agent in one process.")
            total = sum(p.numel() for p in params)
            grads = flat[:total].div_(world)
            present = flat[total:-1].tolist()
            offset = 0
            for p, have in zip(params, present, strict=True):
                n = p.numel()
                if have:
                    g = grads[offset : offset + n].view_as(p)
                    if p.grad is None:
                        p.grad = g.to(p.dtype).clone()
                    else:
                        p.grad.copy_(g)
                offset += n

    # ------------------------------------------------------------------ checks and undo
    @torch.no_grad()
    def check_in_sync(self) -> None:
        """Compare every module's and optimiser's fingerprint across the ranks.

        Raises:
            RuntimeError: naming what differs between which ranks (the agent changes weights outside the
                optimisers' steps, or from one rank's own data).
        """
        owners = self.owners()
        mine = torch.stack([sum((_fingerprint(t).cpu() for t in ts), torch.zeros((), dtype=torch.int64)) for _, ts in owners])
        parts = [torch.empty_like(mine) for _ in range(self.ctx.world_size)]
        dist.all_gather(parts, mine, group=self.ctx.cpu_group)
        differ = {path for i, (path, _) in enumerate(owners) for p in parts[1:] if p[i] != parts[0][i]}
        if differ:
            ranks = [r for r, p in enumerate(parts) if not torch.equal(p, parts[0])]
            names = ", ".join(p.removeprefix("agent.") for p, _ in owners if p in differ)
            raise RuntimeError(f"the ranks' agents have drifted apart ({names}: rank 0's differ from those of ranks {ranks}). This "
                               f"{type(self.agent).__name__} changes them outside the steps of its optimisers "
                               f"({', '.join(p.removeprefix('agent.') for p, _ in self.optimizers)}) or from one rank's own data, "
                               "which data-parallel averaging does not cover; train it in one process.")

    def remove(self) -> None:
        """Undo: remove the optimiser hooks and stop merging running statistics."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if _ACTIVE is self.ctx:
            deactivate()


def make_data_parallel(agent: Any, ctx: Context) -> DataParallel:
    """Make ``agent`` data-parallel over ``ctx``'s ranks (module docstring): broadcast rank 0's weights, average
    gradients before every optimiser step, merge running statistics. Every rank calls it, after the agent is
    built (and restored, on resume) and before it trains.

    Raises:
        ValueError: the agent has no optimiser (nothing to average), or the ranks built different agents.
    """
    dp = DataParallel(agent, ctx)
    if not dp.optimizers:
        raise ValueError(f"{type(agent).__name__} has no torch.optim.Optimizer among its attributes: data-parallel training averages "
                         "the gradients of an agent's optimisers, and this one updates its weights otherwise (e.g. in closed "
                         "form). Train it in one process (without torchrun, or --nproc-per-node 1).")
    dp._check_same_agent()
    dp.broadcast()
    dp._hook_optimizers()
    activate(ctx)
    return dp
