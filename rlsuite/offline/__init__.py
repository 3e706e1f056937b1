"""Offline RL: datasets in the Minari format, behaviour-data collection, off-policy evaluation, scores."""
