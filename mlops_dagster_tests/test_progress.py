"""Progress lines of long steps: the phase, rows done with their rate, the elapsed time."""

from mlops_dagster import progress
from mlops_dagster.progress import Progress


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
