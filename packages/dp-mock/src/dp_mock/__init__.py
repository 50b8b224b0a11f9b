"""Mock Plummer- and Hernquist-sphere catalogues with Gaussian-process dust, extinction and magnitude selection, with their truth."""

import importlib.metadata

from ._catalog import generate_catalog as generate_catalog
from ._config import MockConfig as MockConfig
from ._config import preset as preset
from ._dust import DustField as DustField
from ._dust import gaussian_random_field as gaussian_random_field
from ._hernquist import HernquistSphere as HernquistSphere
from ._io import load_truth as load_truth
from ._io import read_catalog as read_catalog
from ._io import write_catalog as write_catalog
from ._plot import plot_truth as plot_truth
from ._plummer import PlummerSphere as PlummerSphere
from ._selection import MagnitudeSelection as MagnitudeSelection
from ._selection import distance_modulus as distance_modulus
from ._systems import AbstractSphericalSystem as AbstractSphericalSystem
from ._systems import G as G
from ._truth import Truth as Truth

__version__ = importlib.metadata.version("dp-mock")
