"""Deployment to robots: policy contract, observation builder, safety filters, control loop.

- :mod:`rlsuite.robots.types`: joint specs, robot state and command (robot joint order).
- :mod:`rlsuite.robots.contract`: the versioned ``PolicyContract`` JSON and the ``ObservationBuilder``.
- :mod:`rlsuite.robots.interface`: the ``Robot`` protocol, ``FakeRobot``, ``check_robot_conformance``.
- :mod:`rlsuite.robots.safety`: the safety chain (latched e-stop) and the operating state machine.
- :mod:`rlsuite.robots.loop`: the control loop on absolute deadlines with timing statistics; every
  failure in a tick latches the safety chain and damps the robot.
- :mod:`rlsuite.robots.realtime`: opt-in real-time mode (SCHED_FIFO, CPU affinity, mlockall, frozen GC)
  with a report of what the OS granted.
- :mod:`rlsuite.robots.faults`: fault injection (sensors, policy, network) and the command limit check.
- :mod:`rlsuite.robots.export`: ONNX and TorchScript exporters with a parity check (also for
  stable-baselines3 models).
- :mod:`rlsuite.robots.transport`: policy server and client over ZeroMQ: authenticated sessions (nonce
  handshake, per-session per-direction HKDF keys), msgpack bodies with float32 arrays (protocol 3).
- :mod:`rlsuite.robots.isaacgym_adapter`: Isaac Gym ``VecTask`` / legged_gym tasks as batched envs.
- :mod:`rlsuite.robots.mujoco_robot`: ``MuJoCoRobot`` and ``SimTask``, a MuJoCo model behind the ``Robot`` protocol.
- :mod:`rlsuite.robots.sim`: the simulated tasks (Gymnasium models) and sim-to-sim runs.
- :mod:`rlsuite.robots.quadruped`: a 12-joint quadruped and its balance task.

Never imports training code (``rlsuite.agents``); a test enforces it.
"""
