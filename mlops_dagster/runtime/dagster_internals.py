"""The only module of the package that imports Dagster's internal API (``dagster._...``).

The threaded executor (``executor.py``) is built from the parts of Dagster's plan execution its own
executors use, and the Databricks step launcher reports its compute as an engine event: neither has
a public API in Dagster 1.13. Each function here names what it relies on;
``mlops_dagster_tests/test_dagster_internals.py`` pins each of those behaviours, and CI runs those
tests against the newest Dagster release as well as the pinned one (``.ci/run``), so an upgrade that
breaks one is found there first. Everything public (``dagster.DagsterEvent``, ``DagsterEventType``,
``DagsterExecutionInterruptedError``, ``Executor``) is imported from ``dagster`` where it is used.

Imports are inside the functions: the code location imports ``executor.py`` and must stay light.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any


def retries_config():
    """The ``retries`` field of an executor's config schema, as Dagster's own executors declare it.

    Relies on ``dagster._core.execution.retries.get_retries_config()``."""
    from dagster._core.execution.retries import get_retries_config

    return get_retries_config()


def retry_mode(config: Mapping[str, Any]):
    """The ``RetryMode`` (the type of ``Executor.retries``) that a ``retries_config()`` value selects.

    Relies on ``dagster._core.execution.retries.RetryMode.from_config``."""
    from dagster._core.execution.retries import RetryMode

    return RetryMode.from_config(config)


def execute_plan_in_this_process(
    plan_context, step_dependency_config, iterator: Callable[[Any, Any], Iterator]
) -> Iterator:
    """The events of a run whose plan ``iterator(job_context, execution_plan)`` executes in this
    process: the run's resources are set up around it, as for Dagster's in-process executor, and
    termination signals are captured so that the plan's ``check_for_interrupts()`` sees them.

    Relies on ``ExecuteRunWithPlanIterable`` (``dagster._core.execution.api``) with a
    ``PlanExecutionContextManager`` (``dagster._core.execution.context_creation_job``) built from the
    fields of the ``PlanOrchestrationContext`` an executor's ``execute`` is given."""
    from dagster._core.execution.api import ExecuteRunWithPlanIterable
    from dagster._core.execution.context_creation_job import PlanExecutionContextManager

    yield from ExecuteRunWithPlanIterable(
        execution_plan=plan_context.execution_plan,
        iterator=iterator,
        execution_context_manager=PlanExecutionContextManager(
            job=plan_context.job,
            retry_mode=plan_context.retry_mode,
            execution_plan=plan_context.execution_plan,
            run_config=plan_context.run_config,
            dagster_run=plan_context.dagster_run,
            instance=plan_context.instance,
            raise_on_error=plan_context.raise_on_error,
            output_capture=plan_context.output_capture,
            step_dependency_config=step_dependency_config,
        ),
    )


@contextmanager
def active_execution(job_context, execution_plan, max_concurrent: int) -> Iterator:
    """The plan's ``ActiveExecution``, with the instance's concurrency limits (pools) applied: it
    tells which steps may start, and takes each step's events.

    Relies on ``InstanceConcurrencyContext(instance, dagster_run)``
    (``dagster._core.execution.plan.instance_concurrency_context``) and on ``ExecutionPlan.start``
    with the job context's ``retry_mode`` and ``step_dependency_config``. The executor calls these
    methods of what it yields: ``is_complete``, ``check_for_interrupts()``, ``mark_interrupted()``,
    ``get_steps_to_execute()``, ``get_known_state()``, ``concurrency_event_iterator(job_context)``,
    ``sleep_til_ready()``, ``handle_event(event)``, ``verify_complete(job_context, step_key)``,
    ``plan_events_iterator(job_context)``; and ``job_context.for_step(step, known_state)``."""
    from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

    with (
        InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as concurrency,
        execution_plan.start(
            retry_mode=job_context.retry_mode,
            max_concurrent=max_concurrent,
            instance_concurrency_context=concurrency,
            step_dependency_config=job_context.step_dependency_config,
        ) as active,
    ):
        yield active


@contextmanager
def captured_process_output(job_context, step_keys: Sequence[str]) -> Iterator:
    """Capture this process's stdout and stderr into the run's compute logs, as Dagster's in-process
    executor does for a whole process; yields the ``LOGS_CAPTURED`` event that points the UI at them.

    Relies on ``create_compute_log_file_key()`` (``dagster._core.execution.compute_logs``), the
    compute log manager's ``build_log_key_for_run`` and ``capture_logs``, and
    ``DagsterEvent.capture_logs`` (not public)."""
    from dagster import DagsterEvent
    from dagster._core.execution.compute_logs import create_compute_log_file_key

    logs = job_context.instance.compute_log_manager
    log_key = logs.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
    with logs.capture_logs(log_key) as log_context:
        yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)


def step_events(step_context) -> Iterator:
    """Run one step (or launch it, through its step launcher) and yield its events; a failure becomes
    a ``STEP_FAILURE`` event, and an interrupt (``DagsterExecutionInterruptedError``) is raised again
    after its failure event.

    Relies on ``dagster._core.execution.plan.execute_plan.dagster_event_sequence_for_step``."""
    from dagster._core.execution.plan.execute_plan import dagster_event_sequence_for_step

    return dagster_event_sequence_for_step(step_context)


def run_step_hooks(step_context, events: Sequence) -> Iterator:
    """Run the hooks of the step's op on the step's events; yields ``HOOK_COMPLETED`` /
    ``HOOK_SKIPPED`` / ``HOOK_ERRORED`` events.

    Relies on ``dagster._core.execution.plan.execute_plan._trigger_hook`` (private even there)."""
    from dagster._core.execution.plan.execute_plan import _trigger_hook

    return _trigger_hook(step_context, events)


def process_event(context, message: str, step_keys: Sequence[str]):
    """An ``ENGINE_EVENT`` saying that ``step_keys`` execute in this process (its pid).

    Relies on ``DagsterEvent.engine_event`` (not public) and ``EngineEventData.in_process``
    (``dagster._core.events``)."""
    from dagster import DagsterEvent
    from dagster._core.events import EngineEventData

    return DagsterEvent.engine_event(
        context, message, event_specific_data=EngineEventData.in_process(os.getpid(), step_keys)
    )


def interrupted_event(context, message: str, step_keys: Sequence[str]):
    """An ``ENGINE_EVENT`` saying that the run was interrupted while ``step_keys`` ran.

    Relies on ``DagsterEvent.engine_event`` (not public) and ``EngineEventData.interrupted``
    (``dagster._core.events``)."""
    from dagster import DagsterEvent
    from dagster._core.events import EngineEventData

    return DagsterEvent.engine_event(context, message, EngineEventData.interrupted(step_keys))


def step_engine_event(step_context, message: str, metadata: Mapping[str, Any]):
    """An ``ENGINE_EVENT`` of the step, carrying ``metadata`` (read back as
    ``event.engine_event_data.metadata``).

    Relies on ``DagsterEvent.from_step`` (not public) and ``EngineEventData(metadata=...)``
    (``dagster._core.events``)."""
    from dagster import DagsterEvent, DagsterEventType
    from dagster._core.events import EngineEventData

    return DagsterEvent.from_step(
        event_type=DagsterEventType.ENGINE_EVENT,
        step_context=step_context,
        message=message,
        event_specific_data=EngineEventData(metadata=metadata),
    )


def interrupt_requested() -> bool:
    """Whether the run has been asked to stop (terminated from the UI, Ctrl-C) while Dagster captures
    termination signals, without taking the request (the plan's ``check_for_interrupts`` still sees it).

    Relies on ``dagster._utils.interrupts.check_captured_interrupt``."""
    from dagster._utils.interrupts import check_captured_interrupt

    return check_captured_interrupt()


def step_run_ref(step_context, package_dir: str):
    """What a remote process needs to run this step (``StepRunRef``, picklable), the job's code
    pointer made relative to ``package_dir`` (the code shipped with the step).

    Relies on ``dagster._core.execution.plan.external_step.step_context_to_step_run_ref``."""
    from dagster._core.execution.plan.external_step import step_context_to_step_run_ref

    return step_context_to_step_run_ref(step_context, package_dir)


def run_step_from_ref(ref, on_record: Callable[[Any], None]) -> None:
    """Run the step ``ref`` names in this process, on an ephemeral instance that hands each
    ``EventLogEntry`` to ``on_record`` as it is written (a failure of the step's code is a
    ``STEP_FAILURE`` record, not an exception).

    Relies on ``external_instance_from_step_run_ref`` and ``run_step_from_ref``
    (``dagster._core.execution.plan.external_step``)."""
    from dagster._core.execution.plan import external_step

    instance = external_step.external_instance_from_step_run_ref(ref, event_listener_fn=on_record)
    for _ in external_step.run_step_from_ref(ref, instance):
        pass


def op_context(step_context):
    """The ``OpExecutionContext`` of a step, which a Pipes client's ``run`` takes, built from the
    ``StepExecutionContext`` a step launcher is given.

    Relies on ``OpExecutionContext(step_execution_context)`` taking the internal context."""
    from dagster import OpExecutionContext

    return OpExecutionContext(step_context)


def execute_run_args(dagster_run, instance) -> str:
    """What ``dagster api execute_run`` takes for ``dagster_run`` (serialized ``ExecuteRunArgs``):
    the form every Dagster run launcher hands a run's process.

    Relies on ``dagster._grpc.types.ExecuteRunArgs`` and ``dagster._serdes.serialize_value``."""
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import serialize_value

    return serialize_value(
        ExecuteRunArgs(
            job_origin=dagster_run.job_code_origin,
            run_id=dagster_run.run_id,
            instance_ref=instance.get_ref(),
            set_exit_code_on_failure=True,
        )
    )


def execute_run(serialized_args: str) -> int:
    """Run a launched run in this process, as ``dagster api execute_run <serialized_args>`` does in
    a new one (interrupts captured, events to the instance); the command's exit code.

    Relies on ``dagster._cli.api.execute_run_command`` (the click command behind that CLI)."""
    from dagster._cli.api import execute_run_command

    try:
        execute_run_command.main([serialized_args], standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def run_worker_health(status: str, message: str | None = None):
    """What a run launcher's ``check_run_worker_health`` returns: ``status`` is a ``WorkerStatus``
    name (``RUNNING``, ``FAILED``, ...).

    Relies on ``CheckRunHealthResult`` and ``WorkerStatus`` (``dagster._core.launcher``)."""
    from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

    return CheckRunHealthResult(WorkerStatus[status], message)
