"""Continuous normalizing flows trained by conditional flow matching: spatial densities and conditional velocity distributions with their gradients."""

import importlib.metadata

__version__ = importlib.metadata.version("dp-flows")
