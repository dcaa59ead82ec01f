"""Resources per target: decided once here, so asset code never asks where it runs.

``local``: delta-rs tables, local Spark, MLflow on SQLite, the local gateway, every step in the
Dagster process. Databricks targets: Unity Catalog tables through Spark, ``databricks`` /
``databricks-uc`` MLflow, Databricks serving endpoints, and every step that touches data launched
on a job cluster by the step launcher (the Dagster process only orchestrates).
"""

from __future__ import annotations

from typing import Any

from dagster import FilesystemIOManager, ResourceDefinition

from ..settings import Settings
from .lakehouse import Lakehouse, LocalLakehouse
from .landing import LocalLandingVolume
from .mlflow_tracking import mlflow_tracking_resource
from .online_store import OnlineStore, build_online_store
from .registry import ModelRegistry
from .serving import LocalServingBackend, ServingBackend
from .spark import SparkResource
from .step_launcher import StepLauncherParam
from .unity_catalog import UnityCatalogLakehouse

__all__ = ["Lakehouse", "ModelRegistry", "OnlineStore", "ServingBackend", "SparkResource", "StepLauncherParam",
           "build_resources"]


def build_resources(settings: Settings) -> dict[str, Any]:
    mlflow = settings.mlflow
    common = {
        # Under `root` (always set on local; set on a Databricks target to keep tables in a folder
        # the cluster reaches), delta-rs tables; otherwise Unity Catalog.
        "lakehouse": (LocalLakehouse(root=str(settings.root / "lakehouse")) if settings.root
                      else UnityCatalogLakehouse(staging_root=f"{settings.io_path}/_staging")),
        "spark": SparkResource(spark_config=settings.spark),
        "online_store": build_online_store(settings),
        "registry": ModelRegistry(
            tracking_uri=mlflow.tracking_uri, registry_uri=mlflow.registry_uri, model_name=mlflow.model_name
        ),
        "mlflow": mlflow_tracking_resource(
            mlflow.tracking_uri, mlflow.registry_uri, mlflow.experiment,
            settings.root / "mlflow" if settings.root else None, tags={"mlops.target": settings.target},
        ),
        # Outputs handed between steps: on Databricks both steps run on clusters, so a UC volume.
        "io_manager": FilesystemIOManager(base_dir=settings.io_path),
    }
    if settings.target == "local":
        return {
            **common,
            "serving": LocalServingBackend(
                host=settings.serving.host, port=settings.serving.port, state_dir=str(settings.root / "serving"),
                gateway_settings=settings.model_dump_json(by_alias=True),
                ready_timeout_seconds=settings.serving.ready_timeout_seconds,
            ),
            "step_launcher": ResourceDefinition.none_resource(description="Steps run in the Dagster process."),
            "landing_volume": LocalLandingVolume(path=settings.landing_path),
        }
    from .databricks import DatabricksServingBackend, step_launcher_resource
    from .landing import DatabricksLandingVolume

    settings_json = settings.model_dump_json(by_alias=True)
    return {
        **common,
        "serving": DatabricksServingBackend(settings_json=settings_json,
                                            ready_timeout_seconds=settings.serving.ready_timeout_seconds),
        "step_launcher": step_launcher_resource(settings),
        "landing_volume": DatabricksLandingVolume(path=settings.landing_path, settings_json=settings_json),
    }
