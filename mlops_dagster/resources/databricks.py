"""Databricks targets: credentials, the step launcher that runs steps on job clusters, and serving.

Credentials come only from environment variables (names in ``databricks.*_env``): they are read
when a run starts, never written to config, metadata or the files a run leaves behind. A missing
one stops the run with one message naming the variable, before any client is built.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import ResourceDefinition

from ..settings import (
    SETTINGS_JSON_ENV,
    ClusterSettings,
    ConfigError,
    DatabricksSettings,
    Project,
    Settings,
    capture_prefix,
)
from .section_config import as_config
from .serving import ServingBackend

# The Databricks settings as a resource's typed config (see section_config).
DatabricksConfig = as_config(DatabricksSettings)

# Set by the Databricks runtime on every cluster (and by the workspace emulator's runtime).
RUNTIME_ENV = "DATABRICKS_RUNTIME_VERSION"


class DatabricksCredentialsError(ConfigError):
    """A Databricks target was used without its credentials in the environment."""


# Tags on every cluster a step launches (``custom_tags``): Databricks copies them onto the usage
# records of system.billing.usage, so a launched run's actual cost can be told apart.
PROJECT_TAG, PROJECT, TARGET_TAG = "project", "mlops_dagster", "target"
RUN_TAG, STEP_TAG, USE_CASE_CLUSTER_TAG = "dagster_run_id", "dagster_step", "mlops_use_case"


def on_databricks_cluster() -> bool:
    return bool(os.environ.get(RUNTIME_ENV))


def credentials(db: DatabricksSettings) -> dict[str, str]:
    """Host plus a token or an OAuth client id / secret, from the environment; the message of a
    missing one names the variable and how to set it (never a value)."""
    host = os.environ.get(db.host_env, "").strip()
    if not host:
        raise DatabricksCredentialsError(
            f"{db.host_env} is not set: a Databricks target needs the workspace URL, e.g. "
            f"export {db.host_env}=https://<workspace>.cloud.databricks.com (or MLOPS_TARGET=local)"
        )
    token = os.environ.get(db.token_env, "").strip()
    client_id = os.environ.get(db.client_id_env, "").strip()
    client_secret = os.environ.get(db.client_secret_env, "").strip()
    if token:
        return {"host": host, "token": token}
    if client_id and client_secret:
        return {"host": host, "client_id": client_id, "client_secret": client_secret}
    missing = db.client_secret_env if client_id else db.client_id_env if client_secret else db.token_env
    raise DatabricksCredentialsError(
        f"{missing} is not set: a Databricks target needs {db.token_env} (a personal access token) "
        f"or both {db.client_id_env} and {db.client_secret_env} (an OAuth service principal)"
    )


def workspace_client(db: DatabricksSettings):
    """A databricks-sdk WorkspaceClient. On a cluster: the SDK's default chain, so a token from the
    secret scope (``databricks.secrets_to_env_variables``) if one is configured, else the
    cluster's own identity. Elsewhere: the credentials above."""
    from databricks.sdk import WorkspaceClient

    if on_databricks_cluster():
        return WorkspaceClient()
    creds = credentials(db)
    if "token" in creds:
        return WorkspaceClient(host=creds["host"], token=creds["token"], auth_type="pat")
    return WorkspaceClient(
        host=creds["host"],
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
        auth_type="oauth-m2m",
    )


def submit_run_config(settings: Settings) -> dict[str, Any]:
    """dagster-databricks' ``run_config``: the job cluster (or existing cluster) of a remote step."""
    db, cluster = settings.databricks, settings.databricks.cluster
    run_config: dict[str, Any] = {
        "run_name": f"mlops_dagster {settings.target}",
        "libraries": list(db.libraries),
    }
    if db.timeout_seconds:
        run_config["timeout_seconds"] = db.timeout_seconds
    if cluster.existing_cluster_id:
        run_config["cluster"] = {"existing": cluster.existing_cluster_id}
        return run_config
    run_config["cluster"] = {
        "new": {
            "spark_version": cluster.spark_version,
            "nodes": (
                {"instance_pool_id": cluster.instance_pool_id}
                if cluster.instance_pool_id
                else {"node_types": {"node_type_id": cluster.node_type_id}}
            ),
            "size": {"autoscale": {"min_workers": cluster.min_workers, "max_workers": cluster.max_workers}},
            "spark_conf": dict(cluster.spark_conf),
            "custom_tags": {PROJECT_TAG: PROJECT, TARGET_TAG: settings.target, **cluster.custom_tags},
            "data_security_mode": "SINGLE_USER",  # Unity Catalog access from a job cluster
        }
    }
    if not cluster.instance_pool_id:  # a pool's instances have the pool's spot policy
        run_config["cluster"]["new"]["aws_attributes"] = {
            "availability": cluster.availability,
            "first_on_demand": 1,
        }
    return run_config


@contextmanager
def _package_snapshot():
    """A folder holding only the ``mlops_dagster`` package: what the launcher zips and uploads
    (pointing it at the repository would ship virtualenvs and local state). Removed afterwards."""
    package = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="mlops-dagster-code-") as staging:
        shutil.copytree(
            package, Path(staging, package.name), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        yield staging


COST_EVENT = "mlops/compute"  # metadata marker of the engine event that records a launched step's compute


def _tagged(run_config: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    new = run_config["cluster"].get("new")
    if new is None:  # an existing cluster keeps its own tags
        return run_config
    return {**run_config, "cluster": {"new": {**new, "custom_tags": {**new["custom_tags"], **tags}}}}


class _CostedLaunches:
    """The methods of CostedStepLauncher (see there), kept at module level so that the class
    itself is built only in _launcher_class, where dagster-databricks is imported."""

    def __init__(self, *args, project: Project, **kwargs):
        from ..runtime.interrupts import raise_if_interrupted

        super().__init__(*args, **kwargs)
        self._project, self._settings = project, project.default
        self._launched: int | None = None
        # Steps run in threads, where dagster-databricks' wait for a cluster run is not
        # interruptible (it relies on a signal handler of the main thread): the wait checks
        # before each poll instead, and on a terminated run the launcher cancels the cluster run.
        client = self.databricks_runner.client
        poll = client.poll_run_state

        def poll_unless_terminated(*args, **kwargs):
            raise_if_interrupted()
            return poll(*args, **kwargs)

        client.poll_run_state = poll_unless_terminated

    def launch_step(self, step_context):
        # Steps run at once, in threads sharing this launcher: each step's cluster tags and
        # Databricks run id are kept on a copy of its own.
        launcher = copy.copy(self)
        run, step = step_context.dagster_run, step_context.step.key
        launcher.run_config = _tagged(
            self.run_config,
            {
                RUN_TAG: run.run_id,
                STEP_TAG: step,
                USE_CASE_CLUSTER_TAG: self._project.owner_of_step(step, run.tags),
            },
        )
        return launcher._launch(step_context)

    def _launch(self, step_context):
        try:
            yield from super().launch_step(step_context)
        except Exception:
            yield from self._compute_event(step_context)  # a failed run's cluster was paid for too
            raise
        yield from self._compute_event(step_context)

    def get_databricks_run_dagster_event(self, context, databricks_run_id: int):
        self._launched = databricks_run_id
        return super().get_databricks_run_dagster_event(context, databricks_run_id)

    def _compute_event(self, step_context):
        if self._launched is None:
            return
        run_id, self._launched = self._launched, None
        yield from compute_event(
            step_context, self._settings, self.databricks_runner.client.workspace_client, run_id
        )


def compute_event(step_context, settings: Settings, workspace, run_id: int | None) -> Iterator:
    """The engine event recording a launched step's compute (``COST_EVENT``): the Databricks run,
    its time from the Jobs API, and the estimate for that time of the compute the target's launch
    mode asks for (serverless compute, or ``databricks.cluster``); cost_sensor turns it into the
    step's cost record. Nothing before a run was submitted (``run_id`` None), nor when the run
    cannot be read: the record must not fail the step."""
    from ..ml.cost import SERVERLESS, Compute, cluster_compute, compute_fields, estimate
    from ..runtime.dagster_internals import step_engine_event

    if run_id is None:
        return
    db = settings.databricks
    compute = Compute(SERVERLESS) if db.launch == "serverless" else cluster_compute(db.cluster)

    try:
        run = workspace.jobs.get_run(run_id)
        seconds = max(0, (run.end_time or 0) - (run.start_time or 0)) / 1000.0
    except Exception as exc:  # noqa: BLE001 - the cost record must not fail the step
        step_context.log.warning(f"no compute record for Databricks run {run_id}: {type(exc).__name__}")
        return
    rates = settings.cost
    figure = estimate(compute, seconds, rates)
    metadata: dict[str, Any] = {
        COST_EVENT: "launched step",
        "databricks_run_id": run_id,
        "seconds": round(seconds, 3),
        **compute_fields(compute),
        "currency": rates.currency,
    }
    if figure.cost is None:
        metadata["cost_problem"] = figure.problem
        shown = figure.problem
    else:
        metadata.update(dbus_estimated=round(figure.dbus, 6), cost_estimated=round(figure.cost, 6))
        shown = f"{figure.dbus:.3f} DBU, about {figure.cost:.4f} {rates.currency}"
    size = f"{compute.nodes} x {compute.node_type} ({compute.kind})" if compute.nodes else compute.kind
    yield step_engine_event(
        step_context, f"Databricks run {run_id}: {size} for {seconds:.0f} s, {shown}", metadata
    )


def _launcher_class():
    from dagster_databricks.databricks_pyspark_step_launcher import DatabricksPySparkStepLauncher

    class CostedStepLauncher(_CostedLaunches, DatabricksPySparkStepLauncher):
        """dagster-databricks' step launcher, plus: each launched cluster tagged with the Dagster
        run, step and use case, and, when the step ends, one engine event with the compute it asked
        for, its submit-to-terminate time from the Jobs API and the estimated cost."""

    return CostedStepLauncher


def idle_cluster_problem(workspace, cluster: ClusterSettings) -> str | None:
    """Why the existing all-purpose cluster costs money while idle (it does not auto-terminate
    within ``cluster.autotermination_minutes``), or None."""
    minutes = workspace.clusters.get(cluster.existing_cluster_id).autotermination_minutes or 0
    if minutes and minutes <= cluster.autotermination_minutes:
        return None
    now = "never auto-terminates" if not minutes else f"auto-terminates only after {minutes} idle minutes"
    return (
        f"all-purpose cluster {cluster.existing_cluster_id} {now}: idle, it is billed like a busy one. Set its "
        f"auto termination to {cluster.autotermination_minutes} minutes or less (cluster settings), or leave "
        "databricks.cluster.existing_cluster_id unset to run each step on a job cluster"
    )


def step_launcher_resource(project: Project) -> ResourceDefinition:
    """dagster-databricks' ``databricks_pyspark_step_launcher`` (``databricks.launch: step_launcher``)
    or the Pipes launcher (``pipes``, ``serverless``: ``databricks_pipes.py``), configured from the target.

    In the Dagster process it checks the credentials first, then launches each step as a job run.
    On the cluster (where the launched step itself runs) it is None: the step runs right there.
    The remote step gets this process's resolved project, so both ends run one configuration.
    """
    settings = project.default
    db = settings.databricks

    def _init(init_context):
        if on_databricks_cluster():
            yield None
            return
        creds = credentials(db)
        if db.cluster.existing_cluster_id:
            problem = idle_cluster_problem(workspace_client(db), db.cluster)
            if problem:
                init_context.log.warning(problem)
        env = {
            **db.env_variables,
            "MLOPS_TARGET": settings.target,
            SETTINGS_JSON_ENV: project.model_dump_json(by_alias=True),
            db.host_env: creds["host"],  # the workspace URL is not a secret; tokens come from secrets
        }
        with _package_snapshot() as code:
            if db.launch in ("pipes", "serverless"):
                from .databricks_pipes import PipesStepLauncher

                yield PipesStepLauncher(project, workspace_client(db), code, env)
                return
            yield _launcher_class()(
                project=project,
                run_config=submit_run_config(settings),
                permissions=db.permissions,
                databricks_host=creds["host"],
                databricks_token=creds.get("token"),
                oauth_credentials=(
                    {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
                    if "client_id" in creds
                    else None
                ),
                secrets_to_env_variables=[s.model_dump() for s in db.secrets_to_env_variables],
                env_variables=env,
                staging_prefix=db.staging_prefix,
                wait_for_logs=False,
                max_completion_wait_time_seconds=db.max_wait_seconds,
                poll_interval_sec=db.poll_interval_seconds,
                local_pipeline_package_path=code,
            )

    return ResourceDefinition(
        resource_fn=_init,
        description=(
            f"Runs steps on Databricks job clusters ({settings.databricks.cluster.spark_version}) "
            f"through dagster-databricks; credentials from {db.host_env} and {db.token_env}"
        ),
    )


class DatabricksServingBackend(ServingBackend):
    """Databricks model serving endpoints, managed through databricks-sdk with the target's
    credentials (or the cluster's own authentication when a step runs on a cluster)."""

    databricks: DatabricksConfig
    """The target's Databricks settings: which variables hold the credentials."""
    catalog: str
    schema_name: str
    """Where each endpoint's auto-capture (inference) table is written: ``<catalog>.<schema_name>``."""

    def _workspace(self, start: bool = True):
        return workspace_client(self.databricks)

    def invocation_url(self, endpoint: str) -> str:
        return f"{self._workspace().config.host.rstrip('/')}/serving-endpoints/{endpoint}/invocations"

    def apply(self, endpoint: str, config: dict[str, Any]) -> dict[str, Any]:
        capture = {
            "catalog_name": self.catalog,
            "schema_name": self.schema_name,
            "table_name_prefix": capture_prefix(endpoint),
            "enabled": True,
        }
        return super().apply(endpoint, {**config, "auto_capture_config": capture})
