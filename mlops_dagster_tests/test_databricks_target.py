"""Target `dev` against the Databricks workspace emulator: the real dagster-databricks step
launcher and databricks-sdk launch steps that really run in the emulator's cluster process.

The Dagster side runs as a user runs it (`dagster asset materialize`, a persistent instance), in
its own process with only the Databricks variables set. Unity Catalog and delta-spark cannot run
here (no Maven), so this target keeps its tables in delta-rs under `root` (docs/databricks.md, "Running on
Databricks"); MLflow points at the seed project's SQLite store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus

from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.settings import deep_merge, load_project

from .project import project_at
from .support.databricks_emulator import DatabricksEmulator

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")
TOKEN = f"dapi-emulated-{uuid.uuid4().hex}"
SPARK_ASSETS = "churn_features,churn_labels,churn_predictions"
WAREHOUSE = "emulated-warehouse"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A project with a raw table and a champion model, made on `local`; `dev` takes it from there."""
    root = tmp_path_factory.mktemp("databricks") / "mlops"
    with project_at(root) as project:
        project.land(1500, seed=3)
        upstream = [
            "raw_customers",
            "raw_customers_quarantine",
            "churn_features",
            "churn_labels",
            "churn_training_set",
            "churn_model",
            "challenger_model_version",
            "champion_model_version",
        ]
        result = project.run(selection=upstream)
        assert result.success, project.failures(result)
        champion = project.registry.by_alias("champion")
        assert champion is not None
        yield root, str(champion.version)


class Workspace:
    """One emulator plus a `dev` configuration pointing at it, and a way to run the Dagster CLI."""

    def __init__(self, root: Path, work: Path, overrides: dict | None = None, serving: bool = False):
        self.root, self.work = root, work
        self.home = work / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.cluster_tmp = work / "cluster-tmp"
        self.cluster_tmp.mkdir(parents=True, exist_ok=True)
        m = f"sqlite:///{root}/mlflow/mlflow.db"
        self.config = work / "dev.yaml"
        self.reconfigure(
            deep_merge(
                {
                    "root": str(root),
                    "landing": str(root / "landing" / "churn"),  # where the local project lands
                    "mlflow": {
                        "tracking_uri": m,
                        "registry_uri": m,
                        "experiment": "churn",
                        "model_name": "churn_model",
                    },
                    "feature_store": {"online_store": {"kind": "sqlite"}},  # under root, like the tables
                    "databricks": {
                        "poll_interval_seconds": 0.5,
                        "secrets_to_env_variables": [
                            {"name": "DATABRICKS_TOKEN", "scope": "mlops", "key": "token"}
                        ],
                        "permissions": {
                            "job_permissions": {"CAN_MANAGE_RUN": [{"group_name": "ml-engineers"}]}
                        },
                        "cluster": {"spark_conf": {"spark.sql.shuffle.partitions": "2"}},
                    },
                    "cost": {"warehouse_id": WAREHOUSE},
                },
                overrides or {},
            )
        )
        self.emulator = DatabricksEmulator(
            work / "emulator",
            TOKEN,
            project=self.project if serving else None,
            # The "cluster" processes' temporary files, for the tests to see what they leave behind.
            run_env={"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "TMPDIR": str(self.cluster_tmp)},
            tables_root=root / "lakehouse",  # the target's tables, which its monitors profile
        )
        self.emulator.put_secret("mlops", "token", TOKEN)
        self.emulator.add_warehouse(WAREHOUSE)
        self.outputs: list[str] = []

    def reconfigure(self, config: dict) -> None:
        """Write the `dev` override file (read by every later CLI run) and reload the settings."""
        self.config.write_text(yaml.safe_dump(config))
        self.project = load_project("dev", extra_file=self.config)
        self.settings = self.project.default

    def env(self, **changes: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLOPS_"))}
        env.update(
            DAGSTER_HOME=str(self.home),
            MLOPS_TARGET="dev",
            MLOPS_CONFIG=str(self.config),
            DATABRICKS_HOST=self.emulator.url,
            DATABRICKS_TOKEN=TOKEN,
        )
        for key, value in changes.items():
            env.pop(key, None) if value is None else env.__setitem__(key, value)
        return env

    def materialize(self, select: str = SPARK_ASSETS, **env_changes) -> subprocess.CompletedProcess:
        """Materialize the demo use case's assets named in ``select`` (comma-separated, no prefix)."""
        keys = ",".join(f"churn/{asset}" for asset in select.split(","))
        return self.dagster("asset", "materialize", "--select", keys, **env_changes)

    def dagster(self, *args: str, **env_changes) -> subprocess.CompletedProcess:
        return self._command([DAGSTER, *args[:2], "-m", "mlops_dagster.definitions", *args[2:]], env_changes)

    def mlops(self, *args: str) -> subprocess.CompletedProcess:
        return self._command([str(Path(DAGSTER).with_name("mlops")), *args], {})

    def _command(self, command: list[str], env_changes: dict) -> subprocess.CompletedProcess:
        """A CLI command as a user runs it with this workspace's environment; its output kept for the token scan."""
        out = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO, env=self.env(**env_changes), timeout=900
        )
        self.outputs.append(out.stdout + out.stderr)
        return out

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.home))

    @property
    def lakehouse(self) -> LocalLakehouse:
        return LocalLakehouse(root=str(self.root / "lakehouse"))

    def table(self, name: str) -> str:
        return self.settings.table(name)


@pytest.fixture
def workspace(seeded, tmp_path):
    root, _ = seeded
    ws = Workspace(root, tmp_path)
    with ws.emulator:
        yield ws
    assert_no_token_anywhere(ws)


def assert_no_token_anywhere(ws: Workspace) -> None:
    """The workspace token and every database credential the workspace handed out must not be in
    any log, event, metadata or file the runs left behind."""
    tokens = [TOKEN, *ws.emulator.database_tokens]
    assert not any(t in out for out in ws.outputs for t in tokens), "token printed by the Dagster CLI"
    for folder in (ws.home, ws.root, ws.emulator.root):
        for path in folder.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert not any(t.encode() in content for t in tokens), f"token written to {path}"
    with ws.instance() as instance:
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                assert not any(t in str(entry) for t in tokens), "token in the Dagster event log"


def run_text(instance: DagsterInstance, run_id: str) -> str:
    """Everything a user reads about a run: log messages and step errors with their causes."""
    parts = []
    for entry in instance.all_logs(run_id):
        parts.append(entry.message)
        if entry.dagster_event and entry.dagster_event.is_step_failure:
            error = entry.dagster_event.step_failure_data.error
            while error is not None:
                parts.append(error.message)
                error = error.cause
    return "\n".join(parts)


def step_of(run) -> str:
    """The Dagster step of a job run: its step reference's folder (step launcher), else its run name (Pipes)."""
    task = run.task["spark_python_task"]
    if task["python_file"].endswith("databricks_step_main.py"):
        return Path(task["parameters"][0]).parent.name
    return run.run_name.rsplit(" ", 1)[-1]


def assert_costs_recorded(ws: Workspace, dagster_run, runs: dict) -> None:
    """Each launched cluster is tagged with the Dagster run, step and use case; each step has a
    compute record with the Jobs API's time and the hand-computable estimate; cost_sensor and
    cost_report_job (its step on a cluster too) put them in run_costs next to the usage the
    workspace billed (system.billing.usage, read through the SQL Statement API)."""
    rates = ws.settings.cost
    for step, run in runs.items():
        assert (
            run.cluster["custom_tags"]
            | {
                "dagster_run_id": dagster_run.run_id,
                "dagster_step": step,
                "mlops_use_case": "churn",
                "target": "dev",
            }
            == run.cluster["custom_tags"]
        )
    compute = compute_records(ws, dagster_run, runs)
    for record in compute.values():
        nodes = 1 + ws.settings.databricks.cluster.max_workers  # i3.xlarge: 1 DBU per node-hour
        assert (record["compute_kind"], record["compute_nodes"], record["compute_node_type"]) == (
            "jobs",
            nodes,
            "i3.xlarge",
        )
        assert record["cost_estimated"] == pytest.approx(
            nodes * 1.0 * record["seconds"] / 3600 * rates.dbu_price.jobs, abs=1e-6
        )
    costs, metadata = report_costs(ws, dagster_run, runs)
    for step, run in runs.items():
        assert (
            costs.loc[step, "databricks_run_id"] == run.run_id and costs.loc[step, "compute_kind"] == "jobs"
        )
        assert costs.loc[step, "cost_estimated"] == pytest.approx(compute[step]["cost_estimated"], abs=1e-6)
    billed = sum(
        u["usage_quantity"]
        for u in ws.emulator.usage
        if u["custom_tags"].get("dagster_run_id") == dagster_run.run_id
    )
    assert billed > 0
    # The emulator's list prices: 0.15 per jobs DBU, 0.07 per serving DBU.
    assert metadata["cost_actual_window"] == pytest.approx(billed * 0.15 + 2.0 * 0.07, abs=1e-5)


def compute_records(ws: Workspace, dagster_run, runs: dict) -> dict[str, dict]:
    """Each launched step's compute record (the launcher's engine event), by step: one per job run,
    with the run's id and its time from the Jobs API."""
    with ws.instance() as instance:
        compute = {
            e.step_key: {k: v.value for k, v in e.dagster_event.engine_event_data.metadata.items()}
            for e in instance.all_logs(dagster_run.run_id)
            if e.dagster_event
            and e.dagster_event.event_type == DagsterEventType.ENGINE_EVENT
            and "mlops/compute" in e.dagster_event.engine_event_data.metadata
        }
    assert set(compute) == set(runs)
    for step, record in compute.items():
        run = runs[step]
        assert record["databricks_run_id"] == run.run_id
        assert record["seconds"] == pytest.approx((run.end_time - run.start_time) / 1000, abs=0.01)
    return compute


def report_costs(ws: Workspace, dagster_run, runs: dict) -> tuple:
    """cost_sensor's request run as cost_report_job, with usage billed beside the launched runs' that
    the report must count (the use case's endpoint: 2 DBU) and must not (another target's cluster,
    another endpoint): the run's run_costs rows by step, and the report's metadata."""
    from dagster import build_sensor_context

    from mlops_dagster.definitions import build_definitions

    with ws.instance() as instance:
        defs = build_definitions(ws.project)
        tick = defs.get_sensor_def("cost_sensor").evaluate_tick(
            build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        )
        [request] = tick.run_requests
    endpoint = ws.settings.serving.endpoint
    ws.emulator.bill("PREMIUM_SERVERLESS_REAL_TIME_INFERENCE", 2.0, endpoint_name=endpoint)
    ws.emulator.bill("PREMIUM_JOBS_COMPUTE", 50.0, {"project": "mlops_dagster", "target": "prod"})
    ws.emulator.bill("PREMIUM_SERVERLESS_REAL_TIME_INFERENCE", 9.0, endpoint_name="someone-elses-endpoint")
    config = ws.work / "cost_report.yaml"
    config.write_text(yaml.safe_dump(request.run_config))
    out = ws.dagster("job", "execute", "-j", "cost_report_job", "-c", str(config))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

    costs = ws.lakehouse.read(ws.table("run_costs"))
    costs = costs[costs["dagster_run_id"] == dagster_run.run_id].set_index("step_key")
    assert set(costs.index) == set(runs)
    with ws.instance() as instance:
        report = instance.get_latest_materialization_event(AssetKey("cost_report")).asset_materialization
        metadata = {k: v.value for k, v in report.metadata.items()}
    assert metadata["actual_usage_from"] == f"system.billing.usage (SQL warehouse {WAREHOUSE})"
    assert f"| {endpoint} | 2.0 | 0.14 |" in metadata["report"]
    assert "Launched steps: estimated" in metadata["report"]
    assert all(f"| {run.run_id} |" in metadata["report"] for run in runs.values())
    assert any(
        method == "POST" and path == "/api/2.0/sql/statements/" for method, path, _ in ws.emulator.calls
    )
    return costs, metadata


def test_a_remote_failure_surfaces_its_traceback_and_stderr(seeded, tmp_path):
    root, _ = seeded
    ws = Workspace(root, tmp_path, {"features": {"derived": {"tenureBand": "no_such_function(tenure)"}}})
    with ws.emulator:
        out = ws.materialize("churn_features,churn_labels")
        assert out.returncode != 0
        with ws.instance() as instance:
            [dagster_run] = instance.get_runs()
            assert dagster_run.status == DagsterRunStatus.FAILURE
            logs = instance.all_logs(dagster_run.run_id)
            [failure] = [e.dagster_event for e in logs if e.dagster_event and e.dagster_event.is_step_failure]
            error = failure.step_failure_data.error
            text = str(error.message) + "".join(error.stack) + str(error.cause and error.cause.message)
            assert "no_such_function" in text  # Spark's own message, raised on the cluster
            assert "assets/features.py" in "".join(error.stack) + "".join(
                error.cause.stack if error.cause else []
            )
            assert failure.pid == next(iter(ws.emulator.runs.values())).pid
            assert any("Captured stderr for step churn__build_feature_tables" in e.message for e in logs)
            failed_run_id = dagster_run.run_id
            # The failure sensor (daemon side: no Spark, no table access) requests the job that
            # records the failure; that job's step runs on a cluster like every data step.
            from dagster import build_run_status_sensor_context

            from mlops_dagster.definitions import build_definitions

            sensor = build_definitions(ws.project).resolve_sensor_def("lifecycle_failure_sensor")
            run_failure = next(
                e.dagster_event
                for e in logs
                if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_FAILURE
            )
            request = sensor(
                build_run_status_sensor_context(
                    sensor_name=sensor.name,
                    dagster_event=run_failure,
                    dagster_instance=instance,
                    dagster_run=dagster_run,
                ).for_run_failure()
            )
        (tmp_path / "record.yaml").write_text(yaml.safe_dump(request.run_config))
        out = ws.dagster(
            "job", "execute", "-j", "record_run_failure_job", "-c", str(tmp_path / "record.yaml")
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        [row] = (
            ws.lakehouse.read(ws.table("run_failures")).query("run_id == @failed_run_id").to_dict("records")
        )
        assert "no_such_function" in row["step_errors"]
        assert step_of(list(ws.emulator.runs.values())[-1]) == "record_run_failure"

        # A run whose cluster never starts: the workspace's message reaches the Dagster run.
        ws.emulator.fail_next_run("Cluster terminated: spot instances unavailable (emulated)")
        out = ws.materialize("churn_features,churn_labels")
        assert out.returncode != 0
        with ws.instance() as instance:
            failed = [r for r in instance.get_runs() if r.status == DagsterRunStatus.FAILURE]
            assert len(failed) == 2 and failed[0].run_id != failed_run_id
            assert "spot instances unavailable" in run_text(instance, failed[0].run_id)
    assert_no_token_anywhere(ws)


def test_transient_api_errors_are_retried_and_the_run_succeeds(workspace):
    ws = workspace
    ws.emulator.fail_next_calls(429, 2, "/api/2.2/jobs/runs/submit")
    ws.emulator.fail_next_calls(503, 2, "/api/2.0/dbfs/create")
    ws.emulator.fail_next_calls(500, 1, "/api/2.2/jobs/runs/get")
    out = ws.materialize("churn_features,churn_labels")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    statuses = [(path, status) for _, path, status in ws.emulator.calls]
    assert statuses.count(("/api/2.2/jobs/runs/submit", 429)) == 2
    assert ("/api/2.2/jobs/runs/submit", 200) in statuses
    assert statuses.count(("/api/2.0/dbfs/create", 503)) == 2
    assert ("/api/2.2/jobs/runs/get", 500) in statuses
    assert ws.emulator.runs and all(r.result_state == "SUCCESS" for r in ws.emulator.runs.values())


def test_cancelling_the_dagster_run_cancels_the_remote_run(workspace):
    ws = workspace
    process = subprocess.Popen(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "mlops_dagster.definitions",
            "--select",
            "churn/churn_features,churn/churn_labels",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=ws.env(),
    )
    deadline = time.monotonic() + 180
    while not any(r.life_cycle_state == "RUNNING" for r in ws.emulator.runs.values()):
        assert process.poll() is None and time.monotonic() < deadline, "the remote run never started"
        time.sleep(0.2)
    [run] = ws.emulator.runs.values()
    process.send_signal(signal.SIGINT)  # what terminating a run does to its run worker
    ws.outputs.append(process.communicate(timeout=120)[0])
    deadline = time.monotonic() + 30
    while run.life_cycle_state != "TERMINATED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "CANCELED")
    with pytest.raises(ProcessLookupError):
        os.kill(run.pid, 0)  # the cluster process is gone
    with ws.instance() as instance:
        [dagster_run] = instance.get_runs()
        assert dagster_run.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)


@pytest.mark.parametrize(
    "missing, named",
    [
        (["DATABRICKS_HOST"], "DATABRICKS_HOST is not set"),
        (["DATABRICKS_TOKEN"], "DATABRICKS_TOKEN is not set"),
    ],
)
def test_missing_credentials_give_one_clear_error(workspace, missing, named):
    out = workspace.materialize("churn_features,churn_labels", **{k: None for k in missing})
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert named in text
    assert "databricks/sdk" not in text  # stopped before any client was built
    assert workspace.emulator.runs == {}


def test_mlops_features_reads_the_registry_on_a_cluster(workspace):
    """On a Databricks target the tables are Unity Catalog's: `mlops features` runs the use case's
    feature_registry job, whose op reads them on a cluster, and prints what it handed back."""
    ws = workspace
    out = ws.mlops("features")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    version = ws.lakehouse.version(ws.table("churn_features"))
    assert f"{ws.table('churn_features')}  (v{version}; online:" in out.stdout
    assert "owner: customer-analytics" in out.stdout and "used by: churn_model v1 (table v" in out.stdout
    assert [step_of(r) for r in ws.emulator.runs.values()] == ["churn__list_feature_registry"]


def test_mlops_approve_runs_its_op_on_a_cluster(workspace, seeded):
    """`mlops` runs its jobs reconstructably, as the step launcher needs: on `dev` the approval op
    runs as a job run on the emulator's cluster and its record lands in the approvals table."""
    ws, (_, version) = workspace, seeded
    out = ws.mlops("approve", "--version", version, "--comment", "checked on the emulator")
    assert out.returncode == 0 and "churn_approve_model_version_job run " in out.stdout, out.stdout[-3000:]
    assert [step_of(r) for r in ws.emulator.runs.values()] == ["churn__approve_model_version"]
    approvals = ws.lakehouse.read(ws.table("model_approvals"))
    assert approvals[["version", "comment"]].values.tolist()[-1] == [version, "checked on the emulator"]


def test_bootstrap_then_the_access_matrix_becomes_unity_catalog_grants(workspace):
    """`mlops bootstrap --target dev` makes the schema and volumes and runs apply_access_grants_job
    on a cluster: each role's group gets the matrix's privileges on the dev catalog, schema and
    model. A second bootstrap changes nothing. A right taken out of the matrix is revoked by the
    next grants job; every change audited."""
    ws = workspace
    ws.emulator.add_catalog("ml_dev_catalog")
    out = ws.mlops("bootstrap", "--target", "dev")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "  created  schema ml_dev_catalog.mlops" in out.stdout and "  applied  grants churn" in out.stdout
    assert set(ws.emulator.uc_volumes) == {
        f"ml_dev_catalog.mlops.{v}" for v in ("landing", "io", "reports", "evidently")
    }
    catalog = ws.emulator.grants[("catalog", "ml_dev_catalog")]
    assert {"MODIFY", "CREATE_TABLE", "SELECT"} <= catalog["data_scientists"]  # dev: READ_WRITE
    assert (
        "MODIFY" not in catalog["devops_engineers"] and "SELECT" in catalog["devops_engineers"]
    )  # dev: READ
    assert "model_consumers" not in catalog  # dev: NONE
    model = ws.emulator.grants[("function", "churn_model")]
    assert model["ml_engineers"] == {"EXECUTE", "MANAGE"} and model["data_scientists"] == {"EXECUTE"}
    assert ws.emulator.grants[("schema", "ml_dev_catalog.mlops")]["data_scientists"] == {"CREATE_MODEL"}
    runs = len(ws.emulator.runs)
    again = ws.mlops("bootstrap", "--target", "dev")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.rstrip().endswith(
        "target dev: ready, nothing changed (everything was already in place)"
    )
    assert len(ws.emulator.runs) == runs  # no cluster started for grants already in place

    # Data scientists lose write access to dev in the matrix: the next apply revokes it.
    config = yaml.safe_load(ws.config.read_text())
    config["governance"] = {
        "access": {
            "matrix": {
                **{r: v.model_dump() for r, v in ws.settings.governance.access.matrix.items()},
                "data_scientists": {"catalogs": {"dev": "READ"}, "registry": ["read", "register"]},
            }
        }
    }
    ws.reconfigure(config)
    out = ws.dagster("job", "execute", "-j", "churn_apply_access_grants_job")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (
        not {"MODIFY", "CREATE_TABLE"} & catalog["data_scientists"] and "SELECT" in catalog["data_scientists"]
    )
    audit = ws.lakehouse.read(ws.table("audit_log"))
    granted = audit[audit["action"] == "granted"]
    assert len(granted) >= 7 and granted["details"].str.contains("MODIFY").any()


@pytest.mark.parametrize("launch", ["step_launcher", "pipes"])
def test_a_run_slower_than_max_wait_is_failed_and_cancelled(seeded, tmp_path, launch):
    root, _ = seeded
    ws = Workspace(root, tmp_path, {"databricks": {"max_wait_seconds": 3, "launch": launch}})
    with ws.emulator:
        ws.emulator.slow_runs(60)  # the cluster never comes up in time
        out = ws.materialize("churn_features,churn_labels")
        assert out.returncode != 0
        with ws.instance() as instance:
            [dagster_run] = instance.get_runs()
            assert dagster_run.status == DagsterRunStatus.FAILURE
            assert "took more than 3s" in run_text(instance, dagster_run.run_id)
        [run] = ws.emulator.runs.values()
        deadline = time.monotonic() + 10
        while run.life_cycle_state != "TERMINATED" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "CANCELED")
        # Both Jobs API versions answer for the same run (the SDK in use speaks 2.2).
        from databricks.sdk import WorkspaceClient

        api = WorkspaceClient(host=ws.emulator.url, token=TOKEN, auth_type="pat").api_client
        assert api.do("GET", "/api/2.1/jobs/runs/get", query={"run_id": run.run_id}) == api.do(
            "GET", "/api/2.2/jobs/runs/get", query={"run_id": run.run_id}
        )
    assert_no_token_anywhere(ws)


def test_the_file_sensor_lists_the_landing_volume_through_the_files_api(seeded, tmp_path, monkeypatch):
    """On a Databricks target the daemon cannot read /Volumes: the sensor lists the landing
    volume through the Files API, and asks for one run per stable file."""
    from dagster import build_sensor_context

    from mlops_dagster.cli import generate
    from mlops_dagster.definitions import build_definitions

    root, _ = seeded
    ws = Workspace(root, tmp_path)
    ws.emulator.volumes.append(Path(ws.settings.landing_path))
    new = generate(200, 21, False, "sensor_batch.csv", landing=ws.settings.landing_path)
    old = time.time() - 60
    os.utime(new, (old, old))
    defs = build_definitions(ws.project)
    sensor = defs.resolve_sensor_def("churn_landing_file_sensor")
    with ws.emulator:
        monkeypatch.setenv("DATABRICKS_HOST", ws.emulator.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        resources = {"landing_volume": defs.resources["landing_volume"]}
        first = sensor.evaluate_tick(build_sensor_context(cursor=None, resources=resources))
        assert not first.run_requests and "waiting for" in first.skip_message
        second = sensor.evaluate_tick(build_sensor_context(cursor=first.cursor, resources=resources))
        requested = {
            r.run_config["ops"]["churn__ingest_landing_files"]["config"]["files"][0]
            for r in second.run_requests
        }
        assert requested == {str(p) for p in Path(ws.settings.landing_path).glob("*.csv")}
        assert str(new.resolve()) in requested
        assert any(
            path.startswith("/api/2.0/fs/directories") and status == 200
            for _, path, status in ws.emulator.calls
        )

        monkeypatch.delenv("DATABRICKS_HOST")
        with pytest.raises(Exception, match="DATABRICKS_HOST is not set"):
            sensor.evaluate_tick(build_sensor_context(cursor=second.cursor, resources=resources))


def test_a_delta_source_is_read_on_the_cluster(tmp_path):
    """`dataset.source` on a Databricks target: the ingestion step reads the source table on the
    cluster (here the emulator's, with delta-rs tables under `root`) and the quarantine names the
    source version. (Incremental reads are the same code: test_source_table.py.)"""
    from deltalake import write_deltalake

    from mlops_dagster.data.telco import generate_customers

    source = tmp_path / "crm" / "customers"
    first = generate_customers(300, seed=8)
    first.loc[4, "tenure"] = 99.0
    write_deltalake(source, first)
    ws = Workspace(
        tmp_path / "mlops",
        tmp_path / "work",
        {"dataset": {"source": {"kind": "delta", "table": str(source)}}},
    )
    with ws.emulator:
        out = ws.materialize("raw_customers,raw_customers_quarantine")
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

        [ingested] = [r for r in ws.emulator.runs.values() if step_of(r) == "churn__ingest_landing_files"]
        assert ingested.result_state == "SUCCESS" and ingested.pid != os.getpid()
        assert len(ws.lakehouse.read(ws.table("raw_customers"))) == 299
        [bad] = ws.lakehouse.read(ws.table("raw_customers_quarantine")).to_dict("records")
        assert (
            bad["source_file"] == f"delta:{source}@v0"
            and bad["reason"] == "tenure: 99.0 is above the maximum 72"
        )
        [read] = ws.lakehouse.read(ws.table("source_table_log")).to_dict("records")
        assert (read["read"], read["source_version"], read["rows_loaded"]) == ("whole table", 0, 299)
    assert_no_token_anywhere(ws)


def test_an_all_purpose_cluster_that_does_not_idle_out_is_named_with_the_fix(tmp_path):
    from databricks.sdk import WorkspaceClient

    from mlops_dagster.resources.databricks import idle_cluster_problem
    from mlops_dagster.settings import ClusterSettings

    with DatabricksEmulator(tmp_path / "emulator", TOKEN) as emulator:
        for cluster_id, minutes in (("0101-never", 0), ("0101-late", 120), ("0101-idles-out", 20)):
            emulator.add_cluster(cluster_id, autotermination_minutes=minutes)
        workspace = WorkspaceClient(host=emulator.url, token=TOKEN, auth_type="pat")

        def problem(cluster_id: str) -> str | None:
            return idle_cluster_problem(workspace, ClusterSettings(existing_cluster_id=cluster_id))

        assert problem("0101-never").startswith("all-purpose cluster 0101-never never auto-terminates")
        assert "only after 120 idle minutes" in problem("0101-late")
        assert "to 30 minutes or less" in problem("0101-late")
        assert problem("0101-idles-out") is None
        assert ("GET", "/api/2.1/clusters/get", 200) in emulator.calls


def test_housekeeping_runs_on_a_cluster(workspace):
    """The housekeeping job on `dev`: its step is a job run on the emulator's cluster, which deletes
    the inference table's rows past their retention and compacts the table."""
    import pandas as pd

    ws = workspace
    table, now = ws.settings.inference_table(), pd.Timestamp.now(tz="UTC")
    for age in (45, 40, 2, 1):  # days; 30 are kept
        rows = pd.DataFrame(
            {"request_id": [f"hk-{age}-{i}" for i in range(3)], "request_time": now - pd.Timedelta(days=age)}
        )
        ws.lakehouse.write(table, rows, "append")

    out = ws.dagster("job", "execute", "-j", "churn_housekeeping_job")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

    [run] = [r for r in ws.emulator.runs.values() if step_of(r) == "churn__churn_housekeeping"]
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "SUCCESS"), run.state_message
    # The module's workspace is shared: other tests' requests (recent ones) stay too.
    kept = sorted(r for r in ws.lakehouse.read(table)["request_id"] if r.startswith("hk-"))
    assert kept == ["hk-1-0", "hk-1-1", "hk-1-2", "hk-2-0", "hk-2-1", "hk-2-2"]
    assert ws.lakehouse.size(table).files == 1
    with ws.instance() as instance:
        event = instance.get_latest_materialization_event(AssetKey(["churn", "churn_housekeeping"]))
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert event.dagster_event.pid == run.pid  # materialized by the cluster process
    assert (metadata["rows_deleted"], metadata["dry_run"]) == (6, False)
    audit = ws.lakehouse.read(ws.table("audit_log")).query("action == 'housekept' and object == @table")
    assert len(audit) == 1
