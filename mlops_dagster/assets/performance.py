"""Stage `monitoring`: how the models did on the outcomes that arrived after their predictions."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, MaterializeResult, MetadataValue,
    asset,
)

from ..monitoring.alerts import raise_alert
from ..monitoring.evidently_workspace import add_snapshot
from .metadata import commit_info, markdown_table
from ..runtime.progress import Progress
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION, ModelRegistry
from ..settings import PROBLEM_METRICS, Settings

DECAY_CHECK = "no_performance_decay"
SLICE_CHECK = "no_slice_disparity"


def performance_assets(settings: Settings):
    ds, names, mon = settings.dataset, settings.names, settings.monitoring
    truth, metric, score = mon.ground_truth, settings.validation.compare_metric, settings.score_column
    truth_table, log_table = settings.table(names.ground_truth), settings.table(names.prediction_log)
    endpoint_table = settings.inference_table()
    history_table = settings.table(names.model_performance)
    threshold = settings.inference.decision_threshold
    metrics = (*PROBLEM_METRICS[settings.problem_type], *(("brier_score", "positive_rate") if settings.classifies else ()))
    key = names.key(names.model_performance)
    slices = settings.slices
    unused = [c for c in mon.slices if c not in slices]
    gap_limits = {c: g for c, g in mon.max_slice_gaps.items() if c in slices}
    checks = [AssetCheckSpec(
        DECAY_CHECK, asset=key, description=(
            f"Fails (warn) when the {CHAMPION}'s {metric} on outcomes is worse than at validation by more than "
            f"{mon.max_performance_drop:g}: an alert goes out and the decay sensor requests a retraining."))]
    if gap_limits:
        gaps_text = "; ".join(f"{c}: " + ", ".join(f"{m} {g:g}" for m, g in gaps.items())
                              for c, gaps in gap_limits.items())
        checks.append(AssetCheckSpec(SLICE_CHECK, asset=key, description=(
            f"Fails (warn) when two groups of a slice differ by more than the gap allowed ({gaps_text}) in the "
            f"{CHAMPION}'s figures on outcomes; names the slice, the groups and the gap.")))

    @asset(
        name=names.model_performance, key_prefix=names.prefix, group_name=names.group("monitoring"),
        deps=[names.key(names.ground_truth), names.key(names.predictions)],
        kinds={"spark", "evidently", "mlflow", "delta"},
        required_resource_keys={"mlflow", "lakehouse", "registry", "spark", "step_launcher"},
        check_specs=checks,
        description=(
            f"Each outcome in `{truth_table}` judges the newest prediction for its `{ds.key}` made at or "
            f"before its `{truth.time_column}` (at most {truth.max_delay_days:g} days before), from "
            f"`{log_table}` and the endpoint's answers in `{endpoint_table}` to requests that named their "
            f"`{ds.key}` (the newest {mon.sample_rows:,} requests of the window; joined on Spark); outcomes observed in the last {mon.performance_window_days:g} days "
            "are judged. Per model version: {', '.join(metrics)} and how many labelled "
            f"predictions are behind them (a seeded sample of at most {mon.performance_rows:,}; fewer than "
            f"{mon.min_labelled_rows} are not judged), appended to `{history_table}` with the {CHAMPION}'s "
            + f"figures per day and per group of {', '.join(slices) or 'no slice'} "
            + f"and its drop from validation. Evidently's {'classification' if settings.classifies else 'regression'} "
            "report of the champion is saved as HTML, logged to MLflow and added to the Evidently workspace."
            + (f" Slices {unused} are unused: they are not model features." if unused else "")
        ),
    )
    def model_performance(context: AssetExecutionContext):
        import pandas as pd
        from pyspark.sql import functions as F

        from ..ml.performance import drop, figures, labelled_predictions, performance_report, slice_gaps
        from ..ml.problem import problem_type

        lakehouse: Lakehouse = context.resources.lakehouse
        registry: ModelRegistry = context.resources.registry.for_use_case(settings)
        champion = registry.by_alias(CHAMPION)
        missing = [t for t in (truth_table, log_table) if not lakehouse.exists(t)]
        if log_table in missing and lakehouse.exists(endpoint_table):
            missing.remove(log_table)  # the endpoint's answers alone can be judged
        if missing or champion is None:
            reason = (f"no {CHAMPION} model yet" if champion is None else
                      f"nothing to judge yet: {' and '.join(missing)} not written (outcome files go to "
                      f"{settings.ground_truth_path}; batch predictions fill {log_table})")
            context.log.info(f"model performance: {reason}")
            yield MaterializeResult(metadata={"judged": False, "reason": reason})
            for spec in checks:
                yield AssetCheckResult(check_name=spec.name, passed=True, severity=AssetCheckSeverity.WARN,
                                       metadata={"judged": False}, description=f"not judged: {reason}")
            return

        problem = problem_type(settings.problem_type)
        session = context.resources.spark.session()
        now = datetime.now(timezone.utc)
        since = now - timedelta(days=mon.performance_window_days)
        outcomes = lakehouse.read_spark(session, truth_table).where(F.col(truth.time_column) >= F.lit(since))
        with Progress(context.log.info, "model performance", spark=session) as progress, \
                lakehouse.staging_dir() as staging:
            progress.say(f"joining outcomes to the predictions they judge ({log_table}, {endpoint_table})")
            predictions = _predictions(lakehouse, session, since)
            joined = labelled_predictions(outcomes, predictions, ds.key, ds.label,
                                          truth.time_column, truth.max_delay_days,
                                          lambda column: problem.label(column, ds.positive_label))
            joined.write.parquet(f"{staging}/judged")  # once: counted, then sampled per version
            joined = session.read.parquet(f"{staging}/judged")
            tally = joined.groupBy("model_version", "source").count().collect()
            counts = {}
            for r in tally:
                counts[r["model_version"]] = counts.get(r["model_version"], 0) + r["count"]
            sources = {s: sum(r["count"] for r in tally if r["source"] == s) for s in ("batch", "endpoint")}
            champion_version, champion_frame, per_version = str(champion.version), None, {}
            for version in sorted(counts, key=int):  # one version's sample in memory at a time (and the champion's)
                progress.say(f"{settings.mlflow.model_name} v{version}: {counts[version]:,} labelled predictions")
                frame = _sample(joined.where(F.col("model_version") == version), counts[version], problem)
                per_version[version] = figures(frame, score, problem, threshold, mon.min_labelled_rows)
                if version == champion_version:
                    champion_frame = frame
                del frame
        outcome_rows = lakehouse.row_count(truth_table)
        judged = per_version.get(champion_version)
        validated = champion.tags.get(f"metric.{metric}")

        decay = None  # (measured, validated, drop) when the champion could be judged
        if judged is not None and judged.metrics and validated is not None:
            decay = (judged.metrics[metric], float(validated), drop(metric, float(validated), judged.metrics[metric]))
        decayed = decay is not None and decay[2] > mon.max_performance_drop

        groups, gaps, breaches = {}, [], []
        if judged is not None and judged.metrics:
            frame = champion_frame
            # Rows without the slice's value (endpoint answers: requests carry no slice features) are left
            # out of that slice's groups.
            by = {**{column: frame[column] for column in slices}, "day": frame[truth.time_column].dt.date}
            groups = {column: {str(value): figures(part, score, problem, threshold, mon.min_labelled_rows)
                               for value, part in frame.groupby(values)} for column, values in by.items()}
            gaps = slice_gaps(groups, {c: tuple(gap_limits.get(c, {})) for c in slices})
            breaches = [g for g in gaps if g.gap > gap_limits[g.slice][g.metric]]

        report_path = run_id = None
        if judged is not None and judged.metrics:
            import mlflow

            snapshot = performance_report(champion_frame, score, problem, threshold, metadata={
                "model": f"{settings.mlflow.model_name} v{champion_version}",
                "labelled_predictions": str(judged.rows)})
            report_path = Path(settings.reports_path, "performance", settings.name, f"performance_{now:%Y%m%dT%H%M%S%f}Z.html")
            report_path.parent.mkdir(parents=True, exist_ok=True)
            snapshot.save_html(str(report_path))
            add_snapshot(settings.evidently_path, settings.name, snapshot, settings.problem_type)
            with mlflow.start_run(run_name="model_performance", nested=True) as run:
                mlflow.log_metrics({**{f"outcome_{m}": v for m, v in judged.metrics.items()},
                                    "labelled_predictions": judged.rows})
                mlflow.log_artifact(str(report_path), artifact_path="performance")
                mlflow.set_tags({"mlops.stage": "monitoring", "model_version": champion_version,
                                 "decayed": str(decayed)})
            run_id = run.info.run_id

        base = {"evaluated_at": pd.Timestamp(now), "model_name": settings.mlflow.model_name,
                "window_start": pd.Timestamp(since), "window_end": pd.Timestamp(now), "dagster_run_id": context.run.run_id}
        rows = [{**base, "model_version": version, "slice": "all", "group": "all", "labelled_predictions": counts[version],
                 "rows_used": f.rows, "reason": f.reason, "is_champion": version == champion_version,
                 **{m: f.metrics.get(m) for m in metrics},
                 "compare_metric": metric,
                 "validated_value": decay[1] if decay and version == champion_version else None,
                 "performance_drop": decay[2] if decay and version == champion_version else None,
                 "decayed": decayed if version == champion_version else None}
                for version, f in per_version.items()]
        rows += [{**base, "model_version": champion_version, "slice": column, "group": group, "labelled_predictions": f.rows,
                  "rows_used": f.rows, "reason": f.reason, "is_champion": True, **{m: f.metrics.get(m) for m in metrics},
                  "compare_metric": metric, "validated_value": None, "performance_drop": None, "decayed": None}
                 for column, by_group in groups.items() for group, f in by_group.items()]
        if rows:
            # Declared types: a column that is empty in one evaluation keeps its type in the table.
            types = {**{m: "float64" for m in metrics}, "validated_value": "float64", "performance_drop": "float64",
                     "decayed": "boolean", "is_champion": "bool", "labelled_predictions": "int64", "rows_used": "int64",
                     "reason": "string", "window_start": "datetime64[us, UTC]", "window_end": "datetime64[us, UTC]"}
            lakehouse.write(history_table, pd.DataFrame(rows).astype(types), "append",
                            commit_info=commit_info(context),
                            description="Model figures on outcomes, per evaluation, model version and slice group.")

        alerts = {}
        if decayed:
            alerts["decay"] = raise_alert(
                lakehouse, settings, "decay",
                f"{settings.mlflow.model_name} v{champion_version} {metric} {decay[0]:.3f} on {judged.rows:,} outcomes, "
                f"{decay[2]:.3f} below its validation figure {decay[1]:.3f} (allowed drop {mon.max_performance_drop:g})",
                {"model_version": champion_version, "metric": metric, "measured": decay[0], "validated": decay[1],
                 "drop": decay[2], "labelled_predictions": judged.rows}, context.run.run_id)
        if breaches:
            alerts["bias"] = raise_alert(
                lakehouse, settings, "bias", "; ".join(_gap_text(g) for g in breaches),
                {"model_version": champion_version, "gaps": [g.__dict__ for g in breaches]}, context.run.run_id)
        for kind, status in alerts.items():
            context.log.warning(f"{kind} alert raised (webhook: {status})")

        versions = markdown_table([
            {"model version": v + (" (champion)" if v == champion_version else ""), "labelled predictions": counts[v],
             "rows used": f.rows, **{m: round(f.metrics[m], 4) for m in metrics if m in f.metrics},
             "not judged because": f.reason} for v, f in per_version.items()])
        verdict = ("not judged: " + (judged.reason if judged else f"no outcome answers a prediction of v{champion_version}")
                   if decay is None else ("DECAY" if decayed else "no decay")
                   + f": {metric} {decay[0]:.4f} on outcomes vs {decay[1]:.4f} at validation")
        context.log.info(f"model performance of v{champion_version}: {verdict}")
        yield MaterializeResult(metadata={
            "judged": decay is not None, "verdict": verdict, "champion_version": champion_version,
            "outcomes": outcome_rows, "window_days": mon.performance_window_days,
            "outcomes_in_window_judging_a_prediction": sum(counts.values()),
            "judged_batch_predictions": sources["batch"], "judged_endpoint_answers": sources["endpoint"],
            "labelled_predictions": judged.rows if judged else 0, "versions": versions,
            **({f"champion_{m}": MetadataValue.float(v) for m, v in judged.metrics.items()} if judged else {}),
            **({f"validated_{metric}": MetadataValue.float(decay[1]), "performance_drop": MetadataValue.float(decay[2]),
                "max_performance_drop": mon.max_performance_drop, "decayed": decayed} if decay else {}),
            **({"largest_slice_gap": MetadataValue.float(max(g.gap for g in gaps)),
                "slice_gaps": markdown_table([{"slice": g.slice, "metric": g.metric, "gap": round(g.gap, 4),
                                               "highest": g.best, "lowest": g.worst} for g in gaps])} if gaps else {}),
            **({"report_path": MetadataValue.path(str(report_path)), "mlflow_run_id": run_id} if report_path else {}),
            **{f"{kind}_alert_webhook": status for kind, status in alerts.items() if status},
            "history_table": history_table,
        })
        yield AssetCheckResult(
            check_name=DECAY_CHECK, passed=not decayed, severity=AssetCheckSeverity.WARN,
            metadata={"judged": decay is not None, **({"measured": MetadataValue.float(decay[0]),
                      "validated": MetadataValue.float(decay[1]), "drop": MetadataValue.float(decay[2])} if decay else {})},
            description=verdict,
        )
        if len(checks) > 1:
            yield AssetCheckResult(
                check_name=SLICE_CHECK, passed=not breaches, severity=AssetCheckSeverity.WARN,
                metadata={"judged": bool(gaps), **({"largest_gap": MetadataValue.float(max(g.gap for g in gaps))}
                                                   if gaps else {})},
                description=("; ".join(_gap_text(g) for g in breaches) if breaches else
                             f"every slice within its allowed gap ({len(gaps)} gaps measured)" if gaps
                             else "not judged: no slice had two groups with enough labelled predictions"),
            )

    def _predictions(lakehouse: Lakehouse, session, since):
        """What the models predicted: the batch prediction log, and the endpoint's answers of the window
        (its inference table; the newest `monitoring.sample_rows` requests that named their key)."""
        batch = lakehouse.read_spark(session, log_table) if lakehouse.exists(log_table) else None
        answered = _endpoint_answers(lakehouse, session, since)
        if batch is None:
            return answered
        return batch if answered is None else batch.unionByName(answered, allowMissingColumns=True)

    def _endpoint_answers(lakehouse: Lakehouse, session, since):
        import pandas as pd
        from pyspark.sql import functions as F

        from ..serving.capture import answered
        from ..serving.payload import keyed_answers

        if not lakehouse.exists(endpoint_table):
            return None
        served = answered(lakehouse.read_spark(session, endpoint_table), since).where(
            F.col("model_name") == settings.mlflow.model_name)
        # Times as microseconds since the epoch: no time zone between Spark and pandas to get wrong.
        newest = served.orderBy(F.desc("request_time")).select(
            "request", "response", "model_version", F.unix_micros("request_time").alias("at")).limit(mon.sample_rows)
        rows = []
        for r in newest.toLocalIterator():  # bounded by the limit, read to its end
            for key, answer in keyed_answers(r["request"], r["response"], ds.key):
                value = answer[1] if settings.classifies and isinstance(answer, list) else answer
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append((key, float(value), str(r["model_version"]), r["at"]))
        if not rows:
            return None
        frame = pd.DataFrame(rows, columns=[ds.key, score, "model_version", "scored_at"])
        if settings.classifies:
            frame["prediction"] = (frame[score] >= threshold).astype("int32")
        answered = session.createDataFrame(frame.assign(model_name=settings.mlflow.model_name, source="endpoint"))
        return answered.withColumn("scored_at", F.timestamp_micros("scored_at"))

    def _sample(frame, rows: int, problem):
        """At most `monitoring.performance_rows` labelled predictions of one model version, as pandas
        (seeded, stratified on the outcome for a classifier)."""
        from ..ml.performance import LABEL
        from ..ml.sampling import stratified_sample
        from ..ml.training import to_pandas

        columns = [LABEL, score, truth.time_column, *slices]
        if rows > mon.performance_rows:
            strata, stratum = problem.strata(frame, LABEL)
            frame = stratified_sample(strata, stratum, mon.performance_rows, settings.training.seed, ds.key).frame
        return to_pandas(frame, columns)

    return [model_performance]


def _gap_text(gap) -> str:
    return f"{gap.slice}: {gap.metric} {gap.gap:.3f} apart between {gap.best!r} and {gap.worst!r}"
