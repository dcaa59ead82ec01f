"""Terminating a run, as its steps see it.

Each step runs in a ``StepThread`` of the run's process; when the run is terminated the executor
marks every running step's thread, and a step stops where it calls ``raise_if_interrupted``: a point
where stopping is safe (a step launcher before each poll of its cluster run, which it then cancels;
a long step between batches or phases, through ``Progress``). A thread is never stopped from
outside: an exception raised into it at an arbitrary instruction can leave a lock it holds (a log
handler's, a connection pool's) taken, and the process then hangs at exit.
"""

import threading


class StepThread(threading.Thread):
    """The thread of one step; ``interrupted`` is set when the run is terminated."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.interrupted = threading.Event()


def raise_if_interrupted() -> None:
    """In a step's thread: raise Dagster's ``DagsterExecutionInterruptedError`` once the run has been
    terminated (elsewhere, and before that, nothing)."""
    thread = threading.current_thread()
    if isinstance(thread, StepThread) and thread.interrupted.is_set():
        from dagster import DagsterExecutionInterruptedError

        raise DagsterExecutionInterruptedError(f"the run was terminated while {thread.name} ran")
