"""The ``mlops`` command line: one function per group of commands, in the order ``--help`` lists them."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..resources.spark_connect import DEFAULT_PORT
from ..settings.constants import FORMAT_1_SCHEMA

Command = Callable[..., argparse.ArgumentParser]  # adds a command that takes --use-case


def build_parser(description: str) -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(prog="mlops", description=description)
    parser.add_argument("--version", action="version", version=f"mlops {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--use-case", help="the use case to act on (its name in the config's use_cases)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs):
        return sub.add_parser(name, parents=[common], **kwargs)

    _data_commands(command)
    _serving_commands(command)
    _model_commands(command)
    _project_commands(command)
    return parser


def _data_commands(command: Command) -> None:
    """``generate`` demo data, ``infer-contract`` from a file, ``run`` a job, ``dev``: the UI."""
    gen = command("generate", help="write a demo's synthetic landing file into its use case's landing folder")
    gen.add_argument("--rows", type=int, help="default: the demo's (7,043 telco customers, 5,000 houses)")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--drifted", action="store_true", help="after a price rise and a contract-mix shift")
    gen.add_argument("--name", help="file name in the landing volume")
    gen.add_argument(
        "--landing",
        help="write into this folder instead of the use case's landing folder (for a use case declared "
        "as a Dagster component: $MLOPS_HOME/landing/<its name>)",
    )
    gen.add_argument(
        "--outcomes",
        action="store_true",
        help="instead: the outcome (the label, observed now) of each entity that file holds, "
        "into the use case's ground-truth folder",
    )
    gen.add_argument(
        "--changed-world",
        action="store_true",
        help="outcomes from a world whose reasons for the label changed: the champion decays "
        "(implies --outcomes)",
    )
    infer = command(
        "infer-contract",
        help="print a dataset.columns contract (types, nullability, allowed values, ranges) inferred "
        "from the first rows of a CSV, JSON lines or Parquet file",
    )
    infer.add_argument("file")
    infer.add_argument("--rows", type=int, default=100_000, help="how many rows to sample (default 100000)")
    infer.add_argument("--format", default="auto", choices=["auto", "csv", "json", "parquet"])
    runner = command("run", help="run a job headless on the current target and print a summary")
    runner.add_argument(
        "--job",
        default="lifecycle",
        help="lifecycle, training, batch_inference, monitoring or a governance job",
    )
    _warm_arguments(runner, "run Spark on this home's Spark Connect server, started if need be")
    dev = command(
        "dev",
        help="the Dagster UI (dagster dev) on this project; its runs fork from a warm process and use "
        "this home's Spark Connect server, started if need be (mlops stop / make stop stops it)",
    )
    dev.add_argument("--port", type=int, default=3000, help="the UI's port (default 3000)")
    dev.add_argument(
        "--cold", action="store_true", help="each run starts a process and a Spark of its own instead"
    )
    _warm_arguments(dev, None)


def _warm_arguments(parser: argparse.ArgumentParser, warm_help: str | None) -> None:
    """``--warm`` (when ``warm_help``) and the port of the home's Spark Connect server."""
    if warm_help:
        parser.add_argument("--warm", action="store_true", help=warm_help)
    parser.add_argument(
        "--connect-port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the Spark Connect server's port, if it has to be started (default {DEFAULT_PORT})",
    )


def _serving_commands(command: Command) -> None:
    """``serve`` and ``stop`` the local serving gateway, manage its ``token``s."""
    command("serve", help="run the local serving gateway in the foreground (Ctrl-C stops it)")
    command("stop", help="stop the local serving gateway and Spark Connect server started in the background")
    connect = command(
        "spark-connect",
        help="a local Spark Connect server that outlives runs (set spark.remote to its URL to use it)",
    )
    connect.add_argument("action", choices=["start", "stop", "status"])
    connect.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"its gRPC port (default {DEFAULT_PORT})"
    )
    token = command("token", help="the local serving gateway's access tokens (Authorization: Bearer <token>)")
    tokens = token.add_subparsers(dest="action", required=True)
    create = tokens.add_parser("create", help="a new token, printed once (the gateway keeps only its hash)")
    create.add_argument(
        "--scope",
        required=True,
        choices=["query", "manage"],
        help="query: score and read endpoints; manage: also create, update and delete them",
    )
    create.add_argument("--name", help="a name to list and revoke it by (default: <scope>-<n>)")
    tokens.add_parser("list", help="the tokens' names, scopes and creation times (never the tokens)")
    revoke = tokens.add_parser("revoke", help="revoke a token: the gateway refuses it from its next request")
    revoke.add_argument("name")


def _model_commands(command: Command) -> None:
    """A model version's ``lineage``; ``approve`` and ``promote`` it."""
    lineage = command("lineage", help="where a model version came from and where it is used")
    lineage.add_argument("--version", help="model version (default: the champion)")
    approve = command("approve", help="approve a validated model version for promotion (audited)")
    approve.add_argument("--version", required=True, help="a version number, or an alias such as challenger")
    approve.add_argument("--comment", required=True)
    promote = command(
        "promote",
        help="move the champion on to the next environment with the configured "
        "pattern (deploy_code | deploy_model; audited)",
    )
    promote.add_argument("--reason", required=True, help="why it moves on (release, ticket)")


def _project_commands(command: Command) -> None:
    """``prepare-spark``, ``bootstrap`` a Databricks target, list the ``features``, ``migrate`` a home,
    ``housekeeping``."""
    from ..settings import TARGETS

    command(
        "prepare-spark",
        help="build the JVM class archive that makes local Spark start faster (make install does it)",
    )
    boot = command(
        "bootstrap",
        help="create what a Databricks target needs (schema, volumes, experiments, "
        "registered models, grants) and check its secret keys; idempotent",
    )
    boot.add_argument("--target", required=True, choices=[t for t in TARGETS if t != "local"])
    features = command("features", help="the feature registry: tables, features, owners, versions, users")
    features.add_argument("--table", help="one table (short or catalog.schema.table name)")
    migrate = command(
        "migrate",
        help=f"move an MLOPS_HOME of the previous release (tables in schema {FORMAT_1_SCHEMA}, "
        "landing files flat in landing/) to today's format",
    )
    migrate.add_argument("--dry-run", action="store_true", help="print what would move, move nothing")
    housekeeping = command(
        "housekeeping",
        help="apply the retention policy: delete rows, reports, runs and model versions past their "
        "age, compact and vacuum tables; print what it did and each table's disk use (audited)",
    )
    housekeeping.add_argument("--dry-run", action="store_true", help="print what would go, change nothing")
