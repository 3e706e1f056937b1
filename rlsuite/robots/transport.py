"""A policy server and robot-side clients over ZeroMQ: authenticated msgpack messages in per-client sessions.

Keys
----
Both sides hold one long-term key ``K`` (at least 16 bytes, from a file readable by its owner only, or
an environment variable; never the command line; :func:`write_key_file` makes such a file). Nothing is
ever sent under ``K`` itself: every MAC key is derived from it with HKDF-SHA256 (RFC 5869, :func:`hkdf`)::

    hello keys    H_cs, H_sc = HKDF(K, salt="rlsuite-transport/3", info="handshake client->server" | "handshake server->client")
    session keys  prk = HKDF-Extract(salt = Nc || Ns, K)
                  K_cs = HKDF-Expand(prk, "rlsuite-transport/3 session " || sid || " client->server", 32)
                  K_sc = HKDF-Expand(prk, "rlsuite-transport/3 session " || sid || " server->client", 32)

Frames
------
Every frame is ``header (18 bytes) || tag (32 bytes) || body``, at most ``MAX_MESSAGE_BYTES`` (1 MiB) in
all: the header is the version byte (3), the type byte and the 16-byte session id ``sid``;
``tag = HMAC-SHA256(key, header || body)``; the body is msgpack of a map (plain maps, lists, numbers,
strings and bytes; extension types are refused). The receiver checks size, version and type, picks the
key from the type and the ``sid``, checks the tag (constant time) and only then unpacks the body.
Nothing is ever pickled.

====  ==================  ==========  =========================================================
type  direction           key         body
====  ==================  ==========  =========================================================
 H    client -> server    H_cs        ``{t_ns, nonce: Nc (32 random bytes)}``, sid all zeros
 W    server -> client    H_sc        ``{t_ns, nonce: Ns (32 random bytes), client_nonce: Nc}``, sid new (16 random bytes)
 D    client -> server    K_cs        ``{seq, t_ns, kind: "act", payload: {obs: ARRAY}}``
 D    server -> client    K_sc        ``{seq, t_ns, kind: "actions" | "error", payload: {actions: ARRAY | reason, req}}``
 E    server -> client    H_sc        ``{t_ns, code: "unknown_session" | "busy" | "rejected", reason, req_tag}``
====  ==================  ==========  =========================================================

``ARRAY`` is ``{dtype: "<f4", shape: [n, ...], data: bin}``: the values as float32 little-endian bytes
in C order (4 bytes a number, half of msgpack's 9 for a float). A receiver takes exactly that dtype, a
shape of non-negative integers (observations: ``(obs_dim,)`` or ``(B, obs_dim)``; actions: at most
``MAX_NDIM`` dimensions) and ``len(data) == 4 * prod(shape)``; anything else is refused. One request
holds at most :func:`max_batch` ``(obs_dim)`` observations (``MAX_BATCH`` for width 1); a client refuses
to send a larger frame (``ValueError``, before sending) and the server answers an error instead of a
reply frame over the cap.

Handshake: the client sends H with a fresh nonce; the server checks the tag, that ``t_ns`` (wall clock,
``time.time_ns()``) is within ``max_skew_s`` of its own clock, and that it has not seen ``Nc`` within
that window; it answers W with its own fresh nonce and a new ``sid``, and both derive ``K_cs``, ``K_sc``.
The client checks W's tag, that it echoes its ``Nc`` and that ``t_ns`` is within the window. Clocks must
agree to within ``max_skew_s`` (5 s by default: NTP is enough); data frames carry ``t_ns`` for the
record but are not held to the window (a clock step mid-run must not stop a robot): within a session,
freshness is the sequence number's job.

The server remembers the nonce of every hello it accepted for ``2 max_skew_s`` (as long as that hello
could pass the freshness check) and never forgets one earlier: when ``max_hellos`` nonces are that
recent, a new hello gets an E reply ``too many handshakes in the last N s`` until the oldest ages out.
Hellos are authenticated under ``K``, so only key holders can fill the record.

Sessions: each side counts its own ``seq`` per session and direction, from 1; a receiver accepts only a
``seq`` larger than every one it accepted before in that session and direction, and a reply must name
the request it answers (``req``). The server keeps at most ``max_sessions`` sessions and drops the
least recently used one when a new client arrives. So:

- a replayed request (same session) fails the ``seq`` check; a message from an earlier session names a
  session the server no longer has, or fails its ``seq`` check if it still has it;
- a reply reflected back to the server as a request fails the tag check (``K_sc != K_cs``); a hello
  reflected back as a welcome fails the type check, and with its type byte changed the tag check (the
  header is authenticated; a welcome is checked under ``H_sc``, a hello tagged under ``H_cs``); a replayed
  welcome does not echo the client's nonce;
- a request whose ``sid`` the server does not know (it restarted, or dropped the session) gets an E
  reply ``unknown_session``, tagged under ``H_sc`` and naming the rejected frame's tag (``req_tag``), so
  it cannot be replayed onto another request.

Failure behaviour: :meth:`PolicyClient.act` either returns the server's actions or raises
:class:`PolicyUnavailable` (no reply within ``timeout_s``; a reply that fails any check; an E reply; an
authenticated "error" reply for a malformed observation or a policy that raised; a socket error). Except
after an "error" reply, the client forgets its session, so its next call starts with a new handshake: a
client survives a restart of the server without restarting itself (one call fails), and a restarted
client simply handshakes again. A call interrupted by any exception (``KeyboardInterrupt`` between send
and receive, say) recreates the socket and forgets the session before the exception propagates, so the
next call works. An observation too large for one frame is a ``ValueError`` before anything is sent.
The server answers every frame it receives and never dies on one: rejected frames and failed requests
are answered with an error reply and counted (``rejected``, per reason in ``rejected_by``; ``errors``).
It logs the first rejection of each reason and then at most one summary line (counts per reason) every
``reject_log_every_s`` seconds, and queues at most ``hwm`` messages per connection (``zmq.RCVHWM``), so
a peer without the key can fill neither the log nor the memory.

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
from collections import Counter, OrderedDict
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("rlsuite.robots")

VERSION = 3
HEADER_BYTES = 18
TAG_BYTES = 32
SID_BYTES = 16
NONCE_BYTES = 32
MAX_MESSAGE_BYTES = 1 << 20
"""Largest frame either side sends or accepts (header, tag and body), bytes."""
KEY_ENV = "RLSUITE_POLICY_KEY"
MAX_SKEW_S = 5.0
"""Default freshness window of the handshake's wall-clock timestamps (seconds either side)."""
MAX_SESSIONS = 64
"""Default number of sessions a server keeps (least recently used dropped first)."""
MAX_HELLOS = 4096
"""Default number of hello nonces a server remembers; more hellos than that within ``2 max_skew_s`` are refused."""
HWM = 64
"""Default ZeroMQ high-water mark of the server socket: messages queued per connection and direction."""
REJECT_LOG_EVERY_S = 10.0
"""Default interval of the server's summary of rejected messages (the first of each reason is logged at once)."""
DTYPE = "<f4"
"""The one array dtype on the wire: float32, little-endian."""
MAX_NDIM = 4
"""Most dimensions an action array may have on the wire."""
DATA_OVERHEAD_BYTES = 256
"""Room a data frame needs besides its array's values (header, tag, the other msgpack fields); an upper bound."""
MAX_VALUES = (MAX_MESSAGE_BYTES - HEADER_BYTES - TAG_BYTES - DATA_OVERHEAD_BYTES) // 4
"""Most float32 values one data frame carries (observations of a request, actions of a reply)."""


def max_batch(width: int) -> int:
    """The largest batch of ``width``-wide rows (observations ``(B, obs_dim)``, or actions ``(B, act_dim)``)
    that fits in one frame: ``MAX_VALUES // width``; e.g. 5,459 observations of width 48."""
    if width < 1:
        raise ValueError(f"a row has at least one value, got width {width}.")
    return MAX_VALUES // width


MAX_BATCH = max_batch(1)
"""Largest batch one request may carry (observations of width 1); for width ``d`` see :func:`max_batch`."""

HELLO, WELCOME, DATA, ERROR = b"H", b"W", b"D", b"E"
_TYPE_NAMES = {HELLO: "hello", WELCOME: "welcome", DATA: "data", ERROR: "error"}
_NO_SID = bytes(SID_BYTES)
_LABEL = b"rlsuite-transport/3"
C2S, S2C = b"client->server", b"server->client"


class TransportError(RuntimeError):
    """A message that was rejected (forged, replayed, stale, oversize or malformed).

    ``reason`` names the check that failed, one of :data:`REJECT_REASONS` (the server counts and logs
    rejections per reason)."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


REJECT_REASONS = ("size", "version", "type", "tag", "malformed", "session", "stale", "replayed_data", "replayed_hello",
                  "unknown_session", "busy", "envelope", "internal")
"""Why a server rejects a frame: ``size`` outside the limits, protocol ``version``, frame ``type``, ``tag``
(wrong key, direction or tampered), ``malformed`` body, another ``session``, ``stale`` timestamp,
``replayed_data`` (sequence number not above the last), ``replayed_hello`` (nonce seen),
``unknown_session``, ``busy`` (too many handshakes),
``envelope`` (a ZeroMQ message without a sender), ``internal`` (a bug in the server)."""


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
            raise FileNotFoundError(f"key file {path}: not found; make one (mode 0600) with: python -c \"from "
                                    f"rlsuite.robots.transport import write_key_file; write_key_file({str(path)!r})\"")
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


def write_key_file(path: str | os.PathLike, key: bytes | None = None, overwrite: bool = False) -> bytes:
    """Create a key file readable and writable by its owner only (mode 0600) and return its key.

    Without ``key`` the key is the hex text of 32 random bytes (:func:`secrets.token_hex`, 64 characters).
    The file is created with its final mode (``os.open`` with ``O_CREAT | O_EXCL``, mode 0600 whatever the
    umask), so no other user can read it even for a moment; the key is followed by a newline and
    :func:`load_key` returns exactly the returned key. An existing file is refused
    (``FileExistsError``) unless ``overwrite``, which writes a new private file beside it and renames it
    over the old one (atomic: the path holds the old key or the new one, never a part).
    """
    path = Path(path)
    if key is None:
        key = secrets.token_hex(32).encode()
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"the key must be bytes, got {type(key).__name__}.")
    key = bytes(key)
    if len(key) < 16:
        raise ValueError(f"the key must be at least 16 bytes, got {len(key)}; leave key=None for 32 random bytes in hex.")
    if key != key.strip():
        raise ValueError("the key starts or ends with whitespace, which load_key strips (the two sides would disagree); "
                         "strip it, or leave key=None for 32 random bytes in hex.")
    target = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp") if overwrite else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        raise FileExistsError(f"key file {path} already exists; refusing to replace a key (both sides hold it). To replace it "
                              "pass overwrite=True, or remove the file first.") from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # the umask may have taken bits from 0600; never more than 0600 anyway
        data = memoryview(key + b"\n")
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    if overwrite:
        try:
            os.replace(target, path)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
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
                             f"({HEADER_BYTES + TAG_BYTES + 1} to {MAX_MESSAGE_BYTES}).", "size")
    frame = bytes(frame)
    if frame[0] != VERSION:
        raise TransportError(f"protocol version {frame[0]}, expected {VERSION} (update both sides to the same rlsuite).", "version")
    ftype = frame[1:2]
    if ftype not in _TYPE_NAMES:
        raise TransportError(f"unknown frame type {ftype!r}.", "type")
    return ftype, frame[2:HEADER_BYTES], frame[:HEADER_BYTES], frame[HEADER_BYTES : HEADER_BYTES + TAG_BYTES], frame[HEADER_BYTES + TAG_BYTES :]


def _open_body(key: bytes, header: bytes, tag: bytes, body: bytes, fields: dict[str, type]) -> dict[str, Any]:
    """The unpacked body of an authentic frame with ``fields`` of the given types; else :class:`TransportError`."""
    import msgpack

    if not hmac.compare_digest(tag, hmac.new(key, header + body, sha256).digest()):
        raise TransportError("bad message authentication code (wrong key, wrong session or direction, or a tampered message).", "tag")
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
        want, have = _TYPE_NAMES[ftype], _TYPE_NAMES[got]
        raise TransportError(f"expected {'an' if want == 'error' else 'a'} {want} frame, got {'an' if have == 'error' else 'a'} "
                             f"{have} frame.", "type")
    if sid is not None and got_sid != sid:
        raise TransportError("frame of another session.", "session")
    return _open_body(key, header, tag, body, fields)


def _check_fresh(t_ns: int, now_ns: int, max_skew_s: float, what: str) -> None:
    skew = (now_ns - t_ns) / 1e9
    if abs(skew) > max_skew_s:
        where = f"{skew:.1f} s behind" if skew > 0 else f"{-skew:.1f} s ahead of"
        raise TransportError(f"stale {what}: its timestamp is {where} this machine's clock (allowed: {max_skew_s:g} s either way); "
                             "a replay, or clocks that disagree (synchronise both machines with NTP or PTP).", "stale")


def encode_array(x: Any) -> dict[str, Any]:
    """``{dtype: "<f4", shape, data}``: ``x`` as float32 little-endian bytes in C order (the wire's array)."""
    a = np.asarray(x, dtype=np.float32).astype(DTYPE, copy=False)
    return {"dtype": DTYPE, "shape": list(a.shape), "data": a.tobytes(order="C")}


def decode_array(obj: Any, what: str = "array", max_ndim: int = MAX_NDIM) -> np.ndarray:
    """The float32 array of a wire array ``{dtype: "<f4", shape, data}`` (a writable copy in native
    byte order); else ``ValueError`` saying what is wrong. Exactly those three fields; ``dtype`` exactly
    ``"<f4"``; ``shape`` a list of at most ``max_ndim`` integers in ``[0, MAX_VALUES]``; ``data`` bytes of length
    ``4 * prod(shape)``. Values are not judged (NaN and Inf pass)."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"the {what} must be a map with exactly dtype, shape and data (float32 bytes), got {got}.")
    dtype, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if dtype != DTYPE:
        raise ValueError(f"the {what} has dtype {dtype!r}; allowed: {DTYPE!r} (float32, little-endian).")
    if (not isinstance(shape, list) or len(shape) > max_ndim
            or any(not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_VALUES for n in shape)):
        raise ValueError(f"the {what} has shape {shape!r}; allowed: a list of at most {max_ndim} integers from 0 to "
                         f"{MAX_VALUES} (what one frame holds).")
    if not isinstance(data, bytes):
        raise ValueError(f"the {what}'s data must be bytes, got {type(data).__name__}.")
    count = 1
    for n in shape:
        count *= n
    if len(data) != 4 * count:
        raise ValueError(f"the {what} of shape {tuple(shape)} needs {4 * count} bytes of float32, got {len(data)}.")
    return np.frombuffer(data, dtype=DTYPE).astype(np.float32).reshape(shape)


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
                raise TransportError(f"replayed or reordered message (seq {msg['seq']} <= {self.last_seen}).", "replayed_data")
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
    """A request's ``obs`` (a wire array, see :func:`decode_array`) as a float32 array ``(obs_dim,)`` or
    ``(B, obs_dim)`` with ``B >= 1``; else ``ValueError`` saying why.

    Values are not judged: NaN and Inf pass (the robot side's NaN guard handles what comes back).
    """
    x = decode_array(obs, "observation", max_ndim=2)
    if x.ndim not in (1, 2) or x.shape[-1] == 0 or x.shape[0] == 0:
        raise ValueError(f"observation of shape {x.shape}; allowed: (obs_dim,) or (B, obs_dim) with obs_dim >= 1 and B >= 1.")
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
        max_hellos: hello nonces remembered (each for ``2 max_skew_s``, never less); beyond that many
            handshakes in ``2 max_skew_s``, hellos are refused (E reply ``busy``) until the oldest ages out.
        hwm: ZeroMQ high-water mark (messages queued per connection and direction, ``RCVHWM``/``SNDHWM``).
        reject_log_every_s: the first rejected frame of each reason is logged at once; later ones in one
            summary line (counts per reason) at most every that many seconds.
        clock_ns: the wall clock (``time.time_ns``; injectable for tests).
        monotonic: the clock of the log summaries (``time.monotonic``; injectable for tests).
    """

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray], key: bytes, bind: str = "tcp://127.0.0.1:5555",
                 allow_remote: bool = False, obs_dim: int | None = None, max_sessions: int = MAX_SESSIONS,
                 max_skew_s: float = MAX_SKEW_S, max_hellos: int = MAX_HELLOS, hwm: int = HWM,
                 reject_log_every_s: float = REJECT_LOG_EVERY_S, clock_ns: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        import zmq

        _check_bind(bind, allow_remote)
        if len(key) < 16:
            raise ValueError("the key must be at least 16 bytes.")
        for name, value in (("max_sessions", max_sessions), ("max_hellos", max_hellos), ("hwm", hwm)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        self.policy, self.key, self.obs_dim = policy, key, obs_dim
        self.max_sessions, self.max_skew_s, self.max_hellos = max_sessions, max_skew_s, max_hellos
        self.clock_ns, self.monotonic, self.reject_log_every_s = clock_ns, monotonic, reject_log_every_s
        self.hello_rx, self.hello_tx = hello_keys(key)
        self.sessions: OrderedDict[bytes, _ServerSession] = OrderedDict()
        self._seen_nonces: OrderedDict[bytes, int] = OrderedDict()  # client nonce -> server wall clock when accepted
        self.served = self.rejected = self.errors = self.handshakes = 0
        self.rejected_by: Counter[str] = Counter()
        """Rejected frames per reason (see :data:`REJECT_REASONS`), since the server started."""
        self._unlogged: Counter[str] = Counter()  # rejections not yet in a log line
        self._last_reject_log = 0.0  # the last summary line (or the first rejection)
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if "[" in bind:  # an IPv6 address, tcp://[::1]:port
            self.sock.setsockopt(zmq.IPV6, 1)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.setsockopt(zmq.RCVHWM, hwm)  # a flood queues at most hwm frames of at most 1 MiB per connection
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.bind(bind)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    # -- one frame in, one frame out (no socket: testable on its own)

    def handle(self, frame: bytes) -> bytes:
        """The reply to one received frame. Never raises: rejected frames and failed requests are
        answered with an error reply and counted."""
        try:
            ftype, sid, header, tag, body = _split(frame)
        except TransportError as e:
            return self._reject(b"", _NO_SID, e)
        if ftype == HELLO:
            try:
                return self._handshake(header, tag, body)
            except TransportError as e:
                return self._reject(tag, sid, e)
        if ftype != DATA:
            return self._reject(tag, sid, TransportError(f"a client does not send {_TYPE_NAMES[ftype]} frames.", "type"))
        session = self.sessions.get(sid)
        if session is None:
            return self._reject(tag, sid, TransportError(
                "unknown session (the server restarted or dropped it; the client handshakes again on its next call).", "unknown_session"))
        try:
            kind, payload = session.rx.open(frame)
        except TransportError as e:
            return self._reject(tag, sid, e)
        self.sessions.move_to_end(sid)
        req = session.rx.last_seen
        try:
            if kind != "act":
                raise ValueError(f"unknown request {kind!r}; allowed: act.")
            obs = parse_observation(payload.get("obs"), self.obs_dim)
            actions = np.asarray(self.policy(obs), dtype=np.float32)
            if actions.ndim > MAX_NDIM:
                raise ValueError(f"the policy returned actions of shape {actions.shape}; at most {MAX_NDIM} dimensions go on the wire.")
            reply = None if actions.size > MAX_VALUES else session.tx.seal("actions", {"actions": encode_array(actions), "req": req})
            if reply is None or len(reply) > MAX_MESSAGE_BYTES:  # the second is not expected: the overhead is bounded
                per_obs = max(1, actions.size // (obs.shape[0] if obs.ndim == 2 else 1))
                hint = (f"send at most {MAX_VALUES // per_obs} observations per request to this policy" if obs.ndim == 2
                        and per_obs <= MAX_VALUES else "the actions for one observation alone do not fit")
                raise ValueError(f"the actions of shape {actions.shape} are {actions.size} values, {4 * actions.size} bytes of "
                                 f"float32; a reply holds at most {MAX_VALUES} values (a frame is at most {MAX_MESSAGE_BYTES} "
                                 f"bytes); {hint}.")
        except Exception as e:  # noqa: BLE001 - nothing a request does may stop the server
            self.errors += 1
            log.warning("policy server: request %d of session %s failed: %s: %s", req, sid.hex()[:8], type(e).__name__, e)
            return session.tx.seal("error", {"reason": f"{type(e).__name__}: {e}", "req": req})
        self.served += 1
        return reply

    def _handshake(self, header: bytes, tag: bytes, body: bytes) -> bytes:
        msg = _open_body(self.hello_rx, header, tag, body, {"t_ns": int, "nonce": bytes})
        nonce, now = msg["nonce"], self.clock_ns()
        if len(nonce) != NONCE_BYTES:
            raise TransportError(f"a hello nonce has {NONCE_BYTES} bytes, got {len(nonce)}.")
        _check_fresh(msg["t_ns"], now, self.max_skew_s, "hello")
        # a nonce accepted at server time T guards against hellos stamped within T +- skew, which pass the
        # freshness check while |now - T| <= 2 skew: it is kept that long, and never dropped earlier
        keep = int(2 * self.max_skew_s * 1e9)
        while self._seen_nonces and abs(now - next(iter(self._seen_nonces.values()))) > keep:
            self._seen_nonces.popitem(last=False)
        if nonce in self._seen_nonces:
            raise TransportError("replayed hello (its nonce was used before).", "replayed_hello")
        if len(self._seen_nonces) >= self.max_hellos:  # after a clock step the order may not be by age: sweep all
            for old in [n for n, t in self._seen_nonces.items() if abs(now - t) > keep]:
                del self._seen_nonces[old]
            if len(self._seen_nonces) >= self.max_hellos:
                raise TransportError(f"too many handshakes in the last {2 * self.max_skew_s:g} s (at most {self.max_hellos}, "
                                     "each hello's nonce is kept that long to detect replays); try again later.", "busy")
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

    def _reject(self, tag: bytes, sid: bytes, e: Exception) -> bytes:
        reason = getattr(e, "reason", "internal")
        self._count_rejection(reason, e)
        code = reason if reason in ("unknown_session", "busy") else "rejected"
        return seal_frame(self.hello_tx, ERROR, sid if len(sid) == SID_BYTES else _NO_SID,
                          {"t_ns": self.clock_ns(), "code": code, "reason": str(e), "req_tag": bytes(tag)})

    def _count_rejection(self, reason: str, e: Exception | str) -> None:
        """Count a rejected frame; log it if it is the first of its reason, else leave it to the summary."""
        self.rejected += 1
        self.rejected_by[reason] += 1
        if self.rejected == 1:  # the first summary covers the time from here
            self._last_reject_log = self.monotonic()
        if self.rejected_by[reason] == 1:
            log.warning("policy server rejected a message (%s): %s [later rejections are summarised at most every %g s]",
                        reason, e, self.reject_log_every_s)
        else:
            self._unlogged[reason] += 1
            self.log_rejections()

    def log_rejections(self, force: bool = False) -> None:
        """Log one line with the rejections not logged yet (counts per reason), if ``reject_log_every_s``
        passed since the last such line (or ``force``); :meth:`serve` calls it on every turn."""
        if not self._unlogged:
            return
        now = self.monotonic()
        if not force and now - self._last_reject_log < self.reject_log_every_s:
            return
        counts = ", ".join(f"{reason} {n}" for reason, n in sorted(self._unlogged.items()))
        log.warning("policy server rejected %d more messages in the last %.0f s (%s; %d rejected in all)",
                    sum(self._unlogged.values()), now - self._last_reject_log, counts, self.rejected)
        self._unlogged.clear()
        self._last_reject_log = now

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
            self.log_rejections()
            if not self.sock.poll(poll_ms, zmq.POLLIN):
                continue
            parts = self.sock.recv_multipart()
            if len(parts) < 2:  # a ROUTER always prefixes the sender's identity; nothing to answer otherwise
                self._count_rejection("envelope", "a message without a sender's identity")
                continue
            try:
                reply = self.handle(parts[-1])
            except Exception as e:  # noqa: BLE001 - handle() does not raise; a bug there must not stop the server either
                log.exception("policy server: internal error")
                reply = self._reject(b"", _NO_SID, e)
            self.sock.send_multipart([*parts[:-1], reply])  # the envelope (identity, request id, delimiter) goes back first

    def close(self) -> None:
        """Close the socket (and log the rejections not logged yet)."""
        self.log_rejections(force=True)
        self.sock.close(0)


# ---------------------------------------------------------------- client


@dataclasses.dataclass
class _ClientSession:
    sid: bytes
    tx: Codec
    rx: Codec


class PolicyClient:
    """Robot-side client: ``act(obs)`` returns the server's actions or raises :class:`PolicyUnavailable`
    (or ``ValueError``, before sending, for more than :func:`max_batch` observations in one call).

    The first call (and the first after a failure) runs the handshake; call :meth:`handshake` yourself to
    do it before the control loop starts. A call interrupted by any exception (``KeyboardInterrupt``)
    leaves a fresh socket and no session behind, so the next call works. Not thread-safe: one client
    per control loop.

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
        self._closed = False
        self._connect()

    @property
    def session_id(self) -> bytes | None:
        """The current session's id (None before the handshake and after a failure)."""
        return None if self.session is None else self.session.sid

    def _connect(self) -> None:
        """A fresh REQ socket (the old one, and any reply still on its way to it, are dropped)."""
        import zmq

        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
        sock = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        # a send after a lost or abandoned reply is allowed (relaxed), and a late reply to an earlier request
        # is dropped by the socket (correlated by a request id) instead of being taken for the current one
        sock.setsockopt(zmq.REQ_RELAXED, 1)
        sock.setsockopt(zmq.REQ_CORRELATE, 1)
        if "[" in self.endpoint:  # an IPv6 address
            sock.setsockopt(zmq.IPV6, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.connect(self.endpoint)
        self.sock = sock

    def _reset(self) -> None:
        """Forget the session and start a fresh socket (best effort: a failure here leaves no socket, and
        the next call makes one)."""
        import zmq

        self.session = None
        try:
            self._connect()
        except zmq.ZMQError as e:
            log.debug("policy client: could not recreate the socket for %s: %s", self.endpoint, e)

    def _fail(self, message: str) -> PolicyUnavailable:
        """Forget the session (the next call handshakes again) and return the error to raise."""
        self.session = None
        return PolicyUnavailable(message)

    def _round_trip(self, frame: bytes) -> bytes:
        """Send ``frame``, return the reply; :class:`PolicyUnavailable` on a time-out or a socket error.
        Interrupted by anything (``KeyboardInterrupt``, say), it resets the socket and the session first."""
        import zmq

        if self._closed:
            raise self._fail(f"the client of {self.endpoint} is closed; make a new PolicyClient.")
        try:
            if self.sock is None:
                self._connect()
            self.sock.send(frame)
            if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
                self._reset()  # drop whatever is still on its way to the old socket
                raise PolicyUnavailable(f"no reply from {self.endpoint} within {self.timeout_ms} ms.")
            return self.sock.recv()
        except PolicyUnavailable:
            raise
        except zmq.ZMQError as e:
            self._reset()
            raise PolicyUnavailable(f"socket error talking to {self.endpoint}: {e} (errno {e.errno}); the next call "
                                    "starts a new socket and session.") from None
        except BaseException:
            self._reset()
            raise

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
        ``(B, act_dim)``); raises :class:`PolicyUnavailable` when there is no valid answer, and
        ``ValueError`` (before sending anything) for a batch too large for one frame: at most
        ``max_batch(obs_dim)`` observations per request."""
        x = np.asarray(obs, dtype=np.float32)
        if x.size > MAX_VALUES:
            raise self._too_large(x, 4 * x.size + HEADER_BYTES + TAG_BYTES + DATA_OVERHEAD_BYTES, "about ")
        if self.session is None:
            self.handshake()
        s = self.session
        request = s.tx.seal("act", {"obs": encode_array(x)})
        if len(request) > MAX_MESSAGE_BYTES:  # not expected below MAX_VALUES values: the overhead is bounded
            raise self._too_large(x, len(request))
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
            return decode_array(payload.get("actions"), "actions")
        except ValueError as e:
            raise self._fail(f"malformed reply from {self.endpoint}: {e}") from None

    @staticmethod
    def _too_large(x: np.ndarray, size: int, about: str = "") -> ValueError:
        width = int(x.shape[-1]) if x.ndim and x.shape[-1] else 1
        return ValueError(f"observations of shape {x.shape} make a request of {about}{size} bytes, above the {MAX_MESSAGE_BYTES}-byte "
                          f"frame limit (nothing was sent); split the batch: at most {max_batch(width)} observations of width "
                          f"{width} per request (rlsuite.robots.transport.max_batch).")

    def close(self) -> None:
        """Close the socket; later calls raise :class:`PolicyUnavailable`."""
        self._closed = True
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
