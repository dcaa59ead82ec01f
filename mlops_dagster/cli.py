"""``mlops``: generate demo data and run the lifecycle headless with a readable summary.

    mlops generate [--rows N] [--seed S] [--drifted] [--name FILE]   # a landing file
    mlops run [--job lifecycle_job]                                   # run a job, print a summary
    mlops serve | mlops stop                                          # the local serving gateway
    mlops lineage [--version N]                                       # a model version's lineage
    mlops approve --version N --comment "..."                         # approve a version for promotion
    mlops features [--table NAME]                                     # the feature registry
    mlops prepare-spark                                               # JVM class archive (make install)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def generate(rows: int, seed: int, drifted: bool, name: str | None, landing: str | None = None) -> Path:
    """Write the telco demo's synthetic landing file into the landing volume; returns its path."""
    from .data.telco import write_customers_csv
    from .settings import load_settings

    landing_dir = Path(landing or load_settings().landing_path)
    landing_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"customers_{'drifted_' if drifted else ''}{rows}_seed{seed}.csv"
    return write_customers_csv(landing_dir / name, rows, seed, drifted)


def _summary(result, seconds: float, settings) -> str:
    names, ds = settings.names, settings.dataset
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    lines = [f"run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'} in {seconds:.1f} s", ""]
    tables = [(k, m) for k, m in meta.items() if "delta_version" in m]
    if tables:
        lines.append("Tables (Delta):")
        for key, m in tables:
            lines.append(f"  {m['dagster/table_name']:<48} v{m['delta_version']:<4} {m['dagster/row_count']:>8} rows  ({key})")
    if names.model in meta:
        m = meta[names.model]
        lines += ["", f"MLflow run:        {m['mlflow_run_id']}  ({m['mlflow_tracking_uri']})",
                  "Holdout metrics:   " + ", ".join(f"{k} {m[k]:.3f}" for k in ("roc_auc", "f1", "precision", "recall", "log_loss"))]
    if "challenger_model_version" in meta:
        m = meta["challenger_model_version"]
        lines.append(f"Model version:     {m['model_name']} v{m['model_version']} (alias {m['alias']}, validation {m['validation']})")
    if "champion_model_version" in meta:
        m = meta["champion_model_version"]
        lines.append(f"Champion:          v{m['champion_version']}: {m['decision']}")
    if names.endpoint in meta:
        m = meta[names.endpoint]
        lines.append(f"Endpoint:          {m['url']} ({m['state']}: {m['traffic']}; inference table {m['inference_table']})")
    if names.predictions in meta:
        m = meta[names.predictions]
        lines.append(f"Predictions:       {m['rows_scored']} rows by v{m['model_version']} "
                     f"({m['predicted_positive_rate']:.1%} predicted {ds.label} = {ds.positive_label!r})")
    if names.drift_report in meta:
        m = meta[names.drift_report]
        lines += [f"Drift:             {m['verdict']} ({m['drifted_columns']} columns, share {m['drift_share']:.2f}, "
                  f"threshold {m['threshold_share']})", f"Drift report:      {m['report_path']}"]
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                lines.append(f"Check failed:      {data.asset_key.to_user_string()}:{data.check_name} "
                             f"({data.severity.value})")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                cause = error.cause or error
                lines.append(f"Step failed:       {event.step_key}: {cause.message.strip()}")
    return "\n".join(lines)


def run(job_name: str, run_config: dict | None = None) -> int:
    from dagster import DagsterInstance

    from .data.telco import COLUMNS
    from .definitions import defs
    from .settings import load_settings

    settings = load_settings()
    landing = Path(settings.landing_path)
    demo = settings.target == "local" and list(settings.dataset.columns) == COLUMNS
    if demo and job_name in ("lifecycle_job", "training_job") and not any(landing.glob(settings.dataset.file_pattern)):
        print(f"landing volume {landing} is empty: generating the demo telco dataset")
        generate(7043, 42, False, None)
    job = defs.resolve_job_def(job_name)
    started = time.perf_counter()
    default_dagster_home()
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    print(_summary(result, time.perf_counter() - started, settings))
    return 0 if result.success else 1


def print_lineage(version: str | None) -> int:
    from .definitions import defs
    from .governance.lineage import format_lineage, model_lineage
    from .resources.registry import CHAMPION
    from .settings import load_settings

    settings = load_settings()
    resources = defs.resources
    registry, lakehouse, serving = resources["registry"], resources["lakehouse"], resources["serving"]
    if version is None:
        champion = registry.by_alias(CHAMPION)
        if champion is None:
            print(f"{settings.mlflow.model_name} has no champion yet: name a version with --version")
            return 1
        version = str(champion.version)
    print(format_lineage(model_lineage(settings, lakehouse, registry, version, serving)))
    return 0


def print_features(table: str | None) -> int:
    from mlflow import MlflowClient

    from .feature_store.registry import feature_registry, format_registry
    from .resources.lakehouse import LocalLakehouse
    from .resources.online_store import build_online_store
    from .settings import load_settings

    settings = load_settings()
    lakehouse = LocalLakehouse(root=str(settings.root / "lakehouse"))
    store = build_online_store(settings)
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri)
    try:
        entries = feature_registry(settings, lakehouse, store, client)
    finally:
        store.close()
    if table:
        entries = [e for e in entries if table in (e["table"], e["table"].rsplit(".", 1)[-1])]
        if not entries:
            print(f"no feature table {table!r} in the registry; declared: {', '.join(settings.feature_store.tables)}")
            return 1
    print(format_registry(entries), end="")
    return 0


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
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the telco demo's synthetic landing file into the landing volume")
    gen.add_argument("--rows", type=int, default=7043)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--drifted", action="store_true", help="after a price rise and a contract-mix shift")
    gen.add_argument("--name", help="file name in the landing volume")
    runner = sub.add_parser("run", help="run a job headless on the current target and print a summary")
    runner.add_argument("--job", default="lifecycle_job")
    sub.add_parser("serve", help="run the local serving gateway in the foreground (Ctrl-C stops it)")
    sub.add_parser("stop", help="stop the local serving gateway started in the background")
    lineage = sub.add_parser("lineage", help="where a model version came from and where it is used")
    lineage.add_argument("--version", help="model version (default: the champion)")
    approve = sub.add_parser("approve", help="approve a validated model version for promotion (audited)")
    approve.add_argument("--version", required=True)
    approve.add_argument("--comment", required=True)
    sub.add_parser("prepare-spark", help="build the JVM class archive that makes local Spark start faster "
                                          "(make install does it)")
    features = sub.add_parser("features", help="the feature registry: tables, features, owners, versions, users")
    features.add_argument("--table", help="one table (short or catalog.schema.table name)")
    args = parser.parse_args(argv)
    if args.command == "features":
        return print_features(args.table)
    if args.command == "prepare-spark":
        from .resources.spark_jvm import build_class_archive

        build_class_archive()
        return 0
    if args.command == "approve":
        return run("approve_model_version_job", {"ops": {"approve_model_version": {
            "config": {"version": args.version, "comment": args.comment}}}})
    if args.command == "lineage":
        return print_lineage(args.version)
    if args.command in ("serve", "stop"):
        from .serving.server import serve, stop
        from .settings import load_settings

        settings = load_settings()
        if args.command == "serve":
            serve(settings)
            return 0
        print("serving gateway stopped" if stop(settings) else "no serving gateway was running")
        return 0
    if args.command == "generate":
        print(generate(args.rows, args.seed, args.drifted, args.name))
        return 0
    return run(args.job)


if __name__ == "__main__":
    sys.exit(main())
