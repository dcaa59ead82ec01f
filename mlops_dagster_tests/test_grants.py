"""The access matrix as a Unity Catalog grant plan (pure), and the grants job's refusal on local."""

from __future__ import annotations

from mlops_dagster.definitions import build_definitions
from mlops_dagster.governance.grants import grant_plan
from mlops_dagster.settings import load_project, load_settings


def _plan(target: str, **access) -> dict:
    settings = load_settings(target)
    if access:
        governance = settings.governance.model_copy(
            update={"access": settings.governance.access.model_copy(update=access)}
        )
        settings = settings.model_copy(update={"governance": governance})
    return {(g.securable_type, g.full_name, g.principal): g for g in grant_plan(settings)}


def test_each_environment_grants_its_own_column_of_the_matrix(local_root):
    prod = _plan("prod")
    assert set(prod[("catalog", "ml_prod_catalog", "model_consumers")].privileges) == {
        "USE_CATALOG",
        "USE_SCHEMA",
        "SELECT",
        "READ_VOLUME",
        "EXECUTE",
    }
    assert "MODIFY" in prod[("catalog", "ml_prod_catalog", "devops_engineers")].privileges
    assert "MODIFY" not in prod[("catalog", "ml_prod_catalog", "data_scientists")].privileges
    dev = _plan("dev")
    assert dev[("catalog", "ml_dev_catalog", "model_consumers")].privileges == ()
    # Revocable: every privilege the project hands out on a securable is listed as managed.
    assert "MODIFY" in dev[("catalog", "ml_dev_catalog", "model_consumers")].managed


def test_registry_rights_map_to_schema_and_model_privileges(local_root):
    plan = _plan("staging")
    model = "ml_staging_catalog.mlops.churn_model"
    assert plan[("function", model, "ml_engineers")].privileges == ("EXECUTE", "MANAGE")
    assert plan[("function", model, "model_consumers")].privileges == ("EXECUTE",)
    assert plan[("schema", "ml_staging_catalog.mlops", "data_scientists")].privileges == ("CREATE_MODEL",)
    assert plan[("schema", "ml_staging_catalog.mlops", "devops_engineers")].privileges == ()


def test_roles_map_to_account_groups(local_root):
    plan = _plan("prod", groups={"model_consumers": "analytics-readers"})
    assert ("catalog", "ml_prod_catalog", "analytics-readers") in plan
    assert ("catalog", "ml_prod_catalog", "model_consumers") not in plan


def test_the_grants_job_refuses_on_local_saying_where_grants_apply(local_root):
    defs = build_definitions(load_project())
    result = defs.resolve_job_def("churn_apply_access_grants_job").execute_in_process(raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "Databricks targets" in failure.step_failure_data.error.message
