"""Policy optimisation for language models: pure, tested functions (the trainer follows).

- :mod:`rlsuite.llm.advantages`: GRPO, Dr.GRPO, RLOO, ReMax, NGRPO (registry ``ADVANTAGES``).
- :mod:`rlsuite.llm.policy_losses`: REINFORCE, PPO clip (GRPO/DAPO), SAPO, GSPO, CISPO, P3O (``POLICY_LOSSES``).
- :mod:`rlsuite.llm.preference_losses`: DPO, IPO, RPO, XPO, VPO, RSO, CoPG (``PREFERENCE_LOSSES``).
- :mod:`rlsuite.llm.rewards`: SPO self-play win-rate rewards.
- :mod:`rlsuite.llm.samplers`: D3S sample and token down-sampling.
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

    out: dict[str, str] = {}
    for reg in (ADVANTAGES, POLICY_LOSSES, PREFERENCE_LOSSES):
        for key in reg.names():
            if key in out:
                raise RuntimeError(f"llm method key {key!r} is registered as both {out[key]} and {reg.kind}.")
            out[key] = reg.kind
    return out
