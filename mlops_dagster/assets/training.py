"""Stage `training`: the versioned training set and the trained model (an MLflow run)."""

import tempfile
from dataclasses import dataclass

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, Output, asset

from ..governance.audit import AUDIT_TABLE, record, table_written
from ..resources.lakehouse import Lakehouse
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings
from .metadata import commit_info, table_metadata


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


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where to look at a run: the MLflow UI path (open it in `mlflow ui` or the workspace)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}" if tracking_uri.startswith("sqlite") else (
        f"{tracking_uri.rstrip('/')}/#mlflow/experiments/{experiment_id}/runs/{run_id}"
    )


def training_assets(settings: Settings):
    ds, fs, tr = settings.dataset, settings.features, settings.training
    features_table = settings.table("churn_features")
    labels_table = settings.table("churn_labels")
    training_table = settings.table("churn_training_set")

    @asset(
        group_name="training", deps=["churn_features", "churn_labels"], kinds={"delta"},
        description=(
            f"Features joined to labels on `{ds.key}` and split (stratified on the label, seed "
            f"{tr.seed}) into `train` and `test` ({tr.test_size:.0%}) in the `split` column. Delta table "
            f"`{training_table}`; it records the feature and label table versions it was built from, "
            "so every model can say exactly what it learned from."
        ),
        metadata={"dagster/table_name": training_table},
    )
    def churn_training_set(
        context: AssetExecutionContext, lakehouse: Lakehouse, step_launcher: StepLauncherParam,
    ) -> MaterializeResult:
        from ..ml.training import LABEL, SPLIT, stratified_split

        feature_version = lakehouse.version(features_table)
        label_version = lakehouse.version(labels_table)
        features = lakehouse.read(features_table, feature_version, columns=[ds.key, *fs.columns])
        labels = lakehouse.read(labels_table, label_version, columns=[ds.key, LABEL])
        joined = features.merge(labels, on=ds.key, how="inner", validate="one_to_one")
        unlabeled = len(features) - len(joined)
        if unlabeled:
            context.log.warning(f"{unlabeled} feature rows have no label and are left out of training")
        split = stratified_split(joined, ds.key, tr.test_size, tr.seed)
        lineage = {"features_table": features_table, "features_version": str(feature_version),
                   "labels_table": labels_table, "labels_version": str(label_version)}
        info = lakehouse.write(
            training_table, split, "overwrite", commit_info={**commit_info(context), **lineage},
            properties={"primary_key": ds.key},
            description=f"Training set for the churn model: {features_table} joined with {labels_table}, split seeded.",
        )
        record(lakehouse, settings.table(AUDIT_TABLE), table_written([info], settings.target, context.run.run_id))
        counts = split[SPLIT].value_counts()
        return MaterializeResult(metadata={
            **table_metadata(info),
            "train_rows": int(counts.get("train", 0)), "test_rows": int(counts.get("test", 0)),
            "positive_rate": float(split[LABEL].mean()), "unlabeled_rows": unlabeled,
            "features_version": feature_version, "labels_version": label_version,
        })

    @asset(
        group_name="training", deps=["churn_training_set"], kinds={"scikitlearn", "mlflow"},
        required_resource_keys={"mlflow", "lakehouse", "step_launcher"},
        description=(
            f"A {tr.model.class_path.rsplit('.', 1)[-1]} pipeline (impute, one-hot encode, scale, classify) "
            f"trained on the `train` split and evaluated on `test`. Logged to MLflow experiment "
            f"`{settings.mlflow.experiment}` with parameters, metrics (ROC AUC, F1, precision, recall, "
            "log loss), signature, input example, plots and the training set's Delta version as input."
        ),
    )
    def churn_model(context: AssetExecutionContext):
        import mlflow
        from mlflow.models import infer_signature

        from ..ml.evaluation import churn_probability, evaluate, save_plots
        from ..ml.training import LABEL, SPLIT, build_pipeline, fit, skops_trusted_types

        lakehouse: Lakehouse = context.resources.lakehouse
        version = lakehouse.version(training_table)
        frame = lakehouse.read(training_table, version)
        train, test = frame[frame[SPLIT] == "train"], frame[frame[SPLIT] == "test"]
        pipeline = fit(build_pipeline(tr.model.class_path, tr.model.params, fs.categorical, fs.numeric_columns),
                       train, fs.columns)
        threshold = settings.inference.decision_threshold
        probability = churn_probability(pipeline, test[fs.columns])
        metrics = evaluate(test[LABEL], probability, threshold)

        mlf = context.resources.mlflow
        run = mlflow.active_run()
        mlf.log_params({
            "model_class": tr.model.class_path, **{f"model.{k}": v for k, v in tr.model.params.items()},
            "test_size": tr.test_size, "seed": tr.seed, "decision_threshold": threshold,
            "n_features": len(fs.columns), "train_rows": len(train), "test_rows": len(test),
            "training_set": training_table, "training_set_version": version,
        })
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        source = lakehouse.mlflow_dataset_source(training_table, version)
        mlflow.log_input(mlflow.data.from_pandas(train, source=source, targets=LABEL, name=training_table),
                         context="training")
        with tempfile.TemporaryDirectory() as plots_dir:
            for path in save_plots(test[LABEL], probability, plots_dir, threshold):
                mlflow.log_artifact(str(path), artifact_path="plots")
        example = train[fs.columns].head(5)
        info = mlflow.sklearn.log_model(
            pipeline, name="model", signature=infer_signature(example, pipeline.predict_proba(example)),
            input_example=example, pyfunc_predict_fn="predict_proba",
            skops_trusted_types=skops_trusted_types(pipeline),
        )
        mlflow.set_tags({"mlops.stage": "training", "mlops.target": settings.target})

        trained = TrainedModel(
            run_id=run.info.run_id, model_uri=info.model_uri, model_id=getattr(info, "model_id", None),
            metrics=metrics, training_set=training_table, training_set_version=version,
            experiment_id=run.info.experiment_id,
        )
        return Output(trained, metadata={
            "mlflow_run_id": trained.run_id,
            "mlflow_run": MetadataValue.text(run_url(settings.mlflow.tracking_uri, trained.experiment_id, trained.run_id)),
            "mlflow_tracking_uri": settings.mlflow.tracking_uri,
            "model_uri": trained.model_uri,
            "training_set_version": version,
            **{k: MetadataValue.float(v) for k, v in metrics.items()},
        })

    return [churn_training_set, churn_model]

