"""Starting or joining Ray for the parts of the suite that run on it (``rlsuite sweep``, rollout workers).

Ray is an optional dependency (``pip install 'rlsuite[distributed]'``); nothing here imports it at module
level. :func:`init_ray` is the one place that connects: to the instance this process already runs, to a
cluster (``auto`` or ``ray://HOST:PORT``), or to a new local instance started in-process.

Network: the local instance is not loopback-only. Ray 2.60 turns ``_node_ip_address="127.0.0.1"`` into the
machine's IP and its GCS, raylet, object manager and worker gRPC servers listen on all interfaces; they are
guarded by Ray's token authentication, on by default in 2.60 (do not set ``RAY_AUTH_MODE=disabled``). On a
shared or exposed machine, also firewall it (docs/scale.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("rlsuite")

INSTALL = "pip install 'rlsuite[distributed]'"
"""The install line named by every message about a missing Ray."""


class RayNotInstalled(ImportError):
    """Ray is needed and not installed; the message names the install line (the CLI exits 2 with it)."""


class ClusterUnreachable(ValueError):
    """The Ray address given names no running Ray cluster (nothing was started)."""


def require_ray(what: str) -> Any:
    """The ``ray`` module, or :class:`RayNotInstalled` (an ``ImportError``) saying that ``what`` needs it and how to
    install it.

    Args:
        what: the start of the message, e.g. ``"rlsuite sweep runs its trials"``.
    """
    try:
        import ray
    except ImportError:
        raise RayNotInstalled(f"{what} on Ray, which is not installed: {INSTALL}") from None
    return ray


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def init_ray(ray: Any, address: str | None, num_cpus: int | None, flag: str = "--address") -> tuple[bool, str]:
    """Connect to Ray: the running instance of this process, the cluster at ``address``, or a new local one.

    Args:
        ray: the ``ray`` module (:func:`require_ray`).
        address: ``None`` starts a local instance in this process (``ray.init(address="local", ...)``: its own,
            even where a ``ray start`` cluster runs on the machine); ``auto`` or ``ray://host:port`` connects.
        num_cpus: the local instance's CPUs (ignored, with a warning, when Ray already runs in this process).
        flag: the command-line flag that gave ``address`` (named in the messages).

    Returns:
        ``(whether this call started or connected it, so the caller shuts it down; where, in words)``.

    Raises:
        ClusterUnreachable: no cluster answered at ``address``.
    """
    if ray.is_initialized():
        ignored = [f"{k}={v}" for k, v in (("address", address), ("num_cpus", num_cpus)) if v]
        if ignored:
            log.warning("Ray is already running in this process: %s ignored (that instance is used)", ", ".join(ignored))
        return False, "this process's Ray"
    kwargs = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as e:
            hint = (" A cluster with Ray's token authentication also needs RAY_AUTH_MODE=token here and its token "
                    "(RAY_AUTH_TOKEN, or the file ~/.ray/auth_token).") if address.startswith("ray://") else ""
            raise ClusterUnreachable(f"{flag} {address}: no Ray cluster answered ({e}). Start one with `ray start --head` "
                                     f"(then {flag} auto on its machines), or give ray://HEAD:10001.{hint}") from None
        return True, address
    # never a `ray start` cluster found here. Not loopback-only: Ray 2.60 turns `_node_ip_address="127.0.0.1"` into
    # the node's IP and binds its gRPC servers on all interfaces; its token authentication (on by default) guards
    # them (docs/scale.md)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    return True, f"local Ray ({num_cpus} CPUs)"
