"""A Dagster run's MLflow run in the threads that run its steps."""

from __future__ import annotations


def share_active_run():
    """A function that makes the calling thread's active MLflow run active in the thread that calls it.

    MLflow keeps the active run per thread, and dagster-mlflow starts a Dagster run's MLflow run in
    the thread that sets up the resources: a step working in another thread (the threaded executor)
    calls the returned function first, so that its ``mlflow.log_*`` calls and nested runs go to that
    run, as they do when every step runs in the one thread. The run is only put on the thread's
    stack of active runs (MLflow's own, private), not started again: its status stays dagster-mlflow's
    to set, so a step that starts after the run was ended cannot mark it running again."""
    import sys

    mlflow = sys.modules.get("mlflow")  # not imported: no MLflow run was started
    active = mlflow.active_run() if mlflow is not None else None
    if active is None:
        return lambda: None

    def enter() -> None:
        from mlflow.tracking import fluent

        stack = fluent._active_run_stack.get()
        if not stack:
            stack.append(active)

    return enter
