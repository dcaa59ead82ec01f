"""What ``runtime/dagster_internals.py`` relies on in Dagster's internal API, one behaviour per test,
with real Dagster objects. CI runs this file against the newest Dagster release as well as the
pinned one (``.ci/run``): a failure here names the internal that changed.

A small executor (``_harness``) walks the plan one step at a time through the adapter's functions,
as the threaded executor does in threads, and records what it was handed."""

import ast
import os
import pickle
import signal
import time
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    DagsterInstance,
    Definitions,
    Executor,
    Field,
    OpExecutionContext,
    asset,
    define_asset_job,
    executor,
    failure_hook,
    in_process_executor,
    raise_execution_interrupts,
    success_hook,
)

import mlops_dagster
from mlops_dagster.runtime import dagster_internals as internals
from mlops_dagster.runtime.executor import ThreadedExecutor, threaded_executor
from mlops_dagster.runtime.interrupts import StepThread, raise_if_interrupted
from mlops_dagster_tests.project import run_in_process


class _Harness(Executor):
    def __init__(self, loop):
        self._loop = loop

    @property
    def retries(self):
        return internals.retry_mode({"disabled": {}})

    def execute(self, plan_context, execution_plan):
        yield internals.process_event(
            plan_context, "harness: steps in this process", execution_plan.step_keys_to_execute
        )
        yield from internals.execute_plan_in_this_process(
            plan_context, self.step_dependency_config, self._loop
        )


def _run(assets, loop, hooks=frozenset()):
    @executor(name="harness")
    def harness(_init_context):
        return _Harness(loop)

    defs = Definitions(assets=assets, jobs=[define_asset_job("all", hooks=set(hooks))], executor=harness)
    with DagsterInstance.ephemeral() as instance:
        return run_in_process(defs.resolve_job_def("all"), instance)


def _one_step_at_a_time(seen: dict):
    """The plan loop of the threaded executor, without threads: each adapter function once per use."""

    def loop(job_context, execution_plan):
        keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
        with (
            internals.active_execution(job_context, execution_plan, 2) as active,
            internals.captured_process_output(job_context, keys) as captured,
        ):
            seen["captured"] = captured
            yield captured
            while not active.is_complete:
                yield from active.concurrency_event_iterator(job_context)
                steps = active.get_steps_to_execute()
                if not steps:
                    active.sleep_til_ready()
                    continue
                for step in steps:
                    yield from _one_step(job_context, active, step, seen)
            seen["interrupted_check"] = active.check_for_interrupts()

    return loop


def _one_step(job_context, active, step, seen: dict):
    step_context = job_context.for_step(step, active.get_known_state())
    events = []
    try:
        for event in internals.step_events(step_context):
            events.append(event)
            yield event
            active.handle_event(event)
    except DagsterExecutionInterruptedError as error:
        seen["raised_after"] = (step.key, [e.event_type for e in events], error)
    active.verify_complete(job_context, step.key)
    for event in active.plan_events_iterator(job_context):
        events.append(event)
        yield event
    hook_events = list(internals.run_step_hooks(step_context, events))
    seen.setdefault("hook_events", {})[step.key] = hook_events
    yield from hook_events
    yield internals.step_engine_event(
        step_context, f"compute of {step.key}", {"seconds": 1.5, "kind": "jobs"}
    )


@pytest.fixture(scope="module")
def harness_run():
    """One run of: first -> second; broken (raises) -> after_broken (not run); maybe (no output) ->
    after_maybe (skipped); stopped (interrupted)."""
    seen: dict = {"hooks_ran": []}

    @success_hook
    def on_success(context):
        seen["hooks_ran"].append(("success", context.op.name))

    @failure_hook
    def on_failure(context):
        seen["hooks_ran"].append(("failure", context.op.name))

    @asset
    def first() -> None:
        print("printed by first")

    @asset(deps=[first])
    def second() -> None:
        pass

    @asset
    def broken() -> None:
        raise ValueError("broken on purpose")

    @asset(deps=[broken])
    def after_broken() -> None:
        pass

    @asset(output_required=False)
    def maybe():
        yield from ()

    @asset(deps=[maybe])
    def after_maybe() -> None:
        pass

    @asset
    def stopped() -> None:
        raise DagsterExecutionInterruptedError("stopped on purpose")

    result = _run(
        [first, second, broken, after_broken, maybe, after_maybe, stopped],
        _one_step_at_a_time(seen),
        hooks={on_success, on_failure},
    )
    return result, seen


# What the Pipes and serverless launch modes use: a step's StepRunRef (shipped to the cluster), the
# step run again from it in another process, and the OpExecutionContext a Pipes client takes. A
# StepRunRef needs a reconstructable job, so these pins run one of their own: the job below, with
# an executor that records what the adapter gives for each step.
_PINNED: dict = {}
REPO = Path(__file__).resolve().parents[1]


@asset
def pinned() -> int:
    return 7


@asset
def pinned_broken() -> None:
    raise ValueError("broken on purpose")


def _pinned_loop(job_context, execution_plan):
    with internals.active_execution(job_context, execution_plan, 1) as active:
        while not active.is_complete:
            for step in active.get_steps_to_execute():
                step_context = job_context.for_step(step, active.get_known_state())
                if step.key == "pinned":
                    context = internals.op_context(step_context)
                    _PINNED["op_context"] = (
                        type(context),
                        context.run_id,
                        context.asset_key,
                        context.op.name,
                    )
                ref = internals.step_run_ref(step_context, str(REPO))
                _PINNED.setdefault("refs", {})[step.key] = pickle.dumps(ref)
                for event in internals.step_events(step_context):
                    yield event
                    active.handle_event(event)
                active.verify_complete(job_context, step.key)
                yield from active.plan_events_iterator(job_context)


@executor(name="pinning")
def _pinning(_init_context):
    return _Harness(_pinned_loop)


def pinned_job():
    return Definitions(
        assets=[pinned, pinned_broken], jobs=[define_asset_job("pinned_job")], executor=_pinning
    ).resolve_job_def("pinned_job")


@pytest.fixture(scope="module")
def pinned_run(tmp_path_factory):
    from dagster import execute_job, reconstructable

    with DagsterInstance.local_temp(str(tmp_path_factory.mktemp("pinned"))) as instance:
        result = execute_job(reconstructable(pinned_job), instance=instance, raise_on_error=False)
        assert not result.success  # pinned_broken
        yield result, instance


def test_dagster_internals_op_context_is_the_public_context_of_the_step(pinned_run):
    result, _ = pinned_run
    kind, run_id, asset_key, op_name = _PINNED["op_context"]
    assert kind is OpExecutionContext and run_id == result.run_id
    assert asset_key == AssetKey("pinned") and op_name == "pinned"


def test_dagster_internals_a_step_run_ref_is_picklable_and_names_the_step_and_run(pinned_run):
    result, _ = pinned_run
    ref = pickle.loads(_PINNED["refs"]["pinned"])
    assert ref.step_key == "pinned" and ref.dagster_run.run_id == result.run_id
    assert ref.recon_job.get_definition().name == "pinned_job"  # what the remote side rebuilds


def test_dagster_internals_a_step_runs_again_from_its_ref_and_hands_over_each_record(pinned_run):
    records: list = []
    internals.run_step_from_ref(pickle.loads(_PINNED["refs"]["pinned"]), records.append)
    events = [r.dagster_event for r in records if r.dagster_event]
    types = [e.event_type for e in events]
    assert types.index(DagsterEventType.STEP_START) < types.index(DagsterEventType.STEP_SUCCESS)
    [materialized] = [e for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
    assert materialized.asset_key == AssetKey("pinned") and materialized.step_key == "pinned"
    # A failure of the step's code is a record, not an exception (what the Pipes entry point forwards).
    records.clear()
    internals.run_step_from_ref(pickle.loads(_PINNED["refs"]["pinned_broken"]), records.append)
    [failure] = [r.dagster_event for r in records if r.dagster_event and r.dagster_event.is_step_failure]
    assert "broken on purpose" in failure.step_failure_data.error.cause.message


def _of_step(result, key: str) -> list[str]:
    return [e.event_type_value for e in result.all_events if e.step_key == key]


def test_dagster_internals_retries_config_is_dagsters_own_and_selects_a_retry_mode():
    field = internals.retries_config()
    assert isinstance(field, Field) and field.default_value == {"enabled": {}}
    ours = threaded_executor.config_schema.as_field().config_type.fields["retries"]
    dagsters = in_process_executor.config_schema.as_field().config_type.fields["retries"]
    assert ours.config_type.key == dagsters.config_type.key
    assert internals.retry_mode({"enabled": {}}).enabled and internals.retry_mode({"disabled": {}}).disabled
    assert ThreadedExecutor(internals.retry_mode({"enabled": {}}), 2).retries.enabled


def test_dagster_internals_executor_default_step_dependency_config_is_dagsters_default():
    from dagster._core.execution.step_dependency_config import StepDependencyConfig

    assert (
        ThreadedExecutor(internals.retry_mode({"enabled": {}}), 2).step_dependency_config
        == StepDependencyConfig.default()
    )


def test_dagster_internals_plan_in_this_process_runs_every_step_and_ends_the_run(harness_run):
    result, _ = harness_run
    types = [e.event_type for e in result.all_events]
    assert types[0] == DagsterEventType.RUN_START
    assert types[-1] == DagsterEventType.RUN_FAILURE  # broken and stopped failed
    assert _of_step(result, "first")[:1] == ["STEP_START"] and "STEP_SUCCESS" in _of_step(result, "first")
    assert "STEP_SUCCESS" in _of_step(result, "second")
    assert "STEP_FAILURE" in _of_step(result, "broken")


def test_dagster_internals_process_event_is_an_engine_event_naming_pid_and_steps(harness_run):
    result, _ = harness_run
    [event] = [e for e in result.all_events if e.message == "harness: steps in this process"]
    assert isinstance(event, DagsterEvent) and event.event_type == DagsterEventType.ENGINE_EVENT
    assert event.engine_event_data.metadata["pid"].value == str(os.getpid())
    assert "first" in event.engine_event_data.metadata["step_keys"].value


def test_dagster_internals_captured_output_yields_logs_captured_for_the_steps(harness_run):
    result, seen = harness_run
    captured = seen["captured"]
    assert captured.event_type == DagsterEventType.LOGS_CAPTURED
    assert set(captured.logs_captured_data.step_keys) == {
        "first",
        "second",
        "broken",
        "after_broken",
        "maybe",
        "after_maybe",
        "stopped",
    }
    assert captured.logs_captured_data.file_key
    assert any(e.event_type_value == "LOGS_CAPTURED" for e in result.all_events)


def test_dagster_internals_step_events_report_success_failure_and_skips(harness_run):
    result, _ = harness_run
    assert [t for t in _of_step(result, "first") if t.startswith("STEP_")][-1] == "STEP_SUCCESS"
    [failure] = [e for e in result.all_events if e.is_step_failure and e.step_key == "broken"]
    assert "broken on purpose" in failure.step_failure_data.error.cause.message
    assert _of_step(result, "after_broken") == []  # its upstream failed: the plan never starts it
    assert "STEP_SKIPPED" in _of_step(result, "after_maybe")  # from the plan: maybe yielded no output


def test_dagster_internals_an_interrupt_in_a_step_is_a_step_failure_then_raised_again(harness_run):
    result, seen = harness_run
    key, types, error = seen["raised_after"]
    assert key == "stopped" and types[-1] == DagsterEventType.STEP_FAILURE
    assert isinstance(error, DagsterExecutionInterruptedError) and "stopped on purpose" in str(error)
    assert "STEP_FAILURE" in _of_step(result, "stopped")


def test_dagster_internals_step_hooks_run_on_the_steps_events(harness_run):
    result, seen = harness_run
    assert ("success", "first") in seen["hooks_ran"] and ("failure", "broken") in seen["hooks_ran"]
    assert ("success", "broken") not in seen["hooks_ran"]
    first = [e.event_type for e in seen["hook_events"]["first"]]
    assert DagsterEventType.HOOK_COMPLETED in first and DagsterEventType.HOOK_SKIPPED in first  # failure hook
    assert any(e.event_type_value == "HOOK_COMPLETED" and e.step_key == "broken" for e in result.all_events)


def test_dagster_internals_step_engine_event_carries_its_metadata(harness_run):
    result, _ = harness_run
    [event] = [e for e in result.all_events if e.message == "compute of second"]
    assert event.event_type == DagsterEventType.ENGINE_EVENT and event.step_key == "second"
    metadata = {k: v.value for k, v in event.engine_event_data.metadata.items()}
    assert metadata == {"seconds": 1.5, "kind": "jobs"}


def test_dagster_internals_the_plan_sees_no_interrupt_unless_one_came(harness_run):
    _, seen = harness_run
    assert seen["interrupted_check"] is False


def test_dagster_internals_termination_is_captured_for_the_plan_and_ends_the_run_as_interrupted():
    """Terminating a run sends its process SIGINT: during the plan it is captured (not raised), the
    plan's check_for_interrupts() tells, and the executor's DagsterExecutionInterruptedError ends the
    run as an interrupted one."""
    seen: dict = {}

    def loop(job_context, execution_plan):
        keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
        with internals.active_execution(job_context, execution_plan, 2) as active:
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 5
            while not (interrupted := active.check_for_interrupts()) and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["interrupted"] = interrupted
            active.mark_interrupted()
            yield internals.interrupted_event(job_context, "harness: interrupted", keys)
            raise DagsterExecutionInterruptedError("harness: the run was interrupted")

    @asset
    def never_started() -> None:
        pass

    result = _run([never_started], loop)
    assert seen["interrupted"] is True
    [event] = [e for e in result.all_events if e.message == "harness: interrupted"]
    assert event.event_type == DagsterEventType.ENGINE_EVENT
    assert event.engine_event_data.metadata["steps_interrupted"].value == "['never_started']"
    [end] = [e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE]
    assert "interrupted" in end.message.lower()


def test_dagster_internals_sigint_in_execution_raises_the_error_steps_raise_when_terminated():
    """Dagster turns a termination signal into DagsterExecutionInterruptedError where it raises
    interrupts; a step's thread raises the same class (``raise_if_interrupted``)."""
    with pytest.raises(DagsterExecutionInterruptedError):
        with raise_execution_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)

    outcome = {}

    def step():
        try:
            raise_if_interrupted()
        except DagsterExecutionInterruptedError as error:
            outcome["raised"] = error

    thread = StepThread(target=step, name="step x")
    thread.interrupted.set()
    thread.start()
    thread.join(5)
    assert isinstance(outcome["raised"], DagsterExecutionInterruptedError)


def test_dagster_internals_interrupt_requested_tells_of_a_captured_termination_and_keeps_it():
    """A run waiting for its use case's pool (``run_lock``) stops when terminated: the signal is
    captured while Dagster executes a run, and asking does not take it from the plan."""
    from dagster._utils.interrupts import capture_interrupts, pop_captured_interrupt

    assert internals.interrupt_requested() is False
    with capture_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while not internals.interrupt_requested() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert internals.interrupt_requested() is True
        assert pop_captured_interrupt() is True  # still there for the plan's check_for_interrupts


def test_dagster_internals_is_the_only_module_that_imports_dagsters_private_api():
    package = Path(mlops_dagster.__file__).parent
    adapter = Path(internals.__file__).resolve()
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            if path.resolve() != adapter and any(name.startswith("dagster._") for name in names):
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    assert found == [], f"import Dagster's private API only in {adapter.name}: {found}"
