"""Stage `monitoring`: Databricks' own monitors of a use case's tables, kept by the performance asset
(``resources/table_monitors.py`` makes and refreshes them; nothing on `local`).

Wiring only: what a profile metrics table says is in `ml/monitor_metrics.py`."""

from dagster import AssetExecutionContext, MetadataValue

from ..resources.lakehouse import Lakehouse
from ..settings import Settings
from .metadata import markdown_table


def databricks_monitors(context: AssetExecutionContext, settings: Settings) -> dict:
    """Databricks' monitors of the prediction log and the inference table (none on `local`): each
    made when missing, a refresh started, and the newest window of its profile metrics read back
    (those of the newest finished refresh). A table not written yet has no monitor yet."""
    from ..resources.table_monitors import monitor_specs

    cfg, lakehouse = settings.monitoring.databricks_monitor, context.resources.lakehouse
    lines, figures = [], {}
    for spec in monitor_specs(settings) if cfg.enabled else []:
        if not lakehouse.exists(spec.table):
            continue
        monitored = context.resources.table_monitors.refresh(
            spec, f"{settings.catalog}.{settings.schema_}", cfg.assets_dir, cfg.wait_seconds
        )
        if monitored is None:
            return {}
        newest = _newest_profile(context, lakehouse, monitored.profile_metrics_table, spec)
        rows = newest["rows"] if newest else {}
        lines.append(
            {
                "table": spec.table,
                "monitor": "created" if monitored.created else "exists",
                "refresh started": f"{monitored.refresh_state} ({monitored.refresh_id})",
                "newest window": str(newest["window_start"]) if newest else "no metrics yet",
                "rows per model version": ", ".join(f"{m}: {n:,}" for m, n in sorted(rows.items())) or "-",
            }
        )
        kind = "predictions" if spec.inference else "requests"
        if newest:
            figures[f"monitor_{kind}"] = sum(rows.values())
            for model, mean in newest["mean"].items():
                figures[f"monitor_prediction_mean_v{model}"] = MetadataValue.float(mean)
        context.log.info(f"Databricks monitor of {spec.table}: refresh {monitored.refresh_state}")
    if not lines:
        return {}
    return {"databricks_monitors": markdown_table(lines), **figures}


def _newest_profile(context, lakehouse: Lakehouse, table: str, spec) -> dict | None:
    """The newest window of a monitor's profile metrics (whole table, no slice), or None before its
    first refresh finished. Spark reads it; one window's few rows come back."""
    if not lakehouse.exists(table):
        return None
    from pyspark.sql import functions as F

    from ..ml.monitor_metrics import TABLE, newest_window

    prediction = spec.inference.get("prediction_col")
    profile = lakehouse.read_spark(context.resources.spark.session(), table).where(
        F.col("slice_key").isNull() & F.col("column_name").isin(TABLE, prediction or TABLE)
    )
    start = profile.agg(F.max("window.start")).first()[0]
    if start is None:
        return None
    return newest_window(
        profile.where(F.col("window.start") == start).toPandas(),
        spec.inference.get("model_id_col"),
        prediction,
    )
