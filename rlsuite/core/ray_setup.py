"""Starting or joining Ray for the parts of the suite that run on it (``rlsuite sweep``, rollout workers).

Ray is an optional dependency (``pip install 'rlsuite[distributed]'``); nothing here imports it at module
level. :func:`init_ray` is the one place that connects: to the instance this process already runs, to a
cluster (``auto`` or ``ray://HOST:PORT``), or to a new local instance started in-process.

Network: the local instance listens on the loopback interface only. Ray 2.60 binds its gRPC servers (GCS,
raylet, object manager, workers) to the node's IP, and turns ``_node_ip_address="127.0.0.1"`` into the machine's
IP; :func:`init_ray` makes the node's IP 127.0.0.1 for a local start (:func:`_start_local`), so nothing of it is
reachable from another machine (tested). A cluster (``ray start``) listens on its nodes' IPs: it belongs on a
trusted network, with Ray's token authentication on (the default in 2.60; do not set ``RAY_AUTH_MODE=disabled``).
"""

from __future__ import annotations

import logging
import os
import sys
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
    _start_local(ray, num_cpus, kwargs)
    node_ip = ray.util.get_node_ip_address()
    if not is_loopback(node_ip):  # a Ray whose internals differ from 2.60's: never leave it listening on the network
        ray.shutdown()
        raise RuntimeError(f"the local Ray started on {node_ip}, not on the loopback interface (Ray {ray.__version__}; the suite "
                           "starts it loopback-only with Ray 2.60's single-machine mode). Install the Ray version the suite is "
                           "tested with (pip install 'rlsuite[distributed]'), or start a cluster yourself (ray start) and pass "
                           "its address.")
    return True, f"local Ray ({num_cpus} CPUs, loopback only)"


LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch for its single-machine mode: set to ``0``, Ray takes 127.0.0.1 as the node's IP."""


def _start_local(ray: Any, num_cpus: int | None, kwargs: dict[str, Any]) -> None:
    """Start a local Ray whose servers listen on 127.0.0.1 only.

    Ray resolves the node's IP through ``ray._private.services.get_node_ip_address``, which returns the loopback
    address when ``ray_constants.ENABLE_RAY_CLUSTER`` is false (Ray's single-machine mode, read from
    :data:`LOCAL_ONLY_ENV` when a process imports Ray). The driver's value is set for the duration of
    ``ray.init`` and the environment variable is set while Ray's processes start (they inherit it, and so do the
    workers the raylet starts later); both are restored afterwards, so a later connection of this process to a
    cluster is unaffected. ``address="local"`` starts this process's own instance even where a ``ray start``
    cluster runs on the machine.
    """
    constants = sys.modules.get("ray._private.ray_constants")
    saved_env, saved_flag = os.environ.get(LOCAL_ONLY_ENV), getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[LOCAL_ONLY_ENV] = "0"
    if constants is not None and saved_flag is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    finally:
        if saved_env is None:
            os.environ.pop(LOCAL_ONLY_ENV, None)
        else:
            os.environ[LOCAL_ONLY_ENV] = saved_env
        if constants is not None and saved_flag is not None:
            constants.ENABLE_RAY_CLUSTER = saved_flag


def listening_addresses(root_pid: int | None = None) -> list[tuple[str, int, int]]:
    """The TCP sockets in the LISTEN state held by ``root_pid`` (default: this process) and its descendants, as
    ``(address, port, pid)``: how the tests check that a local Ray listens on loopback only. Needs ``psutil``
    (installed with ``ray[default]``)."""
    import psutil

    root = psutil.Process(root_pid or os.getpid())
    pids = {root.pid, *(p.pid for p in root.children(recursive=True))}
    out = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            out.append((conn.laddr.ip, conn.laddr.port, conn.pid))
    return sorted(out)


def is_loopback(address: str) -> bool:
    """Whether an IP address (v4, v6 or v4-mapped v6) is a loopback address."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
