"""Stage `monitoring`: how the champion does on the newest batch, estimated before its outcomes arrive.

Wiring only: CBPE, DLE, the groups and the history rows are in `ml/estimation.py`."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..monitoring.alerts import raise_alert
from ..monitoring.evidently_workspace import add_figures
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION
from ..runtime.executor import IMPORTS_TAG
from ..settings import INGESTED_AT, Settings
from .endpoint_estimation import SCORE, endpoint_metadata, estimate_endpoint, newest_window
from .metadata import commit_info

if TYPE_CHECKING:
    import pandas as pd

ESTIMATE_CHECK = "no_estimated_decay"
_BAND = (("", "estimated"), ("_lower", "lower"), ("_upper", "upper"))


def estimation_assets(settings: Settings):
    names = settings.names
    metric, drop = settings.validation.compare_metric, settings.monitoring.max_performance_drop
    check = AssetCheckSpec(
        ESTIMATE_CHECK,
        asset=names.key(names.estimated_performance),
        description=f"Warns when the champion's estimated {metric} on the newest batch is more than "
        f"{drop:g} worse than its validated figure (before any outcome says so).",
    )

    @asset(
        name=names.estimated_performance,
        key_prefix=names.prefix,
        group_name=names.group("monitoring"),
        deps=[
            names.key(names.predictions),
            names.key(names.ground_truth),
            names.key("champion_model_version"),
        ],
        kinds={"spark", "delta"},
        required_resource_keys={"lakehouse", "registry", "spark", "step_launcher"},
        op_tags={IMPORTS_TAG: "sklearn"},
        check_specs=[check],
        description=_description(settings),
    )
    def estimated_performance(context: AssetExecutionContext):
        yield from estimate_performance(context, settings)

    return [estimated_performance]


def estimate_performance(context: AssetExecutionContext, settings: Settings):
    """The `estimated_performance` asset: the champion's figures on the newest batch, estimated
    from its outputs, and realized beside them once outcomes judge the batch."""
    from ..ml.estimation import CLASSIFICATION_ESTIMATES, REGRESSION_ESTIMATES, history, per_group
    from ..ml.performance import Judge
    from ..ml.problem import problem_type
    from .inference import NoChampionError

    lakehouse: Lakehouse = context.resources.lakehouse
    registry = context.resources.registry.for_use_case(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise NoChampionError("no champion model: performance is estimated for the champion's predictions")
    session, problem, mon = (
        context.resources.spark.session(),
        problem_type(settings.problem_type),
        settings.monitoring,
    )
    try:
        model = registry.load_sklearn(champion.version)
    except Exception as exc:
        raise Failure(
            f"{settings.mlflow.model_name} v{champion.version}, the {CHAMPION}, could not be loaded "
            f"({type(exc).__name__}: {exc}): its performance cannot be estimated without its outputs. "
            "Restore its artifacts, or train and promote a version that loads (training_job)."
        ) from None
    reference = _reference(settings, lakehouse, session, champion, problem)
    batch = _newest_batch(settings, lakehouse, session)
    for frame in (reference, batch):
        frame[SCORE] = problem.score(model, frame[settings.features.columns])
    method, measure = _estimator(settings, problem, reference)
    estimates = per_group(batch, settings.slices, mon.min_labelled_rows, measure)
    labelled = _labelled(settings, lakehouse, session, batch, problem)
    judge = Judge(SCORE, problem, settings.inference.decision_threshold, mon.min_labelled_rows)
    realized = per_group(labelled, settings.slices, mon.min_labelled_rows, judge) if len(labelled) else {}
    metric = settings.validation.compare_metric
    validated = champion.tags.get(f"metric.{metric}")
    validated = None if validated is None else float(validated)
    now, batch_at = datetime.now(UTC), batch[INGESTED_AT].max()
    base = {
        "estimated_at": now,
        "model_name": settings.mlflow.model_name,
        "model_version": str(champion.version),
        "batch_ingested_at": batch_at,
        "method": method,
        "dagster_run_id": context.run.run_id,
    }
    rows = history(estimates, realized, base, metric, validated)
    lakehouse.write(
        settings.table(settings.names.estimated_performance),
        rows,
        "append",
        commit_info=commit_info(context),
        description="The champion's performance estimated per scored batch, model version and slice group "
        "(CBPE or DLE, with a band), the realized figure beside it once outcomes judged the batch.",
    )
    windows = estimate_endpoint(
        context,
        settings,
        problem,
        lambda part: per_group(part, settings.slices, mon.min_labelled_rows, measure),
        judge,
        base,
        {str(champion.version): validated},
    )
    whole, newest = rows[rows["slice"] == "all"], newest_window(windows, str(champion.version))
    plotted = CLASSIFICATION_ESTIMATES[0] if problem.classifies else REGRESSION_ESTIMATES[0]
    add_figures(
        settings.evidently_path,
        settings.name,
        "estimated_performance",
        {**_plotted(whole, ""), **_plotted(newest[newest["metric"] == plotted], "endpoint_")},
        settings.problem_type,
    )
    endpoint = endpoint_metadata(windows, newest, metric)
    yield from _results(context, settings, lakehouse, rows, str(champion.version), len(reference), endpoint)


def _reference(settings: Settings, lakehouse: Lakehouse, session, champion, problem) -> "pd.DataFrame":
    """A seeded sample of the `test` split of the champion's training set: rows the model did not
    learn from, with their outcomes (what the estimators are fitted on)."""
    from pyspark.sql import functions as F

    from ..ml.drift import drift_sample
    from ..ml.training import LABEL, SPLIT

    table, version = champion.tags["training_set"], int(champion.tags["training_set_version"])
    held_out = lakehouse.read_spark(session, table, version).where(F.col(SPLIT) == "test")
    held_out, stratum = problem.strata(held_out, LABEL)
    frame, _ = drift_sample(
        held_out,
        stratum,
        lakehouse.row_count(table, version),
        settings.monitoring.sample_rows,
        [*settings.features.columns, LABEL],
        settings.training.seed,
        settings.dataset.key,
    )
    return frame


def _newest_batch(settings: Settings, lakehouse: Lakehouse, session) -> "pd.DataFrame":
    """A seeded sample of the newest landing batch of the feature table, as the champion scores it."""
    from ..ml.drift import drift_sample, newest_batch

    table, key = settings.table(settings.names.features), settings.dataset.key
    frame, _ = drift_sample(
        newest_batch(lakehouse.read_spark(session, table)),
        None,
        lakehouse.row_count(table),
        settings.monitoring.sample_rows,
        list(dict.fromkeys([key, INGESTED_AT, *settings.features.columns])),
        settings.training.seed,
        key,
    )
    return frame


def _plotted(whole: "pd.DataFrame", prefix: str) -> dict[str, float]:
    """The dashboard's figures of whole-batch (or whole-window) rows: each metric's estimate, its
    band and the realized figure."""
    return {
        **{
            f"{prefix}estimated_{r.metric}{end}": getattr(r, col)
            for r in whole.itertuples()
            for end, col in _BAND
        },
        **{f"{prefix}realized_{r.metric}": r.realized for r in whole.itertuples()},
    }


def _estimator(settings: Settings, problem, reference: "pd.DataFrame"):
    """The method's name and what estimates a group of the batch (a frame with `SCORE`)."""
    from ..ml.estimation import calibrator, cbpe, estimate_dle, loss_model
    from ..ml.training import LABEL

    z, fs = settings.monitoring.estimation_band, settings.features
    if problem.classifies:
        calibrated = calibrator(reference[SCORE], reference[LABEL]).predict
        threshold = settings.inference.decision_threshold
        return "CBPE", lambda part: cbpe(part[SCORE], calibrated(part[SCORE].to_numpy()), threshold, z)
    losses = loss_model(
        reference[fs.columns], fs.categorical, reference[SCORE], reference[LABEL], settings.training.seed
    )
    return "DLE", lambda part: estimate_dle(losses, part[fs.columns], part[SCORE], z)


def _labelled(settings: Settings, lakehouse: Lakehouse, session, batch: "pd.DataFrame", problem):
    """The batch's rows that an outcome observed after the batch (within `max_delay_days`) judges,
    with its `label` (the newest outcome per key); empty before any outcome arrived."""
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    from ..ml.performance import LABEL

    ds, truth = settings.dataset, settings.monitoring.ground_truth
    table = settings.table(settings.names.ground_truth)
    if not lakehouse.exists(table):
        return batch.iloc[0:0].assign(**{LABEL: []})
    since = pd.Timestamp(batch[INGESTED_AT].max())
    keys = session.createDataFrame(batch[[ds.key]].astype(str))
    newest = Window.partitionBy(ds.key).orderBy(F.desc(truth.time_column))
    outcomes = (
        lakehouse.read_spark(session, table)
        .where(F.col(truth.time_column) >= F.lit(since.to_pydatetime()))
        .where(
            F.col(truth.time_column)
            <= F.lit((since + pd.Timedelta(days=truth.max_delay_days)).to_pydatetime())
        )
        .join(F.broadcast(keys), ds.key)
        .withColumn("_rank", F.row_number().over(newest))
        .where(F.col("_rank") == 1)
        .select(ds.key, problem.label(F.col(ds.label), ds.positive_label).alias(LABEL))
        .toPandas()  # at most one row per key of the bounded batch sample
    )
    return batch.assign(**{ds.key: batch[ds.key].astype(str)}).merge(outcomes, on=ds.key)


def _results(
    context,
    settings: Settings,
    lakehouse: Lakehouse,
    rows: "pd.DataFrame",
    version: str,
    reference: int,
    endpoint: dict,
):
    """The alert when an estimate (the batch's, or the endpoint's newest window's) fell too far,
    the metadata (plotted) and the warn check."""
    from ..ml.performance import ESTIMATED_ON, estimated_drops

    metric, allowed = settings.validation.compare_metric, settings.monitoring.max_performance_drop
    whole = rows[(rows["slice"] == "all")].set_index("metric")
    validated = float(whole.loc[metric, "validated"]) if metric in whole.index else None
    # What is judged against the validated figure: the batch, and the endpoint's newest window.
    window = endpoint.get(f"{ESTIMATED_ON['endpoint window']}estimated_{metric}")
    estimates = {
        "batch": float(whole.loc[metric, "estimated"]) if metric in whole.index else None,
        "endpoint window": window.value if window is not None else None,
    }
    drops = estimated_drops(metric, validated, estimates)
    decayed = any(fell > allowed for fell in drops.values())
    method = whole["method"].iloc[0]
    text = (
        f"{settings.mlflow.model_name} v{version} estimated {metric} ({method}): "
        + "; ".join(f"{where} {estimates[where]:.3f} ({fell:.3f} below)" for where, fell in drops.items())
        + f"; its validation figure {validated:.3f} (allowed drop {allowed:g})"
        if drops
        else f"{metric} not estimated or not validated: nothing to compare"
    )
    alert = None
    if decayed:
        details = {"model_version": version, "metric": metric, "drop": max(drops.values()), "drops": drops}
        alert = raise_alert(lakehouse, settings, "estimated_decay", text, details, context.run.run_id)
        context.log.warning(f"estimated decay alert raised (webhook: {alert})")
    context.log.info(f"estimated performance: {text}")
    fell = {f"{ESTIMATED_ON[where]}estimated_drop": MetadataValue.float(d) for where, d in drops.items()}
    yield MaterializeResult(
        metadata={**_metadata(whole, version, reference, decayed, alert), **endpoint, **fell}
    )
    yield AssetCheckResult(
        check_name=ESTIMATE_CHECK,
        passed=not decayed,
        severity=AssetCheckSeverity.WARN,
        metadata=fell or {"estimated_drop": MetadataValue.text("n/a")},
        description=text,
    )


def _metadata(whole: "pd.DataFrame", version: str, reference: int, decayed: bool, alert) -> dict:
    figures = {}
    for metric, row in whole.iterrows():
        figures[f"estimated_{metric}"] = MetadataValue.float(float(row["estimated"]))
        figures[f"estimated_{metric}_lower"] = MetadataValue.float(float(row["lower"]))
        figures[f"estimated_{metric}_upper"] = MetadataValue.float(float(row["upper"]))
        if row["realized"] == row["realized"]:  # not NaN: outcomes judged the batch
            figures[f"realized_{metric}"] = MetadataValue.float(float(row["realized"]))
    return {
        "method": str(whole["method"].iloc[0]),
        "champion_version": version,
        "batch_rows": int(whole["rows"].iloc[0]),
        "labelled_rows": int(whole["labelled_rows"].iloc[0]),
        "reference_rows": reference,
        **figures,
        "estimated_decay": decayed,
        **({"estimated_decay_alert_webhook": alert} if alert else {}),
    }


def _description(settings: Settings) -> str:
    mon, method = settings.monitoring, "CBPE" if settings.classifies else "DLE"
    return (
        f"The {CHAMPION} model's performance on the newest landing batch estimated without outcomes ({method}: "
        + (
            "its probabilities calibrated on its training set's test split give an expected confusion matrix "
            "and ROC curve"
            if settings.classifies
            else "a loss model learnt on its training set's test split predicts each row's error"
        )
        + f"), with a band of {mon.estimation_band:g} standard errors, overall and per slice group, on a seeded "
        f"sample of at most {mon.sample_rows:,} rows. Once outcomes judge the batch, the realized figure is "
        f"written beside the estimate. Appended to `{settings.table(settings.names.estimated_performance)}`. "
        f"The endpoint's answers are estimated the same way per window of {mon.window_hours:g} hours and served "
        f"version, into `{settings.table(settings.names.endpoint_estimates)}`. "
        "It sees changes of the inputs, not a world where the same inputs lead to other outcomes."
    )
