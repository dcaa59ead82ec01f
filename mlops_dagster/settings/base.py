"""What every section of the configuration is built on."""

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """The target configuration is missing or invalid; the message says which file and field."""


class SettingsModel(BaseModel):
    """A section of the configuration: an unknown key is an error, and loaded settings never change.
    The docstring under each field is its description (``reference`` builds the configuration
    reference from them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
