"""The commands besides ``generate`` and ``run``: the gateway's tokens, bootstrap, lineage, the
feature registry, a contract inferred from a file, and the dispatch of parsed arguments to each command."""

from __future__ import annotations

import os
import sys

from .demo import generate
from .runs import executed, run, run_op


def manage_tokens(args) -> int:
    """`mlops token create | list | revoke` on the local serving gateway of this MLOPS_HOME."""
    from ..serving.server import state_dir
    from ..serving.tokens import TokenError, TokenStore
    from ..settings import load_project

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


def bootstrap_target(target: str, use_case: str | None = None) -> int:
    """`mlops bootstrap`: the target's workspace objects (of one use case, or of each), then its
    grants through the grants job."""
    from ..governance.bootstrap import BootstrapError, bootstrap, report
    from ..resources.databricks import workspace_client
    from ..settings import load_project

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
    from ..definitions import defs
    from ..governance.lineage import format_lineage, model_lineage
    from ..resources.registry import CHAMPION
    from ..settings import load_settings

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


def print_contract(path: str, rows: int, file_format: str) -> int:
    """`mlops infer-contract FILE`: a ``dataset.columns`` contract from the file's first rows."""
    from pathlib import Path

    from ..ml.contract_inference import contract_yaml, infer_contract
    from ..ml.landing_formats import EXTENSIONS
    from ..ml.landing_formats import file_format as format_of
    from ..settings import ConfigError

    found = format_of(path, file_format)
    if found is None:
        raise ConfigError(
            f"cannot tell the format of {path} from its extension (known: {', '.join(sorted(EXTENSIONS))}): "
            "say it with --format csv | json | parquet"
        )
    if not Path(path).is_file():
        raise ConfigError(f"{path} is not a file")
    try:
        columns, sampled = infer_contract(path, found, rows)
    except (ValueError, OSError) as exc:  # Arrow's errors name the file, line and column it could not read
        raise ConfigError(f"cannot read {path} as {found}: {exc}") from None
    print(
        f"# dataset.columns inferred from the first {sampled} rows of {Path(path).name}: widen min, max "
        "and allowed to what later files may hold"
    )
    print(contract_yaml(columns), end="")
    return 0


def print_features(table: str | None, use_case: str | None) -> int:
    from ..feature_store.registry import format_registry
    from ..settings import load_project

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

    from ..feature_store.registry import feature_registry
    from ..resources.local_lakehouse import LocalLakehouse
    from ..resources.online_store import build_online_store

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
    from ..jobs.feature_store import ENTRIES

    entries = []
    for use in use_cases:
        with executed(use.names.job("feature_registry")) as result:
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


def housekeeping(dry_run: bool, use_case: str | None) -> int:
    """Run each use case's housekeeping job (or the one named), as a dry run when asked."""
    from ..settings import load_project

    failed = [
        run(
            "housekeeping",
            settings.name,
            {"ops": {settings.names.op(settings.names.housekeeping): {"config": {"dry_run": dry_run}}}},
        )
        for settings in load_project().select(use_case)
    ]
    return 1 if any(failed) else 0


def dispatch(args) -> int:
    if args.command == "bootstrap":
        return bootstrap_target(args.target, args.use_case)
    if args.command == "features":
        return print_features(args.table, args.use_case)
    if args.command == "infer-contract":
        return print_contract(args.file, args.rows, args.format)
    if args.command == "migrate":
        from ..resources.migration import migrate
        from ..settings import load_project

        return migrate(load_project(), args.dry_run, args.use_case)
    if args.command == "prepare-spark":
        from ..resources.spark_jvm import build_class_archive

        build_class_archive()
        return 0
    if args.command == "approve":
        from ..settings import ConfigError, load_project

        project = load_project()
        if args.use_case is None and len(project.use_cases) > 1:
            raise ConfigError(f"which model? name its use case: --use-case {' | '.join(project.names)}")
        return run_op(
            "approve_model_version",
            project.use_case(args.use_case),
            {"version": args.version, "comment": args.comment},
        )
    if args.command == "promote":
        from ..settings import load_project

        failed = [
            run_op("promote_to_next_environment", settings, {"reason": args.reason})
            for settings in load_project().select(args.use_case)
        ]
        return 1 if any(failed) else 0
    if args.command == "housekeeping":
        return housekeeping(args.dry_run, args.use_case)
    if args.command == "lineage":
        return print_lineage(args.version, args.use_case)
    if args.command == "token":
        return manage_tokens(args)
    if args.command == "spark-connect":
        return spark_connect(args.action, args.port)
    if args.command in ("serve", "stop"):
        from ..serving.server import serve, stop
        from ..settings import load_project

        project = load_project()
        if args.command == "serve":
            serve(project)
            return 0
        print("serving gateway stopped" if stop(project.default) else "no serving gateway was running")
        if project.default.root is not None and spark_connect("stop", 0, quiet=True) == 0:
            print("Spark Connect server stopped")
        return 0
    if args.command == "generate":
        print(
            generate(
                args.rows,
                args.seed,
                args.drifted,
                args.name,
                landing=args.landing,
                use_case=args.use_case,
                outcomes=args.outcomes,
                changed_world=args.changed_world,
            )
        )
        return 0
    if args.command == "dev":
        return dev(args.port, None if args.cold else args.connect_port)
    if args.warm:
        warm_spark(args.connect_port)
    return run(args.job, args.use_case)


def warm_spark(port: int) -> None:
    """Runs of this process and of the processes it starts use this home's Spark Connect server
    (started if need be) instead of each starting a Spark JVM: ``SPARK_REMOTE``, which the ``spark``
    resource reads when ``spark.remote`` is not set."""
    from ..resources import spark_connect as server
    from ..settings import load_project

    root = load_project().default.root
    if root is None:
        raise SystemExit("mlops: --warm is for the local target (a Databricks target has its clusters)")
    info = server.start(root, port)
    os.environ["SPARK_REMOTE"] = info["url"]
    print(f"warm Spark: the Spark Connect server at {info['url']} (mlops stop stops it)", file=sys.stderr)


def dev(port: int, connect_port: int | None) -> int:
    """``mlops dev``: ``dagster dev`` on this project, warm unless ``connect_port`` is None: runs use
    the home's Spark Connect server and fork from the warm run pool (``runtime/warm_launcher.py``)."""
    from pathlib import Path

    from .runs import default_dagster_home

    default_dagster_home()
    if connect_port is not None:
        warm_spark(connect_port)
    else:
        os.environ["MLOPS_WARM_RUNS"] = "0"
    dagster = str(Path(sys.executable).with_name("dagster"))
    where = (
        ["-w", "workspace.yaml"] if Path("workspace.yaml").is_file() else ["-m", "mlops_dagster.definitions"]
    )
    os.execv(dagster, [dagster, "dev", *where, "-h", "127.0.0.1", "-p", str(port)])


def spark_connect(action: str, port: int, quiet: bool = False) -> int:
    """``mlops spark-connect start|stop|status``: the Spark Connect server of the local target's home."""
    from ..resources import spark_connect as server
    from ..settings import load_project

    root = load_project().default.root
    if root is None:
        print(
            "mlops spark-connect: only on the local target (a Databricks target has its clusters)",
            file=sys.stderr,
        )
        return 2
    if action == "start":
        info = server.start(root, port)
        print(f"Spark Connect server at {info['url']} (Spark UI {info['ui']}, log {info['log']})")
        print(
            f'use it: spark: {{spark.remote: "{info["url"]}"}} in your config, or SPARK_REMOTE={info["url"]}'
        )
        return 0
    if action == "stop":
        stopped = server.stop(root)
        if not quiet:
            print("Spark Connect server stopped" if stopped else "no Spark Connect server was running")
        return 0 if stopped else 1
    info = server.running(root)
    print(f"running at {info['url']} (pid {info['pid']})" if info else "not running")
    return 0
