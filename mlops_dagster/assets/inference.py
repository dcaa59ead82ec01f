"""Stage `inference`: batch predictions of the champion for every key, scored with Spark."""

from dagster import AssetExecutionContext, AutomationCondition, MaterializeResult, asset

from ..governance.audit import AUDIT_TABLE, record, table_written
from ..runtime.progress import Progress
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION, ModelRegistry
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import INGESTED_AT, Settings
from .metadata import commit_info, table_metadata


class NoChampionError(RuntimeError):
    """Batch scoring was asked for before any model version became champion."""


def inference_assets(settings: Settings):
    key, names = settings.dataset.key, settings.names
    features_table = settings.table(names.features)
    predictions_table = settings.table(names.predictions)
    log_table = settings.table(names.prediction_log)
    threshold = settings.inference.decision_threshold
    classifies = settings.classifies
    scores_text = (f"probability of {settings.dataset.label} = {settings.dataset.positive_label!r} "
                   f"(`{names.probability}`) for every `{key}`'s latest features, scored on Spark with MLflow's "
                   f"`spark_udf`; `prediction` is 1 at probability >= {threshold}" if classifies else
                   f"predicted {settings.dataset.label} (`prediction`) for every `{key}`'s latest features, "
                   "scored on Spark with MLflow's `spark_udf`")

    @asset(
        name=names.predictions, key_prefix=names.prefix, group_name=names.group("inference"),
        deps=[names.key(names.features), names.key("champion_model_version")],
        kinds={"spark", "delta"},
        automation_condition=AutomationCondition.eager(),
        description=(
            f"The `{CHAMPION}` model's {scores_text}. Each run "
            f"replaces Delta table `{predictions_table}` (earlier batches stay readable by Delta version) "
            "and stamps every row with the model name, version and scoring time. The same rows are appended "
            f"to `{log_table}` (key, output, the slice features, model version, time, `source` batch): the "
            "history that outcomes arriving later are joined to."
        ),
        metadata={"dagster/table_name": predictions_table},
    )
    def batch_predictions(
        context: AssetExecutionContext, lakehouse: Lakehouse, spark: SparkResource, registry: ModelRegistry,
        step_launcher: StepLauncherParam,
    ) -> MaterializeResult:
        registry = registry.for_use_case(settings)
        from pyspark.sql import functions as F

        champion = registry.by_alias(CHAMPION)
        if champion is None:
            raise NoChampionError(
                f"model {settings.mlflow.model_name} has no {CHAMPION!r} version yet: materialize the "
                "training and registry stages first (the training job does both)"
            )
        from ..ml.feature_lookup import latest_per_key

        session = spark.session()
        feature_version = lakehouse.version(features_table)
        history = lakehouse.read_spark(session, features_table, feature_version)
        features = latest_per_key(history, [key], INGESTED_AT)
        score = registry.spark_udf(session, champion.version)(F.struct(*(F.col(c) for c in settings.features.columns)))
        if classifies:
            # The UDF's double is predict_proba's leftmost column, P(label 0): P(1) is its complement.
            probability = F.lit(1.0) - score
            outputs = [probability.alias(names.probability),
                       (probability >= F.lit(threshold)).cast("int").alias("prediction")]
        else:
            outputs = [score.alias("prediction")]
        slices = settings.slices  # kept with each prediction: performance is judged per group
        scored = features.select(
            F.col(key), F.col(INGESTED_AT), *outputs, *slices,
            F.lit(settings.mlflow.model_name).alias("model_name"),
            F.lit(str(champion.version)).alias("model_version"),
            F.current_timestamp().alias("scored_at"),
        )
        with Progress(context.log.info, "batch scoring", spark=session):
            info = lakehouse.write_spark(
                predictions_table, scored, "overwrite",
                commit_info={**commit_info(context), "model_version": str(champion.version),
                             "features_version": str(feature_version)},
                description=f"Batch predictions of the {CHAMPION} model for every entity in {features_table}.",
            )
            written = lakehouse.read_spark(session, predictions_table, info.version)
            logged = [key, *dict.fromkeys([settings.score_column, "prediction"]), *slices, "model_name", "model_version",
                      "scored_at"]
            log_info = lakehouse.write_spark(
                log_table, written.select(*logged, F.lit("batch").alias("source")), "append",
                commit_info={**commit_info(context), "model_version": str(champion.version)},
                description=f"Every batch prediction of {settings.mlflow.model_name}, appended per scoring run.",
            )
        record(lakehouse, settings.table(AUDIT_TABLE),
               table_written([info, log_info], settings.target, context.run.run_id))
        mean = written.agg(F.avg("prediction")).first()[0]
        return MaterializeResult(metadata={
            **table_metadata(info), "rows_scored": info.num_rows, "model_name": settings.mlflow.model_name,
            "model_version": str(champion.version), "features_version": feature_version,
            ("predicted_positive_rate" if classifies else "mean_prediction"): float(mean or 0.0),
        })

    return [batch_predictions]
