"""Exact assignment / optimal transport in C++ and a minibatch-OT pairing precomputer."""

import importlib.metadata

from ._assignment import batch_linear_sum_assignment as batch_linear_sum_assignment
from ._assignment import linear_sum_assignment as linear_sum_assignment
from ._emd import EMDInputError as EMDInputError
from ._emd import emd as emd
from ._emd import emd2 as emd2
from ._pairings import Pairings as Pairings
from ._pairings import precompute_pairings as precompute_pairings

__version__ = importlib.metadata.version("dp-ot")
