"""Transport: sessions (handshake, per-direction keys, sequence numbers), several clients, restarts of
either side, replayed / reflected / stale / forged / malformed messages, key files, a server that never dies."""

import contextlib
import hmac
import logging
import os
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
    Codec,
    PolicyClient,
    PolicyServer,
    PolicyUnavailable,
    TransportError,
    frame_type,
    hkdf,
    hkdf_expand,
    hkdf_extract,
    load_key,
    parse_observation,
    seal_frame,
    session_keys,
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
    with pytest.raises(FileNotFoundError, match="chmod 600"):
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
        header = bytes([2]) + DATA + SID
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
        rx.open(bytes([1]) + sign(b"\x80")[1:])


def test_random_bytes_never_get_through_and_never_stop_the_server():
    server = PolicyServer(double, KEY, bind="tcp://127.0.0.1:*")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.sampled_from([b"", b"\x02H" + bytes(16), b"\x02D" + bytes(16), b"\x02W" + bytes(16)]))
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


def test_parse_observation_accepts_one_or_a_batch_and_refuses_the_rest():
    assert parse_observation([1.0, 2.0], 2).shape == (2,)
    assert parse_observation([[1.0, 2.0]] * 3, 2).shape == (3, 2)
    assert np.isnan(parse_observation([float("nan"), 1.0], 2)[0])  # values are not judged: the robot's NaN guard is
    for bad, why in (([1.0, 2.0, 3.0], "takes \\(2,\\)"), ([[[1.0, 2.0]]], "allowed: \\(obs_dim,\\)"), ([], "allowed"),
                     (["a", "b"], "not a rectangular array"), ([[1.0, 2.0], [1.0]], "not a rectangular array"),
                     ({"x": 1}, "must be a list"), (None, "must be a list"), ([{"a": 1}, 2.0], "not a rectangular array")):
        with pytest.raises(ValueError, match=why):
            parse_observation(bad, 2)


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
        client.close()


@contextlib.contextmanager
def answering_with(frame):
    """A fake server (a bare ROUTER socket) that answers every request with ``frame``."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    stop = threading.Event()

    def run():
        while not stop.is_set():
            if sock.poll(10, zmq.POLLIN):
                parts = sock.recv_multipart()
                sock.send_multipart([*parts[:-1], frame])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield sock.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        stop.set()
        t.join(5)
        sock.close(0)


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
    frame = seal_frame(KEY, DATA, SID, {"seq": 1, "t_ns": 0, "kind": "act", "payload": {"obs": [1.0]}})
    assert frame[:2] == b"\x02D" and frame[2:18] == SID
    assert msgpack.unpackb(frame[50:]) == {"seq": 1, "t_ns": 0, "kind": "act", "payload": {"obs": [1.0]}}
