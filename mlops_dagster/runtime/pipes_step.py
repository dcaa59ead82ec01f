"""The entry point of a step launched through Dagster Pipes (``databricks.launch: pipes``).

It runs as the ``spark_python_task`` of a Databricks job run and starts with nothing but
dagster-pipes: it opens the Pipes session the orchestrating process injected (its context on
DBFS, its messages back to DBFS), unpacks the project's code shipped with the step, runs the step
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


def fuse_path(dbfs_path: str) -> str:
    """``dbfs:/x`` as the cluster's DBFS mount sees it (``/dbfs/x``)."""
    return "/dbfs/" + dbfs_path.removeprefix("dbfs:").lstrip("/")


def forward(pipes, record) -> None:
    """One record of the step's instance, sent back: a Dagster event whole, a log line as a log."""
    if record.dagster_event is not None:
        from dagster import serialize_value

        pipes.report_custom_message({"kind": EVENT_MESSAGE, "record": serialize_value(record)})
    elif record.user_message:
        pipes.log.log(record.level if isinstance(record.level, int) else logging.INFO, record.user_message)


def main() -> None:
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesDbfsContextLoader,
        PipesDbfsMessageWriter,
        PipesEnvVarParamsLoader,
        open_dagster_pipes,
    )

    # A job cluster gets the Pipes parameters as environment variables, an existing cluster as arguments.
    cli = PipesCliArgsParamsLoader()
    with (
        open_dagster_pipes(
            params_loader=cli if cli.is_dagster_pipes_process() else PipesEnvVarParamsLoader(),
            context_loader=PipesDbfsContextLoader(),
            message_writer=PipesDbfsMessageWriter(),
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
