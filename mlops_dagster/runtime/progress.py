"""Progress of long steps, in the run's log: while a step works, a line at least every 10 s.

A step says what it is doing and, where it counts them, how many rows are done out of how many;
while Spark runs a job, the line also says how far the job's current stage is (tasks done of all).
Steps run at once in threads of one process and share its SparkSession, so the Spark jobs a
thread starts inside a ``Progress`` carry a job group of their own, and only those are shown.
Saying what it does and counting rows are also where a step stops when its run is terminated
(``interrupts.py``): between phases and batches, never inside one.
Nothing here imports Dagster or Spark: the log is any callable taking a line of text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .interrupts import raise_if_interrupted

INTERVAL_SECONDS = 10.0
# What SparkContext.setJobGroup sets (thread-local properties), restored when a Progress ends.
_JOB_GROUP_PROPERTIES = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


class Progress:
    """``with Progress(context.log.info, "features") as p: ... p.rows_done(n) ... p.say("merging")``"""

    def __init__(
        self,
        log: Callable[[str], Any],
        what: str,
        total_rows: int | None = None,
        spark=None,
        interval: float = INTERVAL_SECONDS,
    ):
        self.log, self.what, self.total_rows, self.spark, self.interval = (
            log,
            what,
            total_rows,
            spark,
            interval,
        )
        self.phase, self.rows = "", 0
        self._started = self._phase_started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{what}", daemon=True)
        self._group = f"progress-{id(self)}"
        self._previous: dict[str, str | None] = {}

    def __enter__(self) -> Progress:
        if self.spark is not None:
            from pyspark.sql.utils import is_remote

            if is_remote():
                self.spark = None  # Spark Connect: no job groups or stage status from the client
            else:
                # Spark keeps a job group per Python thread: jobs this thread starts from here are ours.
                context = self.spark.sparkContext
                self._previous = {key: context.getLocalProperty(key) for key in _JOB_GROUP_PROPERTIES}
                context.setJobGroup(self._group, self.what)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for key, value in self._previous.items():  # None removes the property
            self.spark.sparkContext.setLocalProperty(key, value)

    def say(self, phase: str) -> None:
        """What the step is doing now (shown in the next progress line); rows counted from here on
        are rated over the time since."""
        raise_if_interrupted()
        self.phase, self._phase_started = phase, time.monotonic()

    def rows_done(self, rows: int) -> None:
        raise_if_interrupted()
        self.rows += rows

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.log(self.line())

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        parts = [self.phase] if self.phase else []
        if self.rows:
            total = f" of {self.total_rows:,}" if self.total_rows else ""
            rate = self.rows / (time.monotonic() - self._phase_started)
            parts.append(f"{self.rows:,}{total} rows ({rate:,.0f} rows/s)")
        parts += _spark_stages(self.spark, self._group)
        return f"{self.what}: {', '.join(parts) or 'working'} ({elapsed:.0f} s)"


def _spark_stages(spark, group: str) -> list[str]:
    """The running stages of job group ``group`` as "Spark stage 7: 3/8 tasks" (nothing when it runs none)."""
    if spark is None:
        return []
    tracker = spark.sparkContext.statusTracker()
    jobs = (tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(group))
    ours = {stage for job in jobs if job is not None for stage in job.stageIds}
    stages = [tracker.getStageInfo(i) for i in sorted(set(tracker.getActiveStageIds()) & ours)]
    return [
        f"Spark stage {s.stageId}: {s.numCompletedTasks}/{s.numTasks} tasks" for s in stages if s is not None
    ]
