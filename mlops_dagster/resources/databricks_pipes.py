"""Steps launched through Dagster Pipes (``databricks.launch: pipes`` or ``serverless``).

The step launcher resource of such a target: each step that touches data is submitted by
dagster-databricks' ``PipesDatabricksClient`` as a one-task job run on a job cluster (or the
existing cluster), or by ``PipesDatabricksServerlessClient`` as a serverless job run whose
environment lists our pinned libraries, its files and messages in the io volume. The task's entry point (``runtime/pipes_step.py``) starts with nothing but
dagster-pipes, unpacks the project's code shipped with the step, runs the step there and reports
back through Pipes messages: log lines as they happen, and every Dagster event of the step
(materializations and their metadata, check results, outputs, a failure with its remote traceback),
which this side records on the run as if the step had run here. The asset code is the same in
every mode.
"""

from __future__ import annotations

import io
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dagster import StepLauncher

from ..settings import ConfigError, Project, Settings

ENTRY_POINT = Path(__file__).resolve().parents[1] / "runtime" / "pipes_step.py"
PIPES_LIBRARIES = ("dagster-pipes", "dagster")  # what the entry point and the shipped package import
ENVIRONMENT = "mlops"  # the environment_key of a serverless step


def job_cluster(settings: Settings, tags: dict[str, str]) -> dict[str, Any]:
    """The Jobs API ``new_cluster`` of one step (the same cluster settings as the step launcher's)."""
    cluster = settings.databricks.cluster
    spec: dict[str, Any] = {
        "spark_version": cluster.spark_version,
        "autoscale": {"min_workers": cluster.min_workers, "max_workers": cluster.max_workers},
        "spark_conf": dict(cluster.spark_conf),
        "custom_tags": {**tags, **cluster.custom_tags},
        "data_security_mode": "SINGLE_USER",  # Unity Catalog access from a job cluster
    }
    if cluster.instance_pool_id:
        spec["instance_pool_id"] = cluster.instance_pool_id
    else:
        spec["node_type_id"] = cluster.node_type_id
        spec["aws_attributes"] = {"availability": cluster.availability, "first_on_demand": 1}
    return spec


def serverless_environment(settings: Settings) -> dict[str, Any]:
    """The ``environments`` entry of a serverless step: our pinned libraries as its dependencies
    (serverless compute installs no cluster libraries)."""
    dependencies = []
    for library in settings.databricks.libraries:
        spec = library.get("pypi", {}).get("package") or library.get("whl")
        if not spec:
            raise ConfigError(
                f"databricks.libraries entry {library} cannot be installed on serverless compute (only "
                "pypi packages and wheels can): remove it or set databricks.launch to pipes"
            )
        dependencies.append(spec)
    dependencies += [f"{name}=={version(name)}" for name in PIPES_LIBRARIES]
    return {"environment_key": ENVIRONMENT, "spec": {"client": "2", "dependencies": dependencies}}


def access_control_list(permissions: dict[str, list[dict[str, str]]]) -> list[dict[str, str]]:
    """``{CAN_VIEW: [{group_name: g}]}`` -> the Permissions API's ``access_control_list``, as the step
    launcher reads ``databricks.permissions``."""
    return [
        {"permission_level": level, **principal}
        for level, principals in permissions.items()
        for principal in principals
    ]


def _client_class(serverless: bool):
    from dagster import DagsterExecutionInterruptedError, Failure
    from dagster_databricks.pipes import PipesDatabricksClient, PipesDatabricksServerlessClient

    from ..runtime.interrupts import raise_if_interrupted

    class StepPipesClient(PipesDatabricksServerlessClient if serverless else PipesDatabricksClient):
        """dagster-databricks' Pipes client for one step, plus: the step's thread checks before each
        poll whether the run was terminated (Dagster's interrupt reaches only the main thread), so
        the client cancels the job run; a run not finished within ``max_wait_seconds`` is cancelled
        and fails the step; the job cluster gets ``cluster_permissions`` once it exists; and the
        Pipes session is kept for the step's events."""

        interrupted = False
        session = None
        run_id: int | None = None  # the job run, once submitted (its compute is recorded)
        max_wait_seconds: float = float("inf")
        cluster_permissions: list[dict[str, str]] = []
        _waiting_since: float | None = None
        _cluster_done = False

        def _get_run_state(self, run_id: int):
            import time

            self.run_id = run_id
            if not self.interrupted:
                try:
                    raise_if_interrupted()
                except DagsterExecutionInterruptedError:
                    self.interrupted = True  # polls after this wait for the cancelled run to end
                    raise
                self._waiting_since = self._waiting_since or time.monotonic()
                if time.monotonic() - self._waiting_since > self.max_wait_seconds:
                    self.interrupted = True
                    self.client.jobs.cancel_run(run_id)
                    self._poll_til_terminating(run_id)
                    raise Failure(
                        f"Databricks run {run_id} took more than {self.max_wait_seconds:g}s "
                        "(databricks.max_wait_seconds): it was cancelled and the step failed"
                    )
            run = self.client.jobs.get_run(run_id)
            if run.state is None:  # what dagster-databricks' own poll refuses too, said plainly
                raise Failure(
                    f"Databricks run {run_id} has no state in jobs.get_run: see it in the workspace"
                )
            self._grant_cluster(run)
            return run.state

        def _grant_cluster(self, run) -> None:
            cluster = run.cluster_instance.cluster_id if run.cluster_instance else None
            if self.cluster_permissions and cluster and not self._cluster_done:
                from databricks.sdk.service import iam

                acl = [iam.AccessControlRequest.from_dict(a) for a in self.cluster_permissions]
                self.client.permissions.update("clusters", cluster, access_control_list=acl)
                self._cluster_done = True

        def _enrich_submit_task_dict(self, context, session, submit_task_dict, writer_index: int = 0):
            self.session = session
            return super()._enrich_submit_task_dict(context, session, submit_task_dict, writer_index)

    return StepPipesClient


class PipesStepLauncher(StepLauncher):
    """Launches each step as a Databricks job run through ``PipesDatabricksClient`` (``pipes``) or
    ``PipesDatabricksServerlessClient`` (``serverless``)."""

    def __init__(self, project: Project, workspace, code: str, env: dict[str, str]):
        """``code``: the folder holding the package to ship; ``env``: the remote step's (non-secret)
        environment variables; secrets come from the secret scope on the cluster."""
        self._project, self._settings = project, project.default
        self._workspace, self._code, self._env = workspace, code, env

    def launch_step(self, step_context) -> Iterator:
        from dagster import deserialize_value
        from databricks.sdk.service import jobs

        from ..runtime.dagster_internals import op_context, step_run_ref
        from ..runtime.interrupts import raise_if_interrupted
        from ..runtime.pipes_step import EVENT_MESSAGE, VOLUMES_FLAG
        from .databricks import compute_event

        db, run, step = self._settings.databricks, step_context.dagster_run, step_context.step.key
        serverless = db.launch == "serverless"
        # Serverless compute reaches no DBFS root: its files and Pipes messages go through a volume.
        stage = f"{self._settings.io_path}/_pipes" if serverless else f"dbfs:{db.staging_prefix}"
        folder = f"{stage}/{run.run_id}/{re.sub(r'[^A-Za-z0-9_.-]', '_', step)}"
        files = self._upload(folder, step_run_ref(step_context, self._code), serverless)
        task: dict[str, Any] = {
            "task_key": re.sub(r"[^A-Za-z0-9_-]", "_", step)[:100],
            "spark_python_task": {
                "python_file": files["entry"],
                "parameters": [VOLUMES_FLAG] if serverless else [],
            },
        }
        submit_args: dict[str, Any] = {"run_name": f"mlops_dagster {self._settings.target} {step}"}
        if db.timeout_seconds:
            submit_args["timeout_seconds"] = db.timeout_seconds
        if job_permissions := db.permissions.get("job_permissions"):
            submit_args["access_control_list"] = [
                jobs.JobAccessControlRequest.from_dict(a) for a in access_control_list(job_permissions)
            ]
        if serverless:
            task["environment_key"] = ENVIRONMENT
            submit_args["environments"] = [
                jobs.JobEnvironment.from_dict(serverless_environment(self._settings))
            ]
        else:
            task["libraries"] = [
                *db.libraries,
                *({"pypi": {"package": f"{name}=={version(name)}"}} for name in PIPES_LIBRARIES),
            ]
            if db.cluster.existing_cluster_id:
                task["existing_cluster_id"] = db.cluster.existing_cluster_id
            else:
                task["new_cluster"] = job_cluster(self._settings, self._tags(step_context))
        client = _client_class(serverless)(
            client=self._workspace,
            poll_interval_seconds=db.poll_interval_seconds,
            **({"volume_path": stage} if serverless else {}),
        )
        client.max_wait_seconds = db.max_wait_seconds
        client.cluster_permissions = access_control_list(db.permissions.get("cluster_permissions", {}))
        try:
            client.run(
                task=jobs.SubmitTask.from_dict(task),
                context=op_context(step_context),
                extras={
                    "code": files["code"],
                    "step_run_ref": files["step_run_ref"],
                    "env": self._env,
                    "secrets": [s.model_dump() for s in db.secrets_to_env_variables],
                },
                submit_args=submit_args,
            )
        except BaseException:  # a failed or cancelled run's compute was paid for too
            yield from compute_event(step_context, self._settings, self._workspace, client.run_id)
            raise
        yield from compute_event(step_context, self._settings, self._workspace, client.run_id)
        raise_if_interrupted()  # the client cancelled the job run; the step stops here
        for message in client.session.get_custom_messages():
            if isinstance(message, dict) and message.get("kind") == EVENT_MESSAGE:
                record = deserialize_value(message["record"])
                step_context.instance.handle_new_event(record)
                yield record.get_dagster_event()

    def _tags(self, step_context) -> dict[str, str]:
        from .databricks import PROJECT, PROJECT_TAG, RUN_TAG, STEP_TAG, TARGET_TAG, USE_CASE_CLUSTER_TAG

        run, step = step_context.dagster_run, step_context.step.key
        return {
            PROJECT_TAG: PROJECT,
            TARGET_TAG: self._settings.target,
            RUN_TAG: run.run_id,
            STEP_TAG: step,
            USE_CASE_CLUSTER_TAG: self._project.owner_of_step(step, run.tags),
        }

    def _upload(self, folder: str, ref, serverless: bool) -> dict[str, str]:
        """The entry point, the project's code (a zip of the package) and the step's reference, on
        DBFS (job clusters) or in the volume (serverless)."""
        target = self._workspace.files if serverless else self._workspace.dbfs
        paths = {
            name: f"{folder}/{file}" for name, file in (("entry", "pipes_step.py"), ("code", "code.zip"))
        }
        paths["step_run_ref"] = f"{folder}/step_run_ref.pkl"
        target.upload(paths["entry"], io.BytesIO(ENTRY_POINT.read_bytes()), overwrite=True)
        with tempfile.TemporaryDirectory() as staging:
            archive = shutil.make_archive(str(Path(staging, "code")), "zip", self._code)
            with open(archive, "rb") as handle:
                target.upload(paths["code"], handle, overwrite=True)
        target.upload(paths["step_run_ref"], io.BytesIO(pickle.dumps(ref)), overwrite=True)
        return paths
