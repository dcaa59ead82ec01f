"""Data quality checks on the tables the lifecycle writes. Each shows what it observed next to
what it expected, so a failure explains itself in the UI. Rules come from the target config."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, asset_check

from .assets.metadata import markdown_table
from .resources.lakehouse import Lakehouse
from .resources.step_launcher import StepLauncherParam
from .settings import INGESTED_AT, Settings


def _key_check(asset: str, table: str, keys: list[str]) -> AssetChecksDefinition:
    shown = " + ".join(f"`{k}`" for k in keys)

    @asset_check(
        asset=asset, name="key_is_unique_and_not_null",
        description=f"Every row of {table} has {shown}, and no {shown} appears twice.",
    )
    def _check(lakehouse: Lakehouse, step_launcher: StepLauncherParam) -> AssetCheckResult:
        frame = lakehouse.read(table, columns=keys)
        nulls, duplicated = int(frame.isna().any(axis=1).sum()), frame.duplicated()
        duplicates = int(duplicated.sum())
        examples = ["/".join(map(str, row)) for row in frame[duplicated].head(5).itertuples(index=False)]
        return AssetCheckResult(
            passed=nulls == 0 and duplicates == 0,
            metadata={"rows": len(frame), "null_keys": nulls, "duplicate_keys": duplicates, "expected": 0,
                      "examples": ", ".join(examples) or "none"},
        )

    return _check


def quality_checks(settings: Settings) -> list[AssetChecksDefinition]:
    ds, fs = settings.dataset, settings.features
    raw_table = settings.table(f"raw_{ds.name}")
    features_table = settings.table("churn_features")
    labels_table = settings.table("churn_labels")

    @asset_check(
        asset="raw_customers", name="rows_meet_contract",
        description="Every value in the raw table meets the dataset contract: types, nullability, allowed "
                    "values and ranges from the target config.",
    )
    def raw_rows_meet_contract(lakehouse: Lakehouse, step_launcher: StepLauncherParam) -> AssetCheckResult:
        from .ml.landing import rule_violations

        frame = lakehouse.read(raw_table, columns=list(ds.columns))
        reasons = rule_violations(frame, ds.columns)
        broken = {c: int((reasons[c] != "").sum()) for c in reasons}
        rows = [{"column": c, "violations": n, "example": reasons[c][reasons[c] != ""].iloc[0]}
                for c, n in broken.items() if n]
        return AssetCheckResult(
            passed=not rows,
            metadata={"rows": len(frame), "violating_cells": sum(broken.values()), "expected": 0,
                      "violations": markdown_table(rows)},
        )

    @asset_check(
        asset="raw_customers_quarantine", name="no_rows_quarantined_by_last_ingestion",
        description="Warns when the last ingestion quarantined rows: look at the quarantine table's reasons.",
    )
    def quarantine_is_quiet(context, lakehouse: Lakehouse, step_launcher: StepLauncherParam) -> AssetCheckResult:
        from dagster import AssetKey

        event = context.instance.get_latest_materialization_event(AssetKey("raw_customers_quarantine"))
        quarantined = 0
        if event is not None and event.asset_materialization is not None:
            value = event.asset_materialization.metadata.get("rows_quarantined_this_run")
            quarantined = int(value.value) if value is not None else 0
        total = lakehouse.read(settings.table(f"raw_{ds.name}_quarantine"), columns=["reason"])
        return AssetCheckResult(
            passed=quarantined == 0, severity=AssetCheckSeverity.WARN,
            metadata={"rows_quarantined_last_run": quarantined, "rows_in_quarantine": len(total),
                      "top_reasons": markdown_table([
                          {"reason": r, "rows": int(n)} for r, n in total["reason"].value_counts().head(5).items()
                      ])},
        )

    @asset_check(
        asset="churn_features", name="features_are_complete",
        description="No feature is missing for any entity (the model must be able to score every row).",
    )
    def features_are_complete(lakehouse: Lakehouse, step_launcher: StepLauncherParam) -> AssetCheckResult:
        frame = lakehouse.read(features_table, columns=fs.columns)
        nulls = {c: int(n) for c, n in frame.isna().sum().items() if n}
        return AssetCheckResult(
            passed=not nulls,
            metadata={"rows": len(frame), "columns": len(fs.columns), "null_cells": sum(nulls.values()),
                      "expected": 0, "columns_with_nulls": ", ".join(nulls) or "none"},
        )

    @asset_check(
        asset="churn_labels", name="both_classes_present",
        description="Labels are 0/1 and both outcomes occur: a classifier cannot learn from one class.",
    )
    def both_classes_present(lakehouse: Lakehouse, step_launcher: StepLauncherParam) -> AssetCheckResult:
        labels = lakehouse.read(labels_table, columns=["label"])["label"]
        counts = labels.value_counts().to_dict()
        invalid = int((~labels.isin([0, 1])).sum())
        return AssetCheckResult(
            passed=invalid == 0 and counts.get(1, 0) > 0 and counts.get(0, 0) > 0,
            metadata={"positives": int(counts.get(1, 0)), "negatives": int(counts.get(0, 0)),
                      "invalid_labels": invalid, "positive_rate": float(labels.mean()) if len(labels) else 0.0},
        )

    return [
        _key_check("raw_customers", raw_table, [ds.key]), raw_rows_meet_contract, quarantine_is_quiet,
        _key_check("churn_features", features_table, [ds.key, INGESTED_AT]), features_are_complete,
        _key_check("churn_labels", labels_table, [ds.key]), both_classes_present,
    ]
