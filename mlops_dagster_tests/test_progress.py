"""Progress lines of long steps: the phase, rows done with their rate, the elapsed time; and where a
step stops when its run is terminated."""

import threading
import time

import pytest

from mlops_dagster.runtime import progress
from mlops_dagster.runtime.progress import Progress


def test_the_rate_counts_from_the_phase_that_does_the_rows(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    lines: list[str] = []
    p = Progress(lines.append, "online store", total_rows=1000)
    now[0] += 60  # a minute of Spark work before any row is published
    p.say("publishing")
    now[0] += 10
    p.rows_done(500)
    assert p.line() == "online store: publishing, 500 of 1,000 rows (50 rows/s) (70 s)"


def test_a_step_with_nothing_to_say_is_still_working():
    assert Progress(print, "training").line().startswith("training: working (")


def _slow(batches):
    import time

    for batch in batches:
        time.sleep(4)
        yield batch


@pytest.mark.integration
def test_a_steps_progress_shows_only_the_spark_jobs_of_its_own_thread(spark):
    """Steps run at once in threads sharing one SparkSession: a step's progress line names the stage
    of its own job, not that of the job another step's thread is running at the same time."""

    def slow_job():
        spark.range(1, numPartitions=1).mapInArrow(_slow, "id long").collect()

    other = threading.Thread(target=slow_job)
    other.start()
    seen: dict[str, object] = {}

    def watch(p: Progress):
        time.sleep(2.5)
        tracker = spark.sparkContext.statusTracker()
        seen["active"], seen["line"] = tracker.getActiveStageIds(), p.line()

    with Progress(lambda _: None, "features", spark=spark) as p:
        watcher = threading.Thread(target=watch, args=(p,))
        watcher.start()
        slow_job()
        watcher.join()
    other.join()
    assert len(seen["active"]) == 2, seen  # both jobs were running when the line was made
    assert str(seen["line"]).count("Spark stage") == 1, seen
    assert (
        spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None
    )  # the group ended with the Progress


def test_a_terminated_runs_step_stops_at_its_next_batch_and_other_threads_go_on():
    from dagster._core.errors import DagsterExecutionInterruptedError

    from mlops_dagster.runtime.interrupts import StepThread

    outcome: dict[str, object] = {}

    def step():
        with Progress(lambda line: None, "ingestion", total_rows=3) as p:
            p.rows_done(1)
            first_batch_done.set()
            terminated.wait(10)
            try:
                p.rows_done(1)  # the next batch
            except DagsterExecutionInterruptedError as error:
                outcome["stopped"] = str(error)

    first_batch_done, terminated = threading.Event(), threading.Event()
    thread = StepThread(target=step, name="step ingest_landing_files", daemon=True)
    thread.start()
    assert first_batch_done.wait(10)
    thread.interrupted.set()
    terminated.set()
    thread.join(10)
    assert outcome == {"stopped": "the run was terminated while step ingest_landing_files ran"}
    with Progress(lambda line: None, "not a step's thread") as p:
        p.rows_done(1)  # no run to terminate here
    assert p.rows == 1
