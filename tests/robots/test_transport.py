"""Transport: sessions (handshake, per-direction keys, sequence numbers), several clients, restarts of
either side, replayed / reflected / stale / forged / malformed messages, key files, a server that never dies."""

import contextlib
import hmac
import logging
import os
import stat
import struct
import threading
import time
from hashlib import sha256

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsuite.robots.interface import FakeRobot
from rlsuite.robots.loop import ControlLoop
from rlsuite.robots.safety import Phase
from rlsuite.robots.transport import (
    DATA,
    HELLO,
    MAX_BATCH,
    MAX_MESSAGE_BYTES,
    MAX_VALUES,
    VERSION,
    WELCOME,
    Codec,
    PolicyClient,
    PolicyServer,
    PolicyUnavailable,
    TransportError,
    decode_array,
    encode_array,
    frame_type,
    hello_keys,
    hkdf,
    hkdf_expand,
    hkdf_extract,
    load_key,
    max_batch,
    parse_observation,
    seal_frame,
    session_keys,
    write_key_file,
)
from tests.robots.test_contract_safety_loop import contract

pytest.importorskip("zmq")

KEY = b"k" * 32
SID = bytes(range(16))


def double(obs):
    return 2 * obs


@contextlib.contextmanager
def serving(policy=double, bind="tcp://127.0.0.1:*", **kw):
    """A server answering in a thread until the block ends."""
    server = None
    for _ in range(50):  # rebinding the port of a server closed a moment ago may need a few tries
        try:
            server = PolicyServer(policy, KEY, bind=bind, **kw)
            break
        except Exception as e:  # zmq.ZMQError: address in use
            if "in use" not in str(e):
                raise
            time.sleep(0.05)
    assert server is not None, f"could not bind {bind}"
    stop = threading.Event()
    t = threading.Thread(target=server.serve, kwargs={"stop": stop.is_set, "poll_ms": 10, "log_every_s": None}, daemon=True)
    t.start()
    try:
        yield server
    finally:
        stop.set()
        t.join(5)
        server.close()


def tap(server):
    """Record every frame the server receives and every reply it sends: ``[(frame, reply), ...]``."""
    seen, handle = [], server.handle

    def recording(frame):
        reply = handle(frame)
        seen.append((frame, reply))
        return reply

    server.handle = recording
    return seen


def raw_request(endpoint, frame, timeout_ms=2000):
    """Send one frame as an attacker would (a plain REQ socket) and return the reply."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(frame)
        assert sock.poll(timeout_ms, zmq.POLLIN), "the server did not answer"
        return sock.recv()
    finally:
        sock.close(0)


# ---------------------------------------------------------------- keys


def test_hkdf_matches_rfc5869_test_case_1():
    ikm, salt, info = bytes([0x0B]) * 22, bytes(range(0x0D)), bytes(range(0xF0, 0xFA))
    prk = hkdf_extract(salt, ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    assert hkdf_expand(prk, info, 42).hex() == okm
    assert hkdf(ikm, salt, info, 42).hex() == okm


def test_session_keys_differ_per_direction_session_and_nonce():
    nc, ns = b"c" * 32, b"s" * 32
    cs, sc = session_keys(KEY, nc, ns, SID)
    assert cs != sc and len(cs) == len(sc) == 32
    assert session_keys(KEY, nc, ns, SID) == (cs, sc)  # both sides derive the same keys
    assert session_keys(KEY, nc, b"t" * 32, SID)[0] != cs
    assert session_keys(KEY, b"d" * 32, ns, SID)[0] != cs
    assert session_keys(KEY, nc, ns, bytes(16))[0] != cs
    assert session_keys(b"j" * 32, nc, ns, SID)[0] != cs


def _write_key(path, mode):
    path.write_text("0123456789abcdef0123\n")
    os.chmod(path, mode)
    return path


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_key_files_readable_by_others_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"mode 0644.*chmod 600 .*key"):
        load_key(_write_key(tmp_path / "key", 0o644))
    with pytest.raises(ValueError, match="mode 0620"):
        load_key(_write_key(tmp_path / "key", 0o620))
    assert load_key(_write_key(tmp_path / "key", 0o600)) == b"0123456789abcdef0123"
    assert load_key(_write_key(tmp_path / "key", 0o400)) == b"0123456789abcdef0123"
    with pytest.raises(FileNotFoundError, match=r"not found; make one \(mode 0600\) with: .*write_key_file\('.*missing'\)"):
        load_key(tmp_path / "missing")


def test_keys_come_from_the_environment_and_are_long_enough(monkeypatch):
    monkeypatch.delenv("RLSUITE_POLICY_KEY", raising=False)
    with pytest.raises(ValueError, match="never on the command line"):
        load_key()
    monkeypatch.setenv("RLSUITE_POLICY_KEY", "short")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        load_key()
    monkeypatch.setenv("RLSUITE_POLICY_KEY", "x" * 20)
    assert load_key() == b"x" * 20


# ---------------------------------------------------------------- frames


def test_data_frames_round_trip_and_a_replay_is_rejected():
    tx, rx = Codec(KEY, SID), Codec(KEY, SID)
    m1, m2 = tx.seal("act", {"obs": [1.0, 2.0]}), tx.seal("act", {"obs": [3.0]})
    assert frame_type(m1) == "data"
    assert rx.open(m1) == ("act", {"obs": [1.0, 2.0]}) and rx.last_seen == 1
    assert rx.open(m2)[1] == {"obs": [3.0]}
    with pytest.raises(TransportError, match="replayed"):
        rx.open(m1)
    assert rx.rejected == 1
    with pytest.raises(TransportError, match="another session"):
        Codec(KEY, bytes(16)).open(Codec(KEY, SID).seal("act", {}))


def test_forged_and_tampered_frames_are_rejected():
    rx = Codec(KEY, SID)
    with pytest.raises(TransportError, match="authentication"):
        rx.open(Codec(b"x" * 32, SID).seal("act", {"obs": [0.0]}))
    for i in (1, 5, 20, -1):  # the type byte, the session id, the tag, the body: all authenticated
        bad = bytearray(Codec(KEY, SID).seal("act", {"obs": [0.0]}))
        bad[i] ^= 0x01
        with pytest.raises(TransportError, match="authentication|frame type|another session|expected a data"):
            rx.open(bytes(bad))
    assert rx.rejected == 5


def test_authentic_but_malformed_frames_are_rejected():
    rx = Codec(KEY, SID)

    def sign(body: bytes) -> bytes:
        header = bytes([VERSION]) + DATA + SID
        return header + hmac.new(KEY, header + body, sha256).digest() + body

    with pytest.raises(TransportError, match="expected fields"):
        rx.open(sign(msgpack.packb([1, 2, 3])))
    with pytest.raises(TransportError, match="expected fields"):
        rx.open(sign(msgpack.packb({"seq": True, "t_ns": 0, "kind": "act", "payload": {}})))
    with pytest.raises(TransportError, match="extension type"):
        rx.open(sign(msgpack.packb({"seq": 5, "t_ns": 0, "kind": "act", "payload": {"x": msgpack.ExtType(1, b"evil")}})))
    with pytest.raises(TransportError, match="undecodable"):
        rx.open(sign(b"\xc1\xc1\xc1"))
    with pytest.raises(TransportError, match="size"):
        rx.open(b"short")
    with pytest.raises(TransportError, match="version"):
        rx.open(bytes([VERSION - 1]) + sign(b"\x80")[1:])


def test_random_bytes_never_get_through_and_never_stop_the_server():
    server = PolicyServer(double, KEY, bind="tcp://127.0.0.1:*")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.sampled_from([b""] + [bytes([VERSION]) + t + bytes(16) for t in (b"H", b"D", b"W", b"E")]))
    def check(tail, head):
        with pytest.raises(TransportError):
            Codec(KEY, bytes(16)).open(head + tail)
        rejected = server.rejected
        assert frame_type(server.handle(head + tail)) == "error"
        assert server.rejected == rejected + 1 and server.served == 0 and server.handshakes == 0

    try:
        check()
    finally:
        server.close()


def wire(x):
    return encode_array(np.asarray(x, np.float32))


def test_arrays_travel_as_float32_little_endian_bytes():
    a = wire([[1.5, -2.0, 3.0], [0.0, float("inf"), -0.25]])
    assert a == {"dtype": "<f4", "shape": [2, 3], "data": struct.pack("<6f", 1.5, -2.0, 3.0, 0.0, float("inf"), -0.25)}
    back = decode_array(a)
    assert back.dtype == np.float32 and back.shape == (2, 3) and back.flags.writeable  # a copy the policy may modify
    np.testing.assert_array_equal(back, [[1.5, -2.0, 3.0], [0.0, np.inf, -0.25]])
    assert decode_array(wire(7.0)).shape == () and decode_array(wire(np.zeros((2, 0)))).shape == (2, 0)
    transposed = np.arange(6, dtype=np.float64).reshape(2, 3).T  # not C-contiguous, not float32
    np.testing.assert_array_equal(decode_array(wire(transposed)), transposed)
    # 4 bytes a value: a (4096, 48) batch is 786,432 bytes of data, where msgpack floats took 9 bytes a value
    assert len(msgpack.packb(wire(np.zeros((4096, 48))))) < 4096 * 48 * 4 + 64 < 4096 * 48 * 9


def test_parse_observation_accepts_one_or_a_batch_and_refuses_the_rest():
    assert parse_observation(wire([1.0, 2.0]), 2).shape == (2,)
    assert parse_observation(wire([[1.0, 2.0]] * 3), 2).shape == (3, 2)
    assert np.isnan(parse_observation(wire([float("nan"), 1.0]), 2)[0])  # values are not judged: the robot's NaN guard is
    good = wire([1.0, 2.0])
    for bad, why in ((wire([1.0, 2.0, 3.0]), "takes \\(2,\\)"), (wire([[[1.0, 2.0]]]), "at most 2 integers"),
                     (wire(np.zeros(0)), "allowed: \\(obs_dim,\\)"), (wire(np.zeros((0, 2))), "B >= 1"),
                     ([1.0, 2.0], "must be a map with exactly dtype, shape and data"), (None, "must be a map"),
                     ({**good, "extra": 1}, "exactly dtype, shape and data .*, got \\['data', 'dtype', 'extra', 'shape'\\]"),
                     ({**good, "dtype": "<f8"}, "dtype '<f8'; allowed: '<f4'"), ({**good, "dtype": ">f4"}, "dtype '>f4'"),
                     ({**good, "shape": [3]}, "of shape \\(3,\\) needs 12 bytes of float32, got 8"),
                     ({**good, "shape": [2.0]}, "has shape"), ({**good, "shape": [True, 2]}, "has shape"),
                     ({**good, "shape": [-2]}, "has shape"), ({**good, "shape": [0, 2**62], "data": b""}, "has shape"),
                     ({**good, "shape": 2}, "has shape"), ({**good, "data": "ab"}, "data must be bytes")):
        with pytest.raises(ValueError, match=why):
            parse_observation(bad, 2)


def test_max_batch_is_what_one_frame_holds():
    assert max_batch(48) == 5459 >= 4096 and MAX_BATCH == max_batch(1) == MAX_VALUES
    rx = Codec(KEY, SID)
    rx.seq = 2**64 - 10  # the widest msgpack integers: the overhead's worst case
    for width in (1, 7, 48, 1000):
        rows = max_batch(width)
        request = rx.seal("act", {"obs": wire(np.zeros((rows, width)))})
        reply = rx.seal("actions", {"actions": wire(np.zeros((rows, width))), "req": 2**64 - 1})
        assert len(request) <= MAX_MESSAGE_BYTES and len(reply) <= MAX_MESSAGE_BYTES
        assert 4 * (rows + 1) * width + 50 > MAX_MESSAGE_BYTES - 256  # one more row would use the reserve


# ---------------------------------------------------------------- over the wire


def test_server_binds_to_loopback_only_unless_allowed():
    with pytest.raises(ValueError, match="refusing to listen"):
        PolicyServer(double, KEY, bind="tcp://0.0.0.0:0")
    server = PolicyServer(double, KEY, bind="tcp://127.0.0.1:*")
    assert server.endpoint.startswith("tcp://127.0.0.1:")
    server.close()


def test_round_trip_and_a_wrong_key_client_is_refused():
    with serving() as server:
        client = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
        np.testing.assert_allclose(client.act(np.array([1.0, -2.0])), [2.0, -4.0])
        np.testing.assert_allclose(client.act(np.ones((2, 3))), 2 * np.ones((2, 3)))
        assert client.handshakes == 1 and server.handshakes == 1 and len(server.sessions) == 1
        intruder = PolicyClient(server.endpoint, b"z" * 32, timeout_s=2.0)
        with pytest.raises(PolicyUnavailable, match="rejected"):
            intruder.act(np.zeros(2))  # its hello fails the server's check; the error reply fails the intruder's
        assert server.rejected == 1 and server.handshakes == 1
        np.testing.assert_allclose(client.act(np.array([0.5])), [1.0])
        assert server.served == 3 and server.errors == 0
        client.close(), intruder.close()


def test_two_clients_interleaving_requests_each_get_their_own_answers():
    with serving() as server:
        clients = [PolicyClient(server.endpoint, KEY, timeout_s=5.0) for _ in range(2)]
        failures = []

        def work(i):
            rng = np.random.default_rng(i)
            for _ in range(40):
                obs = rng.standard_normal(3).astype(np.float32) + 10 * i
                got = clients[i].act(obs)
                if not np.allclose(got, 2 * obs):
                    failures.append((i, obs, got))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # and strictly alternating, from one thread
        for k in range(5):
            for i, c in enumerate(clients):
                np.testing.assert_allclose(c.act(np.array([k, i], np.float32)), [2 * k, 2 * i])
        assert not failures
        assert server.served == 90 and server.handshakes == 2 and len(server.sessions) == 2
        assert clients[0].session_id != clients[1].session_id
        for c in clients:
            c.close()


def test_a_long_lived_client_recovers_from_a_server_restart():
    with serving() as first:
        endpoint = first.endpoint
        client = PolicyClient(endpoint, KEY, timeout_s=2.0)
        np.testing.assert_allclose(client.act(np.array([1.0])), [2.0])
        old_sid = client.session_id
    with serving(lambda o: 3 * o, bind=endpoint) as second:  # same address, new process state, no sessions
        with pytest.raises(PolicyUnavailable, match="unknown session"):
            client.act(np.array([1.0]))
        assert client.session_id is None and second.rejected == 1
        np.testing.assert_allclose(client.act(np.array([1.0])), [3.0])  # the next call handshakes again
        assert client.session_id not in (None, old_sid) and client.handshakes == 2 and second.served == 1
    client.close()


def test_a_restarted_client_works_at_once():
    with serving() as server:
        before = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
        before.act(np.array([1.0]))
        before.close()  # the robot process dies; its session stays on the server until dropped
        after = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
        np.testing.assert_allclose(after.act(np.array([4.0])), [8.0])
        assert server.handshakes == 2 and server.rejected == 0
        after.close()


def test_replays_within_and_across_sessions_and_reflections_are_rejected(caplog):
    caplog.set_level(logging.WARNING, logger="rlsuite.robots")
    with serving(max_sessions=2) as server:
        seen = tap(server)
        client = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
        client.act(np.array([1.0]))
        (hello, welcome), (request, reply) = seen
        assert [frame_type(f) for f in (hello, welcome, request, reply)] == ["hello", "welcome", "data", "data"]

        # a replayed request in the same session: the sequence number
        assert frame_type(raw_request(server.endpoint, request)) == "error"
        assert "replayed or reordered message (seq 1 <= 1)" in caplog.text
        # a reply reflected back as a request: the direction keys differ
        assert frame_type(raw_request(server.endpoint, reply)) == "error"
        assert "bad message authentication code" in caplog.text
        # a replayed hello: the server saw its nonce
        assert frame_type(raw_request(server.endpoint, hello)) == "error"
        assert "replayed hello" in caplog.text
        assert server.rejected == 3 and server.served == 1 and server.handshakes == 1

        # the client starts over: a request of the earlier session, still kept, fails its sequence check ...
        client.handshake()
        client.act(np.array([1.0]))
        assert frame_type(raw_request(server.endpoint, request)) == "error" and server.rejected == 4
        # ... and once that session is dropped (two newer ones), the server does not know it at all
        PolicyClient(server.endpoint, KEY, timeout_s=2.0).act(np.array([1.0]))
        assert len(server.sessions) == 2
        caplog.clear()
        assert frame_type(raw_request(server.endpoint, request)) == "error" and server.rejected == 5
        assert "unknown session" in caplog.text
        assert server.served == 3
        assert server.rejected_by == {"replayed_data": 2, "tag": 1, "replayed_hello": 1, "unknown_session": 1}
        client.close()


@contextlib.contextmanager
def reflecting(transform):
    """A fake server that answers every frame with ``transform(frame)``."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    stop = threading.Event()

    def run():
        while not stop.is_set():
            if sock.poll(10, zmq.POLLIN):
                parts = sock.recv_multipart()
                sock.send_multipart([*parts[:-1], transform(parts[-1])])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield sock.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        stop.set()
        t.join(5)
        sock.close(0)


def answering_with(frame):
    """A fake server that answers every request with ``frame``."""
    return reflecting(lambda _request: frame)


def test_the_client_rejects_replayed_welcomes_errors_and_replies():
    with serving() as server:
        seen = tap(server)
        client = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
        client.act(np.array([1.0]))
        client.act(np.array([2.0]))
        welcome, reply = seen[0][1], seen[1][1]
        error = raw_request(server.endpoint, seen[1][0])  # an authentic E reply (to a replayed request)
        assert [frame_type(f) for f in (welcome, reply, error)] == ["welcome", "data", "error"]
    with answering_with(welcome) as endpoint:
        replayed = PolicyClient(endpoint, KEY, timeout_s=2.0)
        with pytest.raises(PolicyUnavailable, match="welcome to another hello"):
            replayed.handshake()
        assert replayed.session_id is None
    with answering_with(error) as endpoint:
        with pytest.raises(PolicyUnavailable, match="error reply to another request"):
            PolicyClient(endpoint, KEY, timeout_s=2.0).handshake()
    # the client's own session, pointed at a relay that answers with an old reply of that session
    with answering_with(reply) as endpoint:
        client.endpoint = endpoint
        client._connect()
        with pytest.raises(PolicyUnavailable, match=r"replayed or reordered message \(seq 1 <= 2\)"):
            client.act(np.array([3.0]))
        assert client.session_id is None
    client.close()


def test_a_request_of_an_earlier_server_is_rejected_by_the_next_one():
    with serving() as first:
        seen = tap(first)
        endpoint = first.endpoint
        client = PolicyClient(endpoint, KEY, timeout_s=2.0)
        client.act(np.array([1.0]))
        request = seen[1][0]
    with serving(bind=endpoint) as second:
        assert frame_type(raw_request(endpoint, request)) == "error"
        assert second.rejected == 1 and second.served == 0
    client.close()


def test_stale_handshakes_are_rejected_on_both_sides():
    with serving() as server:
        late = PolicyClient(server.endpoint, KEY, timeout_s=2.0, clock_ns=lambda: time.time_ns() - 10_000_000_000)
        with pytest.raises(PolicyUnavailable, match=r"stale hello: its timestamp is 10\.0 s behind this machine.s clock \(allowed: 5 s"):
            late.act(np.array([1.0]))
        assert server.rejected == 1 and server.handshakes == 0
        # 4 s ahead: inside the server's window (5 s), outside this client's own (3 s), which refuses the welcome
        strict = PolicyClient(server.endpoint, KEY, timeout_s=2.0, max_skew_s=3.0, clock_ns=lambda: time.time_ns() + 4_000_000_000)
        with pytest.raises(PolicyUnavailable, match=r"stale welcome: its timestamp is 4\.0 s behind"):
            strict.act(np.array([1.0]))
        assert server.handshakes == 1 and strict.session_id is None
        late.close(), strict.close()


def test_sessions_are_bounded_and_a_dropped_client_handshakes_again():
    with serving(max_sessions=2) as server:
        clients = [PolicyClient(server.endpoint, KEY, timeout_s=2.0) for _ in range(3)]
        for c in clients:
            c.act(np.array([1.0]))
        assert len(server.sessions) == 2 and server.handshakes == 3
        with pytest.raises(PolicyUnavailable, match="unknown session"):
            clients[0].act(np.array([1.0]))  # the least recently used session was dropped
        np.testing.assert_allclose(clients[0].act(np.array([2.0])), [4.0])
        assert len(server.sessions) == 2
        for c in clients:
            c.close()


def test_the_server_survives_malformed_observations_and_a_raising_policy():
    def policy(obs):
        if obs.reshape(-1)[0] > 100:
            raise RuntimeError("policy blew up")
        return 2 * obs

    with serving(policy, obs_dim=2) as server:
        client = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
        with pytest.raises(PolicyUnavailable, match=r"could not act.*shape \(3,\); this policy takes \(2,\)"):
            client.act(np.zeros(3))
        with pytest.raises(PolicyUnavailable, match="RuntimeError: policy blew up"):
            client.act(np.array([101.0, 0.0]))
        sid = client.session_id
        np.testing.assert_allclose(client.act(np.array([1.0, 2.0])), [2.0, 4.0])
        assert client.session_id == sid  # an authenticated error reply keeps the session
        # a non-numeric observation, sealed in the client's own session (the client API cannot send one)
        bad = client.session.tx.seal("act", {"obs": ["a", "b"]})
        reply = raw_request(server.endpoint, bad)
        assert frame_type(reply) == "data" and client.session.rx.open(reply)[0] == "error"
        assert server.errors == 3 and server.served == 1 and server.rejected == 0
        np.testing.assert_allclose(client.act(np.array([[1.0, 1.0], [0.0, 3.0]])), [[2.0, 2.0], [0.0, 6.0]])
        client.close()


def test_robot_damps_when_the_policy_server_goes_silent():
    with serving(lambda o: np.zeros(3, np.float32)) as server:
        client = PolicyClient(server.endpoint, KEY, timeout_s=0.3)
        robot = FakeRobot(3)
        robot.connect()
        loop = ControlLoop(robot, client.act, contract())
        loop.fsm.ramp_s = 0.0
        loop.fsm.to(Phase.RAMP, 0, robot.read_state(0.1))
        loop.tick()
        loop.fsm.to(Phase.POLICY)
        for _ in range(3):
            loop.tick()
        assert not loop.safety.latched
    loop.tick()  # the server stopped answering
    assert loop.safety.latched and loop.fsm.phase == Phase.DAMPING and robot.last_sent.mode.value == "damping"
    assert any(e.filter == "policy" for e in loop.safety.events)
    client.close()


def test_seal_frame_bodies_are_plain_msgpack():
    frame = seal_frame(KEY, DATA, SID, {"seq": 1, "t_ns": 0, "kind": "act", "payload": {"obs": wire([1.0])}})
    assert frame[:2] == b"\x03D" and frame[2:18] == SID and VERSION == 3
    assert msgpack.unpackb(frame[50:]) == {"seq": 1, "t_ns": 0, "kind": "act",
                                           "payload": {"obs": {"dtype": "<f4", "shape": [1], "data": b"\x00\x00\x80\x3f"}}}


# ---------------------------------------------------------------- key files


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_write_key_file_creates_a_private_file_once(tmp_path):
    path = tmp_path / "policy.key"
    old_umask = os.umask(0)  # even with a permissive umask the file is created 0600, never wider
    try:
        key = write_key_file(path)
    finally:
        os.umask(old_umask)
    assert len(key) == 64 and bytes.fromhex(key.decode()) and path.read_bytes() == key + b"\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and load_key(path) == key
    with pytest.raises(FileExistsError, match="already exists; refusing to replace a key .*overwrite=True"):
        write_key_file(path)
    assert load_key(path) == key  # untouched
    assert write_key_file(path, b"another-key-of-24-bytes!", overwrite=True) == b"another-key-of-24-bytes!"
    assert load_key(path) == b"another-key-of-24-bytes!" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.key"]  # the temporary file was renamed over it
    assert write_key_file(tmp_path / "b.key") != write_key_file(tmp_path / "c.key")
    for bad, err, why in ((b"short", ValueError, "at least 16 bytes, got 5"), (b" padded-key-of-20-b ", ValueError, "whitespace"),
                          ("a-str-key-of-20-bytes", TypeError, "must be bytes")):
        with pytest.raises(err, match=why):
            write_key_file(tmp_path / "d.key", bad)
    assert not (tmp_path / "d.key").exists()


# ---------------------------------------------------------------- an interrupted client


def test_a_call_interrupted_between_send_and_receive_leaves_the_client_usable(monkeypatch):
    import zmq

    with serving() as server:
        client = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
        np.testing.assert_allclose(client.act(np.array([1.0])), [2.0])
        interrupted = client.sock

        def ctrl_c(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(client.sock, "poll", ctrl_c)  # the request is sent, then Ctrl-C while waiting for the reply
        with pytest.raises(KeyboardInterrupt):
            client.act(np.array([2.0]))
        assert client.sock is not interrupted and interrupted.closed and client.session_id is None
        np.testing.assert_allclose(client.act(np.array([3.0])), [6.0])  # a new socket, a new session
        np.testing.assert_allclose(client.act(np.array([4.0])), [8.0])
        assert client.handshakes == 2

        # a REQ socket left mid-cycle (a send without its receive) still takes the next request, and the
        # late reply to the abandoned one is not taken for it
        client.sock.send(b"abandoned")
        np.testing.assert_allclose(client.act(np.array([5.0])), [10.0])
        assert client.handshakes == 2 and server.rejected_by["size"] == 1

        # a socket error is a PolicyUnavailable, and the next call works
        def broken(*args, **kwargs):
            raise zmq.ZMQError(zmq.EFSM)

        monkeypatch.setattr(client.sock, "send", broken)
        with pytest.raises(PolicyUnavailable, match="socket error talking to tcp://127.0.0.1:.*Operation cannot be accomplished"):
            client.act(np.array([6.0]))
        assert client.session_id is None
        np.testing.assert_allclose(client.act(np.array([7.0])), [14.0])
        client.close()
        with pytest.raises(PolicyUnavailable, match="is closed"):
            client.act(np.array([1.0]))


# ---------------------------------------------------------------- large batches


def test_a_batch_too_large_for_one_frame_is_refused_before_sending():
    with serving() as server:
        client = PolicyClient(server.endpoint, KEY, timeout_s=5.0)
        batch = np.random.default_rng(0).standard_normal((4096, 48)).astype(np.float32)
        np.testing.assert_array_equal(client.act(batch), 2 * batch)  # 786 KiB each way, exact float32 values
        fits = max_batch(48)
        assert client.act(np.zeros((fits, 48), np.float32)).shape == (fits, 48)
        with pytest.raises(ValueError, match=rf"shape \({fits + 1}, 48\) make a request of about \d+ bytes, above the "
                                             rf"{MAX_MESSAGE_BYTES}-byte frame limit \(nothing was sent\); split the batch: "
                                             rf"at most {fits} observations of width 48"):
            client.act(np.zeros((fits + 1, 48), np.float32))
        assert server.served == 2 and server.rejected == 0 and server.errors == 0
        sid = client.session_id
        np.testing.assert_allclose(client.act(np.ones(48)), 2 * np.ones(48))
        assert client.session_id == sid and client.handshakes == 1
        fresh = PolicyClient(server.endpoint, KEY, timeout_s=5.0)
        with pytest.raises(ValueError, match="frame limit"):
            fresh.act(np.zeros(MAX_VALUES + 1, np.float32))
        assert fresh.handshakes == 0 and server.handshakes == 1  # refused before the handshake too
        client.close(), fresh.close()


def test_a_reply_too_large_for_one_frame_is_an_error_reply():
    def wide(obs):
        return np.zeros((*obs.shape[:-1], 100_000), np.float32)  # 400 kB of actions per observation

    with serving(wide) as server:
        client = PolicyClient(server.endpoint, KEY, timeout_s=5.0)
        assert client.act(np.zeros(3)).shape == (100_000,)
        assert client.act(np.zeros((2, 3))).shape == (2, 100_000)
        with pytest.raises(PolicyUnavailable, match=r"could not act.*actions of shape \(3, 100000\) are 300000 values, 1200000 bytes "
                                                    rf"of float32; a reply holds at most {MAX_VALUES} values \(a frame is at most "
                                                    rf"{MAX_MESSAGE_BYTES} bytes\); send at most 2 observations per request"):
            client.act(np.zeros((3, 3)))
        assert server.errors == 1 and server.served == 2
        assert client.act(np.zeros(3)).shape == (100_000,)  # the session is kept
        assert client.handshakes == 1

    with serving(lambda obs: np.zeros(MAX_VALUES + 1, np.float32)) as server:
        client = PolicyClient(server.endpoint, KEY, timeout_s=5.0)
        with pytest.raises(PolicyUnavailable, match="the actions for one observation alone do not fit"):
            client.act(np.zeros(3))
        assert server.errors == 1
        client.close()


# ---------------------------------------------------------------- floods of rejected frames


def test_a_flood_of_rejected_frames_is_logged_in_a_few_lines_with_counts(caplog):
    import zmq

    caplog.set_level(logging.INFO, logger="rlsuite.robots")
    now = [100.0]
    server = PolicyServer(double, KEY, bind="tcp://127.0.0.1:*", reject_log_every_s=10.0, monotonic=lambda: now[0])
    try:
        assert server.sock.getsockopt(zmq.RCVHWM) == 64 and server.sock.getsockopt(zmq.SNDHWM) == 64
        frames = ([os.urandom(20)] * 400 + [bytes([VERSION - 1]) + bytes(60)] * 300
                  + [Codec(KEY, os.urandom(16)).seal("act", {"obs": wire([1.0])}) for _ in range(300)])
        for frame in frames:
            assert frame_type(server.handle(frame)) == "error"
            now[0] += 0.005  # 1000 frames in 5 s
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 3  # the first of each reason, each with its message
        assert "(size): message of 20 bytes is outside the allowed size" in lines[0]
        assert "(version): protocol version 2, expected 3" in lines[1]
        assert "(unknown_session): unknown session" in lines[2] and "summarised at most every 10 s" in lines[2]
        now[0] = 109.9
        server.log_rejections()  # what serve() calls on every turn: not yet
        assert len(caplog.records) == 3
        now[0] = 110.0
        server.log_rejections()
        assert len(caplog.records) == 4
        assert caplog.records[-1].getMessage() == ("policy server rejected 997 more messages in the last 10 s "
                                                   "(size 399, unknown_session 299, version 299; 1000 rejected in all)")
        server.log_rejections(force=True)  # nothing new: no line
        for _ in range(2000):  # 20 s more of garbage: at most one line per 10 s
            server.handle(b"x" * 60)
            now[0] += 0.01
        assert len(caplog.records) <= 4 + 2  # a summary at most every 10 s
        assert server.rejected == 3000 and server.rejected_by == {"size": 400, "version": 2300, "unknown_session": 300}
    finally:
        server.close()
    summaries = [r.getMessage() for r in caplog.records if "more messages" in r.getMessage()]
    assert sum(int(m.split("rejected ")[1].split()[0]) for m in summaries) == 3000 - 3  # every one counted once


# ---------------------------------------------------------------- the hello record


def test_hellos_are_remembered_for_their_whole_window_and_a_full_record_refuses_new_ones():
    now = [1_700_000_000_000_000_000]
    server = PolicyServer(double, KEY, bind="tcp://127.0.0.1:*", max_hellos=3, clock_ns=lambda: now[0])
    h_cs, h_sc = hello_keys(KEY)

    def hello():
        return seal_frame(h_cs, HELLO, bytes(16), {"t_ns": now[0], "nonce": os.urandom(32)})

    def refusal(reply):
        """The body of an authentic E reply."""
        assert frame_type(reply) == "error"
        assert hmac.compare_digest(reply[18:50], hmac.new(h_sc, reply[:18] + reply[50:], sha256).digest())
        return msgpack.unpackb(reply[50:])

    try:
        first = hello()
        assert [frame_type(server.handle(h)) for h in (first, hello(), hello())] == ["welcome"] * 3
        busy = refusal(server.handle(hello()))  # three handshakes within 2 x 5 s: the record is full
        assert busy["code"] == "busy" and busy["reason"].startswith("too many handshakes in the last 10 s (at most 3")
        assert "replayed hello" in refusal(server.handle(first))["reason"]  # still remembered: no eviction by count
        now[0] += 6 * 10**9
        assert "stale hello" in refusal(server.handle(first))["reason"]
        assert refusal(server.handle(hello()))["code"] == "busy"  # a hello stamped 6 s ago could still pass: kept
        now[0] += 4 * 10**9 + 1  # 10 s and 1 ns after the three were accepted: no hello of theirs can pass any more
        assert frame_type(server.handle(hello())) == "welcome"
        assert "stale hello" in refusal(server.handle(first))["reason"]
        assert server.handshakes == 4 and len(server._seen_nonces) == 1
        assert server.rejected_by == {"busy": 2, "replayed_hello": 1, "stale": 2}
    finally:
        server.close()


def test_the_hello_record_survives_a_clock_step():
    now = [1_700_000_000_000_000_000]
    server = PolicyServer(double, KEY, bind="tcp://127.0.0.1:*", max_hellos=2, clock_ns=lambda: now[0])
    h_cs, _ = hello_keys(KEY)
    try:
        for _ in range(2):
            assert frame_type(server.handle(seal_frame(h_cs, HELLO, bytes(16), {"t_ns": now[0], "nonce": os.urandom(32)}))) == "welcome"
        now[0] -= 3600 * 10**9  # the wall clock steps back an hour: the old nonces guard nothing that can pass now
        assert frame_type(server.handle(seal_frame(h_cs, HELLO, bytes(16), {"t_ns": now[0], "nonce": os.urandom(32)}))) == "welcome"
        assert server.handshakes == 3
    finally:
        server.close()


# ---------------------------------------------------------------- reflections


def test_a_hello_reflected_back_as_a_welcome_is_rejected():
    h_cs, h_sc = hello_keys(KEY)

    def as_is(hello):
        return hello

    def retyped(hello):  # the type byte changed to W: the header is authenticated
        return hello[:1] + WELCOME + hello[2:]

    def welcome_under(key):
        def make(hello):  # a welcome that echoes the client's nonce, tagged under ``key``
            body = msgpack.unpackb(hello[50:])
            return seal_frame(key, WELCOME, os.urandom(16), {"t_ns": body["t_ns"], "nonce": os.urandom(32), "client_nonce": body["nonce"]})
        return make

    for transform, why in ((as_is, "expected an error frame, got a hello frame"), (retyped, "bad message authentication code"),
                           (welcome_under(h_cs), "bad message authentication code")):  # H_cs is not H_sc
        with reflecting(transform) as endpoint:
            client = PolicyClient(endpoint, KEY, timeout_s=2.0)
            with pytest.raises(PolicyUnavailable, match=f"rejected .*{why}"):
                client.handshake()
            assert client.session_id is None and client.handshakes == 0
            client.close()
    with reflecting(welcome_under(h_sc)) as endpoint:  # the control: the same welcome under the right key is taken
        client = PolicyClient(endpoint, KEY, timeout_s=2.0)
        client.handshake()
        assert client.session_id is not None and client.handshakes == 1
        client.close()
