"""Stage `monitoring`: drift of the newest data against what the champion was trained on.

Wiring only: the sampling, the drift test and its summaries are in `ml/drift.py`."""

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..monitoring.alerts import raise_alert
from ..monitoring.evidently_workspace import add_snapshot
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION, ModelRegistry
from ..runtime.executor import IMPORTS_TAG
from ..runtime.progress import Progress
from ..settings import Settings
from .drift_history import drift_over_time
from .metadata import commit_info, markdown_table

if TYPE_CHECKING:
    import pandas as pd

    from ..ml.drift import DriftResult

DRIFT_CHECK = "no_dataset_drift"


def monitoring_assets(settings: Settings):
    names = settings.names

    @asset(
        name=names.drift_report,
        key_prefix=names.prefix,
        group_name=names.group("monitoring"),
        deps=[names.key(names.features), names.key(names.predictions), names.key("champion_model_version")],
        kinds={"evidently", "mlflow"},
        required_resource_keys={"mlflow", "lakehouse", "registry", "spark", "step_launcher"},
        op_tags={IMPORTS_TAG: "evidently"},  # 2-3 s, imported while batch scoring runs
        automation_condition=AutomationCondition.eager(),
        check_specs=[
            AssetCheckSpec(
                DRIFT_CHECK,
                asset=names.key(names.drift_report),
                description=f"Warns when at least {settings.monitoring.drift_share:.0%} of the feature columns drifted "
                "(feeds the drift sensor).",
            )
        ],
        description=_description(settings),
    )
    def drift_report(context: AssetExecutionContext):
        yield from measure_drift(context, settings)

    return [drift_report]


class Reference(NamedTuple):
    """The champion's training rows the current data is compared with: a sample, and where it is from."""

    frame: "pd.DataFrame"
    available: int
    table: str
    version: int

    @property
    def text(self) -> str:
        return f"{self.table} v{self.version} (train split: {len(self.frame):,} of {self.available:,} rows)"


def measure_drift(context: AssetExecutionContext, settings: Settings):
    """The `drift_report` asset: the current data against the champion's training data."""
    from ..ml.drift import detect_drift
    from ..ml.problem import problem_type
    from .inference import NoChampionError

    fs, share = settings.features, settings.monitoring.drift_share
    lakehouse: Lakehouse = context.resources.lakehouse
    registry: ModelRegistry = context.resources.registry.for_use_case(settings)
    session = context.resources.spark.session()
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise NoChampionError("no champion model: drift is measured against the champion's training data")
    problem = problem_type(settings.problem_type)
    reference = _reference(settings, lakehouse, session, champion, problem)
    current, source = (
        served_requests(settings, lakehouse, session)
        if settings.monitoring.current == "inference_table"
        else _newest_batch(settings, lakehouse, session)
    )
    with Progress(context.log.info, "drift report"):
        score = _score_both_sides(context, settings, registry, champion, problem, reference.frame, current)
        result = detect_drift(
            reference.frame,
            current,
            fs.numeric_columns,
            fs.categorical,
            share,
            metadata={"reference": reference.text, "current": source},
            prediction=score,
        )
    now = datetime.now(UTC)
    report_path = result.save_html(
        Path(settings.reports_path, "drift", settings.name, f"drift_{now:%Y%m%dT%H%M%S%f}Z.html")
    )
    add_snapshot(settings.evidently_path, settings.name, result.snapshot, settings.problem_type)
    run_id = _log_to_mlflow(result, report_path, reference.frame, current, str(champion.version))
    over_time = _append_history(
        context,
        settings,
        lakehouse,
        result,
        now,
        reference,
        current,
        source,
        str(champion.version),
        report_path,
        run_id,
    )
    alert = _alert(context, settings, lakehouse, result, reference, source, str(champion.version))
    context.log.info(
        f"drift report: {result.verdict}, {result.drifted_columns}/{len(result.columns)} columns drifted"
    )
    metadata = _metadata(
        settings, result, reference, current, source, str(champion.version), report_path, run_id, alert
    )
    yield MaterializeResult(metadata={**metadata, **over_time})
    yield AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not result.dataset_drift,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "drift_share": MetadataValue.float(result.drift_share),
            "threshold_share": share,
            "drifted_columns": result.drifted_columns,
            "report_path": MetadataValue.path(str(report_path)),
        },
        description=f"{result.drift_share:.0%} of feature columns drifted (threshold {share:.0%}).",
    )


def _reference(settings: Settings, lakehouse: Lakehouse, session, champion, problem) -> Reference:
    """A seeded sample of the `train` split of the exact table version the champion was trained on."""
    from pyspark.sql import functions as F

    from ..ml.drift import drift_sample
    from ..ml.training import LABEL, SPLIT

    table, version = champion.tags["training_set"], int(champion.tags["training_set_version"])
    trained_on = lakehouse.read_spark(session, table, version).where(F.col(SPLIT) == "train")
    trained_on, stratum = problem.strata(trained_on, LABEL)
    frame, available = drift_sample(
        trained_on,
        stratum,
        lakehouse.row_count(table, version),
        settings.monitoring.sample_rows,
        settings.features.columns,
        settings.training.seed,
        settings.dataset.key,
    )
    return Reference(frame, available, table, version)


def _newest_batch(settings: Settings, lakehouse: Lakehouse, session) -> "tuple[pd.DataFrame, str]":
    """A seeded sample of the newest landing batch in the feature table, and what it is."""
    from ..ml.drift import drift_sample, newest_batch

    table = settings.table(settings.names.features)
    current, available = drift_sample(
        newest_batch(lakehouse.read_spark(session, table)),
        None,
        lakehouse.row_count(table),
        settings.monitoring.sample_rows,
        settings.features.columns,
        settings.training.seed,
        settings.dataset.key,
    )
    return current, f"newest landing batch: {len(current):,} of {available:,} rows"


def served_requests(settings: Settings, lakehouse: Lakehouse, session) -> "tuple[pd.DataFrame, str]":
    """The newest rows the endpoint scored successfully in the last `window_hours` (its inference
    table), at most `monitoring.sample_rows` of them; and how many requests the window held. A
    request that today's parser refuses (scored by an older gateway that accepted, say, Infinity)
    is left out and counted, not allowed to fail the report."""
    import pandas as pd
    from pyspark.sql import functions as F

    from ..serving.capture import answered
    from ..serving.payload import BadRequest, Column, parse_rows

    fs, table, sample_rows = settings.features, settings.inference_table(), settings.monitoring.sample_rows
    since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=settings.monitoring.window_hours)
    served = answered(lakehouse.read_spark(session, table), since)
    columns = [Column(c, "string" if c in fs.categorical else "double") for c in fs.columns]
    rows: list = []
    refused = 0
    newest_first = served.orderBy(F.desc("request_time")).select("request").limit(sample_rows)
    for request in newest_first.toLocalIterator():
        try:
            rows.extend(parse_rows(request["request"].encode(), columns, max_rows=10**9))
        except BadRequest:
            refused += 1
        if len(rows) >= sample_rows:
            break
    if not rows:
        raise ValueError(
            f"no successful requests in {table} in the last {settings.monitoring.window_hours:g} h: "
            "nothing to compare with the training data"
        )
    shown = (
        f"the newest {min(len(rows), sample_rows):,} rows of {served.count():,} requests to "
        f"{settings.serving.endpoint}"
        + (f" ({refused:,} left out: their payload is refused today)" if refused else "")
    )
    return pd.DataFrame(rows[:sample_rows], columns=fs.columns), shown


def _score_both_sides(
    context: AssetExecutionContext,
    settings: Settings,
    registry: ModelRegistry,
    champion,
    problem,
    reference: "pd.DataFrame",
    current: "pd.DataFrame",
) -> str | None:
    """The champion's own output added to both sides (prediction drift, beside the features'); the
    score column, or None when the champion cannot be loaded (its data drift report is still made)."""
    columns, score = settings.features.columns, settings.score_column
    try:
        model = registry.load_sklearn(champion.version)
        reference[score], current[score] = (
            problem.score(model, frame[columns]) for frame in (reference, current)
        )
    except Exception as exc:
        context.log.warning(
            f"prediction drift left out: {settings.mlflow.model_name} v{champion.version} "
            f"could not score the rows ({type(exc).__name__}: {exc})"
        )
        return None
    return score


def _log_to_mlflow(
    result: "DriftResult",
    report_path: Path,
    reference: "pd.DataFrame",
    current: "pd.DataFrame",
    model_version: str,
) -> str:
    """The drift figures and the HTML report in a nested MLflow run: its id."""
    import mlflow

    with mlflow.start_run(run_name="drift_report", nested=True) as run:
        mlflow.log_metrics(
            {
                "drift_share": result.drift_share,
                "drifted_columns": result.drifted_columns,
                "reference_rows": len(reference),
                "current_rows": len(current),
            }
        )
        mlflow.log_artifact(str(report_path), artifact_path="drift")
        mlflow.set_tags(
            {
                "mlops.stage": "monitoring",
                "model_version": model_version,
                "dataset_drift": str(result.dataset_drift),
            }
        )
    return run.info.run_id


def _append_history(
    context: AssetExecutionContext,
    settings: Settings,
    lakehouse: Lakehouse,
    result: "DriftResult",
    now: datetime,
    reference: Reference,
    current: "pd.DataFrame",
    source: str,
    model_version: str,
    report_path: Path,
    run_id: str,
) -> dict:
    """One row of the drift history (the verdict in figures, both sides and where the report is) and
    its rows per column (`drift_over_time`); the latter's metadata."""
    import pandas as pd

    row = {
        "report_time": pd.Timestamp(now),
        **result.summary(),
        "reference_table": reference.table,
        "reference_version": reference.version,
        "reference_rows": len(reference.frame),
        "current_rows": len(current),
        "current_source": source,
        "model_version": model_version,
        "report_path": str(report_path),
        "mlflow_run_id": run_id,
        "dagster_run_id": context.run.run_id,
    }
    lakehouse.write(
        settings.table(settings.names.drift_metrics),
        pd.DataFrame([row]),
        "append",
        commit_info=commit_info(context),
        description="One row per drift report: verdict, drift share and where the report is.",
    )
    return drift_over_time(context, settings, context.resources.spark.session(), result, current, now)


def _alert(
    context: AssetExecutionContext,
    settings: Settings,
    lakehouse: Lakehouse,
    result: "DriftResult",
    reference: Reference,
    source: str,
    model_version: str,
) -> str | None:
    """A drift alert when the dataset drifted: the webhook's status (None: no alert)."""
    if not result.dataset_drift:
        return None
    alert = raise_alert(
        lakehouse,
        settings,
        "drift",
        result.alert_text(),
        {
            "drift_share": result.drift_share,
            "drifted_columns": result.drifted(),
            "current": source,
            "reference": reference.text,
            "model_version": model_version,
        },
        context.run.run_id,
    )
    context.log.warning(f"drift alert raised (webhook: {alert})")
    return alert


def _metadata(
    settings: Settings,
    result: "DriftResult",
    reference: Reference,
    current: "pd.DataFrame",
    source: str,
    model_version: str,
    report_path: Path,
    run_id: str,
    alert: str | None,
) -> dict:
    prediction = result.prediction
    return {
        "dataset_drift": result.dataset_drift,
        "verdict": result.verdict,
        "drift_share": MetadataValue.float(result.drift_share),
        "drifted_columns": result.drifted_columns,
        "threshold_share": settings.monitoring.drift_share,
        "column_scores": markdown_table(result.column_scores()),
        "report_path": MetadataValue.path(str(report_path)),
        "reference": reference.text,
        "reference_rows": len(reference.frame),
        "reference_rows_available": reference.available,
        "current_rows": len(current),
        "current_source": source,
        "sample_rows": settings.monitoring.sample_rows,
        "champion_version": model_version,
        **(
            {
                "prediction_drift": prediction.drifted,
                "prediction_drift_score": prediction.score,
                "prediction_drift_method": prediction.method,
            }
            if prediction
            else {"prediction_drift": MetadataValue.text("not measured: the champion could not be loaded")}
        ),
        "mlflow_run_id": run_id,
        **({"drift_alert_webhook": alert} if alert else {}),
    }


def _description(settings: Settings) -> str:
    """The asset's description in the UI (which data against which, how sampled, where it goes)."""
    mon = settings.monitoring
    return (
        "Evidently DataDriftPreset report: current data ("
        + (
            f"the requests the endpoint answered in the last {mon.window_hours:g} h, from its inference table"
            if mon.current == "inference_table"
            else "the newest landing batch: the latest ingestion time in the feature table"
        )
        + f") against the `train` split the {CHAMPION} model was trained on (the exact Delta "
        f"version recorded on the model version); each side a seeded sample of at most {mon.sample_rows:,} rows. "
        f"The dataset drifted when at least {mon.drift_share:.0%} of the "
        "feature columns drifted. The HTML report is saved, logged to MLflow and added to the Evidently "
        "workspace; drift share and per-column scores are appended to "
        f"`{settings.table(settings.names.drift_metrics)}`."
    )
