"""Use cases as Dagster Components, from a real defs folder loaded by Dagster's component tree
(``create_defs_folder_sandbox``: the folder a ``dg`` project has, ``dg`` itself not involved)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from dagster.components.component_scaffolding import scaffold_object
from dagster.components.testing import create_defs_folder_sandbox

import mlops_dagster
from mlops_dagster.definitions import build_definitions
from mlops_dagster.settings import CONF_DIR, DatasetSettings, load_project

warnings.filterwarnings("ignore", module="dagster")


def _names(defs) -> dict[str, set]:
    repo = defs.get_repository_def()
    return {
        "assets": {key.to_user_string() for key in repo.assets_defs_by_key},
        "checks": {key.to_user_string() for key in repo.asset_graph.asset_check_keys},
        "jobs": set(repo.job_names),
        "sensors": {s.name for s in repo.sensor_defs},
        "schedules": {s.name for s in repo.schedule_defs},
        "resources": set(repo.get_top_level_resources()),
    }


def _declare(sandbox, name: str, attributes: dict) -> None:
    """A ``defs/<name>/defs.yaml`` declaring the use case ``name``."""
    folder = sandbox.defs_folder_path / name
    folder.mkdir()
    document = {"type": "mlops_dagster.UseCase", "attributes": {"name": name, **attributes}}
    (folder / "defs.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def _load_error(attributes: dict, monkeypatch, tmp_path) -> tuple[str, str]:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    with create_defs_folder_sandbox() as sandbox:
        _declare(sandbox, "churn", attributes)
        with pytest.raises(Exception) as raised, sandbox.build_all_defs() as defs:
            defs.get_repository_def()
        # Dagster's error draws the defs folder's tree, the failing file marked; its cause is ours.
        assert "defs.yaml (UseCase) (error)" in str(raised.value)
        return str(raised.value.__cause__), str(sandbox.defs_folder_path / "churn" / "defs.yaml")


def _shipped(name: str) -> dict:
    return yaml.safe_load((CONF_DIR / "base.yaml").read_text())["use_cases"][name]


# The component ---------------------------------------------------------------------------------


def test_use_case_is_importable_from_the_top_level_without_importing_dagster():
    assert mlops_dagster.UseCase.__name__ == "UseCase" and "UseCase" in dir(mlops_dagster)
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, mlops_dagster; print('dagster' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "False"


def test_two_use_case_components_build_what_the_code_location_builds(monkeypatch, tmp_path):
    """The shipped demos declared as two defs.yaml files: the same assets, checks, jobs, sensors,
    schedules and resources as the repository's code location, with the project's parts once."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    with create_defs_folder_sandbox() as sandbox:
        _declare(sandbox, "churn", _shipped("churn"))
        _declare(sandbox, "house_prices", _shipped("house_prices"))
        with sandbox.build_all_defs() as defs:
            from_components = _names(defs)
    from_code_location = _names(build_definitions(load_project()))
    assert from_components == from_code_location
    assert {"churn/raw_customers", "house_prices/house_prices_model"} <= from_components["assets"]
    assert "lifecycle_failure_sensor" in from_components["sensors"]


def test_scaffolded_use_case_loads_as_written(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    with create_defs_folder_sandbox() as sandbox:
        # What `dg scaffold defs mlops_dagster.UseCase retention` calls.
        path = sandbox.defs_folder_path / "retention"
        scaffold_object(path, "mlops_dagster.UseCase", None, "yaml", sandbox.project_root)
        written = yaml.safe_load((path / "defs.yaml").read_text())
        assert written["type"] == "mlops_dagster.UseCase"
        assert written["attributes"]["name"] == "retention"
        assert written["attributes"]["dataset"]["columns"] == _shipped("churn")["dataset"]["columns"]
        with sandbox.build_all_defs() as defs:
            names = _names(defs)
    assert {"retention/raw_customers", "retention/retention_model"} <= names["assets"]
    assert "retention_lifecycle_job" in names["jobs"]


def _settings_with(shared: str, monkeypatch, tmp_path, via_env: bool):
    """The churn demo's settings in a project whose settings file says ``shared`` (found at the
    project's root, or named by MLOPS_CONFIG)."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    with create_defs_folder_sandbox() as sandbox:
        path = (tmp_path if via_env else sandbox.project_root) / "mlops.yaml"
        path.write_text(shared)
        if via_env:
            monkeypatch.setenv("MLOPS_CONFIG", str(path))
        _declare(sandbox, "churn", _shipped("churn"))
        with sandbox.build_component_tree() as tree:
            [use_case] = tree.get_all_components(of_type=mlops_dagster.UseCase)
            return use_case.settings()


@pytest.mark.parametrize("via_env", [False, True], ids=["mlops.yaml", "MLOPS_CONFIG"])
def test_project_settings_file_sets_what_the_project_shares(monkeypatch, tmp_path, via_env):
    home = tmp_path / "home"
    settings = _settings_with(
        f"catalog: team_catalog\nroot: {home}\nserving: {{port: 9123}}\n", monkeypatch, tmp_path, via_env
    )
    assert (settings.catalog, settings.serving.port, str(settings.root)) == ("team_catalog", 9123, str(home))
    assert settings.table("raw_customers") == "team_catalog.mlops.raw_customers"


def test_project_settings_file_declares_no_use_case(monkeypatch, tmp_path):
    with pytest.raises(Exception) as raised:
        _settings_with("use_cases: {churn: {}}\n", monkeypatch, tmp_path, via_env=True)
    assert str(raised.value) == (
        f"{tmp_path / 'mlops.yaml'}: the project settings file holds what every use case shares; declare "
        "each use case as an mlops_dagster.UseCase component (a defs.yaml), not under `use_cases`"
    )


def test_an_unknown_key_fails_naming_the_key_and_the_file(monkeypatch, tmp_path):
    message, path = _load_error({**_shipped("churn"), "datset": {}}, monkeypatch, tmp_path)
    assert "attributes.datset" in message and path in message and "Extra inputs" in message


def test_a_wrong_nested_key_fails_with_the_settings_schema_error(monkeypatch, tmp_path):
    churn = _shipped("churn")
    message, path = _load_error(
        {**churn, "dataset": {**churn["dataset"], "colums": {}}}, monkeypatch, tmp_path
    )
    assert "invalid configuration for target 'local', use case 'churn'" in message and path in message
    assert "dataset.colums" in message and "Extra inputs are not permitted" in message


def test_a_wrong_type_fails_naming_the_key_and_the_allowed_values(monkeypatch, tmp_path):
    message, path = _load_error({**_shipped("churn"), "problem_type": "ranking"}, monkeypatch, tmp_path)
    assert message.startswith("1 validation error for UseCase\nproblem_type\n")
    assert "'classification' or 'regression'" in message and "ranking" in message


def test_a_project_wide_key_in_a_use_case_is_refused(monkeypatch, tmp_path):
    message, path = _load_error({**_shipped("churn"), "serving": {"port": 9000}}, monkeypatch, tmp_path)
    assert message == (
        f"{path}: use case 'churn' sets serving.port, which the whole project shares: set it in the project "
        "settings file (mlops.yaml at the project's root, or MLOPS_CONFIG)"
    )


# The package ------------------------------------------------------------------------------------


def test_mlops_version_prints_the_package_version():
    printed = subprocess.run(
        [sys.executable, "-m", "mlops_dagster.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert printed.stdout.strip() == f"mlops {mlops_dagster.__version__}"
    assert (
        f"## {mlops_dagster.__version__}\n"
        in (Path(mlops_dagster.__file__).parent.parent / "CHANGELOG.md").read_text()
    )


# mlops infer-contract ---------------------------------------------------------------------------

ROWS = 12
SAMPLE = {
    "id": [f"c{i}" for i in range(ROWS)],
    "plan": [["basic", "plus", "pro"][i % 3] for i in range(ROWS)],
    "months": list(range(ROWS)),
    "spend": [None if i % 5 == 0 else 10.5 + i for i in range(ROWS)],
    "signup": [None if i == 3 else date(2024, 1, 1 + i) for i in range(ROWS)],
    "active": [i % 2 == 0 for i in range(ROWS)],
}
INFERRED = {
    "id": {"type": "string"},
    "plan": {"type": "string", "allowed": ["basic", "plus", "pro"]},
    "months": {"type": "long", "min": 0, "max": 11},
    "spend": {"type": "double", "nullable": True, "min": 11.5, "max": 21.5},
    "signup": {"type": "timestamp", "nullable": True},
    "active": {"type": "boolean"},
}


def _write(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(zip(SAMPLE, values)) for values in zip(*SAMPLE.values())]
    if path.suffix == ".parquet":
        pq.write_table(pa.table(SAMPLE), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows))
    else:
        text = [",".join(SAMPLE)]
        text += [
            ",".join(
                "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in r.values()
            )
            for r in rows
        ]
        path.write_text("\n".join(text) + "\n")
    return path


def _infer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlops_dagster.cli", "infer-contract", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("name", ["sample.csv", "sample.parquet", "sample.jsonl"])
def test_infer_contract_prints_a_contract_the_settings_accept(tmp_path, name):
    printed = _infer(str(_write(tmp_path / name)))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith(f"# dataset.columns inferred from the first {ROWS} rows of {name}")
    columns = yaml.safe_load(printed.stdout)["columns"]
    assert columns == INFERRED
    assert DatasetSettings(name="s", key="id", label="plan", columns=columns).columns["plan"].allowed == [
        "basic",
        "plus",
        "pro",
    ]


def test_infer_contract_reads_a_bounded_sample(tmp_path):
    path = _write(tmp_path / "sample.csv")
    printed = _infer(str(path), "--rows", "3")
    columns = yaml.safe_load(printed.stdout)["columns"]
    assert "first 3 rows" in printed.stdout
    assert columns["months"] == {"type": "long", "min": 0, "max": 2}
    assert "nullable" not in columns["signup"]  # its empty cell is the 4th row, past the sample


def test_infer_contract_names_what_it_cannot_read(tmp_path):
    unknown = _infer(str(tmp_path / "sample.xlsx"))
    assert unknown.returncode == 2
    assert "cannot tell the format of" in unknown.stderr and "--format csv | json | parquet" in unknown.stderr
    missing = _infer(str(tmp_path / "missing.csv"))
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        f"mlops infer-contract: {tmp_path / 'missing.csv'} is not a file",
    )


def test_infer_contract_stops_reading_after_its_sample(tmp_path):
    """A 4 MB file whose last line would break the read: a 10-row sample never gets there."""
    path = tmp_path / "large.csv"
    with path.open("w") as out:
        out.write("id,plan,months\n")
        out.writelines(f"c{i},basic,{i % 7}\n" for i in range(300_000))
        out.write("a line with one field\n")
    assert path.stat().st_size > 4_000_000
    sampled = _infer(str(path), "--rows", "10")
    assert sampled.returncode == 0, sampled.stderr
    assert yaml.safe_load(sampled.stdout)["columns"]["months"] == {"type": "long", "min": 0, "max": 6}
    whole = _infer(str(path), "--rows", "400000")
    assert (
        whole.returncode == 2
        and "cannot read" in whole.stderr
        and "Expected 3 columns, got 1" in whole.stderr
    )


# A project made by create-dagster ---------------------------------------------------------------
#
# Real: `python -m build` makes the wheel and sdist from this checkout; `create-dagster project` makes
# the project; its own virtual environment gets the wheel by `pip install`; `dg scaffold defs`,
# `dg check defs`, `dg list defs` and `dg launch` run in that environment, and the runs are Dagster
# runs of the installed package (Spark, Delta, MLflow, the gateway) on the demo's data. One shortcut,
# to keep minutes of downloads out of the suite: the project's environment reaches the libraries the
# package needs (dagster, pyspark, mlflow, ...) and dg itself from the test's environment (a .pth
# file), and the project's own source through a .pth file as an editable install would.


def _run(command: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _project_environment(project: Path, wheel: Path) -> dict:
    subprocess.run([sys.executable, "-m", "venv", project / ".venv"], check=True)
    site = next((project / ".venv" / "lib").glob("python*")) / "site-packages"
    libraries = [p for p in sys.path if p.endswith("site-packages")]
    (site / "test_environment.pth").write_text("".join(f"{p}\n" for p in [*libraries, project / "src"]))
    installed = _run(
        [project / ".venv/bin/python", "-m", "pip", "install", "--no-deps", "--ignore-installed", wheel],
        project,
        None,
    )
    assert installed.returncode == 0, installed.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "PYTHONPATH"))}
    return {
        **env,
        "VIRTUAL_ENV": str(project / ".venv"),
        "PATH": f"{project / '.venv/bin'}{os.pathsep}{env['PATH']}",
        "DAGSTER_HOME": str(project.parent / "dagster_home"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }


@pytest.fixture(scope="module")
def dg_project(tmp_path_factory):
    """A create-dagster project with the wheel installed, the churn demo scaffolded by dg and the house
    prices demo declared by hand, each with its landing files; the gateway its runs start is stopped."""
    tools = Path(sys.executable).parent
    missing = [t for t in ("create-dagster", "dg") if not (tools / t).exists()]
    missing += [] if importlib.util.find_spec("build") else ["build"]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: install the test extra (make install)")
    root = tmp_path_factory.mktemp("dg")
    checkout = Path(mlops_dagster.__file__).parent.parent
    built = _run([sys.executable, "-m", "build", "--outdir", root / "dist", checkout], root, None)
    assert built.returncode == 0, built.stderr[-3000:]
    created = _run([tools / "create-dagster", "project", "--no-uv-sync", "ml_team"], root, None)
    assert created.returncode == 0, created.stderr
    project = root / "ml_team"
    env = _project_environment(project, next((root / "dist").glob("*.whl")))
    python = str(project / ".venv/bin/python")

    def dg(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return _run([python, tools / "dg", *args], project, env, timeout)

    scaffolded = dg("scaffold", "defs", "mlops_dagster.UseCase", "churn")
    assert scaffolded.returncode == 0, scaffolded.stderr
    houses = project / "src/ml_team/defs/house_prices"
    houses.mkdir()
    (houses / "defs.yaml").write_text(
        yaml.safe_dump(
            {
                "type": "mlops_dagster.UseCase",
                "attributes": {"name": "house_prices", **_shipped("house_prices")},
            }
        )
    )
    for use_case in ("churn", "house_prices"):
        generated = _run(
            [
                "mlops",
                "generate",
                "--use-case",
                use_case,
                "--rows",
                "1500",
                "--landing",
                f".mlops/landing/{use_case}",
            ],
            project,
            env,
        )
        assert generated.returncode == 0, generated.stderr
    try:
        yield SimpleNamespace(root=root, path=project, env=env, dg=dg, python=python)
    finally:
        _run(["mlops", "stop"], project, env)


@pytest.mark.integration
def test_the_wheel_and_sdist_hold_the_configuration_and_the_demo_generators(dg_project):
    import tarfile
    import zipfile

    [wheel], [sdist] = (list((dg_project.root / "dist").glob(pattern)) for pattern in ("*.whl", "*.tar.gz"))
    assert wheel.name == f"mlops_dagster-{mlops_dagster.__version__}-py3-none-any.whl"
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    in_sdist = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    for path in [
        "conf/base.yaml",
        "conf/local.yaml",
        "conf/prod.yaml",
        "conf/log4j2.properties",
        "data/telco.py",
        "components.py",
    ]:
        assert f"mlops_dagster/{path}" in in_wheel and f"mlops_dagster/{path}" in in_sdist
    imported = _run(
        [dg_project.python, "-c", "import mlops_dagster; print(mlops_dagster.__file__)"],
        dg_project.path,
        dg_project.env,
    )
    assert imported.stdout.startswith(
        str(dg_project.path / ".venv")
    )  # the installed wheel, not this checkout
    version = _run(["mlops", "--version"], dg_project.path, dg_project.env)
    assert version.stdout.strip() == f"mlops {mlops_dagster.__version__}"


@pytest.mark.integration
def test_dg_checks_and_lists_the_use_cases(dg_project):
    checked = dg_project.dg("check", "defs")
    assert checked.returncode == 0, checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = dg_project.dg("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout)
    assets = {a["asset_key"] for a in defs["assets"]}
    assert {
        "churn/raw_customers",
        "churn/churn_model",
        "house_prices/raw_houses",
        "house_prices/house_prices_model",
    } <= assets
    assert {
        "churn/churn_labels:both_classes_present",
        "house_prices/house_prices_labels:labels_are_numbers",
    } <= {c["key"] for c in defs["asset_checks"]}
    assert {"churn_lifecycle_job", "house_prices_lifecycle_job"} <= {j["name"] for j in defs["jobs"]}
    assert {"churn_landing_file_sensor", "house_prices_landing_file_sensor", "lifecycle_failure_sensor"} <= {
        s["name"] for s in defs["sensors"]
    }
    [source] = {a["source"] for a in defs["assets"] if a["asset_key"] == "churn/raw_customers"}
    assert source.startswith("src/ml_team/defs/churn/defs.yaml")


@pytest.mark.integration
def test_a_wrong_key_fails_dg_check_naming_the_key_and_the_file(dg_project):
    broken = dg_project.path / "src/ml_team/defs/broken"
    broken.mkdir()
    (broken / "defs.yaml").write_text(
        yaml.safe_dump(
            {
                "type": "mlops_dagster.UseCase",
                "attributes": {"name": "broken", **_shipped("churn"), "featurs": {}},
            }
        )
    )
    try:
        checked = dg_project.dg("check", "defs")
    finally:
        (broken / "defs.yaml").unlink()
        broken.rmdir()
    said = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert "featurs" in said and "src/ml_team/defs/broken/defs.yaml" in said


@pytest.mark.integration
@pytest.mark.parametrize("use_case, raw", [("churn", "raw_customers"), ("house_prices", "raw_houses")])
def test_each_use_case_runs_its_lifecycle_from_the_project(dg_project, use_case, raw):
    from deltalake import DeltaTable

    launched = dg_project.dg("launch", "--job", f"{use_case}_lifecycle_job", timeout=900)
    said = launched.stdout + launched.stderr
    assert (
        launched.returncode == 0
        and f'RUN_SUCCESS - Finished execution of run for "{use_case}_lifecycle_job"' in said
    ), said[-3000:]
    tables = dg_project.path / ".mlops/lakehouse/ml_dev_catalog/mlops"
    for table in (raw, f"{use_case}_features", f"{use_case}_training_set", f"{use_case}_predictions"):
        assert DeltaTable(str(tables / table)).to_pyarrow_table().num_rows == 1500, table
