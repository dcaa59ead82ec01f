"""Data quality checks on the tables the lifecycle writes. Each shows what it observed next to
what it expected, so a failure explains itself in the UI. Rules come from the target config.
Every check is a Spark aggregation over the table (on the cluster on Databricks targets): none
reads a whole table into Python."""

from functools import reduce

from dagster import AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, asset_check

from .metadata import markdown_table
from .progress import Progress
from .resources.lakehouse import Lakehouse
from .resources.spark import SparkResource
from .resources.step_launcher import StepLauncherParam
from .settings import INGESTED_AT, Settings


def _key_check(asset: str, table: str, keys: list[str]) -> AssetChecksDefinition:
    shown = " + ".join(f"`{k}`" for k in keys)

    @asset_check(
        asset=asset, name="key_is_unique_and_not_null",
        description=f"Every row of {table} has {shown}, and no {shown} appears twice.",
    )
    def _check(context, lakehouse: Lakehouse, spark: SparkResource, step_launcher: StepLauncherParam) -> AssetCheckResult:
        from pyspark.sql import functions as F

        session = spark.session()
        groups = lakehouse.read_spark(session, table).groupBy(*keys).count()
        any_null = reduce(lambda a, b: a | b, [F.col(k).isNull() for k in keys])
        with Progress(context.log.info, f"key check on {table}", spark=session):
            totals = groups.agg(
                F.sum("count").alias("rows"),
                F.sum(F.when(any_null, F.col("count")).otherwise(0)).alias("null_keys"),
                F.sum(F.when(~any_null, F.col("count") - 1).otherwise(0)).alias("duplicate_keys"),
            ).first()
        rows, nulls, duplicates = (int(totals[c] or 0) for c in ("rows", "null_keys", "duplicate_keys"))
        examples = []
        if duplicates:
            examples = ["/".join(map(str, r[:len(keys)]))
                        for r in groups.where((F.col("count") > 1) & ~any_null).limit(5).collect()]
        return AssetCheckResult(
            passed=nulls == 0 and duplicates == 0,
            metadata={"rows": rows, "null_keys": nulls, "duplicate_keys": duplicates, "expected": 0,
                      "examples": ", ".join(examples) or "none"},
        )

    return _check


def quality_checks(settings: Settings) -> list[AssetChecksDefinition]:
    ds, fs = settings.dataset, settings.features
    raw_table = settings.table(f"raw_{ds.name}")
    quarantine_table = settings.table(f"raw_{ds.name}_quarantine")
    features_table = settings.table("churn_features")
    labels_table = settings.table("churn_labels")

    @asset_check(
        asset="raw_customers", name="rows_meet_contract",
        description="Every value in the raw table meets the dataset contract: types, nullability, allowed "
                    "values and ranges from the target config.",
    )
    def raw_rows_meet_contract(context, lakehouse: Lakehouse, spark: SparkResource,
                               step_launcher: StepLauncherParam) -> AssetCheckResult:
        from functools import partial

        from pyspark.sql import functions as F

        from .ml.contract import count_violations

        session = spark.session()
        raw = lakehouse.read_spark(session, raw_table).select(*ds.columns)
        with Progress(context.log.info, f"contract check on {raw_table}", spark=session):
            found = (raw.mapInArrow(partial(count_violations, dict(ds.columns)),
                                    "column string, violations long, example string")
                     .groupBy("column").agg(F.sum("violations").alias("violations"), F.first("example").alias("example"))
                     .collect())
        rows = [{"column": r["column"], "violations": r["violations"], "example": r["example"]}
                for r in sorted(found, key=lambda r: list(ds.columns).index(r["column"]))]
        return AssetCheckResult(
            passed=not rows,
            metadata={"rows": lakehouse.row_count(raw_table), "violating_cells": sum(r["violations"] for r in rows),
                      "expected": 0, "violations": markdown_table(rows)},
        )

    @asset_check(
        asset="raw_customers_quarantine", name="no_rows_quarantined_by_last_ingestion",
        description="Warns when the last ingestion quarantined rows: look at the quarantine table's reasons.",
    )
    def quarantine_is_quiet(context, lakehouse: Lakehouse, spark: SparkResource,
                            step_launcher: StepLauncherParam) -> AssetCheckResult:
        from dagster import AssetKey
        from pyspark.sql import functions as F

        event = context.instance.get_latest_materialization_event(AssetKey("raw_customers_quarantine"))
        quarantined = 0
        if event is not None and event.asset_materialization is not None:
            value = event.asset_materialization.metadata.get("rows_quarantined_this_run")
            quarantined = int(value.value) if value is not None else 0
        reasons = lakehouse.read_spark(spark.session(), quarantine_table).groupBy("reason").count()
        top = reasons.orderBy(F.desc("count"), "reason").limit(5).collect()
        return AssetCheckResult(
            passed=quarantined == 0, severity=AssetCheckSeverity.WARN,
            metadata={"rows_quarantined_last_run": quarantined, "rows_in_quarantine": lakehouse.row_count(quarantine_table),
                      "top_reasons": markdown_table([{"reason": r["reason"], "rows": r["count"]} for r in top])},
        )

    @asset_check(
        asset="churn_features", name="features_are_complete",
        description="No feature is missing for any entity (the model must be able to score every row).",
    )
    def features_are_complete(context, lakehouse: Lakehouse, spark: SparkResource,
                              step_launcher: StepLauncherParam) -> AssetCheckResult:
        from pyspark.sql import functions as F

        session = spark.session()
        frame = lakehouse.read_spark(session, features_table)
        with Progress(context.log.info, f"completeness check on {features_table}", spark=session):
            counts = frame.agg(*[F.sum(F.col(c).isNull().cast("long")).alias(c) for c in fs.columns]).first()
        nulls = {c: int(counts[c] or 0) for c in fs.columns if counts[c]}
        return AssetCheckResult(
            passed=not nulls,
            metadata={"rows": lakehouse.row_count(features_table), "columns": len(fs.columns),
                      "null_cells": sum(nulls.values()), "expected": 0, "columns_with_nulls": ", ".join(nulls) or "none"},
        )

    @asset_check(
        asset="churn_labels", name="both_classes_present",
        description="Labels are 0/1 and both outcomes occur: a classifier cannot learn from one class.",
    )
    def both_classes_present(lakehouse: Lakehouse, spark: SparkResource,
                             step_launcher: StepLauncherParam) -> AssetCheckResult:
        counts = {r["label"]: r["count"] for r in
                  lakehouse.read_spark(spark.session(), labels_table).groupBy("label").count().collect()}
        positives, negatives = counts.get(1, 0), counts.get(0, 0)
        total = sum(counts.values())
        invalid = total - positives - negatives
        return AssetCheckResult(
            passed=invalid == 0 and positives > 0 and negatives > 0,
            metadata={"positives": positives, "negatives": negatives, "invalid_labels": invalid,
                      "positive_rate": positives / total if total else 0.0},
        )

    return [
        _key_check("raw_customers", raw_table, [ds.key]), raw_rows_meet_contract, quarantine_is_quiet,
        _key_check("churn_features", features_table, [ds.key, INGESTED_AT]), features_are_complete,
        _key_check("churn_labels", labels_table, [ds.key]), both_classes_present,
    ]
