"""`mlops run JOB --use-case U`, killed with SIGKILL at a chosen point: the crash-recovery tests.

``python -m mlops_dagster_tests.support.crash_run JOB USE_CASE MODULE:CLASS.METHOD WHEN MATCH``
runs the job as `mlops run` does, in this process, with ``CLASS.METHOD`` wrapped: on its first call
whose arguments mention ``MATCH``, the process kills itself with SIGKILL ``before`` or ``after`` the
call (after: once the call has committed what it writes). Nothing is cleaned up, as in a real crash:
no finally block, no atexit, no flush.
"""

import functools
import importlib
import os
import signal
import sys


def kill_at(target: str, when: str, match: str) -> None:
    module_name, _, attribute = target.partition(":")
    owner_name, _, method_name = attribute.partition(".")
    owner = getattr(importlib.import_module(module_name), owner_name)
    original = getattr(owner, method_name)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        hit = match in repr(args[1:]) + repr(kwargs)
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, method_name, wrapped)


if __name__ == "__main__":
    job, use_case, target, when, match = sys.argv[1:6]
    kill_at(target, when, match)
    from mlops_dagster.cli.runs import run

    sys.exit(run(job, use_case))
