"""The one typed configuration object, with its documented defaults.

``ganfriends.config.sections`` and ``ganfriends.config.modes`` declare the sections (each the
options of the commands that read it), ``ganfriends.config.options`` how one option is declared
and checked, ``ganfriends.config.loader`` how the config is read from file, environment, flags
and stored runs. ``config.yaml.template`` at the repository root lists every option.
"""

from ganfriends.config.loader import (
    DEFAULT_CONFIG_FILE,
    ENV_PREFIX,
    MOVED,
    REPO_ID,
    SECTIONS,
    Config,
    command_options,
    config_from_stored,
    config_yaml,
    env_name,
    is_switch,
    load_config,
    option_fields,
    read_env,
    read_yaml,
)
from ganfriends.config.modes import (
    FederatedConfig,
    HuggingFaceConfig,
    MdganConfig,
    SlurmConfig,
    TrackingConfig,
)
from ganfriends.config.options import REDACTED, option, redact_url
from ganfriends.config.sections import (
    UNIT_MICRO_BATCH,
    CoordinatorConfig,
    DatabaseConfig,
    DataConfig,
    LocalConfig,
    TrainingConfig,
    WorkerConfig,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "MOVED",
    "REDACTED",
    "REPO_ID",
    "SECTIONS",
    "UNIT_MICRO_BATCH",
    "Config",
    "CoordinatorConfig",
    "DataConfig",
    "DatabaseConfig",
    "FederatedConfig",
    "HuggingFaceConfig",
    "LocalConfig",
    "MdganConfig",
    "SlurmConfig",
    "TrackingConfig",
    "TrainingConfig",
    "WorkerConfig",
    "command_options",
    "config_from_stored",
    "config_yaml",
    "env_name",
    "is_switch",
    "load_config",
    "option",
    "option_fields",
    "read_env",
    "read_yaml",
    "redact_url",
]
