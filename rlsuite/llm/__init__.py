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
