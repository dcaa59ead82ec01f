"""The feature registry as a job: how `mlops features` reads it on a Databricks target, where the
tables are Unity Catalog's and only a cluster reads them (the step launcher runs the op there)."""

from dagster import MetadataValue, OpExecutionContext, job, op

from ..feature_store.registry import feature_registry, format_registry
from ..resources.lakehouse import Lakehouse
from ..resources.online_store import OnlineStore
from ..resources.registry import ModelRegistry
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings

ENTRIES = "entries"  # the output metadata holding the listing, as JSON


def feature_registry_job(settings: Settings):
    names = settings.names

    @op(
        name=names.op("list_feature_registry"),
        description="Lists the use case's feature tables as stored with them (descriptions, keys, owner, tags, "
        "Delta and online versions) and the model versions trained on them.",
    )
    def list_feature_registry(
        context: OpExecutionContext,
        lakehouse: Lakehouse,
        online_store: OnlineStore,
        registry: ModelRegistry,
        step_launcher: StepLauncherParam,
    ):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri)
        entries = feature_registry(settings, lakehouse, online_store, client)
        context.add_output_metadata(
            {
                ENTRIES: MetadataValue.json(entries),
                "registry": MetadataValue.md(f"```\n{format_registry(entries)}```"),
            }
        )

    @job(
        name=names.job("feature_registry"),
        description="The feature registry of this use case (`mlops features` runs it on Databricks targets).",
    )
    def list_feature_registry_job():
        list_feature_registry()

    return list_feature_registry_job
