"""mlops_dagster: the Databricks MLOps Stack as orchestrated Dagster pipelines.

``mlops_dagster.UseCase`` is the Dagster Component of one use case (``type: mlops_dagster.UseCase`` in
a ``defs.yaml``); it is imported when first asked for, so ``import mlops_dagster`` stays light."""

from .version import __version__

__all__ = ["UseCase", "__version__"]


def __getattr__(name: str):
    if name == "UseCase":
        from .components import UseCase

        return UseCase
    raise AttributeError(f"module 'mlops_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
