"""``mlops``: generate demo data and run the lifecycle headless with a readable summary.

    mlops generate [--rows N] [--seed S] [--drifted] [--name FILE]   # a demo landing file
    mlops generate --outcomes [--changed-world]                      # what became of those customers
    mlops run [--job lifecycle]                                       # run a job, print a summary
    mlops serve | mlops stop                                          # the local serving gateway
    mlops token create --scope query|manage [--name N] | list | revoke NAME   # the gateway's tokens
    mlops lineage [--version N]                                       # a model version's lineage
    mlops approve --version N --comment "..."                         # approve a version for promotion
    mlops features [--table NAME]                                     # the feature registry
    mlops prepare-spark                                               # JVM class archive (make install)
    mlops migrate [--dry-run]                                         # move an older MLOPS_HOME forward

Every command takes ``--use-case NAME``: ``run`` and ``features`` act on every use case without it,
``approve`` needs it when the project has several, ``migrate`` takes it to say whose flat landing
files are, the others default to the first.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path


def _demo(settings):
    """The use case's demo generator, if it has one and its contract is still the generator's."""
    from .data import demo

    found = demo(settings.demo) if settings.demo else None
    return found if found and list(settings.dataset.columns) == found.columns else None


def generate(
    rows: int | None,
    seed: int,
    drifted: bool,
    name: str | None,
    landing: str | None = None,
    use_case: str | None = None,
    outcomes: bool = False,
    changed_world: bool = False,
) -> Path:
    """Write a demo's synthetic landing file into its use case's landing folder (default: the first
    use case with a demo), or with ``outcomes`` an outcome file for the customers such a file held
    into its ground-truth folder; returns its path."""
    from .resources.migration import check_home
    from .settings import ConfigError, load_project

    project = load_project()
    check_home(project)
    candidates = project.select(use_case) if use_case else project.use_cases
    settings = next((u for u in candidates if _demo(u)), None)
    if settings is None:
        named = ", ".join(u.name for u in candidates)
        raise ConfigError(
            f"mlops generate writes the shipped demos' data, and {named} has no demo generator: put "
            f"the use case's own files in its landing folder ({candidates[0].landing_path})"
        )
    if outcomes or changed_world:
        return write_outcomes(settings, rows, seed, drifted, changed_world, name)
    return write_demo(settings, rows, seed, drifted, name, landing)


def write_outcomes(
    settings, rows: int | None, seed: int, drifted: bool, changed: bool, name: str | None
) -> Path:
    """Outcomes, observed now, for the customers of the demo file written with the same rows, seed
    and drifted flag, into the use case's ground-truth folder."""
    from datetime import datetime

    from .data import demo
    from .settings import ConfigError

    generator = demo(settings.demo)
    if generator.outcomes is None or settings.monitoring.ground_truth.time_column != "label_time":
        raise ConfigError(
            f"the {settings.name} demo has no outcome generator: put outcome files ({settings.dataset.key}, "
            f"{settings.dataset.label}, {settings.monitoring.ground_truth.time_column}) in "
            f"{settings.ground_truth_path}"
        )
    rows = rows or generator.rows
    folder = Path(settings.ground_truth_path)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or f"outcomes_{'changed_world_' if changed else ''}{rows}_seed{seed}.csv"
    observed = datetime.now(UTC).isoformat(timespec="seconds")
    return generator.outcomes(folder / name, rows, seed, drifted, changed, observed)


def write_demo(
    settings, rows: int | None, seed: int, drifted: bool, name: str | None = None, landing: str | None = None
) -> Path:
    """A landing file of ``settings``' demo (its landing folder unless ``landing`` says otherwise)."""
    from .data import demo

    generator = demo(settings.demo or "telco")
    rows = rows or generator.rows
    landing_dir = Path(landing or settings.landing_path)
    landing_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"{settings.dataset.name}_{'drifted_' if drifted else ''}{rows}_seed{seed}.csv"
    return generator.write(landing_dir / name, rows, seed, drifted)


def _summary(result, seconds: float, settings) -> str:
    from .settings import PROBLEM_METRICS

    names, ds = settings.names, settings.dataset
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        path = mat.asset_key.path
        # This use case's assets by their name; others (project-wide) by their full key.
        meta[path[-1] if path[:-1] == names.prefix else mat.asset_key.to_user_string()] = {
            k: v.value for k, v in mat.metadata.items()
        }
    outcome = "SUCCESS" if result.success else "FAILURE"
    lines = [f"{result.dagster_run.job_name} run {result.run_id}: {outcome} in {seconds:.1f} s", ""]
    tables = [(k, m) for k, m in meta.items() if "delta_version" in m]
    if tables:
        lines.append("Tables (Delta):")
        for key, m in tables:
            lines.append(
                f"  {m['dagster/table_name']:<48} v{m['delta_version']:<4} {m['dagster/row_count']:>8} rows  ({key})"
            )
    if "read" in meta.get(names.raw, {}):  # a source table or database, not landing files
        m = meta[names.raw]
        lines.append(
            f"Source:            {m.get('source_table', m.get('source'))}: {m['read']}, "
            f"{m['rows_loaded']} rows loaded"
        )
    if names.model in meta:
        m = meta[names.model]
        lines += [
            "",
            f"MLflow run:        {m['mlflow_run_id']}  ({m['mlflow_tracking_uri']})",
            "Holdout metrics:   "
            + ", ".join(
                f"{k} {m[k]:.3f}"
                for k in PROBLEM_METRICS[settings.problem_type]
                if k in m and k != "accuracy"
            ),
        ]
    if "challenger_model_version" in meta:
        m = meta["challenger_model_version"]
        lines.append(
            f"Model version:     {m['model_name']} v{m['model_version']} (alias {m['alias']}, validation {m['validation']})"
        )
    if "champion_model_version" in meta:
        m = meta["champion_model_version"]
        lines.append(f"Champion:          v{m['champion_version']}: {m['decision']}")
    if names.endpoint in meta:
        m = meta[names.endpoint]
        lines.append(
            f"Endpoint:          {m['url']} ({m['state']}: {m['traffic']}; inference table {m['inference_table']})"
        )
        if settings.target == "local":
            lines.append(
                "                   a token to query it (curl -H 'Authorization: Bearer <token>'): "
                "mlops token create --scope query"
            )
    if names.predictions in meta:
        m = meta[names.predictions]
        outcome = (
            f"{m['predicted_positive_rate']:.1%} predicted {ds.label} = {ds.positive_label!r}"
            if "predicted_positive_rate" in m
            else f"mean predicted {ds.label} {m['mean_prediction']:.4g}"
        )
        lines.append(f"Predictions:       {m['rows_scored']} rows by v{m['model_version']} ({outcome})")
    if names.drift_report in meta:
        m = meta[names.drift_report]
        lines += [
            f"Drift:             {m['verdict']} ({m['drifted_columns']} columns, share {m['drift_share']:.2f}, "
            f"threshold {m['threshold_share']})",
            f"Drift report:      {m['report_path']}",
        ]
    if names.ground_truth in meta and meta[names.ground_truth]["files_ingested"]:
        m = meta[names.ground_truth]
        lines.append(f"Outcomes:          {m['rows_loaded']} loaded from {m['files_ingested']} file(s)")
    if names.model_performance in meta:
        m = meta[names.model_performance]
        lines.append(
            f"Performance:       {m.get('verdict', m.get('reason'))}"
            + (
                f" ({m['labelled_predictions']} labelled predictions)"
                if m.get("labelled_predictions")
                else ""
            )
        )
        if "report_path" in m:
            lines.append(f"Performance report: {m['report_path']}")
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                lines.append(
                    f"Check failed:      {data.asset_key.to_user_string()}:{data.check_name} "
                    f"({data.severity.value})"
                )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                cause = error.cause or error
                lines.append(f"Step failed:       {event.step_key}: {cause.message.strip()}")
    return "\n".join(lines)


def manage_tokens(args) -> int:
    """`mlops token create | list | revoke` on the local serving gateway of this MLOPS_HOME."""
    from .serving.server import state_dir
    from .serving.tokens import TokenError, TokenStore
    from .settings import load_project

    store = TokenStore(state_dir(load_project().default))
    try:
        if args.action == "create":
            info, secret = store.create(args.scope, args.name)
            print(
                f"token {info.name!r} (scope {info.scope}) for the serving gateway of {store.dir.parent}; shown "
                "once, keep it: send it as Authorization: Bearer <token>",
                file=sys.stderr,
            )
            print(secret)  # alone on stdout: TOKEN=$(mlops token create --scope query)
        elif args.action == "list":
            found = store.list()
            print(
                "\n".join(f"{t.name:<24} {t.scope:<7} {t.created}" for t in found)
                if found
                else "no tokens: create one with mlops token create --scope query"
            )
        else:
            store.revoke(args.name)
            print(f"token {args.name!r} revoked")
    except TokenError as exc:
        print(f"mlops token {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def job_named(name: str):
    """The code location's job ``name``: how a run's job is rebuilt in another process (a step
    launched on a Databricks cluster reconstructs it from here)."""
    from .definitions import defs

    return defs.resolve_job_def(name)


@contextmanager
def _executed(name: str, run_config: dict | None = None):
    """Run job ``name`` on this project's Dagster instance, reconstructable (the step launcher needs
    that), and yield its result: its events and its run, not its outputs. Entered as a context
    manager, the result would set the run's resources up again, and dagster-mlflow's would resume
    the MLflow run the run just ended (marked running again, and taken over by the next run)."""
    from dagster import DagsterInstance, build_reconstructable_job, execute_job

    job = build_reconstructable_job("mlops_dagster.cli", "job_named", reconstructable_args=(name,))
    default_dagster_home()
    with DagsterInstance.get() as instance:
        yield execute_job(
            job,
            instance=instance,
            raise_on_error=False,
            run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )


def run(job: str, use_case: str | None = None, run_config: dict | None = None) -> int:
    """Run job ``job`` (``lifecycle``, ``training``, ``approve_model_version``, ...; a trailing
    ``_job`` is allowed) of one use case, or of each in turn; print a summary per run."""
    from .resources.migration import check_home
    from .settings import load_project

    kind = job.removesuffix("_job")
    failed = 0
    project = load_project()
    check_home(project)  # before anything writes: a home in an older format is refused
    for settings in project.select(use_case):
        landing = Path(settings.landing_path)
        if (
            settings.target == "local"
            and _demo(settings)
            and kind in ("lifecycle", "training")
            and settings.dataset.source is None
            and "://" not in settings.landing_path
            and not any(landing.glob(settings.dataset.file_pattern))
        ):
            print(f"landing volume {landing} is empty: generating the {settings.demo} demo dataset")
            write_demo(settings, None, 42, False)
        started = time.perf_counter()
        with _executed(settings.names.job(kind), run_config) as result:
            print(_summary(result, time.perf_counter() - started, settings))
            failed += not result.success
    return 1 if failed else 0


def _run_op(op: str, settings, config: dict) -> int:
    """Run the one-op governance job ``<op>_job`` of a use case with the op's config."""
    return run(op, settings.name, {"ops": {settings.names.op(op): {"config": config}}})


def bootstrap_target(target: str, use_case: str | None = None) -> int:
    """`mlops bootstrap`: the target's workspace objects (of one use case, or of each), then its
    grants through the grants job."""
    from .governance.bootstrap import BootstrapError, bootstrap, report
    from .resources.databricks import workspace_client
    from .settings import load_project

    os.environ["MLOPS_TARGET"] = target  # the grants job, run from here, loads this target
    project = load_project(target)
    try:
        outcomes = bootstrap(
            project,
            workspace_client(project.default.databricks),
            lambda settings: run("apply_access_grants", settings.name) == 0,
            use_case,
        )
    except BootstrapError as exc:
        print(f"mlops bootstrap: {exc}", file=sys.stderr)
        return 1
    text, ready = report(target, outcomes)
    print(text)
    return 0 if ready else 1


def print_lineage(version: str | None, use_case: str | None) -> int:
    from .definitions import defs
    from .governance.lineage import format_lineage, model_lineage
    from .resources.registry import CHAMPION
    from .settings import load_settings

    settings = load_settings(use_case=use_case)
    resources = defs.resources
    registry, lakehouse, serving = resources["registry"], resources["lakehouse"], resources["serving"]
    registry = registry.for_use_case(settings)
    if version is None:
        champion = registry.by_alias(CHAMPION)
        if champion is None:
            print(f"{settings.mlflow.model_name} has no champion yet: name a version with --version")
            return 1
        version = str(champion.version)
    print(format_lineage(model_lineage(settings, lakehouse, registry, version, serving)))
    return 0


def print_features(table: str | None, use_case: str | None) -> int:
    from .feature_store.registry import format_registry
    from .settings import load_project

    project = load_project()
    use_cases = project.select(use_case)
    found: dict[str, dict] = {}  # a table declared by several use cases is listed once
    for entry in (
        _registry_here(project.default, use_cases)
        if project.default.target == "local"
        else _registry_on_cluster(use_cases)
    ):
        found.setdefault(entry["table"], entry)
    entries = list(found.values())
    if table:
        entries = [e for e in entries if table in (e["table"], e["table"].rsplit(".", 1)[-1])]
        if not entries:
            declared = sorted({t for u in use_cases for t in u.feature_store.tables})
            print(f"no feature table {table!r} in the registry; declared: {', '.join(declared)}")
            return 1
    print(format_registry(entries), end="")
    return 0


def _registry_here(settings, use_cases) -> list[dict]:
    """Locally: the registry read straight from the tables under MLOPS_HOME."""
    from mlflow import MlflowClient

    from .feature_store.registry import feature_registry
    from .resources.local_lakehouse import LocalLakehouse
    from .resources.online_store import build_online_store

    lakehouse = LocalLakehouse(root=str(settings.root / "lakehouse"))
    store = build_online_store(settings)
    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    try:
        return [entry for use in use_cases for entry in feature_registry(use, lakehouse, store, client)]
    finally:
        store.close()


def _registry_on_cluster(use_cases) -> list[dict]:
    """On a Databricks target: each use case's feature_registry job, whose op runs on a cluster
    (Unity Catalog tables are read there), hands the listing back as output metadata."""
    from .jobs.feature_store import ENTRIES

    entries = []
    for use in use_cases:
        with _executed(use.names.job("feature_registry")) as result:
            if not result.success:
                failed = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
                reason = (
                    (failed[0].cause or failed[0]).message.strip() if failed else "see the run in Dagster"
                )
                raise SystemExit(
                    f"mlops features: the feature registry of {use.name} could not be read: {reason}"
                )
            [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
            entries += output.event_specific_data.metadata[ENTRIES].value
    return entries


def default_dagster_home() -> None:
    """Without ``DAGSTER_HOME``, use the project's as ``make`` does: ``./.dagster_home``, configured by
    ``./dagster.yaml`` when there is one (Dagster itself would refuse to run)."""
    if os.environ.get("DAGSTER_HOME"):
        return
    home = Path(".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        project = Path("dagster.yaml")
        config.write_text(project.read_text() if project.is_file() else "telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    print(f"DAGSTER_HOME is not set: using {home}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from .settings import TARGETS, ConfigError

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--use-case", help="the use case to act on (its name in the config's use_cases)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs):
        return sub.add_parser(name, parents=[common], **kwargs)

    gen = command("generate", help="write a demo's synthetic landing file into its use case's landing folder")
    gen.add_argument("--rows", type=int, help="default: the demo's (7,043 telco customers, 5,000 houses)")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--drifted", action="store_true", help="after a price rise and a contract-mix shift")
    gen.add_argument("--name", help="file name in the landing volume")
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
    runner = command("run", help="run a job headless on the current target and print a summary")
    runner.add_argument(
        "--job",
        default="lifecycle",
        help="lifecycle, training, batch_inference, monitoring or a governance job",
    )
    command("serve", help="run the local serving gateway in the foreground (Ctrl-C stops it)")
    command("stop", help="stop the local serving gateway started in the background")
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
        help="move an MLOPS_HOME of the previous release (tables in schema churn, "
        "landing files flat in landing/) to today's format",
    )
    migrate.add_argument("--dry-run", action="store_true", help="print what would move, move nothing")
    args = parser.parse_args(argv)

    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    if args.command == "bootstrap":
        return bootstrap_target(args.target, args.use_case)
    if args.command == "features":
        return print_features(args.table, args.use_case)
    if args.command == "migrate":
        from .resources.migration import migrate
        from .settings import load_project

        return migrate(load_project(), args.dry_run, args.use_case)
    if args.command == "prepare-spark":
        from .resources.spark_jvm import build_class_archive

        build_class_archive()
        return 0
    if args.command == "approve":
        from .settings import ConfigError, load_project

        project = load_project()
        if args.use_case is None and len(project.use_cases) > 1:
            raise ConfigError(f"which model? name its use case: --use-case {' | '.join(project.names)}")
        return _run_op(
            "approve_model_version",
            project.use_case(args.use_case),
            {"version": args.version, "comment": args.comment},
        )
    if args.command == "promote":
        from .settings import load_project

        failed = [
            _run_op("promote_to_next_environment", settings, {"reason": args.reason})
            for settings in load_project().select(args.use_case)
        ]
        return 1 if any(failed) else 0
    if args.command == "lineage":
        return print_lineage(args.version, args.use_case)
    if args.command == "token":
        return manage_tokens(args)
    if args.command in ("serve", "stop"):
        from .serving.server import serve, stop
        from .settings import load_project

        project = load_project()
        if args.command == "serve":
            serve(project)
            return 0
        print("serving gateway stopped" if stop(project.default) else "no serving gateway was running")
        return 0
    if args.command == "generate":
        print(
            generate(
                args.rows,
                args.seed,
                args.drifted,
                args.name,
                use_case=args.use_case,
                outcomes=args.outcomes,
                changed_world=args.changed_world,
            )
        )
        return 0
    return run(args.job, args.use_case)


def console() -> int:
    """The ``mlops`` command: ``main`` in a process of its own, which ends when it returns."""
    try:
        return main()
    finally:
        # The interpreter's last garbage collection would walk every object a run left (3 s after a
        # lifecycle run) to free memory that the end of the process frees anyway.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(console())
