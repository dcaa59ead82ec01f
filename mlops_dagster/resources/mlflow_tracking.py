"""MLflow tracking through dagster-mlflow: one MLflow run per Dagster run, tagged with its id.

dagster-mlflow imports mlflow at module level (1.5 s), so its resource and hook are wrapped here
and imported when a step first needs them, not when the code location loads.
"""

from __future__ import annotations

from pathlib import Path

from dagster import HookDefinition, ResourceDefinition

from ..settings import USE_CASE_TAG


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


def run_use_cases(run, use_cases: list[str]) -> list[str]:
    """The use cases a Dagster run works for, in config order: its job's tag, else the key prefixes
    of the assets it materializes (a run started from the asset graph), else the first use case."""
    tagged = run.tags.get(USE_CASE_TAG)
    if tagged in use_cases:
        return [tagged]
    prefixes = {key.path[0] for key in run.asset_selection or ()}
    return [u for u in use_cases if u in prefixes] or use_cases[:1]


def end_abandoned_runs(tracking_uri: str, experiment_id: str, instance) -> list[str]:
    """End ``KILLED`` the experiment's MLflow runs still RUNNING whose Dagster run has ended: the
    process died before dagster-mlflow's hook could end them (a killed run is reported failed by the
    next run of its use case, before that run's resources start). Returns their ids."""
    from mlflow import MlflowClient

    client, ended = MlflowClient(tracking_uri=tracking_uri), []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=100):
        dagster_run = instance.get_run_by_id(run.data.tags.get("dagster_run_id", ""))
        if dagster_run is not None and dagster_run.is_finished:
            client.set_terminated(run.info.run_id, status="KILLED")
            ended.append(run.info.run_id)
    return ended


def mlflow_tracking_resource(
    tracking_uri: str,
    registry_uri: str,
    experiments: dict[str, str],
    artifact_root: Path | None,
    tags: dict[str, str],
) -> ResourceDefinition:
    """dagster-mlflow's ``mlflow_tracking`` resource, configured for a target and loaded lazily.

    ``experiments`` maps each use case to its experiment: a run logs to its use case's (a run
    materializing assets of several use cases from the UI logs to the first one's, and says so)."""

    def _init(init_context):
        from dagster_mlflow import mlflow_tracking

        use_case, *others = run_use_cases(init_context.dagster_run, list(experiments))
        if others:
            init_context.log.warning(
                f"this run works for use cases {[use_case, *others]}: its MLflow run is "
                f"logged in {use_case}'s experiment {experiments[use_case]}"
            )
        experiment = experiments[use_case]
        if artifact_root is not None:
            Path(artifact_root).mkdir(parents=True, exist_ok=True)
        experiment_id = ensure_experiment(tracking_uri, experiment, artifact_root)
        for ended in end_abandoned_runs(tracking_uri, experiment_id, init_context.instance):
            init_context.log.warning(
                f"MLflow run {ended} of a Dagster run that died unfinished: ended KILLED"
            )
        config = {
            "experiment_name": experiment,
            "mlflow_tracking_uri": tracking_uri,
            "env": {"MLFLOW_REGISTRY_URI": registry_uri},
            "extra_tags": {**tags, USE_CASE_TAG: use_case},
        }
        yield from mlflow_tracking.resource_fn(init_context.replace_config(config))

    return ResourceDefinition(
        resource_fn=_init,
        description=f"dagster-mlflow tracking to each use case's experiment ({tracking_uri.split(':')[0]})",
        # Initialized after `spark`: a local run's Spark JVM then starts while MLflow is imported and
        # its store opened (seconds each), instead of after them.
        required_resource_keys={"spark"},
    )


def _end_mlflow_run(context, event_list):
    """dagster-mlflow's hook, with the end of a successful run decided differently: dagster-mlflow
    ends it when the job's last op in topological order succeeds, which is the last step to end only
    when steps run one at a time; with steps at once, the run ends when no other step of the plan
    is still to end (the executor runs hooks one at a time, each after its step's events)."""
    from dagster import DagsterEventType, HookExecutionResult
    from dagster_mlflow import end_mlflow_on_run_finished as hook

    if any(event.is_step_failure for event in event_list):
        return hook.hook_fn(context, event_list)  # ends the run FAILED
    step = context._step_execution_context  # noqa: SLF001 - as dagster-mlflow's own hook reads it
    ended = {
        record.event_log_entry.step_key
        for record in context.instance.get_records_for_run(
            context.run_id,
            of_type={
                DagsterEventType.STEP_SUCCESS,
                DagsterEventType.STEP_FAILURE,
                DagsterEventType.STEP_SKIPPED,
            },
            limit=None,
        ).records
    }
    if set(step.execution_plan.step_keys_to_execute) <= ended | {step.step.key}:
        context.resources.mlflow.end_run()
    return HookExecutionResult(hook_name=context.hook_def.name, is_skipped=False)


end_mlflow_on_run_finished = HookDefinition(
    name="end_mlflow_on_run_finished",
    hook_fn=_end_mlflow_run,
    required_resource_keys={"mlflow"},
    decorated_fn=_end_mlflow_run,
)
"""Ends the MLflow run FAILED when a step fails, FINISHED when the Dagster run's last step ends."""
