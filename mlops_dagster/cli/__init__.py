"""``mlops``: generate demo data and run the lifecycle headless with a readable summary.

    mlops generate [--rows N] [--seed S] [--drifted] [--name FILE] [--landing DIR]   # a demo landing file
    mlops generate --outcomes [--changed-world]                      # what became of those customers
    mlops infer-contract FILE [--rows N]                              # a dataset.columns contract from a file
    mlops run [--job lifecycle]                                       # run a job, print a summary
    mlops serve | mlops stop                                          # the local serving gateway
    mlops token create --scope query|manage [--name N] | list | revoke NAME   # the gateway's tokens
    mlops lineage [--version N]                                       # a model version's lineage
    mlops approve --version N --comment "..."                         # approve a version for promotion
    mlops features [--table NAME]                                     # the feature registry
    mlops prepare-spark                                               # JVM class archive (make install)
    mlops migrate [--dry-run]                                         # move an older MLOPS_HOME forward
    mlops housekeeping [--dry-run]                                    # retention, compaction, vacuum
    mlops --version                                                   # the installed package's version

Every command takes ``--use-case NAME``: ``run``, ``features`` and ``housekeeping`` act on every use case without it,
``approve`` needs it when the project has several, ``migrate`` takes it to say whose flat landing
files are, the others default to the first.

The package's modules: ``parser`` (the command line), ``commands`` (the commands, and the dispatch to
them), ``runs`` (running jobs), ``summary`` (a run's summary), ``demo`` (demo data).
"""

from __future__ import annotations

import gc
import os
import sys

from .commands import bootstrap_target, dispatch, manage_tokens, print_features, print_lineage
from .demo import generate, write_demo, write_outcomes
from .parser import build_parser
from .runs import default_dagster_home, run

__all__ = [
    "bootstrap_target",
    "console",
    "default_dagster_home",
    "generate",
    "job_named",
    "main",
    "manage_tokens",
    "print_features",
    "print_lineage",
    "run",
    "write_demo",
    "write_outcomes",
]


def job_named(name: str):
    """The code location's job ``name``: how a run's job is rebuilt in another process (a step
    launched on a Databricks cluster reconstructs it from here: ``runs.executed`` points at
    ``mlops_dagster.cli.job_named``)."""
    from ..definitions import defs

    return defs.resolve_job_def(name)


def main(argv: list[str] | None = None) -> int:
    from ..settings import ConfigError

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    try:
        return dispatch(args)
    except ConfigError as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        return 2


def console() -> int:
    """The ``mlops`` command: ``main`` in a process of its own, which ends when it returns."""
    try:
        return main()
    finally:
        # The interpreter's last garbage collection would walk every object a run left (3 s after a
        # lifecycle run) to free memory that the end of the process frees anyway.
        gc.freeze()
