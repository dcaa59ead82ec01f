"""`mlops bootstrap --target T`: what a Databricks target needs before its first run, made once.

Idempotent: each object is looked up first and created only when missing, so a second run
changes nothing and says so. In order:

- the catalog must exist (creating one is a metastore admin's job: bootstrap says so and stops);
- the project's schema, which also holds every table, the endpoints' inference tables and the
  registered models, made with the tables' format as a property (``mlops_dagster.format``);
- the managed volumes the target's paths point into (``landing``, ``io``, ``reports``,
  ``evidently``);
- per use case, the MLflow experiment (its workspace folder first) and the registered model, made
  through MLflow on the target's tracking and registry URIs, where the lifecycle looks for them;
- the online store's Lakebase database instance (``feature_store.online_store.kind: lakebase``),
  created with its capacity when missing and waited for until it is available;
- the secret-scope keys the clusters read (``databricks.secrets_to_env_variables``): names only,
  never values; a missing key is reported with the command that adds it;
- the access matrix as Unity Catalog grants: when any group lacks a privilege (or holds one the
  matrix took away), the use case's audited ``apply_access_grants_job`` runs; else nothing runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Project, Settings

# The volumes that Settings.volume_path names on a Databricks target.
VOLUMES = ("landing", "io", "reports", "evidently")


class BootstrapError(RuntimeError):
    """Bootstrap cannot go on: the message says what is missing and who can fix it."""


@dataclass(frozen=True)
class Outcome:
    kind: str  # schema | volume | database instance | experiment | registered model | secret | grants
    name: str
    result: str  # created | exists | missing | applied | in place | failed
    detail: str = ""

    def line(self) -> str:
        return f"{self.result:>9}  {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")


def bootstrap(
    project: Project, workspace, apply_grants: Callable[[Settings], bool], use_case: str | None = None
) -> list[Outcome]:
    """Make what ``project``'s target needs in ``workspace`` (a databricks-sdk WorkspaceClient):
    the shared objects, and those of ``use_case`` (default: every use case).
    ``apply_grants(settings)`` runs a use case's grants job and says whether it succeeded. Raises
    BootstrapError when the catalog is missing; a missing secret key is an outcome (every finding
    is reported, then the CLI fails)."""
    from databricks.sdk.errors import NotFound

    shared = project.default
    if shared.target == "local":
        raise BootstrapError(
            "bootstrap is for Databricks targets: run it with --target dev | staging | prod "
            "(local makes its folders and stores on first use)"
        )
    catalog, schema = shared.catalog, shared.schema_
    try:
        workspace.catalogs.get(catalog)
    except NotFound:
        raise BootstrapError(
            f"catalog {catalog} does not exist: a metastore admin creates it "
            f"(CREATE CATALOG {catalog}) and grants this identity USE_CATALOG and "
            "CREATE_SCHEMA on it; then run bootstrap again"
        ) from None
    outcomes = [_schema(workspace, catalog, schema, NotFound)]
    outcomes += [_volume(workspace, catalog, schema, name, NotFound) for name in VOLUMES]
    if shared.feature_store.online_store.kind == "lakebase":
        outcomes.append(_database_instance(workspace, shared, NotFound))
    chosen = project.select(use_case)
    for settings in chosen:
        outcomes += [_experiment(workspace, settings, NotFound), _registered_model(settings)]
    outcomes += _secrets(workspace, shared, NotFound)
    for settings in chosen:
        outcomes.append(_grants(workspace, settings, apply_grants))
    return outcomes


def _ensure(get, create, kind: str, name: str, not_found: type[Exception]) -> Outcome:
    try:
        get()
        return Outcome(kind, name, "exists")
    except not_found:
        create()
        return Outcome(kind, name, "created")


def _schema(workspace, catalog: str, schema: str, not_found) -> Outcome:
    """The project's schema, made with the format of its tables as a property: a release that
    reads them differently can tell (the release before use cases kept them in one fixed schema,
    ``FORMAT_1_SCHEMA``; locally, ``format.json`` in MLOPS_HOME says the same)."""
    from ..settings.constants import FORMAT_PROPERTY, HOME_FORMAT

    name = f"{catalog}.{schema}"
    try:
        found = workspace.schemas.get(name)
    except not_found:
        workspace.schemas.create(
            name=schema,
            catalog_name=catalog,
            properties={FORMAT_PROPERTY: str(HOME_FORMAT)},
            comment="mlops_dagster: tables, models, inference tables",
        )
        return Outcome("schema", name, "created", f"format {HOME_FORMAT} ({FORMAT_PROPERTY})")
    recorded = (found.properties or {}).get(FORMAT_PROPERTY)
    if recorded is not None and recorded != str(HOME_FORMAT):
        return Outcome(
            "schema",
            name,
            "exists",
            f"its {FORMAT_PROPERTY} is {recorded}, this release writes "
            f"format {HOME_FORMAT}: see the Upgrading page of the docs",
        )
    return Outcome("schema", name, "exists")


def _volume(workspace, catalog: str, schema: str, name: str, not_found) -> Outcome:
    from databricks.sdk.service.catalog import VolumeType

    return _ensure(
        lambda: workspace.volumes.read(f"{catalog}.{schema}.{name}"),
        lambda: workspace.volumes.create(
            catalog_name=catalog,
            schema_name=schema,
            name=name,
            volume_type=VolumeType.MANAGED,
            comment=f"mlops_dagster: {name} files",
        ),
        "volume",
        f"{catalog}.{schema}.{name}",
        not_found,
    )


def _database_instance(workspace, settings: Settings, not_found, wait_seconds: float = 1200) -> Outcome:
    """The online store's Lakebase instance: created when missing, then waited for until AVAILABLE
    (a new instance takes minutes to start)."""
    import time

    from databricks.sdk.service.database import DatabaseInstance, DatabaseInstanceState

    cfg = settings.feature_store.online_store
    outcome = _ensure(
        lambda: workspace.database.get_database_instance(cfg.instance),
        lambda: workspace.database.create_database_instance(
            DatabaseInstance(name=cfg.instance, capacity=cfg.capacity)
        ),
        "database instance",
        cfg.instance,
        not_found,
    )
    deadline = time.monotonic() + wait_seconds
    while (state := workspace.database.get_database_instance(cfg.instance).state) in (
        DatabaseInstanceState.STARTING,
        DatabaseInstanceState.UPDATING,
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    if state != DatabaseInstanceState.AVAILABLE:
        shown = state.value if state else "unknown"
        detail = f"{shown}, not AVAILABLE: the online publish needs it running (start it, then run bootstrap again)"
        return Outcome(outcome.kind, outcome.name, "failed", detail)
    return outcome


def _tracking(settings: Settings):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri)


def _experiment(workspace, settings: Settings, not_found) -> Outcome:
    name = settings.mlflow.experiment
    client = _tracking(settings)
    if client.get_experiment_by_name(name) is not None:
        return Outcome("experiment", name, "exists")
    folder = name.rsplit("/", 1)[0] if name.startswith("/") else ""
    if folder:  # a workspace path: Databricks wants its folder to exist
        try:
            workspace.workspace.get_status(folder)
        except not_found:
            workspace.workspace.mkdirs(folder)
    client.create_experiment(name, tags={"mlops.use_case": settings.name})
    return Outcome("experiment", name, "created")


def _registered_model(settings: Settings) -> Outcome:
    from mlflow.exceptions import MlflowException

    name = settings.mlflow.model_name
    client = _tracking(settings)
    try:
        client.get_registered_model(name)
        return Outcome("registered model", name, "exists")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise
    client.create_registered_model(
        name,
        tags={"mlops.use_case": settings.name},
        description=f"{settings.name}: {settings.governance.owner}'s model, "
        "trained and promoted by mlops_dagster",
    )
    return Outcome("registered model", name, "created")


def _secrets(workspace, settings: Settings, not_found) -> list[Outcome]:
    outcomes, keys_of = [], {}
    for secret in settings.databricks.secrets_to_env_variables:
        if secret.scope not in keys_of:
            try:
                keys_of[secret.scope] = {s.key for s in workspace.secrets.list_secrets(secret.scope)}
            except not_found:
                keys_of[secret.scope] = None
        name, keys = f"{secret.scope}/{secret.key}", keys_of[secret.scope]
        put = f"databricks secrets put-secret {secret.scope} {secret.key} (the clusters read it as {secret.name})"
        if keys is None:
            outcomes.append(
                Outcome(
                    "secret",
                    name,
                    "missing",
                    f"scope {secret.scope} does not exist: databricks "
                    f"secrets create-scope {secret.scope}, then {put}",
                )
            )
        elif secret.key in keys:
            outcomes.append(Outcome("secret", name, "exists", f"read by the clusters as {secret.name}"))
        else:
            outcomes.append(Outcome("secret", name, "missing", put))
    return outcomes


def _grants(workspace, settings: Settings, apply_grants) -> Outcome:
    from .grants import grant_changes, grant_plan

    pending = grant_changes(workspace, grant_plan(settings))
    name = f"{settings.name} on {settings.catalog}"
    if not pending:
        return Outcome("grants", name, "in place")
    job = settings.names.job("apply_access_grants")
    if not apply_grants(settings):
        return Outcome("grants", name, "failed", f"{job} failed: its run in Dagster says why")
    return Outcome("grants", name, "applied", f"{len(pending)} group privilege changes, audited by {job}")


def report(target: str, outcomes: list[Outcome]) -> tuple[str, bool]:
    """The lines to print and whether the target is ready (nothing missing, nothing failed)."""
    made = [o for o in outcomes if o.result in ("created", "applied")]
    missing = [o for o in outcomes if o.result in ("missing", "failed")]
    lines = [o.line() for o in outcomes]
    if missing:
        lines.append(
            f"target {target}: not ready, {len(missing)} missing or failed (see above); "
            "bootstrap again once fixed"
        )
    elif made:
        lines.append(f"target {target}: ready ({len(made)} changes made)")
    else:
        lines.append(f"target {target}: ready, nothing changed (everything was already in place)")
    return "\n".join(lines), not missing
