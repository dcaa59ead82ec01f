"""Resources per target: decided once here, so asset code never asks where it runs.

``local``: delta-rs tables, local Spark, MLflow on SQLite, the local gateway, Evidently as the only
monitor, every step in the Dagster process. Databricks targets: Unity Catalog tables through Spark,
``databricks`` / ``databricks-uc`` MLflow, Databricks serving endpoints and monitors, and every step
that touches data launched on Databricks compute (the Dagster process only orchestrates).
"""

from __future__ import annotations

from typing import Any

from dagster import FilesystemIOManager, ResourceDefinition

from ..settings import Project
from .billing import DatabricksBilling, NoBilling
from .lakehouse import Lakehouse
from .landing import LocalLandingVolume
from .local_lakehouse import LocalLakehouse
from .mlflow_tracking import mlflow_tracking_resource
from .online_store import OnlineStore, build_online_store
from .registry import ModelRegistry
from .serving import LocalServingBackend, ServingBackend
from .spark import SparkResource
from .step_launcher import StepLauncherParam
from .table_monitors import NoTableMonitors
from .unity_catalog import UnityCatalogLakehouse

__all__ = [
    "Lakehouse",
    "ModelRegistry",
    "OnlineStore",
    "ServingBackend",
    "SparkResource",
    "StepLauncherParam",
    "build_resources",
]


def build_resources(project: Project) -> dict[str, Any]:
    """The resources every use case of ``project`` shares (settings a use case may not change:
    target, root, catalog, MLflow URIs, Spark, the online store, the gateway, Databricks)."""
    settings = project.default
    mlflow = settings.mlflow
    common = {
        # Under `root` (always set on local; set on a Databricks target to keep tables in a folder
        # the cluster reaches), delta-rs tables; otherwise Unity Catalog.
        "lakehouse": (
            LocalLakehouse(root=str(settings.root / "lakehouse"))
            if settings.root
            else UnityCatalogLakehouse(
                staging_root=f"{settings.io_path}/_staging", spark_config=settings.spark
            )
        ),
        "spark": SparkResource(spark_config=settings.spark),
        "online_store": build_online_store(settings),
        "registry": ModelRegistry(tracking_uri=mlflow.tracking_uri, registry_uri=mlflow.registry_uri),
        "mlflow": mlflow_tracking_resource(
            mlflow.tracking_uri,
            mlflow.registry_uri,
            {u.name: u.mlflow.experiment for u in project.use_cases},
            settings.root / "mlflow" if settings.root else None,
            tags={"mlops.target": settings.target},
        ),
        # Outputs handed between steps: on Databricks both steps run on clusters, so a UC volume.
        "io_manager": FilesystemIOManager(base_dir=settings.io_path),
    }
    if settings.target == "local":
        return {
            **common,
            "serving": LocalServingBackend(
                host=settings.serving.host,
                port=settings.serving.port,
                state_dir=str(settings.root / "serving"),
                project=project,
                ready_timeout_seconds=settings.serving.ready_timeout_seconds,
            ),
            "step_launcher": ResourceDefinition.none_resource(
                description="Steps run in the Dagster process."
            ),
            "landing_volume": LocalLandingVolume(),
            "billing": NoBilling(),
            "table_monitors": NoTableMonitors(),
        }
    from .databricks import DatabricksServingBackend, step_launcher_resource
    from .landing import DatabricksLandingVolume
    from .section_config import to_config
    from .table_monitors import DatabricksTableMonitors

    databricks = to_config(settings.databricks)
    return {
        **common,
        "serving": DatabricksServingBackend(
            databricks=databricks,
            catalog=settings.catalog,
            schema_name=settings.schema_,
            ready_timeout_seconds=settings.serving.ready_timeout_seconds,
        ),
        "step_launcher": step_launcher_resource(project),
        "landing_volume": DatabricksLandingVolume(databricks=databricks),
        "billing": DatabricksBilling(
            databricks=databricks, target=settings.target, warehouse_id=settings.cost.warehouse_id
        ),
        "table_monitors": DatabricksTableMonitors(databricks=databricks),
    }
