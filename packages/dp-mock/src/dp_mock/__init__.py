"""Mock Plummer-sphere catalogues with Gaussian-process dust, extinction and magnitude selection, with their truth."""

import importlib.metadata

__version__ = importlib.metadata.version("dp-mock")
