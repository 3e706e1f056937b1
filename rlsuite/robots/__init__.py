"""Deployment to robots: policy contract, observation builder, safety filters, control loop, exporters.

Never imports training code (``rlsuite.agents``); a test enforces it.
"""
