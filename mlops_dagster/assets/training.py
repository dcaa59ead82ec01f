"""Stage `training`: the versioned training set and the trained model (an MLflow run)."""

import hashlib
import json
import tempfile
import warnings
from dataclasses import dataclass

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, Output, asset

from ..runtime.executor import IMPORTS_TAG
from ..governance.audit import AUDIT_TABLE, record, table_written
from ..runtime.progress import Progress
from ..resources.lakehouse import Lakehouse
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import PROBLEM_METRICS, Settings
from .metadata import commit_info, markdown_table, table_metadata


def bounded_training_frames(lakehouse: Lakehouse, spark: SparkResource, settings: Settings, table: str, version: int):
    """(train, holdout, rows available per split or None) in pandas: the rows a model of
    ``settings`` learns from and is judged on. Made here only, from the table version and the
    settings, so the training step and the champion comparison get the same rows."""
    from ..ml.problem import problem_type
    from ..ml.training import LABEL, bounded_frames

    return bounded_frames(
        lambda columns: lakehouse.read_arrow(table, version, columns),
        lambda: lakehouse.read_spark(spark.session(), table, version), [*settings.features.columns, LABEL],
        settings.dataset.key, settings.training.max_rows, settings.training.seed, lakehouse.row_count(table, version),
        problem_type(settings.problem_type))


# What the model step imports besides its estimator's module: scikit-learn's pipeline parts and
# metrics, matplotlib for the plots, skops and MLflow's flavor to log the model.
_MODEL_STEP_IMPORTS = ("sklearn.pipeline", "sklearn.compose", "sklearn.impute", "sklearn.preprocessing",
                       "sklearn.metrics", "matplotlib.pyplot", "skops.io", "mlflow.sklearn")
# From this many training rows the fit takes long enough (seconds, in one thread) for Spark's Python
# workers to get ready for batch scoring beside it; below, that would only compete with it.
_LONG_FIT_ROWS = 200_000


@dataclass(frozen=True)
class TrainedModel:
    """What the training step hands to the registry: the MLflow run and its logged model."""

    run_id: str
    model_uri: str
    model_id: str | None
    metrics: dict[str, float]
    training_set: str
    training_set_version: int
    experiment_id: str
    feature_lookups: str = "[]"  # JSON: the feature tables, Delta versions and features looked up


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where to look at a run: the MLflow UI path (open it in `mlflow ui` or the workspace)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}" if tracking_uri.startswith("sqlite") else (
        f"{tracking_uri.rstrip('/')}/#mlflow/experiments/{experiment_id}/runs/{run_id}"
    )


def training_assets(settings: Settings):
    ds, fs, tr, names = settings.dataset, settings.features, settings.training, settings.names
    labels_table = settings.table(names.labels)
    training_table = settings.table(names.training_set)
    truth = settings.monitoring.ground_truth
    truth_table = settings.table(names.ground_truth) if truth.learn else None

    classifies = settings.classifies
    split_text = (f"stratified on the label, seed {tr.seed}, exact per class" if classifies
                  else f"seeded with {tr.seed}, exact")
    lookups_text = ", ".join(f"`{l.table}` by {'+'.join(l.lookup_key)}"
                             + (f" as of `{l.timestamp_lookup_key}`" if l.timestamp_lookup_key else "")
                             for l in settings.feature_store.training_lookups)

    @asset(
        name=names.training_set, key_prefix=names.prefix, group_name=names.group("training"),
        deps=[names.key(names.features), names.key(names.labels),
              *([names.key(names.ground_truth)] if truth_table else [])], kinds={"spark", "delta"},
        description=(
            (f"Labels (with the outcomes of `{truth_table}`: per key the newest of its dataset label and its "
             f"outcome, as of `{truth.time_column}`) " if truth_table else "Labels ")
            + f"joined point in time to their features ({lookups_text}) on Spark: each label gets the "
            "feature values known at its time, never later ones. Labels with no feature row yet are "
            f"left out (counted in the metadata). Split ({split_text}) "
            f"into `train` and `test` ({tr.test_size:.0%}) in the `split` column; a row's side depends only on its "
            f"key and the seed. Delta table `{training_table}`; it records the feature and label table versions "
            "it was built from, so every model can say exactly what it learned from."
        ),
        metadata={"dagster/table_name": training_table},
    )
    def training_set(
        context: AssetExecutionContext, lakehouse: Lakehouse, spark: SparkResource, step_launcher: StepLauncherParam,
    ) -> MaterializeResult:
        from ..ml.feature_lookup import FeatureLookup, all_matched, build_training_set, unmatched_counts
        from ..ml.problem import problem_type
        from ..ml.sampling import stratified_split
        from ..ml.training import LABEL, SPLIT

        session = spark.session()
        label_version = lakehouse.version(labels_table)
        labels = lakehouse.read_spark(session, labels_table, label_version)
        outcomes = {}
        if truth_table and lakehouse.exists(truth_table):
            labels, outcomes = _with_outcomes(lakehouse, session, labels, truth_table)
        lookups, recorded = [], []
        for lookup in settings.feature_store.training_lookups:
            spec = settings.feature_store.tables[lookup.table]
            table = settings.feature_table(lookup.table)
            looked_up = lookup.feature_names or settings.feature_names(lookup.table)
            version = lakehouse.version(table)
            columns = [*spec.keys, *([spec.timestamp_key] if spec.timestamp_key else []), *looked_up]
            lookups.append((FeatureLookup(table, lookup.lookup_key, looked_up, lookup.timestamp_lookup_key),
                            lakehouse.read_spark(session, table, version).select(*columns), spec.keys, spec.timestamp_key))
            recorded.append({"table": table, "version": version, "lookup_key": lookup.lookup_key,
                             "timestamp_lookup_key": lookup.timestamp_lookup_key, "features": looked_up})
        with Progress(context.log.info, "training set", spark=session) as progress, lakehouse.staging_dir() as staging:
            progress.say("looking features up point in time")
            joined = build_training_set(labels, lookups)
            missing = [c for c in fs.columns if c not in joined.columns]
            if missing:
                raise ValueError(f"the model features {missing} come from no feature lookup: add them to "
                                 "feature_store.training_lookups (feature_names) or to the looked-up tables")
            # Written once, so counting, splitting and writing do not each recompute the joins.
            joined.write.parquet(f"{staging}/joined")
            joined = session.read.parquet(f"{staging}/joined")
            tables = [l.table for l, *_ in lookups]
            unmatched = unmatched_counts(joined, tables)
            if unmatched.rows:
                context.log.warning(f"{unmatched.rows} labels predate every feature row of their key and are "
                                    f"left out of training (per table: {unmatched.per_table})")
            time_columns = [t for t in dict.fromkeys(l.timestamp_lookup_key for l, *_ in lookups) if t]
            frame = joined.where(all_matched(tables)).select(ds.key, *time_columns, *fs.columns, LABEL)
            progress.say("splitting train / test")
            problem = problem_type(settings.problem_type)
            stratified, stratum = problem.strata(frame, LABEL)
            split = stratified_split(stratified, ds.key, stratum, tr.test_size, tr.seed,
                                     min_classes=2 if problem.classifies else 1)
            counts = split.rows
            feature_version = recorded[0]["version"]
            lineage = {"features_table": recorded[0]["table"], "features_version": str(feature_version),
                       "labels_table": labels_table, "labels_version": str(label_version), **outcomes,
                       "feature_lookups": json.dumps(recorded)}
            progress.say(f"writing {training_table}")
            info = lakehouse.write_spark(
                training_table, split.frame.select(*frame.columns, SPLIT), "overwrite",
                commit_info={**commit_info(context), **lineage},
                properties={"primary_key": ds.key},
                description=f"Training set: {labels_table} with features looked up point in time "
                            f"from {', '.join(r['table'] for r in recorded)}, split seeded.",
            )
        record(lakehouse, settings.table(AUDIT_TABLE), table_written([info], settings.target, context.run.run_id))
        rows = sum(counts.values())
        return MaterializeResult(metadata={
            **table_metadata(info),
            "train_rows": sum(n for (side, _), n in counts.items() if side == "train"),
            "test_rows": sum(n for (side, _), n in counts.items() if side == "test"),
            **({"positive_rate": sum(n for (_, label), n in counts.items() if label == 1) / rows if rows else 0.0}
               if classifies else {}),
            "labels_without_features": unmatched.rows,
            "features_version": feature_version, "labels_version": label_version, **outcomes,
            "feature_lookups": markdown_table([
                {"table": r["table"], "delta_version": r["version"], "lookup_key": "+".join(r["lookup_key"]),
                 "as_of": r["timestamp_lookup_key"] or "latest", "features": len(r["features"])} for r in recorded]),
        })

    def _with_outcomes(lakehouse: Lakehouse, session, labels, table: str):
        """The labels with the outcomes that arrived later: per key, the newest of the two (an outcome's
        time is its label time, so its features are looked up as of when it was observed)."""
        from ..ml.feature_lookup import latest_per_key
        from ..ml.features import build_labels
        from ..ml.problem import problem_type
        from ..settings import INGESTED_AT

        version = lakehouse.version(table)
        outcomes = build_labels(lakehouse.read_spark(session, table, version), ds.key, ds.label,
                                problem_type(settings.problem_type), ds.positive_label, carry=(truth.time_column,))
        both = labels.select(ds.key, "label", INGESTED_AT).unionByName(
            outcomes.withColumnRenamed(truth.time_column, INGESTED_AT))
        return latest_per_key(both, [ds.key], INGESTED_AT), {"outcomes_table": table, "outcomes_version": str(version)}

    @asset(
        name=names.model, key_prefix=names.prefix, group_name=names.group("training"),
        deps=[names.key(names.training_set)], kinds={"scikitlearn", "mlflow"},
        required_resource_keys={"mlflow", "lakehouse", "spark", "step_launcher"},
        # Imported while the training set is built (3-4 s): its estimator's module and what fitting,
        # evaluating, plotting and logging the model import.
        op_tags={IMPORTS_TAG: ",".join([tr.model.class_path.rpartition(".")[0], *_MODEL_STEP_IMPORTS])},
        description=(
            f"A {tr.model.class_path.rsplit('.', 1)[-1]} pipeline (impute, one-hot encode, scale, "
            f"{'classify' if classifies else 'regress'}) trained on the `train` split (a seeded"
            f"{', stratified' if classifies else ''} sample of at most {tr.max_rows:,} rows when it is "
            "larger) and evaluated on `test` (sampled by the same fraction). Logged to MLflow experiment "
            f"`{settings.mlflow.experiment}` with parameters, metrics ({', '.join(PROBLEM_METRICS[settings.problem_type])}), "
            "signature, input example, plots and the training set's Delta version as input."
        ),
    )
    def trained_model(context: AssetExecutionContext):
        import mlflow
        from mlflow.models import infer_signature

        from ..governance.lineage import data_commit
        from ..ml.problem import problem_type
        from ..ml.training import (
            LABEL, MODEL_LOADING_MODULES, build_pipeline, fit, model_requirements, skops_trusted_types,
        )

        lakehouse: Lakehouse = context.resources.lakehouse
        version = lakehouse.version(training_table)
        feature_lookups = data_commit(lakehouse, training_table, version, "feature_lookups").get("feature_lookups", "[]")
        session = context.resources.spark.session()
        with Progress(context.log.info, "training", spark=session) as progress:
            progress.say("sampling the train and test splits")
            problem = problem_type(settings.problem_type)
            train, test, available = bounded_training_frames(lakehouse, context.resources.spark, settings,
                                                             training_table, version)
            available = available or {"train": len(train), "test": len(test)}
            if len(train) >= _LONG_FIT_ROWS:
                # The fit works in this thread, one core: meanwhile Spark's Python workers import what
                # batch scoring will need to load the model (3-4 s per worker, saved from scoring).
                context.resources.spark.import_in_python_workers(MODEL_LOADING_MODULES)
            progress.say(f"fitting on {len(train):,} rows")
            pipeline = fit(build_pipeline(tr.model.class_path, tr.model.params, fs.categorical, fs.numeric_columns,
                                          problem), train, fs.columns)
        threshold = settings.inference.decision_threshold
        scores = problem.score(pipeline, test[fs.columns])
        metrics = problem.evaluate(test[LABEL], scores, threshold)

        mlf = context.resources.mlflow
        run = mlflow.active_run()
        mlf.log_params({
            "model_class": tr.model.class_path, **{f"model.{k}": v for k, v in tr.model.params.items()},
            "problem_type": settings.problem_type, "test_size": tr.test_size, "seed": tr.seed,
            **({"decision_threshold": threshold} if classifies else {}),
            "n_features": len(fs.columns), "train_rows": len(train), "test_rows": len(test),
            "train_rows_available": available["train"], "test_rows_available": available["test"],
            "max_rows": tr.max_rows,
            "training_set": training_table, "training_set_version": version,
            "feature_tables": ", ".join(f"{t['table']}@v{t['version']}" for t in json.loads(feature_lookups)),
        })
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        source = lakehouse.mlflow_dataset_source(training_table, version)
        # The rows trained on are fixed by the table version, the seed and max_rows: that is their
        # digest (MLflow's own maps every value of the frame to its type: 2 s per million rows).
        identity = f"{training_table}@v{version}/seed={tr.seed}/max_rows={tr.max_rows}/rows={len(train)}"
        dataset = mlflow.data.from_pandas(train, source=source, targets=LABEL, name=training_table,
                                          digest=hashlib.sha256(identity.encode()).hexdigest()[:8])
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold missing values: only the 0/1 target is one.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            # Left to itself MLflow infers the schema from every value (83 s for 800,000 rows); the
            # column types are those of the first rows, as the Delta table gives them.
            dataset.schema = infer_signature(train.head(1000)).inputs
            mlflow.log_input(dataset, context="training")
        with tempfile.TemporaryDirectory() as plots_dir:
            for path in problem.save_plots(test[LABEL], scores, plots_dir, threshold):
                mlflow.log_artifact(str(path), artifact_path="plots")
        example = train[fs.columns].head(5)
        info = mlflow.sklearn.log_model(
            pipeline, name="model", signature=infer_signature(example, getattr(pipeline, problem.predict_method)(example)),
            input_example=example, pyfunc_predict_fn=problem.predict_method,
            skops_trusted_types=skops_trusted_types(pipeline), pip_requirements=model_requirements(),
        )
        mlflow.set_tags({"mlops.stage": "training", "mlops.target": settings.target, "mlops.problem_type": problem.name,
                         "mlops.feature_lookups": feature_lookups})

        trained = TrainedModel(
            run_id=run.info.run_id, model_uri=info.model_uri, model_id=getattr(info, "model_id", None),
            metrics=metrics, training_set=training_table, training_set_version=version,
            experiment_id=run.info.experiment_id, feature_lookups=feature_lookups,
        )
        return Output(trained, metadata={
            "mlflow_run_id": trained.run_id,
            "mlflow_run": MetadataValue.text(run_url(settings.mlflow.tracking_uri, trained.experiment_id, trained.run_id)),
            "mlflow_tracking_uri": settings.mlflow.tracking_uri,
            "model_uri": trained.model_uri,
            "training_set_version": version,
            "train_rows_used": len(train), "train_rows_available": available["train"],
            "holdout_rows_used": len(test), "holdout_rows_available": available["test"],
            **{k: MetadataValue.float(v) for k, v in metrics.items()},
        })

    return [training_set, trained_model]

