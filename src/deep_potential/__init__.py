"""Conditional Deep Potential: config -> mock -> flows -> gradients -> potential -> report."""

import importlib.metadata

from ._config import ConfigError as ConfigError
from ._config import PipelineConfig as PipelineConfig
from ._config import config_from_dict as config_from_dict
from ._config import load_config as load_config
from ._gradients import FlowGradients as FlowGradients
from ._gradients import default_uniform_fraction as default_uniform_fraction
from ._gradients import make_gradients as make_gradients
from ._gradients import uniform_in_stars as uniform_in_stars
from ._ingest import Cuts as Cuts
from ._ingest import Frame as Frame
from ._ingest import IngestResult as IngestResult
from ._ingest import catalog_to_skycoord as catalog_to_skycoord
from ._ingest import ingest as ingest
from ._ingest import ingest_table as ingest_table
from ._runner import RunResult as RunResult
from ._runner import run_pipeline as run_pipeline
from ._stages import STAGES as STAGES

__version__ = importlib.metadata.version("deep-potential")
