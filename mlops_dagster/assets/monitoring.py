"""Stage `monitoring`: drift of the newest data against what the champion was trained on."""

from datetime import datetime, timezone
from pathlib import Path

from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, AutomationCondition,
    MaterializeResult, MetadataValue, asset,
)

from ..monitoring.alerts import raise_alert
from ..monitoring.evidently_workspace import add_snapshot
from ..runtime.executor import IMPORTS_TAG
from ..runtime.progress import Progress
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION, ModelRegistry
from ..settings import INGESTED_AT, Settings
from .metadata import commit_info, markdown_table

DRIFT_CHECK = "no_dataset_drift"


def monitoring_assets(settings: Settings):
    key, fs, names = settings.dataset.key, settings.features, settings.names
    features_table = settings.table(names.features)
    drift_table = settings.table(names.drift_metrics)
    share = settings.monitoring.drift_share

    sample_rows = settings.monitoring.sample_rows

    def served_requests(lakehouse: Lakehouse, session):
        """The newest rows the endpoint scored successfully in the last `window_hours` (its inference
        table), at most `monitoring.sample_rows` of them; and how many requests the window held."""
        import pandas as pd
        from pyspark.sql import functions as F

        from ..serving.capture import answered
        from ..serving.payload import Column, parse_rows

        table = settings.inference_table()
        since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=settings.monitoring.window_hours)
        served = answered(lakehouse.read_spark(session, table), since)
        columns = [Column(c, "string" if c in fs.categorical else "double") for c in fs.columns]
        rows: list = []
        newest_first = served.orderBy(F.desc("request_time")).select("request").limit(sample_rows)
        for request in newest_first.toLocalIterator():
            rows.extend(parse_rows(request["request"].encode(), columns, max_rows=10**9))
            if len(rows) >= sample_rows:
                break
        if not rows:
            raise ValueError(f"no successful requests in {table} in the last {settings.monitoring.window_hours:g} h: "
                             "nothing to compare with the training data")
        shown = f"the newest {min(len(rows), sample_rows):,} rows of {served.count():,} requests to {settings.serving.endpoint}"
        return pd.DataFrame(rows[:sample_rows], columns=fs.columns), shown

    @asset(
        name=names.drift_report, key_prefix=names.prefix, group_name=names.group("monitoring"),
        deps=[names.key(names.features), names.key(names.predictions), names.key("champion_model_version")],
        kinds={"evidently", "mlflow"},
        required_resource_keys={"mlflow", "lakehouse", "registry", "spark", "step_launcher"},
        op_tags={IMPORTS_TAG: "evidently"},  # 2-3 s, imported while batch scoring runs
        automation_condition=AutomationCondition.eager(),
        check_specs=[AssetCheckSpec(
            DRIFT_CHECK, asset=names.key(names.drift_report),
            description=f"Warns when at least {share:.0%} of the feature columns drifted (feeds the drift sensor).",
        )],
        description=(
            "Evidently DataDriftPreset report: current data ("
            + ("the requests the endpoint answered in the last "
               f"{settings.monitoring.window_hours:g} h, from its inference table" if settings.monitoring.current
               == "inference_table" else "the newest landing batch: the latest ingestion time in the feature table")
            + f") against the `train` split the {CHAMPION} model was trained on (the exact Delta "
            f"version recorded on the model version); each side a seeded sample of at most {sample_rows:,} rows. "
            f"The dataset drifted when at least {share:.0%} of the "
            "feature columns drifted. The HTML report is saved, logged to MLflow and added to the Evidently "
            f"workspace; drift share and per-column scores are appended to `{drift_table}`."
        ),
    )
    def drift_report(context: AssetExecutionContext):
        import mlflow
        import pandas as pd
        from pyspark.sql import functions as F

        from ..ml.drift import detect_drift
        from ..ml.problem import problem_type
        from ..ml.sampling import stratified_sample
        from ..ml.training import LABEL, SPLIT, to_pandas
        from .inference import NoChampionError

        lakehouse: Lakehouse = context.resources.lakehouse
        registry: ModelRegistry = context.resources.registry.for_use_case(settings)
        session = context.resources.spark.session()
        champion = registry.by_alias(CHAMPION)
        if champion is None:
            raise NoChampionError("no champion model: drift is measured against the champion's training data")
        reference_table = champion.tags["training_set"]
        reference_version = int(champion.tags["training_set_version"])
        def sample(frame, label: str, table_rows: int):
            """At most `sample_rows` rows of ``frame`` (seeded, stratified on ``label``) as pandas, and how
            many rows it had. A table that fits (its Delta row count says so) is read as it is."""
            if table_rows <= sample_rows:
                picked = to_pandas(frame, fs.columns)
                return picked, len(picked)
            sampled = stratified_sample(frame, label, sample_rows, settings.training.seed, key)
            return to_pandas(sampled.frame, fs.columns), sampled.available_rows

        problem = problem_type(settings.problem_type)
        trained_on = lakehouse.read_spark(session, reference_table, reference_version).where(F.col(SPLIT) == "train")
        trained_on, stratum = problem.strata(trained_on, LABEL)
        reference, reference_available = sample(trained_on, stratum, lakehouse.row_count(reference_table, reference_version))
        if settings.monitoring.current == "inference_table":
            current, source = served_requests(lakehouse, session)
        else:
            features = lakehouse.read_spark(session, features_table)
            newest = features.agg(F.max(INGESTED_AT)).first()[0]
            batch = features.where(F.col(INGESTED_AT) == F.lit(newest)).withColumn("_all", F.lit(0))
            current, available = sample(batch, "_all", lakehouse.row_count(features_table))
            source = f"newest landing batch: {len(current):,} of {available:,} rows"
        reference_text = (f"{reference_table} v{reference_version} (train split: {len(reference):,} of "
                          f"{reference_available:,} rows)")
        with Progress(context.log.info, "drift report"):
            # The champion's own output on both sides: prediction drift, beside the features'. A
            # champion that cannot be loaded still gets its data drift report.
            score = settings.score_column
            try:
                model = registry.load_sklearn(champion.version)
                reference[score], current[score] = (problem.score(model, frame[fs.columns])
                                                    for frame in (reference, current))
            except Exception as exc:
                context.log.warning(f"prediction drift left out: {settings.mlflow.model_name} v{champion.version} "
                                    f"could not score the rows ({type(exc).__name__}: {exc})")
                score = None
            result = detect_drift(reference, current, fs.numeric_columns, fs.categorical, share,
                                  metadata={"reference": reference_text, "current": source}, prediction=score)
        now = datetime.now(timezone.utc)
        report_path = result.save_html(
            Path(settings.reports_path, "drift", settings.name, f"drift_{now:%Y%m%dT%H%M%S%f}Z.html")
        )
        add_snapshot(settings.evidently_path, settings.name, result.snapshot, settings.problem_type)
        with mlflow.start_run(run_name="drift_report", nested=True) as run:
            mlflow.log_metrics({"drift_share": result.drift_share, "drifted_columns": result.drifted_columns,
                                "reference_rows": len(reference), "current_rows": len(current)})
            mlflow.log_artifact(str(report_path), artifact_path="drift")
            mlflow.set_tags({"mlops.stage": "monitoring", "model_version": str(champion.version),
                             "dataset_drift": str(result.dataset_drift)})
        row = {
            "report_time": pd.Timestamp(now), "dataset_drift": result.dataset_drift,
            "drift_share": result.drift_share, "drifted_columns": result.drifted_columns,
            "columns_checked": len(result.columns), "threshold_share": share,
            "reference_table": reference_table, "reference_version": reference_version,
            "reference_rows": len(reference), "current_rows": len(current), "current_source": source,
            "model_version": str(champion.version),
            "report_path": str(report_path), "mlflow_run_id": run.info.run_id,
            "dagster_run_id": context.run.run_id,
        }
        lakehouse.write(drift_table, pd.DataFrame([row]), "append", commit_info=commit_info(context),
                        description="One row per drift report: verdict, drift share and where the report is.")
        verdict = "DRIFT" if result.dataset_drift else "no drift"
        alert = None
        if result.dataset_drift:
            drifted = [c.column for c in result.columns if c.drifted]
            alert = raise_alert(lakehouse, settings, "drift", (
                f"{result.drifted_columns} of {len(result.columns)} feature columns drifted (share "
                f"{result.drift_share:.2f}, threshold {share:.2f}): {', '.join(drifted[:8])}"
                + (", ..." if len(drifted) > 8 else "")),
                {"drift_share": result.drift_share, "drifted_columns": drifted, "current": source,
                 "reference": reference_text, "model_version": str(champion.version)}, context.run.run_id)
            context.log.warning(f"drift alert raised (webhook: {alert})")
        scores = markdown_table([
            {"column": c.column, "method": c.method, "score": round(c.score, 4), "threshold": c.threshold,
             "drifted": c.drifted} for c in sorted(result.columns, key=lambda c: -c.score)
        ])
        context.log.info(f"drift report: {verdict}, {result.drifted_columns}/{len(result.columns)} columns drifted")
        yield MaterializeResult(metadata={
            "dataset_drift": result.dataset_drift, "verdict": verdict,
            "drift_share": MetadataValue.float(result.drift_share), "drifted_columns": result.drifted_columns,
            "threshold_share": share, "column_scores": scores,
            "report_path": MetadataValue.path(str(report_path)),
            "reference": reference_text, "reference_rows": len(reference),
            "reference_rows_available": reference_available, "current_rows": len(current), "current_source": source,
            "sample_rows": sample_rows, "champion_version": str(champion.version),
            **({"prediction_drift": result.prediction.drifted, "prediction_drift_score": result.prediction.score,
                "prediction_drift_method": result.prediction.method} if result.prediction else
               {"prediction_drift": MetadataValue.text("not measured: the champion could not be loaded")}),
            "mlflow_run_id": run.info.run_id, **({"drift_alert_webhook": alert} if alert else {}),
        })
        yield AssetCheckResult(
            check_name=DRIFT_CHECK, passed=not result.dataset_drift, severity=AssetCheckSeverity.WARN,
            metadata={"drift_share": MetadataValue.float(result.drift_share), "threshold_share": share,
                      "drifted_columns": result.drifted_columns, "report_path": MetadataValue.path(str(report_path))},
            description=f"{result.drift_share:.0%} of feature columns drifted (threshold {share:.0%}).",
        )

    return [drift_report]
