"""Exact assignment / optimal transport in C++ and a minibatch-OT pairing precomputer."""

import importlib.metadata

__version__ = importlib.metadata.version("dp-ot")
