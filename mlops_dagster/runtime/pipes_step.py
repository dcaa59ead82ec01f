"""The entry point of a step launched through Dagster Pipes (``databricks.launch: pipes`` or ``serverless``).

It runs as the ``spark_python_task`` of a Databricks job run and starts with nothing but
dagster-pipes: it opens the Pipes session the orchestrating process injected (its context and its
messages back on DBFS, or in a Unity Catalog volume on serverless compute), unpacks the project's code shipped with the step, runs the step
and reports, as they happen, every Dagster event of the step (materializations with their
metadata, asset check results, outputs, its success or its failure with the remote traceback) as
a Pipes custom message, and the step's log lines as Pipes log messages.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import tempfile
import zipfile

EVENT_MESSAGE = "mlops/step_event"  # the custom message carrying one serialized EventLogEntry


VOLUMES_FLAG = "--mlops-pipes-volumes"  # the task's argument on serverless: context and messages in a volume


def fuse_path(path: str) -> str:
    """``dbfs:/x`` as the cluster's DBFS mount sees it (``/dbfs/x``); a volume's path as it is."""
    return "/dbfs/" + path.removeprefix("dbfs:").lstrip("/") if path.startswith("dbfs:") else path


def forward(pipes, record) -> None:
    """One record of the step's instance, sent back: a Dagster event whole, a log line as a log."""
    if record.dagster_event is not None:
        from dagster import serialize_value

        pipes.report_custom_message({"kind": EVENT_MESSAGE, "record": serialize_value(record)})
    elif record.user_message:
        pipes.log.log(record.level if isinstance(record.level, int) else logging.INFO, record.user_message)


def main() -> None:
    import dagster_pipes as dp

    # A job cluster gets the Pipes parameters as environment variables, an existing cluster and
    # serverless compute as arguments; serverless compute reaches no DBFS root, so a volume instead.
    cli = dp.PipesCliArgsParamsLoader()
    volumes = VOLUMES_FLAG in sys.argv
    with (
        dp.open_dagster_pipes(
            params_loader=cli if cli.is_dagster_pipes_process() else dp.PipesEnvVarParamsLoader(),
            context_loader=dp.PipesUnityCatalogVolumesContextLoader()
            if volumes
            else dp.PipesDbfsContextLoader(),
            message_writer=dp.PipesUnityCatalogVolumesMessageWriter()
            if volumes
            else dp.PipesDbfsMessageWriter(),
        ) as pipes,
        tempfile.TemporaryDirectory(prefix="mlops-dagster-code-") as code,
    ):
        with zipfile.ZipFile(fuse_path(pipes.extras["code"])) as archive:
            archive.extractall(code)
        sys.path.insert(0, code)  # the shipped package, before any installed copy
        os.environ.update(pipes.extras["env"])
        for secret in pipes.extras["secrets"]:  # ``dbutils``: the runtime's, in this script's globals
            os.environ[secret["name"]] = globals()["dbutils"].secrets.get(secret["scope"], secret["key"])
        from mlops_dagster.runtime.dagster_internals import run_step_from_ref

        with open(fuse_path(pipes.extras["step_run_ref"]), "rb") as handle:
            ref = pickle.load(handle)
        run_step_from_ref(ref, lambda record: forward(pipes, record))


if __name__ == "__main__":
    main()
