"""Collisionless-Boltzmann potential solvers (vanilla, selection-function, conditional).

Hand dp-cbe gradients of ln f (or ln f_obs, or ln p(v|x)) from any density model and get back
Φ, −∇Φ, ρ = ∇²Φ/4πG and n(x) or S(x). Public units: kpc, km/s, M☉.
"""

import importlib.metadata

from ._adapters import to_gala as to_gala
from ._adapters import to_galpy as to_galpy
from ._config import FitConfig as FitConfig
from ._derived import circular_velocity as circular_velocity
from ._derived import enclosed_mass as enclosed_mass
from ._derived import surface_density as surface_density
from ._derived import vertical_force as vertical_force
from ._evaluate import JaxPotential as JaxPotential
from ._expansion import MultipoleExpansion as MultipoleExpansion
from ._expansion import force_accuracy as force_accuracy
from ._expansion import multipole_expansion as multipole_expansion
from ._fields import ScalarField as ScalarField
from ._fields import grad_and_laplacian as grad_and_laplacian
from ._fields import real_solid_harmonics as real_solid_harmonics
from ._io import GRADIENTS_SCHEMA as GRADIENTS_SCHEMA
from ._io import GradientSet as GradientSet
from ._io import read_gradients as read_gradients
from ._io import write_gradients as write_gradients
from ._losses import DENSITY_OF_METHOD as DENSITY_OF_METHOD
from ._losses import METHODS as METHODS
from ._losses import data_loss as data_loss
from ._solution import EnsembleFields as EnsembleFields
from ._solution import PotentialSolution as PotentialSolution
from ._solution import evaluate_ensemble as evaluate_ensemble
from ._solution import load_model as load_model
from ._stopping import ConvergenceWarning as ConvergenceWarning
from ._train import fit as fit
from ._units import G as G
from ._weights import radial_balance_probabilities as radial_balance_probabilities
from ._weights import residual_scales as residual_scales

__version__ = importlib.metadata.version("dp-cbe")
