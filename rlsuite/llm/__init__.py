"""Policy optimisation for language models: pure, tested functions and one small trainer.

- :mod:`rlsuite.llm.advantages`: GRPO, Dr.GRPO, RLOO, ReMax, NGRPO, IGPO turn advantages, token GAE for
  RTO (registry ``ADVANTAGES``).
- :mod:`rlsuite.llm.policy_losses`: REINFORCE, PPO clip (GRPO/DAPO/NGRPO), SAPO, GSPO, CISPO, P3O, BAPO,
  DRPO, GRAO (``POLICY_LOSSES``).
- :mod:`rlsuite.llm.preference_losses`: DPO, IPO, RPO, XPO, VPO, RSO, CoPG, TRPA (``PREFERENCE_LOSSES``).
- :mod:`rlsuite.llm.rewards`: SPO win-rate, OTC tool efficiency, IGPO information gain, RTO token rewards
  (``REWARDS``).
- :mod:`rlsuite.llm.samplers`: D3S, VADE, selective sample buffer, ExPO, DR-PO dataset reset, CAPO
  curvature masking (``SAMPLERS``).
- :mod:`rlsuite.llm.trainer`: the online and preference trainers on the synthetic tasks.
- :mod:`rlsuite.llm.aggregation`: token/sequence aggregation modes with global denominators.
- :mod:`rlsuite.llm.kl`: k1/k2/k3 KL estimators.

Imports only ``rlsuite.core``.
"""

from __future__ import annotations


def registered_methods() -> dict[str, str]:
    """Every registered key -> the registry it lives in (keys are unique across registries)."""
    from rlsuite.llm.advantages import ADVANTAGES
    from rlsuite.llm.policy_losses import POLICY_LOSSES
    from rlsuite.llm.preference_losses import PREFERENCE_LOSSES
    from rlsuite.llm.rewards import REWARDS
    from rlsuite.llm.samplers import SAMPLERS

    out: dict[str, str] = {}
    for reg in (ADVANTAGES, POLICY_LOSSES, PREFERENCE_LOSSES, REWARDS, SAMPLERS):
        for key in reg.names():
            if key in out:
                raise RuntimeError(f"llm method key {key!r} is registered as both {out[key]} and {reg.kind}.")
            out[key] = reg.kind
    return out
