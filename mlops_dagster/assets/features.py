"""Stage `features`: the feature table (one row per entity, model inputs) and the labels table."""

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, multi_asset

from ..governance.audit import AUDIT_TABLE, record, table_written
from ..resources.lakehouse import Lakehouse
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings
from .ingestion import INGESTED_AT
from .metadata import commit_info, table_metadata


def feature_assets(settings: Settings):
    ds, fs = settings.dataset, settings.features
    raw_table = settings.table(f"raw_{ds.name}")
    features_table = settings.table("churn_features")
    labels_table = settings.table("churn_labels")

    @multi_asset(
        specs=[
            AssetSpec(
                "churn_features", group_name="features", deps=["raw_customers"], kinds={"spark", "delta"},
                description=(
                    f"Model inputs, one row per `{ds.key}`, computed with Spark from the raw table: "
                    f"{len(fs.categorical)} categorical and {len(fs.numeric_columns)} numeric features "
                    f"(derived ones from the Spark SQL expressions in the target config). "
                    f"Delta table `{features_table}`; its version is the feature version."
                ),
                metadata={"dagster/table_name": features_table},
            ),
            AssetSpec(
                "churn_labels", group_name="features", deps=["raw_customers"], kinds={"spark", "delta"},
                description=(
                    f"The training target, kept apart from the features: `label` = 1 where "
                    f"`{ds.label}` is {ds.positive_label!r}, else 0, per `{ds.key}`. "
                    f"Delta table `{labels_table}`."
                ),
                metadata={"dagster/table_name": labels_table},
            ),
        ],
    )
    def build_feature_tables(
        context: AssetExecutionContext, lakehouse: Lakehouse, spark: SparkResource, step_launcher: StepLauncherParam,
    ):
        from ..ml.features import build_features, build_labels

        session = spark.session()
        raw_version = lakehouse.version(raw_table)
        raw = lakehouse.read_spark(session, raw_table)
        commit = {**commit_info(context), "source_table": raw_table, "source_version": str(raw_version)}
        features = build_features(raw, ds.key, fs.categorical, fs.numerical, fs.derived, carry=(INGESTED_AT,))
        feature_info = lakehouse.write_spark(
            features_table, features, "overwrite", commit_info=commit, properties={"primary_key": ds.key},
            description=f"Churn model features keyed by {ds.key}, built with Spark from {raw_table}.",
        )
        labels = build_labels(raw, ds.key, ds.label, ds.positive_label)
        label_info = lakehouse.write_spark(
            labels_table, labels, "overwrite", commit_info=commit, properties={"primary_key": ds.key},
            description=f"Churn labels (1 = {ds.label} is {ds.positive_label!r}) keyed by {ds.key}, from {raw_table}.",
        )
        record(lakehouse, settings.table(AUDIT_TABLE),
               table_written([feature_info, label_info], settings.target, context.run.run_id))
        lineage = {"source_table": raw_table, "source_delta_version": raw_version}
        yield MaterializeResult(asset_key="churn_features", metadata={
            **table_metadata(feature_info), **lineage, "feature_columns": fs.columns,
        })
        yield MaterializeResult(asset_key="churn_labels", metadata={**table_metadata(label_info), **lineage})

    return [build_feature_tables]
