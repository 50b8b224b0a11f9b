"""Collisionless-Boltzmann potential solvers (vanilla, selection-function, conditional) for Deep Potential."""

import importlib.metadata

__version__ = importlib.metadata.version("dp-cbe")
