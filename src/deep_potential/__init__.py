"""Conditional Deep Potential: config -> mock -> flows -> gradients -> potential -> report."""

import importlib.metadata

__version__ = importlib.metadata.version("deep-potential")
