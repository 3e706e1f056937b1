"""A policy server and robot-side clients over ZeroMQ: authenticated msgpack messages in per-client sessions.

Keys
----
Both sides hold one long-term key ``K`` (at least 16 bytes, from a file readable by its owner only, or
an environment variable; never the command line). Nothing is ever sent under ``K`` itself: every MAC
key is derived from it with HKDF-SHA256 (RFC 5869, :func:`hkdf`)::

    hello keys    H_cs, H_sc = HKDF(K, salt="rlsuite-transport/2", info="handshake client->server" | "handshake server->client")
    session keys  prk = HKDF-Extract(salt = Nc || Ns, K)
                  K_cs = HKDF-Expand(prk, "rlsuite-transport/2 session " || sid || " client->server", 32)
                  K_sc = HKDF-Expand(prk, "rlsuite-transport/2 session " || sid || " server->client", 32)

Frames
------
Every frame is ``header (18 bytes) || tag (32 bytes) || body``: the header is the version byte (2),
the type byte and the 16-byte session id ``sid``; ``tag = HMAC-SHA256(key, header || body)``; the body
is msgpack of a map (plain maps, lists, numbers, strings and bytes; extension types are refused).
The receiver checks size, version and type, picks the key from the type and the ``sid``, checks the tag
(constant time) and only then unpacks the body. Nothing is ever pickled.

====  ==================  ==========  =========================================================
type  direction           key         body
====  ==================  ==========  =========================================================
 H    client -> server    H_cs        ``{t_ns, nonce: Nc (32 random bytes)}``, sid all zeros
 W    server -> client    H_sc        ``{t_ns, nonce: Ns (32 random bytes), client_nonce: Nc}``, sid new (16 random bytes)
 D    client -> server    K_cs        ``{seq, t_ns, kind: "act", payload: {obs}}``
 D    server -> client    K_sc        ``{seq, t_ns, kind: "actions" | "error", payload: {actions | reason, req}}``
 E    server -> client    H_sc        ``{t_ns, code: "unknown_session" | "rejected", reason, req_tag}``
====  ==================  ==========  =========================================================

Handshake: the client sends H with a fresh nonce; the server checks the tag, that ``t_ns`` (wall clock,
``time.time_ns()``) is within ``max_skew_s`` of its own clock, and that it has not seen ``Nc`` within
that window; it answers W with its own fresh nonce and a new ``sid``, and both derive ``K_cs``, ``K_sc``.
The client checks W's tag, that it echoes its ``Nc`` and that ``t_ns`` is within the window. Clocks must
agree to within ``max_skew_s`` (5 s by default: NTP is enough); data frames carry ``t_ns`` for the
record but are not held to the window (a clock step mid-run must not stop a robot): within a session,
freshness is the sequence number's job.

Sessions: each side counts its own ``seq`` per session and direction, from 1; a receiver accepts only a
``seq`` larger than every one it accepted before in that session and direction, and a reply must name
the request it answers (``req``). The server keeps at most ``max_sessions`` sessions and drops the
least recently used one when a new client arrives. So:

- a replayed request (same session) fails the ``seq`` check; a message from an earlier session names a
  session the server no longer has, or fails its ``seq`` check if it still has it;
- a reply reflected back to the server as a request fails the tag check (``K_sc != K_cs``), a hello
  reflected as a welcome too (``H_cs != H_sc``); a replayed welcome does not echo the client's nonce;
- a request whose ``sid`` the server does not know (it restarted, or dropped the session) gets an E
  reply ``unknown_session``, tagged under ``H_sc`` and naming the rejected frame's tag (``req_tag``), so
  it cannot be replayed onto another request.

Failure behaviour: :meth:`PolicyClient.act` either returns the server's actions or raises
:class:`PolicyUnavailable` (no reply within ``timeout_s``; a reply that fails any check; an E reply; an
authenticated "error" reply for a malformed observation or a policy that raised). Except after that last
one, the client forgets its session, so its next call starts with a new handshake: a client survives a
restart of the server without restarting itself (one call fails), and a restarted client simply
handshakes again. The server answers every frame it receives and never dies on one: rejected frames
and failed requests are answered with an error reply and counted (``rejected``, ``errors``).

:class:`PolicyServer` binds to loopback by default; a non-loopback address needs ``allow_remote=True``.
Frames are authenticated, not encrypted: anyone on the path can read observations and actions.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import logging
import os
import secrets
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("rlsuite.robots")

VERSION = 2
HEADER_BYTES = 18
TAG_BYTES = 32
SID_BYTES = 16
NONCE_BYTES = 32
MAX_MESSAGE_BYTES = 1 << 20
KEY_ENV = "RLSUITE_POLICY_KEY"
MAX_SKEW_S = 5.0
"""Default freshness window of the handshake's wall-clock timestamps (seconds either side)."""
MAX_SESSIONS = 64
"""Default number of sessions a server keeps (least recently used dropped first)."""
MAX_BATCH = 4096
"""Largest batch of observations one request may carry."""

HELLO, WELCOME, DATA, ERROR = b"H", b"W", b"D", b"E"
_TYPE_NAMES = {HELLO: "hello", WELCOME: "welcome", DATA: "data", ERROR: "error"}
_NO_SID = bytes(SID_BYTES)
_LABEL = b"rlsuite-transport/2"
C2S, S2C = b"client->server", b"server->client"


class TransportError(RuntimeError):
    """A message that was rejected (forged, replayed, stale, oversize or malformed)."""


class PolicyUnavailable(RuntimeError):
    """No valid reply from the policy server in time (or the server could not act on the request)."""


# ---------------------------------------------------------------- keys


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract with SHA-256 (RFC 5869 section 2.2): ``HMAC(salt, ikm)``; an empty salt is 32 zero bytes."""
    return hmac.new(salt or bytes(32), ikm, sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-Expand with SHA-256 (RFC 5869 section 2.3): ``T(i) = HMAC(prk, T(i-1) || info || i)``."""
    if not 0 < length <= 255 * 32:
        raise ValueError(f"HKDF-SHA256 gives 1 to {255 * 32} bytes, asked for {length}.")
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), sha256).digest()
        out += block
    return out[:length]


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract then expand."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


def hello_keys(key: bytes) -> tuple[bytes, bytes]:
    """``(H_cs, H_sc)``: the MAC keys of the handshake frames from the long-term ``key``."""
    return hkdf(key, _LABEL, b"handshake " + C2S), hkdf(key, _LABEL, b"handshake " + S2C)


def session_keys(key: bytes, client_nonce: bytes, server_nonce: bytes, sid: bytes) -> tuple[bytes, bytes]:
    """``(K_cs, K_sc)``: the MAC keys of one session, per direction (see the module docstring)."""
    prk = hkdf_extract(client_nonce + server_nonce, key)
    return (hkdf_expand(prk, _LABEL + b" session " + sid + b" " + C2S),
            hkdf_expand(prk, _LABEL + b" session " + sid + b" " + S2C))


def load_key(key_file: str | os.PathLike | None = None, env: str = KEY_ENV) -> bytes:
    """The shared key from ``key_file`` or the environment variable ``env``; at least 16 bytes.

    A key file readable or writable by group or others is refused (as ssh refuses such private keys).
    """
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise FileNotFoundError(f"key file {path}: not found; make one with: python -c \"import secrets; "
                                    f"print(secrets.token_hex(32))\" > {path} && chmod 600 {path}")
        mode = stat.S_IMODE(path.stat().st_mode)
        if os.name == "posix" and mode & 0o077:
            raise ValueError(f"key file {path} has mode {mode:04o}: group or others may read or write it, so the key is not "
                             f"private; allowed: no access for group and others (e.g. 0600); fix: chmod 600 {path}")
        key = path.read_bytes().strip()
    elif os.environ.get(env):
        key = os.environ[env].encode()
    else:
        raise ValueError(f"no key: pass a key file or set the environment variable {env} (never on the command line).")
    if len(key) < 16:
        raise ValueError(f"the key must be at least 16 bytes, got {len(key)}; generate one with: python -c \"import secrets; print(secrets.token_hex(32))\"")
    return key


# ---------------------------------------------------------------- frames


def _refuse_ext(code: int, data: bytes) -> Any:
    raise TransportError(f"msgpack extension type {code} is not allowed.")


def seal_frame(key: bytes, ftype: bytes, sid: bytes, body: dict[str, Any]) -> bytes:
    """``header || HMAC-SHA256(key, header || body) || body`` with ``body`` packed by msgpack."""
    import msgpack

    header = bytes([VERSION]) + ftype + sid
    packed = msgpack.packb(body, use_bin_type=True)
    return header + hmac.new(key, header + packed, sha256).digest() + packed


def frame_type(frame: bytes) -> str:
    """``hello``, ``welcome``, ``data``, ``error`` (from the header, unauthenticated) or ``invalid``."""
    if not isinstance(frame, (bytes, bytearray)) or len(frame) <= HEADER_BYTES + TAG_BYTES or frame[0] != VERSION:
        return "invalid"
    return _TYPE_NAMES.get(bytes(frame[1:2]), "invalid")


def _split(frame: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """``(type, sid, header, tag, body)`` after the size and version checks (nothing authenticated yet)."""
    if not isinstance(frame, (bytes, bytearray)):
        raise TransportError(f"a frame must be bytes, got {type(frame).__name__}.")
    if not HEADER_BYTES + TAG_BYTES < len(frame) <= MAX_MESSAGE_BYTES:
        raise TransportError(f"message of {len(frame)} bytes is outside the allowed size "
                             f"({HEADER_BYTES + TAG_BYTES + 1} to {MAX_MESSAGE_BYTES}).")
    frame = bytes(frame)
    if frame[0] != VERSION:
        raise TransportError(f"protocol version {frame[0]}, expected {VERSION} (update both sides to the same rlsuite).")
    ftype = frame[1:2]
    if ftype not in _TYPE_NAMES:
        raise TransportError(f"unknown frame type {ftype!r}.")
    return ftype, frame[2:HEADER_BYTES], frame[:HEADER_BYTES], frame[HEADER_BYTES : HEADER_BYTES + TAG_BYTES], frame[HEADER_BYTES + TAG_BYTES :]


def _open_body(key: bytes, header: bytes, tag: bytes, body: bytes, fields: dict[str, type]) -> dict[str, Any]:
    """The unpacked body of an authentic frame with ``fields`` of the given types; else :class:`TransportError`."""
    import msgpack

    if not hmac.compare_digest(tag, hmac.new(key, header + body, sha256).digest()):
        raise TransportError("bad message authentication code (wrong key, wrong session or direction, or a tampered message).")
    try:
        msg = msgpack.unpackb(body, raw=False, ext_hook=_refuse_ext, strict_map_key=True)
    except TransportError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure is a rejected message
        raise TransportError(f"undecodable message: {type(e).__name__}.") from None
    if not isinstance(msg, dict) or any(not isinstance(msg.get(k), t) or isinstance(msg.get(k), bool) for k, t in fields.items()):
        raise TransportError(f"message does not have the expected fields ({', '.join(fields)}).")
    return msg


def _open(key: bytes, frame: bytes, ftype: bytes, fields: dict[str, type], sid: bytes | None = None) -> dict[str, Any]:
    got, got_sid, header, tag, body = _split(frame)
    if got != ftype:
        raise TransportError(f"expected a {_TYPE_NAMES[ftype]} frame, got a {_TYPE_NAMES[got]} frame.")
    if sid is not None and got_sid != sid:
        raise TransportError("frame of another session.")
    return _open_body(key, header, tag, body, fields)


def _check_fresh(t_ns: int, now_ns: int, max_skew_s: float, what: str) -> None:
    skew = (now_ns - t_ns) / 1e9
    if abs(skew) > max_skew_s:
        where = f"{skew:.1f} s behind" if skew > 0 else f"{-skew:.1f} s ahead of"
        raise TransportError(f"stale {what}: its timestamp is {where} this machine's clock (allowed: {max_skew_s:g} s either way); "
                             "a replay, or clocks that disagree (synchronise both machines with NTP or PTP).")


class Codec:
    """Seals and opens the data frames of one direction of one session: its own ``seq`` counter and replay check."""

    def __init__(self, key: bytes, sid: bytes = _NO_SID, clock_ns: Callable[[], int] = time.time_ns) -> None:
        if len(key) < 16:
            raise ValueError("the key must be at least 16 bytes.")
        if len(sid) != SID_BYTES:
            raise ValueError(f"a session id has {SID_BYTES} bytes, got {len(sid)}.")
        self.key, self.sid, self.clock_ns = key, sid, clock_ns
        self.seq = 0
        self.last_seen = 0
        self.rejected = 0

    def seal(self, kind: str, payload: dict[str, Any]) -> bytes:
        self.seq += 1
        return seal_frame(self.key, DATA, self.sid, {"seq": self.seq, "t_ns": self.clock_ns(), "kind": kind, "payload": payload})

    def open(self, frame: bytes) -> tuple[str, dict[str, Any]]:
        """``(kind, payload)`` of an authentic, fresh, well-formed data frame; else :class:`TransportError`.
        The accepted frame's ``seq`` is ``self.last_seen`` afterwards."""
        try:
            msg = _open(self.key, frame, DATA, {"seq": int, "t_ns": int, "kind": str, "payload": dict}, self.sid)
            if msg["seq"] <= self.last_seen:
                raise TransportError(f"replayed or reordered message (seq {msg['seq']} <= {self.last_seen}).")
            self.last_seen = msg["seq"]
            return msg["kind"], msg["payload"]
        except TransportError:
            self.rejected += 1
            raise


# ---------------------------------------------------------------- server


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) names this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_bind(bind: str, allow_remote: bool) -> None:
    if not bind.startswith("tcp://"):
        raise ValueError(f"bind must look like tcp://127.0.0.1:5555, got {bind!r}.")
    host = bind[len("tcp://") :].rsplit(":", 1)[0]
    if not is_loopback(host) and not allow_remote:
        raise ValueError(f"refusing to listen on {host!r}: the policy server binds to loopback unless told otherwise "
                         "(allow_remote=True, --allow-remote on the command line; only on a trusted network).")


def parse_observation(obs: Any, obs_dim: int | None = None) -> np.ndarray:
    """A request's ``obs`` as a float32 array ``(obs_dim,)`` or ``(B, obs_dim)``; else ``ValueError`` saying why.

    Values are not judged: NaN and Inf pass (the robot side's NaN guard handles what comes back).
    """
    if not isinstance(obs, list):
        raise ValueError(f"the observation must be a list of numbers (or of rows), got {type(obs).__name__}.")
    try:
        x = np.asarray(obs, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"the observation is not a rectangular array of numbers ({e}).") from None
    if x.ndim not in (1, 2) or x.shape[-1] == 0 or (x.ndim == 2 and not 1 <= x.shape[0] <= MAX_BATCH):
        raise ValueError(f"observation of shape {x.shape}; allowed: (obs_dim,) or (B, obs_dim) with 1 <= B <= {MAX_BATCH}.")
    if obs_dim is not None and x.shape[-1] != obs_dim:
        raise ValueError(f"observation of shape {x.shape}; this policy takes ({obs_dim},) or (B, {obs_dim}).")
    return x


@dataclasses.dataclass
class _ServerSession:
    rx: Codec
    tx: Codec


class PolicyServer:
    """Answers ``act`` requests with ``policy(obs) -> actions`` (``obs`` ``(obs_dim,)`` or ``(B, obs_dim)``)
    for any number of clients, each in its own session (ZeroMQ ROUTER socket; clients are REQ sockets).

    Args:
        policy: the policy; anything it raises is answered with an error reply and counted in ``errors``.
        key: the long-term key (at least 16 bytes).
        bind: ``tcp://host:port`` (``port`` ``*`` picks a free one; see :attr:`endpoint`).
        allow_remote: allow a non-loopback ``bind``.
        obs_dim: when known, requests of another width are refused without calling the policy.
        max_sessions: sessions kept (the least recently used is dropped when a new client arrives).
        max_skew_s: freshness window of the handshake timestamps (wall clock, seconds either side).
        clock_ns: the wall clock (``time.time_ns``; injectable for tests).
    """

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray], key: bytes, bind: str = "tcp://127.0.0.1:5555",
                 allow_remote: bool = False, obs_dim: int | None = None, max_sessions: int = MAX_SESSIONS,
                 max_skew_s: float = MAX_SKEW_S, clock_ns: Callable[[], int] = time.time_ns) -> None:
        import zmq

        _check_bind(bind, allow_remote)
        if len(key) < 16:
            raise ValueError("the key must be at least 16 bytes.")
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}.")
        self.policy, self.key, self.obs_dim = policy, key, obs_dim
        self.max_sessions, self.max_skew_s, self.clock_ns = max_sessions, max_skew_s, clock_ns
        self.hello_rx, self.hello_tx = hello_keys(key)
        self.sessions: OrderedDict[bytes, _ServerSession] = OrderedDict()
        self._seen_nonces: OrderedDict[bytes, int] = OrderedDict()  # client nonce -> t_ns, within the window
        self.served = self.rejected = self.errors = self.handshakes = 0
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if "[" in bind:  # an IPv6 address, tcp://[::1]:port
            self.sock.setsockopt(zmq.IPV6, 1)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.bind(bind)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    # -- one frame in, one frame out (no socket: testable on its own)

    def handle(self, frame: bytes) -> bytes:
        """The reply to one received frame. Never raises: rejected frames and failed requests are
        answered with an error reply and counted."""
        try:
            ftype, sid, header, tag, body = _split(frame)
        except TransportError as e:
            return self._reject(b"", _NO_SID, "rejected", e)
        if ftype == HELLO:
            try:
                return self._handshake(header, tag, body)
            except TransportError as e:
                return self._reject(tag, sid, "rejected", e)
        if ftype != DATA:
            return self._reject(tag, sid, "rejected", TransportError(f"a client does not send {_TYPE_NAMES[ftype]} frames."))
        session = self.sessions.get(sid)
        if session is None:
            return self._reject(tag, sid, "unknown_session", TransportError(
                "unknown session (the server restarted or dropped it; the client handshakes again on its next call)."))
        try:
            kind, payload = session.rx.open(frame)
        except TransportError as e:
            return self._reject(tag, sid, "rejected", e)
        self.sessions.move_to_end(sid)
        req = session.rx.last_seen
        try:
            if kind != "act":
                raise ValueError(f"unknown request {kind!r}; allowed: act.")
            obs = parse_observation(payload.get("obs"), self.obs_dim)
            actions = np.asarray(self.policy(obs), dtype=np.float32)
        except Exception as e:  # noqa: BLE001 - nothing a request does may stop the server
            self.errors += 1
            log.warning("policy server: request %d of session %s failed: %s: %s", req, sid.hex()[:8], type(e).__name__, e)
            return session.tx.seal("error", {"reason": f"{type(e).__name__}: {e}", "req": req})
        self.served += 1
        return session.tx.seal("actions", {"actions": actions.tolist(), "req": req})

    def _handshake(self, header: bytes, tag: bytes, body: bytes) -> bytes:
        msg = _open_body(self.hello_rx, header, tag, body, {"t_ns": int, "nonce": bytes})
        nonce, now = msg["nonce"], self.clock_ns()
        if len(nonce) != NONCE_BYTES:
            raise TransportError(f"a hello nonce has {NONCE_BYTES} bytes, got {len(nonce)}.")
        _check_fresh(msg["t_ns"], now, self.max_skew_s, "hello")
        window = int(self.max_skew_s * 1e9)
        while self._seen_nonces and (next(iter(self._seen_nonces.values())) < now - 2 * window
                                     or len(self._seen_nonces) >= 4 * self.max_sessions + 1024):
            self._seen_nonces.popitem(last=False)
        if nonce in self._seen_nonces:
            raise TransportError("replayed hello (its nonce was used before).")
        self._seen_nonces[nonce] = now
        server_nonce, sid = secrets.token_bytes(NONCE_BYTES), secrets.token_bytes(SID_BYTES)
        k_cs, k_sc = session_keys(self.key, nonce, server_nonce, sid)
        while len(self.sessions) >= self.max_sessions:
            old, _ = self.sessions.popitem(last=False)
            log.info("policy server: dropped the least recently used session %s (%d kept at most)", old.hex()[:8], self.max_sessions)
        self.sessions[sid] = _ServerSession(Codec(k_cs, sid, self.clock_ns), Codec(k_sc, sid, self.clock_ns))
        self.handshakes += 1
        log.info("policy server: new session %s (%d open)", sid.hex()[:8], len(self.sessions))
        return seal_frame(self.hello_tx, WELCOME, sid, {"t_ns": now, "nonce": server_nonce, "client_nonce": nonce})

    def _reject(self, tag: bytes, sid: bytes, code: str, e: Exception) -> bytes:
        self.rejected += 1
        log.warning("policy server rejected a message: %s", e)
        return seal_frame(self.hello_tx, ERROR, sid if len(sid) == SID_BYTES else _NO_SID,
                          {"t_ns": self.clock_ns(), "code": code, "reason": str(e), "req_tag": bytes(tag)})

    # -- the socket

    def summary(self) -> str:
        """``served=N rejected=N errors=N handshakes=N sessions=N``."""
        return (f"served={self.served} rejected={self.rejected} errors={self.errors} handshakes={self.handshakes} "
                f"sessions={len(self.sessions)}")

    def serve(self, max_requests: int | None = None, poll_ms: int = 100, stop: Callable[[], bool] | None = None,
              log_every_s: float | None = 60.0) -> None:
        """Serve until ``max_requests`` requests were answered (served or failed; handshakes and rejected
        frames do not count) or ``stop()`` returns true; logs :meth:`summary` every ``log_every_s`` seconds."""
        import zmq

        next_log = time.monotonic() + (log_every_s or 0.0)
        while (max_requests is None or self.served + self.errors < max_requests) and not (stop and stop()):
            if log_every_s and time.monotonic() >= next_log:
                log.info("policy server: %s", self.summary())
                next_log = time.monotonic() + log_every_s
            if not self.sock.poll(poll_ms, zmq.POLLIN):
                continue
            parts = self.sock.recv_multipart()
            if len(parts) < 2:  # a ROUTER always prefixes the sender's identity; nothing to answer otherwise
                self.rejected += 1
                continue
            try:
                reply = self.handle(parts[-1])
            except Exception as e:  # noqa: BLE001 - handle() does not raise; a bug there must not stop the server either
                log.exception("policy server: internal error")
                reply = self._reject(b"", _NO_SID, "rejected", e)
            self.sock.send_multipart([*parts[:-1], reply])  # the envelope (identity, empty delimiter) goes back first

    def close(self) -> None:
        self.sock.close(0)


# ---------------------------------------------------------------- client


@dataclasses.dataclass
class _ClientSession:
    sid: bytes
    tx: Codec
    rx: Codec


class PolicyClient:
    """Robot-side client: ``act(obs)`` returns the server's actions or raises :class:`PolicyUnavailable`.

    The first call (and the first after a failure) runs the handshake; call :meth:`handshake` yourself to
    do it before the control loop starts. Not thread-safe: one client per control loop.

    Args:
        endpoint: ``tcp://host:port`` of the server.
        key: the long-term key shared with the server.
        timeout_s: the longest wait for each reply (the handshake's and the request's).
        max_skew_s: freshness window of the server's handshake timestamp (wall clock).
        clock_ns: the wall clock (``time.time_ns``; injectable for tests).
    """

    def __init__(self, endpoint: str, key: bytes, timeout_s: float = 0.05, max_skew_s: float = MAX_SKEW_S,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        if len(key) < 16:
            raise ValueError("the key must be at least 16 bytes.")
        self.endpoint, self.key, self.timeout_ms = endpoint, key, max(1, int(timeout_s * 1000))
        self.max_skew_s, self.clock_ns = max_skew_s, clock_ns
        self.hello_tx, self.hello_rx = hello_keys(key)
        self.session: _ClientSession | None = None
        self.handshakes = 0
        self.sock = None
        self._connect()

    @property
    def session_id(self) -> bytes | None:
        """The current session's id (None before the handshake and after a failure)."""
        return None if self.session is None else self.session.sid

    def _connect(self) -> None:
        import zmq

        if self.sock is not None:
            self.sock.close(0)
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        if "[" in self.endpoint:  # an IPv6 address
            self.sock.setsockopt(zmq.IPV6, 1)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.connect(self.endpoint)

    def _fail(self, message: str) -> PolicyUnavailable:
        """Forget the session (the next call handshakes again) and return the error to raise."""
        self.session = None
        return PolicyUnavailable(message)

    def _round_trip(self, frame: bytes) -> bytes:
        import zmq

        self.sock.send(frame)
        if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
            self._connect()  # a REQ socket that lost its reply cannot send again: start a fresh one
            raise self._fail(f"no reply from {self.endpoint} within {self.timeout_ms} ms.")
        return self.sock.recv()

    def _server_error(self, reply: bytes, sent: bytes) -> PolicyUnavailable:
        """The error to raise for an E reply to ``sent`` (or for a reply that is not one)."""
        try:
            msg = _open(self.hello_rx, reply, ERROR, {"t_ns": int, "code": str, "reason": str, "req_tag": bytes})
            if msg["req_tag"] != sent[HEADER_BYTES : HEADER_BYTES + TAG_BYTES]:
                raise TransportError("error reply to another request.")
        except TransportError as e:
            return self._fail(f"rejected reply from {self.endpoint}: {e}")
        return self._fail(f"the policy server at {self.endpoint} refused the request ({msg['code']}): {msg['reason']}")

    def handshake(self) -> None:
        """Start a new session (fresh nonces, new keys); raises :class:`PolicyUnavailable` on failure."""
        self.session = None
        nonce = secrets.token_bytes(NONCE_BYTES)
        hello = seal_frame(self.hello_tx, HELLO, _NO_SID, {"t_ns": self.clock_ns(), "nonce": nonce})
        reply = self._round_trip(hello)
        if frame_type(reply) != "welcome":
            raise self._server_error(reply, hello)
        try:
            msg = _open(self.hello_rx, reply, WELCOME, {"t_ns": int, "nonce": bytes, "client_nonce": bytes})
            if not hmac.compare_digest(msg["client_nonce"], nonce):
                raise TransportError("welcome to another hello (replayed?).")
            if len(msg["nonce"]) != NONCE_BYTES:
                raise TransportError(f"a welcome nonce has {NONCE_BYTES} bytes, got {len(msg['nonce'])}.")
            _check_fresh(msg["t_ns"], self.clock_ns(), self.max_skew_s, "welcome")
        except TransportError as e:
            raise self._fail(f"rejected handshake reply from {self.endpoint}: {e}") from None
        sid = bytes(reply[2:HEADER_BYTES])
        k_cs, k_sc = session_keys(self.key, nonce, msg["nonce"], sid)
        self.session = _ClientSession(sid, Codec(k_cs, sid, self.clock_ns), Codec(k_sc, sid, self.clock_ns))
        self.handshakes += 1
        log.debug("policy client: session %s with %s", sid.hex()[:8], self.endpoint)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The server's actions for ``obs`` (``(obs_dim,)`` gives ``(act_dim,)``, ``(B, obs_dim)`` gives
        ``(B, act_dim)``); raises :class:`PolicyUnavailable` when there is no valid answer."""
        if self.session is None:
            self.handshake()
        s = self.session
        request = s.tx.seal("act", {"obs": np.asarray(obs, dtype=np.float32).tolist()})
        reply = self._round_trip(request)
        if frame_type(reply) != "data":
            raise self._server_error(reply, request)
        try:
            kind, payload = s.rx.open(reply)
            if payload.get("req") != s.tx.seq:
                raise TransportError(f"reply to request {payload.get('req')}, expected {s.tx.seq}.")
        except TransportError as e:
            raise self._fail(f"rejected reply from {self.endpoint}: {e}") from None
        if kind == "error":  # authenticated: the session is fine, the request was not
            raise PolicyUnavailable(f"the policy server at {self.endpoint} could not act on the observation: {payload.get('reason')}")
        try:
            if kind != "actions":
                raise ValueError(f"unknown reply {kind!r}")
            return np.asarray(payload["actions"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise self._fail(f"malformed reply from {self.endpoint}: {e}") from None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
