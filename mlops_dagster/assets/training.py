"""Stage `training`: the versioned training set and the trained model (an MLflow run).

Each asset's body is a module-level function that reads through the resources, calls the pure
functions of ``ml/training_set.py`` and ``ml/training.py``, and records what it wrote."""

import json
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, Output, asset

from ..resources.lakehouse import Lakehouse
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..runtime.executor import IMPORTS_TAG
from ..runtime.progress import Progress
from ..settings import PROBLEM_METRICS, Settings
from .metadata import audit_log, commit_info, markdown_table, mlflow_run_metadata, table_metadata


def bounded_training_frames(
    lakehouse: Lakehouse, spark: SparkResource, settings: Settings, table: str, version: int
):
    """(train, holdout, rows available per split or None) in pandas: the rows a model of
    ``settings`` learns from and is judged on. Made here only, from the table version and the
    settings, so the training step and the champion comparison get the same rows."""
    from ..ml.problem import problem_type
    from ..ml.training import LABEL, bounded_frames

    return bounded_frames(
        lambda columns: lakehouse.read_arrow(table, version, columns),
        lambda: lakehouse.read_spark(spark.session(), table, version),
        [*settings.features.columns, LABEL],
        settings.dataset.key,
        settings.training.max_rows,
        settings.training.seed,
        lakehouse.row_count(table, version),
        problem_type(settings.problem_type),
    )


# What the model step imports besides its estimator's module: scikit-learn's pipeline parts and
# metrics, matplotlib for the plots, skops and MLflow's flavor to log the model.
_MODEL_STEP_IMPORTS = (
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "matplotlib.pyplot",
    "skops.io",
    "mlflow.sklearn",
)
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


def assemble_training_set(
    context: AssetExecutionContext, settings: Settings, lakehouse: Lakehouse, spark: SparkResource
) -> MaterializeResult:
    """Join the labels point in time to their features, split them, write the training set and
    record the table versions it was built from."""
    from ..ml.training import SPLIT
    from ..ml.training_set import lineage, lookup_rows, split, split_summary

    labels_table, training_table = (
        settings.table(settings.names.labels),
        settings.table(settings.names.training_set),
    )
    session = spark.session()
    label_version = lakehouse.version(labels_table)
    labels, outcomes = _labels(settings, lakehouse, session, labels_table, label_version)
    lookups, recorded = _feature_frames(settings, lakehouse, session)
    with (
        Progress(context.log.info, "training set", spark=session) as progress,
        lakehouse.staging_dir() as staging,
    ):
        frame, unmatched = _matched_rows(
            context, settings, session, labels, lookups, f"{staging}/joined", progress
        )
        progress.say("splitting train / test")
        split_set = split(frame, settings)
        progress.say(f"writing {training_table}")
        info = lakehouse.write_spark(
            training_table,
            split_set.frame.select(*frame.columns, SPLIT),
            "overwrite",
            commit_info={**commit_info(context), **lineage(recorded, labels_table, label_version, outcomes)},
            properties={"primary_key": settings.dataset.key},
            description=f"Training set: {labels_table} with features looked up point in time "
            f"from {', '.join(r['table'] for r in recorded)}, split seeded.",
        )
    audit_log(context, settings).tables_written([info])
    return MaterializeResult(
        metadata={
            **table_metadata(info),
            **split_summary(split_set.rows, settings.classifies),
            "labels_without_features": unmatched.rows,
            "features_version": recorded[0]["version"],
            "labels_version": label_version,
            **outcomes,
            "feature_lookups": markdown_table(lookup_rows(recorded)),
        }
    )


def _labels(settings: Settings, lakehouse: Lakehouse, session, labels_table: str, label_version: int):
    """(the labels to train on, what they record of the outcomes table): with the ground-truth
    outcomes that arrived later when the use case learns from them and the table exists."""
    from ..ml.training_set import labels_with_outcomes

    labels = lakehouse.read_spark(session, labels_table, label_version)
    truth_table = (
        settings.table(settings.names.ground_truth) if settings.monitoring.ground_truth.learn else None
    )
    if truth_table is None or not lakehouse.exists(truth_table):
        return labels, {}
    version = lakehouse.version(truth_table)
    outcomes = lakehouse.read_spark(session, truth_table, version)
    return (
        labels_with_outcomes(labels, outcomes, settings),
        {"outcomes_table": truth_table, "outcomes_version": str(version)},
    )


def _feature_frames(settings: Settings, lakehouse: Lakehouse, session):
    """([(planned lookup, its feature table's columns at the current version)], what each records)."""
    from ..ml.training_set import planned_lookups

    frames, recorded = [], []
    for planned in planned_lookups(settings):
        version = lakehouse.version(planned.lookup.table)
        frames.append(
            (planned, lakehouse.read_spark(session, planned.lookup.table, version).select(*planned.columns))
        )
        recorded.append(planned.recorded(version))
    return frames, recorded


def _matched_rows(
    context: AssetExecutionContext,
    settings: Settings,
    session,
    labels,
    lookups,
    joined_path: str,
    progress: Progress,
):
    """(the labels that found a row in every feature table, with the columns the training set
    keeps; the unmatched counts, warned about). The join is written once to ``joined_path``, so
    counting, splitting and writing do not each recompute it."""
    from ..ml.feature_lookup import all_matched, build_training_set, unmatched_counts
    from ..ml.training_set import kept_columns, require_model_features

    progress.say("looking features up point in time")
    joined = build_training_set(labels, [(p.lookup, frame, p.keys, p.timestamp_key) for p, frame in lookups])
    require_model_features(settings.features.columns, joined.columns)
    joined.write.parquet(joined_path)
    joined = session.read.parquet(joined_path)
    tables = [p.lookup.table for p, _ in lookups]
    unmatched = unmatched_counts(joined, tables)
    if unmatched.rows:
        context.log.warning(
            f"{unmatched.rows} labels predate every feature row of their key and are "
            f"left out of training (per table: {unmatched.per_table})"
        )
    columns = kept_columns(settings.dataset.key, [p.lookup for p, _ in lookups], settings.features.columns)
    return joined.where(all_matched(tables)).select(*columns), unmatched


class _Fitted(NamedTuple):
    pipeline: Any
    train: Any  # pandas frames of the rows trained and judged on
    test: Any
    available: dict[str, int]  # rows of each split before sampling


def train_model(context: AssetExecutionContext, settings: Settings) -> Output:
    """Fit the configured pipeline on the training set's bounded train split, evaluate it on the
    holdout, and log it all to the MLflow run the ``mlflow`` resource opened."""
    import mlflow

    from ..governance.lineage import data_commit
    from ..ml.problem import problem_type
    from ..ml.training import evaluate_holdout

    lakehouse: Lakehouse = context.resources.lakehouse
    training_table = settings.table(settings.names.training_set)
    version = lakehouse.version(training_table)
    feature_lookups = data_commit(lakehouse, training_table, version, "feature_lookups").get(
        "feature_lookups", "[]"
    )
    problem = problem_type(settings.problem_type)
    fitted = _fit(context, settings, problem, training_table, version)
    scores, metrics = evaluate_holdout(
        problem,
        fitted.pipeline,
        fitted.test,
        settings.features.columns,
        settings.inference.decision_threshold,
    )
    run = mlflow.active_run()
    info = _log_run(context, settings, problem, fitted, scores, metrics, version, feature_lookups)
    trained = TrainedModel(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        model_id=getattr(info, "model_id", None),
        metrics=metrics,
        training_set=training_table,
        training_set_version=version,
        experiment_id=run.info.experiment_id,
        feature_lookups=feature_lookups,
    )
    return Output(
        trained,
        metadata={
            "mlflow_run_id": trained.run_id,
            "mlflow_run": mlflow_run_metadata(settings, trained.experiment_id, trained.run_id),
            "mlflow_tracking_uri": settings.mlflow.tracking_uri,
            "model_uri": trained.model_uri,
            "training_set_version": version,
            "train_rows_used": len(fitted.train),
            "train_rows_available": fitted.available["train"],
            "holdout_rows_used": len(fitted.test),
            "holdout_rows_available": fitted.available["test"],
            **{k: MetadataValue.float(v) for k, v in metrics.items()},
        },
    )


def _fit(
    context: AssetExecutionContext, settings: Settings, problem, training_table: str, version: int
) -> _Fitted:
    """The configured pipeline fitted on the bounded train split (and the holdout it is judged on)."""
    from ..ml.training import MODEL_LOADING_MODULES, build_pipeline, fit

    fs, model, spark = settings.features, settings.training.model, context.resources.spark
    with Progress(context.log.info, "training", spark=spark.session()) as progress:
        progress.say("sampling the train and test splits")
        train, test, available = bounded_training_frames(
            context.resources.lakehouse, spark, settings, training_table, version
        )
        available = available or {"train": len(train), "test": len(test)}
        if len(train) >= _LONG_FIT_ROWS:
            # The fit works in this thread, one core: meanwhile Spark's Python workers import what
            # batch scoring will need to load the model (3-4 s per worker, saved from scoring).
            spark.import_in_python_workers(MODEL_LOADING_MODULES)
        progress.say(f"fitting on {len(train):,} rows")
        pipeline = fit(
            build_pipeline(model.class_path, model.params, fs.categorical, fs.numeric_columns, problem),
            train,
            fs.columns,
        )
    return _Fitted(pipeline, train, test, available)


def _log_run(
    context: AssetExecutionContext,
    settings: Settings,
    problem,
    fitted: _Fitted,
    scores,
    metrics: dict[str, float],
    version: int,
    feature_lookups: str,
):
    """Log parameters, metrics, the training rows as input, plots, the model and tags to the active
    MLflow run; returns the logged model's info."""
    import mlflow

    from ..ml.training import LABEL, run_params

    training_table = settings.table(settings.names.training_set)
    context.resources.mlflow.log_params(
        run_params(
            settings,
            training_table,
            version,
            {"train": len(fitted.train), "test": len(fitted.test)},
            fitted.available,
            json.loads(feature_lookups),
        )
    )
    mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
    _log_training_input(context.resources.lakehouse, settings, fitted.train, training_table, version)
    with tempfile.TemporaryDirectory() as plots_dir:
        for path in problem.save_plots(
            fitted.test[LABEL], scores, plots_dir, settings.inference.decision_threshold
        ):
            mlflow.log_artifact(str(path), artifact_path="plots")
    info = _log_model(settings, problem, fitted)
    mlflow.set_tags(
        {
            "mlops.stage": "training",
            "mlops.target": settings.target,
            "mlops.problem_type": problem.name,
            "mlops.feature_lookups": feature_lookups,
        }
    )
    return info


def _log_model(settings: Settings, problem, fitted: _Fitted):
    """Log the fitted pipeline as the run's model: MLflow's sklearn flavor, signature, example and
    declared requirements. A use case with online lookups logs it through ``keyed_model``, whose
    pyfunc answers rows that carry only their entity key; with a Lakebase online store the model
    names the instance as a Databricks resource, so Model Serving gives it credentials."""
    import mlflow
    from mlflow.models import Model, infer_signature

    from ..ml.training import model_requirements, skops_trusted_types
    from ..serving import keyed_model
    from ..serving.features import online_lookups

    pipeline, columns = fitted.pipeline, settings.features.columns
    example = fitted.train[columns].head(5)
    args = {
        "name": "model",
        "signature": infer_signature(example, getattr(pipeline, problem.predict_method)(example)),
        "input_example": example,
        "pyfunc_predict_fn": problem.predict_method,
        "skops_trusted_types": skops_trusted_types(pipeline),
    }
    lookups = online_lookups(settings)
    if not lookups:
        return mlflow.sklearn.log_model(pipeline, pip_requirements=model_requirements(), **args)
    store = settings.feature_store.online_store
    lakebase = None
    if store.kind == "lakebase":
        from mlflow.models.resources import DatabricksLakebase

        lakebase = {k: getattr(store, k) for k in ("instance", "database", "port", "sslmode")}
        args["resources"] = [DatabricksLakebase(database_instance_name=store.instance)]
    rules = settings.dataset.columns  # a request key is a label column: its type is in the contract
    keys = {k: rules[k].type if k in rules else "string" for x in lookups for k in x.request_key}
    args["signature"].inputs = keyed_model.optional_inputs(args["signature"].inputs.inputs, keys)
    return Model.log(
        artifact_path=None,
        flavor=keyed_model,
        flavor_name="sklearn",
        sk_model=pipeline,
        online_lookups=keyed_model.conf(columns, lookups, lakebase),
        pip_requirements=model_requirements(keyed_model.REQUIREMENTS if lakebase else ()),
        **args,
    )


def _log_training_input(
    lakehouse: Lakehouse, settings: Settings, train, training_table: str, version: int
) -> None:
    """The rows trained on, logged as the run's input dataset (source: the Delta table version)."""
    import mlflow
    from mlflow.models import infer_signature

    from ..ml.training import LABEL, rows_digest

    tr = settings.training
    dataset = mlflow.data.from_pandas(
        train,
        source=lakehouse.mlflow_dataset_source(training_table, version),
        targets=LABEL,
        name=training_table,
        digest=rows_digest(training_table, version, tr.seed, tr.max_rows, len(train)),
    )
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: only the 0/1 target is one.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        # Left to itself MLflow infers the schema from every value (83 s for 800,000 rows); the
        # column types are those of the first rows, as the Delta table gives them.
        dataset.schema = infer_signature(train.head(1000)).inputs
        mlflow.log_input(dataset, context="training")


def training_assets(settings: Settings):
    return [_training_set_asset(settings), _model_asset(settings)]


def _training_set_asset(settings: Settings):
    names, tr = settings.names, settings.training
    training_table = settings.table(names.training_set)
    truth = settings.monitoring.ground_truth
    truth_table = settings.table(names.ground_truth) if truth.learn else None
    split_text = (
        f"stratified on the label, seed {tr.seed}, exact per class"
        if settings.classifies
        else f"seeded with {tr.seed}, exact"
    )
    lookups_text = ", ".join(
        f"`{spec.table}` by {'+'.join(spec.lookup_key)}"
        + (f" as of `{spec.timestamp_lookup_key}`" if spec.timestamp_lookup_key else "")
        for spec in settings.feature_store.training_lookups
    )

    @asset(
        name=names.training_set,
        key_prefix=names.prefix,
        group_name=names.group("training"),
        deps=[
            names.key(names.features),
            names.key(names.labels),
            *([names.key(names.ground_truth)] if truth_table else []),
        ],
        kinds={"spark", "delta"},
        description=(
            (
                f"Labels (with the outcomes of `{truth_table}`: per key the newest of its dataset label and its "
                f"outcome, as of `{truth.time_column}`) "
                if truth_table
                else "Labels "
            )
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
        context: AssetExecutionContext,
        lakehouse: Lakehouse,
        spark: SparkResource,
        step_launcher: StepLauncherParam,
    ) -> MaterializeResult:
        return assemble_training_set(context, settings, lakehouse, spark)

    return training_set


def _model_asset(settings: Settings):
    names, tr = settings.names, settings.training

    @asset(
        name=names.model,
        key_prefix=names.prefix,
        group_name=names.group("training"),
        deps=[names.key(names.training_set)],
        kinds={"scikitlearn", "mlflow"},
        required_resource_keys={"mlflow", "lakehouse", "spark", "step_launcher"},
        # Imported while the training set is built (3-4 s): its estimator's module and what fitting,
        # evaluating, plotting and logging the model import.
        op_tags={IMPORTS_TAG: ",".join([tr.model.class_path.rpartition(".")[0], *_MODEL_STEP_IMPORTS])},
        description=(
            f"A {tr.model.class_path.rsplit('.', 1)[-1]} pipeline (impute, one-hot encode, scale, "
            f"{'classify' if settings.classifies else 'regress'}) trained on the `train` split (a seeded"
            f"{', stratified' if settings.classifies else ''} sample of at most {tr.max_rows:,} rows when it is "
            "larger) and evaluated on `test` (sampled by the same fraction). Logged to MLflow experiment "
            f"`{settings.mlflow.experiment}` with parameters, metrics ({', '.join(PROBLEM_METRICS[settings.problem_type])}), "
            "signature, input example, plots and the training set's Delta version as input."
        ),
    )
    def trained_model(context: AssetExecutionContext):
        return train_model(context, settings)

    return trained_model
