"""One run of a use case at a time: a run holds its use case's Dagster pool while its steps run.

Two runs of one use case at once (a sensor's and a manual one, two `mlops run`s) would both ingest
the same new files and move the same aliases between each other's steps. The run queue keeps
queued runs apart (``dagster.yaml``'s ``tag_concurrency_limits``), but runs started outside the
queue (`mlops run`, ``dagster job execute``, a run of another instance's daemon) are not queued. So
the executor of every run claims the one slot of pool ``mlops/<use case>`` before the run's
resources start, and frees it when the run ends: the later run waits, saying for which run. The
pool is Dagster's own (its slots live in the instance's storage, SQLite or PostgreSQL, shared by
every process of the instance) and shows on the UI's Concurrency page, with its holder.

A run that died holding the slot (SIGKILL, a lost container) must not block its use case for ever:
a waiting run frees the slot of a holder that has ended, and, on the holder's own host, of a holder
whose process is gone, which it then reports failed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

from ..settings import USE_CASE_TAG

POOL_PREFIX = "mlops/"
# Run tag: the host, pid and process start time of the process executing the run.
PROCESS_TAG = "mlops/process"
# The slot's step key: the whole run holds it, not one of its steps.
HOLDER = "whole run"
POLL_SECONDS = 2.0


def pools_of(run) -> list[str]:
    """The pools a run holds: its use case's (the jobs' tag), else each use case whose assets it
    materializes (an asset selection from the UI or automation: ``<use case>/<asset>`` keys), sorted
    so that two runs never wait for each other's second pool."""
    if run.tags.get(USE_CASE_TAG):
        return [POOL_PREFIX + run.tags[USE_CASE_TAG]]
    use_cases = {key.path[0] for key in (run.asset_selection or ()) if len(key.path) > 1}
    return sorted(POOL_PREFIX + u for u in use_cases)


def acquire(instance, run, interrupted: Callable[[], bool]) -> Iterator[str]:
    """Claim the run's pools, yielding what it waits for (and frees) meanwhile; raise Dagster's
    ``DagsterExecutionInterruptedError`` when the run is terminated while it waits."""
    storage = instance.event_log_storage
    pools = pools_of(run)
    if not pools or not storage.supports_global_concurrency_limits:
        return
    instance.add_run_tags(run.run_id, {PROCESS_TAG: this_process()})
    for pool in pools:
        if storage.get_concurrency_info(pool).limit is None:
            storage.set_concurrency_slots(pool, 1)  # an operator's own limit (Concurrency page) stays
        told: set[str] = set()
        while not storage.claim_concurrency_slot(pool, run.run_id, HOLDER).is_claimed:
            holders = storage.get_concurrency_info(pool).active_run_ids - {run.run_id}
            freed = list(release_abandoned(instance, holders))
            yield from freed
            if holders and not freed and holders != told:
                told = holders
                yield (
                    f"waiting for run {', '.join(sorted(holders))} to finish: pool {pool} lets one run "
                    "of the use case write at a time"
                )
            if interrupted():
                from dagster import DagsterExecutionInterruptedError

                release(instance, run)
                raise DagsterExecutionInterruptedError(
                    f"the run was terminated while it waited for pool {pool}"
                )
            if not freed:  # just freed by its holder (or another waiter is first in line): soon
                time.sleep(POLL_SECONDS if holders else 0.2)


def release(instance, run) -> None:
    """Free every slot the run holds or waits for."""
    if pools_of(run) and instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def release_abandoned(instance, run_ids: set[str]) -> Iterator[str]:
    """Free the slots of the runs that can no longer free them: ended ones, and those whose process on
    this host is gone (reported failed first). Yields what it did."""
    for run_id in sorted(run_ids):
        holder = instance.get_run_by_id(run_id)
        if holder is None or holder.is_finished:
            state = "deleted" if holder is None else f"ended {holder.status.value}"
        elif process_alive(holder.tags.get(PROCESS_TAG, "")):
            continue
        else:
            instance.report_run_failed(
                holder,
                f"the process that executed this run ({holder.tags[PROCESS_TAG]}) ended without "
                "finishing it (killed, or its machine stopped); a later run of the use case found it so",
            )
            state = "reported failed: its process is gone"
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        yield f"freed the pool slot of run {run_id} ({state})"


def this_process() -> str:
    """``host:pid:start``, the start from ``/proc`` where there is one (a reused pid starts later)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid()) or ''}"


def process_alive(process: str) -> bool:
    """Whether the process a ``PROCESS_TAG`` names may still run: True unless it is on this host and
    gone (no such pid, or a pid taken by a later process). Another host's process is assumed alive
    (Dagster's run monitoring fails a run whose worker died there; its slot is freed then)."""
    host, _, rest = process.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return not start or _start_time(int(pid)) == start


def _start_time(pid: int) -> str | None:
    """The process's start, in clock ticks after boot (``/proc/<pid>/stat`` field 22); None without ``/proc``."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one read of a tiny file
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]
