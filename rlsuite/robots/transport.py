"""A policy server and a robot-side client over ZeroMQ, with authenticated msgpack messages.

Wire format of one message: ``HMAC-SHA256(key, body) (32 bytes) || body``, where ``body`` is msgpack of
``{"v": 1, "seq": int, "t_ns": int, "kind": str, "payload": {...}}`` (plain maps, lists, numbers and
strings; msgpack extension types are refused). The receiver checks the size limit, then the MAC
(constant-time), then the structure, then that ``seq`` is larger than every sequence number it accepted
from that sender before: forged, replayed, oversize and malformed messages are rejected and counted,
never unpacked into objects. Nothing is ever pickled.

:class:`PolicyServer` binds to loopback by default; a non-loopback address needs ``allow_remote=True``.
The key (at least 16 bytes) comes from a file or an environment variable, never the command line.
:class:`PolicyClient` is what the robot side calls; when no valid reply arrives within ``timeout_s`` it
raises :class:`PolicyUnavailable`, which the control loop turns into a latched e-stop (damping).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("rlsuite.robots")

VERSION = 1
MAC_BYTES = 32
MAX_MESSAGE_BYTES = 1 << 20
KEY_ENV = "RLSUITE_POLICY_KEY"


class TransportError(RuntimeError):
    """A message that was rejected (forged, replayed, oversize or malformed)."""


class PolicyUnavailable(RuntimeError):
    """No valid reply from the policy server in time."""


def load_key(key_file: str | os.PathLike | None = None, env: str = KEY_ENV) -> bytes:
    """The shared key from ``key_file`` or the environment variable ``env``; at least 16 bytes."""
    if key_file is not None:
        key = Path(key_file).read_bytes().strip()
    elif os.environ.get(env):
        key = os.environ[env].encode()
    else:
        raise ValueError(f"no key: pass a key file or set the environment variable {env} (never on the command line).")
    if len(key) < 16:
        raise ValueError(f"the key must be at least 16 bytes, got {len(key)}; generate one with: python -c \"import secrets; print(secrets.token_hex(32))\"")
    return key


def _refuse_ext(code: int, data: bytes) -> Any:
    raise TransportError(f"msgpack extension type {code} is not allowed.")


class Codec:
    """Seals and opens messages for one direction of one connection (own ``seq`` counter, replay window)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the key must be at least 16 bytes.")
        self.key = key
        self.seq = 0
        self.last_seen = -1
        self.rejected = 0

    def seal(self, kind: str, payload: dict[str, Any]) -> bytes:
        import msgpack

        self.seq += 1
        body = msgpack.packb({"v": VERSION, "seq": self.seq, "t_ns": time.monotonic_ns(), "kind": kind, "payload": payload},
                             use_bin_type=True)
        return hmac.new(self.key, body, sha256).digest() + body

    def open(self, frame: bytes) -> tuple[str, dict[str, Any]]:
        """``(kind, payload)`` of an authentic, fresh, well-formed message; else :class:`TransportError`."""
        import msgpack

        try:
            if not isinstance(frame, (bytes, bytearray)) or len(frame) > MAX_MESSAGE_BYTES or len(frame) <= MAC_BYTES:
                raise TransportError(f"message of {len(frame) if isinstance(frame, (bytes, bytearray)) else '?'} bytes is outside the allowed size.")
            mac, body = bytes(frame[:MAC_BYTES]), bytes(frame[MAC_BYTES:])
            if not hmac.compare_digest(mac, hmac.new(self.key, body, sha256).digest()):
                raise TransportError("bad message authentication code (wrong key or tampered message).")
            try:
                msg = msgpack.unpackb(body, raw=False, ext_hook=_refuse_ext, strict_map_key=True)
            except TransportError:
                raise
            except Exception as e:  # noqa: BLE001 - any decoding failure is a rejected message
                raise TransportError(f"undecodable message: {type(e).__name__}.") from None
            if not (isinstance(msg, dict) and msg.get("v") == VERSION and isinstance(msg.get("seq"), int)
                    and isinstance(msg.get("kind"), str) and isinstance(msg.get("payload"), dict)):
                raise TransportError("message does not have the expected fields (v, seq, t_ns, kind, payload).")
            if msg["seq"] <= self.last_seen:
                raise TransportError(f"replayed or reordered message (seq {msg['seq']} <= {self.last_seen}).")
            self.last_seen = msg["seq"]
            return msg["kind"], msg["payload"]
        except TransportError:
            self.rejected += 1
            raise


def _check_bind(bind: str, allow_remote: bool) -> None:
    if not bind.startswith("tcp://"):
        raise ValueError(f"bind must look like tcp://127.0.0.1:5555, got {bind!r}.")
    host = bind[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    loopback = host == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if not loopback and not allow_remote:
        raise ValueError(f"refusing to listen on {host!r}: the policy server binds to loopback unless told otherwise "
                         "(--bind with allow_remote, and make sure the network is trusted).")


class PolicyServer:
    """Answers ``act`` requests with ``policy(obs) -> actions`` (``obs`` ``(obs_dim,)`` or ``(B, obs_dim)``)."""

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray], key: bytes, bind: str = "tcp://127.0.0.1:5555",
                 allow_remote: bool = False) -> None:
        import zmq

        _check_bind(bind, allow_remote)
        self.policy = policy
        self.rx, self.tx = Codec(key), Codec(key)
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.bind(bind)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.served = 0

    def serve(self, max_requests: int | None = None, poll_ms: int = 100, stop: Callable[[], bool] | None = None) -> None:
        """Serve until ``max_requests`` were answered or ``stop()`` returns true."""
        import zmq

        while (max_requests is None or self.served < max_requests) and not (stop and stop()):
            if not self.sock.poll(poll_ms, zmq.POLLIN):
                continue
            frame = self.sock.recv()
            try:
                kind, payload = self.rx.open(frame)
                if kind != "act" or "obs" not in payload:
                    raise TransportError(f"unknown request {kind!r}.")
                obs = np.asarray(payload["obs"], dtype=np.float32)
                actions = np.asarray(self.policy(obs), dtype=np.float32)
                reply = self.tx.seal("actions", {"actions": actions.tolist(), "req": payload.get("req")})
                self.served += 1
            except TransportError as e:
                log.warning("policy server rejected a message: %s", e)
                reply = self.tx.seal("error", {"reason": str(e)})
            self.sock.send(reply)

    def close(self) -> None:
        self.sock.close(0)


class PolicyClient:
    """Robot-side client: ``act(obs)`` returns the server's actions or raises :class:`PolicyUnavailable`."""

    def __init__(self, endpoint: str, key: bytes, timeout_s: float = 0.05) -> None:
        self.endpoint, self.key, self.timeout_ms = endpoint, key, max(1, int(timeout_s * 1000))
        self.tx, self.rx = Codec(key), Codec(key)
        self.sock = None
        self._connect()

    def _connect(self) -> None:
        import zmq

        if self.sock is not None:
            self.sock.close(0)
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.connect(self.endpoint)

    def act(self, obs: np.ndarray) -> np.ndarray:
        import zmq

        self.sock.send(self.tx.seal("act", {"obs": np.asarray(obs, dtype=np.float32).tolist(), "req": self.tx.seq + 1}))
        if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
            self._connect()  # a REQ socket that lost its reply cannot send again: start a fresh one
            raise PolicyUnavailable(f"no reply from {self.endpoint} within {self.timeout_ms} ms.")
        try:
            kind, payload = self.rx.open(self.sock.recv())
        except TransportError as e:
            raise PolicyUnavailable(f"rejected reply from {self.endpoint}: {e}") from None
        if kind != "actions":
            raise PolicyUnavailable(f"server refused the request: {payload.get('reason')}")
        return np.asarray(payload["actions"], dtype=np.float32)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
