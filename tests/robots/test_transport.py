"""Transport: authenticated msgpack over ZeroMQ; forged, replayed and malformed messages are rejected."""

import threading

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsuite.robots.interface import FakeRobot
from rlsuite.robots.loop import ControlLoop
from rlsuite.robots.safety import Phase
from rlsuite.robots.transport import (
    Codec,
    PolicyClient,
    PolicyServer,
    PolicyUnavailable,
    TransportError,
    load_key,
)
from tests.robots.test_contract_safety_loop import contract

KEY = b"k" * 32


def test_seal_and_open_round_trip_and_replay_rejection():
    tx, rx = Codec(KEY), Codec(KEY)
    m1, m2 = tx.seal("act", {"obs": [1.0, 2.0]}), tx.seal("act", {"obs": [3.0]})
    assert rx.open(m1) == ("act", {"obs": [1.0, 2.0]})
    assert rx.open(m2)[1] == {"obs": [3.0]}
    with pytest.raises(TransportError, match="replayed"):
        rx.open(m1)
    assert rx.rejected == 1


def test_forged_and_tampered_messages_are_rejected():
    rx = Codec(KEY)
    forged = Codec(b"x" * 32).seal("act", {"obs": [0.0]})
    with pytest.raises(TransportError, match="authentication"):
        rx.open(forged)
    good = bytearray(Codec(KEY).seal("act", {"obs": [0.0]}))
    good[-1] ^= 0x01
    with pytest.raises(TransportError, match="authentication"):
        rx.open(bytes(good))


def test_authentic_but_malformed_messages_are_rejected():
    import hmac
    from hashlib import sha256

    rx = Codec(KEY)

    def sign(body: bytes) -> bytes:
        return hmac.new(KEY, body, sha256).digest() + body

    with pytest.raises(TransportError, match="expected fields"):
        rx.open(sign(msgpack.packb([1, 2, 3])))
    with pytest.raises(TransportError, match="extension type"):
        rx.open(sign(msgpack.packb({"v": 1, "seq": 5, "kind": "act", "payload": {"x": msgpack.ExtType(1, b"evil")}})))
    with pytest.raises(TransportError, match="undecodable"):
        rx.open(sign(b"\xc1\xc1\xc1"))
    with pytest.raises(TransportError, match="size"):
        rx.open(b"short")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_get_through(frame):
    with pytest.raises(TransportError):
        Codec(KEY).open(frame)


def test_keys_come_from_a_file_or_the_environment(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("0123456789abcdef0123\n")
    assert load_key(tmp_path / "key") == b"0123456789abcdef0123"
    monkeypatch.delenv("RLSUITE_POLICY_KEY", raising=False)
    with pytest.raises(ValueError, match="never on the command line"):
        load_key()
    monkeypatch.setenv("RLSUITE_POLICY_KEY", "short")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        load_key()


def test_server_binds_to_loopback_only_unless_allowed():
    with pytest.raises(ValueError, match="refusing to listen"):
        PolicyServer(lambda o: o, KEY, bind="tcp://0.0.0.0:0")
    server = PolicyServer(lambda o: o, KEY, bind="tcp://127.0.0.1:*")
    assert server.endpoint.startswith("tcp://127.0.0.1:")
    server.close()


def _serve(server, n):
    t = threading.Thread(target=server.serve, kwargs={"max_requests": n}, daemon=True)
    t.start()
    return t


def test_round_trip_over_loopback_and_a_wrong_key_client_is_refused():
    server = PolicyServer(lambda o: 2 * o, KEY, bind="tcp://127.0.0.1:*")
    t = _serve(server, 3)
    client = PolicyClient(server.endpoint, KEY, timeout_s=2.0)
    np.testing.assert_allclose(client.act(np.array([1.0, -2.0])), [2.0, -4.0])
    np.testing.assert_allclose(client.act(np.ones((2, 3))), 2 * np.ones((2, 3)))
    intruder = PolicyClient(server.endpoint, b"z" * 32, timeout_s=2.0)
    with pytest.raises(PolicyUnavailable):
        intruder.act(np.zeros(2))  # the server's error reply fails the intruder's MAC check as well
    assert server.rx.rejected == 1
    np.testing.assert_allclose(client.act(np.array([0.5])), [1.0])
    t.join(5)
    client.close(), intruder.close(), server.close()


def test_robot_damps_when_the_policy_server_goes_silent():
    server = PolicyServer(lambda o: np.zeros(3, np.float32), KEY, bind="tcp://127.0.0.1:*")
    t = _serve(server, 3)
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
    t.join(5)
    server.close()  # the server stops answering
    loop.tick()
    assert loop.safety.latched and loop.fsm.phase == Phase.DAMPING and robot.last_sent.mode.value == "damping"
    assert any(e.filter == "policy" for e in loop.safety.events)
    client.close()
