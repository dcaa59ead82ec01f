"""Data quality checks on the tables the lifecycle writes. Each shows what it observed next to
what it expected, so a failure explains itself in the UI. Rules come from the target config.
Every check is a Spark aggregation over the table (on the cluster on Databricks targets): none
reads a whole table into Python, and the checks of one table share one pass where they can."""

from functools import reduce

from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, AssetCheckSpec, asset_check, multi_asset_check,
)

from .metadata import markdown_table
from ..runtime.progress import Progress
from ..resources.lakehouse import Lakehouse
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import INGESTED_AT, Settings

KEY_CHECK = "key_is_unique_and_not_null"


def _key_spec(asset: list[str], table: str, keys: list[str]) -> AssetCheckSpec:
    shown = " + ".join(f"`{k}`" for k in keys)
    return AssetCheckSpec(KEY_CHECK, asset=asset,
                          description=f"Every row of {table} has {shown}, and no {shown} appears twice.")


def _per_key(context, lakehouse: Lakehouse, spark: SparkResource, table: str, keys: list[str], **sums):
    """The key check's result, and the totals of ``sums`` (name -> a column to add up over every
    row) for the table's other checks: one scan adds up the rows, the null keys and the sums
    without a shuffle; the repeated keys come from ``rows_sharing_keys`` (one long per row
    shuffled, not the keys: grouping 10M distinct keys took 12-17 s, this 3.6-4.3 s), and only the
    rows that may share a key are grouped on it."""
    from pyspark.sql import functions as F

    from ..ml.repeated_keys import rows_sharing_keys

    session = spark.session()
    frame = lakehouse.read_spark(session, table)
    any_null = reduce(lambda a, b: a | b, [F.col(k).isNull() for k in keys])
    with Progress(context.log.info, f"checks on {table}", spark=session):
        totals = frame.agg(F.count(F.lit(1)).alias("_rows"), F.sum(any_null.cast("long")).alias("_null_keys"),
                           *[F.sum(column).alias(name) for name, column in sums.items()]).first()
        rows, nulls = int(totals["_rows"]), int(totals["_null_keys"] or 0)
        sharing = rows_sharing_keys(frame.where(~any_null).select(*keys), keys, rows)
        duplicates, examples = 0, []
        if sharing is not None:
            groups = sharing.groupBy(*keys).agg(F.count(F.lit(1)).alias("_n")).where("_n > 1")
            duplicates = int(groups.agg(F.sum(F.col("_n") - 1)).first()[0] or 0)
            examples = ["/".join(map(str, r[:len(keys)])) for r in groups.limit(5).collect()]
    result = AssetCheckResult(
        check_name=KEY_CHECK, passed=nulls == 0 and duplicates == 0,
        metadata={"rows": rows, "null_keys": nulls, "duplicate_keys": duplicates, "expected": 0,
                  "examples": ", ".join(examples) or "none"},
    )
    return result, rows, {name: int(totals[name] or 0) for name in sums}


def quality_checks(settings: Settings) -> list[AssetChecksDefinition]:
    ds, fs, names = settings.dataset, settings.features, settings.names
    raw_table = settings.table(names.raw)
    quarantine_table = settings.table(names.quarantine)
    features_table = settings.table(names.features)
    labels_table = settings.table(names.labels)

    raw_key = _key_spec(names.key(names.raw), raw_table, [ds.key])

    @asset_check(asset=names.key(names.raw), name=KEY_CHECK, description=raw_key.description)
    def raw_key_is_unique(context, lakehouse: Lakehouse, spark: SparkResource,
                          step_launcher: StepLauncherParam) -> AssetCheckResult:
        return _per_key(context, lakehouse, spark, raw_table, [ds.key])[0]

    @asset_check(
        asset=names.key(names.raw), name="rows_meet_contract",
        description="Every value in the raw table meets the dataset contract: types, nullability, allowed "
                    "values and ranges from the target config.",
    )
    def raw_rows_meet_contract(context, lakehouse: Lakehouse, spark: SparkResource,
                               step_launcher: StepLauncherParam) -> AssetCheckResult:
        from functools import partial

        from pyspark.sql import functions as F

        from ..ml.contract import count_violations

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
        asset=names.key(names.quarantine), name="no_rows_quarantined_by_last_ingestion",
        description="Warns when the last ingestion quarantined rows: look at the quarantine table's reasons.",
    )
    def quarantine_is_quiet(context, lakehouse: Lakehouse, spark: SparkResource,
                            step_launcher: StepLauncherParam) -> AssetCheckResult:
        from dagster import AssetKey
        from pyspark.sql import functions as F

        event = context.instance.get_latest_materialization_event(AssetKey(names.key(names.quarantine)))
        quarantined = 0
        if event is not None and event.asset_materialization is not None:
            value = event.asset_materialization.metadata.get("rows_quarantined_this_run")
            quarantined = int(value.value) if value is not None else 0
        top, in_quarantine = [], lakehouse.row_count(quarantine_table)
        if in_quarantine:  # nothing to group in an empty table
            reasons = lakehouse.read_spark(spark.session(), quarantine_table).groupBy("reason").count()
            top = reasons.orderBy(F.desc("count"), "reason").limit(5).collect()
        return AssetCheckResult(
            passed=quarantined == 0, severity=AssetCheckSeverity.WARN,
            metadata={"rows_quarantined_last_run": quarantined, "rows_in_quarantine": in_quarantine,
                      "top_reasons": markdown_table([{"reason": r["reason"], "rows": r["count"]} for r in top])},
        )

    @multi_asset_check(specs=[
        _key_spec(names.key(names.features), features_table, [ds.key, INGESTED_AT]),
        AssetCheckSpec("features_are_complete", asset=names.key(names.features),
                       description="No feature is missing for any entity (the model must be able to score every row)."),
    ], name=f"{names.features}_checks")
    def feature_checks(context, lakehouse: Lakehouse, spark: SparkResource, step_launcher: StepLauncherParam):
        from pyspark.sql import functions as F

        nulls_in = {c: F.col(c).isNull().cast("long") for c in fs.columns}
        key_result, rows, nulls = _per_key(context, lakehouse, spark, features_table, [ds.key, INGESTED_AT], **nulls_in)
        nulls = {c: n for c, n in nulls.items() if n}
        yield key_result
        yield AssetCheckResult(
            check_name="features_are_complete", passed=not nulls,
            metadata={"rows": rows, "columns": len(fs.columns), "null_cells": sum(nulls.values()), "expected": 0,
                      "columns_with_nulls": ", ".join(nulls) or "none"},
        )

    classifies = settings.classifies
    label_check = (
        AssetCheckSpec("both_classes_present", asset=names.key(names.labels),
                       description="Labels are 0/1 and both outcomes occur: a classifier cannot learn from one class.")
        if classifies else
        AssetCheckSpec("labels_are_numbers", asset=names.key(names.labels),
                       description="Every label is a finite number and they are not all the same: a regressor "
                                   "cannot learn from missing or constant targets.")
    )

    @multi_asset_check(specs=[_key_spec(names.key(names.labels), labels_table, [ds.key]), label_check],
                       name=f"{names.labels}_checks")
    def label_checks(context, lakehouse: Lakehouse, spark: SparkResource, step_launcher: StepLauncherParam):
        from pyspark.sql import functions as F

        label = F.col("label")
        if classifies:
            key_result, total, counts = _per_key(context, lakehouse, spark, labels_table, [ds.key],
                                                 positives=(label == 1).cast("long"),
                                                 negatives=(label == 0).cast("long"))
            positives, negatives = counts["positives"], counts["negatives"]
            invalid = total - positives - negatives
            yield key_result
            yield AssetCheckResult(
                check_name=label_check.name, passed=invalid == 0 and positives > 0 and negatives > 0,
                metadata={"positives": positives, "negatives": negatives, "invalid_labels": invalid,
                          "positive_rate": positives / total if total else 0.0},
            )
            return
        finite = label.isNotNull() & ~F.isnan(label) & (F.abs(label) < F.lit(float("inf")))
        key_result, total, counts = _per_key(context, lakehouse, spark, labels_table, [ds.key],
                                             invalid=(~finite).cast("long"))
        spread = lakehouse.read_spark(spark.session(), labels_table).agg(
            F.min("label").alias("low"), F.max("label").alias("high"), F.avg("label").alias("mean")).first()
        yield key_result
        yield AssetCheckResult(
            check_name=label_check.name, passed=counts["invalid"] == 0 and total > 0 and spread["low"] != spread["high"],
            metadata={"invalid_labels": counts["invalid"], "min": float(spread["low"] or 0.0),
                      "max": float(spread["high"] or 0.0), "mean": float(spread["mean"] or 0.0)},
        )

    return [raw_key_is_unique, raw_rows_meet_contract, quarantine_is_quiet, feature_checks, label_checks]
