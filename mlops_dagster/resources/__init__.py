"""Resources per target: decided once here, so asset code never asks where it runs."""

from __future__ import annotations

from typing import Any

from ..settings import ConfigError, Settings
from .lakehouse import Lakehouse, LocalLakehouse
from .mlflow_tracking import mlflow_tracking_resource
from .online_store import OnlineStore, build_online_store
from .registry import ModelRegistry
from .serving import LocalServingBackend, ServingBackend
from .spark import SparkResource

__all__ = ["Lakehouse", "ModelRegistry", "OnlineStore", "ServingBackend", "SparkResource", "build_resources"]


def build_resources(settings: Settings) -> dict[str, Any]:
    if settings.target != "local":
        raise ConfigError(
            f"target {settings.target!r}: the Databricks resources (Unity Catalog lakehouse, step launcher, "
            "databricks-uc registry) are not part of this build yet; use MLOPS_TARGET=local"
        )
    mlflow = settings.mlflow
    return {
        "lakehouse": LocalLakehouse(root=str(settings.root / "lakehouse")),
        "spark": SparkResource(spark_config=settings.spark),
        "online_store": build_online_store(settings),
        "registry": ModelRegistry(
            tracking_uri=mlflow.tracking_uri, registry_uri=mlflow.registry_uri, model_name=mlflow.model_name
        ),
        "serving": LocalServingBackend(
            host=settings.serving.host, port=settings.serving.port, state_dir=str(settings.root / "serving"),
            gateway_settings=settings.model_dump_json(by_alias=True),
            ready_timeout_seconds=settings.serving.ready_timeout_seconds,
        ),
        "mlflow": mlflow_tracking_resource(
            mlflow.tracking_uri, mlflow.registry_uri, mlflow.experiment, settings.root / "mlflow",
            tags={"mlops.target": settings.target},
        ),
    }
