"""Continuous normalizing flows trained by conditional flow matching: spatial densities and conditional velocity distributions with their gradients."""

import importlib.metadata

from ._config import FlowConfig as FlowConfig
from ._ensemble import ensemble_grad_log_prob as ensemble_grad_log_prob
from ._ensemble import robust_mean as robust_mean
from ._ensemble import sample_ensemble as sample_ensemble
from ._fields import AbstractVectorField as AbstractVectorField
from ._fields import ResNetField as ResNetField
from ._flow import Flow as Flow
from ._flow import condition_features as condition_features
from ._flow import grad_log_prob as grad_log_prob
from ._flow import log_prob as log_prob
from ._flow import sample as sample
from ._flow import sample_within as sample_within
from ._io import load_flow as load_flow
from ._io import read_catalog_arrays as read_catalog_arrays
from ._io import save_flow as save_flow
from ._train import fit_flow as fit_flow
from ._whiten import ConditionalAffine as ConditionalAffine

__version__ = importlib.metadata.version("dp-flows")
