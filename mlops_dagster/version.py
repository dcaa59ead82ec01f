"""The package's version, said once: the wheel's metadata (pyproject.toml reads it here), ``mlops
--version`` and ``mlops_dagster.__version__``. CHANGELOG.md says what each version changed."""

__version__ = "0.2.0"
