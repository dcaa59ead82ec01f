"""Stage `monitoring`: the endpoint's answers estimated per window before their outcomes arrive,
beside the landing batch's estimate (`estimation.py`).

Wiring only: the windows and their history rows are in `ml/estimation.py`."""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dagster import MetadataValue

from ..resources.lakehouse import Lakehouse
from ..settings import INGESTED_AT, Settings
from .metadata import commit_info

if TYPE_CHECKING:
    import pandas as pd

SCORE = "_score"  # the model's output column, as the estimators read a frame (estimation.py's too)


def estimate_endpoint(context, settings: Settings, problem, estimate, judge, base: dict, validated: dict):
    """The endpoint's windows estimated (``estimate``: rows -> slice group -> estimates) and judged
    (``judge``), appended to their history table; the rows (empty without answers)."""
    lakehouse: Lakehouse = context.resources.lakehouse
    session, mon = context.resources.spark.session(), settings.monitoring
    windows = _endpoint_windows(settings, lakehouse, session, problem, estimate, judge, base, validated)
    if len(windows):
        lakehouse.write(
            settings.table(settings.names.endpoint_estimates),
            windows,
            "append",
            commit_info=commit_info(context),
            description=f"Performance estimated per window of {mon.window_hours:g} hours of the endpoint's "
            "answers, model version and slice group (CBPE or DLE, with a band), the realized figure of the "
            "window beside it once outcomes judged its answers.",
        )
    return windows


def _endpoint_windows(
    settings: Settings, lakehouse: Lakehouse, session, problem, estimate, judge, base, validated
):
    """The endpoint's answers of the performance window (the newest `monitoring.sample_rows`
    requests that named their key) estimated per served version and window of
    `monitoring.window_hours`, with the window's realized figure once outcomes judged its answers.
    The features of an answer (for DLE and the slices) are its key's newest in the feature table:
    what a key-only request was scored with."""
    import pandas as pd
    from pyspark.sql import functions as F

    from ..ml.estimation import window_history
    from ..ml.feature_lookup import latest_per_key
    from ..ml.performance import LABEL, SCORED_AT, labelled_predictions
    from .performance import endpoint_answers

    mon, ds, fs = settings.monitoring, settings.dataset, settings.features
    answers = endpoint_answers(
        settings, lakehouse, session, datetime.now(UTC) - timedelta(days=mon.performance_window_days)
    )
    if answers is None:
        return pd.DataFrame()
    answers = answers.withColumnRenamed(settings.score_column, SCORE)
    keys = answers.select(ds.key).distinct()
    features = lakehouse.read_spark(session, settings.table(settings.names.features)).join(
        F.broadcast(keys), ds.key, "left_semi"
    )
    newest = latest_per_key(features, [ds.key], INGESTED_AT).select(ds.key, *fs.columns)
    frame = answers.join(newest, ds.key, "left").toPandas()  # bounded: the newest sample_rows requests
    labelled = pd.DataFrame()
    truth = settings.table(settings.names.ground_truth)
    if lakehouse.exists(truth):
        labelled = (
            labelled_predictions(
                lakehouse.read_spark(session, truth),
                answers,
                ds.key,
                ds.label,
                mon.ground_truth.time_column,
                mon.ground_truth.max_delay_days,
                lambda column: problem.label(column, ds.positive_label),
            )
            .select(ds.key, LABEL, SCORE, "model_version", SCORED_AT)
            .toPandas()
        )  # at most the answers
    metric = settings.validation.compare_metric
    return window_history(
        frame, labelled, mon.window_hours, mon.min_labelled_rows, estimate, judge, base, metric, validated
    )


def newest_window(windows: "pd.DataFrame", champion: str) -> "pd.DataFrame":
    """The whole-window rows (one per metric) of the champion's newest estimated endpoint window."""
    if not len(windows):
        return windows.assign(metric=[])
    mine = windows[(windows["slice"] == "all") & (windows["model_version"] == champion)]
    return mine[mine["window_start"] == mine["window_start"].max()]


def endpoint_metadata(windows: "pd.DataFrame", newest: "pd.DataFrame", metric: str) -> dict:
    """How many endpoint windows were estimated, and the champion's newest one's figure."""
    found = {"endpoint_windows": int(windows["window_start"].nunique()) if len(windows) else 0}
    for row in newest[newest["metric"] == metric].itertuples():
        found[f"endpoint_estimated_{metric}"] = MetadataValue.float(float(row.estimated))
        found["endpoint_window_rows"] = int(row.rows)
        found["endpoint_window_start"] = str(row.window_start)
        if row.realized == row.realized:
            found[f"endpoint_realized_{metric}"] = MetadataValue.float(float(row.realized))
    return found
