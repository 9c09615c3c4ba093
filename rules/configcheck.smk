# Read config.yaml once with monkeyflow's reader before `configfile:` does, so that a YAML
# syntax error names the file, line and column.
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(workflow.basedir) / "src"))

from monkeyflow.config import ConfigError as _ConfigError, read_config_file as _read_config_file

if _Path("config.yaml").exists():
    try:
        _read_config_file("config.yaml")
    except _ConfigError as _exc:
        raise WorkflowError(str(_exc)) from None
