"""MLflow tracking through dagster-mlflow: one MLflow run per Dagster run, tagged with its id.

dagster-mlflow imports mlflow at module level (1.5 s), so its resource and hook are wrapped here
and imported when a step first needs them, not when the code location loads.
"""

from __future__ import annotations

from pathlib import Path

from dagster import HookDefinition, ResourceDefinition


def ensure_experiment(tracking_uri: str, name: str, artifact_root: Path | None) -> str:
    """Create the experiment if needed; locally its artifacts live under ``artifact_root``.

    Left to MLflow, a new experiment on a SQLite store puts artifacts in ``./mlruns`` relative to
    wherever the process happens to run.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (artifact_root / "artifacts").as_uri() if artifact_root else None
    return client.create_experiment(name, artifact_location=location)


def mlflow_tracking_resource(
    tracking_uri: str, registry_uri: str, experiment: str, artifact_root: Path | None, tags: dict[str, str]
) -> ResourceDefinition:
    """dagster-mlflow's ``mlflow_tracking`` resource, configured for a target and loaded lazily."""
    config = {
        "experiment_name": experiment,
        "mlflow_tracking_uri": tracking_uri,
        "env": {"MLFLOW_REGISTRY_URI": registry_uri},
        "extra_tags": tags,
    }

    def _init(init_context):
        from dagster_mlflow import mlflow_tracking

        if artifact_root is not None:
            Path(artifact_root).mkdir(parents=True, exist_ok=True)
        ensure_experiment(tracking_uri, experiment, artifact_root)
        yield from mlflow_tracking.resource_fn(init_context.replace_config(config))

    return ResourceDefinition(
        resource_fn=_init,
        description=f"dagster-mlflow tracking to {experiment} ({tracking_uri.split(':')[0]})",
        # Initialized after `spark`: a local run's Spark JVM then starts while MLflow is imported and
        # its store opened (seconds each), instead of after them.
        required_resource_keys={"spark"},
    )


def _end_mlflow_run(context, event_list):
    from dagster_mlflow import end_mlflow_on_run_finished as hook

    return hook.hook_fn(context, event_list)


end_mlflow_on_run_finished = HookDefinition(
    name="end_mlflow_on_run_finished",
    hook_fn=_end_mlflow_run,
    required_resource_keys={"mlflow"},
    decorated_fn=_end_mlflow_run,
)
"""dagster-mlflow's hook: ends the MLflow run (FINISHED / FAILED) when the Dagster run's last step ends."""
