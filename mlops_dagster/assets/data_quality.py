"""Stage `monitoring`: the data quality of each ingested batch, kept as history.

Wiring only: the profile and the comparison are in `ml/data_quality.py`."""

from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..monitoring.evidently_workspace import add_figures
from ..resources.lakehouse import Lakehouse
from ..settings import INGESTED_AT, Settings
from ..settings.constants import LANDING_LOG
from .metadata import commit_info, markdown_table

QUALITY_CHECK = "no_data_quality_change"


def data_quality_assets(settings: Settings):
    names, allowed = settings.names, settings.monitoring.max_quality_change

    @asset(
        name=names.data_quality,
        key_prefix=names.prefix,
        group_name=names.group("monitoring"),
        deps=[names.key(names.raw)],
        kinds={"spark", "delta"},
        required_resource_keys={"lakehouse", "spark", "step_launcher"},
        check_specs=[
            AssetCheckSpec(
                QUALITY_CHECK,
                asset=names.key(names.data_quality),
                description="Warns when a column's null share or the batch's out-of-contract share rose by "
                f"more than {allowed:.0%} from the previous batch, or a category is new or missing.",
            )
        ],
        description=(
            f"The data quality of the newest ingested batch of `{settings.table(names.raw)}`: rows, the share "
            "of its landed rows the contract quarantined, and per column the null share, min, max and mean "
            "of a number, the categories new or missing against the previous batch. One row per column "
            f"and batch appended to `{settings.table(names.data_quality)}`; numbers as metadata (plotted)."
        ),
    )
    def data_quality(context: AssetExecutionContext):
        yield from profile_batch(context, settings)

    return [data_quality]


def profile_batch(context: AssetExecutionContext, settings: Settings):
    """The `data_quality` asset: the newest batch profiled on Spark, compared with the previous one."""
    from ..ml.data_quality import changes, history_rows, known_categories, profile, stored
    from ..ml.drift import newest_batch
    from ..ml.training import to_pandas

    lakehouse: Lakehouse = context.resources.lakehouse
    session, fs, names = context.resources.spark.session(), settings.features, settings.names
    batch = newest_batch(lakehouse.read_spark(session, settings.table(names.raw)))
    numeric = [c for c in fs.numeric_columns if c in batch.columns]
    categorical = [c for c in fs.categorical if c in batch.columns]
    rows, columns = profile(batch, numeric, categorical, settings.monitoring.max_categories)
    # Through Arrow: a time with its zone (UTC), as the history and the landing log hold it.
    batch_at = to_pandas(batch.limit(1), [INGESTED_AT])[INGESTED_AT].iloc[0]
    previous = _previous(settings, lakehouse, batch_at)
    known = None if previous is None else known_categories(previous)
    base = {
        "profiled_at": datetime.now(UTC),
        "batch_ingested_at": batch_at,
        "table": settings.table(names.raw),
        "dagster_run_id": context.run.run_id,
    }
    current = history_rows(rows, columns, _quarantined(settings, lakehouse, batch_at), known, base)
    lakehouse.write(
        settings.table(names.data_quality),
        stored(current),
        "append",
        commit_info=commit_info(context),
        description="Data quality per ingested batch and column: nulls, contract, range, categories.",
    )
    figures = {
        "rows": current["rows"].iloc[0],
        "null_share": current["null_share"].mean(),
        "outside_contract_share": current["outside_contract_share"].iloc[0],
    }
    add_figures(settings.evidently_path, settings.name, "data_quality", figures, settings.problem_type)
    found = changes(current, previous, settings.monitoring.max_quality_change)
    for change in found:
        context.log.warning(f"data quality: {change}")
    yield MaterializeResult(metadata=_metadata(current, found))
    yield AssetCheckResult(
        check_name=QUALITY_CHECK,
        passed=not found,
        severity=AssetCheckSeverity.WARN,
        metadata={"changes": len(found)},
        description="; ".join(found) or "no change beyond the allowed one from the previous batch",
    )


def _previous(settings: Settings, lakehouse: Lakehouse, batch_at):
    """The history's rows of the newest batch before ``batch_at`` (None when there is none)."""
    table = settings.table(settings.names.data_quality)
    if not lakehouse.exists(table):
        return None
    history = lakehouse.read(
        table, columns=["batch_ingested_at", "column", "null_share", "outside_contract_share", "categories"]
    )
    earlier = history[history["batch_ingested_at"] < batch_at]
    if not len(earlier):
        return None
    return earlier[earlier["batch_ingested_at"] == earlier["batch_ingested_at"].max()]


def _quarantined(settings: Settings, lakehouse: Lakehouse, batch_at) -> int:
    """The rows of the batch's landing files that the contract refused (the landing file log)."""
    table = settings.table(LANDING_LOG)
    if not lakehouse.exists(table):
        return 0
    log = lakehouse.read(table, columns=["ingested_at", "rows_quarantined"])
    return int(log.loc[log["ingested_at"] == batch_at, "rows_quarantined"].sum())


def _metadata(current, found: list[str]) -> dict:
    numbers = {}
    for r in current.itertuples():
        numbers[f"{r.column}_null_share"] = MetadataValue.float(float(r.null_share))
        if r.mean == r.mean:  # a number column
            numbers[f"{r.column}_mean"] = MetadataValue.float(float(r.mean))
    return {
        "rows": int(current["rows"].iloc[0]),
        "outside_contract_share": MetadataValue.float(float(current["outside_contract_share"].iloc[0])),
        **numbers,
        "changes": markdown_table([{"change": c} for c in found]) if found else "none",
    }
