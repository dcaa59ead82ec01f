"""Stage `monitoring`: how the models did on the outcomes that arrived after their predictions.

Wiring only: the join, the tallies, the figures and the decay arithmetic are in `ml/performance.py`."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..monitoring.alerts import raise_alert
from ..monitoring.evidently_workspace import add_snapshot
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION
from ..runtime.progress import Progress
from ..settings import Settings, reported_metrics
from .databricks_monitors import databricks_monitors
from .metadata import commit_info, markdown_table

if TYPE_CHECKING:
    from ..ml.performance import Evaluation, Judge

DECAY_CHECK = "no_performance_decay"
SLICE_CHECK = "no_slice_disparity"


def performance_assets(settings: Settings):
    names = settings.names
    checks = _check_specs(settings)

    @asset(
        name=names.model_performance,
        key_prefix=names.prefix,
        group_name=names.group("monitoring"),
        deps=[names.key(names.ground_truth), names.key(names.predictions)],
        kinds={"spark", "evidently", "mlflow", "delta"},
        required_resource_keys={
            "mlflow",
            "lakehouse",
            "registry",
            "spark",
            "step_launcher",
            "table_monitors",
        },
        check_specs=checks,
        description=_description(settings),
    )
    def model_performance(context: AssetExecutionContext):
        yield from judge_model_performance(context, settings, checks)

    return [model_performance]


def judge_model_performance(context: AssetExecutionContext, settings: Settings, checks: list[AssetCheckSpec]):
    """The `model_performance` asset: every model version judged on the outcomes of the window."""
    from ..ml.performance import Criteria, evaluate, history

    lakehouse: Lakehouse = context.resources.lakehouse
    champion = context.resources.registry.for_use_case(settings).by_alias(CHAMPION)
    monitors = databricks_monitors(context, settings)
    reason = _nothing_to_judge(settings, lakehouse, champion)
    if reason:
        context.log.info(f"model performance: {reason}")
        yield MaterializeResult(metadata={"judged": False, "reason": reason, **monitors})
        for spec in checks:
            yield AssetCheckResult(
                check_name=spec.name,
                passed=True,
                severity=AssetCheckSeverity.WARN,
                metadata={"judged": False},
                description=f"not judged: {reason}",
            )
        return

    mon, metric = settings.monitoring, settings.validation.compare_metric
    now = datetime.now(UTC)
    since = now - timedelta(days=mon.performance_window_days)
    judge, champion_version = _judge(settings), str(champion.version)
    counted, per_version, frame = _judge_versions(
        context, settings, lakehouse, since, judge, champion_version
    )
    criteria = Criteria(
        metric,
        mon.max_performance_drop,
        tuple(settings.slices),
        _gap_limits(settings),
        mon.ground_truth.time_column,
    )
    evaluation = evaluate(
        champion_version, counted, per_version, frame, champion.tags.get(f"metric.{metric}"), criteria, judge
    )
    report_path, run_id = _report(settings, evaluation, frame, judge, now)
    metrics = reported_metrics(settings.problem_type, settings.classifies)
    rows = history(evaluation, metrics, settings.mlflow.model_name, since, now, context.run.run_id)
    if len(rows):
        lakehouse.write(
            settings.table(settings.names.model_performance),
            rows,
            "append",
            commit_info=commit_info(context),
            description="Model figures on outcomes, per evaluation, model version and slice group.",
        )
    alerts = _alerts(context, settings, lakehouse, evaluation)
    context.log.info(f"model performance of v{champion_version}: {evaluation.verdict}")
    outcomes = lakehouse.row_count(settings.table(settings.names.ground_truth))
    yield MaterializeResult(
        metadata={
            **_metadata(settings, evaluation, metrics, outcomes, report_path, run_id, alerts),
            **monitors,
        }
    )
    yield from _check_results(evaluation, checks)


def _nothing_to_judge(settings: Settings, lakehouse: Lakehouse, champion) -> str | None:
    """Why nothing can be judged yet (no champion, no outcomes or no predictions), or None."""
    truth_table, log_table = (
        settings.table(settings.names.ground_truth),
        settings.table(settings.names.prediction_log),
    )
    missing = [t for t in (truth_table, log_table) if not lakehouse.exists(t)]
    if log_table in missing and lakehouse.exists(settings.inference_table()):
        missing.remove(log_table)  # the endpoint's answers alone can be judged
    if champion is None:
        return f"no {CHAMPION} model yet"
    if missing:
        return (
            f"nothing to judge yet: {' and '.join(missing)} not written (outcome files go to "
            f"{settings.ground_truth_path}; batch predictions fill {log_table})"
        )
    return None


def _judge(settings: Settings) -> "Judge":
    from ..ml.performance import Judge
    from ..ml.problem import problem_type

    return Judge(
        settings.score_column,
        problem_type(settings.problem_type),
        settings.inference.decision_threshold,
        settings.monitoring.min_labelled_rows,
    )


def _gap_limits(settings: Settings) -> dict[str, dict[str, float]]:
    """The slices with an allowed gap that are model features (the others cannot be reported on)."""
    return {c: g for c, g in settings.monitoring.max_slice_gaps.items() if c in settings.slices}


def _judge_versions(
    context: AssetExecutionContext,
    settings: Settings,
    lakehouse: Lakehouse,
    since: datetime,
    judge: "Judge",
    champion_version: str,
):
    """On Spark, each outcome of the window joined to the prediction it judges; then each model
    version's figures on a bounded sample. The tally, the figures per version and the champion's sample."""
    from pyspark.sql import functions as F

    from ..ml.performance import (
        LABEL,
        count_judged,
        judge_versions,
        labelled_predictions,
        labelled_sample,
    )

    ds, mon, log_table = settings.dataset, settings.monitoring, settings.table(settings.names.prediction_log)
    truth, problem = mon.ground_truth, judge.problem
    session = context.resources.spark.session()
    outcomes = lakehouse.read_spark(session, settings.table(settings.names.ground_truth)).where(
        F.col(truth.time_column) >= F.lit(since)
    )
    columns = [LABEL, judge.score, truth.time_column, *settings.slices]
    with (
        Progress(context.log.info, "model performance", spark=session) as progress,
        lakehouse.staging_dir() as staging,
    ):
        progress.say(
            f"joining outcomes to the predictions they judge ({log_table}, {settings.inference_table()})"
        )
        joined = labelled_predictions(
            outcomes,
            _predictions(settings, lakehouse, session, since),
            ds.key,
            ds.label,
            truth.time_column,
            truth.max_delay_days,
            lambda column: problem.label(column, ds.positive_label),
        )
        joined.write.parquet(f"{staging}/judged")  # once: counted, then sampled per version
        joined = session.read.parquet(f"{staging}/judged")
        counted = count_judged(joined)
        per_version, frame = judge_versions(
            joined,
            counted.versions,
            champion_version,
            lambda rows, count: labelled_sample(
                rows, count, mon.performance_rows, problem, columns, settings.training.seed, ds.key
            ),
            judge,
            lambda version, count: progress.say(
                f"{settings.mlflow.model_name} v{version}: {count:,} labelled predictions"
            ),
        )
    return counted, per_version, frame


def _predictions(settings: Settings, lakehouse: Lakehouse, session, since: datetime):
    """What the models predicted: the batch prediction log, and the endpoint's answers of the window
    (its inference table; the newest `monitoring.sample_rows` requests that named their key)."""
    log_table = settings.table(settings.names.prediction_log)
    batch = lakehouse.read_spark(session, log_table) if lakehouse.exists(log_table) else None
    answered = endpoint_answers(settings, lakehouse, session, since)
    if batch is None:
        return answered
    return batch if answered is None else batch.unionByName(answered, allowMissingColumns=True)


def endpoint_answers(settings: Settings, lakehouse: Lakehouse, session, since: datetime):
    """The endpoint's answers since ``since`` to requests that named their key (the newest
    `monitoring.sample_rows` requests), as predictions: a Spark frame of the key, the score column,
    ``model_version``, ``scored_at``, ``model_name`` and ``source``; None when there are none."""
    from pyspark.sql import functions as F

    from ..ml.performance import endpoint_scores
    from ..serving.capture import answered
    from ..serving.payload import keyed_answers

    table, key, model_name = settings.inference_table(), settings.dataset.key, settings.mlflow.model_name
    if not lakehouse.exists(table):
        return None
    served = answered(lakehouse.read_spark(session, table), since).where(F.col("model_name") == model_name)
    # Times as microseconds since the epoch: no time zone between Spark and pandas to get wrong.
    newest = (
        served.orderBy(F.desc("request_time"))
        .select("request", "response", "model_version", F.unix_micros("request_time").alias("at"))
        .limit(settings.monitoring.sample_rows)
    )
    frame = endpoint_scores(
        (
            (k, answer, str(r["model_version"]), r["at"])  # bounded by the limit, read to its end
            for r in newest.toLocalIterator()
            for k, answer in keyed_answers(r["request"], r["response"], key)
        ),
        key,
        settings.score_column,
        settings.classifies,
        settings.inference.decision_threshold,
    )
    if frame is None:
        return None
    answers = session.createDataFrame(frame.assign(model_name=model_name, source="endpoint"))
    return answers.withColumn("scored_at", F.timestamp_micros("scored_at"))


def _report(settings: Settings, evaluation: "Evaluation", frame, judge: "Judge", now: datetime):
    """Evidently's report of the champion's labelled predictions: saved as HTML, added to the Evidently
    workspace and logged to MLflow with its figures. (report path, MLflow run id), or Nones when not judged."""
    judged = evaluation.judged
    if judged is None or not judged.metrics:
        return None, None
    import mlflow

    from ..ml.performance import performance_report

    version = evaluation.champion_version
    snapshot = performance_report(
        frame,
        judge.score,
        judge.problem,
        judge.threshold,
        metadata={
            "model": f"{settings.mlflow.model_name} v{version}",
            "labelled_predictions": str(judged.rows),
        },
    )
    report_path = Path(
        settings.reports_path, "performance", settings.name, f"performance_{now:%Y%m%dT%H%M%S%f}Z.html"
    )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report_path))
    add_snapshot(settings.evidently_path, settings.name, snapshot, settings.problem_type)
    with mlflow.start_run(run_name="model_performance", nested=True) as run:
        mlflow.log_metrics(
            {**{f"outcome_{m}": v for m, v in judged.metrics.items()}, "labelled_predictions": judged.rows}
        )
        mlflow.log_artifact(str(report_path), artifact_path="performance")
        mlflow.set_tags(
            {"mlops.stage": "monitoring", "model_version": version, "decayed": str(evaluation.decayed)}
        )
    return report_path, run.info.run_id


def _alerts(
    context: AssetExecutionContext, settings: Settings, lakehouse: Lakehouse, evaluation: "Evaluation"
) -> dict[str, str | None]:
    """A decay alert and a bias alert when the evaluation calls for them: kind -> the webhook's status."""
    from ..ml.performance import gap_text

    e, version, metric, alerts = evaluation, evaluation.champion_version, evaluation.metric, {}
    if e.decayed:
        measured, validated, drop = e.decay
        alerts["decay"] = raise_alert(
            lakehouse,
            settings,
            "decay",
            f"{settings.mlflow.model_name} v{version} {metric} {measured:.3f} on {e.judged.rows:,} outcomes, "
            f"{drop:.3f} below its validation figure {validated:.3f} (allowed drop "
            f"{settings.monitoring.max_performance_drop:g})",
            {
                "model_version": version,
                "metric": metric,
                "measured": measured,
                "validated": validated,
                "drop": drop,
                "labelled_predictions": e.judged.rows,
            },
            context.run.run_id,
        )
    if e.breaches:
        alerts["bias"] = raise_alert(
            lakehouse,
            settings,
            "bias",
            "; ".join(gap_text(g) for g in e.breaches),
            {"model_version": version, "gaps": [g.__dict__ for g in e.breaches]},
            context.run.run_id,
        )
    for kind, status in alerts.items():
        context.log.warning(f"{kind} alert raised (webhook: {status})")
    return alerts


def _metadata(
    settings: Settings,
    evaluation: "Evaluation",
    metrics: tuple[str, ...],
    outcomes: int,
    report_path: Path | None,
    run_id: str | None,
    alerts: dict[str, str | None],
) -> dict:
    from ..ml.performance import version_summary

    e, judged, decay, gaps = evaluation, evaluation.judged, evaluation.decay, evaluation.gaps
    return {
        "judged": decay is not None,
        "verdict": e.verdict,
        "champion_version": e.champion_version,
        "outcomes": outcomes,
        "window_days": settings.monitoring.performance_window_days,
        "outcomes_in_window_judging_a_prediction": e.tally.total,
        "judged_batch_predictions": e.tally.sources["batch"],
        "judged_endpoint_answers": e.tally.sources["endpoint"],
        "labelled_predictions": judged.rows if judged else 0,
        "versions": markdown_table(version_summary(e, metrics)),
        **({f"champion_{m}": MetadataValue.float(v) for m, v in judged.metrics.items()} if judged else {}),
        **(
            {
                f"validated_{e.metric}": MetadataValue.float(decay.validated),
                "performance_drop": MetadataValue.float(decay.drop),
                "max_performance_drop": settings.monitoring.max_performance_drop,
                "decayed": e.decayed,
            }
            if decay
            else {}
        ),
        **(
            {
                "largest_slice_gap": MetadataValue.float(max(g.gap for g in gaps)),
                "slice_gaps": markdown_table(
                    [
                        {
                            "slice": g.slice,
                            "metric": g.metric,
                            "gap": round(g.gap, 4),
                            "highest": g.best,
                            "lowest": g.worst,
                        }
                        for g in gaps
                    ]
                ),
            }
            if gaps
            else {}
        ),
        **(
            {"report_path": MetadataValue.path(str(report_path)), "mlflow_run_id": run_id}
            if report_path
            else {}
        ),
        **{f"{kind}_alert_webhook": status for kind, status in alerts.items() if status},
        "history_table": settings.table(settings.names.model_performance),
    }


def _check_results(evaluation: "Evaluation", checks: list[AssetCheckSpec]):
    decay, gaps = evaluation.decay, evaluation.gaps
    yield AssetCheckResult(
        check_name=DECAY_CHECK,
        passed=not evaluation.decayed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "judged": decay is not None,
            **(
                {
                    "measured": MetadataValue.float(decay.measured),
                    "validated": MetadataValue.float(decay.validated),
                    "drop": MetadataValue.float(decay.drop),
                }
                if decay
                else {}
            ),
        },
        description=evaluation.verdict,
    )
    if len(checks) > 1:
        yield AssetCheckResult(
            check_name=SLICE_CHECK,
            passed=not evaluation.breaches,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "judged": bool(gaps),
                **({"largest_gap": MetadataValue.float(max(g.gap for g in gaps))} if gaps else {}),
            },
            description=evaluation.slice_verdict,
        )


def _check_specs(settings: Settings) -> list[AssetCheckSpec]:
    """The decay check, and the slice check when a slice has an allowed gap."""
    mon, metric, gap_limits = settings.monitoring, settings.validation.compare_metric, _gap_limits(settings)
    key = settings.names.key(settings.names.model_performance)
    checks = [
        AssetCheckSpec(
            DECAY_CHECK,
            asset=key,
            description=(
                f"Fails (warn) when the {CHAMPION}'s {metric} on outcomes is worse than at validation by more than "
                f"{mon.max_performance_drop:g}: an alert goes out and the decay sensor requests a retraining."
            ),
        )
    ]
    if gap_limits:
        gaps_text = "; ".join(
            f"{c}: " + ", ".join(f"{m} {g:g}" for m, g in gaps.items()) for c, gaps in gap_limits.items()
        )
        checks.append(
            AssetCheckSpec(
                SLICE_CHECK,
                asset=key,
                description=(
                    f"Fails (warn) when two groups of a slice differ by more than the gap allowed ({gaps_text}) in the "
                    f"{CHAMPION}'s figures on outcomes; names the slice, the groups and the gap."
                ),
            )
        )
    return checks


def _description(settings: Settings) -> str:
    """The asset's description in the UI (what is joined to what, what is reported, where it goes)."""
    ds, names, mon, slices = settings.dataset, settings.names, settings.monitoring, settings.slices
    truth = mon.ground_truth
    truth_table, log_table = settings.table(names.ground_truth), settings.table(names.prediction_log)
    metrics = reported_metrics(settings.problem_type, settings.classifies)
    unused = [c for c in mon.slices if c not in slices]
    return (
        f"Each outcome in `{truth_table}` judges the newest prediction for its `{ds.key}` made at or "
        f"before its `{truth.time_column}` (at most {truth.max_delay_days:g} days before), from "
        f"`{log_table}` and the endpoint's answers in `{settings.inference_table()}` to requests that named their "
        f"`{ds.key}` (the newest {mon.sample_rows:,} requests of the window; joined on Spark); outcomes observed "
        f"in the last {mon.performance_window_days:g} days "
        f"are judged. Per model version: {', '.join(metrics)} and how many labelled "
        f"predictions are behind them (a seeded sample of at most {mon.performance_rows:,}; fewer than "
        f"{mon.min_labelled_rows} are not judged), appended to `{settings.table(names.model_performance)}` "
        f"with the {CHAMPION}'s "
        + f"figures per day and per group of {', '.join(slices) or 'no slice'} "
        + f"and its drop from validation. Evidently's {'classification' if settings.classifies else 'regression'} "
        "report of the champion is saved as HTML, logged to MLflow and added to the Evidently workspace."
        + (f" Slices {unused} are unused: they are not model features." if unused else "")
    )
