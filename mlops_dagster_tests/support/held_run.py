"""A one-step job of a use case whose step holds the run until a file appears, for the tests of one
run of a use case at a time: ``python -m mlops_dagster_tests.support.held_run FOLDER USE_CASE``
(DAGSTER_HOME set). The step writes ``FOLDER/<pid>.started`` when it starts, waits for
``FOLDER/release``, then writes ``FOLDER/<pid>.ended``."""

import os
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, Definitions, asset, define_asset_job, execute_job, reconstructable

from mlops_dagster.runtime.executor import threaded_executor
from mlops_dagster.settings import USE_CASE_TAG


def _mark(folder: Path, event: str) -> None:
    """``FOLDER/<pid>.<event>`` holding the time, whole when it appears (the tests poll for it)."""
    partial = folder / f"{os.getpid()}.{event}.partial"
    partial.write_text(str(time.time()))
    partial.rename(folder / f"{os.getpid()}.{event}")


@asset
def held() -> None:
    folder = Path(os.environ["HELD_RUN_FOLDER"])
    _mark(folder, "started")
    while not (folder / "release").exists():
        time.sleep(0.1)
    _mark(folder, "ended")


def held_job():
    return Definitions(
        assets=[held],
        jobs=[define_asset_job("held_job", tags={USE_CASE_TAG: os.environ["HELD_RUN_USE_CASE"]})],
        executor=threaded_executor.configured({"max_concurrent": 2}),
    ).resolve_job_def("held_job")


if __name__ == "__main__":
    os.environ["HELD_RUN_FOLDER"], os.environ["HELD_RUN_USE_CASE"] = sys.argv[1:3]
    with DagsterInstance.get() as instance:
        result = execute_job(reconstructable(held_job), instance=instance, raise_on_error=False)
    print(f"run {result.run_id} {'SUCCESS' if result.success else 'FAILURE'}", flush=True)
    sys.exit(0 if result.success else 1)
