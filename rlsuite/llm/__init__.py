"""Policy optimisation for language models (advantages, losses, samplers, rewards, trainer)."""
