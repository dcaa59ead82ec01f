"""Stage `inference`: batch predictions of the champion for every key, scored with Spark."""

from dagster import AssetExecutionContext, AutomationCondition, MaterializeResult, asset

from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION, ModelRegistry
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..runtime.progress import Progress
from ..settings import INGESTED_AT, Settings
from .metadata import audit_log, commit_info, freshness, table_metadata


class NoChampionError(RuntimeError):
    """Batch scoring was asked for before any model version became champion."""


def inference_assets(settings: Settings):
    names = settings.names

    @asset(
        name=names.predictions,
        key_prefix=names.prefix,
        group_name=names.group("inference"),
        deps=[names.key(names.features), names.key("champion_model_version")],
        kinds={"spark", "delta"},
        automation_condition=AutomationCondition.eager(),
        freshness_policy=freshness(settings.automation.freshness.predictions_hours),
        description=_description(settings),
        metadata={"dagster/table_name": settings.table(names.predictions)},
    )
    def batch_predictions(
        context: AssetExecutionContext,
        lakehouse: Lakehouse,
        spark: SparkResource,
        registry: ModelRegistry,
        step_launcher: StepLauncherParam,
    ) -> MaterializeResult:
        return score_batch(context, lakehouse, spark, registry, settings)

    return [batch_predictions]


def _description(settings: Settings) -> str:
    key, names, threshold = settings.dataset.key, settings.names, settings.inference.decision_threshold
    scores_text = (
        f"probability of {settings.dataset.label} = {settings.dataset.positive_label!r} "
        f"(`{names.probability}`) for every `{key}`'s latest features, scored on Spark with MLflow's "
        f"`spark_udf`; `prediction` is 1 at probability >= {threshold}"
        if settings.classifies
        else f"predicted {settings.dataset.label} (`prediction`) for every `{key}`'s latest features, "
        "scored on Spark with MLflow's `spark_udf`"
    )
    return (
        f"The `{CHAMPION}` model's {scores_text}. Each run "
        f"replaces Delta table `{settings.table(names.predictions)}` (earlier batches stay readable by Delta "
        "version) and stamps every row with the model name, version and scoring time. The same rows are appended "
        f"to `{settings.table(names.prediction_log)}` (key, output, the slice features, model version, time, "
        "`source` batch), once per model version and features version: the history that outcomes arriving "
        "later are joined to."
    )


def score_batch(
    context, lakehouse: Lakehouse, spark: SparkResource, registry: ModelRegistry, settings: Settings
) -> MaterializeResult:
    """The champion's predictions for every key's latest features, written and logged."""
    from pyspark.sql import functions as F

    from ..ml.feature_lookup import latest_per_key
    from ..ml.inference import prediction_columns, scored_rows

    registry = registry.for_use_case(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise NoChampionError(
            f"model {settings.mlflow.model_name} has no {CHAMPION!r} version yet: materialize the "
            "training and registry stages first (the training job does both)"
        )
    session, features_table = spark.session(), settings.table(settings.names.features)
    feature_version = lakehouse.version(features_table)
    features = latest_per_key(
        lakehouse.read_spark(session, features_table, feature_version), [settings.dataset.key], INGESTED_AT
    )
    score = registry.spark_udf(session, champion.version)(
        F.struct(*(F.col(c) for c in settings.features.columns))
    )
    outputs = prediction_columns(
        score, settings.classifies, settings.inference.decision_threshold, settings.names.probability
    )
    scored = scored_rows(
        features,
        settings.dataset.key,
        outputs,
        settings.slices,
        settings.mlflow.model_name,
        str(champion.version),
    )
    info, log_info, written = _write_predictions(
        context, lakehouse, session, settings, scored, str(champion.version), feature_version
    )
    audit_log(context, settings).tables_written([info, log_info])
    mean = written.agg(F.avg("prediction")).first()[0]
    return MaterializeResult(
        metadata={
            **table_metadata(info),
            "rows_scored": info.num_rows,
            "model_name": settings.mlflow.model_name,
            "model_version": str(champion.version),
            "features_version": feature_version,
            ("predicted_positive_rate" if settings.classifies else "mean_prediction"): float(mean or 0.0),
        }
    )


def _write_predictions(
    context, lakehouse: Lakehouse, session, settings: Settings, scored, version: str, feature_version: int
):
    """The predictions table replaced and its rows appended to the prediction log: (info, log info, rows written)."""
    from pyspark.sql import functions as F

    from ..ml.inference import prediction_log_columns

    names, model_name = settings.names, settings.mlflow.model_name
    predictions_table, features_table = settings.table(names.predictions), settings.table(names.features)
    with Progress(context.log.info, "batch scoring", spark=session):
        info = lakehouse.write_spark(
            predictions_table,
            scored,
            "overwrite",
            commit_info={
                **commit_info(context),
                "model_version": version,
                "features_version": str(feature_version),
            },
            description=f"Batch predictions of the {CHAMPION} model for every entity in {features_table}.",
        )
        written = lakehouse.read_spark(session, predictions_table, info.version)
        logged = prediction_log_columns(settings.dataset.key, settings.score_column, settings.slices)
        log_info = lakehouse.write_spark(
            settings.table(names.prediction_log),
            written.select(*logged, F.lit("batch").alias("source")),
            "append",
            commit_info={**commit_info(context), "model_version": version},
            description=f"Every batch prediction of {model_name}, appended per scoring run.",
            # One batch per model version and features version: a run scoring again after a crash
            # (or the same champion on unchanged features) does not log its predictions twice.
            once=f"mlops_dagster/prediction_log/{model_name}/v{version}/features_v{feature_version}",
        )
    return info, log_info, written
