"""The executor of every job: a run's independent steps at once, in threads of the run's process.

Dagster's in-process executor runs one step at a time, so while a step works in one Python thread
(fitting a model, an Evidently report, waiting for the serving gateway) a core stays idle. Its
multiprocess executor runs steps at once, but each in a process of its own, which would start a
Spark JVM per step (seconds and gigabytes each). Here each step runs in a thread of the one run
process, with the run's resources set up once: the SparkSession is shared (Spark schedules the
jobs of several threads), and on Databricks targets several step launchers wait for their cluster
runs at once.

Terminating a run marks each running step's thread, and a step stops where it checks
(``interrupts.py``): a step launcher cancels its cluster run.

Built from the same parts of Dagster's plan execution as its own executors (the plan's
``ActiveExecution``, ``dagster_event_sequence_for_step``, the step hooks), which are internal: they
are reached only through ``dagster_internals.py``, whose tests pin what this relies on.
"""

import os
import queue
import sys
import time
from collections.abc import Callable, Iterator

from dagster import DagsterExecutionInterruptedError, Executor, Field, executor

from . import dagster_internals as internals
from . import run_lock

# Results of a step's thread, after its events: it ended, or it raised past Dagster's own handling.
_ENDED = "ended"
_RAISED = "raised"
# After an interrupt, how long the run waits for its steps' threads to stop before it ends anyway.
INTERRUPT_GRACE_SECONDS = 60.0
# Op tag: the modules (comma-separated) a step imports in the run process. Once every step it waits
# for has started, they are imported in a background thread (``import_ahead``), while those steps
# mostly wait on Spark: the step finds them imported instead of spending its first seconds on it.
IMPORTS_TAG = "mlops/imports"


@executor(
    name="threads",
    config_schema={
        "max_concurrent": Field(
            int,
            description=(
                "At most this many steps at once, each in a thread of the run process (1: one at a time, "
                "as Dagster's in-process executor); the project sets it from max_concurrent_steps."
            ),
        ),
        "import_ahead": Field(
            bool,
            default_value=False,
            description=(
                f"Import the modules a step names in its `{IMPORTS_TAG}` op tag in the background once every step it "
                "waits for has started (useful where steps run in this process; the project sets it on local)."
            ),
        ),
        "retries": internals.retries_config(),
    },
)
def threaded_executor(init_context) -> "ThreadedExecutor":
    """Steps that do not depend on each other run at once, in threads of the run's process."""
    config = init_context.executor_config
    if config["max_concurrent"] < 1:
        from dagster import DagsterInvalidConfigError

        raise DagsterInvalidConfigError(
            "execution.config.max_concurrent must be at least 1", [], config["max_concurrent"]
        )
    return ThreadedExecutor(
        internals.retry_mode(config["retries"]), config["max_concurrent"], config["import_ahead"]
    )


class ThreadedExecutor(Executor):
    def __init__(self, retries, max_concurrent: int, import_ahead: bool = False):
        self._retries = retries
        self.max_concurrent = max_concurrent
        self.import_ahead = import_ahead

    @property
    def retries(self):
        return self._retries

    def execute(self, plan_context, execution_plan) -> Iterator:
        keys = execution_plan.step_keys_to_execute
        yield internals.process_event(
            plan_context,
            f"Executing steps in threads of process {os.getpid()}, at most {self.max_concurrent} at once",
            keys,
        )
        # One run of a use case at a time, waited for before the run's resources (Spark) start.
        instance, run = plan_context.instance, plan_context.dagster_run
        for message in run_lock.acquire(instance, run, internals.interrupt_requested):
            yield internals.process_event(plan_context, message, keys)
        try:
            # step_dependency_config: Executor's default, as for Dagster's in-process executor.
            yield from internals.execute_plan_in_this_process(
                plan_context,
                self.step_dependency_config,
                lambda job_context, execution_plan: _steps_in_threads(
                    job_context, execution_plan, self.max_concurrent, self.import_ahead
                ),
            )
        finally:
            run_lock.release(instance, run)
        yield internals.process_event(plan_context, f"Finished steps in process {os.getpid()}", keys)


def _steps_in_threads(
    job_context, execution_plan, max_concurrent: int, import_ahead: bool = False
) -> Iterator:
    """Dagster's in-process plan loop (``inner_plan_execution_iterator``), with each step in a thread:
    events reach this thread through a queue and are handled here, in order per step, as Dagster
    handles them in process; a step's hooks run here once its thread has ended."""
    from .interrupts import StepThread
    from .mlflow_threads import share_active_run

    events: queue.Queue = queue.Queue()
    running: dict[str, tuple] = {}  # step key -> (its step context, its events so far, its thread)
    to_import = _imports_by_step(execution_plan) if import_ahead else {}
    started: set[str] = set()
    interrupted_at: float | None = None
    enter_thread = share_active_run()
    keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    # Step output is captured for the whole process, as the in-process executor does.
    with (
        internals.active_execution(job_context, execution_plan, max_concurrent) as active,
        internals.captured_process_output(job_context, keys) as logs_captured,
    ):
        yield logs_captured
        while not active.is_complete or running:
            if interrupted_at is None and active.check_for_interrupts():
                # Terminating a run interrupts its main thread; each step's thread is told, and stops
                # where it checks (a step launcher cancels its cluster run).
                active.mark_interrupted()
                interrupted_at = time.monotonic()
                yield internals.interrupted_event(
                    job_context, f"Interrupted: stopping {', '.join(running)}", list(running)
                )
                for _, _, thread in running.values():
                    thread.interrupted.set()
            if interrupted_at is not None and (
                not running or time.monotonic() - interrupted_at > INTERRUPT_GRACE_SECONDS
            ):
                raise DagsterExecutionInterruptedError(
                    f"the run was interrupted while {', '.join(running) or 'no step'} ran"
                )
            if interrupted_at is None and not active.is_complete:
                for step in active.get_steps_to_execute():
                    step_context = job_context.for_step(step, active.get_known_state())
                    thread = StepThread(
                        target=_step_thread,
                        args=(step_context, events, enter_thread),
                        name=f"step {step.key}",
                        daemon=True,
                    )
                    running[step.key] = (step_context, [], thread)
                    thread.start()
                    started.add(step.key)
                _import_ahead(to_import, started)
                yield from active.concurrency_event_iterator(job_context)
            if not running:
                active.sleep_til_ready()
                continue
            try:
                key, kind, item = events.get(timeout=0.5)
            except queue.Empty:
                continue
            step_context, step_events, _ = running[key]
            if kind == _RAISED:
                if interrupted_at is None or not isinstance(
                    item, (DagsterExecutionInterruptedError, KeyboardInterrupt)
                ):
                    raise item
                del running[key]  # stopped by the interrupt, its failure already reported
                continue
            if kind == _ENDED:
                del running[key]
                active.verify_complete(job_context, key)
                for event in active.plan_events_iterator(job_context):  # steps skipped by a failure
                    step_events.append(event)
                    yield event
                yield from internals.run_step_hooks(step_context, step_events)
                continue
            step_events.append(item)
            yield item
            active.handle_event(item)


def _imports_by_step(execution_plan) -> dict[str, tuple[set[str], list[str]]]:
    """Step key -> (the steps of this run it waits for, the modules its ``IMPORTS_TAG`` names), for the
    steps that name modules and wait for others of this run (a step waits for all of those before it
    starts, so its modules are imported ahead or not at all, never after it started)."""
    steps = {}
    executed = set(execution_plan.step_keys_to_execute)
    for step in execution_plan.get_steps_to_execute_in_topo_order():
        modules = [m.strip() for m in step.tags.get(IMPORTS_TAG, "").split(",") if m.strip()]
        upstream = set(step.get_execution_dependency_keys()) & executed
        if modules and upstream:
            steps[step.key] = (upstream, modules)
    return steps


def _import_ahead(to_import: dict[str, tuple[set[str], list[str]]], started: set[str]) -> None:
    """Import in a background thread the modules of each step not started yet whose every upstream
    step has started (once per step: it leaves ``to_import``)."""
    import threading

    ready = [key for key, (upstream, _) in to_import.items() if upstream <= started]
    modules = list(dict.fromkeys(m for key in ready for m in to_import.pop(key)[1]))
    if modules:
        threading.Thread(target=_import_modules, args=(modules,), name="import-ahead", daemon=True).start()


def _import_modules(modules: list[str]) -> None:
    """Import ``modules``; one that fails is left for its step to import, and to report."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001,S112 - the step imports it again and fails with the real error
            continue


def _step_thread(step_context, events: queue.Queue, enter_thread: Callable[[], None]) -> None:
    """Run one step (or launch it, with a step launcher) and pass its events on."""
    key = step_context.step.key
    try:
        enter_thread()
        for event in internals.step_events(step_context):
            events.put((key, None, event))
    except BaseException:  # noqa: BLE001 - what Dagster itself lets through is raised in the run's thread
        events.put((key, _RAISED, sys.exc_info()[1]))
    else:
        events.put((key, _ENDED, None))
